"""Client-side request rate limiting per KIS app key.

KIS counts REST calls per app key: about 20/s for real accounts and 2/s for 모의투자 accounts; beyond
that it answers ``EGW00201``. We stay below with 19/s (one spare, as python-kis does) and 2/s.

Requests are spaced evenly (GCRA with a burst of 1, from pyrate-limiter) instead of being let out in
bursts: we count a request when it may leave, KIS counts it when it arrives, and a burst of 19 at the
start of our window plus network jitter can land 21 requests in one of KIS's windows. Evenly spaced
requests leave ~50 ms of slack for jitter at 19/s.

The state lives in memory (one process) or in Redis (every process on every machine sharing a key).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any, Protocol, runtime_checkable

from pyrate_limiter import GCRA, Limiter, Rate
from pyrate_limiter.buckets.state_bucket import StateBucket

REAL_REQUESTS_PER_SECOND = 19
PAPER_REQUESTS_PER_SECOND = 2
# KIS's published limits; ours stay below each with room for ~50 ms of network jitter. At 2/s there is
# no spare request to give up, so the paper budget is 2 per 1.1 s (requests 550 ms apart) instead.
KIS_LIMIT_PER_SECOND = {"real": 20, "paper": 2}
BUDGET = {"real": (REAL_REQUESTS_PER_SECOND, 1000), "paper": (PAPER_REQUESTS_PER_SECOND, 1100)}


@runtime_checkable
class RateLimiter(Protocol):
    def acquire(self, key: str) -> None:
        """Block until one more request for ``key`` (an app-key id) may be sent."""

    def on_throttled(self, key: str) -> None:
        """KIS answered EGW00201 for ``key``: slow every sender of that key down for a moment."""


class SmoothRateLimiter:
    """At most ``requests_per_second`` per key (per ``window_ms``), evenly spaced; shared through Redis
    when ``redis`` is given.

    ``on_throttled`` pauses the key for ``throttle_pause`` seconds for every sender sharing the state.
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
        self._guard = threading.Lock()
        self._limiters: dict[str, Limiter] = {}
        self._paused_until: dict[str, float] = {}

    def _limiter(self, key: str) -> Limiter:
        with self._guard:
            limiter = self._limiters.get(key)
            if limiter is None:
                rate = Rate(self.requests_per_second, self.window_ms, burst=1)
                if self._redis is not None:
                    from pyrate_limiter.buckets.redis_state import RedisStateStore

                    bucket = StateBucket([rate], GCRA(), RedisStateStore(self._redis, f"{self._prefix}:{key}"))
                else:
                    bucket = StateBucket([rate], GCRA())
                # buffer_ms=0: pyrate's default 50 ms extra per wait would cut 19/s to ~10/s.
                limiter = self._limiters[key] = Limiter(bucket, buffer_ms=0)
            return limiter

    def _pause_remaining(self, key: str) -> float:
        if self._redis is not None:
            until = self._redis.get(f"{self._prefix}-pause:{key}")
            return float(until) - time.time() if until else 0.0
        with self._guard:
            return self._paused_until.get(key, 0.0) - time.monotonic()

    def acquire(self, key: str) -> None:
        pause = self._pause_remaining(key)
        if pause > 0:
            self._sleep(pause)
        if not self._limiter(key).try_acquire("kis", blocking=True, timeout=self.max_wait):
            raise TimeoutError(f"rate limiter: no slot within {self.max_wait} s")

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
