"""Order events for the owner's open pages (issue 13): a new fill ("fill", the dashboard's toast) and an
order whose status changed ("order", 최근 주문), on the owner's bus channel (`events.user_channel`).

Published only after the transaction that recorded them commits (`transaction.on_commit`): a page never
shows a fill that was rolled back, and never before the row it would reload is readable. Publishing
cannot break the money path: the values are taken when the event is announced (no query after the
commit), and any failure of the bus is logged and dropped."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from django.db import transaction

from market.streaming import events
from market.streaming.bus import get_bus

from .controls import side_label
from .models import Fill, Order, OrderStatus

logger = logging.getLogger(__name__)

STATUS_WORDS = {
    OrderStatus.PENDING: "대기",
    OrderStatus.SUBMITTED: "접수",
    OrderStatus.ACCEPTED: "접수 확인",
    OrderStatus.PARTIALLY_FILLED: "일부 체결",
    OrderStatus.FILLED: "체결 완료",
    OrderStatus.REJECTED: "거부",
    OrderStatus.CANCELLED: "취소",
    OrderStatus.UNKNOWN: "결과 확인 중",
}


def fill_message(order: Order, fill: Fill) -> str:
    """"005930 매수 3주 체결 (72,900원)"."""
    return f"{order.code} {side_label(order.side)} {fill.quantity:,}주 체결 ({fill.price:,}원)"


def status_message(order: Order, status: str | None = None, note: str | None = None) -> str:
    """"005930 매수 3주 주문 체결 완료", then `note` (default: the order's message) when there is one."""
    status = status or order.status
    note = order.error_message if note is None else note
    text = f"{order.code} {side_label(order.side)} {order.quantity:,}주 주문 {STATUS_WORDS.get(status, status)}"
    return f"{text}: {note}" if note else text


def fill_recorded(order: Order, fill: Fill) -> None:
    """A new fill of `order`, announced after the commit with the order as it stands then (the caller
    updates its status in the same transaction after recording the fill)."""
    _announce(order, lambda: events.order_event(
        "fill", order_id=order.pk, code=order.code, side=order.side, status=order.status,
        quantity=order.quantity, filled_quantity=order.filled_quantity, price=fill.price,
        fill_quantity=fill.quantity, message=fill_message(order, fill)))


def status_changed(order: Order, *, status: str | None = None, message: str = "") -> None:
    """`order` is now in `status` (default: its status at the commit), announced after the commit.
    `message` replaces the default text (a notice that does not change the status says what it reported)."""
    def build() -> dict[str, Any]:
        now_status = status or order.status
        return events.order_event(
            "order", order_id=order.pk, code=order.code, side=order.side, status=now_status,
            quantity=order.quantity, filled_quantity=order.filled_quantity,
            price=order.average_fill_price or order.price or None,
            message=message or status_message(order, now_status))

    _announce(order, build)


def _announce(order: Order, build: Callable[[], dict[str, Any]]) -> None:
    """The event is built from the in-memory `order` when the transaction commits (no query then)."""
    try:
        channel = events.user_channel(order.broker_account.owner_id)
        transaction.on_commit(lambda: publish(channel, build), robust=True)
    except Exception:  # never let an event cost the caller its transaction
        logger.exception("order event for order %s not announced", order.pk)


def publish(channel: str, build: Callable[[], dict[str, Any]]) -> None:
    """The bus never raises by contract; a bus that cannot even be made (settings, a missing service) is
    logged and the event dropped: the order and its fills are already committed, the page reloads them."""
    try:
        get_bus().publish(channel, build())
    except Exception as error:
        logger.warning("order event on %s not published: %s", channel, error)
