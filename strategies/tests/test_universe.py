"""The universe as it was (strategies.backtest.universe): a point-in-time top-N mask by traded value,
and backtests that buy only inside it, delisted symbols included while they traded. No database."""

from __future__ import annotations

from datetime import date

import numpy as np
import pandas as pd
import pytest

from market.krx import trading_days
from strategies.backtest import BacktestConfig, MarketData, run_backtest
from strategies.backtest.universe import top_n_mask
from strategies.tests.test_backtest import ENGINES, Scripted

NAN = np.nan


def test_top_n_by_the_lookback_sum_up_to_and_including_each_row():
    value = np.array([
        [10.0, 5, 1],
        [10, 5, 20],  # C: 21 over two rows beats B's 10, not A's 20
        [0, 5, 30],
        [0, 40, 0],
    ])
    mask = top_n_mask(value, 2, lookback=2)
    assert mask.tolist() == [
        [True, True, False],
        [True, False, True],  # rows 0-1: A 20, B 10, C 21
        [True, False, True],  # rows 1-2: A 10, B 10, C 50: A and B tie, the first column wins
        [False, True, True],  # rows 2-3: A 0, B 45, C 30
    ]
    # The whole history (lookback 4) on row 3: A 20, B 55, C 51.
    assert top_n_mask(value, 1, lookback=4)[3].tolist() == [False, True, False]


def test_only_symbols_with_a_bar_on_the_row_and_never_more_than_n():
    value = np.array([
        [100.0, 1, 2, NAN],
        [NAN, 1, 2, 3],  # A has no bar: left out although its sum is the largest
        [NAN, NAN, NAN, 3],  # one bar: one symbol in, though n is 2
    ])
    mask = top_n_mask(value, 2, lookback=3)
    assert mask.tolist() == [
        [True, False, True, False],
        [False, False, True, True],
        [False, False, False, True],
    ]
    assert (mask.sum(axis=1) <= 2).all()
    # `valid` may say where bars are instead (a bar that traded nothing, value 0, is still a bar).
    valid = np.isfinite(value)
    valid[2, 0] = True
    assert top_n_mask(np.nan_to_num(value), 2, lookback=3, valid=valid)[2].tolist() == [True, False, False, True]


def test_the_mask_changes_over_time_and_sees_nothing_later():
    rng = np.random.default_rng(3)
    value = rng.uniform(1e8, 1e10, (200, 12))
    value[100:, 0] *= 50  # symbol 0 becomes the most traded from row 100 on
    mask = top_n_mask(value, 3)
    assert (mask.sum(axis=1) == 3).all()
    assert mask[170:, 0].all()
    assert (mask[1:] != mask[:-1]).any(axis=1).sum() > 10  # membership moves
    # Point in time: the rows up to t decide row t; what comes later changes nothing.
    for t in (30, 99, 150):
        np.testing.assert_array_equal(top_n_mask(value[: t + 1], 3)[t], mask[t])


@pytest.mark.parametrize("bad", [0, -1, 1.5, True])
def test_bad_n_is_refused(bad):
    with pytest.raises(ValueError):
        top_n_mask(np.ones((3, 3)), bad)


def delisting_market() -> tuple[MarketData, Scripted]:
    """Three symbols, every Friday a buy signal for each with equal scores, one position at a time.
    X is by far the most traded until it is delisted after 2024-03-15; Y is the larger of the rest."""
    days = trading_days(date(2024, 1, 2), date(2024, 5, 31))
    codes = ("000010", "000020", "000030")  # X, Y, Z
    idx = pd.DatetimeIndex(days)
    close = np.tile([10_000.0, 20_000.0, 30_000.0], (len(days), 1))
    volume = np.tile([1_000_000.0, 10_000.0, 1_000.0], (len(days), 1))
    gone = idx > pd.Timestamp("2024-03-15")
    close[gone, 0] = NAN
    signals = pd.DataFrame(0, index=idx, columns=list(codes))
    signals[idx.day_of_week == 4] = 1
    # Z ranks first by score: only the universe keeps it out.
    scores = pd.DataFrame(np.tile([1.0, 1.0, 2.0], (len(days), 1)), index=idx, columns=list(codes))
    data = MarketData.from_matrices(days, codes, open=close, close=close, volume=volume)
    traded = np.where(data.valid, data.close * data.volume, NAN)
    return data.with_universe(top_n_mask(traded, 1, lookback=20)), Scripted(signals, scores)


@pytest.mark.parametrize("engine", ENGINES)
def test_a_delisted_symbol_is_traded_before_it_left_and_the_universe_follows(engine):
    data, strategy = delisting_market()
    config = BacktestConfig(max_positions=1, stop_loss=-0.5, take_profit=0.5)
    trades = run_backtest(strategy, data, config, engine=engine).trades
    before = trades[trades["entry_date"] <= pd.Timestamp("2024-03-15")]
    after = trades[trades["entry_date"] > pd.Timestamp("2024-03-15")]
    assert len(before) >= 7 and set(before["code"]) == {"000010"}  # X, while it was the most traded
    assert len(after) >= 7 and set(after["code"]) == {"000020"}  # then Y; never Z despite its score
    # Today's survivors as the universe (Y alone, the top 1 on the last day) would never have had X.
    survivors = data.with_universe(np.broadcast_to(data.universe[-1], data.shape))
    assert set(run_backtest(strategy, survivors, config, engine=engine).trades["code"]) == {"000020"}
    # No universe: the score alone picks Z every week.
    assert set(run_backtest(strategy, data.with_universe(None), config, engine=engine).trades["code"]) == {"000030"}


def test_select_and_between_keep_volume_and_universe():
    data, _ = delisting_market()
    cut = data.between(start=date(2024, 3, 1), end=date(2024, 3, 29))
    rows = (data.dates >= np.datetime64("2024-03-01")) & (data.dates <= np.datetime64("2024-03-29"))
    np.testing.assert_array_equal(cut.universe, data.universe[rows])
    np.testing.assert_array_equal(cut.volume, data.volume[rows])
    picked = data.select(["000030", "000010"])
    np.testing.assert_array_equal(picked.universe, data.universe[:, [2, 0]])
    np.testing.assert_array_equal(picked.volume, data.volume[:, [2, 0]])
    assert picked.volume[-1, 1] == 0  # no bar, no volume
