"""1-minute candles from ticks (market.streaming.candles, pure)."""

import datetime as dt
from zoneinfo import ZoneInfo

import pytest

from market.streaming.candles import SEOUL, CandleBuilder, minute_of

UTC = ZoneInfo("UTC")


def at(hour: int, minute: int, second: int = 0) -> dt.datetime:
    return dt.datetime(2026, 12, 7, hour, minute, second, tzinfo=SEOUL)


def test_a_minute_has_first_last_extremes_and_the_sum_of_the_trades_own_volumes():
    builder = CandleBuilder()
    trades = [(at(10, 1, 2), 70_000, 5), (at(10, 1, 15), 70_300, 7), (at(10, 1, 40), 69_800, 11),
              (at(10, 1, 59), 70_100, 3)]
    for moment, price, volume in trades:
        builder.add("005930", moment, price, volume)
    candle = builder.current("005930")
    assert (candle.minute, candle.open, candle.high, candle.low, candle.close, candle.volume) == (
        at(10, 1), 70_000, 70_300, 69_800, 70_100, 26)
    assert builder.take_finished() == []  # the minute is not over yet


def test_a_trade_of_the_next_minute_finishes_the_previous_one_per_symbol():
    builder = CandleBuilder()
    builder.add("005930", at(10, 1, 30), 70_000, 1)
    builder.add("000660", at(10, 1, 30), 180_000, 2)
    builder.add("005930", at(10, 2, 0), 70_100, 4)
    finished = builder.take_finished()
    assert [(c.code, c.minute, c.close, c.volume) for c in finished] == [("005930", at(10, 1), 70_000, 1)]
    assert builder.current("000660").minute == at(10, 1)  # another symbol's minute stays open
    assert builder.take_finished() == []  # taken once


def test_the_clock_finishes_quiet_symbols():
    builder = CandleBuilder()
    builder.add("005930", at(10, 1, 30), 70_000, 1)
    builder.add("000660", at(10, 2, 10), 180_000, 2)
    builder.close_until(at(10, 2, 30))
    assert [c.code for c in builder.take_finished()] == ["005930"]
    builder.close_until(at(10, 3, 0))
    assert [c.code for c in builder.take_finished()] == ["000660"]
    assert builder.open_candles() == []


def test_a_late_trade_never_rewrites_a_finished_minute():
    builder = CandleBuilder()
    builder.add("005930", at(10, 1, 30), 70_000, 1)
    builder.add("005930", at(10, 2, 5), 70_100, 1)
    builder.add("005930", at(10, 1, 59), 75_000, 100)  # out of order: its minute is already finished
    builder.close_until(at(10, 3))
    builder.add("005930", at(10, 2, 59), 76_000, 100)  # after the clock finished it
    finished = builder.take_finished()
    assert [(c.minute, c.high, c.volume) for c in finished] == [(at(10, 1), 70_000, 1), (at(10, 2), 70_100, 1)]
    assert builder.late == 2


def test_minutes_are_seoul_minutes_whatever_the_timezone_of_the_trade():
    moment = dt.datetime(2026, 12, 7, 1, 5, 42, 123_000, tzinfo=UTC)  # 10:05:42 in Seoul
    assert minute_of(moment) == at(10, 5)
    assert minute_of(moment).utcoffset() == dt.timedelta(hours=9)
    with pytest.raises(ValueError):
        minute_of(dt.datetime(2026, 12, 7, 10, 5))


def test_open_candles_are_copies_of_the_minute_so_far():
    builder = CandleBuilder()
    builder.add("005930", at(10, 1, 1), 70_000, 3)
    snapshot = builder.open_candles()
    builder.add("005930", at(10, 1, 2), 71_000, 4)
    assert (snapshot[0].high, snapshot[0].volume) == (70_000, 3)
    assert snapshot[0].as_dict()["minute"] == "2026-12-07T10:01:00+09:00"
