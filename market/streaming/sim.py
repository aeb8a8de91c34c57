"""The paper broker's simulated tick stream (source ``"sim"``): live-looking trades and 호가 for the demo
market, so the embedded default shows the same moving pages without a KIS account.

Model, per symbol and day (``SimMarket``, deterministic for a seed):

* the reference price is the symbol's last stored daily close before the day (the demo market's, or
  imported real bars); the day's price limits (±30 %) and tick grid come from ``market.krx``;
* a "fair" price follows a random walk in log space (about ``DAILY_VOLATILITY`` over a session, pulled
  weakly back towards the reference) with occasional bursts (a run of same-direction moves with more
  volume, every few minutes per symbol on average);
* a trade happens at the best bid or the best ask around the fair price (on the grid, inside the limits:
  at 상한가 there are no asks, at 하한가 no bids), with a random size; a static VI is marked
  (``vi_reference_price``) for ``VI_SECONDS`` after the price first moves ``VI_PERCENT`` from the reference
  (trading carries on in the simulation; KRX would hold a 2-minute auction);
* the 10-level book sits around the last trade.

``SimSource`` drives it for the streamer: trades arrive as a Poisson stream of
``REALTIME_SIM_TICKS_PER_SECOND`` per symbol, only during the KRX regular session (calendar and hours) unless
the session mode is ``"always"``; outside it publishes the status ``market_closed`` and nothing else.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import math
import random
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass

from market.kis.realtime.records import OrderBook, Tick
from market.krx import SEOUL, is_regular_session, krx_calendar, price_limits, round_to_tick, shift_ticks

logger = logging.getLogger(__name__)

SESSION_HOURS = 6.5
DAILY_VOLATILITY = 0.025  # the fair price's standard deviation over a session, as a fraction
REVERSION_PER_TICK = 0.0005  # pull of the fair price towards the reference, per trade
BURST_PROBABILITY = 0.0015  # per trade: a burst starts
BURST_TRADES = (8, 30)
BURST_STEP = (0.0006, 0.0025)  # log move per trade during a burst
VI_PERCENT = 10
VI_SECONDS = 120
TRADE_VALUE = 4_000_000  # average KRW per trade (a burst trades three times as much)
BOOK_LEVELS = 10


def session_is_open(now: dt.datetime, mode: str = "market") -> bool:
    """Whether the simulator trades at ``now``: KRX's regular session, or always in mode "always"."""
    return mode == "always" or is_regular_session(now)


@dataclass(slots=True)
class _Symbol:
    code: str
    reference: int
    lower: int
    upper: int
    rng: random.Random
    fair: float
    price: int = 0
    open: int = 0
    high: int = 0
    low: int = 0
    cumulative_volume: int = 0
    cumulative_amount: int = 0
    burst_left: int = 0
    burst_step: float = 0.0
    vi_until: dt.datetime | None = None
    vi_done: bool = False


