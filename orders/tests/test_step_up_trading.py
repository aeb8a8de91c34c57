"""Step-up on the trading paths: `POST /trade` on a real-money account (against the fake KIS real host,
over HTTP) and lifting a kill switch (API, page and HTMX, admin) need a second factor used within
STEP_UP_SECONDS; halting never does, and paper trading is unchanged."""

from __future__ import annotations

import time

import pytest
import time_machine
from django.urls import reverse
from rest_framework.test import APIClient
from rest_framework_simplejwt.tokens import RefreshToken

from accounts.models import BrokerMode
from accounts.tests.factories import BrokerAccountFactory
from accounts.tests.second_factor import add_totp, mark_second_factor_used, step_up, stepped_up_jwt
from market.kis.ratelimit import NoRateLimit
from market.krx import previous_trading_day
from market.models import DailyBar, Instrument
from market.tests.fake_kis import FAKE_ACCOUNT_NO, FAKE_APP_KEY, FAKE_APP_SECRET, ORDER_CASH_PATH, FakeKisServer
from orders import controls
from orders.models import Order, TradingControl

from .conftest import MONDAY, at

pytestmark = pytest.mark.django_db

HTMX = {"HTTP_HX_REQUEST": "true"}


@pytest.fixture
def real_kis(user, settings, monkeypatch):
    """Monday 10:00 Seoul, a confirmed real-money account of `user` on the fake KIS real host."""
    monkeypatch.setattr("market.brokers.kis.rate_limiter_for", lambda kis_mode: NoRateLimit())
    with time_machine.travel(at(MONDAY, 10), tick=True):
        with FakeKisServer(mode="real", rate_limit_per_second=None, today=MONDAY) as fake:
            settings.KIS_BASE_URLS = {"real": fake.base_url, "paper": ""}
            BrokerAccountFactory(owner=user, mode=BrokerMode.REAL, app_key=FAKE_APP_KEY, app_secret=FAKE_APP_SECRET,
                                 account_number=FAKE_ACCOUNT_NO, live_trading_confirmed_at=at(MONDAY, 9))
            stock = fake.stocks["005930"]
            instrument = Instrument.objects.create(code="005930", name=stock.name, market="KOSPI")
            DailyBar.objects.create(instrument=instrument, date=previous_trading_day(MONDAY), open=stock.base_price,
                                    high=stock.base_price, low=stock.base_price, close=stock.base_price,
                                    volume=1_000, traded_value=stock.base_price * 1_000)
            yield fake


def api_with(token: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    return client


def test_a_real_money_order_needs_the_step_up_then_goes_to_kis_once(real_kis, user):
    url = reverse("trade", args=["005930"])
    refused = api_with(str(RefreshToken.for_user(user).access_token)).post(url, {"quantity": 1}, format="json")
    assert refused.status_code == 403 and refused.json()["code"] == "step_up_required"
    assert refused.json()["action"] == "real_order"
    assert not Order.objects.exists() and real_kis.count(ORDER_CASH_PATH) == 0  # nothing stored, nothing sent

    placed = api_with(stepped_up_jwt(user)).post(url, {"quantity": 1}, format="json")
    assert placed.status_code == 201, placed.content
    assert Order.objects.count() == 1 and len(real_kis.accepted_orders) == 1


def test_paper_orders_need_no_step_up(user, paper_account, demo_bars):
    with time_machine.travel(at(MONDAY, 10), tick=False):
        response = api_with(str(RefreshToken.for_user(user).access_token)).post(
            reverse("trade", args=[demo_bars[0]]), {"quantity": 1}, format="json")
    assert response.status_code == 201, response.content


def test_halting_needs_nothing_lifting_needs_the_second_factor_in_the_api(user, paper_account):
    url = reverse("api:trading-control")
    plain = api_with(str(RefreshToken.for_user(user).access_token))
    assert plain.post(url, {"action": "halt", "account": paper_account.pk}, format="json").status_code == 200
    refused = plain.post(url, {"action": "resume", "account": paper_account.pk}, format="json")
    assert refused.status_code == 403 and refused.json()["action"] == "lift_kill_switch"
    assert TradingControl.objects.get(account=paper_account).halted
    assert api_with(stepped_up_jwt(user)).post(url, {"action": "resume", "account": paper_account.pk},
                                               format="json").status_code == 200
    assert not TradingControl.objects.get(account=paper_account).halted


def test_lifting_from_the_page_goes_through_the_second_factor_and_back(client, user, paper_account):
    add_totp(user)
    client.force_login(user)
    controls.halt_trading(account=paper_account, user=user, reason="점검")
    url = reverse("orders:trading_control")
    # HTMX: the page goes to the re-authentication and comes back to where it was.
    refused = client.post(url, {"action": "resume", "account": paper_account.pk}, HTTP_HX_CURRENT_URL="http://testserver/orders/",
                          **HTMX)
    assert refused.status_code == 204
    assert refused["HX-Redirect"] == reverse("mfa_reauthenticate") + "?next=%2Forders%2F"
    # A forged current URL on another host is not followed back.
    forged = client.post(url, {"action": "resume", "account": paper_account.pk},
                         HTTP_HX_CURRENT_URL="https://evil.example/steal", **HTMX)
    assert forged["HX-Redirect"] == reverse("mfa_reauthenticate") + "?next=%2F"
    assert TradingControl.objects.get(account=paper_account).halted
    mark_second_factor_used(client, user)
    assert client.post(url, {"action": "resume", "account": paper_account.pk}, **HTMX).status_code == 200
    assert not TradingControl.objects.get(account=paper_account).halted


def test_the_admin_resume_action_needs_a_recent_second_factor(client, django_user_model, paper_account):
    staff = django_user_model.objects.create_superuser("boss", "boss@example.com", "pw-boss-123456")
    step_up(client, staff)
    controls.halt_trading(account=paper_account, user=staff, reason="점검")
    control = TradingControl.objects.get(account=paper_account)
    url = reverse("admin:orders_tradingcontrol_changelist")
    mark_second_factor_used(client, staff, at=time.time() - 301)  # the login's factor, minutes ago
    response = client.post(url, {"action": "resume_selected", "_selected_action": [control.pk]})
    assert response.status_code == 302 and response.url.startswith(reverse("mfa_reauthenticate"))
    control.refresh_from_db()
    assert control.halted
    mark_second_factor_used(client, staff)
    assert client.post(url, {"action": "resume_selected", "_selected_action": [control.pk]}).status_code == 302
    control.refresh_from_db()
    assert not control.halted
