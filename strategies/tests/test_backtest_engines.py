"""The vectorised engine against the per-symbol reference implementation of the same weekly rules:
exactly the same trades and the same equity (1e-9 relative) on synthetic markets with suspensions,
listings and delistings mid-period, holiday weeks (Monday and Friday holidays, one-day weeks, the
year end), stop-loss and take-profit hits and ties in the ranking. No database."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import numpy as np
import pandas as pd
import pytest

from strategies.backtest import BacktestConfig, MarketData, run_backtest
from strategies.backtest.synthetic import demo_market, krx_days, random_walk_market
from strategies.backtest.universe import top_n_mask
from strategies.library import get_strategy

# 2023-06 .. 2025-03 holds 설날 2024 (Friday 02-09 and Monday 02-12 closed), the year ends, the
# one-day week of 2025-01-31 and the KOSPI/KOSDAQ tax cut of 2025.
DAYS = krx_days(440, end=date(2025, 3, 31))


def assert_same(strategy, data, config):
    vec = run_backtest(strategy, data, config, engine="vectorised")
    ref = run_backtest(strategy, data, config, engine="reference")
    pd.testing.assert_frame_equal(vec.trades, ref.trades)
    pd.testing.assert_index_equal(vec.equity.index, ref.equity.index)
    np.testing.assert_allclose(vec.equity.to_numpy(), ref.equity.to_numpy(), rtol=1e-9, atol=0)
    pd.testing.assert_frame_equal(vec.open_positions, ref.open_positions)
    assert vec.metrics.keys() == ref.metrics.keys()
    return vec


@pytest.fixture(scope="module")
def market() -> MarketData:
    data = random_walk_market(60, DAYS, seed=11, listed_late=0.25, delisted=0.1, suspended=0.4)
    assert (~data.valid).any(axis=0).sum() > 20  # many symbols with missing bars
    return data


def test_the_period_has_the_holiday_weeks():
    weeks: dict[tuple[int, int], list[str]] = {}
    for day in DAYS:
        weeks.setdefault(day.isocalendar()[:2], []).append(str(day))
    by_first = {days[0]: days for days in weeks.values()}
    assert by_first["2024-02-05"][-1] == "2024-02-08"  # Friday holiday: exit on Thursday
    assert "2024-02-13" in by_first  # Monday holiday: entry on Tuesday
    assert by_first["2025-01-31"] == ["2025-01-31"]  # one-day week
    assert by_first["2024-12-30"] == ["2024-12-30", "2025-01-02", "2025-01-03"]


MEAN_REVERSION_CONFIGS = [
    BacktestConfig(max_positions=5),
    BacktestConfig(max_positions=10, slippage_ticks=2),
    BacktestConfig(max_positions=1, commission=0.00015, tax=0.002),
    BacktestConfig(initial_cash=3_000_000, max_positions=3, start=date(2024, 1, 1), end=date(2025, 1, 31)),
]


@pytest.mark.parametrize("config", MEAN_REVERSION_CONFIGS, ids=["5", "10-slippage", "1-fixed-rates", "start-end"])
def test_mean_reversion_engines_agree(market, config):
    strategy = get_strategy("mean_reversion")(window=10, z_threshold=1.5, stop_loss=-0.03, take_profit=0.04)
    result = assert_same(strategy, market, config)
    assert len(result.trades) > 30


def test_every_exit_reason_and_the_holiday_weeks_are_exercised(market):
    strategy = get_strategy("mean_reversion")(window=10, z_threshold=1.5, stop_loss=-0.03, take_profit=0.04)
    result = assert_same(strategy, market, BacktestConfig(max_positions=10))
    trades = result.trades
    assert set(trades["reason"]) == {"stop_loss", "take_profit", "signal", "week_end"}
    entries = set(trades["entry_date"].dt.date.astype(str))
    exits = set(trades["exit_date"].dt.date.astype(str))
    assert "2024-02-13" in entries  # Monday holiday
    assert "2025-01-31" in entries and "2025-01-31" in exits  # one-day week
    assert "2024-02-08" in exits  # Friday holiday
    # A position suspended on its exit day is sold at its next close, in a later week.
    monday = trades["entry_date"] - pd.to_timedelta(trades["entry_date"].dt.day_of_week, unit="D")
    assert ((trades["exit_date"] - monday).dt.days > 6).any()


@pytest.mark.parametrize(
    ("key", "params"),
    [
        ("ma_crossover", {"short_window": 3, "long_window": 8, "mode": "trend"}),
        ("rsi", {"period": 5, "oversold": 35, "overbought": 65}),
        ("bollinger", {"window": 10, "num_std": 1.5}),
        ("momentum_12_1", {"lookback": 40, "skip": 5, "top_n": 8}),
        ("dual_momentum", {"lookback": 30, "top_n": 6}),
        ("volatility_breakout", {"k": 0.4, "ma_window": 5}),
    ],
)
def test_other_strategies_engines_agree(market, key, params):
    strategy = get_strategy(key)(params)
    result = assert_same(strategy, market, BacktestConfig(max_positions=4, slippage_ticks=1))
    assert len(result.trades) > 20


def test_ties_in_the_ranking_go_to_the_first_column(market):
    """Identical price series under several codes: their scores tie exactly."""
    cols = [0, 1, 2, 3]
    copies = {name: np.repeat(getattr(market, name)[:, cols], 3, axis=1) for name in ("open", "high", "low", "close")}
    codes = tuple(f"{100000 + i:06d}" for i in range(len(cols) * 3))
    data = MarketData(market.dates, codes, copies["open"], copies["high"], copies["low"], copies["close"])
    strategy = get_strategy("mean_reversion")(window=10, z_threshold=1.2)
    result = assert_same(strategy, data, BacktestConfig(max_positions=2))
    assert len(result.trades) > 10
    # Of three identical symbols only the first column is ever bought when one slot is left for them.
    bought = set(result.trades["code"])
    for k in range(len(cols)):
        first, second, third = codes[3 * k : 3 * k + 3]
        if second in bought or third in bought:
            assert first in bought


def test_non_integral_prices_are_filled_on_tick(market):
    """Adjusted (non-integer) prices: fills are rounded to the grid, equally in both engines."""
    data = MarketData(market.dates, market.codes, market.open * 0.9731, market.high * 0.9731,
                      market.low * 0.9731, market.close * 0.9731, markets=market.markets)
    strategy = get_strategy("mean_reversion")(window=10, z_threshold=1.5)
    result = assert_same(strategy, data, BacktestConfig(max_positions=5, slippage_ticks=1))
    assert len(result.trades) > 10


def test_market_demo_data_engines_agree():
    data = demo_market(25, krx_days(300, end=date(2025, 2, 28)))
    strategy = get_strategy("mean_reversion")()
    result = assert_same(strategy, data, BacktestConfig(max_positions=5))
    assert len(result.trades) > 10
    assert result.benchmark["start"] == result.metrics["start"]


def test_whole_weeks_of_suspension_and_an_empty_universe_day(market):
    data = market.select(market.codes[:10])
    close = data.close.copy()
    close[100:112, :5] = np.nan  # more than two weeks without bars for half the universe
    open_ = np.where(np.isnan(close), np.nan, data.open)
    shaken = MarketData(data.dates, data.codes, open_, data.high, data.low, close, markets=data.markets)
    strategy = get_strategy("mean_reversion")(window=5, z_threshold=1.0)
    assert_same(strategy, shaken, BacktestConfig(max_positions=3))


@pytest.mark.parametrize(
    "config",
    [MEAN_REVERSION_CONFIGS[0], MEAN_REVERSION_CONFIGS[3], BacktestConfig(max_positions=4, cash_per_week=2_000_000)],
    ids=["5", "start-end", "cash-per-week"],
)
def test_compiled_weekly_loop_equals_the_numpy_loop(market, config, monkeypatch):
    """The compiled loop (strategies.backtest.kernels) and the numpy loop give the same trades, equity
    and open positions."""
    import strategies.backtest.engine as engine

    calls = []
    compiled_loop = engine.weekly_loop
    monkeypatch.setattr(engine, "weekly_loop", lambda *a: calls.append(1) or compiled_loop(*a))
    strategy = get_strategy("mean_reversion")(window=10, z_threshold=1.5)
    compiled = run_backtest(strategy, market, config, engine="vectorised")
    assert calls, "the compiled loop should run"
    monkeypatch.setattr(engine, "weekly_loop", lambda *a: (False, None, None, 0, None, 0))
    numpy_loop = run_backtest(strategy, market, config, engine="vectorised")
    pd.testing.assert_frame_equal(compiled.trades, numpy_loop.trades)
    np.testing.assert_allclose(compiled.equity.to_numpy(), numpy_loop.equity.to_numpy(), rtol=1e-12, atol=0)
    pd.testing.assert_frame_equal(compiled.open_positions, numpy_loop.open_positions)
    assert len(compiled.trades) > 30


def test_fractional_prices_and_slippage_run_the_compiled_loop(market, monkeypatch):
    """The fill plan hands the compiled loop whole prices on tick for any data and slippage: it no
    longer declines adjusted prices, and gives the reference engine's trades."""
    import strategies.backtest.engine as engine

    answers = []
    compiled_loop = engine.weekly_loop
    monkeypatch.setattr(engine, "weekly_loop", lambda *a: answers.append(compiled_loop(*a)[0]) or compiled_loop(*a))
    data = MarketData(market.dates, market.codes, market.open * 0.9731, market.high * 0.9731,
                      market.low * 0.9731, market.close * 0.9731, markets=market.markets)
    strategy = get_strategy("mean_reversion")(window=10, z_threshold=1.5)
    result = assert_same(strategy, data, BacktestConfig(max_positions=5, slippage_ticks=2))
    assert answers == [True]
    assert len(result.trades) > 10


