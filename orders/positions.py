"""Positions: derived from fills (there is no stored position table), and checked against the
broker's balance (`check_positions`), with the POSITION_MISMATCH alerts kept in step."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

from django.db.models import F, Q, Sum
from django.utils import timezone

from accounts.models import BrokerAccount
from market.gateway import BrokerError, user_message_for
from market.kis.errors import KisError

from .common import get_broker
from .controls import raise_alert, resolve_alert
from .models import OPEN_STATUSES, AlertKind, Fill, Order, OrderSide, OrderStatus, TradingAlert


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
    """Open positions of a strategy config (or of a broker account), from its fills in order.

    The order is the broker's: by trading day, then the broker's order number (it numbers orders as
    they reach it, and a sell is accepted only when the shares it sells are held). Fill times are the
    orders' times to the second, and concurrent orders are recorded in any order, so sorting by time
    could put a sell before the buy that made it possible; the sell would then be cut to what was
    held at that point and shares already sold would stay "held" for ever."""
    fills = Fill.objects.select_related("order").order_by(
        "order__trading_date", "order__broker_order_no", "cumulative_quantity", "filled_at", "pk")
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


@dataclass
class PositionReport:
    """Derived positions compared with the broker's holdings, per code."""

    matched: list[str] = field(default_factory=list)
    in_flight: list[str] = field(default_factory=list)  # differ by no more than open orders explain
    shortfalls: dict[str, dict] = field(default_factory=dict)  # the broker holds less than we recorded
    extras: dict[str, dict] = field(default_factory=dict)  # the broker holds shares we never bought


def open_quantities(account: BrokerAccount) -> tuple[dict[str, int], dict[str, int]]:
    """Per code, the unfilled quantity of orders that may still fill at the broker (buys, sells)."""
    buys: dict[str, int] = {}
    sells: dict[str, int] = {}
    rows = (Order.objects.filter(broker_account=account)
            .filter(Q(status__in=OPEN_STATUSES) & ~Q(status=OrderStatus.PENDING)
                    | Q(status=OrderStatus.PENDING, send_attempts__gt=0))
            .values_list("code", "side", "quantity", "filled_quantity"))
    for code, side, quantity, filled in rows:
        target = buys if side == OrderSide.BUY else sells
        target[code] = target.get(code, 0) + max(quantity - filled, 0)
    return buys, sells


def _recorded_positions(account: BrokerAccount) -> dict[str, int]:
    return {code: position.quantity for code, position in positions_for(account=account).items()}


def check_positions(account: BrokerAccount, *, broker=None, now: dt.datetime | None = None) -> PositionReport:
    """Compare `positions_for(account=...)` with `broker.get_balance().holdings` and keep the
    POSITION_MISMATCH alerts in step:

    - the broker holds less than we recorded (sold outside, a missed fill): a blocking alert
      (`shortfall:<code>`) — the account's entries stop until it is resolved;
    - the broker holds more (the owner's own shares, an order outside the system): a non-blocking
      alert (`extra:<code>`); the auto-trader never sells more than it recorded;
    - a difference that open orders can explain (fills not read yet) is left alone;
    - an open alert whose code matches again is resolved automatically; a difference a person
      resolved (acknowledged) is not reported again unless it changes.

    Raises the broker's error (after a RECONCILE_FAILED alert) when the balance cannot be read."""
    now = now or timezone.now()
    broker = broker or get_broker(account, now)
    # Our books are read before and after the balance: an order sent or filled meanwhile (a manual order,
    # another job) is then explained by one of the two readings instead of raising a false mismatch.
    ours_before, open_before = _recorded_positions(account), open_quantities(account)
    try:
        balance = broker.get_balance()
    except (BrokerError, KisError) as error:
        raise_alert(account, AlertKind.RECONCILE_FAILED,
                    f"잔고를 읽지 못해 보유 수량을 확인하지 못했습니다: {user_message_for(error)}", key="balance")
        raise
    ours, (open_buys, open_sells) = _recorded_positions(account), open_quantities(account)
    theirs: dict[str, int] = {}
    for holding in balance.holdings:
        if holding.quantity:
            theirs[holding.code] = theirs.get(holding.code, 0) + holding.quantity
    report = PositionReport()
    for code in sorted(set(ours) | set(theirs) | set(ours_before)):
        recorded, held = ours.get(code, 0), theirs.get(code, 0)
        difference = held - recorded
        buys_open = max(open_buys.get(code, 0), open_before[0].get(code, 0))
        sells_open = max(open_sells.get(code, 0), open_before[1].get(code, 0))
        readings = {recorded, ours_before.get(code, 0)}
        details = {"code": code, "recorded": recorded, "broker": held, "difference": difference,
                   "open_buy": buys_open, "open_sell": sells_open}
        if difference == 0:
            report.matched.append(code)
        elif any(-sells_open <= held - reading <= buys_open for reading in readings):
            report.in_flight.append(code)
        elif difference < 0:
            report.shortfalls[code] = details
        else:
            report.extras[code] = details
    _sync_position_alerts(account, report)
    return report


def _position_message(details: dict) -> str:
    code, recorded, held, difference = details["code"], details["recorded"], details["broker"], details["difference"]
    if difference < 0:
        return (f"{code}: 자동매매 기록은 {recorded:,}주인데 브로커 잔고는 {held:,}주입니다 ({-difference:,}주 부족). "
                f"직접 매도했거나 체결이 누락됐을 수 있습니다. 확인 후 해결 처리하면 신규 진입이 다시 허용됩니다.")
    if recorded == 0:
        return (f"{code}: 브로커 잔고에 자동매매가 사지 않은 {held:,}주가 있습니다 (직접 매수했거나 시스템 밖의 주문). "
                f"자동매매는 이 주식을 팔지 않습니다. 신규 진입은 막지 않습니다.")
    return (f"{code}: 브로커 잔고 {held:,}주가 자동매매 기록 {recorded:,}주보다 {difference:,}주 많습니다 "
            f"(직접 매수분 등). 자동매매는 기록된 수량까지만 팝니다. 신규 진입은 막지 않습니다.")


def _sync_position_alerts(account: BrokerAccount, report: PositionReport) -> None:
    wanted = {f"shortfall:{code}": (details, True) for code, details in report.shortfalls.items()}
    wanted |= {f"extra:{code}": (details, False) for code, details in report.extras.items()}
    open_alerts = {
        alert.key: alert for alert in TradingAlert.objects.filter(
            account=account, kind=AlertKind.POSITION_MISMATCH, resolved_at__isnull=True)
    }
    for key, alert in open_alerts.items():
        code = key.split(":", 1)[-1]
        if key not in wanted and code not in report.in_flight:
            resolve_alert(alert, user=None, note="자동 해소: 브로커 잔고와 자동매매 기록의 차이가 없어졌습니다.")
    for key, (details, blocking) in wanted.items():
        message = _position_message(details)
        alert = open_alerts.get(key)
        if alert is not None:
            if alert.details != details:  # the numbers moved: keep the one open alert current
                TradingAlert.objects.filter(pk=alert.pk).update(message=message, details=details)
            continue
        acknowledged = (TradingAlert.objects.filter(account=account, kind=AlertKind.POSITION_MISMATCH, key=key,
                                                    resolved_by__isnull=False)
                        .order_by("-resolved_at", "-pk").first())
        if acknowledged is not None and acknowledged.details.get("difference") == details["difference"]:
            continue
        raise_alert(account, AlertKind.POSITION_MISMATCH, message, key=key, details=details,
                    blocks_entries=blocking)
