"""The weekly jobs: the entry on the week's first trading day, the checks, the exit on its last day,
and the sweep that starts what is due.

- One `WeeklyRun` per (config, week, job, trading date), claimed by a conditional UPDATE: a second
  or concurrent call of a job finds it running/complete and does nothing. A run left `running`
  longer than `STALE_AFTER` (a killed worker) is taken over by `resume_interrupted_runs`.
- A run plans its orders ONCE (`orders.planning`): every intent is committed (status pending,
  deterministic unique client order id) in one transaction with `run.planned = True`, before any
  request leaves (`orders.execution`). A resumed run never re-plans; it only sends what is pending.
- A run that cannot act yet for a reason that passes waits (`waiting`, `retry_at`) and is tried again
  by the sweep (`run_due_jobs`) within its slot's window; a run whose orders were all refused is
  blocked, never complete.

Missed-slot policy: the entry runs only on the week's first trading day, up to the entry cut-off
(13:00 Seoul, `settings.ORDERS_ENTRY_CUTOFF` overrides); later that day or on another day it is
`skipped` with the reason, and orders planned but not yet sent are cancelled. A check/exit is never
lost: any position opened before the current week's entry day is sold at the next check (the
backtest's "sold at its next available close" rule), so a missed Friday exit is caught up on Monday's
check. Orders planned for a past trading day are not sent late; the next check re-plans.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass, field

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import F, Q
from django.utils import timezone

from accounts.models import BrokerMode
from market.gateway import BrokerError, user_message_for
from market.kis.errors import KisError
from market.krx import SEOUL, first_trading_day_of_week, is_trading_day, last_trading_day_of_week, session_open_close
from strategies.models import StrategyConfig

from . import common
from .common import STALE_AFTER, active_configs, before_open, get_broker, jsonable, seoul
from .controls import entry_block_reason, halt_reason_for, job_alert, resolve_alert
from .execution import SendSession, send_order
from .models import AlertKind, Job, Order, OrderStatus, TradingAlert, WeeklyRun, WeeklyRunStatus
from .planning import BlockRun, PlannedOrder, SkipRun, plan_entry, plan_exit
from .positions import check_positions
from .reconciliation import reconcile_orders

logger = logging.getLogger(__name__)


DEFAULT_ENTRY_CUTOFF = dt.time(13, 0)


@dataclass
class JobResult:
    run: WeeklyRun | None
    planned: list[PlannedOrder] = field(default_factory=list)  # filled on dry runs


def entry_cutoff() -> dt.time:
    value = getattr(settings, "ORDERS_ENTRY_CUTOFF", None)
    if isinstance(value, dt.time):
        return value
    if value:
        return dt.time.fromisoformat(str(value))
    return DEFAULT_ENTRY_CUTOFF


def week_start_of(day: dt.date) -> dt.date:
    return day - dt.timedelta(days=day.weekday())


def iso_week_label(day: dt.date) -> str:
    year, week, _ = day.isocalendar()
    return f"{year}-W{week:02d}"


def sending_allowed(job: str, trading_date: dt.date, now: dt.datetime) -> tuple[bool, str]:
    local = seoul(now)
    if local.date() != trading_date:
        return False, f"{trading_date} 거래일이 지나 주문을 보내지 않습니다 (다음 점검에서 다시 판단합니다)."
    if job == Job.ENTRY and local.time() > entry_cutoff():
        return False, f"진입 마감 시각({entry_cutoff():%H:%M})이 지나 이번 주 진입을 건너뜁니다."
    return True, ""


def _finish(run: WeeklyRun, status: str, reason: str, now: dt.datetime) -> WeeklyRun:
    WeeklyRun.objects.filter(pk=run.pk).update(status=status, reason=reason, finished_at=now)
    run.refresh_from_db()
    return run


RETRY_INTERVAL = dt.timedelta(minutes=5)  # a waiting run is tried again at the next sweep (every 5 minutes)


class WaitRun(Exception):
    """Not now, for a reason that passes: the run waits and is tried again at `retry_at` (or the next
    sweep), within its slot's window (the missed-slot policy)."""

    def __init__(self, reason: str, retry_at: dt.datetime | None = None, *, alert: bool = True) -> None:
        super().__init__(reason)
        self.retry_at = retry_at
        self.alert = alert


