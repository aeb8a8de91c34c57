"""Celery tasks of the market app (scheduled by the beat configuration, not here)."""

from __future__ import annotations

import datetime as dt

from celery import shared_task

from market.analysis_service import analyze_week, latest_complete_week
from market.refresh import RefreshChunk, refresh_chunk, refresh_recent_bars, seconds_until_bars_final


@shared_task(name="market.analyze_last_week")
def analyze_last_week() -> dict:
    """Analyse the last complete ISO week and store it; returns the summary (JSON-friendly)."""
    return analyze_week(latest_complete_week()).as_dict()


@shared_task(name="market.refresh_recent_bars", bind=True)
def refresh_bars_after_close(self) -> dict:
    """After the close of each KRX trading day: the last days' bars of the watched universe. Fired
    before the day's bars are final (a late close, e.g. 16:30 on CSAT days), it runs again then.
    With several KIS app keys it is a dispatcher: one `market.refresh_bars_chunk` per key's share of
    the codes (market.refresh)."""
    wait = seconds_until_bars_final()
    if wait > 0:
        self.apply_async(countdown=wait)
        return {"deferred_seconds": round(wait)}
    summary = refresh_recent_bars(send_chunk=_send_chunk)
    return {"source": summary.source, "new_bars": summary.new_bars, "detail": summary.detail}


def _send_chunk(chunk: RefreshChunk) -> None:
    # The trading queue, by CELERY_TASK_ROUTES ("market.*"); only the account's reference travels, no key.
    refresh_bars_chunk.delay(chunk.account, chunk.codes, chunk.start.isoformat(), chunk.end.isoformat())


@shared_task(name="market.refresh_bars_chunk")
def refresh_bars_chunk(account: str, codes: list[str], start: str, end: str) -> dict:
    """One KIS app key's share of the after-close refresh, through its own account. Returns what was
    stored and what failed (a failure is also logged); the other chunks are not affected."""
    chunk = RefreshChunk(account, list(codes), dt.date.fromisoformat(start), dt.date.fromisoformat(end))
    return refresh_chunk(chunk).as_dict()
