"""What every process (web, workers, beat) shares about KIS: the access token and the request budget.

- Tokens live in the database (KisAccessToken, encrypted). Issuing is serialised per app key by a
  row lock (SELECT ... FOR UPDATE) on databases that have one, else by a file lock: SQLite means one
  machine, where a file lock covers every process. Under a caller's deadline (a web request's,
  market.kis.deadline) the lock is waited for only until the deadline, then KisDeadlineExceeded: the
  holder may be a worker waiting out KIS's one-per-minute token limit.
- The request budget (evenly spaced requests, market.kis.ratelimit) is kept in Redis when REDIS_URL
  is set (all processes, all machines), else in this process.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import hashlib
import time
from collections.abc import Iterator
from pathlib import Path

from django.conf import settings
from django.db import DatabaseError, connection, transaction

from market.kis.deadline import Deadline, current_deadline
from market.kis.ratelimit import RateLimiter, SmoothRateLimiter, budget_for, shared_rate_limiter
from market.models import KisAccessToken


class DatabaseTokenStore:
    """market.kis.token_store.TokenStore over the KisAccessToken table."""

    def get(self, key: str) -> tuple[str, dt.datetime] | None:
        row = KisAccessToken.objects.filter(key=key).first()
        if row is None or not row.token:
            return None
        return row.token, row.expires_at

    def set(self, key: str, token: str, expires_at: dt.datetime) -> None:
        KisAccessToken.objects.update_or_create(key=key, defaults={"token": token, "expires_at": expires_at})

    def delete(self, key: str) -> None:
        KisAccessToken.objects.filter(key=key).update(token="")

    @contextlib.contextmanager
    def lock(self, key: str) -> Iterator[None]:
        budget = current_deadline()
        if connection.features.has_select_for_update:
            # The row to lock is created first, in its own (auto)commit: a second process then finds it
            # instead of waiting on the first one's uncommitted insert, which no time-out would bound.
            KisAccessToken.objects.get_or_create(
                key=key, defaults={"token": "", "expires_at": dt.datetime(2000, 1, 1, tzinfo=dt.UTC)}
            )
            with transaction.atomic():
                if budget is None or not connection.features.has_select_for_update_nowait:
                    KisAccessToken.objects.select_for_update().get(key=key)
                else:
                    _lock_row_within(key, budget)
                yield
            return
        lock_dir = Path(settings.BASE_DIR) / "var" / "locks"
        lock_dir.mkdir(parents=True, exist_ok=True)
        digest = hashlib.sha256(key.encode()).hexdigest()[:32]
        with open(lock_dir / f"kis-token-{digest}.lock", "a+") as handle:
            if budget is None:
                fcntl.flock(handle, fcntl.LOCK_EX)
            else:
                _poll_within(budget, lambda: _try_flock(handle))
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)


LOCK_POLL_SECONDS = 0.05


def _poll_within(budget: Deadline, try_lock) -> None:
    """Retry a non-blocking lock attempt until it succeeds or the deadline passes (KisDeadlineExceeded)."""
    while not try_lock():
        if budget.remaining() <= LOCK_POLL_SECONDS:
            raise budget.exceeded("token_lock")
        time.sleep(LOCK_POLL_SECONDS)


def _try_flock(handle) -> bool:
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


def _lock_row_within(key: str, budget: Deadline) -> None:
    def try_lock() -> bool:
        try:
            with transaction.atomic():  # a savepoint: a refused NOWAIT leaves the transaction usable
                KisAccessToken.objects.select_for_update(nowait=True).get(key=key)
        except DatabaseError:
            return False
        return True

    _poll_within(budget, try_lock)


_redis_limiters: dict[tuple[str, str], SmoothRateLimiter] = {}


def rate_limiter_for(kis_mode: str) -> RateLimiter:
    """The limiter for KIS's "real" or "paper" (모의투자) host: 19/s or 2 per 1.1 s per app key."""
    if not settings.REDIS_URL:
        return shared_rate_limiter(kis_mode)
    cache_key = (settings.REDIS_URL, kis_mode)
    if cache_key not in _redis_limiters:
        import redis

        requests, window_ms = budget_for(kis_mode)
        _redis_limiters[cache_key] = SmoothRateLimiter(
            requests, window_ms=window_ms, redis=redis.Redis.from_url(settings.REDIS_URL)
        )
    return _redis_limiters[cache_key]