def _wait(run: WeeklyRun, config: StrategyConfig, reason: str, retry_at: dt.datetime, now: dt.datetime,
          *, alert: bool) -> WeeklyRun:
    WeeklyRun.objects.filter(pk=run.pk).update(status=WeeklyRunStatus.WAITING, reason=reason, retry_at=retry_at,
                                                finished_at=now)
    run.refresh_from_db()
    if alert:
        job_alert(run, config, WeeklyRunStatus.WAITING, reason)
    return run


def _send_outcome(run: WeeklyRun, now: dt.datetime) -> None:
    """After the sends: raise WaitRun when orders are still pending (not sent for a reason that
    passes), BlockRun when every planned order was refused before reaching the broker. A run is
    complete only when its orders went out (or there was nothing to send)."""
    orders = list(run.orders.order_by("pk"))
    unsent = [order for order in orders if order.status == OrderStatus.PENDING and order.send_attempts == 0]
    if unsent:
        reason = unsent[0].error_message or "주문을 아직 보내지 못했습니다."
        if before_open(now, run.trading_date):
            opens = session_open_close(run.trading_date)[0]
            raise WaitRun(f"개장({opens:%H:%M}) 전이라 {len(unsent):,}건의 주문을 개장 후 보냅니다.", opens, alert=False)
        retry_at = now + RETRY_INTERVAL
        raise WaitRun(f"{len(unsent):,}건의 주문을 보내지 못해 {seoul(retry_at):%H:%M}에 다시 시도합니다: {reason}",
                      retry_at)
    refused = [order for order in orders if order.status == OrderStatus.REJECTED]
    if orders and len(refused) == len(orders):
        raise BlockRun(f"계획한 주문 {len(orders):,}건이 모두 거부되었습니다: {refused[0].error_message}")


def _finish_complete(run: WeeklyRun, config: StrategyConfig, reason: str, now: dt.datetime) -> WeeklyRun:
    run = _finish(run, WeeklyRunStatus.COMPLETE, reason, now)
    for alert in TradingAlert.objects.filter(account=config.broker_account, kind=AlertKind.JOB_FAILED,
                                             key=f"run-{run.pk}", resolved_at__isnull=True):
        resolve_alert(alert, user=None, note="자동 해소: 다시 시도해 작업을 마쳤습니다.")
    return run


def _store_intents(run: WeeklyRun, config: StrategyConfig, planned: list[PlannedOrder], trading_date: dt.date,
                   now: dt.datetime) -> None:
    """Every planned intent as a pending order, inside the caller's transaction, in one insert. The
    intents and the run's `planned` flag commit together, so none is stored yet unless another process
    got there meanwhile: then (a client order id taken) the stored ones are kept as they are, as
    `get_or_create` does, one by one."""
    def fields_of(item: PlannedOrder) -> dict:
        return {"run": run, "config": config, "broker_account": config.broker_account, "trading_date": trading_date,
                "code": item.code, "side": item.side, "order_type": item.order_type, "quantity": item.quantity,
                "price": item.price, "reference_price": item.reference_price, "reason": item.reason,
                "intent_at": now}

    if not planned:
        return
    try:
        with transaction.atomic():
            Order.objects.bulk_create([Order(client_order_id=item.client_order_id, **fields_of(item))
                                       for item in planned])
    except IntegrityError:
        for item in planned:
            Order.objects.get_or_create(client_order_id=item.client_order_id, defaults=fields_of(item))


