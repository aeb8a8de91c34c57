"""Pre-trade risk checks. Every order passes them right before it is sent (`orders.execution.send_order`), so
the weekly jobs and manual orders get the same checks. A refusal is final for that order: it becomes
`rejected` with the Korean message, `raw_response={"risk": <check>}` and a RISK_BLOCKED alert, and
nothing reaches the broker.

The checks, in order (the first refusal wins):

1. `kill_switch`      the global or the account's halt (`TradingControl.halted`) — buys and sells.
2. `market_hours`     the regular session of a KRX trading day (09:00–15:30 Seoul, late opens
                      included) at the job's clock, so paper replays of past dates behave as live.
3. `tick_size`        a limit price on the KRX price grid.
4. `price_limit`      a limit price — or a market order's reference price — within ±30% of the
                      base price (the previous close).
5. `max_order_amount` buys: quantity × price (limit, else the reference price) ≤ the max order amount.
6. `daily_loss_limit` buys: the account's realised loss of the day has not reached the limit.
7. `buyable_cash`     buys: amount + commission ≤ the broker's orderable cash. Within one weekly run the
                      figure is the run's own account of it (`orders.execution.CashBook`: the planner's
                      read less each accepted buy); when that says "not enough", the broker's figure is
                      read once more and decides (a deposit since the last read counts).

Sells reduce exposure, so they only face 1–4 (KRX would refuse them anyway): a loss-limit state,
a tight max amount or a cash shortfall never traps a position.

`evaluate` is pure: the inputs that cost a query or a broker call are passed as callables and only
called when the check needs them (no cash read for a sell, none at all once a check has refused).
The database helpers at the end (`controls_for`, `limits_for`, `realised_pnl`, `stored_base_price`,
`stored_base_prices`) are read-only.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass

from django.conf import settings
from django.db.models import Q

from market.krx import (
    SEOUL,
    is_on_tick,
    is_trading_day,
    previous_trading_day,
    price_limits,
    session_open_close,
    tick_size_for,
)

KILL_SWITCH = "kill_switch"
MARKET_HOURS = "market_hours"
TICK_SIZE = "tick_size"
PRICE_LIMIT = "price_limit"
MAX_ORDER_AMOUNT = "max_order_amount"
DAILY_LOSS_LIMIT = "daily_loss_limit"
BUYABLE_CASH = "buyable_cash"
CHECKS = (KILL_SWITCH, MARKET_HOURS, TICK_SIZE, PRICE_LIMIT, MAX_ORDER_AMOUNT, DAILY_LOSS_LIMIT, BUYABLE_CASH)

DEFAULT_MAX_ORDER_KRW = 50_000_000
LIMIT = "00"
BUY = "buy"


@dataclass(frozen=True)
class OrderFacts:
    """What the checks need to know about one order (integer KRW)."""

    side: str  # "buy" / "sell"
    order_type: str  # "00" limit, "01" market
    quantity: int
    price: int  # limit price; 0 for market orders
    reference_price: int  # the price the order was sized with; 0 when unknown

    @property
    def is_limit(self) -> bool:
        return self.order_type == LIMIT

    @property
    def is_buy(self) -> bool:
        return self.side == BUY

    @classmethod
    def of(cls, order) -> OrderFacts:
        return cls(side=order.side, order_type=order.order_type, quantity=int(order.quantity),
                   price=int(order.price or 0), reference_price=int(order.reference_price or 0))


@dataclass(frozen=True)
class Limits:
    max_order_krw: int | None  # None: no limit
    daily_loss_limit_krw: int | None  # None: no limit


@dataclass(frozen=True)
class RiskDenial:
    check: str  # one of CHECKS
    message: str  # Korean, shown on the order and in the alert


def _won(amount: int) -> str:
    return f"{amount:,}원"


# ------------------------------------------------------------------------------------------- the checks
def check_market_hours(now: dt.datetime) -> str | None:
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    local = now.astimezone(SEOUL)
    if not is_trading_day(local.date()):
        return f"{local:%Y-%m-%d}은(는) 휴장일이라 주문을 보내지 않았습니다."
    opens_at, closes_at = session_open_close(local.date())
    if opens_at <= local < closes_at:
        return None
    return (f"정규장 시간({opens_at:%H:%M}~{closes_at:%H:%M})이 아니어서 주문을 보내지 않았습니다: "
            f"{local:%Y-%m-%d %H:%M}")


def check_tick(order: OrderFacts) -> str | None:
    if not order.is_limit:
        return None
    if order.price < 1:
        return f"지정가 주문에 가격이 없습니다: {order.price!r}"
    if not is_on_tick(order.price):
        return f"호가 단위({_won(tick_size_for(order.price))})에 맞지 않는 가격입니다: {_won(order.price)}"
    return None


def check_price_limit(order: OrderFacts, base_price: int | None) -> str | None:
    """A limit price, or a market order's reference price, inside the ±30% band of `base_price`.
    Without a base price (an unknown code) there is nothing to compare; the broker refuses such orders."""
    if not base_price or base_price < 1:
        return None
    lower, upper = price_limits(base_price)
    if order.is_limit:
        if not lower <= order.price <= upper:
            return (f"가격제한폭(±30%)을 벗어난 지정가입니다: {_won(order.price)} "
                    f"(기준가 {_won(base_price)}, 하한가 {_won(lower)} ~ 상한가 {_won(upper)})")
        return None
    if order.reference_price and not lower <= order.reference_price <= upper:
        return (f"시장가 주문의 기준 가격 {_won(order.reference_price)}이 가격제한폭(±30%)을 벗어났습니다 "
                f"(기준가 {_won(base_price)}, 하한가 {_won(lower)} ~ 상한가 {_won(upper)}). "
                f"시세가 맞는지 확인하세요.")
    return None


def estimated_price(order: OrderFacts, base_price: int | None) -> int:
    """The price the amount checks use: the limit price, else the reference price, else the base price."""
    if order.is_limit:
        return order.price
    return order.reference_price or (base_price or 0)


def check_max_amount(amount: int, max_order_krw: int | None) -> str | None:
    if max_order_krw is None:
        return None
    if amount <= 0:
        return "주문 금액을 추정할 가격이 없어 최대 주문 금액을 확인할 수 없습니다."
    if amount > max_order_krw:
        return f"주문 금액 {_won(amount)}이 최대 주문 금액 {_won(max_order_krw)}을 넘습니다."
    return None


def check_daily_loss(realised_pnl_today: int, daily_loss_limit_krw: int | None) -> str | None:
    if daily_loss_limit_krw is None:
        return None
    if realised_pnl_today <= -daily_loss_limit_krw:
        return (f"오늘 실현손실 {_won(-realised_pnl_today)}이 일일 손실 한도 {_won(daily_loss_limit_krw)}에 "
                f"도달해 신규 매수를 막았습니다. 매도는 계속됩니다.")
    return None


def check_cash(amount: int, commission: int, orderable_cash: int) -> str | None:
    needed = amount + commission
    if needed > orderable_cash:
        return (f"주문가능금액이 부족합니다: 필요 {_won(needed)} (수수료 {_won(commission)} 포함), "
                f"가능 {_won(orderable_cash)}")
    return None


def evaluate(
    order: OrderFacts,
    *,
    now: dt.datetime,
    halt_reason: str | None,
    limits: Limits,
    base_price: Callable[[], int | None],
    realised_pnl_today: Callable[[], int],
    orderable_cash: Callable[[], int],
    commission: Callable[[int], int],
    fresh_orderable_cash: Callable[[], int] | None = None,
) -> RiskDenial | None:
    """The first check that refuses `order`, or None when it may be sent. The callables are only
    called when needed (and may raise when their source cannot be read: the caller decides).
    `fresh_orderable_cash`, given when `orderable_cash` is a figure kept by the caller rather than the
    broker's: asked only when that figure is not enough, and its answer decides the cash check."""
    if halt_reason:
        return RiskDenial(KILL_SWITCH, halt_reason)
    if message := check_market_hours(now):
        return RiskDenial(MARKET_HOURS, message)
    if message := check_tick(order):
        return RiskDenial(TICK_SIZE, message)
    base = None
    if order.is_limit or order.reference_price or order.is_buy:
        base = base_price()
    if message := check_price_limit(order, base):
        return RiskDenial(PRICE_LIMIT, message)
    if not order.is_buy:
        return None
    amount = estimated_price(order, base) * order.quantity
    if message := check_max_amount(amount, limits.max_order_krw):
        return RiskDenial(MAX_ORDER_AMOUNT, message)
    if limits.daily_loss_limit_krw is not None:
        if message := check_daily_loss(realised_pnl_today(), limits.daily_loss_limit_krw):
            return RiskDenial(DAILY_LOSS_LIMIT, message)
    fee = commission(amount)
    message = check_cash(amount, fee, orderable_cash())
    if message and fresh_orderable_cash is not None:
        message = check_cash(amount, fee, fresh_orderable_cash())
    if message:
        return RiskDenial(BUYABLE_CASH, message)
    return None


