"""Health checks behind GET /healthz: the database, Redis when configured, the broker mode."""

from __future__ import annotations

from dataclasses import dataclass, field

from django.conf import settings
from django.db import connection


@dataclass
class HealthReport:
    checks: dict[str, str] = field(default_factory=dict)

    @property
    def healthy(self) -> bool:
        return all(value in ("ok", "not configured") for value in self.checks.values())

    def as_dict(self) -> dict:
        return {
            "status": "ok" if self.healthy else "error",
            "version": settings.VERSION,
            "broker_mode": settings.BROKER_BACKEND,
            "checks": self.checks,
        }


def check_database() -> str:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    except Exception as exc:  # any driver error means "down"; the type is reported, not raised
        return f"error: {type(exc).__name__}: {exc}"
    return "ok"


def check_redis(url: str | None = None) -> str:
    url = settings.REDIS_URL if url is None else url
    if not url:
        return "not configured"
    import redis

    try:
        client = redis.Redis.from_url(url, socket_connect_timeout=1, socket_timeout=1)
        client.ping()
    except Exception as exc:
        return f"error: {type(exc).__name__}"
    return "ok"


def health_report() -> HealthReport:
    return HealthReport(checks={"database": check_database(), "redis": check_redis()})
