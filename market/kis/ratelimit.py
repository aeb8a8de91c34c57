"""Client-side request rate limiting per KIS app key.

KIS counts REST calls per app key: about 20/s for real accounts and 2/s for paper accounts; beyond that it
answers HTTP 500 ``EGW00201``. We stay below with 19/s (one spare, as python-kis does) and 2/s.

This module holds the protocol and an in-process implementation. It coordinates the threads of one
process only; workers in several processes that share an app key need a shared limiter (e.g. a
pyrate-limiter Redis bucket behind this same protocol).
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Protocol, runtime_checkable

REAL_REQUESTS_PER_SECOND = 19
PAPER_REQUESTS_PER_SECOND = 2


@runtime_checkable
class RateLimiter(Protocol):
    def acquire(self, key: str) -> None:
        """Block until one more request for ``key`` (an app-key id) may be sent."""

    def on_throttled(self, key: str) -> None:
        """KIS answered EGW00201 for ``key``: slow every sender of that key down for a moment."""


class SlidingWindowRateLimiter:
    """At most ``max_requests`` per ``period`` seconds per key, counted over any sliding window.

    A sliding log is stricter than a token bucket (which allows up to twice the rate across a window
    boundary), and KIS's own window alignment is unknown, so strict is the safe choice. Sleeping happens
    outside the lock, so waiting on one key does not block other keys.
    """

    def __init__(
        self,
        max_requests: int,
        period: float = 1.0,
        throttle_pause: float = 0.5,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if max_requests < 1 or period <= 0:
            raise ValueError("max_requests must be >= 1 and period > 0")
        self.max_requests = max_requests
        self.period = period
        self.throttle_pause = throttle_pause
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()
        self._sent: dict[str, deque[float]] = {}
        self._paused_until: dict[str, float] = {}

    def acquire(self, key: str) -> None:
        while True:
            with self._lock:
                now = self._clock()
                wait = self._paused_until.get(key, 0.0) - now
                if wait <= 0:
                    sent = self._sent.setdefault(key, deque())
                    while sent and sent[0] <= now - self.period:
                        sent.popleft()
                    if len(sent) < self.max_requests:
                        sent.append(now)
                        return
                    wait = sent[0] + self.period - now
            self._sleep(max(wait, 0.001))

    def on_throttled(self, key: str) -> None:
        if self.throttle_pause <= 0:
            return
        with self._lock:
            until = self._clock() + self.throttle_pause
            self._paused_until[key] = max(self._paused_until.get(key, 0.0), until)


class NoRateLimit:
    """For tests that exercise the fake server's own limit."""

    def acquire(self, key: str) -> None:
        return None

    def on_throttled(self, key: str) -> None:
        return None


_shared_limiters: dict[str, SlidingWindowRateLimiter] = {}
_shared_guard = threading.Lock()


def shared_rate_limiter(mode: str) -> SlidingWindowRateLimiter:
    """The process-wide limiter for ``mode`` ("real"/"paper"), so all clients of one app key share a budget."""
    with _shared_guard:
        limiter = _shared_limiters.get(mode)
        if limiter is None:
            rate = REAL_REQUESTS_PER_SECOND if mode == "real" else PAPER_REQUESTS_PER_SECOND
            limiter = SlidingWindowRateLimiter(rate)
            _shared_limiters[mode] = limiter
        return limiter
