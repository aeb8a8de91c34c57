"""The weekly backtester (strategies.backtest): a hand-computed scenario through both engines, the
exact cost arithmetic against market.krx, fill prices on tick, metrics and the data container.
No database."""

from __future__ import annotations

import json
import math
from datetime import date
from decimal import Decimal

import numpy as np
import pandas as pd
import pytest

from market.krx import commission_for, round_to_tick, sell_tax_for_trade, shift_ticks, trading_days
from strategies.backtest import BacktestConfig, MarketData, run_backtest
from strategies.backtest import engine as engine_module
from strategies.backtest.costs import FeeModel, fill_price, fill_prices, floor_times_rate
from strategies.backtest.metrics import benchmark_curve, curve_metrics
from strategies.backtest.result import week_starts
from strategies.library.base import Strategy

ENGINES = ("vectorised", "reference")


class Scripted(Strategy):
    """Signals and scores given as DataFrames (dates × codes); used by both engines."""

    key = "scripted"  # defined outside strategies.library: never registered

    def __init__(self, signals: pd.DataFrame, scores: pd.DataFrame | None = None, **params):
        super().__init__(params)
        self.script = signals.astype("int8")
        self.script_scores = scores if scores is not None else signals * 0.0

    def generate_signals_and_scores(self, prices, **context):
        sig = self.script[prices.name].reindex(prices.index).fillna(0).astype("int8")
        return sig, self.script_scores[prices.name].reindex(prices.index).astype(float)

    def generate_signals(self, prices, **context):
        return self.generate_signals_and_scores(prices)[0]

    def signals_and_scores(self, close, open=None, high=None, low=None):
        rows = len(close)  # the engines may cut the data at ``end``
        return self.script.to_numpy()[:rows], self.script_scores.to_numpy(dtype=float)[:rows]


# --- the hand-computed scenario --------------------------------------------------------------------
# Five weeks of real KRX days: 2024-02-09 (Fri) and 2024-02-12 (Mon) are holidays (설날), so week 3
# exits on Thursday and week 4 enters on Tuesday. Commission 0.015 %, tax 0.2 % (fixed for the run).

DAYS = [d for d in trading_days(date(2024, 1, 22), date(2024, 2, 23))]
CODES = ("000010", "000020", "000030", "000040")  # A, B, C, D
A, B, C, D = CODES


def scenario() -> tuple[MarketData, Scripted]:
    base = {A: 10_000, B: 20_000, C: 5_000, D: 50_000}
    idx = pd.DatetimeIndex(DAYS)
    close = pd.DataFrame({c: float(base[c]) for c in CODES}, index=idx)
    open_ = close.copy()

    def bar(code, day, o=None, c=None):
        if o is not None:
            open_.loc[pd.Timestamp(day), code] = o
        if c is not None:
            close.loc[pd.Timestamp(day), code] = c

    # Week 2: A bought at 10,000, sold on a sell signal Wednesday; B bought at 20,000, stop loss Tuesday.
    bar(A, "2024-01-29", 10_000, 10_100)
    bar(A, "2024-01-30", c=10_200)
    bar(A, "2024-01-31", c=10_300)
    bar(B, "2024-01-29", 20_000, 19_800)
    bar(B, "2024-01-30", c=18_900)  # −5.5 %
    # Week 3 (Mon–Thu): C take profit Tuesday (+12 %); D suspended on Thursday, the exit day.
    bar(C, "2024-02-05", 5_000, 5_100)
    bar(C, "2024-02-06", c=5_600)
    bar(D, "2024-02-05", 50_000, 50_500)
    bar(D, "2024-02-06", c=50_000)
    bar(D, "2024-02-07", c=49_000)
    # Week 4 (Tue–Fri): D still suspended on Tuesday, trades again Wednesday (sold there); A bought again.
    bar(A, "2024-02-13", 10_000, 10_050)
    bar(A, "2024-02-14", c=10_100)
    bar(A, "2024-02-15", c=10_150)
    bar(A, "2024-02-16", c=10_200)
    bar(D, "2024-02-14", 48_000, 48_000)
    for day in ("2024-02-08", "2024-02-13"):
        close.loc[pd.Timestamp(day), D] = np.nan
        open_.loc[pd.Timestamp(day), D] = np.nan
    signals = pd.DataFrame(0, index=idx, columns=list(CODES))
    scores = pd.DataFrame(0.0, index=idx, columns=list(CODES))

    def signal(day, code, value, score=0.0):
        signals.loc[pd.Timestamp(day), code] = value
        scores.loc[pd.Timestamp(day), code] = score

    # Friday of week 1: B (2) first, then A and C tie at 1: A wins on column order; max 2 positions.
    signal("2024-01-26", A, 1, 1.0)
    signal("2024-01-26", B, 1, 2.0)
    signal("2024-01-26", C, 1, 1.0)
    signal("2024-01-31", A, -1)
    signal("2024-02-02", C, 1, 1.0)
    signal("2024-02-02", D, 1, 1.0)
    # Thursday before week 4: one slot left (D is carried): A (5) beats B (3).
    signal("2024-02-08", A, 1, 5.0)
    signal("2024-02-08", B, 1, 3.0)
    data = MarketData(
        np.array(DAYS, dtype="datetime64[D]"), CODES, open_.to_numpy(), np.fmax(open_, close).to_numpy(),
        np.fmin(open_, close).to_numpy(), close.to_numpy(), markets=("KOSPI",) * 4,
    )
    return data, Scripted(signals, scores)


