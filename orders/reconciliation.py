"""The broker's daily orders → our orders and fills. Never sends anything.

Orders with a broker number are found by it (normalised); an order whose answer was lost by
`orders.broker_matching` (its attributes and the time its request was in flight, with the clock
tolerance, one-to-one). Fills are recorded once each, with their TradeLog row and FILLED alert in the
same transaction, by `record_fill_progress`, which the broker's fill notices use too (`orders.fill_notices`). After the close a day order's unfilled remainder lapses. Reconciliation fails
closed: when the daily orders cannot be read the caller's run is blocked and sends nothing. Manual
orders left pending by a dead request are closed here too (`close_interrupted_manual_orders`)."""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass, field, replace

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from accounts.models import BrokerAccount
from market.gateway import BrokerError, DailyOrder, user_message_for
from market.kis.errors import KisError
from market.kis.models import normalize_branch_no, normalize_order_no
from market.krx import SEOUL, is_trading_day, sell_tax_for_trade, session_open_close
from market.models import Instrument

from . import broker_matching, live_events
from .common import STALE_AFTER, active_configs, commission, get_broker, jsonable
from .controls import close_order_alerts, order_alert, raise_alert, real_user, side_label
from .models import AlertKind, Fill, Order, OrderReason, OrderSide, OrderStatus, TradeLog
from .positions import PositionReport, check_positions

logger = logging.getLogger(__name__)


UNKNOWN_GRACE = dt.timedelta(minutes=30)  # an unknown order unseen this long after its send was not accepted


@dataclass
class ReconcileSummary:
    checked: int = 0
    matched_unknown: int = 0
    fills_recorded: int = 0
    unresolved: int = 0
    expired: int = 0  # day orders whose unfilled remainder lapsed at the close
    external_orders: list[str] = field(default_factory=list)  # broker order numbers we did not place
    positions: PositionReport | None = None  # the balance comparison, when it ran
    error: str = ""  # the broker could not be read (reconcile_open_orders records it instead of raising)


# An order whose process died inside the request has no `answered_at`: its request may have lasted
# this long (the client's connect + read time-outs, a token issuance first, with room to spare).
LONGEST_ORDER_REQUEST = dt.timedelta(seconds=90)


# Day orders (ORD_DVSN 00/01) end with the regular session; the broker's book is read this long after
# the close before an unfilled remainder is settled as lapsed (the closing auction's fills land first).
SETTLE_AFTER_CLOSE = dt.timedelta(minutes=10)


def clock_tolerance() -> dt.timedelta:
    return dt.timedelta(seconds=max(int(getattr(settings, "ORDERS_BROKER_CLOCK_TOLERANCE_SECONDS", 120)), 0))


def _intent(order: Order) -> broker_matching.Intent:
    start, end = broker_matching.in_flight_window(
        order.sent_at or order.intent_at, order.answered_at, tolerance=clock_tolerance(),
        longest_request=LONGEST_ORDER_REQUEST)
    return broker_matching.Intent(
        key=order.pk, trading_date=order.trading_date, code=order.code, side=order.side, quantity=order.quantity,
        order_type=order.order_type, price=order.price, window_start=start, window_end=end)


def _status_message(order: Order, row: DailyOrder) -> str:
    """The order's message follows its status: a found order loses the "answer lost" text."""
    if order.status == OrderStatus.REJECTED:
        return f"브로커가 주문을 거부했습니다 (거부 수량 {row.rejected_quantity or order.quantity:,}주)."
    if order.status == OrderStatus.CANCELLED:
        unfilled = order.quantity - order.filled_quantity
        done = f" (체결 {order.filled_quantity:,}주)" if order.filled_quantity else ""
        return f"증권사에서 미체결 {unfilled:,}주가 취소되었습니다{done}."
    return ""


