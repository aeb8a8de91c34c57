"""Celery tasks of the orders app: thin triggers. Correctness lives in the database (unique
WeeklyRun/Order keys, the claim of a run), so a duplicated or late delivery is harmless."""

from __future__ import annotations

import datetime as dt
import logging

from celery import shared_task
from django.utils import timezone

from market.krx import SEOUL, is_trading_day, last_trading_day_of_week
from orders import common, controls, drift, reconciliation, weekly
from orders.models import WeeklyDrift

logger = logging.getLogger(__name__)


def _each_config(job) -> dict:
    now = timezone.now()
    today = now.astimezone(SEOUL).date()
    results = {}
    if not is_trading_day(today):
        return {"skipped": f"{today} is not a KRX trading day"}
    for config in common.active_configs():
        try:
            result = job(config, today, now)
        except Exception:  # one config's failure never stops the others
            logger.exception("weekly job for config %s failed", config.pk)
            results[config.pk] = "error"
            continue
        results[config.pk] = result.run.status if result and result.run else "not today"
    return results


@shared_task(name="orders.weekly_entry")
def weekly_entry() -> dict:
    """Only acts on the week's first trading day (place_weekly_buys returns None otherwise)."""
    return _each_config(weekly.place_weekly_buys)


@shared_task(name="orders.exit_checks")
def exit_checks() -> dict:
    return _each_config(weekly.run_exit_checks)


@shared_task(name="orders.reconcile")
def reconcile() -> dict:
    """The 5-minute sweep: close interrupted manual orders, reconcile, resume interrupted runs, and
    start the weekly jobs that are due and have not run (a lost trigger costs one interval)."""
    manual = reconciliation.close_interrupted_manual_orders()  # an unknown one is reconciled right below
    summaries = reconciliation.reconcile_open_orders()
    resumed = weekly.resume_interrupted_runs()
    started = weekly.run_due_jobs()
    return {"accounts": len(summaries), "failed": sorted(pk for pk, s in summaries.items() if s.error),
            "resumed": [run.pk for run in resumed], "started": [run.pk for run in started], "manual": manual}


@shared_task(name="orders.compare_live_backtest")
def compare_live_backtest(week: str | None = None) -> dict:
    """After the week's exit (and the after-close bar refresh): each active config's live week against
    its backtest (`orders.drift`). Without `week` it acts only on the week's last trading day, for that
    week; idempotent (a second delivery recomputes the same rows and raises no second alert)."""
    if week:
        monday = dt.date.fromisoformat(week)
    else:
        today = timezone.now().astimezone(SEOUL).date()
        if not is_trading_day(today) or last_trading_day_of_week(today) != today:
            return {"skipped": f"{today} is not the last KRX trading day of its week"}
        monday = drift.week_monday(today)
    results = drift.compare_configs(common.active_configs(), monday)
    return {pk: ("alert" if result.alert else "ok") if isinstance(result, WeeklyDrift) else result
            for pk, result in results.items()}


@shared_task(name=controls.NOTIFY_TASK, ignore_result=True)
def notify_alert(alert_id: int) -> None:
    controls.notify(alert_id)
