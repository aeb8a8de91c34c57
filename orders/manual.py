"""Manual orders: `POST /trade/{symbol}` and anything else that places one order by hand.

Same promises as the weekly jobs: the Order row (reason `manual`) is committed before the request
leaves, and it goes through `orders.execution.send_order`, so the kill switch, the risk checks and the
once-only send apply. Manual orders are not deduplicated by intent (buying the same stock twice is a
legitimate wish): each gets a uuid-based client order id, unless the caller gives an idempotency key;
the id is then derived from (user, key), so a retried request finds its order and sends nothing new."""

from __future__ import annotations

import datetime as dt
import logging
import time

from django.db import transaction
from django.utils import timezone

from accounts import audit
from accounts.models import BrokerAccount, BrokerMode, SecurityEventKind
from market.brokers import broker_for
from market.gateway import BrokerError, user_message_for
from market.kis.errors import KisError
from market.krx import is_trading_day
from market.models import DailyBar, Instrument

from . import common
from .common import get_broker, seoul
from .controls import lock_conflict
from .execution import send_order
from .models import Order, OrderReason, OrderSide, OrderStatus, OrderType
from .reconciliation import reconcile_orders

logger = logging.getLogger(__name__)


MANUAL_MAX_QUANTITY = 10_000_000


MANUAL_MAX_PRICE = 100_000_000


IDEMPOTENCY_KEY_MAX_LENGTH = 200


# A replay of a key whose order is still pending waits (at most MANUAL_REPLAY_WAIT) for the request
# that stored it, which may be at work on it for up to MANUAL_IN_FLIGHT after its intent (a web
# request's whole life); untouched after that, the first request died and the replay sends it.
MANUAL_REPLAY_WAIT = dt.timedelta(seconds=10)


MANUAL_IN_FLIGHT = dt.timedelta(seconds=60)


class ManualOrderError(Exception):
    """The service refused the order before storing anything; `field` names the offending input and
    `status` is the HTTP status the API answers with."""

    status = 400

    def __init__(self, message: str, *, field: str = "detail") -> None:
        super().__init__(message)
        self.message = message
        self.field = field


class ManualOrderAccountNotFound(ManualOrderError):
    status = 404


class ManualOrderNoAccount(ManualOrderError):
    status = 409


class IdempotencyKeyReused(ManualOrderError):
    status = 422


def order_trading_day(now: dt.datetime) -> dt.date:
    """The trading day an order placed at `now` belongs to: today during a trading day until the
    close, else the next trading day (as the paper broker books it)."""
    from market.krx import next_trading_day, session_open_close

    local = seoul(now)
    if is_trading_day(local.date()) and local < session_open_close(local.date())[1]:
        return local.date()
    return next_trading_day(local.date())


def manual_client_order_id(user, idempotency_key: str | None = None) -> str:
    """`m<user>-<uuid>`; with an idempotency key `m<user>-k<sha256(user:key)[:40]>` (≤ 64 chars)."""
    import hashlib
    import uuid

    if idempotency_key:
        digest = hashlib.sha256(f"{user.pk}:{idempotency_key}".encode()).hexdigest()[:40]
        return f"m{user.pk}-k{digest}"
    return f"m{user.pk}-{uuid.uuid4().hex}"


def manual_account(user, account) -> BrokerAccount:
    if account is None or account == "":
        found = BrokerAccount.objects.filter(owner=user).order_by("-is_default", "pk").first()
        if found is None:
            raise ManualOrderNoAccount("브로커 계좌가 없습니다. 계정 페이지에서 계좌를 먼저 추가하세요.", field="account")
        return found
    pk = account.pk if isinstance(account, BrokerAccount) else account
    if isinstance(pk, bool) or not isinstance(pk, int | str) or not str(pk).isdigit():
        raise ManualOrderError(f"계좌 번호(id)는 정수여야 합니다: {account!r}", field="account")
    found = BrokerAccount.objects.filter(owner=user, pk=int(pk)).first()
    if found is None:  # another user's account looks exactly like a missing one
        raise ManualOrderAccountNotFound("해당 브로커 계좌를 찾을 수 없습니다.", field="account")
    return found


