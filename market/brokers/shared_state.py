"""What every process (web, workers, beat) shares about KIS: the access token and the request budget.

- Tokens live in the database (KisAccessToken, encrypted). Issuing is serialised per app key by a
  row lock (SELECT ... FOR UPDATE) on databases that have one, else by a file lock: SQLite means one
  machine, where a file lock covers every process.
- The request budget is a pyrate-limiter bucket in Redis when REDIS_URL is set (all processes, all
  machines), else the KIS client's in-process limiter.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import hashlib
from collections.abc import Iterator
from pathlib import Path

from django.conf import settings
from django.db import connection, transaction

from market.kis.ratelimit import (
    PAPER_REQUESTS_PER_SECOND,
    REAL_REQUESTS_PER_SECOND,
    RateLimiter,
    shared_rate_limiter,
)
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
        if connection.features.has_select_for_update:
            with transaction.atomic():
                KisAccessToken.objects.get_or_create(
                    key=key, defaults={"token": "", "expires_at": dt.datetime(2000, 1, 1, tzinfo=dt.UTC)}
                )
                KisAccessToken.objects.select_for_update().get(key=key)
                yield
            return
        lock_dir = Path(settings.BASE_DIR) / "var" / "locks"
        lock_dir.mkdir(parents=True, exist_ok=True)
        digest = hashlib.sha256(key.encode()).hexdigest()[:32]
        with open(lock_dir / f"kis-token-{digest}.lock", "a+") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)


class RedisRateLimiter:
    """market.kis.ratelimit.RateLimiter shared through Redis (pyrate-limiter's Redis bucket)."""

    def __init__(self, redis_url: str, requests_per_second: int, throttle_pause: float = 0.5) -> None:
        import redis

        self._redis = redis.Redis.from_url(redis_url)
        self._rate = requests_per_second
        self._throttle_pause = throttle_pause
        self._limiters: dict = {}

    def _limiter(self, key: str):
        from pyrate_limiter import Duration, Limiter, Rate
        from pyrate_limiter.buckets.redis_bucket import RedisBucket

        if key not in self._limiters:
            bucket = RedisBucket.init([Rate(self._rate, Duration.SECOND)], self._redis, f"kis-rate:{key}")
            self._limiters[key] = Limiter(bucket)
        return self._limiters[key]

    def acquire(self, key: str) -> None:
        import time

        paused_until = self._redis.get(f"kis-rate-pause:{key}")
        if paused_until:
            time.sleep(max(0.0, float(paused_until) - time.time()))
        self._limiter(key).try_acquire("kis", blocking=True, timeout=60)

    def on_throttled(self, key: str) -> None:
        import time

        if self._throttle_pause > 0:
            self._redis.set(f"kis-rate-pause:{key}", time.time() + self._throttle_pause, px=int(self._throttle_pause * 1000))


_redis_limiters: dict[tuple[str, str], RedisRateLimiter] = {}


def rate_limiter_for(kis_mode: str) -> RateLimiter:
    """The limiter for KIS's "real" or "paper" (모의투자) host: 19 or 2 requests a second per key."""
    if not settings.REDIS_URL:
        return shared_rate_limiter(kis_mode)
    cache_key = (settings.REDIS_URL, kis_mode)
    if cache_key not in _redis_limiters:
        rate = REAL_REQUESTS_PER_SECOND if kis_mode == "real" else PAPER_REQUESTS_PER_SECOND
        _redis_limiters[cache_key] = RedisRateLimiter(settings.REDIS_URL, rate)
    return _redis_limiters[cache_key]
