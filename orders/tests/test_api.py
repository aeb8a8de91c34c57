"""Orders API: `POST /trade/{symbol}` (JWT), the caller's orders, fills, positions and trade log, and
the kill switch. Another user's rows are never visible (404)."""

from __future__ import annotations

import datetime as dt

import pytest
import time_machine
from django.urls import reverse
from rest_framework.test import APIClient
from rest_framework_simplejwt.tokens import RefreshToken

from accounts.models import BrokerMode
from accounts.tests.factories import BrokerAccountFactory
from accounts.tests.second_factor import stepped_up_jwt
from market.models import DailyBar, PaperOrder
from orders.controls import halt_trading
from orders.manual import place_manual_order
from orders.models import Fill, Order, OrderStatus, TradeLog, TradingControl
from orders.reconciliation import reconcile_orders
from orders.weekly import place_weekly_buys

from .conftest import MONDAY, at

pytestmark = pytest.mark.django_db

SAMSUNG = "005930"
SESSION = at(MONDAY, 10)  # Monday 10:00 Seoul: inside the session, the paper broker fills at the open


def jwt_client(user) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {RefreshToken.for_user(user).access_token}")
    return client


@pytest.fixture
def api(user):
    return jwt_client(user)


@pytest.fixture
def traded(config):
    """The weekly entry on MONDAY: three filled buys of the config (paper broker)."""
    place_weekly_buys(config, MONDAY, at(MONDAY, 9, 5))
    reconcile_orders(config.broker_account, MONDAY, now=at(MONDAY, 9, 10))
    assert Order.objects.filter(status=OrderStatus.FILLED).count() == 3
    return config


@pytest.fixture
def theirs(other_user, demo_bars):
    """Another user's paper account with one filled manual order."""
    account = BrokerAccountFactory(owner=other_user, mode=BrokerMode.PAPER, app_key="", app_secret="",
                                   account_number="")
    order = place_manual_order(other_user, account, SAMSUNG, quantity=7, now=at(MONDAY, 10))
    assert order.status == OrderStatus.FILLED
    return account


def trade(user, symbol=SAMSUNG, data=None, key=None):
    """POST /trade/{symbol} with a JWT issued on Monday 10:00 Seoul (a token is not valid before it is
    issued, so it is made inside the travel)."""
    headers = {"HTTP_IDEMPOTENCY_KEY": key} if key else {}
    with time_machine.travel(SESSION, tick=False):
        client = jwt_client(user) if user is not None else APIClient()
        return client.post(reverse("trade", args=[symbol]), data or {}, format="json", **headers)


# ------------------------------------------------------------------------------------------- POST /trade/{symbol}
def test_trade_with_jwt_creates_exactly_one_order_and_sends_it_once(user, paper_account, demo_bars):
    response = trade(user)
    assert response.status_code == 201, response.content
    body = response.json()
    order = Order.objects.get()
    assert body["trade_id"] == order.pk and body["client_order_id"] == order.client_order_id
    assert (order.code, order.side, order.quantity, order.order_type, order.reason) == (SAMSUNG, "buy", 1, "01", "manual")
    assert body["status"] == "filled" == order.status  # paper: filled at Monday's open, read back at once
    assert body["message"]
    assert PaperOrder.objects.count() == 1


def test_trade_as_a_form_with_a_limit_price_on_another_of_my_accounts(user, paper_account, demo_bars):
    second = BrokerAccountFactory(owner=user, name="두번째", mode=BrokerMode.PAPER, app_key="", app_secret="",
                                  account_number="")
    low = DailyBar.objects.get(instrument__code=SAMSUNG, date=MONDAY).low
    with time_machine.travel(SESSION, tick=False):
        response = jwt_client(user).post(reverse("trade", args=[SAMSUNG]),
                            {"side": "buy", "quantity": "3", "price": str(low), "account": str(second.pk)})
    assert response.status_code == 201, response.content
    order = Order.objects.get()
    assert (order.broker_account, order.quantity, order.order_type, order.price) == (second, 3, "00", low)


def test_idempotency_key_replay_returns_the_same_trade_and_sends_nothing_new(user, paper_account, demo_bars):
    first = trade(user, data={"quantity": 2}, key="3f1c2a9e-retry")
    assert first.status_code == 201
    replay = trade(user, data={"quantity": 2}, key="3f1c2a9e-retry")
    assert replay.status_code == 200
    assert replay.json()["trade_id"] == first.json()["trade_id"]
    assert Order.objects.count() == 1 and PaperOrder.objects.count() == 1
    conflict = trade(user, data={"quantity": 9}, key="3f1c2a9e-retry")
    assert conflict.status_code == 422 and "Idempotency-Key" in conflict.json()["detail"]
    assert Order.objects.count() == 1 and PaperOrder.objects.count() == 1


