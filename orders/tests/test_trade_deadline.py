"""`POST /trade/{symbol}` on a KIS account under the web request's broker budget
(BROKER_WEB_DEADLINE_SECONDS), against the fake KIS host over real HTTP. The answer comes within the
budget and the order's own status tells the outcome: not sent (the budget ran out before the send) →
closed with the message, nothing at KIS; sent but answered too late → unknown, sent exactly once, left to
reconciliation."""

from __future__ import annotations

import time

import pytest
import time_machine
from django.urls import reverse
from rest_framework.test import APIClient
from rest_framework_simplejwt.tokens import RefreshToken

from accounts.models import BrokerMode
from accounts.tests.factories import BrokerAccountFactory
from market.kis.ratelimit import NoRateLimit
from market.krx import previous_trading_day
from market.models import DailyBar, Instrument
from market.tests.fake_kis import (
    BUYABLE_PATH,
    FAKE_ACCOUNT_NO,
    FAKE_APP_KEY,
    FAKE_APP_SECRET,
    ORDER_CASH_PATH,
    FakeKisServer,
)
from orders.models import Order, OrderStatus

from .conftest import MONDAY, at

pytestmark = pytest.mark.django_db


@pytest.fixture
def kis_trading(user, settings, monkeypatch):
    """Monday 10:00 Seoul (the session is open), a 모의투자 account of `user` on the fake host, 005930
    with the previous close stored."""
    monkeypatch.setattr("market.brokers.kis.rate_limiter_for", lambda kis_mode: NoRateLimit())
    with time_machine.travel(at(MONDAY, 10), tick=True):
        with FakeKisServer(mode="paper", rate_limit_per_second=None, today=MONDAY) as fake:
            settings.KIS_BASE_URLS = {"real": "", "paper": fake.base_url}
            BrokerAccountFactory(owner=user, mode=BrokerMode.SIMULATED, app_key=FAKE_APP_KEY,
                                 app_secret=FAKE_APP_SECRET, account_number=FAKE_ACCOUNT_NO)
            stock = fake.stocks["005930"]
            instrument = Instrument.objects.create(code="005930", name=stock.name, market="KOSPI")
            DailyBar.objects.create(instrument=instrument, date=previous_trading_day(MONDAY), open=stock.base_price,
                                    high=stock.base_price, low=stock.base_price, close=stock.base_price,
                                    volume=1_000, traded_value=stock.base_price * 1_000)
            yield fake


def post_trade(user):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {RefreshToken.for_user(user).access_token}")
    started = time.monotonic()
    response = client.post(reverse("trade", args=["005930"]), {"quantity": 1}, format="json")
    return response, time.monotonic() - started


def test_an_order_the_budget_stopped_before_its_send_is_closed_as_not_sent(kis_trading, user, settings):
    settings.BROKER_WEB_DEADLINE_SECONDS = 3
    # The orderable-cash read (a risk check) answers after 1.6 s: too little of the budget is left to
    # send the order and still read its answer (the client keeps 2 s for that), so it is not sent.
    kis_trading.add_fault(BUYABLE_PATH, "delay", delay=1.6)

    response, elapsed = post_trade(user)

    assert response.status_code == 201
    body = response.json()
    # Never sent, and no key to retry it with: closed (cancelled), the reason in the message.
    assert body["status"] == OrderStatus.CANCELLED
    assert "전달되지 않았습니다" in body["message"] and "증권사 응답이 늦어" in body["message"]
    assert elapsed < 3 + 2  # the budget, plus the request's own work on a busy machine
    assert kis_trading.count(ORDER_CASH_PATH) == 0 and kis_trading.accepted_orders == []
    assert Order.objects.get().status == OrderStatus.CANCELLED


def test_an_order_sent_in_time_but_answered_too_late_is_unknown_and_sent_once(kis_trading, user, settings):
    settings.BROKER_WEB_DEADLINE_SECONDS = 5  # the order goes out with ~4.8 s left (the client keeps 2 s)
    kis_trading.add_fault(ORDER_CASH_PATH, "delay", times=None, delay=30)  # KIS takes it, the answer is late

    response, elapsed = post_trade(user)

    assert response.status_code == 201
    body = response.json()
    assert body["status"] == OrderStatus.UNKNOWN
    assert "다시 주문하지 말고" in body["message"]
    assert elapsed < 5 + 2  # not 30 s: the read was cut to the budget
    assert kis_trading.count(ORDER_CASH_PATH, "POST") == 1 and len(kis_trading.accepted_orders) == 1
