"""Pre-trade order checks and their Korean messages."""

from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

import market.krx
from market.krx.fees import Market
from market.krx.rules import (
    OrderRuleError,
    OrderType,
    Side,
    check_order,
    validate_order,
)

SEOUL = ZoneInfo("Asia/Seoul")


def at(*args):
    return datetime(*args, tzinfo=SEOUL)


def test_order_type_codes():
    assert OrderType.LIMIT == "00"
    assert OrderType.MARKET == "01"
    assert OrderType.PRE_MARKET_CLOSE == "05"
    assert OrderType.POST_MARKET_CLOSE == "06"
    assert OrderType.AFTER_HOURS_SINGLE_PRICE == "07"


def test_valid_limit_order_has_no_reasons():
    assert validate_order("buy", "00", 10, 70_000, 71_000) == []
    assert (
        validate_order(
            Side.SELL, OrderType.LIMIT, 1, 92_300, 71_000, market=Market.KOSDAQ
        )
        == []
    )
    assert validate_order("BUY", "00", 1, 49_700, 71_000, market="kosdaq") == []


def test_off_tick_price_message():
    assert validate_order("buy", "00", 1, 70_050, 71_000) == [
        "호가 단위(100원)에 맞지 않는 가격입니다: 70,050원"
    ]
    assert validate_order("buy", "00", 1, 2_003, None) == [
        "호가 단위(5원)에 맞지 않는 가격입니다: 2,003원"
    ]


@pytest.mark.parametrize("price", [92_400, 49_600, 100_000])
def test_price_outside_the_30_percent_band(price):
    assert validate_order("buy", "00", 1, price, 71_000) == [
        f"가격제한폭(±30%)을 벗어난 가격입니다: {price:,}원 (하한가 49,700원 ~ 상한가 92,300원)"
    ]


def test_band_check_is_skipped_without_prev_close():
    assert validate_order("buy", "00", 1, 1_000_000, None) == []


@pytest.mark.parametrize("quantity", [0, -3, 1.5, 2.0, "10", True, None])
def test_quantity_must_be_a_positive_int(quantity):
    assert validate_order("buy", "00", quantity, 70_000, 71_000) == [
        f"주문 수량은 1주 이상의 정수여야 합니다: {quantity!r}"
    ]


@pytest.mark.parametrize("price", [None, 0, 70_000.0])
def test_limit_order_needs_an_int_price(price):
    assert validate_order("buy", "00", 1, price, 71_000) == [
        f"지정가 주문에는 1원 이상의 정수 가격이 필요합니다: {price!r}"
    ]


def test_market_order_ignores_price():
    assert validate_order("sell", "01", 5, None, 71_000) == []
    assert validate_order("sell", OrderType.MARKET, 5, 0, 71_000) == []


def test_mid_price_order_checks_a_given_price_only():
    assert validate_order("buy", "21", 1, None, 71_000) == []
    assert validate_order("buy", "21", 1, 70_050, 71_000) == [
        "호가 단위(100원)에 맞지 않는 가격입니다: 70,050원"
    ]


def test_unknown_codes_are_reported():
    assert validate_order("hold", "99", 1, 70_000, 71_000, market="NYSE") == [
        "알 수 없는 매매 구분입니다: 'hold'",
        "알 수 없는 시장입니다: 'NYSE'",
        "알 수 없는 주문 구분입니다: '99'",
    ]


def test_several_reasons_are_collected():
    reasons = validate_order("buy", "00", 0, 100_050, 71_000)
    assert reasons == [
        "주문 수량은 1주 이상의 정수여야 합니다: 0",
        "호가 단위(100원)에 맞지 않는 가격입니다: 100,050원",
        "가격제한폭(±30%)을 벗어난 가격입니다: 100,050원 (하한가 49,700원 ~ 상한가 92,300원)",
    ]


def test_order_inside_the_regular_session_passes():
    assert (
        validate_order("buy", "00", 1, 70_000, 71_000, now=at(2026, 6, 2, 9, 0)) == []
    )
    assert (
        validate_order("buy", "01", 1, None, 71_000, now=at(2026, 6, 2, 15, 29)) == []
    )


def test_order_on_a_closed_day():
    assert validate_order(
        "buy", "00", 1, 70_000, 71_000, now=at(2026, 6, 3, 10, 0)
    ) == ["휴장일에는 주문할 수 없습니다: 2026-06-03"]
    assert validate_order(
        "buy", "00", 1, 70_000, 71_000, now=at(2026, 6, 6, 10, 0)
    ) == ["휴장일에는 주문할 수 없습니다: 2026-06-06"]


@pytest.mark.parametrize(
    ("now", "window"),
    [
        (at(2026, 6, 2, 8, 59), "정규장 09:00~15:30"),
        (at(2026, 6, 2, 15, 30), "정규장 09:00~15:30"),
        (at(2026, 1, 2, 9, 30), "정규장 10:00~15:30"),  # first trading day opens late
    ],
)
def test_order_outside_the_regular_session(now, window):
    assert validate_order("buy", "00", 1, 70_000, 71_000, now=now) == [
        f"주문 가능 시간이 아닙니다: {now:%Y-%m-%d %H:%M} ({window})"
    ]


def test_session_is_read_in_seoul_time():
    utc_now = datetime(2026, 6, 2, 0, 30, tzinfo=ZoneInfo("UTC"))  # 09:30 KST
    assert validate_order("buy", "00", 1, 70_000, 71_000, now=utc_now) == []


@pytest.mark.parametrize(
    ("order_type", "price", "inside", "outside", "window"),
    [
        (
            "05",
            None,
            at(2026, 6, 2, 8, 35),
            at(2026, 6, 2, 8, 45),
            "장전 시간외 08:30~08:40",
        ),
        (
            "06",
            None,
            at(2026, 6, 2, 15, 45),
            at(2026, 6, 2, 15, 35),
            "장후 시간외 15:40~16:00",
        ),
        (
            "07",
            70_000,
            at(2026, 6, 2, 17, 0),
            at(2026, 6, 2, 18, 0),
            "시간외 단일가 16:00~18:00",
        ),
    ],
)
def test_after_hours_order_types_have_their_own_windows(
    order_type, price, inside, outside, window
):
    assert validate_order("sell", order_type, 1, price, 71_000, now=inside) == []
    assert validate_order("sell", order_type, 1, price, 71_000, now=outside) == [
        f"주문 가능 시간이 아닙니다: {outside:%Y-%m-%d %H:%M} ({window})"
    ]


def test_naive_now_is_a_programming_error():
    with pytest.raises(ValueError):
        validate_order("buy", "00", 1, 70_000, 71_000, now=datetime(2026, 6, 2, 10, 0))


def test_check_order_raises_with_reasons():
    with pytest.raises(OrderRuleError) as excinfo:
        check_order("buy", "00", 1, 70_050, 71_000)
    assert isinstance(excinfo.value, ValueError)
    assert excinfo.value.reasons == [
        "호가 단위(100원)에 맞지 않는 가격입니다: 70,050원"
    ]
    assert "70,050원" in str(excinfo.value)
    assert check_order("buy", "00", 1, 70_000, 71_000) is None


def test_package_has_no_django_imports():
    package_dir = Path(market.krx.__file__).parent
    for source in package_dir.glob("*.py"):
        text = source.read_text(encoding="utf-8")
        assert "import django" not in text and "from django" not in text, source.name
