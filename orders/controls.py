"""The kill switch, the alerts and their notifications.

Kill switch: one TradingControl row for everything (scope "global") and at most one per broker
account. A halt blocks every new order in its scope — the jobs end `blocked` before planning, and
`orders.execution` refuses what is still pending (rejected, `kill_switch`) — while orders already
sent are still reconciled. The dashboard toggle, the API and the admin actions all go through here.

Alerts: one open alert per (account, kind, key); a new one is notified (e-mail, webhook) after its
transaction commits, through `queue_notification` (the one way a notification is queued), and a
notification failure never reaches the caller. An open alert with `blocks_entries` stops the
account's entry job until someone resolves it."""

from __future__ import annotations

import logging
import time

from django.db import transaction
from django.utils import timezone

from accounts import audit
from accounts.models import BrokerAccount, SecurityEventKind
from strategies.models import StrategyConfig

from . import notifications
from .common import jsonable
from .models import AlertKind, Order, OrderSide, TradingAlert, TradingControl, WeeklyRun, WeeklyRunStatus

logger = logging.getLogger(__name__)

NOTIFY_TASK = "orders.notify_alert"  # orders.tasks.notify_alert


def real_user(user):
    return user if getattr(user, "is_authenticated", False) else None


def _trading_control(account: BrokerAccount | None) -> TradingControl:
    if account is not None and account.pk is None:
        raise ValueError("the broker account must be saved first")
    control, _ = TradingControl.objects.get_or_create(
        scope=TradingControl.scope_for(account), defaults={"account": account})
    return control


def halt_trading(*, account: BrokerAccount | None = None, user=None, reason: str = "") -> TradingControl:
    """Kill switch on, for one account or (account None) for everything. Idempotent: halting again
    only records the new reason and who."""
    reason = (reason or "").strip()
    control = _trading_control(account)
    with transaction.atomic():  # the switch and its audit row together
        TradingControl.objects.filter(pk=control.pk).update(
            halted=True, halt_reason=reason, halted_at=timezone.now(), halted_by=real_user(user))
        control.refresh_from_db()
        _audit_kill_switch(SecurityEventKind.KILL_SWITCH_ON, control, account, user, reason=reason)
    logger.warning("trading halted (%s) by %s: %s", control.scope, getattr(real_user(user), "pk", None), reason)
    return control


def resume_trading(*, account: BrokerAccount | None = None, user=None) -> TradingControl:
    """Kill switch off for that scope (a global halt still stops an account resumed on its own)."""
    control = _trading_control(account)
    with transaction.atomic():  # the switch and its audit row together
        TradingControl.objects.filter(pk=control.pk).update(halted=False, halt_reason="", halted_at=None,
                                                            halted_by=None)
        control.refresh_from_db()
        _audit_kill_switch(SecurityEventKind.KILL_SWITCH_OFF, control, account, user)
    logger.warning("trading resumed (%s) by %s", control.scope, getattr(real_user(user), "pk", None))
    return control


def _audit_kill_switch(kind, control: TradingControl, account: BrokerAccount | None, user, *, reason: str = "") -> None:
    """The audit trail's row: an account's switch is its owner's event (`user` the actor when someone
    else, staff), the global switch the event of whoever threw it."""
    actor = real_user(user)
    detail = {"scope": control.scope, **({"reason": reason[:200]} if reason else {})}
    audit.record_event(kind, user=account.owner if account is not None else actor, broker_account=account,
                       actor=actor, detail=detail)


def halt_reason_for(account: BrokerAccount | None) -> str | None:
    """Why `account` may not send new orders (the global halt first, then the account's), in Korean;
    None when trading is allowed."""
    scopes = [TradingControl.GLOBAL] + ([TradingControl.scope_for(account)] if account is not None else [])
    halted = {control.scope: control for control in TradingControl.objects.filter(scope__in=scopes, halted=True)}
    control = halted.get(TradingControl.GLOBAL)
    prefix = "전체 자동매매가 중지되어(킬 스위치) 새 주문을 보내지 않습니다"
    if control is None and account is not None:
        control = halted.get(TradingControl.scope_for(account))
        prefix = "이 계좌의 자동매매가 중지되어(킬 스위치) 새 주문을 보내지 않습니다"
    if control is None:
        return None
    return f"{prefix}: {control.halt_reason}" if control.halt_reason else f"{prefix}."