def _run_job(config: StrategyConfig, job: str, trading_date: dt.date, now: dt.datetime, *,
             dry_run: bool = False, takeover: bool = False, broker=None) -> JobResult:
    """`broker`: the account's gateway when the caller has one (an account's task shares one KIS
    client, and its HTTP connections, among its configs); else made here."""
    planner = plan_entry if job == Job.ENTRY else plan_exit
    options = {"liquidate": True} if job == Job.EXIT else {}
    account = config.broker_account
    if dry_run:
        if account is None:
            return JobResult(run=None)
        planned, _ = planner(config, trading_date, now, broker or get_broker(account, now), **options)
        return JobResult(run=None, planned=planned)

    run, _ = WeeklyRun.objects.get_or_create(
        config=config, week_start=week_start_of(trading_date), job=job, trading_date=trading_date,
        defaults={"iso_week": iso_week_label(trading_date)},
    )
    claimable = Q(status__in=(WeeklyRunStatus.PENDING, WeeklyRunStatus.FAILED, WeeklyRunStatus.BLOCKED)) | Q(
        status=WeeklyRunStatus.WAITING) & (Q(retry_at__isnull=True) | Q(retry_at__lte=now))
    if takeover:
        claimable |= Q(status=WeeklyRunStatus.RUNNING, started_at__lte=now - STALE_AFTER)
    claimed = WeeklyRun.objects.filter(claimable, pk=run.pk).update(
        status=WeeklyRunStatus.RUNNING, started_at=now, attempts=F("attempts") + 1, reason="", finished_at=None,
        retry_at=None)
    if not claimed:  # complete, skipped, waiting for later, or running in another process
        run.refresh_from_db()
        return JobResult(run=run)
    run.refresh_from_db()

    if account is None:
        return JobResult(_finish(run, WeeklyRunStatus.SKIPPED, "브로커 계좌가 지정되지 않았습니다.", now))
    if account.mode != BrokerMode.PAPER and seoul(now).date() != seoul(timezone.now()).date():
        return JobResult(_finish(run, WeeklyRunStatus.BLOCKED,
                                 "모의투자/실전 계좌는 오늘 날짜로만 주문할 수 있습니다.", now))
    may_send, why_not = sending_allowed(job, trading_date, now)
    if may_send and before_open(now, trading_date):
        # A late open (the year's first session opens at 10:00): plan and send after the open, as the
        # backtest buys at the day's open; the sweep runs the job again then.
        opens = session_open_close(trading_date)[0]
        return JobResult(_wait(run, config, f"개장({opens:%H:%M}) 전이라 개장 후 다시 실행합니다.", opens, now,
                               alert=False))
    broker = broker or get_broker(account, now)
    try:  # the entry compares positions itself below, and fails closed when it cannot
        reconcile_orders(account, trading_date, broker=broker, now=now, positions=job != Job.ENTRY)
    except (BrokerError, KisError) as error:  # alerted by reconcile_orders
        return JobResult(_finish(run, WeeklyRunStatus.BLOCKED,
                                 f"주문 내역을 확인하지 못해 주문을 보내지 않았습니다: {user_message_for(error)}", now))
    if may_send and (not run.planned or run.orders.filter(status=OrderStatus.PENDING).exists()):
        # The kill switch: a run not planned yet plans nothing (it may run again after the resume);
        # orders already planned and still pending are refused by `send_order`, with the reason.
        halted = halt_reason_for(account)
        if halted and not run.planned:
            return JobResult(_finish(run, WeeklyRunStatus.BLOCKED, halted, now))
        if job == Job.ENTRY and not halted:
            try:
                check_positions(account, broker=broker, now=now)
            except (BrokerError, KisError) as error:  # alerted by check_positions
                return JobResult(_finish(run, WeeklyRunStatus.BLOCKED,
                                         f"잔고를 확인하지 못해 진입 주문을 보내지 않았습니다: {user_message_for(error)}",
                                         now))
            blocked = entry_block_reason(account)
            if blocked:
                return JobResult(_finish(run, WeeklyRunStatus.BLOCKED, blocked, now))
    try:
        orderable_cash = None  # the planner's read of the broker's orderable cash, when it planned just now
        if not run.planned:
            if not may_send:
                raise SkipRun(why_not)
            planned, info = planner(config, trading_date, now, broker, **options)
            with transaction.atomic():
                _store_intents(run, config, planned, trading_date, now)
                info["orders"] = [item.as_dict() for item in planned]
                WeeklyRun.objects.filter(pk=run.pk).update(planned=True, plan=jsonable(info))
            common.checkpoint("intents_committed", run)
            orderable_cash = info.get("orderable_cash")
        pending = list(run.orders.filter(status=OrderStatus.PENDING).order_by("pk"))
        # The sends share the account row, the previous closes (one query) and the cash the planner read,
        # kept between the buys (`execution.CashBook`); a resumed run's first buy reads the broker's.
        session = SendSession(account, codes={order.code for order in pending}, trading_date=trading_date,
                              orderable_cash=orderable_cash)
        for order in pending:
            send_order(order, broker, now, may_send, why_not, patient=True, session=session, loaded=True)
        if may_send:
            _send_outcome(run, now)
        else:
            lost = run.orders.filter(status=OrderStatus.CANCELLED, error_message=why_not).count()
            if lost and not run.orders.exclude(status=OrderStatus.CANCELLED).exists():
                raise SkipRun(f"{why_not} 보내지 못한 주문 {lost:,}건은 취소했습니다.")
            if lost:  # some went out before the slot passed: the run is done, the owner is told the rest
                reason = f"{why_not} 보내지 못한 주문 {lost:,}건은 취소했습니다."
                job_alert(run, config, WeeklyRunStatus.COMPLETE, reason)
                return JobResult(_finish(run, WeeklyRunStatus.COMPLETE, reason, now))
    except SkipRun as skip:
        run = _finish(run, WeeklyRunStatus.SKIPPED, str(skip), now)
        if run.attempts > 1:  # it had tried before: the owner should know the slot was lost
            job_alert(run, config, WeeklyRunStatus.SKIPPED, str(skip))
        return JobResult(run)
    except WaitRun as wait:
        return JobResult(_wait(run, config, str(wait), wait.retry_at or now + RETRY_INTERVAL, now, alert=wait.alert))
    except BlockRun as block:
        run = _finish(run, WeeklyRunStatus.BLOCKED, str(block), now)
        job_alert(run, config, WeeklyRunStatus.BLOCKED, str(block))
        return JobResult(run)
    except Exception as error:
        logger.exception("weekly %s job of config %s failed", job, config.pk)
        run = _finish(run, WeeklyRunStatus.FAILED, user_message_for(error), now)
        job_alert(run, config, WeeklyRunStatus.FAILED, user_message_for(error))
        return JobResult(run)
    reason = "" if may_send else why_not
    rejected = run.orders.filter(status=OrderStatus.REJECTED).count()
    if may_send and rejected:
        reason = f"주문 {run.orders.count():,}건 중 {rejected:,}건이 거부되었습니다 (주문 목록에 이유가 있습니다)."
    return JobResult(_finish_complete(run, config, reason, now))


