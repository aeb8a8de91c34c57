"""An order from pending to sent, at most once: the pre-trade risk checks (`orders.risk`), the claim
of the send, the broker's answer, and the unknown outcome when the answer is lost (never re-sent;
`orders.reconciliation` finds it in the broker's daily orders).

Before sending, an order's `send_attempts` is incremented and committed. A pending order with
attempts > 0 (the process died around the send) is first looked for in the broker's daily orders;
only when the broker shows no such order is it sent again, and at most once more
(`MAX_SEND_ATTEMPTS`) — never for a real-money account (`MAX_SEND_ATTEMPTS_REAL`)."""

from __future__ import annotations

import datetime as dt
import logging
import time

from django.db import transaction
from django.db.models import F

from accounts.models import BrokerMode
from market.gateway import BrokerError, user_message_for
from market.kis.errors import KisError, KisNetworkError, KisRateLimited, KisTokenIssueThrottled
from market.kis.models import normalize_branch_no, normalize_order_no

from . import common, fill_notices, risk
from .common import before_open, commission, jsonable, seoul
from .controls import close_order_alerts, halt_reason_for, order_alert
from .models import AlertKind, Order, OrderStatus

logger = logging.getLogger(__name__)


MAX_SEND_ATTEMPTS = 2  # the first send, plus one re-send when the broker shows no trace of the first


# Real money: a claimed send with no answer is never sent again, even when the broker shows no trace
# (a missed order is a smaller harm than a doubled one); the order stays unknown for reconciliation.
MAX_SEND_ATTEMPTS_REAL = 1


def send_order(order: Order, broker, now: dt.datetime, may_send: bool, why_not: str, *,
                patient: bool = False) -> None:
    """Send one pending order at most once, after the pre-trade risk checks (`orders.risk`).

    Outcomes: cancelled (slot passed), unknown (a claimed send without an answer), rejected by a risk
    check (nothing sent; `raw_response={"risk": <check>}` and a RISK_BLOCKED alert), left pending
    with the reason in `error_message` when it could not be sent for a reason that passes (a risk
    input such as the quote or the orderable cash could not be read; the broker surely did not get
    it: rate limit, token limit, connection refused, the request's deadline; with `patient`, the
    weekly jobs' flag, also the market not open yet) — the run sends it when it is tried again —,
    rejected/unknown by the broker (with an alert), or submitted. The send's end is stamped
    (`answered_at`) so reconciliation knows when the request was in flight."""
    order.refresh_from_db()
    if order.status != OrderStatus.PENDING:
        return
    if not may_send:
        Order.objects.filter(pk=order.pk, status=OrderStatus.PENDING).update(
            status=OrderStatus.CANCELLED, error_message=why_not)
        return
    max_attempts = MAX_SEND_ATTEMPTS_REAL if order.broker_account.mode == BrokerMode.REAL else MAX_SEND_ATTEMPTS
    if order.send_attempts >= max_attempts:
        message = "주문을 보낸 뒤 결과를 확인하지 못해 다시 보내지 않았습니다. 주문·체결 내역을 확인하세요."
        if Order.objects.filter(pk=order.pk, status=OrderStatus.PENDING).update(
                status=OrderStatus.UNKNOWN, error_message=message):
            order_alert(order, AlertKind.ORDER_UNKNOWN, message)
        return
    if _refused_by_risk_checks(order, broker, now, patient=patient):
        return
    claimed = Order.objects.filter(pk=order.pk, status=OrderStatus.PENDING, send_attempts=order.send_attempts).update(
        send_attempts=F("send_attempts") + 1, sent_at=now, answered_at=None)
    if not claimed:  # another process is sending it
        return
    started = time.monotonic()
    common.checkpoint("before_send", order)
    try:
        receipt = broker.place_order(
            order.side, order.code, order.quantity, order.price, order.order_type,
            client_order_id=order.client_order_id,
        )
    except Exception as error:
        answered_at = now + dt.timedelta(seconds=time.monotonic() - started)
        message = user_message_for(error)
        if _surely_not_sent_and_passing(error):
            # Give the claim back: the broker never got this request, so the next try is the first send.
            logger.warning("order %s not sent (%s); it is sent when the job runs again", order.client_order_id, error)
            Order.objects.filter(pk=order.pk, status=OrderStatus.PENDING).update(
                send_attempts=F("send_attempts") - 1, sent_at=None,
                error_message=f"주문이 증권사에 전달되지 않았습니다: {message}")
            return
        definitive = isinstance(error, BrokerError) or (
            isinstance(error, KisError) and not error.order_outcome_unknown
            and not (isinstance(error, KisNetworkError) and error.possibly_sent)
        )
        status = OrderStatus.REJECTED if definitive else OrderStatus.UNKNOWN
        if not definitive:
            logger.warning("order %s outcome unknown: %r", order.client_order_id, error)
        if Order.objects.filter(pk=order.pk, status=OrderStatus.PENDING).update(
            status=status, error_message=message, answered_at=answered_at,
            raw_response={"error": type(error).__name__, "code": getattr(error, "code", "") or getattr(
                error, "msg_cd", "") or ""},
        ):
            order_alert(order, AlertKind.ORDER_REJECTED if definitive else AlertKind.ORDER_UNKNOWN, message)
        return
    common.checkpoint("after_send", order)
    numbered = Order.objects.filter(pk=order.pk, status__in=(OrderStatus.PENDING, OrderStatus.UNKNOWN)).update(
        status=OrderStatus.SUBMITTED, broker_order_no=normalize_order_no(receipt.order_no),
        broker_org_no=normalize_branch_no(receipt.org_no), raw_response=jsonable(receipt), error_message="",
        answered_at=now + dt.timedelta(seconds=time.monotonic() - started),
    )
    close_order_alerts(order, f"자동 해소: 증권사가 주문번호 {normalize_order_no(receipt.order_no)}로 접수했습니다.")
    if numbered:
        # A fill notice may have come before this answer (kept pending until the number is known).
        transaction.on_commit(lambda order_id=order.pk: fill_notices.broker_number_recorded(order_id), robust=True)