@pytest.mark.parametrize("symbol, data, field, words", [
    ("999999", {}, "symbol", "알 수 없는 종목코드"),
    (SAMSUNG, {"quantity": 0}, "quantity", "1 이상의 정수"),
    (SAMSUNG, {"quantity": "열"}, "quantity", "1 이상의 정수"),
    (SAMSUNG, {"price": 70_050}, "price", "호가 단위"),
    (SAMSUNG, {"price": -5}, "price", "1원 이상"),
    (SAMSUNG, {"side": "short"}, "side", "buy(매수) 또는 sell(매도)"),
    (SAMSUNG, {"account": "x"}, "account", "정수"),
])
def test_bad_input_answers_400_with_a_korean_message_and_no_row(user, paper_account, demo_bars, symbol, data, field,
                                                                words):
    response = trade(user, symbol=symbol, data=data)
    assert response.status_code == 400, response.content
    body = response.json()
    assert words in body["detail"] and body[field]
    assert not Order.objects.exists() and not PaperOrder.objects.exists()


def test_trade_on_another_users_account_is_404_and_without_any_account_409(user, other_user, theirs, demo_bars):
    before = PaperOrder.objects.count()
    response = trade(user, data={"account": theirs.pk})
    assert response.status_code == 404
    assert trade(user).status_code == 409  # `user` has no account of their own yet
    assert Order.objects.filter(broker_account__owner=user).count() == 0
    assert PaperOrder.objects.count() == before


def test_kill_switch_halted_rejects_the_trade_with_the_reason_and_sends_nothing(user, paper_account, demo_bars):
    halt_trading(account=paper_account, user=user, reason="장 점검")
    response = trade(user)
    assert response.status_code == 201
    body = response.json()
    assert body["status"] == "rejected" and "장 점검" in body["message"]
    assert not PaperOrder.objects.exists()


def test_trade_needs_authentication(paper_account, demo_bars):
    assert trade(None).status_code == 401
    assert not Order.objects.exists()


def test_trade_is_in_the_openapi_schema(client):
    schema = client.get(reverse("api:schema")).content.decode()
    for path in ("/trade/{symbol}", "/api/orders/", "/api/orders/{id}/", "/api/fills/", "/api/positions/",
                 "/api/trade-logs/", "/api/trading-control/"):
        assert path in schema, path
    assert "Idempotency-Key" in schema


# ------------------------------------------------------------------------------------------- reads
def test_orders_list_detail_and_fills_are_the_callers_only(api, traded, theirs):
    mine = list(Order.objects.filter(broker_account__owner=traded.owner).order_by("pk"))
    other = Order.objects.get(broker_account=theirs)
    listed = api.get(reverse("api:order-list")).json()
    assert {row["id"] for row in listed["results"]} == {o.pk for o in mine} and listed["count"] == 3
    detail = api.get(reverse("api:order-detail", args=[mine[0].pk])).json()
    assert detail["status"] == "filled" and len(detail["fills"]) == 1 and detail["config"] == traded.pk
    assert api.get(reverse("api:order-detail", args=[other.pk])).status_code == 404
    fills = api.get(reverse("api:fill-list")).json()["results"]
    assert {row["order"] for row in fills} == {o.pk for o in mine}
    other_fill = Fill.objects.get(order=other)
    assert api.get(reverse("api:fill-detail", args=[other_fill.pk])).status_code == 404


def test_order_filters(api, user, traded, demo_bars):
    manual = place_manual_order(user, None, SAMSUNG, now=at(MONDAY, 10))
    url = reverse("api:order-list")

    def ids(**params):
        response = api.get(url, params)
        assert response.status_code == 200, response.content
        return {row["id"] for row in response.json()["results"]}

    everything = set(Order.objects.values_list("pk", flat=True))
    assert ids() == everything
    assert ids(reason="manual") == {manual.pk}
    assert ids(reason="entry") == everything - {manual.pk}
    assert ids(code=SAMSUNG) == set(Order.objects.filter(code=SAMSUNG).values_list("pk", flat=True))
    assert ids(side="sell") == set()
    assert ids(status="filled") == everything
    assert ids(start=MONDAY.isoformat(), end=MONDAY.isoformat()) == everything
    assert ids(start=(MONDAY + dt.timedelta(days=1)).isoformat()) == set()
    assert ids(account=manual.broker_account_id) == everything
    assert api.get(url, {"status": "lost"}).status_code == 400
    assert api.get(url, {"start": "2025-13-01"}).status_code == 400
    assert api.get(url, {"start": "2025-11-25", "end": "2025-11-24"}).status_code == 400