def raise_alert(account: BrokerAccount | None, kind: str, message: str, *, key: str = "",
                details: dict | None = None, blocks_entries: bool = False) -> tuple[TradingAlert, bool]:
    """Open an alert, or return the open one with the same (account, kind, key) unchanged
    (created False, nothing notified).

    The notification is queued when the outermost transaction commits (`on_commit`), never before:
    a worker never looks for an alert that is not committed yet, and an alert rolled back with its
    caller's transaction is never notified. Called outside any transaction, the alert's own
    transaction is tried again when the database reports a lock conflict (MySQL's deadlock 1213 or
    lock-wait time-out 1205, SQLite's busy time-out): what it reports (a refused order) is already
    stored, so a busy moment must not lose it. Inside a caller's transaction the error goes up (the
    caller's transaction is lost with it)."""
    from django.db import OperationalError

    key = key[:120]
    tries = 1 if transaction.get_connection().in_atomic_block else 3
    for attempt in range(1, tries + 1):
        try:
            with transaction.atomic():
                if account is not None:  # serialises alert creation per account: two reconciliations make one
                    list(BrokerAccount.objects.select_for_update().filter(pk=account.pk).values_list("pk",
                                                                                                 flat=True))
                existing = (TradingAlert.objects.filter(account=account, kind=kind, key=key,
                                                        resolved_at__isnull=True).order_by("pk").first())
                if existing is not None:
                    return existing, False
                alert = TradingAlert.objects.create(
                    account=account, kind=kind, key=key, message=message, details=jsonable(details or {}),
                    blocks_entries=blocks_entries,
                    # A fill is news, not a problem: notified, but never waits for someone to resolve it.
                    resolved_at=timezone.now() if kind == AlertKind.FILLED else None,
                )
                transaction.on_commit(lambda alert_id=alert.pk: queue_notification(alert_id), robust=True)
            break
        except OperationalError as error:
            if attempt == tries or not lock_conflict(error):
                raise
            logger.warning("alert %s %s: %s; trying again", kind, key, error)
            time.sleep(0.2 * attempt)
    logger.log(logging.INFO if kind == AlertKind.FILLED else logging.WARNING, "alert %s %s (account %s): %s",
               alert.pk, kind, getattr(account, "pk", None), message)
    return alert, True


def lock_conflict(error: Exception) -> bool:
    """A transaction lost to another one and may simply be tried again: MySQL's deadlock (1213) or
    lock-wait time-out (1205), SQLite's busy time-out ("database is locked")."""
    return error.args[:1] in ((1205,), (1213,)) or "database is locked" in str(error)


def queue_notification(alert_id: int) -> None:
    """Hand the e-mail/webhook to a Celery worker, so a slow webhook never delays an order; when the
    queue cannot take it, notify here (a notification is never dropped for want of a worker). The task
    is looked up by name in the Celery app (`orders.tasks` registers it), so this module does not
    import the tasks that call it."""
    from celery import current_app

    try:
        current_app.tasks[NOTIFY_TASK].delay(alert_id)
    except Exception:
        logger.warning("could not queue the notification of alert %s; sending it now", alert_id, exc_info=True)
        notify(alert_id)


def notify(alert_id: int) -> None:
    """Send an alert's notifications (e-mail, webhook) and stamp it notified; never raises. An alert
    already notified (a redelivered task) is not sent again."""
    try:
        alert = TradingAlert.objects.select_related("account__owner").filter(pk=alert_id).first()
        if alert is None:
            # Queued only once committed (raise_alert), so the row is missing only when the task came
            # from a process on another database sharing this queue (a drill's scratch database).
            logger.warning("alert %s does not exist in this database: nothing to notify", alert_id)
            return
        if alert.notified_at is not None:
            return
        if notifications.notify_alert(alert):
            TradingAlert.objects.filter(pk=alert_id).update(notified_at=timezone.now())
    except Exception:  # a notification never breaks trading
        logger.exception("notifying alert %s failed", alert_id)


