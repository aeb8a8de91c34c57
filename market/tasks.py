"""Celery tasks of the market app (scheduled by the beat configuration, not here)."""

from __future__ import annotations

from celery import shared_task

from market.analysis_service import analyze_week, latest_complete_week


@shared_task(name="market.analyze_last_week")
def analyze_last_week() -> dict:
    """Analyse the last complete ISO week and store it; returns the summary (JSON-friendly)."""
    return analyze_week(latest_complete_week()).as_dict()
