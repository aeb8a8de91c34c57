"""An order from pending to sent, at most once: the pre-trade risk checks (`orders.risk`), the claim
of the send, the broker's answer, and the unknown outcome when the answer is lost (never re-sent;
`orders.reconciliation` finds it in the broker's daily orders).

Before sending, an order's `send_attempts` is incremented and committed. A pending order with
attempts > 0 (the process died around the send) is first looked for in the broker's daily orders;
only when the broker shows no such order is it sent again, and at most once more
(`MAX_SEND_ATTEMPTS`) — never for a real-money account (`MAX_SEND_ATTEMPTS_REAL`).

The sends of one weekly run share a `SendSession`: the account row, the previous closes of the run's
codes (one query) and the run's `CashBook` (the orderable cash, read from the broker once and kept
between the run's buys). A send without one (a manual order) reads everything fresh."""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Iterable

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


class CashBook:
    """The account's orderable cash as one run knows it between broker reads: the planner's read (or the
    first buy's), less amount + commission of every buy the broker accepted since. The buyable-cash
    check compares with it and asks the broker again only when it says "not enough" (a deposit since
    then must not refuse an order); that answer replaces it. Anything that leaves the broker's side in
    doubt — an order refused by the broker, an unknown outcome, a send claimed by another process —
    forgets it: the next buy reads the broker. None: not known, the next buy reads the broker."""

    def __init__(self, orderable: int | None = None) -> None:
        self.orderable = orderable

    def spend(self, cost: int) -> None:
        if self.orderable is not None:
            self.orderable -= cost

    def forget(self) -> None:
        self.orderable = None


class SendSession:
    """What the sends of one run share: the account row (not loaded again per order), the previous
    closes of its codes (one query for all of them; the base of the ±30% band) and the cash book."""

    def __init__(self, account, *, codes: Iterable[str] = (), trading_date: dt.date | None = None,
                 orderable_cash: int | None = None) -> None:
        self.account = account
        self.cash = CashBook(orderable_cash)
        self._base_prices: dict[tuple[str, dt.date], int | None] = {}
        codes = list(codes)
        if codes and trading_date is not None:
            for code, close in risk.stored_base_prices(codes, trading_date).items():
                self._base_prices[(code, trading_date)] = close

    def stored_base_price(self, code: str, trading_date: dt.date) -> int | None:
        key = (code, trading_date)
        if key not in self._base_prices:
            self._base_prices[key] = risk.stored_base_price(code, trading_date)
        return self._base_prices[key]


# Every column of an order but its relations (which never change): refreshing only these keeps the
# account the caller loaded, instead of reading (and decrypting) it again for every order.
_ORDER_STATE_FIELDS: list[str] = []


def _refresh(order: Order) -> None:
    if not _ORDER_STATE_FIELDS:
        _ORDER_STATE_FIELDS.extend(field.attname for field in Order._meta.concrete_fields
                                   if not field.is_relation and not field.primary_key)
    order.refresh_from_db(fields=_ORDER_STATE_FIELDS)


def send_order(order: Order, broker, now: dt.datetime, may_send: bool, why_not: str, *,
                patient: bool = False, session: SendSession | None = None, loaded: bool = False) -> None:
    """Send one pending order at most once, after the pre-trade risk checks (`orders.risk`).

    Outcomes: cancelled (slot passed), unknown (a claimed send without an answer), rejected by a risk
    check (nothing sent; `raw_response={"risk": <check>}` and a RISK_BLOCKED alert), left pending
    with the reason in `error_message` when it could not be sent for a reason that passes (a risk
    input such as the quote or the orderable cash could not be read; the broker surely did not get
    it: rate limit, token limit, connection refused, the request's deadline; with `patient`, the
    weekly jobs' flag, also the market not open yet) — the run sends it when it is tried again —,
    rejected/unknown by the broker (with an alert), or submitted. The send's end is stamped
    (`answered_at`) so reconciliation knows when the request was in flight.

    `session`: the run's shared state (`SendSession`); without it the account, the previous close and
    the orderable cash are read for this order alone. `loaded`: the caller has just read the order's row
    (the weekly run's loop), so it is not read again; every change below is a conditional update on
    its status and send attempts, which catches any change since (another process's claim included)."""
    if session is None or order.broker_account_id != session.account.pk:
        session = SendSession(order.broker_account)
    else:
        order.broker_account = session.account
    if not loaded:
        _refresh(order)
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
    refused, cost = _refused_by_risk_checks(order, broker, now, session, patient=patient)
    if refused:
        return
    claimed = Order.objects.filter(pk=order.pk, status=OrderStatus.PENDING, send_attempts=order.send_attempts).update(
        send_attempts=F("send_attempts") + 1, sent_at=now, answered_at=None)
    if not claimed:  # another process is sending it (and spending the cash)
        session.cash.forget()
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
        session.cash.forget()  # refused (cash, perhaps: the book was wrong) or perhaps taken: ask the broker next
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
    session.cash.spend(cost)
    common.checkpoint("after_send", order)
    answer = {
        "status": OrderStatus.SUBMITTED, "broker_order_no": normalize_order_no(receipt.order_no),
        "broker_org_no": normalize_branch_no(receipt.org_no), "raw_response": jsonable(receipt), "error_message": "",
        "answered_at": now + dt.timedelta(seconds=time.monotonic() - started),
    }
    # Still pending (as it almost always is): it never was unknown, so it has no "outcome unknown"
    # alert to close (an order goes unknown before its alert is raised, and never back to pending).
    numbered = Order.objects.filter(pk=order.pk, status=OrderStatus.PENDING).update(**answer)
    if not numbered:
        numbered = Order.objects.filter(pk=order.pk, status=OrderStatus.UNKNOWN).update(**answer)
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


