"""Celery tasks of the market app (scheduled by the beat configuration, not here)."""

from __future__ import annotations

from celery import shared_task

from market.analysis_service import analyze_week, latest_complete_week
from market.refresh import refresh_recent_bars, seconds_until_bars_final


@shared_task(name="market.analyze_last_week")
def analyze_last_week() -> dict:
    """Analyse the last complete ISO week and store it; returns the summary (JSON-friendly)."""
    return analyze_week(latest_complete_week()).as_dict()


@shared_task(name="market.refresh_recent_bars", bind=True)
def refresh_bars_after_close(self) -> dict:
    """After the close of each KRX trading day: the last days' bars of the watched universe. Fired
    before the day's bars are final (a late close, e.g. 16:30 on CSAT days), it runs again then."""
    wait = seconds_until_bars_final()
    if wait > 0:
        self.apply_async(countdown=wait)
        return {"deferred_seconds": round(wait)}
    summary = refresh_recent_bars()
    return {"source": summary.source, "new_bars": summary.new_bars, "detail": summary.detail}