def test_rates_too_fine_for_int64_fall_back_to_the_numpy_loop(market, monkeypatch):
    import strategies.backtest.engine as engine

    calls = []
    monkeypatch.setattr(engine, "weekly_loop", lambda *a: calls.append(1))
    strategy = get_strategy("mean_reversion")(window=10, z_threshold=1.5)
    fine = Decimal("0.000150000000000000000001")  # numerator × denominator beyond 2**62
    result = assert_same(strategy, market, BacktestConfig(max_positions=5, commission=fine))
    assert calls == [] and len(result.trades) > 10


# --- participation cap, small-cap spread, point-in-time universe -------------------------------------


@pytest.fixture(scope="module")
def market_with_volume(market) -> MarketData:
    """The market with volumes: a fifth of the symbols trade well under a billion won a day."""
    rng = np.random.default_rng(4)
    shares_per_day = np.exp(rng.uniform(np.log(20), np.log(300_000), market.shape[1]))
    volume = np.round(shares_per_day * rng.uniform(0.2, 1.8, market.shape))
    traded = np.where(market.valid, market.close * volume, np.nan)
    data = MarketData(market.dates, market.codes, market.open, market.high, market.low, market.close,
                      markets=market.markets, volume=volume, universe=top_n_mask(traded, 25))
    small = np.nansum(traded, axis=0) < 1_000_000_000 * np.maximum(market.valid.sum(axis=0), 1)
    assert 5 < small.sum() < 55
    return data