class SimMarket:
    """Simulated trades and books for a set of symbols on one day. Each symbol has its own random stream
    (from ``seed``, its code and the day), so its trades do not depend on which other symbols are
    simulated; ``seed=None`` draws a fresh stream."""

    def __init__(self, day: dt.date, *, seed: int | None = None, ticks_per_second: float = 4.0) -> None:
        self.day = day
        self.seed = seed
        self.ticks_per_second = ticks_per_second
        steps_per_session = max(1.0, ticks_per_second * SESSION_HOURS * 3600)
        self.sigma = DAILY_VOLATILITY / math.sqrt(steps_per_session)
        self._symbols: dict[str, _Symbol] = {}

    @property
    def codes(self) -> frozenset[str]:
        return frozenset(self._symbols)

    def add(self, code: str, reference: int) -> None:
        """Simulate ``code`` from its reference price (the previous close); no-op when already there."""
        if code in self._symbols:
            return
        if isinstance(reference, bool) or not isinstance(reference, int) or reference < 1:
            raise ValueError(f"reference price of {code} must be a positive int, got {reference!r}")
        lower, upper = price_limits(reference)
        rng = random.Random(f"{self.seed}:{code}:{self.day.isoformat()}") if self.seed is not None else random.Random()
        self._symbols[code] = _Symbol(code=code, reference=reference, lower=lower, upper=upper, rng=rng,
                                      fair=float(reference))

    def remove(self, code: str) -> None:
        self._symbols.pop(code, None)

    def reference(self, code: str) -> int:
        return self._symbols[code].reference

    def limits(self, code: str) -> tuple[int, int]:
        symbol = self._symbols[code]
        return symbol.lower, symbol.upper

    def trades_due(self, code: str, seconds: float) -> int:
        """How many trades ``code`` makes in the next ``seconds`` (Poisson)."""
        rng = self._symbols[code].rng
        expected = self.ticks_per_second * seconds
        threshold, count, product = math.exp(-expected), 0, rng.random()
        while product > threshold:
            count += 1
            product *= rng.random()
        return count

    def _bid_ask(self, symbol: _Symbol) -> tuple[int, int]:
        """The best bid and ask around the fair price (0 for the side that is empty at a limit)."""
        if symbol.fair <= symbol.lower:  # 하한가: sellers queue at the limit, no bid below it
            return 0, symbol.lower
        fair = min(symbol.fair, symbol.upper)
        bid = max(round_to_tick(max(int(fair), 1), "down"), symbol.lower)
        if bid >= symbol.upper:
            return symbol.upper, 0
        ask = shift_ticks(bid, 1)
        if ask > symbol.upper:
            return bid, 0
        return bid, ask

    def _move(self, symbol: _Symbol) -> bool:
        """One step of the fair price; True during a burst."""
        rng = symbol.rng
        if symbol.burst_left == 0 and rng.random() < BURST_PROBABILITY:
            symbol.burst_left = rng.randint(*BURST_TRADES)
            # Bursts lean back towards the reference when the price has wandered far from it.
            away = math.log(symbol.fair / symbol.reference)
            direction = -1 if rng.random() < 0.5 + min(max(away * 10, -0.4), 0.4) else 1
            symbol.burst_step = direction * rng.uniform(*BURST_STEP)
        drift = REVERSION_PER_TICK * math.log(symbol.reference / symbol.fair)
        step = self.sigma * rng.gauss(0.0, 1.0) + drift
        bursting = symbol.burst_left > 0
        if bursting:
            step += symbol.burst_step
            symbol.burst_left -= 1
        symbol.fair = min(max(symbol.fair * math.exp(step), symbol.lower * 0.999), symbol.upper * 1.001)
        return bursting

    def next_tick(self, code: str, now: dt.datetime) -> Tick:
        """The next trade of ``code`` at ``now`` (aware)."""
        symbol = self._symbols[code]
        rng = symbol.rng
        bursting = self._move(symbol)
        bid, ask = self._bid_ask(symbol)
        buyer = rng.random() < (0.65 if bursting and symbol.burst_step > 0 else 0.35 if bursting else 0.5)
        if ask == 0 or bid == 0:  # at a limit every trade is at the limit
            price = bid or ask
        else:
            price = ask if buyer else bid
        value = TRADE_VALUE * (3 if bursting else 1)
        volume = max(1, int(rng.expovariate(1.0) * value / price))
        symbol.price = price
        if symbol.open == 0:
            symbol.open = symbol.high = symbol.low = price
        symbol.high = max(symbol.high, price)
        symbol.low = min(symbol.low, price)
        symbol.cumulative_volume += volume
        symbol.cumulative_amount += volume * price
        now = now.astimezone(SEOUL)
        change = price - symbol.reference
        if not symbol.vi_done and abs(change) * 100 >= VI_PERCENT * symbol.reference:
            symbol.vi_done = True
            symbol.vi_until = now + dt.timedelta(seconds=VI_SECONDS)
        in_vi = symbol.vi_until is not None and now < symbol.vi_until
        return Tick(
            code=code, time=now.time().replace(microsecond=0, tzinfo=None), price=price, change=change,
            change_rate=round(change * 100 / symbol.reference, 2), open=symbol.open, high=symbol.high,
            low=symbol.low, volume=volume, cumulative_volume=symbol.cumulative_volume,
            cumulative_amount=symbol.cumulative_amount, ask1=ask,
            bid1=bid,
            business_date=now.date(), halted=False, vi_reference_price=symbol.reference if in_vi else 0,
            market_phase="",
        )

    def book(self, code: str, now: dt.datetime) -> OrderBook:
        """The 10-level 호가 around the last trade (levels beyond the daily limits are 0)."""
        symbol = self._symbols[code]
        rng = symbol.rng
        bid, ask = self._bid_ask(symbol)
        asks, bids = [], []
        price = ask
        for _ in range(BOOK_LEVELS):
            if price == 0 or price > symbol.upper:
                asks.append(0)
                price = 0
                continue
            asks.append(price)
            price = shift_ticks(price, 1)
        price = bid
        for _ in range(BOOK_LEVELS):
            if price < symbol.lower or price < 1:
                bids.append(0)
                continue
            bids.append(price)
            price = shift_ticks(price, -1) if price > 1 else 0
        lot = max(1, TRADE_VALUE // max(bid, 1))
        ask_sizes = [rng.randint(1, 20) * lot if p else 0 for p in asks]
        bid_sizes = [rng.randint(1, 20) * lot if p else 0 for p in bids]
        return OrderBook(
            code=code, time=now.astimezone(SEOUL).time().replace(microsecond=0, tzinfo=None), asks=tuple(asks),
            bids=tuple(bids), ask_sizes=tuple(ask_sizes), bid_sizes=tuple(bid_sizes),
            total_ask_size=sum(ask_sizes), total_bid_size=sum(bid_sizes), expected_price=0, expected_volume=0,
        )


TickSink = Callable[[Tick, float], None]
BookSink = Callable[[OrderBook, float], None]
StatusSink = Callable[[str, str], None]  # (state, message)
LoadCloses = Callable[[list[str], dt.date], Awaitable[dict[str, int]]]

OPEN_MESSAGE = "모의 시세입니다 (데모 시장에서 만든 시뮬레이션 체결)."
ALWAYS_MESSAGE = "모의 시세입니다 (장 시간과 관계없이 시뮬레이션 중)."
CLOSED_MESSAGE = "장 운영 시간이 아닙니다. 마지막 종가를 보여 줍니다."


class SimSource:
    """Runs ``SimMarket`` in real time for the codes the streamer wants; calls ``on_tick``/``on_book`` with
    the record and its creation time (epoch s) and ``on_status(state, message)`` when the state changes
    ("connected" while simulating, "market_closed" outside the session)."""

    source = "sim"
    account = None

    def __init__(self, *, on_tick: TickSink, on_book: BookSink, on_status: StatusSink, load_closes: LoadCloses,
                 session: str = "market", ticks_per_second: float = 4.0, seed: int | None = None,
                 interval: float = 0.1, book_interval: float = 0.5,
                 clock: Callable[[], dt.datetime] | None = None) -> None:
        self.on_tick, self.on_book, self.on_status = on_tick, on_book, on_status
        self.load_closes = load_closes
        self.session = session
        self.ticks_per_second = ticks_per_second
        self.seed = seed
        self.interval = interval
        self.book_interval = book_interval
        self.clock = clock or (lambda: dt.datetime.now(SEOUL))
        self.codes: frozenset[str] = frozenset()
        self.books: frozenset[str] = frozenset()
        self.market: SimMarket | None = None
        self.unknown: set[str] = set()  # codes without a stored close: nothing to start from
        self.state: str | None = None
        self._last_books = 0.0
        self._stopping = asyncio.Event()

    def set_wanted(self, codes: Iterable[str], books: Iterable[str] = ()) -> None:
        self.codes = frozenset(codes)
        self.books = frozenset(books)
        self.unknown &= self.codes

    def _set_state(self, state: str, message: str) -> None:
        if state != self.state:
            self.state = state
            self.on_status(state, message)

    async def _sync_symbols(self, now: dt.datetime) -> None:
        wanted = self.codes | self.books
        if self.market is None or self.market.day != now.date():
            self.market = SimMarket(now.date(), seed=self.seed, ticks_per_second=self.ticks_per_second)
            self.unknown.clear()
        for code in self.market.codes - wanted:
            self.market.remove(code)
        missing = sorted(wanted - self.market.codes - self.unknown)
        if missing:
            closes = await self.load_closes(missing, now.date())
            for code in missing:
                if code in closes:
                    self.market.add(code, closes[code])
                else:
                    self.unknown.add(code)
                    logger.info("sim: no stored close for %s; not simulated", code)

    async def step(self, seconds: float) -> None:
        """One round: the trades of the last ``seconds`` and, when due, the books."""
        now = self.clock()
        if not session_is_open(now, self.session):
            self._set_state("market_closed", CLOSED_MESSAGE)
            return
        self._set_state("connected", ALWAYS_MESSAGE if self.session == "always" else OPEN_MESSAGE)
        await self._sync_symbols(now)
        market = self.market
        created = time.time()
        for code in sorted(self.codes & market.codes):
            for _ in range(market.trades_due(code, seconds)):
                self.on_tick(market.next_tick(code, now), created)
        if self.books and created - self._last_books >= self.book_interval:
            self._last_books = created
            for code in sorted(self.books & market.codes):
                self.on_book(market.book(code, now), created)

    async def run(self) -> None:
        if self.session != "always":
            await asyncio.to_thread(krx_calendar)  # built once per process, in seconds: not on the loop
        loop = asyncio.get_running_loop()
        last = loop.time()
        while not self._stopping.is_set():
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), self.interval)
            now = loop.time()
            if self.codes or self.books or self.state is None:
                await self.step(min(now - last, 1.0))
            last = now

    async def close(self) -> None:
        self._stopping.set()