def resolve_alert(alert: TradingAlert, *, user, note: str = "") -> TradingAlert:
    """Close an alert, recording who, when and why. A resolved position mismatch is acknowledged:
    the same difference is not reported again (a new difference is). Resolving twice keeps the first."""
    TradingAlert.objects.filter(pk=alert.pk, resolved_at__isnull=True).update(
        resolved_at=timezone.now(), resolved_by=real_user(user), resolution_note=(note or "").strip())
    alert.refresh_from_db()
    return alert


def entry_block_reason(account: BrokerAccount) -> str | None:
    """Why the account's entries are blocked by open alerts (Korean), or None."""
    blocking = TradingAlert.objects.filter(account=account, blocks_entries=True, resolved_at__isnull=True)
    first = blocking.order_by("created_at", "pk").first()
    if first is None:
        return None
    count = blocking.count()
    more = f" (외 {count - 1}건)" if count > 1 else ""
    return (f"해결되지 않은 알림 때문에 신규 진입을 막았습니다: {first.message}{more} "
            f"확인 후 알림을 해결하면 다시 진입합니다.")


def side_label(side: str) -> str:
    return "매수" if side == OrderSide.BUY else "매도"


def order_alert(order: Order, kind: str, message: str, details: dict | None = None, *,
                 update: bool = False) -> None:
    """The order's alert (one open per order and kind). With `update`, an open one takes the new
    message and details (the candidates of an unknown order change as the broker's rows do)."""
    text = (f"{order.code} {side_label(order.side)} {order.quantity:,}주 "
            f"({order.get_reason_display()}, {order.trading_date}): {message}")
    details = {"order": order.pk, "client_order_id": order.client_order_id, **(details or {})}
    alert, created = raise_alert(order.broker_account, kind, text, key=f"order-{order.pk}", details=details)
    if update and not created and (alert.message, alert.details) != (text, jsonable(details)):
        TradingAlert.objects.filter(pk=alert.pk).update(message=text, details=jsonable(details))


def close_order_alerts(order: Order, note: str, *, user=None) -> None:
    """Resolve the open "outcome unknown" alert of an order once its fate is known."""
    for alert in TradingAlert.objects.filter(account_id=order.broker_account_id, kind=AlertKind.ORDER_UNKNOWN,
                                             key=f"order-{order.pk}", resolved_at__isnull=True):
        resolve_alert(alert, user=user, note=note)


def job_alert(run: WeeklyRun, config: StrategyConfig, status: str, reason: str) -> None:
    """A JOB_FAILED alert for a failed, blocked, waiting or lost (skipped after trying) run; one open
    alert per run, updated as the run's reason changes; never raises (the run is already finished)."""
    verb = {WeeklyRunStatus.FAILED: "실패했습니다", WeeklyRunStatus.WAITING: "아직 끝나지 않았습니다(다시 시도합니다)",
            WeeklyRunStatus.SKIPPED: "이번에는 실행되지 못했습니다",
            WeeklyRunStatus.COMPLETE: "일부 주문만 보내고 끝났습니다"}.get(status, "차단되었습니다")
    try:
        message = f"{config.name}: {run.trading_date} {run.get_job_display()} 작업이 {verb}: {reason}"
        alert, created = raise_alert(config.broker_account, AlertKind.JOB_FAILED, message,
                                     key=f"run-{run.pk}", details={"run": run.pk, "status": status})
        if not created and alert.message != message:
            TradingAlert.objects.filter(pk=alert.pk).update(message=message, details={"run": run.pk, "status": status})
    except Exception:
        logger.exception("could not record the alert of run %s", run.pk)
