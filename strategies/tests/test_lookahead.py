"""The look-ahead check (strategies.research.lookahead and manage.py check_lookahead).

Every built-in strategy passes on synthetic markets (a random walk with listings, delistings and
suspensions; the demo market's generator) and on real KRX bars (`../shared/data/krx`, read in place;
skipped when absent). Strategies that peek — on the per-symbol path only, on the vectorised path
only, on both — are caught on the right path, with the first date and symbol where the cut history
and the full history disagree, found here independently of the checker. The command is run on the
demo market stored in the database, with a user's strategy module dropped into the package.
"""

from __future__ import annotations

import datetime as dt
import io
import json
import os
import sys
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from django.conf import settings
from django.core.management import call_command
from django.core.management.base import CommandError

import strategies.library as package
from market.demo_market import store_demo_market
from market.krx import SEOUL
from strategies.backtest.data import MarketData
from strategies.backtest.synthetic import demo_market, random_walk_market
from strategies.library import all_strategies, registry
from strategies.library.base import Parameter, Strategy, on_bars, signal_matrix, to_signal_series
from strategies.library.numeric import rolling_mean
from strategies.market_data import load_market_data
from strategies.research.lookahead import (
    check_strategy,
    krx_csv_codes,
    per_symbol_signals,
    read_krx_csv,
    spread_dates,
)

KRX_DATA = Path(os.environ.get("KRX_DATA_DIR") or Path(settings.BASE_DIR).parent / "shared" / "data" / "krx")
BUILT_IN = ("bollinger", "dual_momentum", "ma_crossover", "mean_reversion", "momentum_12_1", "rsi",
            "volatility_breakout")
# The data set's five main codes, a suspension (009830 in 2023) and a listing during the period (459580).
REAL_CODES = ["000660", "005380", "005930", "035420", "051910", "009830", "459580"]
DAYS = pd.bdate_range("2022-01-03", periods=520).date


@pytest.fixture(scope="module")
def walk():
    return random_walk_market(10, np.array(DAYS, dtype="datetime64[D]"), seed=11, listed_late=0.3, suspended=0.3)


@pytest.fixture(scope="module")
def demo():
    return demo_market(8, list(DAYS), seed=5)


# --- strategies that peek ----------------------------------------------------------------------------


class PeekNextClose(Strategy):
    """Buys when the NEXT bar closes higher (shift(-1)); only the per-symbol form, so the vectorised
    path runs it column by column too."""

    key = "peek_next_close"

    def generate_signals(self, prices, **context):
        bars = on_bars(prices)
        ahead = bars.shift(-1)
        return to_signal_series(ahead > bars, ahead < bars, prices.index)


class CentredMean(Strategy):
    """Close above its 5-bar moving average: honest on the matrix, a CENTRED window per symbol."""

    key = "centred_mean"
    parameters = (Parameter("window", "int", 5, min=2, max=50),)

    def generate_signals(self, prices, **context):
        bars = on_bars(prices)
        mean = bars.rolling(self.window, center=True).mean()
        return to_signal_series(bars > mean, bars < mean, prices.index)

    def indicators(self, close, open, high, low):
        return {"mean": rolling_mean(close, self.window)}

    def signals_from(self, ind, valid):
        return signal_matrix(ind["close"] > ind["mean"], ind["close"] < ind["mean"])


