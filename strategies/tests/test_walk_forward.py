"""Walk-forward analysis on hand-made sweeps (strategies.research.walk_forward, pure)."""

import datetime as dt
import json

import numpy as np
import pytest

from strategies.backtest.metrics import curve_metrics
from strategies.research.sweep import SweepResult
from strategies.research.walk_forward import (
    best_set,
    daily_returns,
    objective_values,
    walk_forward,
    week_numbers,
    window_bounds,
)

CASH = 10_000_000


def weekdays(first: dt.date, weeks: int) -> np.ndarray:
    """Monday to Friday of `weeks` consecutive weeks from the Monday `first`."""
    assert first.weekday() == 0
    days = [first + dt.timedelta(weeks=w, days=d) for w in range(weeks) for d in range(5)]
    return np.array(days, dtype="datetime64[D]")


def sweep(returns: np.ndarray, dates: np.ndarray, values=None) -> SweepResult:
    """A SweepResult whose set s has the daily returns returns[s] (the first against the cash)."""
    returns = np.asarray(returns, dtype=float)
    values = values if values is not None else list(range(10, 10 + 10 * len(returns), 10))
    return SweepResult(
        strategy_key="mean_reversion", names=("window",),
        param_sets=[{"window": v, "z_threshold": 2.0} for v in values],
        dates=dates, equity=CASH * np.cumprod(1 + returns, axis=1), initial_cash=CASH,
    )


def weekly_pattern(weekly_rates: list[list[float]], noise: float = 0.0, seed: int = 1) -> np.ndarray:
    """(sets, 5 · weeks): set s earns weekly_rates[s][w] each day of week w (+ optional noise)."""
    rates = np.repeat(np.asarray(weekly_rates, dtype=float), 5, axis=1)
    if noise:
        rates = rates + np.random.default_rng(seed).normal(0, noise, rates.shape)
    return rates


def test_weeks_are_iso_calendar_weeks_with_a_trading_day():
    days = np.array(["2025-12-29", "2025-12-31", "2026-01-02",  # ISO week 2026-W01 (Mon 12-29)
                     "2026-01-05",  # W02
                     "2026-01-19", "2026-01-23"],  # W04 (W03 has no day: not counted)
                    dtype="datetime64[D]")
    assert week_numbers(days).tolist() == [0, 0, 0, 1, 2, 2]


def test_rolling_and_anchored_windows():
    assert window_bounds(10, 4, 2, anchored=False) == [(0, 4, 6), (2, 6, 8), (4, 8, 10)]
    assert window_bounds(10, 4, 2, anchored=True) == [(0, 4, 6), (0, 6, 8), (0, 8, 10)]
    # the last OOS window is cut at the last week
    assert window_bounds(11, 4, 3, anchored=False) == [(0, 4, 7), (3, 7, 10), (6, 10, 11)]
    assert window_bounds(5, 4, 2, anchored=False) == [(0, 4, 5)]


def test_the_best_in_sample_set_is_chosen_and_trades_the_next_weeks():
    # 12 weeks; set 0 wins weeks 0-5, set 1 wins weeks 6-11; set 2 always loses a little.
    rates = [[0.002] * 6 + [-0.001] * 6, [-0.001] * 6 + [0.003] * 6, [-0.0005] * 12]
    dates = weekdays(dt.date(2026, 1, 5), 12)
    result = walk_forward(sweep(weekly_pattern(rates), dates), 4, 2, objective="total_return")
    # IS weeks 0-3 and 2-5 → set 0; weeks 4-7 (set 0: +0.2% then −0.1%, set 1: −0.1% then +0.3%) and 6-9 → set 1
    assert [w.set_index for w in result.windows] == [0, 0, 1, 1]
    assert [w.params for w in result.windows] == [{"window": 10}] * 2 + [{"window": 20}] * 2
    first = result.windows[0]
    assert (first.in_sample_start, first.in_sample_end) == ("2026-01-05", "2026-01-30")
    assert (first.out_of_sample_start, first.out_of_sample_end) == ("2026-02-02", "2026-02-13")
    assert first.in_sample_return == pytest.approx(1.002 ** 20 - 1)
    assert first.out_of_sample_return == pytest.approx(1.002 ** 10 - 1)
    third = result.windows[2]  # set 1 over weeks 8-9
    assert third.out_of_sample_return == pytest.approx(1.003 ** 10 - 1)
    assert result.summary["windows"] == 4 and result.summary["choice_changes"] == 1
    assert result.summary["choice_change_rate"] == pytest.approx(1 / 3)