# ------------------------------------------------------------------------------------------- database reads
def _setting_amount(name: str, default: int | None) -> int | None:
    value = getattr(settings, name, default)
    if value in (None, ""):
        return None
    value = int(value)
    return value if value > 0 else None


def controls_for(account) -> tuple[bool, Limits]:
    """One read of the global and the account's `TradingControl` rows: whether either is halted (the
    kill switch; `orders.controls.halt_reason_for` words it) and the account's limits (`limits_for`)."""
    from .models import TradingControl

    rows = {
        row.scope: row for row in TradingControl.objects.filter(
            Q(scope=TradingControl.GLOBAL) | Q(scope=TradingControl.scope_for(account)))
    }
    return any(row.halted for row in rows.values()), _limits_of(rows, account)


def limits_for(account) -> Limits:
    """The account's row first, then the global row, then the settings (`ORDERS_MAX_ORDER_KRW`,
    default 50,000,000; `ORDERS_DAILY_LOSS_LIMIT_KRW`, default none)."""
    return controls_for(account)[1]


def _limits_of(rows: dict, account) -> Limits:
    from .models import TradingControl

    ordered = [rows.get(TradingControl.scope_for(account)), rows.get(TradingControl.GLOBAL)]

    def pick(field: str, setting: str, default: int | None) -> int | None:
        for row in ordered:
            value = getattr(row, field, None) if row is not None else None
            if value is not None:
                return value if value > 0 else None
        return _setting_amount(setting, default)

    return Limits(
        max_order_krw=pick("max_order_krw", "ORDERS_MAX_ORDER_KRW", DEFAULT_MAX_ORDER_KRW),
        daily_loss_limit_krw=pick("daily_loss_limit_krw", "ORDERS_DAILY_LOSS_LIMIT_KRW", None),
    )