SCENARIO_CONFIG = BacktestConfig(initial_cash=1_000_000, max_positions=2, commission=0.00015, tax=0.002)

EXPECTED_TRADES = [
    # code, entry, entry price, exit, exit price, shares, fees (buy + sell), tax, reason
    (B, "2024-01-29", 20_000, "2024-01-30", 18_900, 24, 72 + 68, 907, "stop_loss"),
    (A, "2024-01-29", 10_000, "2024-01-31", 10_300, 49, 73 + 75, 1009, "signal"),
    (C, "2024-02-05", 5_000, "2024-02-06", 5_600, 98, 73 + 82, 1097, "take_profit"),
    (D, "2024-02-05", 50_000, "2024-02-14", 48_000, 9, 67 + 64, 864, "week_end"),
    (A, "2024-02-13", 10_000, "2024-02-16", 10_200, 59, 88 + 90, 1203, "week_end"),
]
EXPECTED_EQUITY = (
    [1_000_000] * 5
    + [999_955, 982_280, 986_096, 986_096, 986_096]
    + [1_000_256, 1_043_577, 1_034_577, 1_034_577]
    + [1_037_439, 1_030_461, 1_033_411, 1_035_068]
    + [1_035_068] * 5
)


@pytest.mark.parametrize("engine", ENGINES)
def test_hand_computed_scenario(engine):
    data, strategy = scenario()
    result = run_backtest(strategy, data, SCENARIO_CONFIG, engine=engine)
    got = [
        (r["code"], r["entry_date"], r["entry_price"], r["exit_date"], r["exit_price"], r["shares"], r["fees"],
         r["tax"], r["reason"])
        for r in result.trade_records()
    ]
    assert got == EXPECTED_TRADES
    assert result.equity.tolist() == EXPECTED_EQUITY
    assert [str(d.date()) for d in result.equity.index] == [str(d) for d in DAYS]
    m = result.metrics
    assert m["final"] == 1_035_068 and m["total_return"] == pytest.approx(0.035068)
    assert m["n_trades"] == 5 and m["win_rate"] == pytest.approx(3 / 5)
    assert m["reasons"] == {"signal": 1, "stop_loss": 1, "take_profit": 1, "week_end": 2}
    assert result.trades["pnl"].sum() == 35_068
    assert m["max_drawdown"] == pytest.approx(982_280 / 1_000_000 - 1)
    assert (m["max_drawdown_peak"], m["max_drawdown_trough"]) == ("2024-01-26", "2024-01-30")  # last high
    # Held on the days of weeks 2 (Mon–Wed), 3 and 4: 3 + 4 + 4 of 23 trading days.
    assert m["exposure"] == pytest.approx(11 / 23)
    assert result.open_positions.empty
    payload = json.loads(json.dumps(result.to_dict()))
    assert payload["trades"][0]["reason"] == "stop_loss" and payload["equity"][0] == ["2024-01-22", 1_000_000.0]


def test_sell_tax_by_market_and_date_when_not_overridden():
    data, strategy = scenario()
    config = BacktestConfig(initial_cash=1_000_000, max_positions=2, commission=0.00015)
    results = [run_backtest(strategy, data, config, engine=e) for e in ENGINES]
    pd.testing.assert_frame_equal(results[0].trades, results[1].trades)
    for row in results[0].trades.itertuples():
        amount = int(row.exit_price * row.shares)
        assert row.tax == sell_tax_for_trade(amount, "KOSPI", row.exit_date.date())
    assert results[0].trades["tax"].tolist()[0] == math.floor(24 * 18_900 * 0.0018)  # 0.03 % + 0.15 % in 2024


@pytest.mark.parametrize("engine", ENGINES)
def test_position_that_never_trades_again_stays_open(engine):
    data, strategy = scenario()
    cut = data.between(end=date(2024, 2, 8))  # D's last bar is on 2024-02-07
    result = run_backtest(strategy, cut, SCENARIO_CONFIG, engine=engine)
    assert result.trades["code"].tolist() == [B, A, C]
    assert result.open_positions[["code", "shares", "last_close"]].values.tolist() == [[D, 9, 49_000.0]]
    assert result.equity.iloc[-1] == 593_577 + 9 * 49_000


