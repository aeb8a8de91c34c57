"""Costs beyond commission and tax (strategies.backtest.costs): the participation cap against the
entry day's volume and the small-cap spread, in the fill plan and in both engines. No database."""

from __future__ import annotations

from decimal import Decimal

import numpy as np
import pandas as pd
import pytest

from market.krx import shift_ticks
from strategies.backtest import BacktestConfig, MarketData, run_backtest
from strategies.backtest.costs import (
    FillPlan,
    buy_cap,
    fill_price,
    fill_price_matrices,
    fill_prices,
    is_small_cap,
    small_cap_matrix,
)
from strategies.tests.test_backtest import CODES, DAYS, ENGINES, EXPECTED_TRADES, SCENARIO_CONFIG, A, B, scenario


def with_volume(data: MarketData, volume) -> MarketData:
    return MarketData(data.dates, data.codes, data.open, data.high, data.low, data.close, markets=data.markets,
                      volume=np.broadcast_to(np.asarray(volume, dtype=float), data.shape))


def test_per_price_ticks_match_the_scalar_rules():
    rng = np.random.default_rng(5)
    prices = np.concatenate([rng.uniform(1, 600_000, 300), rng.integers(1, 600_000, 300).astype(float), [1.0, 2.0]])
    ticks = rng.integers(0, 5, prices.size)
    for side in ("buy", "sell"):
        vector = fill_prices(prices, side, ticks).tolist()
        assert vector == [fill_price(float(p), side, int(k)) for p, k in zip(prices, ticks, strict=True)]


def test_small_cap_matrix_matches_the_scalar_test_and_looks_back_twenty_rows():
    rng = np.random.default_rng(8)
    close = rng.integers(1_000, 50_000, (60, 6)).astype(float)
    close[rng.random(close.shape) < 0.1] = np.nan
    volume = rng.integers(0, 60_000, (60, 6)).astype(float)
    small = small_cap_matrix(close, volume, 1_000_000_000)
    assert small.any() and not small.all()
    for r in range(60):
        for j in range(6):
            assert small[r, j] == is_small_cap(close, volume, r, j, 1_000_000_000), (r, j)
    # Only the 20 rows before count: a huge day 21 rows back no longer helps, the fill day never does.
    close, volume = np.full((30, 1), 1_000.0), np.full((30, 1), 10.0)
    volume[5] = 1e9
    small = small_cap_matrix(close, volume, 1_000_000)
    assert not small[6:26, 0].any() and small[26:, 0].all() and small[1:6, 0].all()
    assert not small[0, 0]  # no row before the data's first: never a small cap


def test_defaults_leave_fills_as_they_were_and_need_no_volume():
    data, _ = scenario()
    plan = fill_price_matrices(data, BacktestConfig(slippage_ticks=2))
    assert isinstance(plan, FillPlan) and plan.buy_cap is None
    v = data.valid
    np.testing.assert_array_equal(plan.buy[v], fill_prices(data.open[v], "buy", 2))
    np.testing.assert_array_equal(plan.sell[v], fill_prices(data.close[v], "sell", 2))
    assert (plan.buy[~v] == 0).all() and (plan.sell[~v] == 0).all()
    for config in (BacktestConfig(participation_cap=0.1), BacktestConfig(spread_ticks=1)):
        with pytest.raises(ValueError, match="need the data's volume"):
            fill_price_matrices(data, config)


def test_the_spread_applies_to_small_caps_only():
    data, _ = scenario()
    # A and B trade 10 billion won a day; C and D about 100 million (below the 1 billion default).
    volume = np.array([1_000_000, 500_000, 20_000, 2_000], dtype=float)
    data = with_volume(data, volume)
    base = fill_price_matrices(data, BacktestConfig(slippage_ticks=1))
    plan = fill_price_matrices(data, BacktestConfig(slippage_ticks=1, spread_ticks=2))
    rows = np.arange(1, len(DAYS))
    big, small = [0, 1], [2, 3]
    for r in rows:
        for j in big:
            if data.valid[r, j]:
                assert (plan.buy[r, j], plan.sell[r, j]) == (base.buy[r, j], base.sell[r, j])
        for j in small:
            if data.valid[r, j]:
                assert plan.buy[r, j] == shift_ticks(int(base.buy[r, j]), 2)
                assert plan.sell[r, j] == shift_ticks(int(base.sell[r, j]), -2)
    # The threshold decides: with 50 million won a day nothing here is small.
    lower = fill_price_matrices(data, BacktestConfig(slippage_ticks=1, spread_ticks=2, small_cap_value=50_000_000))
    np.testing.assert_array_equal(lower.buy, base.buy)
    np.testing.assert_array_equal(lower.sell, base.sell)