def _surely_not_sent_and_passing(error: Exception) -> bool:
    """The order request never reached the broker, for a reason that passes: the per-key rate limit
    after the client's retries, the token limit, a connection that was never made, or the caller's
    deadline reached before the request left. Such an order may be sent later (it was never sent)."""
    if isinstance(error, KisNetworkError):
        return not error.possibly_sent
    if isinstance(error, (KisRateLimited, KisTokenIssueThrottled)):
        return True
    return bool(getattr(error, "order_not_sent", False))  # KisDeadlineExceeded before the request left


def _refused_by_risk_checks(order: Order, broker, now: dt.datetime, *, patient: bool = False) -> bool:
    """Run `orders.risk.evaluate` on a pending order. True when the order must not be sent now:
    refused (now rejected, with a RISK_BLOCKED alert) or a risk input could not be read (left
    pending with the reason). With `patient`, an order of today before the day's open (a late open
    such as the year's first session) is left pending too: the job sends it after the open.
    Reads the broker only when a check needs it."""
    account = order.broker_account
    facts = risk.OrderFacts.of(order)

    def base_price() -> int | None:
        stored = risk.stored_base_price(order.code, order.trading_date)
        if stored:
            return stored
        try:
            return int(broker.get_quote(order.code).base_price or 0) or None
        except (BrokerError, KisError) as error:
            raise _RiskInputUnavailable(f"{order.code} 기준가를 읽지 못했습니다: {user_message_for(error)}") from error

    def orderable_cash() -> int:
        try:
            buyable = broker.get_buyable(order.code, risk.estimated_price(facts, None) or None)
        except (BrokerError, KisError) as error:
            raise _RiskInputUnavailable(f"주문가능금액을 읽지 못했습니다: {user_message_for(error)}") from error
        return int(buyable.orderable_cash)

    try:
        denial = risk.evaluate(
            facts, now=now, halt_reason=halt_reason_for(account), limits=risk.limits_for(account),
            base_price=base_price, realised_pnl_today=lambda: risk.realised_pnl(account, seoul(now).date()),
            orderable_cash=orderable_cash, commission=commission,
        )
    except _RiskInputUnavailable as error:
        message = f"위험 점검에 필요한 정보를 읽지 못해 주문을 보내지 않았습니다 (다시 실행하면 보냅니다): {error}"
        logger.warning("order %s not sent: %s", order.client_order_id, error)
        Order.objects.filter(pk=order.pk, status=OrderStatus.PENDING).update(error_message=message)
        return True
    if denial is None:
        return False
    if patient and denial.check == risk.MARKET_HOURS and before_open(now, order.trading_date):
        Order.objects.filter(pk=order.pk, status=OrderStatus.PENDING).update(error_message=denial.message)
        return True
    logger.warning("order %s refused by the %s check: %s", order.client_order_id, denial.check, denial.message)
    # Only the order as evaluated: one another process has claimed (and is sending) meanwhile is left alone.
    if Order.objects.filter(pk=order.pk, status=OrderStatus.PENDING, send_attempts=order.send_attempts).update(
            status=OrderStatus.REJECTED, error_message=denial.message, raw_response={"risk": denial.check}):
        order_alert(order, AlertKind.RISK_BLOCKED, denial.message, details={"risk": denial.check})
    return True


class _RiskInputUnavailable(Exception):
    """A broker read a risk check needs failed: the order is not sent this time."""
