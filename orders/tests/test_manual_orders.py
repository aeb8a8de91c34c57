"""place_manual_order: one order by hand through the same send path as the weekly jobs (stored first,
risk checks and the kill switch, sent once), with idempotency keys for safe retries."""

from __future__ import annotations

import datetime as dt

import pytest

from accounts.models import BrokerMode
from accounts.tests.factories import BrokerAccountFactory
from market.models import DailyBar, PaperOrder
from orders import common, reconciliation
from orders.controls import halt_trading, resume_trading
from orders.manual import (
    IdempotencyKeyReused,
    ManualOrderAccountNotFound,
    ManualOrderError,
    ManualOrderNoAccount,
    manual_client_order_id,
    order_trading_day,
    place_manual_order,
)
from orders.models import Order, OrderReason, OrderStatus, TradingAlert
from orders.positions import positions_for

from .conftest import MONDAY, at

pytestmark = pytest.mark.django_db

SAMSUNG = "005930"
DURING_SESSION = at(MONDAY, 10, 0)


@pytest.fixture
def market(demo_bars):
    assert SAMSUNG in demo_bars
    return demo_bars


def test_a_market_buy_is_stored_sent_once_and_read_back_filled(user, paper_account, market):
    order = place_manual_order(user, None, SAMSUNG, now=DURING_SESSION)
    assert order.idempotent_replay is False
    assert (order.reason, order.side, order.quantity, order.order_type, order.price) == (
        OrderReason.MANUAL, "buy", 1, "01", 0)
    assert order.broker_account == paper_account and order.config is None and order.run is None
    assert order.trading_date == MONDAY and order.client_order_id.startswith(f"m{user.pk}-")
    assert PaperOrder.objects.count() == 1
    # The paper broker fills a market order placed before 12:00 at the day's open; the service reads
    # the fill back at once (reconciliation only reads).
    opening = DailyBar.objects.get(instrument__code=SAMSUNG, date=MONDAY).open
    assert order.status == OrderStatus.FILLED and order.average_fill_price == opening
    assert order.fills.count() == 1
    assert positions_for(account=paper_account)[SAMSUNG].quantity == 1
    # the reference price is the previous close (what the amount checks use for a market order)
    friday = DailyBar.objects.filter(instrument__code=SAMSUNG, date__lt=MONDAY).latest("date").close
    assert order.reference_price == friday


def test_a_limit_sell_of_what_is_held(user, paper_account, market):
    place_manual_order(user, paper_account, SAMSUNG, quantity=3, now=DURING_SESSION)
    low = DailyBar.objects.get(instrument__code=SAMSUNG, date=MONDAY).low
    sell = place_manual_order(user, paper_account.pk, SAMSUNG, side="sell", quantity=2, price=low,
                              now=at(MONDAY, 13, 0))
    assert (sell.side, sell.order_type, sell.price, sell.reference_price) == ("sell", "00", low, low)
    assert sell.status == OrderStatus.FILLED
    assert positions_for(account=paper_account)[SAMSUNG].quantity == 1
    assert PaperOrder.objects.count() == 2


def test_without_a_key_every_call_is_a_new_order(user, paper_account, market):
    first = place_manual_order(user, None, SAMSUNG, now=DURING_SESSION)
    second = place_manual_order(user, None, SAMSUNG, now=DURING_SESSION)
    assert first.pk != second.pk and first.client_order_id != second.client_order_id
    assert PaperOrder.objects.count() == 2


def test_the_same_idempotency_key_returns_the_same_order_and_sends_nothing_new(user, paper_account, market):
    first = place_manual_order(user, None, SAMSUNG, quantity=2, now=DURING_SESSION, idempotency_key="abc-1")
    again = place_manual_order(user, None, SAMSUNG, quantity=2, now=at(MONDAY, 10, 1), idempotency_key="abc-1")
    assert again.pk == first.pk and again.idempotent_replay is True
    assert first.client_order_id == manual_client_order_id(user, "abc-1")
    assert Order.objects.count() == 1 and PaperOrder.objects.count() == 1
    with pytest.raises(IdempotencyKeyReused) as raised:
        place_manual_order(user, None, SAMSUNG, quantity=5, now=DURING_SESSION, idempotency_key="abc-1")
    assert raised.value.status == 422 and "Idempotency-Key" in raised.value.message
    assert Order.objects.count() == 1


