"""The shared-pass sweep engine: every set equals its own full backtest, the grid is validated,
the overfitting statistics come with it, and the benchmark command prints its figures."""

from __future__ import annotations

import json
from io import StringIO

import numpy as np
import pytest
from django.core.management import call_command

from strategies.backtest import BacktestConfig, run_backtest
from strategies.backtest.synthetic import krx_days, random_walk_market
from strategies.library import ParameterError, all_strategies, create_strategy, get_strategy
from strategies.research.sweep import SweepError, grid_sets, run_sweep, sweep_statistics

DAYS = krx_days(420)


@pytest.fixture(scope="module")
def market():
    return random_walk_market(50, DAYS, seed=11)


def assert_same_as_backtests(result, data, config):
    for index, params in enumerate(result.param_sets):
        single = run_backtest(create_strategy(result.strategy_key, params), data, config)
        np.testing.assert_array_equal(result.equity[index], single.equity.to_numpy(), err_msg=str(params))
        for key, expected in single.metrics.items():
            got = result.metrics[index][key]
            if isinstance(expected, float):
                assert got == pytest.approx(expected, rel=1e-12, abs=1e-12), (params, key)
            else:
                assert got == expected, (params, key)


def test_mean_reversion_sets_equal_their_own_backtests(market):
    config = BacktestConfig(max_positions=5, start=DAYS[30])
    grid = {"window": [10, 20], "z_threshold": [1.0, 1.5, 2.5], "stop_loss": [-0.03, -0.1], "take_profit": [0.05, 0.2]}
    result = run_sweep("mean_reversion", grid, market, config)
    assert result.n_sets == 24
    assert result.names == ("stop_loss", "take_profit", "window", "z_threshold")
    assert {m["n_trades"] for m in result.metrics} != {0}  # the sets trade, and differ
    assert len({round(m["final"]) for m in result.metrics}) > 10
    assert_same_as_backtests(result, market, config)


@pytest.mark.parametrize("strategy_key", sorted(all_strategies()))
def test_every_strategy_with_costs_and_weekly_cap_equals_its_backtests(market, strategy_key):
    config = BacktestConfig(max_positions=4, start=DAYS[60], slippage_ticks=2, cash_per_week=3_000_000)
    grid = {"stop_loss": [-0.03, -0.08], "take_profit": [0.04, 0.2]}
    result = run_sweep(strategy_key, grid, market, config)
    assert_same_as_backtests(result, market, config)


def test_config_exits_override_every_set(market):
    config = BacktestConfig(max_positions=3, start=DAYS[30], stop_loss=-0.02, take_profit=0.03)
    result = run_sweep("mean_reversion", {"stop_loss": [-0.05, -0.5]}, market, config)
    np.testing.assert_array_equal(result.equity[0], result.equity[1])


def test_mean_reversion_keys_reproduce_its_signals_for_any_threshold(market):
    strategy_class = get_strategy("mean_reversion")
    key = create_strategy("mean_reversion", {"window": 15}).threshold_keys(market.close, None, None, None)
    for threshold in (0.5, 1.3, 2.0, 3.1):
        signals, scores = create_strategy("mean_reversion", {"window": 15, "z_threshold": threshold}).signals_and_scores(
            market.close
        )
        derived = np.where(key > threshold, 1, np.where(-key > threshold, -1, 0))
        np.testing.assert_array_equal(signals, derived)
        np.testing.assert_array_equal(scores, key)
    assert strategy_class.sweep_threshold == "z_threshold"


def test_weekly_returns_chain_to_the_final_equity(market):
    config = BacktestConfig(max_positions=5, start=DAYS[30])
    result = run_sweep("mean_reversion", {"z_threshold": [1.0, 2.0]}, market, config)
    weekly = result.weekly_returns()
    assert weekly.shape == (len(result.week_ends), 2)
    np.testing.assert_allclose(np.prod(1 + weekly, axis=0) * result.initial_cash, result.equity[:, -1], rtol=1e-9)


@pytest.mark.parametrize(
    ("grid", "message"),
    [
        ({}, "하나 이상"),
        ({"window": []}, "하나 이상"),
        ({"windoww": [10]}, "없는 파라미터"),
        ({"window": list(range(2, 102)), "z_threshold": [x / 10 for x in range(1, 61)]}, "5,000개까지"),
    ],
)
def test_bad_grids_get_a_clear_message(grid, message):
    with pytest.raises(SweepError, match=message):
        grid_sets("mean_reversion", grid)


def test_a_value_out_of_bounds_names_the_parameter():
    with pytest.raises(ParameterError) as caught:
        grid_sets("mean_reversion", {"window": [10, 1]})
    assert "window" in caught.value.errors


def test_statistics_explain_skill_or_luck_in_korean(market):
    config = BacktestConfig(max_positions=5, start=DAYS[30])
    result = run_sweep("mean_reversion", {"window": [10, 20, 30], "z_threshold": [1.0, 1.5, 2.0, 2.5]}, market, config)
    stats = sweep_statistics(result)
    assert stats["n_sets"] == 12 and stats["weeks"] == len(result.week_ends)
    assert 0.0 <= stats["deflated_sharpe"]["dsr"] <= 1.0
    assert 0.0 <= stats["pbo"]["pbo"] <= 1.0
    assert stats["pbo"]["n_splits"] % 2 == 0
    assert any("DSR" in line for line in stats["explanation"])
    assert any("PBO" in line for line in stats["explanation"])
    json.dumps(stats)  # stored as JSON on the sweep


def test_statistics_of_a_single_set_say_why_they_are_missing(market):
    result = run_sweep("mean_reversion", {"window": [20]}, market, BacktestConfig(start=DAYS[30]))
    stats = sweep_statistics(result)
    assert stats["deflated_sharpe"] is None and stats["pbo"] is None
    assert "하나뿐" in stats["notes"][0]


def test_benchmark_sweep_prints_its_figures_as_json():
    out = StringIO()
    call_command(
        "benchmark_sweep", "--symbols", "40", "--days", "260", "--windows", "2", "--thresholds", "2", "--exits", "2",
        "--compare-symbols", "20", "--compare-days", "200", "--repeat", "1", "--no-vectorbt", "--json", stdout=out,
    )
    report = json.loads(out.getvalue())
    assert report["sets"] == 8 and report["symbols"] == 40 and report["days"] == 260
    assert report["seconds"] > 0 and report["peak_rss_mb"] > 0
    assert report["compare_sets"] == 100 and report["ours_seconds"] > 0
    assert report["vectorbt_seconds"] is None  # --no-vectorbt