def _apply_row(order: Order, row: DailyOrder, now: dt.datetime) -> int:
    """Move an order to the state the broker shows; record the new fill increment once, with its
    TradeLog row and a FILLED alert in the same transaction (so neither can be missed or doubled).
    An order found after its answer was lost gets the broker's number and its alert is closed."""
    recorded = 0
    with transaction.atomic():
        order = Order.objects.select_for_update().get(pk=order.pk)
        previous_status = order.status
        if row.filled_quantity > order.filled_quantity:
            total_amount = row.filled_amount or int(row.average_fill_price * row.filled_quantity)
            filled_at = now
            if row.order_time is not None:
                filled_at = dt.datetime.combine(order.trading_date, row.order_time, tzinfo=SEOUL)
            recorded += record_fill_progress(order, row.filled_quantity, total_amount, filled_at)
        if order.filled_quantity >= order.quantity:
            order.status = OrderStatus.FILLED
        elif row.rejected_quantity and not order.filled_quantity:
            order.status = OrderStatus.REJECTED
        elif row.cancelled or row.rejected_quantity:
            order.status = OrderStatus.CANCELLED
        elif order.filled_quantity:
            order.status = OrderStatus.PARTIALLY_FILLED
        else:
            order.status = OrderStatus.ACCEPTED
        found = not order.broker_order_no
        order.broker_order_no = normalize_order_no(order.broker_order_no or row.order_no)
        order.broker_org_no = normalize_branch_no(order.broker_org_no or row.branch_no)
        order.raw_response = jsonable(row)
        if order.status != previous_status or previous_status == OrderStatus.UNKNOWN:
            order.error_message = _status_message(order, row)
        order.save()
        if order.status != previous_status:
            live_events.status_changed(order)
        if order.status == OrderStatus.REJECTED and previous_status != OrderStatus.REJECTED:
            order_alert(order, AlertKind.ORDER_REJECTED, order.error_message)
        if found and previous_status in (OrderStatus.UNKNOWN, OrderStatus.PENDING):
            close_order_alerts(order, f"자동 해소: 증권사 주문내역에서 주문번호 {order.broker_order_no}로 찾았습니다.")
    return recorded


def record_fill_progress(order: Order, cumulative_quantity: int, cumulative_amount: int,
                         filled_at: dt.datetime) -> int:
    """The one way a fill is recorded, from the broker's daily orders (`_apply_row`) or from its fill
    notices (`orders.fill_notices`): `order` is locked by the caller's transaction (select_for_update)
    and the broker says `cumulative_quantity` shares are filled for `cumulative_amount` KRW in all. Only
    the excess over what is recorded becomes a Fill (keyed by the cumulative quantity, so it exists
    once), with its TradeLog row, the sell tax, a FILLED alert and the owner's "fill" event after the
    commit; the order's filled quantity, amount and average price follow (the caller saves the order
    and sets its status). Returns 1 when a fill was recorded, else 0."""
    if cumulative_quantity <= order.filled_quantity:
        return 0
    delta_quantity = cumulative_quantity - order.filled_quantity
    delta_amount = cumulative_amount - order.filled_amount
    tax = 0
    if order.side == OrderSide.SELL:
        market = Instrument.objects.filter(code=order.code).values_list("market", flat=True).first() or "KOSPI"
        tax = sell_tax_for_trade(delta_amount, market, order.trading_date)
    fill, created = Fill.objects.get_or_create(
        order=order, cumulative_quantity=cumulative_quantity,
        defaults={"quantity": delta_quantity, "price": round(delta_amount / delta_quantity),
                  "amount": delta_amount, "commission": commission(delta_amount), "tax": tax,
                  "filled_at": filled_at},
    )
    _record_trade(order, fill, announce=created)
    order.filled_quantity, order.filled_amount = cumulative_quantity, cumulative_amount
    order.average_fill_price = round(cumulative_amount / cumulative_quantity)
    if created:
        live_events.fill_recorded(order, fill)
    return int(created)


