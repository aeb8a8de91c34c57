"""Celery tasks of the orders app: thin triggers. Correctness lives in the database (unique
WeeklyRun/Order keys, the claim of a run), so a duplicated or late delivery is harmless."""

from __future__ import annotations

import datetime as dt
import logging

from celery import shared_task
from django.utils import timezone

from market.krx import SEOUL, is_trading_day, last_trading_day_of_week
from orders import common, controls, drift, fanout, reconciliation, weekly
from orders.models import Job, WeeklyDrift

logger = logging.getLogger(__name__)
RECONCILE_EVERY = dt.timedelta(minutes=5)  # the sweep's interval (orders.schedules)


def _send_account_job(job: str, account_id: int, config_ids: list[int], trading_date: str,
                      deadline: dt.datetime) -> None:
    # `expires`: a task still queued at the deadline is discarded by the worker (the sweep owns it).
    account_job.apply_async(args=(job, account_id, config_ids, trading_date, deadline.isoformat()),
                            queue=fanout.TRADING_QUEUE, expires=deadline)


@shared_task(name="orders.weekly_entry")
def weekly_entry() -> dict:
    """The dispatcher of the week's entry: one `orders.account_job` per broker account (its configs
    act only on the week's first trading day: place_weekly_buys returns None otherwise)."""
    return fanout.dispatch(Job.ENTRY, _send_account_job).summary()


@shared_task(name="orders.exit_checks")
def exit_checks() -> dict:
    """The dispatcher of the stop-loss/take-profit checks (the exit on the week's last trading day)."""
    return fanout.dispatch(Job.CHECK, _send_account_job).summary()


@shared_task(name="orders.account_job")
def account_job(job: str, account_id: int, config_ids: list[int], trading_date: str, deadline: str) -> dict:
    """One broker account's share of a weekly job, on any worker (orders.fanout)."""
    return fanout.run_account_job(job, account_id, config_ids, dt.date.fromisoformat(trading_date),
                                  dt.datetime.fromisoformat(deadline))


@shared_task(name="orders.reconcile")
def reconcile() -> dict:
    """The 5-minute sweep: close interrupted manual orders, reconcile every account the auto-trader
    uses (one `orders.reconcile_account` task per account, on any trading worker), resume interrupted
    runs, and start the weekly jobs that are due and have not run (a lost trigger costs one interval)."""
    manual = reconciliation.close_interrupted_manual_orders()  # an unknown one is reconciled by its account's task
    accounts = reconciliation.accounts_to_reconcile()
    # A task still queued when the next sweep comes is dropped (`expires`): the next sweep's task for the
    # same account does the same work, so a backlog never piles up behind a slow broker.
    for account_id in accounts:
        reconcile_account.apply_async((account_id,), queue=fanout.TRADING_QUEUE,
                                     expires=RECONCILE_EVERY.total_seconds())
    resumed = weekly.resume_interrupted_runs()
    started = weekly.run_due_jobs()
    return {"accounts": len(accounts), "resumed": [run.pk for run in resumed], "started": [run.pk for run in started],
            "manual": manual}


@shared_task(name="orders.reconcile_account")
def reconcile_account(account_id: int) -> dict:
    """One account's open orders and balance against the broker (idempotent: matching by order number)."""
    from accounts.models import BrokerAccount

    account = BrokerAccount.objects.filter(pk=account_id).first()
    if account is None:
        return {"skipped": "no such account"}
    summary = reconciliation.reconcile_account(account)
    return {"account": account_id, "error": summary.error or ""}


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