@pytest.mark.parametrize("engine", ENGINES)
def test_spread_moves_small_cap_trades_in_both_engines(engine):
    data, strategy = scenario()
    data = with_volume(data, [1_000_000, 500_000, 20_000, 2_000])
    plain = run_backtest(strategy, data, SCENARIO_CONFIG, engine=engine).trades
    spread = run_backtest(strategy, data, BacktestConfig(**{**SCENARIO_CONFIG.__dict__, "spread_ticks": 1}),
                          engine=engine).trades
    for (_, was), (_, now) in zip(plain.iterrows(), spread.iterrows(), strict=True):
        if now["code"] in CODES[2:]:  # C and D: a tick worse each way (5 won at 5,000, 50 at 50,000)
            assert now["entry_price"] == shift_ticks(int(was["entry_price"]), 1)
            assert now["exit_price"] == shift_ticks(int(was["exit_price"]), -1)
        else:
            assert (now["entry_price"], now["exit_price"]) == (was["entry_price"], was["exit_price"])


@pytest.mark.parametrize("engine", ENGINES)
def test_a_binding_participation_cap_buys_fewer_shares(engine):
    data, strategy = scenario()
    data = with_volume(data, 1_000)
    config = BacktestConfig(**{**SCENARIO_CONFIG.__dict__, "participation_cap": Decimal("0.012")})
    trades = run_backtest(strategy, data, config, engine=engine).trades
    expected_uncapped = {(t[0], t[1]): t[5] for t in EXPECTED_TRADES}
    got = {(row.code, str(row.entry_date.date())): row.shares for row in trades.itertuples()}
    assert got.keys() == expected_uncapped.keys()
    for key, shares in got.items():
        assert shares == min(expected_uncapped[key], 12)  # floor(0.012 × 1,000)
    assert got[(B, "2024-01-29")] == 12 < expected_uncapped[(B, "2024-01-29")]
    # A cap that does not bind changes nothing; a day without volume buys nothing.
    loose = run_backtest(strategy, data, BacktestConfig(**{**SCENARIO_CONFIG.__dict__, "participation_cap": 1}),
                         engine=engine).trades
    assert loose["shares"].tolist() == [t[5] for t in EXPECTED_TRADES]
    volume = np.full(data.shape, 1_000.0)
    volume[DAYS.index(pd.Timestamp("2024-01-29").date()), CODES.index(A)] = 0
    none = run_backtest(strategy, with_volume(data, volume), config, engine=engine).trades
    assert (A, pd.Timestamp("2024-01-29")) not in set(zip(none["code"], none["entry_date"], strict=True))


def test_sells_are_never_capped():
    data, strategy = scenario()
    data = with_volume(data, 1_000)
    volume = np.full(data.shape, 1_000.0)
    volume[DAYS.index(pd.Timestamp("2024-01-30").date()):, :] = 1  # almost nothing trades after the buys
    config = BacktestConfig(**{**SCENARIO_CONFIG.__dict__, "participation_cap": 0.012})
    trades = run_backtest(strategy, with_volume(data, volume), config).trades
    first = trades[trades["entry_date"] == pd.Timestamp("2024-01-29")]
    assert first["shares"].tolist() == [12, 12]  # sold whole although the exit days traded one share


def test_buy_cap_is_exact():
    assert buy_cap(999.0, Decimal("0.05")) == 49
    assert buy_cap(1_000.0, Decimal("0.05")) == 50
    assert buy_cap(float("nan"), Decimal("0.5")) == 0
    data = MarketData.from_matrices(DAYS[:3], ["000010"], open=[[100.0]] * 3, close=[[100.0]] * 3,
                                    volume=[[7.0], [40.0], [np.nan]])
    plan = fill_price_matrices(data, BacktestConfig(participation_cap=0.05))
    assert plan.buy_cap[:, 0].tolist() == [0, 2, 0]


def test_config_validates_and_reports_the_new_settings():
    config = BacktestConfig(participation_cap=Decimal("0.05"), spread_ticks=2, small_cap_value=500_000_000)
    as_dict = config.as_dict()
    assert (as_dict["participation_cap"], as_dict["spread_ticks"], as_dict["small_cap_value"]) == (
        "0.05", 2, 500_000_000)
    assert BacktestConfig().as_dict()["participation_cap"] is None
    for bad in ({"participation_cap": 0}, {"participation_cap": 1.5}, {"participation_cap": "x"},
                {"participation_cap": True}, {"spread_ticks": -1}, {"spread_ticks": 1.0},
                {"small_cap_value": -1}, {"small_cap_value": None}):
        with pytest.raises(ValueError):
            BacktestConfig(**bad)