def test_keys_are_per_user(user, other_user, paper_account, market):
    BrokerAccountFactory(owner=other_user, mode=BrokerMode.PAPER, app_key="", app_secret="", account_number="")
    mine = place_manual_order(user, None, SAMSUNG, now=DURING_SESSION, idempotency_key="same")
    theirs = place_manual_order(other_user, None, SAMSUNG, now=DURING_SESSION, idempotency_key="same")
    assert mine.pk != theirs.pk and not theirs.idempotent_replay
    assert len(manual_client_order_id(user, "x" * 200)) <= 64


def test_a_stored_but_never_sent_keyed_order_is_sent_by_the_retry(user, paper_account, market, monkeypatch):
    def die(name, subject):
        if name == "manual_intent_committed":
            raise RuntimeError("worker killed")

    monkeypatch.setattr(common, "checkpoint", die)
    with pytest.raises(RuntimeError):
        place_manual_order(user, None, SAMSUNG, now=DURING_SESSION, idempotency_key="k-crash")
    order = Order.objects.get()
    assert order.status == OrderStatus.PENDING and order.send_attempts == 0 and not PaperOrder.objects.exists()
    monkeypatch.setattr(common, "checkpoint", lambda name, subject: None)
    retried = place_manual_order(user, None, SAMSUNG, now=at(MONDAY, 10, 2), idempotency_key="k-crash")
    assert retried.pk == order.pk and retried.idempotent_replay
    assert retried.status == OrderStatus.FILLED and PaperOrder.objects.count() == 1
    place_manual_order(user, None, SAMSUNG, now=at(MONDAY, 10, 3), idempotency_key="k-crash")
    assert PaperOrder.objects.count() == 1


@pytest.mark.parametrize("kwargs, field, words", [
    ({"symbol": "999999"}, "symbol", "알 수 없는 종목코드"),
    ({"symbol": ""}, "symbol", "종목코드"),
    ({"quantity": 0}, "quantity", "1주 이상"),
    ({"quantity": -3}, "quantity", "1주 이상"),
    ({"quantity": 1.5}, "quantity", "정수"),
    ({"quantity": True}, "quantity", "정수"),
    ({"side": "hold"}, "side", "buy(매수) 또는 sell(매도)"),
    ({"price": 70_050}, "price", "호가 단위"),  # 50,000–200,000: the tick is 100
    ({"price": 0}, "price", "1원 이상"),
    ({"price": 1_000}, "price", "가격제한폭"),
])
def test_bad_input_is_refused_in_korean_and_stores_nothing(user, paper_account, market, kwargs, field, words):
    arguments = {"symbol": SAMSUNG, **kwargs}
    symbol = arguments.pop("symbol")
    with pytest.raises(ManualOrderError) as raised:
        place_manual_order(user, None, symbol, now=DURING_SESSION, **arguments)
    assert raised.value.status == 400 and raised.value.field == field
    assert words in raised.value.message
    assert not Order.objects.exists() and not PaperOrder.objects.exists()


def test_accounts_are_the_owners_only(user, other_user, paper_account, market):
    theirs = BrokerAccountFactory(owner=other_user, mode=BrokerMode.PAPER, app_key="", app_secret="",
                                  account_number="")
    with pytest.raises(ManualOrderAccountNotFound) as raised:
        place_manual_order(user, theirs.pk, SAMSUNG, now=DURING_SESSION)
    assert raised.value.status == 404
    with pytest.raises(ManualOrderAccountNotFound):
        place_manual_order(user, 987654, SAMSUNG, now=DURING_SESSION)
    with pytest.raises(ManualOrderError):
        place_manual_order(user, "abc", SAMSUNG, now=DURING_SESSION)
    assert not Order.objects.exists()