def _record_trade(order: Order, fill: Fill, *, announce: bool) -> None:
    """The fill's TradeLog row (once: one-to-one with the fill) and, for a new fill, a FILLED alert.
    Called inside `record_fill_progress`'s transaction."""
    account = order.broker_account
    TradeLog.objects.get_or_create(fill=fill, defaults={
        "user_id": account.owner_id, "symbol": order.code, "side": order.side, "quantity": fill.quantity,
        "price": fill.price, "amount": fill.amount, "commission": fill.commission, "tax": fill.tax,
        "reason": order.reason, "timestamp": fill.filled_at,
    })
    if announce:
        raise_alert(account, AlertKind.FILLED,
                    f"{order.code} {side_label(order.side)} {fill.quantity:,}주 체결: {fill.price:,}원, "
                    f"금액 {fill.amount:,}원 (누적 {fill.cumulative_quantity:,}/{order.quantity:,}주, "
                    f"{order.get_reason_display()})",
                    key=f"fill-{fill.pk}", details={"order": order.pk, "fill": fill.pk})


def _settle_lapsed(order: Order, row: DailyOrder | None, now: dt.datetime) -> bool:
    """After the trading date's close, a day order the broker still shows open has lapsed: its
    unfilled remainder is settled as cancelled (the fills stay). True when it was settled."""
    if order.status not in (OrderStatus.SUBMITTED, OrderStatus.ACCEPTED, OrderStatus.PARTIALLY_FILLED):
        return False
    if row is None or row.cancelled or not is_trading_day(order.trading_date):
        return False
    if now < session_open_close(order.trading_date)[1] + SETTLE_AFTER_CLOSE:
        return False
    unfilled = order.quantity - order.filled_quantity
    done = f" (체결 {order.filled_quantity:,}주)" if order.filled_quantity else ""
    message = f"{order.trading_date} 장 마감으로 미체결 {unfilled:,}주가 소멸했습니다{done}."
    settled = bool(Order.objects.filter(pk=order.pk, status=order.status).update(
        status=OrderStatus.CANCELLED, error_message=message))
    if settled:
        live_events.status_changed(order, status=OrderStatus.CANCELLED,
                                   message=live_events.status_message(order, OrderStatus.CANCELLED, message))
    return settled


def _unresolved_order(order: Order, match: broker_matching.Match | None, now: dt.datetime) -> bool:
    """An order the broker's rows do not (uniquely) show. Returns True when it is still open.

    - Rows that look like it exist (the same attributes that day): never "not received". When they
      fit its in-flight time but not one-to-one, or only at other times (the owner's HTS/mobile
      orders look exactly like ours), the order stays `unknown` with an alert listing them, and the
      owner decides on the 주문 page (`adopt_broker_order` / `declare_order_not_received`). A
      claimed send (pending, attempts > 0) becomes `unknown` then, so it is never sent again.
    - No such row: an `unknown` order unseen for `UNKNOWN_GRACE` after its send was not received."""
    candidates = match.candidates if match is not None else []
    if candidates and order.status in (OrderStatus.UNKNOWN, OrderStatus.PENDING):
        listed = [broker_matching.describe_row(row, order.trading_date) for row in candidates]
        if match.in_window:
            why = "주문을 보낸 시각에 맞는 주문이 하나로 정해지지 않아"
        else:
            why = "주문을 보낸 시각과 맞지 않아(다른 프로그램의 주문일 수 있어)"
        message = (
            f"증권사 주문내역에 이 주문과 같은 주문이 {len(candidates):,}건 있지만 {why} 자동으로 연결하지 "
            f"않았습니다. 주문 페이지에서 맞는 주문을 고르거나 접수되지 않았다고 표시하세요: "
            + ", ".join(f"{item['order_no']} ({item['time'] or '시각 없음'})" for item in listed)
        )
        updated = Order.objects.filter(pk=order.pk, status__in=(OrderStatus.UNKNOWN, OrderStatus.PENDING)).update(
            status=OrderStatus.UNKNOWN, error_message=message, sent_at=order.sent_at or now)
        order_alert(order, AlertKind.ORDER_UNKNOWN, message, details={"candidates": listed}, update=True)
        if updated and order.status != OrderStatus.UNKNOWN:
            live_events.status_changed(order, status=OrderStatus.UNKNOWN, message=live_events.status_message(
                order, OrderStatus.UNKNOWN, "증권사 주문내역에서 이 주문을 하나로 정하지 못했습니다. 주문 페이지에서 확인하세요."))
        return True
    if order.status == OrderStatus.UNKNOWN and order.sent_at and now - order.sent_at >= UNKNOWN_GRACE:
        message = "브로커 주문내역에 없어 접수되지 않은 주문으로 처리했습니다."
        if Order.objects.filter(pk=order.pk, status=OrderStatus.UNKNOWN).update(
                status=OrderStatus.REJECTED, error_message=message):
            close_order_alerts(order, "자동 해소: 증권사 주문내역에 없어 접수되지 않은 주문으로 처리했습니다.")
            order_alert(order, AlertKind.ORDER_REJECTED, message)
            live_events.status_changed(order, status=OrderStatus.REJECTED,
                                       message=live_events.status_message(order, OrderStatus.REJECTED, message))
        return False
    return True