def place_weekly_buys(config: StrategyConfig, trading_date: dt.date, now: dt.datetime, *,
                      dry_run: bool = False, broker=None) -> JobResult | None:
    """The entry job; does nothing (None) unless `trading_date` is its week's first trading day.
    `broker`: the config's account's gateway, when the caller shares one among its configs."""
    if not is_trading_day(trading_date) or first_trading_day_of_week(trading_date) != trading_date:
        return None
    return _run_job(config, Job.ENTRY, trading_date, now, dry_run=dry_run, broker=broker)


def run_exit_checks(config: StrategyConfig, trading_date: dt.date, now: dt.datetime, *,
                    dry_run: bool = False, liquidate: bool | None = None, broker=None) -> JobResult | None:
    """The close-window job: stop-loss/take-profit/sell signal; on the week's last trading day
    (or with `liquidate=True`) everything the config holds is sold. `broker` as for the entry."""
    if not is_trading_day(trading_date):
        return None
    if liquidate is None:
        liquidate = last_trading_day_of_week(trading_date) == trading_date
    return _run_job(config, Job.EXIT if liquidate else Job.CHECK, trading_date, now, dry_run=dry_run,
                    broker=broker)


def resume_interrupted_runs(now: dt.datetime | None = None) -> list[WeeklyRun]:
    """Take over runs left `running` longer than STALE_AFTER (a killed worker): reconcile first, then
    send what is still pending (or cancel it when its slot has passed), then complete the run."""
    now = now or timezone.now()
    resumed = []
    stale = WeeklyRun.objects.filter(status=WeeklyRunStatus.RUNNING, started_at__lte=now - STALE_AFTER)
    for run in stale.select_related("config").order_by("pk"):
        result = _run_job(run.config, run.job, run.trading_date, now, takeover=True)
        if result.run is not None:
            resumed.append(result.run)
    return resumed


ENTRY_SLOT, CHECK_SLOT, RECONCILE_DELAY = dt.time(9, 5), dt.time(15, 15), dt.timedelta(minutes=5)


ENTRY_TASK, CHECK_TASK = "orders.weekly_entry", "orders.exit_checks"