def test_a_user_without_an_account(other_user, market):
    with pytest.raises(ManualOrderNoAccount) as raised:
        place_manual_order(other_user, None, SAMSUNG, now=DURING_SESSION)
    assert raised.value.status == 409 and "계좌" in raised.value.message


def test_the_kill_switch_rejects_it_with_the_reason_and_sends_nothing(user, paper_account, market):
    halt_trading(account=paper_account, user=user, reason="점검 중")
    order = place_manual_order(user, None, SAMSUNG, now=DURING_SESSION)
    assert order.status == OrderStatus.REJECTED and "점검 중" in order.error_message
    assert order.raw_response == {"risk": "kill_switch"}
    assert not PaperOrder.objects.exists()
    assert TradingAlert.objects.filter(account=paper_account).exists()
    resume_trading(account=paper_account, user=user)
    halt_trading(account=None, user=user, reason="전체 중지")
    order = place_manual_order(user, None, SAMSUNG, now=DURING_SESSION)
    assert order.status == OrderStatus.REJECTED and "전체" in order.error_message
    assert not PaperOrder.objects.exists()


def test_outside_the_session_the_risk_checks_refuse_it(user, paper_account, market):
    order = place_manual_order(user, None, SAMSUNG, now=at(MONDAY, 18, 0))
    assert order.trading_date == order_trading_day(at(MONDAY, 18, 0)) == MONDAY + dt.timedelta(days=1)
    assert order.status == OrderStatus.REJECTED and "정규장" in order.error_message
    assert not PaperOrder.objects.exists()


def test_order_trading_day():
    assert order_trading_day(at(MONDAY, 8, 0)) == MONDAY
    assert order_trading_day(at(MONDAY, 15, 29)) == MONDAY
    assert order_trading_day(at(MONDAY, 15, 30)) == MONDAY + dt.timedelta(days=1)
    saturday = MONDAY - dt.timedelta(days=2)
    assert order_trading_day(at(saturday, 10, 0)) == MONDAY


def test_manual_orders_interrupted_before_an_answer_are_closed_or_reconciled(user, paper_account, market):
    """A manual order has no run to resume it: left pending by a dead request, it is cancelled when
    its send was never claimed (nothing reached the broker) and becomes unknown when it was, so the
    broker's daily orders decide; a fresh pending order is left alone. Nothing is ever sent."""
    def pending(key: str, attempts: int, minutes_ago: int) -> Order:
        return Order.objects.create(
            broker_account=paper_account, client_order_id=f"m-test-{key}", trading_date=MONDAY, code="005930",
            side="buy", order_type="01", quantity=1, reference_price=70_000, reason=OrderReason.MANUAL,
            intent_at=at(MONDAY, 10) - dt.timedelta(minutes=minutes_ago), send_attempts=attempts,
            sent_at=at(MONDAY, 10) - dt.timedelta(minutes=minutes_ago) if attempts else None,
        )

    never_sent, claimed, fresh = pending("a", 0, 30), pending("b", 1, 30), pending("c", 0, 2)
    result = reconciliation.close_interrupted_manual_orders(now=at(MONDAY, 10))
    assert result == {"cancelled": 1, "unknown": 1}
    for order in (never_sent, claimed, fresh):
        order.refresh_from_db()
    assert never_sent.status == OrderStatus.CANCELLED and "보내지 않았습니다" in never_sent.error_message
    assert claimed.status == OrderStatus.UNKNOWN
    assert TradingAlert.objects.filter(kind="order_unknown", key=f"order-{claimed.pk}").exists()
    assert fresh.status == OrderStatus.PENDING
    assert not PaperOrder.objects.exists()  # the sweep never sends
    # The unknown one is then settled by reconciliation: the paper broker has no such order.
    reconciliation.reconcile_orders(paper_account, MONDAY, now=at(MONDAY, 11))
    claimed.refresh_from_db()
    assert claimed.status == OrderStatus.REJECTED
