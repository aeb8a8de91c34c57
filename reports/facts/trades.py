"""Trades: the executions of an account (paper books or stored fills), the holdings replayed from them
with the realised P&L of each sell, and the week's trade rows and summary."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

from accounts.models import BrokerAccount, BrokerMode
from market.models import PaperOrder, PaperOrderStatus
from orders.models import Fill, Order, OrderReason, OrderSide

from .common import REASON_LABELS, SIDE_LABELS, WeekWindow


@dataclass
class Execution:
    day: dt.date
    at: dt.datetime
    code: str
    side: str
    quantity: int
    price: int
    amount: int
    commission: int
    tax: int
    reason: str
    strategy: str = ""
    order_id: int | None = None  # our orders.Order, when the auto-trader placed it

    @property
    def cash_flow(self) -> int:
        if self.side == OrderSide.BUY:
            return -(self.amount + self.commission)
        return self.amount - self.commission - self.tax


def _our_orders(account: BrokerAccount) -> dict[str, Order]:
    return {
        order.client_order_id: order
        for order in Order.objects.filter(broker_account=account).select_related("config")
    }


def executions_for(account: BrokerAccount) -> list[Execution]:
    """Every execution of the account, oldest first. A paper account's come from the paper broker's
    own books (which also hold orders placed by hand); a KIS account's from the stored fills."""
    result: list[Execution] = []
    if account.mode == BrokerMode.PAPER:
        ours = _our_orders(account)
        rows = PaperOrder.objects.filter(
            account__broker_account=account, status=PaperOrderStatus.FILLED, filled_quantity__gt=0
        ).order_by("trading_date", "filled_at", "pk")
        for row in rows:
            order = ours.get(row.client_order_id) if row.client_order_id else None
            amount = row.fill_price * row.filled_quantity
            result.append(Execution(
                day=row.trading_date, at=row.filled_at or row.placed_at, code=row.code, side=row.side,
                quantity=row.filled_quantity, price=row.fill_price, amount=amount, commission=row.commission,
                tax=row.tax, reason=order.reason if order else OrderReason.MANUAL,
                strategy=order.config.name if order and order.config else "", order_id=order.pk if order else None,
            ))
        return result
    fills = Fill.objects.filter(order__broker_account=account).select_related("order", "order__config")
    for fill in fills.order_by("filled_at", "pk"):
        order = fill.order
        result.append(Execution(
            day=order.trading_date, at=fill.filled_at, code=order.code, side=order.side, quantity=fill.quantity,
            price=fill.price, amount=fill.amount, commission=fill.commission, tax=fill.tax, reason=order.reason,
            strategy=order.config.name if order.config else "", order_id=order.pk,
        ))
    result.sort(key=lambda e: (e.day, e.at))
    return result


@dataclass
class Book:
    """Holdings replayed from executions: quantity and cost (buy amount + buy commission) per code."""

    quantity: dict[str, int] = field(default_factory=dict)
    cost: dict[str, int] = field(default_factory=dict)

    def apply(self, execution: Execution) -> int | None:
        """Apply one execution; returns the realised P&L of a sell."""
        code = execution.code
        held, cost = self.quantity.get(code, 0), self.cost.get(code, 0)
        if execution.side == OrderSide.BUY:
            self.quantity[code], self.cost[code] = held + execution.quantity, cost + execution.amount + execution.commission
            return None
        sold = min(execution.quantity, held)
        basis = cost * sold // held if held else 0
        self.quantity[code], self.cost[code] = held - sold, cost - basis
        if self.quantity[code] == 0:
            del self.quantity[code], self.cost[code]
        return execution.amount - execution.commission - execution.tax - basis

    def copy(self) -> Book:
        return Book(dict(self.quantity), dict(self.cost))


def replay(executions: list[Execution], day_points: list[dt.date], window: WeekWindow
           ) -> tuple[dict[dt.date, Book], list[tuple[Execution, int | None]]]:
    """The books at the close of each day point, and the week's executions with their realised P&L."""
    book = Book()
    snapshots: dict[dt.date, Book] = {}
    trades: list[tuple[Execution, int | None]] = []
    points = iter(sorted(day_points))
    pending = next(points, None)
    for execution in executions:
        while pending is not None and execution.day > pending:
            snapshots[pending] = book.copy()
            pending = next(points, None)
        realised = book.apply(execution)
        if window.monday <= execution.day <= window.sunday:
            trades.append((execution, realised))
    while pending is not None:
        snapshots[pending] = book.copy()
        pending = next(points, None)
    return snapshots, trades


def trade_rows(trades: list[tuple[Execution, int | None]], names: dict[str, str]) -> list[dict]:
    """The week's executions as rows, oldest first, with the reason and a sell's realised P&L."""
    return [
        {
            "date": e.day.isoformat(), "code": e.code, "name": names.get(e.code, ""),
            "side": SIDE_LABELS.get(e.side, e.side), "quantity": e.quantity, "price": e.price, "amount": e.amount,
            "commission": e.commission, "tax": e.tax, "reason": REASON_LABELS.get(e.reason, e.reason),
            "strategy": e.strategy, "realized_pnl": realised,
        }
        for e, realised in sorted(trades, key=lambda pair: (pair[0].day, pair[0].at))
    ]


def buys_and_sells(rows: list[dict]) -> tuple[list[dict], list[dict]]:
    return ([t for t in rows if t["side"] == SIDE_LABELS["buy"]],
            [t for t in rows if t["side"] == SIDE_LABELS["sell"]])


def trade_summary(rows: list[dict]) -> dict:
    buys, sells = buys_and_sells(rows)
    realised_values = [t["realized_pnl"] for t in sells if t["realized_pnl"] is not None]
    return {
        "count": len(rows), "buys": len(buys), "sells": len(sells),
        "bought_amount": sum(t["amount"] for t in buys), "sold_amount": sum(t["amount"] for t in sells),
        "commission": sum(t["commission"] for t in rows), "tax": sum(t["tax"] for t in rows),
        "realized_pnl": sum(realised_values), "winning_sells": sum(1 for v in realised_values if v > 0),
        "losing_sells": sum(1 for v in realised_values if v < 0),
    }