def scheduled_slot(task: str, default: dt.time) -> dt.time | None:
    """The slot of a weekly job as the beat schedule has it (editable in the admin): the crontab's
    single hour and minute, `default` when the crontab is not that simple, None when the periodic
    task is missing or disabled — then the sweep does not start the job either."""
    from django_celery_beat.models import PeriodicTask

    periodic = PeriodicTask.objects.filter(task=task).select_related("crontab").order_by("pk").first()
    if periodic is None or not periodic.enabled:
        return None
    crontab = periodic.crontab
    if crontab is not None and crontab.hour.isdigit() and crontab.minute.isdigit():
        return dt.time(int(crontab.hour), int(crontab.minute))
    return default


def _run_is_due(config: StrategyConfig, job: str, trading_date: dt.date, now: dt.datetime) -> bool:
    """No run yet, or one the sweep may take again (pending, failed, blocked, or waiting until now)."""
    run = WeeklyRun.objects.filter(config=config, week_start=week_start_of(trading_date), job=job,
                                   trading_date=trading_date).first()
    if run is None:
        return True
    if run.status == WeeklyRunStatus.WAITING:
        return run.retry_at is None or run.retry_at <= now
    return run.status in (WeeklyRunStatus.PENDING, WeeklyRunStatus.FAILED, WeeklyRunStatus.BLOCKED)


def run_due_jobs(now: dt.datetime | None = None) -> list[WeeklyRun]:
    """The safety net under the beat (run by the reconciliation sweep every 5 minutes): a trigger that
    was lost, killed before its run row existed or never delivered costs one sweep interval, not the
    week. Starts every weekly job that is due today and has no run yet, or whose run waits, failed or
    was blocked, within the missed-slot policy:

    - the entry from its slot (or the day's open, if later) until the entry cut-off, on the week's
      first trading day;
    - the check (the exit on the week's last trading day) from its slot until the day's close;
    - any waiting run whose retry time has come, whatever its day (a slot that has passed ends it:
      skipped, its unsent orders cancelled, with the reason).

    The jobs' own claims keep every run single: a run the beat started at the same moment is left alone."""
    now = now or timezone.now()
    local = seoul(now)
    today = local.date()
    runs: list[WeeklyRun] = []
    waiting = (WeeklyRun.objects.filter(status=WeeklyRunStatus.WAITING, retry_at__lte=now)
               .select_related("config").order_by("pk"))
    for run in waiting:
        if not run.config.is_active:
            runs.append(_drop_waiting_run(run, now))
        else:
            runs.append(_run_job(run.config, run.job, run.trading_date, now).run)
    if not is_trading_day(today):
        return runs
    opens, closes = session_open_close(today)
    entry_slot = scheduled_slot(ENTRY_TASK, ENTRY_SLOT)
    check_slot = scheduled_slot(CHECK_TASK, CHECK_SLOT)
    entry_due = (entry_slot is not None and first_trading_day_of_week(today) == today
                 and max(dt.datetime.combine(today, entry_slot, tzinfo=SEOUL), opens) <= local
                 and local.time() <= entry_cutoff())
    check_due = check_slot is not None and max(dt.datetime.combine(today, check_slot, tzinfo=SEOUL), opens) <= local < closes
    exit_day = last_trading_day_of_week(today) == today
    for config in active_configs():
        try:
            if entry_due and _run_is_due(config, Job.ENTRY, today, now):
                result = place_weekly_buys(config, today, now)
                if result is not None and result.run is not None:
                    runs.append(result.run)
            if check_due and _run_is_due(config, Job.EXIT if exit_day else Job.CHECK, today, now):
                result = run_exit_checks(config, today, now)
                if result is not None and result.run is not None:
                    runs.append(result.run)
        except Exception:  # one config's failure never stops the others
            logger.exception("the sweep could not start the due jobs of config %s", config.pk)
    return runs


def _drop_waiting_run(run: WeeklyRun, now: dt.datetime) -> WeeklyRun:
    """A waiting run of a strategy that was switched off: its unsent orders are cancelled, the run skipped."""
    reason = "전략이 비활성화되어 남은 작업을 건너뜁니다."
    if WeeklyRun.objects.filter(pk=run.pk, status=WeeklyRunStatus.WAITING).update(
            status=WeeklyRunStatus.SKIPPED, reason=reason, finished_at=now, retry_at=None):
        run.orders.filter(status=OrderStatus.PENDING, send_attempts=0).update(
            status=OrderStatus.CANCELLED, error_message="전략이 비활성화되어 보내지 않았습니다.")
    run.refresh_from_db()
    return run