def realised_pnl(account, day: dt.date) -> int:
    """Realised profit (negative: loss) of the account's sells traded on `day`, from its fills:
    proceeds − sell commission − tax − the average cost of the shares sold (buy commission included)."""
    from .models import Fill

    state: dict[str, list[int]] = {}  # code -> [quantity, cost incl. buy commission]
    total = 0
    fills = (Fill.objects.filter(order__broker_account=account, order__trading_date__lte=day)
             .select_related("order").order_by("filled_at", "pk"))
    for fill in fills:
        order = fill.order
        quantity, cost = state.get(order.code, [0, 0])
        if order.side == BUY:
            quantity, cost = quantity + fill.quantity, cost + fill.amount + fill.commission
        else:
            sold = min(fill.quantity, quantity)
            sold_cost = cost * sold // quantity if quantity else 0
            if order.trading_date == day and fill.quantity:
                proceeds = (fill.amount - fill.commission - fill.tax) * sold // fill.quantity
                total += proceeds - sold_cost
            quantity, cost = quantity - sold, cost - sold_cost
        state[order.code] = [quantity, cost]
    return total


def stored_base_price(code: str, trading_date: dt.date) -> int | None:
    """The previous trading day's stored close (the base of the ±30% band), or None when not stored."""
    from market.models import DailyBar

    close = (DailyBar.objects.filter(instrument__code=code, date=previous_trading_day(trading_date))
             .values_list("close", flat=True).first())
    return int(close) if close else None


def stored_base_prices(codes, trading_date: dt.date) -> dict[str, int | None]:
    """`stored_base_price` of several codes in one query (None for a code without a stored close)."""
    from market.models import DailyBar

    codes = sorted(set(codes))
    closes = dict(DailyBar.objects.filter(instrument__code__in=codes, date=previous_trading_day(trading_date))
                  .values_list("instrument__code", "close"))
    return {code: int(closes[code]) if closes.get(code) else None for code in codes}
