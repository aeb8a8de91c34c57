"""The strategy registry: built-ins, a user module dropped into the package, broken and duplicate
modules. The user modules are written to a temporary folder added to the package's search path,
so the source tree is never touched."""

from __future__ import annotations

import re
import sys
import textwrap

import numpy as np
import pandas as pd
import pytest

import strategies.library as package
from strategies.library import registry
from strategies.library.registry import (
    RegistryError,
    UnknownStrategyError,
    all_strategies,
    create_strategy,
    get_strategy,
    import_errors,
)

USER_MODULE = '''
"""A user's strategy: buy after three up days, sell after three down days."""
import pandas as pd

from strategies.library.base import Parameter, Strategy


class ThreeDays(Strategy):
    key = "three_days"
    name = "3일 연속"
    description = "3일 연속 오르면 매수, 3일 연속 내리면 매도"
    parameters = (Parameter("days", "int", 3, min=2, max=10, label="일수", help="연속 상승·하락 일수"),)

    def generate_signals(self, prices: pd.Series, **context) -> pd.Series:
        bars = prices.dropna()
        change = bars.diff()
        up = (change > 0).astype(int).rolling(self.days).sum() == self.days
        down = (change < 0).astype(int).rolling(self.days).sum() == self.days
        signals = pd.Series(0, index=bars.index)
        signals[up] = 1
        signals[down] = -1
        return signals.reindex(prices.index, fill_value=0)
'''


@pytest.fixture
def user_folder(tmp_path, monkeypatch):
    """A folder that counts as part of ``strategies.library`` (like a module dropped into it)."""
    folder = tmp_path / "user_strategies"
    folder.mkdir()
    monkeypatch.setattr(package, "__path__", [*package.__path__, str(folder)])
    yield folder
    for name in [m for m in sys.modules if m.startswith("strategies.library.user_")]:
        del sys.modules[name]
    monkeypatch.undo()
    registry.discover(refresh=True)


def test_built_in_strategies_are_registered():
    keys = set(all_strategies())
    assert {"mean_reversion", "ma_crossover", "rsi", "bollinger", "momentum_12_1", "dual_momentum",
            "volatility_breakout"} <= keys
    assert get_strategy("mean_reversion").key == "mean_reversion"
    assert create_strategy("rsi", {"period": 10}).period == 10
    assert list(all_strategies()) == sorted(all_strategies())
    assert import_errors() == {}


def test_unknown_key_has_a_korean_message():
    with pytest.raises(UnknownStrategyError) as err:
        get_strategy("nope")
    assert isinstance(err.value, KeyError)
    assert "알 수 없는 전략입니다: 'nope'" in str(err.value)
    assert "mean_reversion" in str(err.value)


def test_a_user_module_is_picked_up_without_touching_other_files(user_folder):
    (user_folder / "user_three_days.py").write_text(USER_MODULE, encoding="utf-8")
    assert "three_days" not in registry.discover()  # cached until a rescan
    found = registry.discover(refresh=True)
    assert "three_days" in found and "mean_reversion" in found
    strategy = create_strategy("three_days", {"days": 2})
    prices = pd.Series([1.0, 2, 3, 2, 1, np.nan, 0.5], index=pd.bdate_range("2024-01-01", periods=7), name="X")
    assert strategy.generate_signals(prices).tolist() == [0, 0, 1, 0, -1, 0, -1]
    # Without a vectorised form, the matrix form runs the per-symbol form on each column.
    matrix = np.column_stack([prices.to_numpy(), prices.to_numpy()[::-1]])
    sig, score = strategy.signals_and_scores(matrix)
    assert sig[:, 0].tolist() == [0, 0, 1, 0, -1, 0, -1]
    assert sig.dtype == np.int8 and np.isnan(score[5, 0]) and score[0, 0] == 0


def test_a_broken_user_module_does_not_hide_the_others(user_folder):
    (user_folder / "user_broken.py").write_text("raise RuntimeError('boom')\n", encoding="utf-8")
    with pytest.warns(UserWarning, match="user_broken"):
        found = registry.discover(refresh=True)
    assert "mean_reversion" in found
    errors = import_errors()
    assert list(errors) == ["strategies.library.user_broken"] and "boom" in errors["strategies.library.user_broken"]


def test_two_strategies_with_one_key_are_an_error(user_folder):
    duplicate = textwrap.dedent('''
        from strategies.library.base import Strategy

        class Copy(Strategy):
            key = "mean_reversion"
    ''')
    (user_folder / "user_duplicate.py").write_text(duplicate, encoding="utf-8")
    with pytest.raises(RegistryError, match="mean_reversion"):
        registry.discover(refresh=True)


def test_private_modules_are_ignored(user_folder):
    (user_folder / "_scratch.py").write_text("raise RuntimeError('never imported')\n", encoding="utf-8")
    registry.discover(refresh=True)
    assert import_errors() == {}


HANGUL = re.compile(r"[\uac00-\ud7a3\u3131-\u318e]")


@pytest.mark.parametrize("key", sorted(all_strategies()))
def test_every_built_in_strategy_has_english_texts(key):
    """The English pages show these (strategies.texts): a built-in without them would show Korean."""
    cls = get_strategy(key)
    texts = [cls.name_en, cls.description_en]
    for spec in cls.parameter_specs():
        assert spec.label_en and spec.help_en, f"{key}.{spec.name} has no English label or help"
        texts += [spec.label_en, spec.help_en]
    assert cls.name_en and cls.description_en, f"{key} has no English name or description"
    assert not [text for text in texts if HANGUL.search(text)]
    # the Korean texts are still declared next to them
    assert HANGUL.search(cls.name) and HANGUL.search(cls.description)
    assert all(HANGUL.search(spec.label) for spec in cls.parameter_specs())


def test_a_user_strategy_without_english_texts_still_works(user_folder):
    (user_folder / "user_three_days.py").write_text(USER_MODULE, encoding="utf-8")
    cls = registry.discover(refresh=True)["three_days"]
    assert cls.name_en == cls.description_en == ""
    assert [(p.label_en, p.help_en) for p in cls.parameters] == [("", "")]
    described = cls.describe()
    assert described["name"] == "3일 연속" and described["name_en"] == ""
    assert described["parameters"][0]["label"] == "일수" and described["parameters"][0]["label_en"] == ""
