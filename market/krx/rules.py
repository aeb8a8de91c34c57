"""Pre-trade checks of an order against KRX rules, before it is sent to KIS.

KIS rejects such orders anyway (APBK0506 off-grid price, APBK0918 outside the
session), but checking first gives the user a clear Korean reason and keeps
rejected orders out of the broker's books.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from enum import StrEnum
from typing import Literal, NamedTuple

from market.krx.calendar import SEOUL, is_trading_day, session_open_close
from market.krx.fees import Market, parse_market
from market.krx.ticks import is_on_tick, price_limits, tick_size_for


class Side(StrEnum):
    BUY = "buy"
    SELL = "sell"


class OrderType(StrEnum):
    """KIS ``ORD_DVSN`` codes for KRX cash orders (fact sheet §4.1)."""

    LIMIT = "00"  # 지정가
    MARKET = "01"  # 시장가
    CONDITIONAL_LIMIT = "02"  # 조건부지정가
    BEST_LIMIT = "03"  # 최유리지정가
    PRIORITY_LIMIT = "04"  # 최우선지정가
    PRE_MARKET_CLOSE = "05"  # 장전 시간외 (previous close)
    POST_MARKET_CLOSE = "06"  # 장후 시간외 (today's close)
    AFTER_HOURS_SINGLE_PRICE = "07"  # 시간외 단일가
    IOC_LIMIT = "11"
    FOK_LIMIT = "12"
    IOC_MARKET = "13"
    FOK_MARKET = "14"
    IOC_BEST = "15"
    FOK_BEST = "16"
    MID_PRICE = "21"  # 중간가
    STOP_LIMIT = "22"  # 스톱지정가
    MID_PRICE_IOC = "23"
    MID_PRICE_FOK = "24"


# Types whose ORD_UNPR is a real limit price that must be on the grid and in the band.
PRICED_ORDER_TYPES = frozenset(
    {
        OrderType.LIMIT,
        OrderType.CONDITIONAL_LIMIT,
        OrderType.AFTER_HOURS_SINGLE_PRICE,
        OrderType.IOC_LIMIT,
        OrderType.FOK_LIMIT,
        OrderType.STOP_LIMIT,
    }
)
# Mid-price orders may carry a limit price; it is checked only when given.
OPTIONALLY_PRICED_ORDER_TYPES = frozenset(
    {OrderType.MID_PRICE, OrderType.MID_PRICE_IOC, OrderType.MID_PRICE_FOK}
)


class OrderWindow(NamedTuple):
    """When an order type may be entered, relative to the day's regular open/close,
    so late-open days shift every window with the session."""

    label: str
    starts_after: Literal["open", "close"]
    start_offset: timedelta
    ends_after: Literal["open", "close"]
    end_offset: timedelta


REGULAR_WINDOW = OrderWindow("정규장", "open", timedelta(0), "close", timedelta(0))
# Fact sheet §8: 05 08:30-08:40, 06 15:40-16:00, 07 16:00-18:00 on a normal day.
WINDOWS_BY_ORDER_TYPE: dict[OrderType, OrderWindow] = {
    OrderType.PRE_MARKET_CLOSE: OrderWindow(
        "장전 시간외", "open", timedelta(minutes=-30), "open", timedelta(minutes=-20)
    ),
    OrderType.POST_MARKET_CLOSE: OrderWindow(
        "장후 시간외", "close", timedelta(minutes=10), "close", timedelta(minutes=30)
    ),
    OrderType.AFTER_HOURS_SINGLE_PRICE: OrderWindow(
        "시간외 단일가", "close", timedelta(minutes=30), "close", timedelta(minutes=150)
    ),
}


class OrderRuleError(ValueError):
    """An order breaks one or more KRX rules; ``reasons`` holds the Korean messages."""

    def __init__(self, reasons: list[str]) -> None:
        super().__init__("; ".join(reasons))
        self.reasons = list(reasons)


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _won(amount: int) -> str:
    return f"{amount:,}원"


def _parse_side(value: object) -> Side | None:
    try:
        return Side(str(value).strip().lower())
    except ValueError:
        return None


def _parse_order_type(value: object) -> OrderType | None:
    try:
        return OrderType(str(value).strip())
    except ValueError:
        return None


def _price_reasons(price: object, prev_close: int | None) -> list[str]:
    if not isinstance(price, int) or isinstance(price, bool) or price < 1:
        return [f"지정가 주문에는 1원 이상의 정수 가격이 필요합니다: {price!r}"]
    reasons = []
    if not is_on_tick(price):
        reasons.append(
            f"호가 단위({_won(tick_size_for(price))})에 맞지 않는 가격입니다: {_won(price)}"
        )
    if prev_close is not None:
        lower, upper = price_limits(prev_close)
        if not lower <= price <= upper:
            reasons.append(
                f"가격제한폭(±30%)을 벗어난 가격입니다: {_won(price)} "
                f"(하한가 {_won(lower)} ~ 상한가 {_won(upper)})"
            )
    return reasons


def _session_reasons(order_type: OrderType, now: datetime) -> list[str]:
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    local_now = now.astimezone(SEOUL)
    if not is_trading_day(local_now):
        return [f"휴장일에는 주문할 수 없습니다: {local_now:%Y-%m-%d}"]
    opens_at, closes_at = session_open_close(local_now)
    anchors = {"open": opens_at, "close": closes_at}
    window = WINDOWS_BY_ORDER_TYPE.get(order_type, REGULAR_WINDOW)
    starts_at = anchors[window.starts_after] + window.start_offset
    ends_at = anchors[window.ends_after] + window.end_offset
    if starts_at <= local_now < ends_at:
        return []
    reason = (
        f"주문 가능 시간이 아닙니다: {local_now:%Y-%m-%d %H:%M} "
        f"({window.label} {starts_at:%H:%M}~{ends_at:%H:%M})"
    )
    return [reason]


def validate_order(
    side: str | Side,
    order_type: str | OrderType,
    quantity: int,
    price: int | None,
    prev_close: int | None,
    now: datetime | None = None,
    market: str | Market = Market.KOSPI,
) -> list[str]:
    """Korean reasons why KRX/KIS would refuse this order; empty when it passes.

    ``price`` is checked only for priced order types (limit, IOC/FOK limit, ...);
    for market-type orders it is ignored (KIS wants ``"0"``). ``prev_close`` is the
    base price of the ±30% band; pass None to skip the band check. ``now`` must be
    timezone-aware; when given, the order must fall on a trading day inside the
    window of its type (regular session: open to close, e.g. 09:00-15:30).
    Invalid reference data (``prev_close`` < 1, naive ``now``) raises ValueError.
    """
    reasons: list[str] = []
    if _parse_side(side) is None:
        reasons.append(f"알 수 없는 매매 구분입니다: {side!r}")
    try:
        parse_market(market)
    except ValueError:
        reasons.append(f"알 수 없는 시장입니다: {market!r}")
    if not _is_int(quantity) or quantity < 1:
        reasons.append(f"주문 수량은 1주 이상의 정수여야 합니다: {quantity!r}")

    parsed_type = _parse_order_type(order_type)
    if parsed_type is None:
        reasons.append(f"알 수 없는 주문 구분입니다: {order_type!r}")
        return reasons
    if parsed_type in PRICED_ORDER_TYPES or (
        parsed_type in OPTIONALLY_PRICED_ORDER_TYPES and price not in (None, 0)
    ):
        reasons.extend(_price_reasons(price, prev_close))
    if now is not None:
        reasons.extend(_session_reasons(parsed_type, now))
    return reasons


def check_order(
    side: str | Side,
    order_type: str | OrderType,
    quantity: int,
    price: int | None,
    prev_close: int | None,
    now: datetime | None = None,
    market: str | Market = Market.KOSPI,
) -> None:
    """Like ``validate_order`` but raises OrderRuleError when any rule is broken."""
    reasons = validate_order(side, order_type, quantity, price, prev_close, now, market)
    if reasons:
        raise OrderRuleError(reasons)
