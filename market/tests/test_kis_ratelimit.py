"""The request pacer (market.kis.ratelimit.SmoothRateLimiter): no sliding window may hold more requests
than the budget, even after a stall (a thread that wakes late must not let the next requests out in a
burst to catch up), and the budget is still used (no waiting beyond the spacing)."""

from __future__ import annotations

import os
import time
import uuid
from bisect import bisect_left

import pyrate_limiter.limiter
import pytest
from pyrate_limiter.clocks import AbstractClock

from market.kis.ratelimit import SmoothRateLimiter


def busiest_window(times: list[float], window: float) -> int:
    """The most send times in any half-open window [t, t + window), t running over the times themselves
    (a busiest window can always be slid to start at a send)."""
    times = sorted(times)
    return max(bisect_left(times, start + window) - index for index, start in enumerate(times))


class StallingSleep:
    """Sleeps as asked, except that the listed calls wake ``stall`` seconds late (a busy CPU, a GC pause,
    a suspended VM)."""

    def __init__(self, stall: float, on_calls: set[int]) -> None:
        self.stall, self.on_calls, self.calls = stall, on_calls, 0

    def __call__(self, seconds: float) -> None:
        self.calls += 1
        time.sleep(seconds + (self.stall if self.calls in self.on_calls else 0.0))


# On the real clock, send times are read by the caller just after acquire() returns: usually microseconds
# after the limiter's decision, but a busy machine can delay that read by a scheduler slice. Windows (and
# gaps) this much shorter than the spacing absorb it; the burst this guards against puts 2-3 requests
# within ~1 ms of each other, which they still catch. The virtual-clock test below checks strict windows.
MEASUREMENT_TOLERANCE = 0.05


def test_no_sliding_second_holds_more_than_the_budget_after_a_stall(monkeypatch) -> None:
    sleep = StallingSleep(0.35, on_calls={2})
    # Whichever code does the waiting (ours or pyrate-limiter's own loop), it wakes late once.
    monkeypatch.setattr(pyrate_limiter.limiter, "sleep", sleep)
    limiter = SmoothRateLimiter(5, window_ms=1000, sleep=sleep)

    sent = []
    for _ in range(10):
        limiter.acquire("app")
        sent.append(time.monotonic())

    assert sleep.calls >= 2, "the stall was not exercised"
    assert busiest_window(sent, 1.0 - MEASUREMENT_TOLERANCE) <= 5
    gaps = [later - earlier for earlier, later in zip(sent, sent[1:], strict=False)]
    assert min(gaps) >= 0.2 - MEASUREMENT_TOLERANCE  # evenly spaced, also right after the stall
    # The stall is lost time, not made up later, and nothing else waits longer than the spacing.
    assert sent[-1] - sent[0] < 9 * 0.2 + 0.35 + 0.6


class VirtualClock(AbstractClock):
    """Whole milliseconds, like pyrate-limiter's clocks; advanced only by the injected sleep."""

    def __init__(self) -> None:
        self.ms = 5_000_000.0

    def now(self) -> int:
        return int(self.ms)


def test_no_window_ever_exceeds_the_budget_with_stalls_on_a_virtual_clock() -> None:
    """Deterministic: 200 requests at 19/s on a virtual clock whose sleeps wake late now and then."""
    clock = VirtualClock()
    stalls = {3: 0.300, 10: 0.051, 11: 0.052, 40: 1.500, 41: 0.010, 77: 0.0526, 120: 0.9}
    calls = 0

    def sleep(seconds: float) -> None:
        nonlocal calls
        calls += 1
        clock.ms += (seconds + stalls.get(calls, 0.0)) * 1000 + 0.37  # sleeps always overshoot a little

    limiter = SmoothRateLimiter(19, window_ms=1000, sleep=sleep, clock=clock)
    sent = []
    for _ in range(200):
        limiter.acquire("app")
        sent.append(clock.ms / 1000)

    assert busiest_window(sent, 1.0) <= 19  # strict: the virtual clock has no measurement error
    gaps = [later - earlier for earlier, later in zip(sent, sent[1:], strict=False)]
    assert min(gaps) >= 1.001 / 19 - 0.0015
    # The budget is used: apart from the stalls, the pace is 19 per (1 s + 1 ms).
    assert sent[-1] - sent[0] < 199 * (1.001 / 19 + 0.0015) + sum(stalls.values())


def test_each_key_has_its_own_budget() -> None:
    limiter = SmoothRateLimiter(2, window_ms=1000)
    started = time.monotonic()
    for key in ("app-1", "app-2", "app-3"):
        limiter.acquire(key)
    assert time.monotonic() - started < 0.1


@pytest.mark.skipif(not os.environ.get("REDIS_URL"), reason="needs REDIS_URL (the shared, cross-process pacer)")
def test_two_processes_sharing_redis_keep_every_window_after_a_stall(monkeypatch) -> None:
    import redis

    client = redis.Redis.from_url(os.environ["REDIS_URL"])
    prefix = f"test-kis-gcra-{uuid.uuid4().hex[:8]}"
    sleep = StallingSleep(0.35, on_calls={3})
    monkeypatch.setattr(pyrate_limiter.limiter, "sleep", sleep)
    # Two limiter objects on one Redis key, as two processes (web and worker) would have.
    web, worker = (SmoothRateLimiter(5, window_ms=1000, redis=client, key_prefix=prefix, sleep=sleep)
                   for _ in range(2))
    sent = []
    try:
        for index in range(10):
            (web if index % 2 else worker).acquire("app")
            sent.append(time.monotonic())
    finally:
        client.delete(*client.keys(f"{prefix}*") or [prefix])
    assert busiest_window(sent, 1.0 - MEASUREMENT_TOLERANCE) <= 5
    assert sent[-1] - sent[0] < 9 * 0.2 + 0.35 + 0.6