def reconcile_orders(account: BrokerAccount, trading_date: dt.date, *, broker=None,
                     now: dt.datetime | None = None, positions: bool = True) -> ReconcileSummary:
    """Poll the broker's orders of `trading_date` and bring our open orders of that day to their real
    state. Never sends anything. Raises the broker's error when the orders cannot be read (after
    opening a RECONCILE_FAILED alert). Orders with a broker number are found by it (normalised:
    `market.kis.models.normalize_order_no`); orders without one by `broker_matching` (attributes and
    the time the request was in flight, with the clock tolerance, one-to-one). After the close a
    day order's unfilled remainder is settled. With `positions`, the derived positions are then
    compared with the broker's balance (`check_positions`; a balance failure is alerted and
    logged, not raised)."""
    now = now or timezone.now()
    summary = ReconcileSummary()
    ours = list(
        Order.objects.filter(broker_account=account, trading_date=trading_date)
        .filter(Q(status__in=(OrderStatus.SUBMITTED, OrderStatus.ACCEPTED, OrderStatus.PARTIALLY_FILLED,
                              OrderStatus.UNKNOWN)) | Q(status=OrderStatus.PENDING, send_attempts__gt=0))
        .order_by("intent_at", "pk")
    )
    if not ours:
        return summary
    broker = broker or get_broker(account, now)
    try:
        rows = broker.get_daily_orders(trading_date, trading_date)
    except (BrokerError, KisError) as error:
        raise_alert(account, AlertKind.RECONCILE_FAILED,
                    f"{trading_date} 주문·체결 내역을 읽지 못했습니다: {user_message_for(error)}",
                    key=f"orders-{trading_date}")
        raise
    rows = [replace(row, order_no=normalize_order_no(row.order_no)) for row in rows]
    known = {
        normalize_order_no(number) for number in
        Order.objects.filter(broker_account=account, trading_date=trading_date).exclude(broker_order_no="")
        .values_list("broker_order_no", flat=True)
    }
    by_no = {row.order_no: row for row in rows}
    free = [row for row in rows if row.order_no not in known and not row.original_order_no.strip("0")]
    # A send claimed moments ago by a live process (pending, no answer yet) is that process's to record:
    # judged here, it could be paired with a look-alike broker order or marked unknown mid-request.
    in_flight = {order.pk for order in ours if order.status == OrderStatus.PENDING and order.answered_at is None
                 and order.sent_at is not None and now - order.sent_at < LONGEST_ORDER_REQUEST}
    ours = [order for order in ours if order.pk not in in_flight]
    summary.unresolved += len(in_flight)
    matches = broker_matching.match_orders([_intent(order) for order in ours if not order.broker_order_no], free)
    for order in ours:
        summary.checked += 1
        match = None
        if order.broker_order_no:
            row = by_no.get(normalize_order_no(order.broker_order_no))
        else:
            match = matches[order.pk]
            row = match.row
            if row is not None:
                summary.matched_unknown += 1
        if row is None:
            summary.unresolved += int(_unresolved_order(order, match, now))
            continue
        summary.fills_recorded += _apply_row(order, row, now)
        order.refresh_from_db()
        summary.expired += int(_settle_lapsed(order, row, now))
    adopted = {match.row.order_no for match in matches.values() if match.row is not None}
    summary.external_orders = [row.order_no for row in free if row.order_no not in adopted]
    if summary.external_orders:
        logger.warning("account %s has %d broker orders on %s not placed by the auto-trader",
                       account.pk, len(summary.external_orders), trading_date)
    if positions:
        try:
            summary.positions = check_positions(account, broker=broker, now=now)
        except (BrokerError, KisError) as error:  # alerted by check_positions; the orders are reconciled
            logger.warning("balance check of account %s failed: %s", account.pk, user_message_for(error))
    return summary