def test_positions_per_account_and_per_config_with_last_close_and_pnl(api, traded, theirs):
    rows = api.get(reverse("api:positions")).json()
    assert {row["code"] for row in rows} == set(Order.objects.filter(config=traded).values_list("code", flat=True))
    assert all(row["account"] == traded.broker_account_id and row["config"] is None for row in rows)
    for row in rows:
        bar = DailyBar.objects.filter(instrument__code=row["code"]).latest("date")
        assert (row["last_close"], row["last_close_date"]) == (bar.close, bar.date.isoformat())
        assert row["market_value"] == bar.close * row["quantity"]
        assert row["unrealised_pnl"] == row["market_value"] - row["cost"]
    by_config = api.get(reverse("api:positions"), {"by": "config"}).json()
    assert {row["config"] for row in by_config} == {traded.pk}
    assert api.get(reverse("api:positions"), {"account": theirs.pk}).status_code == 404
    assert api.get(reverse("api:positions"), {"by": "owner"}).status_code == 400
    other_rows = jwt_client(theirs.owner).get(reverse("api:positions")).json()
    assert [(row["code"], row["quantity"]) for row in other_rows] == [(SAMSUNG, 7)]


def test_trade_logs_are_the_callers_only(api, user, traded, theirs):
    # Reconciliation writes one row per fill; write them here too in case it did not.
    for fill in Fill.objects.select_related("order__broker_account"):
        TradeLog.objects.get_or_create(fill=fill, defaults={
            "user": fill.order.broker_account.owner, "symbol": fill.order.code, "side": fill.order.side,
            "quantity": fill.quantity, "price": fill.price, "amount": fill.amount, "reason": fill.order.reason,
            "timestamp": fill.filled_at})
    rows = api.get(reverse("api:trade-log-list")).json()["results"]
    assert len(rows) == 3 and {row["symbol"] for row in rows} == set(
        Order.objects.filter(config=traded).values_list("code", flat=True))
    other = TradeLog.objects.exclude(user=user).get()
    assert api.get(reverse("api:trade-log-detail", args=[other.pk])).status_code == 404
    assert api.get(reverse("api:trade-log-list"), {"reason": "manual"}).json()["count"] == 0


# ------------------------------------------------------------------------------------------- kill switch
def test_trading_control_owner_halts_and_resumes_the_global_switch_is_staff_only(api, user, paper_account, theirs):
    url = reverse("api:trading-control")
    state = api.get(url).json()
    assert state["global"]["halted"] is False and state["can_change_global"] is False
    assert [row["account"] for row in state["accounts"]] == [paper_account.pk]  # never another user's
    halted = api.post(url, {"action": "halt", "account": paper_account.pk, "reason": "휴가"}, format="json")
    assert halted.status_code == 200
    row = halted.json()["accounts"][0]
    assert row["halted"] is True and row["reason"] == "휴가"
    assert TradingControl.objects.get(account=paper_account).halted
    assert api.post(url, {"action": "halt", "account": theirs.pk}, format="json").status_code == 404
    assert not TradingControl.objects.filter(account=theirs, halted=True).exists()
    assert api.post(url, {"action": "halt"}, format="json").status_code == 403
    assert api.post(url, {"action": "explode", "account": paper_account.pk}, format="json").status_code == 400
    # Lifting a kill switch needs a second factor within the last minutes: the login token is not enough.
    refused = api.post(url, {"action": "resume", "account": paper_account.pk}, format="json")
    assert refused.status_code == 403 and refused.json()["code"] == "step_up_required"
    assert "2단계 인증" in refused.json()["detail"] and refused.json()["has_second_factor"] is False
    assert TradingControl.objects.get(account=paper_account).halted
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {stepped_up_jwt(user)}")
    resumed = api.post(url, {"action": "resume", "account": paper_account.pk}, format="json")
    assert resumed.json()["accounts"][0]["halted"] is False
    user.is_staff = True
    user.save()
    assert api.post(url, {"action": "halt", "reason": "전체 점검"}, format="json").json()["global"]["halted"] is True
    assert TradingControl.objects.get(scope=TradingControl.GLOBAL).halted