class NearFullHistoryHigh(Strategy):
    """Close within 10 % of its high: the running high per symbol, the FULL-history high on the matrix."""

    key = "near_high"

    def generate_signals(self, prices, **context):
        bars = on_bars(prices)
        return to_signal_series(bars >= 0.9 * bars.cummax(), bars < 0.5 * bars.cummax(), prices.index)

    def indicators(self, close, open, high, low):
        with np.errstate(invalid="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # a symbol not listed yet: no high
            high = np.nanmax(close, axis=0, keepdims=True)
        return {"high": np.repeat(high, close.shape[0], axis=0)}

    def signals_from(self, ind, valid):
        return signal_matrix(ind["close"] >= 0.9 * ind["high"], ind["close"] < 0.5 * ind["high"])


class SeesAJump(Strategy):
    """Buys when a close within the next 5 bars is 50 % higher: peeks 5 bars ahead, rarely."""

    key = "sees_a_jump"

    def generate_signals(self, prices, **context):
        bars = on_bars(prices)
        ahead = bars[::-1].rolling(5, min_periods=1).max()[::-1].shift(-1)
        return to_signal_series(ahead > 1.5 * bars, ahead < 0 * bars, prices.index)


class Honest(Strategy):
    key = "honest"

    def generate_signals(self, prices, **context):
        bars = on_bars(prices)
        return to_signal_series(bars > bars.shift(1), bars < bars.shift(1), prices.index)


def first_bar_change_after(data: MarketData, days: list[dt.date]) -> tuple[dt.date, str, int]:
    """The first tested date and code (column order) whose next own bar closes differently, and the sign."""
    for day in days:
        row = int(np.searchsorted(data.dates, np.datetime64(day)))
        for j, code in enumerate(data.codes):
            later = np.flatnonzero(data.valid[row + 1 :, j])
            if data.valid[row, j] and later.size:
                change = data.close[row + 1 + later[0], j] - data.close[row, j]
                if change:
                    return day, code, int(np.sign(change))
    raise AssertionError("no close ever changes")


def brute_force_first(strategy: Strategy, data: MarketData, start: dt.date) -> tuple[dt.date, str, int, int]:
    """The first date from ``start`` (then code) where the per-symbol signal on the bars cut at that
    date differs from the signal on all the bars, by brute force."""
    for day in data.index[data.index >= pd.Timestamp(start)]:
        for code in data.codes:
            bars = data.symbol_bars(code)["close"].rename(code)
            if day not in bars.index:
                continue
            full = int(strategy.generate_signals(bars).loc[day])
            cut = int(strategy.generate_signals(bars.loc[:day]).iloc[-1])
            if full != cut:
                return day.date(), code, cut, full
    raise AssertionError("no difference")


# --- built-ins pass ------------------------------------------------------------------------------------


def test_every_built_in_strategy_is_registered_and_checked():
    assert set(BUILT_IN) <= set(all_strategies())


@pytest.mark.parametrize("key", BUILT_IN)
def test_built_in_strategies_do_not_look_ahead_on_synthetic_markets(key, walk, demo):
    strategy = all_strategies()[key]()
    assert walk.valid.sum() < walk.valid.size  # listings, delistings and suspensions are in the walk
    for market in (walk, demo):
        result = check_strategy(strategy, market, count=8)
        assert result.ok, result.line()
        assert len(result.dates) == 8 and result.paths == ("vectorised", "per_symbol")
        assert result.dates[0] == market.dates[min(strategy.warmup, len(market.dates) - 2)].astype(object)
        assert result.line().startswith(f"OK: {key} (8 dates")


@pytest.fixture(scope="module")
def real_market():
    if not (KRX_DATA / "bars").is_dir():
        if os.environ.get("REQUIRE_KRX_DATA"):
            pytest.fail(f"real KRX bars are required but {KRX_DATA} is missing")
        pytest.skip(f"no real KRX bars at {KRX_DATA} (set KRX_DATA_DIR)")
    return read_krx_csv(KRX_DATA / "bars", REAL_CODES)


@pytest.mark.parametrize("key", BUILT_IN)
def test_built_in_strategies_do_not_look_ahead_on_real_bars(key, real_market):
    assert not real_market.valid.all()  # the suspension and the listing are there
    strategy = all_strategies()[key]()
    result = check_strategy(strategy, real_market, count=10)
    assert result.ok, result.line()
    assert result.symbols == len(REAL_CODES) and len(result.dates) == 10


def test_real_bars_are_read_as_stored(real_market):
    if not (KRX_DATA / "universe.csv").is_file():
        pytest.skip("no universe.csv")
    frame = pd.read_csv(KRX_DATA / "bars" / "005930.csv")
    j = real_market.codes.index("005930")
    rows = np.flatnonzero(real_market.valid[:, j])
    assert len(rows) == len(frame)
    assert real_market.close[rows, j].tolist() == frame["close"].astype(float).tolist()
    assert krx_csv_codes(KRX_DATA, 7)[:5] == sorted(REAL_CODES[:5])  # the main group first


# --- peeking strategies are caught -----------------------------------------------------------------------


def test_shift_minus_one_is_caught_on_both_paths_at_the_first_date_and_symbol(walk):
    result = check_strategy(PeekNextClose(), walk, count=6)
    day, code, sign = first_bar_change_after(walk, list(result.dates))
    assert result.peeks and not result.ok
    assert [d.path for d in result.differences] == ["vectorised", "per_symbol"]
    for difference in result.differences:
        assert (difference.date, difference.symbol, difference.field) == (day, code, "signal")
        assert (difference.cut, difference.full) == (0, sign)
    assert result.line().startswith(f"LOOK-AHEAD: peek_next_close at {day.isoformat()} {code}: cut=0 full={sign} ")


def test_a_centred_window_in_the_per_symbol_form_is_caught_on_that_path_only(walk):
    strategy = CentredMean()
    result = check_strategy(strategy, walk, count=6)
    assert [d.path for d in result.differences] == ["per_symbol"]
    first = result.first
    # Found between the first two tested dates (the window reaches two bars ahead from the third bar).
    assert (first.date, first.symbol, int(first.cut), int(first.full)) == brute_force_first(
        strategy, walk, result.dates[0])
    assert result.line().endswith("(signal, per_symbol)")


def test_the_full_history_high_in_the_vectorised_form_is_caught_on_that_path_only(walk):
    result = check_strategy(NearFullHistoryHigh(), walk, count=6)
    assert [d.path for d in result.differences] == ["vectorised"]
    # Independently: the first tested date (then code) where the rule answers differently against
    # the running high (all the cut history knows) and against the full-history high.
    close = walk.frame("close")
    running, full_high = close.cummax(), close.max()

    def rule(price: float, high: float) -> int:
        return 1 if price >= 0.9 * high else (-1 if price < 0.5 * high else 0)

    expected = next(
        (day.date(), code, rule(close.at[day, code], running.at[day, code]), rule(close.at[day, code], full_high[code]))
        for day in (pd.Timestamp(d) for d in result.dates) for code in walk.codes
        if pd.notna(close.at[day, code])
        and rule(close.at[day, code], running.at[day, code]) != rule(close.at[day, code], full_high[code])
    )
    first = result.first
    assert (first.date, first.symbol, first.cut, first.full) == expected


def test_the_first_date_is_found_between_the_tested_dates():
    days = pd.bdate_range("2023-01-02", periods=300)
    rng = np.random.default_rng(3)
    close = np.round(10_000 * np.exp(np.cumsum(rng.normal(0, 0.004, (300, 4)), axis=0)))
    close[200:, 2] *= 2  # one jump: the strategy sees it from 5 bars before
    data = MarketData.from_matrices(days, ["000010", "000020", "000030", "000040"], open=close, close=close)
    ahead = pd.DataFrame(close).iloc[::-1].rolling(5, min_periods=1).max().iloc[::-1].shift(-1).to_numpy()
    first_row = int(np.argmax((ahead > 1.5 * close).any(axis=1)))
    tested = [days[100].date(), days[197].date(), days[250].date()]
    result = check_strategy(SeesAJump(), data, tested, paths=("per_symbol",))
    assert result.first.date == days[first_row].date() < tested[1]
    assert result.first.symbol == "000030" and (result.first.cut, result.first.full) == (0, 1)
    # Two tested dates, then the gap after the first, up to the first difference.
    assert result.dates_scanned == 2 + (first_row - 100)
    # Sampled dates that miss the five days do not see it: the check is only as good as its dates.
    assert check_strategy(SeesAJump(), data, [days[100].date(), days[250].date()]).ok


def test_an_honest_user_strategy_passes_and_close_frames_are_accepted(walk):
    close = walk.frame("close")
    result = check_strategy(Honest(), close, count=5)
    assert result.ok and result.symbols == walk.shape[1] and len(result.dates) == 5
    sig, score = per_symbol_signals(Honest(), walk)
    assert set(np.unique(sig)) <= {-1, 0, 1} and np.isnan(score[~walk.valid]).all()


def test_spread_dates_are_deterministic_and_after_the_warm_up(walk):
    days = spread_dates(walk.dates, warmup=100, count=5)
    assert days == spread_dates(walk.dates, warmup=100, count=5)
    assert days[0] == walk.dates[100].astype(object) and days[-1] == walk.dates[-2].astype(object)
    assert len(days) == 5 and days == sorted(set(days))
    assert len(spread_dates(walk.dates, warmup=100, count=0)) == len(walk.dates) - 101
    assert spread_dates(walk.dates, warmup=10_000, count=3)[0] == walk.dates[0].astype(object)


def test_a_strategy_that_raises_is_an_error_not_a_pass(walk):
    class Broken(Honest):
        key = "broken"

        def generate_signals(self, prices, **context):
            if len(prices) < len(walk.dates):
                raise RuntimeError("needs the whole history")
            return super().generate_signals(prices)

    result = check_strategy(Broken(), walk, count=3)
    assert not result.ok and not result.peeks and result.status == "error"
    assert "needs the whole history" in result.error and result.line().startswith("ERROR: broken: vectorised (cut at")


# --- the command ---------------------------------------------------------------------------------------------

USER_PEEK = '''
"""A user's strategy that buys when tomorrow closes higher."""
from strategies.library.base import Strategy, on_bars, to_signal_series


class Tomorrow(Strategy):
    key = "user_tomorrow"
    name = "내일 오르면 매수"

    def generate_signals(self, prices, **context):
        bars = on_bars(prices)
        ahead = bars.shift(-1)
        return to_signal_series(ahead > bars, ahead < bars, prices.index)
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


@pytest.fixture
def stored_demo(db):
    store_demo_market(symbols=5, years=2, end=dt.date(2024, 12, 30), now=dt.datetime(2025, 1, 2, 18, tzinfo=SEOUL))


def run(*args: str) -> tuple[str, int]:
    out = io.StringIO()
    try:
        call_command("check_lookahead", *args, stdout=out)
    except CommandError as error:
        return out.getvalue(), error.returncode
    return out.getvalue(), 0


def test_the_command_passes_every_strategy_on_the_stored_demo_market(stored_demo):
    out, code = run("--dates", "5")
    lines = out.splitlines()
    assert code == 0, out
    assert lines[0].startswith("look-ahead check: stored bars (database), 5 codes, ")
    assert [line.split()[1] for line in lines[1:]] == list(all_strategies())
    assert all(line.startswith("OK: ") for line in lines[1:])


def test_the_command_names_a_user_strategy_that_peeks(stored_demo, user_folder):
    (user_folder / "user_tomorrow.py").write_text(USER_PEEK, encoding="utf-8")
    registry.discover(refresh=True)
    out, code = run("--dates", "4", "--json")
    payload = json.loads(out)
    assert code == 1 and not payload["ok"] and payload["lookahead"] == ["user_tomorrow"]
    by_key = {s["strategy"]: s for s in payload["strategies"]}
    assert set(by_key) == set(all_strategies()) and by_key["mean_reversion"]["status"] == "ok"
    codes = payload["codes"]
    data = load_market_data(codes, dt.date.fromisoformat(payload["first"]), dt.date.fromisoformat(payload["last"]))
    tested = [dt.date.fromisoformat(d) for d in by_key["user_tomorrow"]["dates"]]
    day, symbol, sign = first_bar_change_after(data, tested)
    assert by_key["user_tomorrow"]["first"] == {
        "path": "vectorised", "date": day.isoformat(), "symbol": symbol, "field": "signal", "cut": 0, "full": sign,
    }

    out, code = run("--strategy", "user_tomorrow", "--dates", "4")
    assert code == 1
    assert out.splitlines()[1] == (f"LOOK-AHEAD: user_tomorrow at {day.isoformat()} {symbol}: cut=0 full={sign} "
                                   "(signal, vectorised; also per_symbol)")


def test_the_command_on_real_bars(db):
    if not (KRX_DATA / "bars").is_dir():
        pytest.skip(f"no real KRX bars at {KRX_DATA} (set KRX_DATA_DIR)")
    out, code = run("--source", "real", "--strategy", "rsi", "--param", "period=10", "--codes", "005930,000660",
                    "--dates", "3")
    assert code == 0, out
    assert out.splitlines()[0].startswith("look-ahead check: real bars in ")
    assert out.splitlines()[1].startswith("OK: rsi (3 dates ")


def test_the_command_refuses_bad_input(db):
    with pytest.raises(CommandError, match="알 수 없는 전략"):
        call_command("check_lookahead", "--strategy", "nope", stdout=io.StringIO())
    with pytest.raises(CommandError, match="데모 시장이 없습니다"):
        call_command("check_lookahead", stdout=io.StringIO())
    with pytest.raises(CommandError, match="--param needs --strategy"):
        call_command("check_lookahead", "--param", "window=3", stdout=io.StringIO())