def _open_order_pairs() -> set[tuple[int, dt.date]]:
    return set(
        Order.objects.filter(Q(status__in=(OrderStatus.SUBMITTED, OrderStatus.ACCEPTED,
                                           OrderStatus.PARTIALLY_FILLED, OrderStatus.UNKNOWN))
                             | Q(status=OrderStatus.PENDING, send_attempts__gt=0))
        .values_list("broker_account_id", "trading_date").distinct()
    )


def accounts_to_reconcile() -> list[int]:
    """Every account the auto-trader uses: open orders, fills or an active strategy (by pk)."""
    traded = ({account_id for account_id, _ in _open_order_pairs()}
              | set(Fill.objects.values_list("order__broker_account_id", flat=True).distinct())
              | set(active_configs().values_list("broker_account_id", flat=True)))
    return sorted(pk for pk in traded if pk is not None)


def reconcile_account(account: BrokerAccount, now: dt.datetime | None = None,
                      dates: list[dt.date] | None = None) -> ReconcileSummary:
    """One account: its open orders of each trading date that has some (`dates`: those, else looked
    up), then its positions against the broker's balance. A broker that cannot be read leaves
    `error` set and the balance unchecked."""
    now = now or timezone.now()
    if dates is None:
        dates = sorted(day for account_id, day in _open_order_pairs() if account_id == account.pk)
    total: ReconcileSummary | None = None
    for trading_date in dates:
        try:
            summary = reconcile_orders(account, trading_date, now=now, positions=False)
        except (BrokerError, KisError) as error:
            logger.warning("reconciliation of account %s failed: %s", account.pk, user_message_for(error))
            return ReconcileSummary(error=f"{trading_date}: {user_message_for(error)}")
        if total is not None:  # several dates: add them up
            summary.checked += total.checked
            summary.matched_unknown += total.matched_unknown
            summary.fills_recorded += total.fills_recorded
            summary.unresolved += total.unresolved
            summary.expired += total.expired
            summary.external_orders = total.external_orders + summary.external_orders
        total = summary
    total = total or ReconcileSummary()
    try:
        total.positions = check_positions(account, now=now)
    except (BrokerError, KisError) as error:  # alerted by check_positions
        logger.warning("balance check of account %s failed: %s", account.pk, user_message_for(error))
        total.error = f"잔고: {user_message_for(error)}"
    return total


def reconcile_open_orders(now: dt.datetime | None = None) -> dict[int, ReconcileSummary]:
    """Reconcile every account with open orders, for each trading date that has some, and compare
    the positions of every account the auto-trader uses (open orders, fills or an active strategy)
    with its broker balance, once per account, one account after the other (`reconcile_orders`
    command; the 5-minute sweep fans the accounts out instead: `reconcile_account` per account). An
    account whose orders could not be read gets a summary with `error` set (the caller decides
    whether that fails: the command exits 1)."""
    now = now or timezone.now()
    dates_by_account: dict[int, list[dt.date]] = {}
    for account_id, trading_date in sorted(_open_order_pairs()):
        dates_by_account.setdefault(account_id, []).append(trading_date)
    return {
        account.pk: reconcile_account(account, now, dates_by_account.get(account.pk, []))
        for account in BrokerAccount.objects.filter(pk__in=accounts_to_reconcile()).order_by("pk")
    }


