"""Client-side request rate limiting per KIS app key.

KIS counts REST calls per app key: about 20/s for real accounts and 2/s for 모의투자 accounts; beyond
that it answers ``EGW00201``. We stay below with 19/s (one spare, as python-kis does) and 2/s.

Requests are spaced evenly (GCRA with a burst of 1, pyrate-limiter's algorithm and stores) instead of
being let out in bursts: we count a request when it may leave, KIS counts it when it arrives, and a burst
of 19 at the start of our window plus network jitter can land 21 requests in one of KIS's windows.
Evenly spaced requests leave ~50 ms of slack for jitter at 19/s.

No sliding window of ``window_ms`` ever holds more than ``requests_per_second`` admissions, even after a
stall: every admission is decided on the clock as it reads at that moment. (pyrate-limiter's own
blocking loop advances a waiting request's timestamp by the sleep it *planned*; when the thread wakes
late — a busy CPU, a GC pause, a suspended VM — the request is admitted on a stale timestamp, which
leaves the schedule behind the real clock, and the next 2–3 requests go out within milliseconds.) So
the waiting loop is ours and pyrate-limiter only decides, atomically, in memory or in Redis.

The state lives in memory (one process) or in Redis (every process on every machine sharing a key).
Waits honour the caller's deadline (``market.kis.deadline``): a wait that would pass it raises
``KisDeadlineExceeded`` at once, before anything is sent.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any, Protocol, runtime_checkable

from pyrate_limiter import GCRA, Rate
from pyrate_limiter.abstracts.store import StateStore
from pyrate_limiter.buckets.state_bucket import InMemoryStateStore
from pyrate_limiter.clocks import AbstractClock

from . import deadline

REAL_REQUESTS_PER_SECOND = 19
PAPER_REQUESTS_PER_SECOND = 2
# KIS's published limits; ours stay below each with room for ~50 ms of network jitter. At 2/s there is
# no spare request to give up, so the paper budget is 2 per 1.1 s (requests 550 ms apart) instead.
KIS_LIMIT_PER_SECOND = {"real": 20, "paper": 2}
BUDGET = {"real": (REAL_REQUESTS_PER_SECOND, 1000), "paper": (PAPER_REQUESTS_PER_SECOND, 1100)}
# pyrate-limiter's clocks read whole milliseconds, so an admission can happen up to 1 ms after the
# instant it was decided on; spacing over one extra millisecond per window keeps even a strict window
# of ``window_ms`` (measured on the real clock) at the budget. It costs 0.1% of the throughput.
CLOCK_RESOLUTION_MS = 1


@runtime_checkable
class RateLimiter(Protocol):
    def acquire(self, key: str) -> None:
        """Block until one more request for ``key`` (an app-key id) may be sent."""

    def on_throttled(self, key: str) -> None:
        """KIS answered EGW00201 for ``key``: slow every sender of that key down for a moment."""


class SmoothRateLimiter:
    """At most ``requests_per_second`` per key in any ``window_ms``, evenly spaced; shared through Redis
    when ``redis`` is given.

    ``on_throttled`` pauses the key for ``throttle_pause`` seconds for every sender sharing the state.
    ``acquire`` raises ``TimeoutError`` after ``max_wait`` seconds without a slot, and
    ``KisDeadlineExceeded`` at once when the wait would pass the caller's deadline. ``clock`` (whole
    milliseconds) and ``sleep`` can be injected; by default the store's clock (monotonic in memory, the
    wall clock in Redis, which machines share) and ``time.sleep``.
    """

    def __init__(
        self,
        requests_per_second: int,
        *,
        window_ms: int = 1000,
        redis: Any = None,
        key_prefix: str = "kis-gcra",
        throttle_pause: float = 0.5,
        max_wait: float = 60.0,
        sleep: Callable[[float], None] = time.sleep,
        clock: AbstractClock | None = None,
    ) -> None:
        if requests_per_second < 1:
            raise ValueError("requests_per_second must be >= 1")
        self.requests_per_second = requests_per_second
        self.window_ms = window_ms
        self.throttle_pause = throttle_pause
        self.max_wait = max_wait
        self._redis = redis
        self._prefix = key_prefix
        self._sleep = sleep
        self._clock = clock
        self._algorithm = GCRA()
        self._rates = [Rate(requests_per_second, window_ms + CLOCK_RESOLUTION_MS, burst=1)]
        self._guard = threading.Lock()
        self._stores: dict[str, tuple[StateStore, AbstractClock]] = {}
        self._paused_until: dict[str, float] = {}

    def _store(self, key: str) -> tuple[StateStore, AbstractClock]:
        with self._guard:
            entry = self._stores.get(key)
            if entry is None:
                if self._redis is not None:
                    from pyrate_limiter.buckets.redis_state import RedisStateStore

                    store: StateStore = RedisStateStore(self._redis, f"{self._prefix}:{key}")
                else:
                    store = InMemoryStateStore()
                entry = self._stores[key] = (store, self._clock or store.default_clock)
            return entry

    def _pause_remaining(self, key: str) -> float:
        if self._redis is not None:
            until = self._redis.get(f"{self._prefix}-pause:{key}")
            return float(until) - time.time() if until else 0.0
        with self._guard:
            return self._paused_until.get(key, 0.0) - time.monotonic()

    def acquire(self, key: str) -> None:
        store, clock = self._store(key)
        started = time.monotonic()
        while True:
            pause = self._pause_remaining(key)
            if pause > 0:
                self._wait(pause, started)
            # A fresh reading of the clock for every decision: never a timestamp from before a sleep.
            decision = store.check(self._algorithm, self._rates, clock.now(), 1)
            if decision.allowed:
                return
            self._wait(max(decision.retry_after_ms or 1, 1) / 1000, started)

    def _wait(self, seconds: float, started: float) -> None:
        if time.monotonic() - started + seconds > self.max_wait:
            raise TimeoutError(f"rate limiter: no slot within {self.max_wait} s")
        deadline.sleep_within(seconds, "rate_limit", self._sleep)

    def on_throttled(self, key: str) -> None:
        if self.throttle_pause <= 0:
            return
        if self._redis is not None:
            until = time.time() + self.throttle_pause
            self._redis.set(f"{self._prefix}-pause:{key}", until, px=int(self.throttle_pause * 1000))
            return
        with self._guard:
            until = time.monotonic() + self.throttle_pause
            self._paused_until[key] = max(self._paused_until.get(key, 0.0), until)


class NoRateLimit:
    """For tests that exercise the fake server's own limit."""

    def acquire(self, key: str) -> None:
        return None

    def on_throttled(self, key: str) -> None:
        return None


def budget_for(mode: str) -> tuple[int, int]:
    """(requests, window in ms) we allow ourselves for KIS's "real" or "paper" host."""
    return BUDGET["real" if mode == "real" else "paper"]


_shared_limiters: dict[str, SmoothRateLimiter] = {}
_shared_guard = threading.Lock()


def shared_rate_limiter(mode: str) -> SmoothRateLimiter:
    """The process-wide limiter for ``mode`` ("real"/"paper"), so all clients of one app key share a budget."""
    with _shared_guard:
        limiter = _shared_limiters.get(mode)
        if limiter is None:
            requests, window_ms = budget_for(mode)
            limiter = _shared_limiters[mode] = SmoothRateLimiter(requests, window_ms=window_ms)
        return limiter