@pytest.mark.parametrize("engine", ENGINES)
def test_start_and_end_limit_the_traded_weeks(engine):
    data, strategy = scenario()
    config = BacktestConfig(initial_cash=1_000_000, max_positions=2, commission=0.00015, tax=0.002,
                            start=date(2024, 1, 31), end=date(2024, 2, 7))
    result = run_backtest(strategy, data, config, engine=engine)
    # Trading starts with the first week entering on/after 01-31 (02-05) and stops at 02-07's close,
    # which is then the last day of that week: D is sold there.
    assert str(result.equity.index[0].date()) == "2024-02-05" and str(result.equity.index[-1].date()) == "2024-02-07"
    assert result.trades[["code", "reason"]].values.tolist() == [[C, "take_profit"], [D, "week_end"]]
    assert result.open_positions.empty


def test_config_validation():
    with pytest.raises(ValueError):
        BacktestConfig(max_positions=0)
    with pytest.raises(ValueError):
        BacktestConfig(commission=-0.1)
    with pytest.raises(ValueError):
        BacktestConfig(initial_cash=1.5)
    with pytest.raises(ValueError):
        run_backtest(Scripted(pd.DataFrame()), scenario()[0], engine="fast")
    assert "Week = calendar week on the KRX calendar" in engine_module.__doc__


def test_weeks_follow_iso_weeks_of_the_index():
    days = np.array(["2024-12-30", "2025-01-02", "2025-01-03", "2025-01-31", "2025-02-03"], dtype="datetime64[D]")
    assert week_starts(days).tolist() == [0, 3, 4]  # 12-30..01-03 is one ISO week; 01-31 alone


# --- costs ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("rate", [None, 0.00015, "0.000140527", Decimal("0.0025"), 0])
def test_commission_matches_commission_for(rate):
    rng = np.random.default_rng(4)
    amounts = np.concatenate([rng.integers(0, 10**11, 3000), np.arange(0, 20_000), [10**7, 666_667, 10**12]])
    got = FeeModel.of(commission=rate).commission_on(amounts)
    assert got.tolist() == [commission_for(int(a), rate) for a in amounts]


