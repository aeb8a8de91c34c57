"""The strategies' own texts in the active language (strategies.texts): English where declared,
otherwise the Korean declaration, then the key or the parameter's name."""

from __future__ import annotations

import pytest
from django.utils import translation

from strategies import texts
from strategies.library import get_strategy
from strategies.library.base import Parameter, Strategy


class Bare(Strategy):
    """A user-written strategy that declares only Korean texts (or none)."""

    key = "bare"
    name = "맨 전략"
    description = "한국어 설명만"
    parameters = (Parameter("days", "int", 3, label="일수", help="연속 일수"), Parameter("n", "int", 1))


@pytest.mark.parametrize(("language", "name", "label", "help_text"), [
    ("ko", "평균회귀 (Z-점수)", "Z 임계값", "Z가 -임계값 미만이면 매수, +임계값 초과이면 매도"),
    ("en", "Mean reversion (z-score)", "Z threshold", "Buy when z is below -threshold, sell when it is above +threshold"),
])
def test_built_in_texts_follow_the_language(language, name, label, help_text):
    cls = get_strategy("mean_reversion")
    spec = next(p for p in cls.parameter_specs() if p.name == "z_threshold")
    with translation.override(language):
        assert texts.strategy_name(cls) == texts.strategy_name("mean_reversion") == name
        assert texts.parameter_label(spec) == label and texts.parameter_help(spec) == help_text
        assert texts.strategy_description(cls) == (cls.description if language == "ko" else cls.description_en)


def test_the_exit_parameters_in_english():
    cls = get_strategy("rsi")  # declares no stop_loss/take_profit of its own: the shared ones
    with translation.override("en"):
        assert [texts.parameter_label(p) for p in cls.parameter_specs()][-2:] == ["Stop-loss", "Take-profit"]
    with translation.override("ko"):
        assert [texts.parameter_label(p) for p in cls.parameter_specs()][-2:] == ["손절 기준", "익절 기준"]


def test_without_english_the_korean_then_the_name():
    with translation.override("en"):
        assert texts.strategy_name(Bare) == "맨 전략" and texts.strategy_description(Bare) == "한국어 설명만"
        assert [texts.parameter_label(p) for p in Bare.parameters] == ["일수", "n"]
        assert [texts.parameter_help(p) for p in Bare.parameters] == ["연속 일수", ""]
        assert texts.strategy_name("no_such_key") == "no_such_key"
        assert texts.strategy_description("no_such_key") == ""
