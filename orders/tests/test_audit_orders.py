"""The audit trail of the kill switch and of manual orders: one SecurityEvent per action, with the client
address of the request that did it (a forged X-Forwarded-For ignored), none for a replay, a refusal or a
rolled-back action."""

from __future__ import annotations

import pytest
import time_machine
from django.db import transaction
from django.urls import reverse
from rest_framework.test import APIClient

from accounts.models import SecurityEvent
from accounts.models import SecurityEventKind as Kind
from accounts.tests.factories import UserFactory
from orders.controls import halt_trading, resume_trading
from orders.manual import ManualOrderError, place_manual_order
from orders.models import Order, TradingControl

from .conftest import MONDAY, at

pytestmark = pytest.mark.django_db

HOME = "198.51.100.7"
SAMSUNG = "005930"


def audit_rows(kind) -> list[SecurityEvent]:
    return list(SecurityEvent.objects.filter(kind=kind).order_by("pk"))


@pytest.fixture
def api(user):
    client = APIClient()
    client.force_authenticate(user)
    return client


def test_the_kill_switch_from_the_api_records_where_it_came_from(api, user, paper_account):
    response = api.post(reverse("api:trading-control"), {"action": "halt", "account": paper_account.pk,
                                                         "reason": "휴가"}, format="json",
                        REMOTE_ADDR=HOME, HTTP_USER_AGENT="curl/8.5.0", HTTP_X_FORWARDED_FOR="192.0.2.1")
    assert response.status_code == 200
    [event] = audit_rows(Kind.KILL_SWITCH_ON)
    assert (event.user, event.actor, event.broker_account, event.ip_address, event.user_agent) == (
        user, None, paper_account, HOME, "curl/8.5.0")
    assert event.detail == {"scope": f"account-{paper_account.pk}", "reason": "휴가"}
    resume_trading(account=paper_account, user=user)
    [resumed] = audit_rows(Kind.KILL_SWITCH_OFF)
    assert (resumed.user, resumed.broker_account, resumed.ip_address) == (user, paper_account, None)  # no request


def test_staff_throwing_a_users_switch_and_the_global_one(user, paper_account):
    staff = UserFactory(is_staff=True)
    halt_trading(account=paper_account, user=staff, reason="점검")
    halt_trading(user=staff, reason="전체 점검")
    on_account, on_everything = audit_rows(Kind.KILL_SWITCH_ON)
    assert (on_account.user, on_account.actor) == (user, staff)  # the owner's event, done by staff
    assert (on_everything.user, on_everything.actor, on_everything.broker_account) == (staff, None, None)
    assert on_everything.detail == {"scope": TradingControl.GLOBAL, "reason": "전체 점검"}


def test_a_rolled_back_halt_leaves_no_row(user, paper_account):
    with pytest.raises(RuntimeError), transaction.atomic():
        halt_trading(account=paper_account, user=user, reason="x")
        assert len(audit_rows(Kind.KILL_SWITCH_ON)) == 1
        raise RuntimeError
    assert audit_rows(Kind.KILL_SWITCH_ON) == []
    assert not TradingControl.objects.filter(account=paper_account, halted=True).exists()


def test_a_manual_order_is_one_row_and_its_replay_none(api, user, paper_account, demo_bars):
    url = reverse("trade", args=[SAMSUNG])
    with time_machine.travel(at(MONDAY, 10), tick=False):
        first = api.post(url, {"quantity": 2}, format="json", HTTP_IDEMPOTENCY_KEY="k-1", REMOTE_ADDR=HOME,
                         HTTP_X_FORWARDED_FOR="192.0.2.1")
        replay = api.post(url, {"quantity": 2}, format="json", HTTP_IDEMPOTENCY_KEY="k-1", REMOTE_ADDR=HOME)
        refused = api.post(url, {"quantity": 0}, format="json", REMOTE_ADDR=HOME)
    assert (first.status_code, replay.status_code, refused.status_code) == (201, 200, 400)
    order = Order.objects.get()
    [event] = audit_rows(Kind.MANUAL_ORDER)
    assert (event.user, event.broker_account, event.ip_address) == (user, paper_account, HOME)
    assert event.detail == {
        "order": order.pk, "client_order_id": order.client_order_id, "code": SAMSUNG, "side": "buy", "quantity": 2,
        "order_type": order.order_type, "price": 0, "trading_date": MONDAY.isoformat()}


def test_a_manual_order_refused_before_storing_records_nothing(user, paper_account, demo_bars):
    with pytest.raises(ManualOrderError):
        place_manual_order(user, None, "999999", now=at(MONDAY, 10))
    assert audit_rows(Kind.MANUAL_ORDER) == []
    place_manual_order(user, None, SAMSUNG, now=at(MONDAY, 10))
    assert len(audit_rows(Kind.MANUAL_ORDER)) == 1
