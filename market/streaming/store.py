"""The streaming path's database side: 1-minute candles (``IntradayBar``) and the reference prices the
paper simulator starts from. Called from the streamer's worker threads (never its event loop) and from
the pages (``intraday_bars``)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable

from django.db import DEFAULT_DB_ALIAS, connections, transaction
from django.db.models import OuterRef, Subquery

from market.krx import SEOUL, previous_trading_day
from market.models import DailyBar, Instrument, IntradayBar
from market.streaming.candles import Candle

KEEP_TRADING_DAYS = 5
UPDATED_FIELDS = ["open", "high", "low", "close", "volume"]


def save_candles(source: str, candles: Iterable[Candle], *, using: str = DEFAULT_DB_ALIAS) -> int:
    """Insert or replace candles (one multi-row upsert): a candle written again for the same source, code
    and minute replaces the stored one (the minute so far, then the finished minute). Returns how many
    candles were written."""
    if source not in IntradayBar.Source.values:
        raise ValueError(f"unknown intraday source {source!r}")
    latest: dict[tuple[str, dt.datetime], Candle] = {}
    for candle in candles:  # a later candle for the same minute wins (one statement may not hold both)
        latest[(candle.code, candle.minute)] = candle
    if not latest:
        return 0
    rows = [
        IntradayBar(source=source, code=c.code, minute=c.minute, open=int(c.open), high=int(c.high),
                    low=int(c.low), close=int(c.close), volume=int(c.volume))
        for c in latest.values()
    ]
    connection = connections[using]
    # MySQL/MariaDB's ON DUPLICATE KEY UPDATE takes no conflict target; SQLite's ON CONFLICT needs one.
    target = ["source", "code", "minute"] if connection.features.supports_update_conflicts_with_target else None
    with transaction.atomic(using=using):
        IntradayBar.objects.using(using).bulk_create(
            rows, update_conflicts=True, unique_fields=target, update_fields=UPDATED_FIELDS,
        )
    return len(rows)


def _day_bounds(day: dt.date) -> tuple[dt.datetime, dt.datetime]:
    start = dt.datetime.combine(day, dt.time(0), tzinfo=SEOUL)
    return start, start + dt.timedelta(days=1)


def intraday_bars(source: str, code: str, day: dt.date) -> list[dict]:
    """The stored 1-minute candles of one symbol on one (Seoul) day, oldest first:
    ``{"minute": ISO time in Seoul, "time": epoch seconds, "open", "high", "low", "close", "volume"}``."""
    start, end = _day_bounds(day)
    rows = (IntradayBar.objects.filter(source=source, code=code, minute__gte=start, minute__lt=end)
            .order_by("minute").values_list("minute", *UPDATED_FIELDS))
    bars = []
    for minute, open_, high, low, close, volume in rows:
        minute = minute.astimezone(SEOUL)
        bars.append({"minute": minute.isoformat(), "time": int(minute.timestamp()), "open": open_,
                     "high": high, "low": low, "close": close, "volume": volume})
    return bars


def prune_intraday(keep_trading_days: int = KEEP_TRADING_DAYS, today: dt.date | None = None) -> int:
    """Delete the candles older than the last ``keep_trading_days`` trading days up to ``today``;
    returns how many rows went."""
    if keep_trading_days < 1:
        raise ValueError("keep at least one trading day")
    today = today or dt.datetime.now(SEOUL).date()
    first_kept = previous_trading_day(today + dt.timedelta(days=1))  # the latest trading day <= today
    for _ in range(keep_trading_days - 1):
        first_kept = previous_trading_day(first_kept)
    cutoff = _day_bounds(first_kept)[0]
    deleted, _ = IntradayBar.objects.filter(minute__lt=cutoff).delete()
    return deleted


def previous_closes(codes: Iterable[str], day: dt.date) -> dict[str, int]:
    """Each code's last stored daily close before ``day`` (the reference for ``day``'s price limits);
    codes without a stored bar are left out."""
    last_close = (DailyBar.objects.filter(instrument=OuterRef("pk"), date__lt=day)
                  .order_by("-date").values("close")[:1])
    rows = (Instrument.objects.filter(code__in=list(codes))
            .annotate(last_close=Subquery(last_close)).values_list("code", "last_close"))
    return {code: int(close) for code, close in rows if close is not None}
