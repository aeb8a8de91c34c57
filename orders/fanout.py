"""The weekly jobs fanned out per broker account, over any number of Celery workers and machines.

The beat's task (09:05 entry, the checks) is a dispatcher: it finds the active configs, groups them
by broker account and sends one task per account on the trading queue (``TRADING_QUEUE``) with a
deadline. An account's task runs that account's configs one after the other, in config order, so
one account's cash is never spent twice; different accounts — different KIS app keys, each with its
own rate limit — trade at the same moment on different workers.

Correctness stays where it was, in the database: each config's WeeklyRun is claimed before any
work and orders are unique by client order id, so a task delivered twice, to two workers, or after
the dispatcher ran twice places nothing twice. A task that starts after its deadline does nothing:
the reconciliation sweep's missed-slot policy (``weekly.run_due_jobs``) owns late work, with its
rules (entry cut-off, the day's close).
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable
from dataclasses import dataclass

from django.utils import timezone

from accounts.models import BrokerMode
from market.krx import SEOUL, is_trading_day, session_open_close
from strategies.models import StrategyConfig

from .common import active_configs, get_broker
from .models import Job, JobDispatch
from .weekly import entry_cutoff, place_weekly_buys, run_exit_checks

logger = logging.getLogger(__name__)

# Celery queues: trading work never waits behind a long backtest sweep or a report.
TRADING_QUEUE = "trading"
RESEARCH_QUEUE = "research"
DEFAULT_QUEUE = "celery"
ALL_QUEUES = (TRADING_QUEUE, RESEARCH_QUEUE, DEFAULT_QUEUE)

JOBS: dict[str, Callable] = {Job.ENTRY: place_weekly_buys, Job.CHECK: run_exit_checks}


@dataclass
class Dispatched:
    job: str
    trading_date: dt.date
    accounts: dict[int, list[int]]  # broker account → its config ids, in the order they run
    deadline: dt.datetime | None
    skipped: str = ""

    def summary(self) -> dict:
        if self.skipped:
            return {"skipped": self.skipped}
        return {"job": self.job, "trading_date": self.trading_date.isoformat(), "accounts": len(self.accounts),
                "configs": sum(len(ids) for ids in self.accounts.values()), "deadline": self.deadline.isoformat()}


def configs_by_account() -> dict[int, list[int]]:
    """The active configs with a broker account, grouped by account (accounts and configs by pk)."""
    groups: dict[int, list[int]] = {}
    for config_id, account_id in active_configs().values_list("pk", "broker_account_id"):
        groups.setdefault(account_id, []).append(config_id)
    return dict(sorted(groups.items()))


def job_deadline(job: str, trading_date: dt.date) -> dt.datetime:
    """After this moment an account's task does nothing: the entry's cut-off, else the day's close."""
    if job == Job.ENTRY:
        return dt.datetime.combine(trading_date, entry_cutoff(), tzinfo=SEOUL)
    return session_open_close(trading_date)[1]


def dispatch(job: str, send: Callable[[str, int, list[int], str, dt.datetime], object],
             now: dt.datetime | None = None) -> Dispatched:
    """One `send(job, account_id, config_ids, trading_date_iso, deadline)` per broker account with
    active configs, recorded as a JobDispatch. Nothing on a day without a KRX session."""
    if job not in JOBS:
        raise ValueError(f"job must be one of {sorted(JOBS)}, got {job!r}")
    now = now or timezone.now()
    today = now.astimezone(SEOUL).date()
    if not is_trading_day(today):
        return Dispatched(job, today, {}, None, skipped=f"{today} is not a KRX trading day")
    deadline = job_deadline(job, today)
    groups = configs_by_account()
    JobDispatch.objects.create(job=job, trading_date=today, dispatched_at=now, deadline=deadline,
                               accounts=len(groups), configs=sum(len(ids) for ids in groups.values()))
    for account_id, config_ids in groups.items():
        send(job, account_id, config_ids, today.isoformat(), deadline)
    return Dispatched(job, today, groups, deadline)


def run_account_job(job: str, account_id: int, config_ids: list[int], trading_date: dt.date,
                    deadline: dt.datetime | None = None, now: Callable[[], dt.datetime] = timezone.now) -> dict:
    """One account's share of a weekly job: its configs in order (still active, still on this
    account), each with the current time. Past the deadline nothing is done. One config's failure
    never stops the others. A KIS account's configs share one gateway (one KIS client: its token read
    once, its HTTP connections kept open); a paper account's broker runs on each config's clock, so
    each config makes its own."""
    if deadline is not None and now() > deadline:
        logger.warning("%s task of account %s arrived after its deadline %s: left to the sweep",
                       job, account_id, deadline)
        return {"skipped": "deadline passed"}
    function = JOBS[job]
    configs = list(StrategyConfig.objects.filter(pk__in=config_ids, is_active=True, broker_account_id=account_id)
                   .select_related("broker_account").order_by("pk"))
    broker = _shared_broker(configs[0].broker_account) if configs else None
    results: dict[int, str] = {}
    try:
        for config in configs:
            try:
                result = function(config, trading_date, now(), broker=broker)
            except Exception:
                logger.exception("weekly %s job of config %s failed", job, config.pk)
                results[config.pk] = "error"
                continue
            results[config.pk] = result.run.status if result and result.run else "not today"
    finally:
        if broker is not None and hasattr(broker, "close"):
            broker.close()
    return results


def _shared_broker(account):
    """The gateway an account's configs share, or None: a paper account (its broker takes each job's
    clock), or a KIS client that cannot be made (each config then fails on its own, with the reason)."""
    if account.mode == BrokerMode.PAPER:
        return None
    try:
        return get_broker(account, timezone.now())
    except Exception:
        logger.exception("the KIS client of account %s could not be made", account.pk)
        return None