def test_floor_times_rate_is_exact_with_huge_fractions():
    amounts = np.array([10**12, 123_456_789_012, 7])
    assert floor_times_rate(amounts, 1234567891, 10**18).tolist() == [a * 1234567891 // 10**18 for a in amounts.tolist()]


def test_tax_table_matches_sell_tax_for_trade():
    days = trading_days(date(2018, 12, 20), date(2026, 1, 10))
    dates = np.array(days, dtype="datetime64[D]")
    markets = ("KOSPI", "kosdaq", "KONEX", "KOSPI")
    nums, den, idx = FeeModel().tax_table(dates, markets)
    assert idx.tolist() == [2, 1, 0, 2]  # sorted names: KONEX, KOSDAQ, KOSPI
    amount = 987_654_321
    for t in range(0, len(days), 7):
        for j, market in enumerate(markets):
            assert amount * int(nums[t, idx[j]]) // den == sell_tax_for_trade(amount, market, days[t]), (days[t], market)
    # The 2025 cut applies to sells settled in 2025: 2024-12-27 is already at the new KOSPI rate.
    t = days.index(date(2024, 12, 27))
    assert Decimal(int(nums[t, 2])) / den == Decimal("0.0015")
    assert Decimal(int(nums[t - 1, 2])) / den == Decimal("0.0018")


def test_tax_table_refuses_a_non_trading_day():
    with pytest.raises(ValueError, match="not a KRX trading day"):
        FeeModel().tax_table(np.array(["2024-02-12"], dtype="datetime64[D]"), ("KOSPI",))
    nums, den, _ = FeeModel.of(tax=0.002).tax_table(np.array(["2024-02-12"], dtype="datetime64[D]"), ("KOSPI",))
    assert nums.tolist() == [[1]] and den == 500


def test_fill_prices_match_the_scalar_krx_rules():
    near = [p for start in (2_000, 5_000, 20_000, 50_000, 200_000, 500_000) for p in range(start - 12, start + 12)]
    prices = np.array(near + [1, 2, 3, 999, 1999.4, 1999.6, 20_030.2, 49_949.9, 123.5, 4_999.5], dtype=float)
    for side in ("buy", "sell"):
        for ticks in range(4):
            vector = fill_prices(prices, side, ticks).tolist()
            assert vector == [fill_price(float(p), side, ticks) for p in prices], (side, ticks)
    assert fill_price(20_000.0, "buy", 1) == shift_ticks(20_000, 1) == 20_050
    assert fill_price(20_000.0, "sell", 1) == 19_990
    assert fill_price(20_030.0, "buy", 1) == 20_100  # off the grid: up to 20,050 first, then a tick
    assert fill_price(20_030.0, "sell", 0) == 20_030  # a traded price is kept as is
    assert fill_price(20_030.2, "sell", 0) == round_to_tick(20_030, "nearest") == 20_050
    assert fill_price(1.0, "sell", 2) == 1


@pytest.mark.parametrize("engine", ENGINES)
def test_slippage_moves_both_fills_by_ticks(engine):
    data, strategy = scenario()
    config = BacktestConfig(initial_cash=1_000_000, max_positions=2, commission=0.00015, tax=0.002, slippage_ticks=2)
    trades = run_backtest(strategy, data, config, engine=engine).trades
    first = trades.iloc[0]
    assert (first["code"], first["entry_price"], first["exit_price"]) == (B, 20_100, 18_880)


# --- metrics ----------------------------------------------------------------------------------------


def test_curve_metrics_by_hand():
    dates = np.array(["2024-01-01", "2024-01-02", "2024-01-03", "2025-01-01"], dtype="datetime64[D]")
    equity = np.array([110.0, 99.0, 121.0, 121.0])
    m = curve_metrics(dates, equity, 100.0)
    daily = np.array([0.1, -0.1, 121 / 99 - 1, 0.0])
    assert m["total_return"] == pytest.approx(0.21)
    assert m["cagr"] == pytest.approx(1.21 ** (365.25 / 366) - 1)
    assert m["volatility"] == pytest.approx(np.std(daily, ddof=1) * math.sqrt(252))
    assert m["sharpe"] == pytest.approx(daily.mean() / np.std(daily, ddof=1) * math.sqrt(252))
    assert m["sortino"] == pytest.approx(daily.mean() / math.sqrt(np.mean(np.minimum(daily, 0) ** 2)) * math.sqrt(252))
    assert m["max_drawdown"] == pytest.approx(-0.1)
    assert (m["max_drawdown_peak"], m["max_drawdown_trough"]) == ("2024-01-01", "2024-01-02")
    flat = curve_metrics(dates, np.full(4, 100.0), 100.0)
    assert flat["max_drawdown"] == 0 and flat["max_drawdown_peak"] is None and flat["sharpe"] is None


def test_benchmark_is_equal_weight_buy_and_hold_with_last_close_for_missing_bars():
    open_ = np.array([[10.0, 20.0, np.nan], [11, 21, 5], [12, np.nan, 5], [13, 22, 5]])
    close = np.array([[10.0, 20.0, np.nan], [12, 22, 5], [12, np.nan, 6], [14, 24, 7]])
    value = benchmark_curve(open_, close, 0, 3, 1000.0)
    # 500 in each of the two symbols with a bar on day 0 (50 and 25 units); the third is not bought.
    np.testing.assert_allclose(value, [1000, 50 * 12 + 25 * 22, 50 * 12 + 25 * 22, 50 * 14 + 25 * 24])


# --- data -------------------------------------------------------------------------------------------


def test_market_data_constructors_agree():
    bars = {
        "000020": pd.DataFrame({"date": ["2024-01-02", "2024-01-03"], "open": [10, 11], "high": [12, 12],
                                "low": [9, 10], "close": [11, 12]}),
        "000010": pd.DataFrame({"date": ["2024-01-03", "2024-01-04"], "open": [5, 6], "high": [6, 7],
                                "low": [4, 5], "close": [6, 7]}),
    }
    data = MarketData.from_bars(bars, markets={"000010": "kosdaq"})
    assert data.codes == ("000010", "000020") and data.markets == ("KOSDAQ", "KOSPI")
    assert data.shape == (3, 2) and data.valid.tolist() == [[False, True], [True, True], [True, False]]
    long = pd.concat([b.assign(code=c) for c, b in bars.items()])
    other = MarketData.from_frame(long, markets={"000010": "KOSDAQ"})
    np.testing.assert_array_equal(other.close, data.close)
    assert other.codes == data.codes
    assert data.symbol_bars("000010")["close"].tolist() == [6.0, 7.0]
    assert data.select(["000020"]).shape == (2, 1)
    assert data.between(start="2024-01-03").shape == (2, 2)


def test_bars_without_a_positive_open_and_close_are_missing():
    data = MarketData.from_matrices(
        ["2024-01-02", "2024-01-03"], ["X"], open=[[0.0], [10.0]], close=[[10.0], [np.nan]]
    )
    assert not data.valid.any() and np.isnan(data.close).all()
    with pytest.raises(ValueError, match="increasing"):
        MarketData.from_matrices(["2024-01-03", "2024-01-02"], ["X"], open=[[1.0], [1.0]], close=[[1.0], [1.0]])