def _refused_by_risk_checks(order: Order, broker, now: dt.datetime, session: SendSession, *,
                            patient: bool = False) -> tuple[bool, int]:
    """Run `orders.risk.evaluate` on a pending order. (True, 0) when the order must not be sent now:
    refused (now rejected, with a RISK_BLOCKED alert) or a risk input could not be read (left
    pending with the reason). With `patient`, an order of today before the day's open (a late open
    such as the year's first session) is left pending too: the job sends it after the open.
    Else (False, what a buy costs: amount + commission as the cash check counted it; 0 for a sell).
    Reads the broker only when a check needs it; the orderable cash from the session's cash book when
    it has a figure, and from the broker when it has none or its figure is not enough."""
    account = order.broker_account
    facts = risk.OrderFacts.of(order)
    used: dict[str, int | None] = {}

    def base_price() -> int | None:
        stored = session.stored_base_price(order.code, order.trading_date)
        if not stored:
            try:
                stored = int(broker.get_quote(order.code).base_price or 0) or None
            except (BrokerError, KisError) as error:
                raise _RiskInputUnavailable(
                    f"{order.code} 기준가를 읽지 못했습니다: {user_message_for(error)}") from error
        used["base"] = stored
        return stored

    def broker_cash() -> int:
        try:
            buyable = broker.get_buyable(order.code, risk.estimated_price(facts, None) or None)
        except (BrokerError, KisError) as error:
            raise _RiskInputUnavailable(f"주문가능금액을 읽지 못했습니다: {user_message_for(error)}") from error
        session.cash.orderable = int(buyable.orderable_cash)
        return session.cash.orderable

    kept = session.cash.orderable
    halted, limits = risk.controls_for(account)  # one read; the reason is worded only when halted
    try:
        denial = risk.evaluate(
            facts, now=now, halt_reason=halt_reason_for(account) if halted else None, limits=limits,
            base_price=base_price, realised_pnl_today=lambda: risk.realised_pnl(account, seoul(now).date()),
            orderable_cash=broker_cash if kept is None else lambda: kept,
            fresh_orderable_cash=None if kept is None else broker_cash, commission=commission,
        )
    except _RiskInputUnavailable as error:
        message = f"위험 점검에 필요한 정보를 읽지 못해 주문을 보내지 않았습니다 (다시 실행하면 보냅니다): {error}"
        logger.warning("order %s not sent: %s", order.client_order_id, error)
        Order.objects.filter(pk=order.pk, status=OrderStatus.PENDING).update(error_message=message)
        return True, 0
    if denial is None:
        if not facts.is_buy:
            return False, 0
        amount = risk.estimated_price(facts, used.get("base")) * facts.quantity
        return False, amount + commission(amount)
    if patient and denial.check == risk.MARKET_HOURS and before_open(now, order.trading_date):
        Order.objects.filter(pk=order.pk, status=OrderStatus.PENDING).update(error_message=denial.message)
        return True, 0
    logger.warning("order %s refused by the %s check: %s", order.client_order_id, denial.check, denial.message)
    # Only the order as evaluated: one another process has claimed (and is sending) meanwhile is left alone.
    if Order.objects.filter(pk=order.pk, status=OrderStatus.PENDING, send_attempts=order.send_attempts).update(
            status=OrderStatus.REJECTED, error_message=denial.message, raw_response={"risk": denial.check}):
        order_alert(order, AlertKind.RISK_BLOCKED, denial.message, details={"risk": denial.check})
    return True, 0


class _RiskInputUnavailable(Exception):
    """A broker read a risk check needs failed: the order is not sent this time."""