def adopt_broker_order(order: Order, broker_order_no: str, *, user, now: dt.datetime | None = None) -> Order:
    """The owner says which broker order is this one (an `unknown` order the matching left to a
    person). The broker's daily orders are read again; the row must exist, look like the order and
    belong to no other of our orders. Then it is applied like any reconciled row."""
    now = now or timezone.now()
    number = normalize_order_no(broker_order_no)
    if order.status != OrderStatus.UNKNOWN:
        raise OrderDecisionError("결과를 확인하지 못한(unknown) 주문만 고를 수 있습니다.")
    if Order.objects.filter(broker_account_id=order.broker_account_id, trading_date=order.trading_date,
                            broker_order_no=number).exclude(pk=order.pk).exists():
        raise OrderDecisionError(f"주문번호 {number}는 이미 다른 자동매매 주문에 연결되어 있습니다.")
    broker = get_broker(order.broker_account, now)
    rows = {normalize_order_no(row.order_no): row for row in broker.get_daily_orders(order.trading_date,
                                                                                     order.trading_date)}
    row = rows.get(number)
    if row is None or not broker_matching.same_attributes(_intent(order), replace(row, order_no=number)):
        raise OrderDecisionError(f"증권사 주문내역에 이 주문과 같은 주문번호 {number}가 없습니다.")
    _apply_row(order, replace(row, order_no=number), now)
    order.refresh_from_db()
    close_order_alerts(order, f"소유자가 증권사 주문번호 {number}를 이 주문으로 확인했습니다.", user=user)
    logger.warning("order %s adopted broker order %s by user %s", order.client_order_id, number,
                   getattr(real_user(user), "pk", None))
    return order


def declare_order_not_received(order: Order, *, user) -> Order:
    """The owner says an `unknown` order never reached the broker (the look-alike orders are their
    own): it is closed as rejected, never re-sent."""
    if order.status != OrderStatus.UNKNOWN:
        raise OrderDecisionError("결과를 확인하지 못한(unknown) 주문만 접수되지 않음으로 표시할 수 있습니다.")
    message = "소유자가 증권사에 접수되지 않은 주문으로 확인했습니다 (다시 보내지 않습니다)."
    Order.objects.filter(pk=order.pk, status=OrderStatus.UNKNOWN).update(
        status=OrderStatus.REJECTED, error_message=message)
    order.refresh_from_db()
    close_order_alerts(order, message, user=user)
    live_events.status_changed(order)
    return order


class OrderDecisionError(Exception):
    """The owner's decision on an unknown order cannot be applied (Korean message)."""


BROKER_READ_ERRORS = (BrokerError, KisError)  # what a broker read may raise, for the views


def close_interrupted_manual_orders(now: dt.datetime | None = None) -> dict[str, int]:
    """Manual orders left `pending` longer than STALE_AFTER (the request's process died between
    storing the order and the broker's answer; no run resumes them): one never sent (no send claimed)
    is cancelled — nothing reached the broker; one whose send was claimed becomes `unknown`, so
    reconciliation finds it in the broker's daily orders or closes it after UNKNOWN_GRACE. Never sends."""
    now = now or timezone.now()
    stale = Order.objects.filter(run__isnull=True, reason=OrderReason.MANUAL, status=OrderStatus.PENDING,
                                 intent_at__lte=now - STALE_AFTER)
    cancelled = stale.filter(send_attempts=0).update(
        status=OrderStatus.CANCELLED,
        error_message="주문을 저장한 뒤 보내기 전에 처리가 중단되어 보내지 않았습니다. 다시 주문하세요.")
    unknown = 0
    for order in stale.filter(send_attempts__gt=0).select_related("broker_account"):
        message = "주문을 보내는 중 처리가 중단되었습니다. 증권사 주문 내역과 대조해 결과를 확인합니다."
        if Order.objects.filter(pk=order.pk, status=OrderStatus.PENDING).update(
                status=OrderStatus.UNKNOWN, error_message=message, sent_at=order.sent_at or now):
            unknown += 1
            order_alert(order, AlertKind.ORDER_UNKNOWN, message)
    return {"cancelled": cancelled, "unknown": unknown}