def _manual_inputs(symbol, side, quantity, price) -> tuple[str, str, int, int | None]:
    code = str(symbol or "").strip().upper()
    if not code or len(code) > 12:
        raise ManualOrderError(f"종목코드가 올바르지 않습니다: {str(symbol)[:20]!r}", field="symbol")
    side = str(side or "").strip().lower()
    if side not in (OrderSide.BUY, OrderSide.SELL):
        raise ManualOrderError(f"매매 구분은 buy(매수) 또는 sell(매도)이어야 합니다: {str(side)[:20]!r}", field="side")
    if isinstance(quantity, bool) or not isinstance(quantity, int) or quantity < 1:
        raise ManualOrderError(f"주문 수량은 1주 이상의 정수여야 합니다: {str(quantity)[:20]!r}", field="quantity")
    if quantity > MANUAL_MAX_QUANTITY:
        raise ManualOrderError(f"주문 수량은 {MANUAL_MAX_QUANTITY:,}주 이하여야 합니다: {quantity:,}", field="quantity")
    if price is not None:
        if isinstance(price, bool) or not isinstance(price, int) or price < 1:
            raise ManualOrderError(f"지정가는 1원 이상의 정수(원)여야 합니다: {str(price)[:20]!r}", field="price")
        if price > MANUAL_MAX_PRICE:
            raise ManualOrderError(f"지정가는 {MANUAL_MAX_PRICE:,}원 이하여야 합니다: {price:,}원", field="price")
    return code, side, quantity, price


def place_manual_order(user, account, symbol: str, *, side: str = OrderSide.BUY, quantity: int = 1,
                       price: int | None = None, now: dt.datetime | None = None,
                       idempotency_key: str | None = None) -> Order:
    """Place one order by hand: market when `price` is None, else limit at `price` (on the KRX tick
    table, inside the ±30% band of the previous close). `account`: a BrokerAccount or its id, the
    user's own only (`ManualOrderAccountNotFound` otherwise); None = the user's default account.

    Returns the Order after its send (submitted, or filled on the paper broker when the day's bar is
    stored; rejected/cancelled with the reason when the broker, the kill switch or a risk check
    refused it). With an `idempotency_key` already used by this user, the existing order is
    returned untouched (`order.idempotent_replay` is True) — unless it was stored but never sent,
    in which case this call sends it; a concurrent request with the same key (a double click) waits
    for the first one's outcome and answers the same order, never an error; different parameters
    under the same key raise `IdempotencyKeyReused`. Raises `ManualOrderError` (nothing stored) on
    bad input."""
    from django.db import IntegrityError, OperationalError

    from market.krx import validate_order

    live = now is None  # a request of now, not a replayed past moment
    now = now or timezone.now()
    account = manual_account(user, account)
    if account.mode != BrokerMode.PAPER:
        now = timezone.now()  # KIS trades in real time only; the given clock is for the paper broker
    code, side, quantity, price = _manual_inputs(symbol, side, quantity, price)
    if idempotency_key is not None:
        idempotency_key = str(idempotency_key).strip()
        if not idempotency_key or len(idempotency_key) > IDEMPOTENCY_KEY_MAX_LENGTH or not idempotency_key.isprintable():
            raise ManualOrderError(
                f"Idempotency-Key는 1~{IDEMPOTENCY_KEY_MAX_LENGTH}자의 인쇄 가능한 문자열이어야 합니다.",
                field="idempotency_key")
    order_type = OrderType.MARKET if price is None else OrderType.LIMIT
    client_id = manual_client_order_id(user, idempotency_key)

    if idempotency_key:
        existing = Order.objects.filter(client_order_id=client_id).select_related("broker_account").first()
        if existing is not None:
            return _manual_replay(existing, account, code, side, quantity, order_type, price or 0, now, live=live)

    instrument = Instrument.objects.filter(code=code).first()
    if instrument is None:
        raise ManualOrderError(f"알 수 없는 종목코드입니다: {code}", field="symbol")
    if not instrument.is_listed:
        raise ManualOrderError(f"상장폐지된 종목입니다: {code} {instrument.name}", field="symbol")
    trading_date = order_trading_day(now)
    prev_close = (
        DailyBar.objects.filter(instrument=instrument, date__lt=trading_date).order_by("-date")
        .values_list("close", flat=True).first()
    )
    reasons = validate_order(side, order_type, quantity, price, int(prev_close) if prev_close else None,
                             market=instrument.market)
    if reasons:
        raise ManualOrderError(" / ".join(reasons), field="price" if price is not None else "quantity")

    for attempt in range(1, 4):
        try:  # the insert commits in a transaction of its own (with its audit row), before anything is sent
            conflict = None
            with transaction.atomic():
                try:
                    order, created = Order.objects.get_or_create(
                        client_order_id=client_id,
                        defaults={
                            "run": None, "config": None, "broker_account": account, "trading_date": trading_date,
                            "code": code, "side": side, "order_type": order_type, "quantity": quantity,
                            "price": price or 0, "reference_price": price or int(prev_close or 0),
                            "reason": OrderReason.MANUAL, "intent_at": now,
                        },
                    )
                except IntegrityError as error:  # get_or_create's own savepoint is rolled back: handled below,
                    conflict = error  # once this transaction is over (its snapshot may not show the other row)
                else:
                    if created:
                        _audit_manual_order(user, order)
            if conflict is not None:
                raise conflict
            break
        except IntegrityError:
            # The unique client order id: a concurrent request with the same key stored it after this
            # request's look-up (a double click). That is a replay of that order, never an error.
            order = Order.objects.filter(client_order_id=client_id).select_related("broker_account").first()
            if order is None:
                raise
            created = False
            break
        except OperationalError as error:  # a deadlock or lock time-out: nothing was stored
            if attempt == 3 or not lock_conflict(error):
                raise
            logger.warning("storing manual order %s: %s; trying again", client_id, error)
            time.sleep(0.2 * attempt)
    if not created:  # a concurrent request with the same key won the insert
        return _manual_replay(order, account, code, side, quantity, order_type, price or 0, now, live=live)
    common.checkpoint("manual_intent_committed", order)
    _send_manual(order, account, now, live=live)
    if order.status == OrderStatus.PENDING and order.send_attempts == 0 and not idempotency_key:
        # Not sent because a risk input could not be read: without a key nobody can retry this very
        # order, so it is closed (the reason stays) rather than left pending for ever.
        Order.objects.filter(pk=order.pk, status=OrderStatus.PENDING, send_attempts=0).update(
            status=OrderStatus.CANCELLED)
        order.refresh_from_db()
    order.idempotent_replay = False
    return order


