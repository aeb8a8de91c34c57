"""Own-order notices (KIS WebSocket H0STCNI0/H0STCNI9, and the paper broker's fills) → our orders and fills,
within seconds, through the reconciliation's fill service (`reconciliation.record_fill_progress`).

Applied once, whatever arrives first. The invariant, held under the order's row lock:

    order.filled_quantity == max(every cumulative quantity any source has reported for the order)

and a Fill is only ever the step from the recorded quantity to a larger cumulative one (unique per order
and cumulative quantity). The notices' cumulative quantity is the *sum of the stored fill notices* of the
broker order (each notice stored once: a unique constraint on its identity), never "one notice, one fill";
the reconciliation's daily-orders row carries the broker's own cumulative quantity. So a notice before the
row, after it or instead of it, redelivered, or two partial fills with a reconciliation between them all
end with the broker's quantity and amount, each share counted once. A notice the broker did not send
(lost) is a gap the next reconciliation closes; the reconciliation stays the source of truth.

A notice for a broker order number we have not recorded yet (KIS may notify before the REST answer of
the order) is stored pending and applied when the number is recorded (`apply_pending_notices`, called
by `orders.execution` after the commit that stores it). Both sides write, commit, then read, so at least
one of them sees the other.

Rejection notices (RFUS_YN=1) do not change the order's status: the reconciliation's daily orders decide
it (see `_apply_to_order`); the owner sees the notice at once as an "order" event.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging

from django.db import IntegrityError, transaction
from django.utils import timezone

from accounts.masking import mask_account_number
from market.kis.models import normalize_order_no
from market.kis.realtime.records import FillNotice
from market.krx import SEOUL

from . import live_events
from .common import jsonable
from .controls import side_label
from .models import BrokerFillNotice, NoticeSource, Order, OrderStatus
from .reconciliation import record_fill_progress

logger = logging.getLogger(__name__)

# A fill notice makes the order (partly) filled only from these states; an order the reconciliation has
# already closed (cancelled, rejected) keeps the status the broker's daily orders gave it.
FILLABLE_STATUSES = (OrderStatus.SUBMITTED, OrderStatus.ACCEPTED, OrderStatus.PARTIALLY_FILLED,
                     OrderStatus.UNKNOWN, OrderStatus.PENDING)


@dataclasses.dataclass
class NoticeOutcome:
    notice: BrokerFillNotice
    new: bool  # False: the same notice was already stored (a redelivery); nothing more was done for it
    order_id: int | None = None  # our order, when its broker number is known
    fills_recorded: int = 0


def apply_fill_notice(account_id: int, notice: FillNotice, *, source: str,
                      moment: dt.datetime | None = None) -> NoticeOutcome:
    """Store `notice` once and apply it to our order with that broker number, if we know it yet.

    `moment`: when the notice happened (aware), for its date; default now. KIS notices carry only a time
    (HHMMSS) and order numbers start again each day, so the date is the one the notice arrived on; the
    paper broker, whose clock may be a replayed day, passes its fill's moment. Call it outside any
    transaction (the streamer's worker thread, the paper broker's on_commit)."""
    if source not in NoticeSource.values:
        raise ValueError(f"unknown notice source {source!r}")
    day = (moment or timezone.now()).astimezone(SEOUL).date()
    stored, new = _store(account_id, notice, source, day)
    outcome = NoticeOutcome(notice=stored, new=new)
    if not new and stored.applied_at is not None:
        return outcome  # a redelivery of a notice already applied: nothing can have changed
    # Read the order only after the notice is committed: the order's number may be committed meanwhile,
    # and then `apply_pending_notices` (run after that commit) sees this notice, or this look-up sees it.
    order_id = (Order.objects.filter(broker_account_id=account_id, trading_date=day,
                                     broker_order_no=stored.order_no).values_list("pk", flat=True).first())
    if order_id is None:
        logger.info("notice for broker order %s (account %s) kept until the order's number is known",
                    stored.order_no, account_id)
        return outcome
    outcome.order_id = order_id
    outcome.fills_recorded = _apply_to_order(order_id)
    stored.refresh_from_db()
    return outcome


def apply_pending_notices(order: Order) -> int:
    """Apply the notices stored for `order`'s broker number before we knew it (they arrived before the
    REST answer of the order). Called after the commit that records the number. Returns the fills
    recorded; cheap when there is none (the usual case)."""
    if not order.broker_order_no:
        return 0
    pending = BrokerFillNotice.objects.filter(
        account_id=order.broker_account_id, trading_date=order.trading_date,
        order_no=normalize_order_no(order.broker_order_no), applied_at__isnull=True)
    if not pending.exists():
        return 0
    return _apply_to_order(order.pk)


def broker_number_recorded(order_id: int) -> None:
    """`orders.execution` recorded the broker's number of the order (committed): tell the owner's pages,
    and apply the notices that came before the number. Never raises: the order is already sent and
    stored; a notice left pending here is closed by the reconciliation."""
    try:
        order = Order.objects.select_related("broker_account").get(pk=order_id)
        if order.status == OrderStatus.SUBMITTED:
            live_events.status_changed(order)
        apply_pending_notices(order)
    except Exception:
        logger.exception("pending notices of order %s not applied (the reconciliation will)", order_id)


def _store(account_id: int, notice: FillNotice, source: str, day: dt.date) -> tuple[BrokerFillNotice, bool]:
    """The notice's row, created once. Its identity: account, broker order number, moment, quantity,
    price, fill or not, rejected or not (KIS gives no sequence number: two identical fills in the same
    second would be taken for one — an undercount the reconciliation closes, never a double count)."""
    order_no = normalize_order_no(notice.order_no)
    identity = {
        "account_id": account_id, "order_no": order_no,
        "notice_time": dt.datetime.combine(day, notice.time, tzinfo=SEOUL),
        "quantity": notice.quantity, "price": notice.price, "is_fill": notice.is_fill, "rejected": notice.rejected,
    }
    raw = jsonable(notice)
    raw["account_no"] = mask_account_number(notice.account_no)
    try:
        with transaction.atomic():
            return BrokerFillNotice.objects.create(
                **identity, trading_date=day, original_order_no=normalize_order_no(notice.original_order_no),
                code=notice.code, side=notice.side, raw_fields=raw, source=source), True
    except IntegrityError:
        return BrokerFillNotice.objects.get(**identity), False


def _apply_to_order(order_id: int) -> int:
    """Merge the order's stored notices into the order, under its row lock (the reconciliation's
    `_apply_row` takes the same lock): the fill notices' cumulative quantity and amount go through
    `record_fill_progress`, which records only the excess over the order's filled quantity."""
    with transaction.atomic():
        order = Order.objects.select_for_update().get(pk=order_id)  # no join: it would lock the account row too
        # Locking read: the latest committed notices, whatever snapshot the database would give.
        notices = list(BrokerFillNotice.objects.select_for_update().filter(
            account_id=order.broker_account_id, trading_date=order.trading_date,
            order_no=normalize_order_no(order.broker_order_no)).order_by("notice_time", "pk"))
        fills = [notice for notice in notices if notice.is_fill and not notice.rejected]
        quantity = sum(notice.quantity for notice in fills)
        amount = sum(notice.quantity * notice.price for notice in fills)
        recorded = 0
        if quantity > order.quantity:
            # More than the order: notices we cannot trust (a repeat with another time?). Recording them
            # could never be undone; the daily orders will say what was filled.
            logger.warning("fill notices of order %s add up to %s shares of %s; left to the reconciliation",
                           order.pk, quantity, order.quantity)
        elif quantity > order.filled_quantity:
            previous_status = order.status
            recorded = record_fill_progress(order, quantity, amount, max(notice.notice_time for notice in fills))
            if order.filled_quantity >= order.quantity:
                order.status = OrderStatus.FILLED
            elif order.status in FILLABLE_STATUSES:
                order.status = OrderStatus.PARTIALLY_FILLED
            if order.status != previous_status:
                order.error_message = ""  # as the reconciliation: a filled order carries no message
            order.save(update_fields=["filled_quantity", "filled_amount", "average_fill_price", "status",
                                      "error_message", "updated_at"])
            if order.status != previous_status:
                live_events.status_changed(order)
        newly_seen = [notice for notice in notices if notice.applied_at is None]
        if newly_seen:
            BrokerFillNotice.objects.filter(pk__in=[notice.pk for notice in newly_seen]).update(
                applied_at=timezone.now(), order=order)
        for notice in newly_seen:
            if notice.rejected and not notice.is_fill:
                _announce_rejection(order, notice)
    return recorded


def _announce_rejection(order: Order, notice: BrokerFillNotice) -> None:
    """A rejection notice leaves the status to the reconciliation: marking the order rejected here would
    take it out of the reconciliation's open orders for good, on the word of a notice whose modify/cancel
    codes KIS does not document firmly (KIS_API.md §6.4), while a wrongly closed real order could still
    fill. The daily orders show the refusal (rjct_qty) within one sweep; the owner is told now."""
    if order.status not in (OrderStatus.SUBMITTED, OrderStatus.ACCEPTED, OrderStatus.UNKNOWN):
        return
    message = (f"{order.code} {side_label(order.side)} {order.quantity:,}주 주문: 증권사가 거부를 통보했습니다. "
               "주문·체결 내역을 대조해 곧 확정합니다.")
    live_events.status_changed(order, message=message)