def test_ties_go_to_the_lowest_set_and_undefined_ranks_last():
    assert best_set(np.array([1.0, 3.0, 3.0])) == 1
    assert best_set(np.array([np.nan, -5.0, np.nan])) == 1
    assert best_set(np.array([np.nan, np.nan])) == 0
    assert best_set(np.array([np.nan, np.inf, 2.0])) == 1
    # two identical sets: the first one is chosen in every window
    rates = weekly_pattern([[0.001] * 8, [0.001] * 8], noise=0.002)
    rates[1] = rates[0]
    result = walk_forward(sweep(rates, weekdays(dt.date(2026, 1, 5), 8)), 4, 2)
    assert {w.set_index for w in result.windows} == {0}
    # a flat set has no Sharpe (zero variance): it is never chosen over a defined one, even a poor one
    flat_vs_poor = np.vstack([np.zeros(40), weekly_pattern([[-0.001] * 8], noise=0.002)[0]])
    result = walk_forward(sweep(flat_vs_poor, weekdays(dt.date(2026, 1, 5), 8)), 4, 2, objective="sharpe")
    assert {w.set_index for w in result.windows} == {1}


def test_anchored_in_sample_grows_from_the_first_week():
    rates = weekly_pattern([[0.001] * 10, [0.0005] * 10], noise=0.001)
    dates = weekdays(dt.date(2026, 3, 2), 10)
    rolling = walk_forward(sweep(rates, dates), 4, 2)
    anchored = walk_forward(sweep(rates, dates), 4, 2, anchored=True)
    assert [w.in_sample_start for w in rolling.windows] == ["2026-03-02", "2026-03-16", "2026-03-30"]
    assert [w.in_sample_start for w in anchored.windows] == ["2026-03-02"] * 3
    assert [w.in_sample_weeks for w in anchored.windows] == [4, 6, 8]
    assert [w.in_sample_weeks for w in rolling.windows] == [4, 4, 4]
    # the OOS windows are the same either way
    assert [w.out_of_sample_start for w in rolling.windows] == [w.out_of_sample_start for w in anchored.windows]
    assert anchored.anchored and not rolling.anchored


def test_anchored_remembers_the_past_where_rolling_forgets():
    # set 0 earned a lot in weeks 0-3, then slightly less than set 1 each later week
    rates = [[0.01] * 4 + [0.001] * 6, [0.0] * 4 + [0.002] * 6]
    dates = weekdays(dt.date(2026, 3, 2), 10)
    rolling = walk_forward(sweep(weekly_pattern(rates), dates), 4, 2, objective="total_return")
    anchored = walk_forward(sweep(weekly_pattern(rates), dates), 4, 2, objective="total_return", anchored=True)
    assert [w.set_index for w in rolling.windows] == [0, 0, 1]  # IS weeks 4-7 forget weeks 0-3
    assert [w.set_index for w in anchored.windows] == [0, 0, 0]


def test_the_stitched_curve_is_the_product_of_the_chosen_sets_returns():
    rates = weekly_pattern([[0.002, -0.001] * 6, [-0.001, 0.003] * 6, [0.0005] * 12], noise=0.003, seed=7)
    dates = weekdays(dt.date(2026, 1, 5), 12)
    data = sweep(rates, dates)
    result = walk_forward(data, 3, 2)
    returns = daily_returns(data)
    np.testing.assert_allclose(returns, rates, rtol=1e-9, atol=1e-12)
    expected = []
    for window in result.windows:
        rows = (dates >= np.datetime64(window.out_of_sample_start)) & (dates <= np.datetime64(window.out_of_sample_end))
        expected.extend(returns[window.set_index, rows])
        assert window.out_of_sample_return == pytest.approx(np.prod(1 + returns[window.set_index, rows]) - 1)
    np.testing.assert_allclose(result.equity, CASH * np.cumprod(1 + np.array(expected)))
    # OOS days: from the first OOS day (week 3) to the last day, each once, in order
    assert result.dates[0] == dates[15] and result.dates[-1] == dates[-1] and len(result.dates) == len(dates) - 15
    assert result.summary["total_return"] == pytest.approx(np.prod([1 + w.out_of_sample_return for w in result.windows]) - 1)
    metrics = curve_metrics(result.dates, result.equity, CASH)
    for name in ("total_return", "cagr", "sharpe", "max_drawdown"):
        assert result.summary[name] == pytest.approx(metrics[name])


