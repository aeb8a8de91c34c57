"""Read-side of the orders app: positions are derived from fills (no stored position table)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from django.db.models import F, Sum

from .models import OPEN_STATUSES, Fill, Order, OrderSide


@dataclass(frozen=True)
class Position:
    code: str
    quantity: int
    cost: int  # KRW paid for the shares still held (buy amounts, without commission)
    opened_on: dt.date  # trading date of the first buy since the position was last flat

    @property
    def average_price(self) -> float:
        return self.cost / self.quantity if self.quantity else 0.0


def positions_for(config=None, *, account=None) -> dict[str, Position]:
    """Open positions of a strategy config (or of a broker account), from its fills in order."""
    fills = Fill.objects.select_related("order").order_by("filled_at", "pk")
    if config is not None:
        fills = fills.filter(order__config=config)
    if account is not None:
        fills = fills.filter(order__broker_account=account)
    state: dict[str, list] = {}  # code -> [quantity, cost, opened_on]
    for fill in fills:
        code = fill.order.code
        quantity, cost, opened_on = state.get(code, [0, 0, None])
        if fill.order.side == OrderSide.BUY:
            if quantity == 0:
                opened_on = fill.order.trading_date
            quantity, cost = quantity + fill.quantity, cost + fill.amount
        else:
            sold = min(fill.quantity, quantity)
            cost -= cost * sold // quantity if quantity else 0
            quantity -= sold
            if quantity == 0:
                cost, opened_on = 0, None
        state[code] = [quantity, cost, opened_on]
    return {
        code: Position(code, quantity, cost, opened_on)
        for code, (quantity, cost, opened_on) in sorted(state.items()) if quantity > 0
    }


def open_order_quantities(config, side: str) -> dict[str, int]:
    """Per code, the not-yet-filled quantity of the config's open orders on one side."""
    rows = (
        Order.objects.filter(config=config, side=side, status__in=OPEN_STATUSES)
        .values("code").annotate(left=Sum(F("quantity") - F("filled_quantity")))
    )
    return {row["code"]: int(row["left"] or 0) for row in rows}


def orders_page_for(user, limit: int = 50) -> dict:
    """What the 주문 page shows: each of the user's strategies with its derived positions, the latest
    weekly runs and the latest orders. Everything is scoped to the user."""
    from strategies.models import StrategyConfig

    from .models import WeeklyRun

    configs = list(StrategyConfig.objects.filter(owner=user).select_related("broker_account").order_by("name"))
    return {
        "strategies": [(config, list(positions_for(config).values())) for config in configs],
        "runs": WeeklyRun.objects.filter(config__owner=user).select_related("config").order_by("-trading_date", "-pk")[:20],
        "orders": Order.objects.filter(broker_account__owner=user).select_related("config").order_by("-intent_at", "-pk")[:limit],
    }
