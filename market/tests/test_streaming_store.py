"""Stored 1-minute candles and the simulator's reference prices (market.streaming.store), on SQLite and
MariaDB (run with DATABASE_URL=mysql://... for the second)."""

import datetime as dt

import pytest

from market.krx import SEOUL
from market.models import IntradayBar
from market.streaming.candles import Candle
from market.streaming.store import intraday_bars, previous_closes, prune_intraday, save_candles
from market.tests.factories import DailyBarFactory, InstrumentFactory

pytestmark = pytest.mark.django_db


def minute(day: dt.date, hour: int, minute_: int) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(hour, minute_), tzinfo=SEOUL)


DAY = dt.date(2026, 12, 7)


def candle(code="005930", at=None, close=70_000, volume=10) -> Candle:
    return Candle(code, at or minute(DAY, 9, 1), close - 100, close + 100, close - 200, close, volume)


def test_a_candle_written_again_for_its_minute_replaces_the_stored_one():
    assert save_candles("sim", [candle(close=70_000, volume=10), candle(at=minute(DAY, 9, 2))]) == 2
    assert save_candles("sim", [candle(close=70_500, volume=25)]) == 1  # the finished minute after its partial
    rows = list(IntradayBar.objects.order_by("minute").values_list("minute", "close", "volume"))
    assert rows == [(minute(DAY, 9, 1), 70_500, 25), (minute(DAY, 9, 2), 70_000, 10)]
    assert save_candles("sim", []) == 0
    with pytest.raises(ValueError):
        save_candles("demo", [candle()])


def test_one_call_may_carry_the_same_minute_twice_the_later_wins():
    save_candles("kis", [candle(close=70_000), candle(close=71_000)])
    assert list(IntradayBar.objects.values_list("close", flat=True)) == [71_000]


def test_a_days_bars_of_one_source_and_symbol_oldest_first():
    save_candles("sim", [candle(at=minute(DAY, 15, 29)), candle(at=minute(DAY, 9, 0), close=69_000),
                         candle(at=minute(DAY, 0, 0), close=68_000),  # Seoul midnight: this day
                         candle(at=minute(DAY - dt.timedelta(days=1), 23, 59)),  # the day before
                         candle(at=minute(DAY + dt.timedelta(days=1), 0, 0)),  # the next day
                         candle(code="000660", at=minute(DAY, 10, 0))])
    save_candles("kis", [candle(at=minute(DAY, 10, 0))])
    bars = intraday_bars("sim", "005930", DAY)
    assert [b["minute"] for b in bars] == ["2026-12-07T00:00:00+09:00", "2026-12-07T09:00:00+09:00",
                                           "2026-12-07T15:29:00+09:00"]
    assert bars[1] == {"minute": "2026-12-07T09:00:00+09:00", "time": int(minute(DAY, 9, 0).timestamp()),
                       "open": 68_900, "high": 69_100, "low": 68_800, "close": 69_000, "volume": 10}
    assert [b["minute"][11:16] for b in intraday_bars("kis", "005930", DAY)] == ["10:00"]
    assert intraday_bars("sim", "005930", DAY + dt.timedelta(days=2)) == []


def test_pruning_keeps_the_last_trading_days():
    # 2026-12-07 is a Monday: the five trading days up to it start on Tuesday 2026-12-01.
    for day in (dt.date(2026, 11, 27), dt.date(2026, 11, 30), dt.date(2026, 12, 1), dt.date(2026, 12, 7)):
        save_candles("sim", [candle(at=minute(day, 9, 0))])
    assert prune_intraday(5, today=DAY) == 2
    kept = sorted({m.astimezone(SEOUL).date() for m in IntradayBar.objects.values_list("minute", flat=True)})
    assert kept == [dt.date(2026, 12, 1), dt.date(2026, 12, 7)]
    assert prune_intraday(1, today=dt.date(2026, 12, 12)) == 2  # a Saturday keeps its Friday and later
    with pytest.raises(ValueError):
        prune_intraday(0)


def test_previous_closes_are_the_last_stored_closes_before_the_day():
    samsung = InstrumentFactory(code="005930")
    DailyBarFactory(instrument=samsung, date=dt.date(2026, 12, 3), close=69_000)
    DailyBarFactory(instrument=samsung, date=dt.date(2026, 12, 4), close=70_000)
    DailyBarFactory(instrument=samsung, date=DAY, close=75_000)  # the day itself does not count
    InstrumentFactory(code="000660")  # no bars
    assert previous_closes(["005930", "000660", "999999"], DAY) == {"005930": 70_000}