def test_the_gap_and_the_efficiency():
    # whichever set wins the IS loses in the OOS that follows: a positive gap, a poor efficiency
    rates = [[0.003, 0.003, -0.002, -0.002] * 3, [-0.002, -0.002, 0.003, 0.003] * 3]
    data = sweep(weekly_pattern(rates, noise=0.0005), weekdays(dt.date(2026, 1, 5), 12))
    result = walk_forward(data, 2, 2, objective="total_return")
    summary = result.summary
    assert all(w.in_sample_return > 0 > w.out_of_sample_return for w in result.windows)
    assert summary["gap"] == pytest.approx(summary["mean_in_sample_objective"] - summary["mean_out_of_sample_objective"])
    assert summary["gap"] > 0
    assert summary["efficiency"] < 0
    assert summary["mean_in_sample_cagr"] == pytest.approx(np.mean([w.in_sample_cagr for w in result.windows]))
    assert summary["efficiency"] == pytest.approx(summary["cagr"] / summary["mean_in_sample_cagr"])


@pytest.mark.parametrize("objective", ["sharpe", "total_return", "cagr"])
def test_objectives_follow_curve_metrics(objective):
    rates = weekly_pattern([[0.001] * 6, [-0.002] * 6, [0.0] * 6], noise=0.01, seed=3)
    dates = weekdays(dt.date(2026, 1, 5), 6)
    values = objective_values(rates, dates, objective)
    for s in range(3):
        expected = curve_metrics(dates, CASH * np.cumprod(1 + rates[s]), CASH)[objective]
        assert values[s] == pytest.approx(expected)


def test_calmar_is_cagr_over_the_drawdown():
    dates = weekdays(dt.date(2026, 1, 5), 4)
    falls_then_rises = np.r_[np.full(5, -0.01), np.full(15, 0.005)]
    rises = np.full(20, 0.001)
    values = objective_values(np.vstack([falls_then_rises, rises, np.zeros(20)]), dates, "calmar")
    metrics = curve_metrics(dates, CASH * np.cumprod(1 + falls_then_rises), CASH)
    assert values[0] == pytest.approx(metrics["cagr"] / abs(metrics["max_drawdown"]))
    assert values[1] == np.inf  # never below its start: ranks first
    assert np.isnan(values[2])  # flat: undefined


def test_too_short_a_period_is_a_clear_error():
    data = sweep(weekly_pattern([[0.001] * 5]), weekdays(dt.date(2026, 1, 5), 5))
    with pytest.raises(ValueError, match=r"기간이 너무 짧습니다: 거래일이 있는 주가 5주.*학습 4주 \+ 검증 2주 = 6주"):
        walk_forward(data, 4, 2)
    assert len(walk_forward(data, 4, 1).windows) == 1
    with pytest.raises(ValueError, match="목표 지표"):
        walk_forward(data, 4, 1, objective="sortino")
    with pytest.raises(ValueError, match="학습"):
        walk_forward(data, 0, 1)


def test_the_result_is_json():
    rates = np.zeros((2, 40))  # flat sets: every Sharpe undefined (NaN → null), set 0 chosen
    result = walk_forward(sweep(rates, weekdays(dt.date(2026, 1, 5), 8)), 4, 2)
    payload = json.loads(json.dumps(result.to_dict(), allow_nan=False))
    assert payload["equity"][0] == ["2026-02-02", CASH] and len(payload["windows"]) == 2
    assert payload["windows"][0]["params"] == {"window": 10}
    assert payload["windows"][0]["in_sample_objective"] is None and payload["summary"]["sharpe"] is None
    assert set(payload["summary"]) >= {"total_return", "cagr", "sharpe", "max_drawdown", "gap", "efficiency",
                                       "choice_changes"}