COST_CONFIGS = [
    BacktestConfig(max_positions=5, participation_cap=Decimal("0.002")),
    BacktestConfig(max_positions=8, slippage_ticks=1, spread_ticks=2),
    BacktestConfig(max_positions=6, participation_cap=0.01, spread_ticks=1, small_cap_value=3_000_000_000,
                   cash_per_week=4_000_000, start=date(2024, 1, 1)),
]
COST_IDS = ["cap", "spread", "cap-spread-cash"]


@pytest.mark.parametrize("universe", [False, True], ids=["all", "top25"])
@pytest.mark.parametrize("config", COST_CONFIGS, ids=COST_IDS)
def test_costs_and_universe_engines_agree(market_with_volume, config, universe, monkeypatch):
    """Reference == compiled loop == numpy loop with the cap, the spread and the universe on."""
    import strategies.backtest.engine as engine

    data = market_with_volume if universe else market_with_volume.with_universe(None)
    strategy = get_strategy("mean_reversion")(window=10, z_threshold=1.5, stop_loss=-0.03, take_profit=0.04)
    calls = []
    compiled_loop = engine.weekly_loop
    monkeypatch.setattr(engine, "weekly_loop", lambda *a: calls.append(1) or compiled_loop(*a))
    compiled = assert_same(strategy, data, config)
    assert calls, "the compiled loop should run"
    monkeypatch.setattr(engine, "weekly_loop", lambda *a: (False, None, None, 0, None, 0))
    numpy_loop = run_backtest(strategy, data, config, engine="vectorised")
    pd.testing.assert_frame_equal(compiled.trades, numpy_loop.trades)
    np.testing.assert_allclose(compiled.equity.to_numpy(), numpy_loop.equity.to_numpy(), rtol=1e-12, atol=0)
    pd.testing.assert_frame_equal(compiled.open_positions, numpy_loop.open_positions)
    assert len(compiled.trades) > 30
    if universe:  # every buy was in the universe on its signal day
        rows = data.index.get_indexer(compiled.trades["entry_date"]) - 1
        cols = [data.codes.index(c) for c in compiled.trades["code"]]
        assert data.universe[rows, cols].all()


def test_the_cap_and_the_spread_change_the_result(market_with_volume):
    strategy = get_strategy("mean_reversion")(window=10, z_threshold=1.5, stop_loss=-0.03, take_profit=0.04)
    data = market_with_volume.with_universe(None)
    plain = run_backtest(strategy, data, BacktestConfig(max_positions=5))
    # The defaults ignore the volume: the same run as on the bars without it.
    np.testing.assert_array_equal(
        run_backtest(strategy, MarketData(market_with_volume.dates, market_with_volume.codes, market_with_volume.open,
                                          market_with_volume.high, market_with_volume.low, market_with_volume.close,
                                          markets=market_with_volume.markets), BacktestConfig(max_positions=5))
        .equity.to_numpy(), plain.equity.to_numpy())
    capped = run_backtest(strategy, data, BacktestConfig(max_positions=5, participation_cap=Decimal("0.002")))
    assert capped.trades["shares"].sum() < plain.trades["shares"].sum()
    spread = run_backtest(strategy, data, BacktestConfig(max_positions=5, spread_ticks=3))
    assert spread.equity.iloc[-1] < plain.equity.iloc[-1]