def _audit_manual_order(user, order: Order) -> None:
    """The audit trail's row of a new manual order (a replay of its key adds none)."""
    audit.record_event(SecurityEventKind.MANUAL_ORDER, user=user, broker_account=order.broker_account, detail={
        "order": order.pk, "client_order_id": order.client_order_id, "code": order.code, "side": order.side,
        "quantity": order.quantity, "order_type": order.order_type, "price": order.price,
        "trading_date": order.trading_date,
    })


def _manual_replay(order: Order, account: BrokerAccount, code: str, side: str, quantity: int, order_type: str,
                   price: int, now: dt.datetime, *, live: bool = False) -> Order:
    same = (order.broker_account_id, order.code, order.side, order.quantity, order.order_type, order.price) == (
        account.pk, code, side, quantity, order_type, price)
    if not same:
        raise IdempotencyKeyReused(
            "같은 Idempotency-Key로 다른 내용의 주문이 이미 있습니다. 새 주문에는 새 키를 쓰세요.",
            field="idempotency_key")
    # A double click: the request that stored the order may be at work on it right now (pending with
    # no reason yet, or its send claimed). Wait for its outcome instead of racing it through the risk
    # checks, so both answers show the same order. Still pending and untouched once that request's
    # time is over: it died before sending, and this call sends the order; pending with a reason: it
    # ended without sending (a risk input or the broker could not be reached), and this call tries again.
    in_flight = (order.intent_at + MANUAL_IN_FLIGHT - now).total_seconds()
    started = time.monotonic()
    while (order.status == OrderStatus.PENDING and (order.send_attempts or not order.error_message)
           and time.monotonic() - started < min(in_flight, MANUAL_REPLAY_WAIT.total_seconds())):
        time.sleep(0.05)
        order.refresh_from_db()
    first_request_over = bool(order.error_message) or time.monotonic() - started >= in_flight
    if order.status == OrderStatus.PENDING and order.send_attempts == 0 and first_request_over:
        _send_manual(order, order.broker_account, now, live=live)
    order.refresh_from_db()
    order.idempotent_replay = True
    return order


def _send_manual(order: Order, account: BrokerAccount, now: dt.datetime, *, live: bool = False) -> None:
    """Send through `send_order`; on the paper broker, read the fill back at once (reconciliation
    only reads, never sends). `live`: a request of now, so the paper broker books the order at the
    moment it gets it, as a real broker does (concurrent requests arrive in another order than they
    began), not at the request's start."""
    paper_now = live and account.mode == BrokerMode.PAPER
    broker = broker_for(account) if paper_now else get_broker(account, now)
    may_send = order.trading_date == order_trading_day(now)
    why_not = "" if may_send else f"{order.trading_date} 거래일이 지나 주문을 보내지 않았습니다."
    send_order(order, broker, now, may_send, why_not)
    order.refresh_from_db()
    if account.mode == BrokerMode.PAPER and order.status == OrderStatus.SUBMITTED:
        try:
            reconcile_orders(account, order.trading_date, broker=broker, now=now)
        except (BrokerError, KisError) as error:  # the 5-minute reconciliation picks it up later
            logger.warning("reading back manual order %s failed: %s", order.client_order_id, user_message_for(error))
        order.refresh_from_db()
