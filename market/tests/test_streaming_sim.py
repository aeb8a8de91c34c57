"""The paper broker's simulated tick stream (market.streaming.sim)."""

import asyncio
import datetime as dt

import pytest
import time_machine

from market.krx import SEOUL, is_on_tick, price_limits
from market.streaming.sim import SimMarket, SimSource, session_is_open

MONDAY = dt.date(2026, 12, 7)  # a KRX trading day
OPEN = dt.datetime(2026, 12, 7, 10, 0, tzinfo=SEOUL)
EVENING = dt.datetime(2026, 12, 7, 20, 0, tzinfo=SEOUL)
SATURDAY = dt.datetime(2026, 12, 12, 11, 0, tzinfo=SEOUL)
# References in every band of the tick table, some right under a band's start (the grid changes there).
REFERENCES = {"000010": 1_995, "000020": 4_990, "000030": 19_950, "000040": 49_900, "000050": 199_500,
              "000060": 499_000, "000070": 1_200}


@pytest.mark.parametrize("code,reference", sorted(REFERENCES.items()))
def test_trades_stay_on_the_tick_grid_and_inside_the_daily_limits(code, reference):
    market = SimMarket(MONDAY, seed=7, ticks_per_second=50)  # many trades a second: a wide walk
    market.add(code, reference)
    lower, upper = price_limits(reference)
    prices = set()
    for _ in range(5_000):
        tick = market.next_tick(code, OPEN)
        assert is_on_tick(tick.price) and lower <= tick.price <= upper
        assert tick.change == tick.price - reference and tick.previous_close == reference
        assert tick.low <= tick.price <= tick.high and tick.volume >= 1
        assert tick.ask1 == 0 or tick.bid1 == 0 or (is_on_tick(tick.ask1) and tick.ask1 > tick.bid1)
        prices.add(tick.price)
    assert len(prices) > 3  # it moves
    assert tick.cumulative_volume >= 5_000 and tick.business_date == MONDAY
    assert tick.time == dt.time(10, 0)


def test_the_walk_is_held_at_the_limits():
    market = SimMarket(MONDAY, seed=1)
    market.add("005930", 70_000)
    lower, upper = price_limits(70_000)
    market._symbols["005930"].fair = upper * 1.5  # pushed past 상한가
    tick = market.next_tick("005930", OPEN)
    assert tick.price == upper and tick.ask1 == 0  # no asks at the upper limit
    assert tick.vi_reference_price == 70_000  # a static VI is marked after a 10 % move
    book = market.book("005930", OPEN)
    assert book.asks == (0,) * 10 and book.ask_sizes == (0,) * 10
    market._symbols["005930"].fair = lower * 0.5
    tick = market.next_tick("005930", OPEN)
    assert (tick.price, tick.bid1, tick.ask1) == (lower, 0, lower)  # 하한가: no bids
    assert market.book("005930", OPEN).bids == (0,) * 10


def test_the_book_has_ten_levels_on_the_grid_around_the_price():
    market = SimMarket(MONDAY, seed=3)
    market.add("005930", 70_000)
    tick = market.next_tick("005930", OPEN)
    book = market.book("005930", OPEN)
    assert len(book.asks) == len(book.bids) == 10
    assert list(book.asks) == sorted(book.asks) and list(book.bids) == sorted(book.bids, reverse=True)
    assert book.bids[0] < book.asks[0] and all(is_on_tick(p) for p in book.asks + book.bids)
    assert book.bids[0] <= tick.price <= book.asks[0]
    assert book.total_ask_size == sum(book.ask_sizes) > 0 and book.total_bid_size == sum(book.bid_sizes) > 0


def test_a_seed_makes_the_stream_repeatable_and_symbols_independent():
    def prices(codes, seed):
        market = SimMarket(MONDAY, seed=seed)
        for code in codes:
            market.add(code, 70_000)
        return [market.next_tick("005930", OPEN).price for _ in range(300)]

    assert prices(["005930"], 5) == prices(["005930", "000660"], 5)
    assert prices(["005930"], 5) != prices(["005930"], 6)


def test_trades_arrive_at_the_configured_rate():
    market = SimMarket(MONDAY, seed=2, ticks_per_second=4)
    market.add("005930", 70_000)
    total = sum(market.trades_due("005930", 0.1) for _ in range(5_000))  # 500 s
    assert 1_800 < total < 2_200


def test_the_session_follows_the_krx_calendar_unless_always():
    assert session_is_open(OPEN)
    assert not session_is_open(EVENING) and not session_is_open(SATURDAY)
    assert session_is_open(SATURDAY, "always")


class Recorder:
    def __init__(self):
        self.ticks, self.books, self.statuses, self.loaded = [], [], [], []

    async def load(self, codes, day):
        self.loaded.append((tuple(codes), day))
        return {code: 70_000 for code in codes if code != "999999"}

    def source(self, session="market"):
        return SimSource(on_tick=lambda t, r: self.ticks.append((t, r)), on_book=lambda b, r: self.books.append(b),
                         on_status=lambda state, message: self.statuses.append(state), load_closes=self.load,
                         session=session, ticks_per_second=20, seed=11)


def run_steps(source, steps=10):
    async def main():
        for _ in range(steps):
            await source.step(0.5)

    asyncio.run(main())


def test_during_the_session_it_streams_the_wanted_codes():
    recorder = Recorder()
    source = recorder.source()
    source.set_wanted(["005930", "999999"], books=["005930"])
    with time_machine.travel(OPEN, tick=False):
        run_steps(source)
    assert recorder.statuses == ["connected"]
    assert recorder.loaded == [(("005930", "999999"), MONDAY)]  # once; the unknown code is not asked again
    assert {t.code for t, _ in recorder.ticks} == {"005930"} and len(recorder.ticks) > 20
    assert recorder.books and recorder.books[0].code == "005930"


@pytest.mark.parametrize("moment", [EVENING, SATURDAY], ids=["evening", "saturday"])
def test_outside_the_session_it_says_market_closed_and_nothing_else(moment):
    recorder = Recorder()
    source = recorder.source()
    source.set_wanted(["005930"], books=["005930"])
    with time_machine.travel(moment, tick=False):
        run_steps(source)
    assert recorder.statuses == ["market_closed"]
    assert recorder.ticks == [] and recorder.books == [] and recorder.loaded == []


def test_always_mode_simulates_at_night_and_a_closing_bell_stops_it():
    recorder = Recorder()
    source = recorder.source(session="always")
    source.set_wanted(["005930"])
    with time_machine.travel(SATURDAY, tick=False):
        run_steps(source)
    assert recorder.statuses == ["connected"] and recorder.ticks

    recorder = Recorder()
    source = recorder.source()
    source.set_wanted(["005930"])
    with time_machine.travel(OPEN, tick=False):
        run_steps(source, 2)
    with time_machine.travel(EVENING, tick=False):
        before = len(recorder.ticks)
        run_steps(source, 2)
    assert recorder.statuses == ["connected", "market_closed"] and len(recorder.ticks) == before
