"""대시보드 (`/`) and the 주문 page (`/orders/`): account value and holdings, this week's plan (a dry run
that never sends), the next scheduled runs, the equity line, the kill switch and alerts over HTMX,
and the order filters."""

from __future__ import annotations

import datetime as dt
import io
import json
import re

import pytest
import time_machine
from django.core.management import call_command
from django.urls import reverse

from accounts.models import BrokerMode
from accounts.tests.factories import BrokerAccountFactory
from accounts.tests.second_factor import step_up
from market.krx import SEOUL
from market.models import PaperOrder
from orders.controls import halt_trading
from orders.dashboard import dashboard_for
from orders.manual import place_manual_order
from orders.models import AlertKind, Order, OrderStatus, TradingAlert, TradingControl, WeeklyRun
from orders.reconciliation import reconcile_orders
from orders.weekly import place_weekly_buys
from trading_site.schedules import install_schedules

from .conftest import MONDAY, at

pytestmark = pytest.mark.django_db

HTMX = {"HTTP_HX_REQUEST": "true"}


def page(client, url=None, when=None, **extra):
    url = url or reverse("dashboard")
    if when is None:
        return client.get(url, **extra)
    with time_machine.travel(when, tick=False):
        return client.get(url, **extra)


# ------------------------------------------------------------------------------------------- dashboard
def test_dashboard_for_the_demo_user_shows_value_holdings_plan_next_runs_and_equity(client):
    monday_morning = dt.datetime(2026, 11, 23, 8, 30, tzinfo=SEOUL)
    with time_machine.travel(monday_morning, tick=False):
        call_command("setup_demo", symbols=10, years=1, stdout=io.StringIO())
        install_schedules()
    client.login(username="demo", password="demo-trader-2026")
    response = page(client, when=monday_morning)
    assert response.status_code == 200
    body = response.content.decode()
    summary = response.context["accounts"][0]
    assert [(p.code, p.quantity) for p in summary.positions] == [("005930", 10)]  # the demo order
    assert summary.total_value == summary.cash + summary.securities_value
    assert f'id="holdings-{summary.account.pk}"' in body and "005930" in body
    assert f'id="account-value-{summary.account.pk}"' in body
    # this week's entry has not run yet (Monday 08:30): the plan is the entry's dry run, nothing sent
    [plan] = response.context["plans"]
    assert plan.kind == "dry_run" and plan.entry_day == dt.date(2026, 11, 23)
    assert f'id="plan-{plan.config.pk}"' in body
    this_week = dt.date(2026, 11, 23)  # the replayed history (setup_demo) ends with last week's exit
    assert not Order.objects.filter(trading_date__gte=this_week).exists()
    assert not WeeklyRun.objects.filter(trading_date__gte=this_week).exists()
    assert PaperOrder.objects.count() == Order.objects.count()  # the paper broker saw only our orders
    # next runs from the periodic tasks, in Seoul time, soonest first
    schedule = {run.task: run for run in response.context["schedule"]}
    assert schedule["orders.weekly_entry"].next_run == dt.datetime(2026, 11, 23, 9, 5, tzinfo=SEOUL)
    assert schedule["orders.reconcile"].next_run == dt.datetime(2026, 11, 23, 9, 0, tzinfo=SEOUL)
    assert response.context["schedule"][0].task == "orders.reconcile"  # soonest first
    assert "2026-11-23" in body and "09:05" in body
    # the equity line: one point per trading day since the demo fill, ending at the account value
    chart = json.loads(re.search(r'<script id="equity-chart-data" type="application/json">(.*?)</script>',
                                 body, re.S).group(1))
    assert chart["values"][-1] == summary.total_value
    assert len(chart["labels"]) == len(chart["values"]) >= 1
    assert 'id="kill-switch"' in body and 'id="recent-orders"' in body


def test_dashboard_for_a_user_without_an_account(client, user):
    client.force_login(user)
    response = client.get(reverse("dashboard"))
    assert response.status_code == 200
    body = response.content.decode()
    assert 'id="no-accounts"' in body and 'id="no-plan"' in body and 'id="no-alerts"' in body
    assert "equity-chart" not in body


def test_dashboard_takes_a_handful_of_queries(client, user, config, django_assert_max_num_queries):
    place_manual_order(user, None, "005930", now=at(MONDAY, 10))
    client.force_login(user)
    page(client, when=at(MONDAY, 8, 30))  # fills the plan cache
    with django_assert_max_num_queries(25):
        response = page(client, when=at(MONDAY, 8, 31))
    assert response.status_code == 200


def test_the_plan_is_a_dry_run_before_the_entry_and_the_recorded_run_after(client, user, config, demo_bars):
    client.force_login(user)
    before = page(client, when=at(MONDAY, 8, 30))
    [plan] = before.context["plans"]
    assert plan.kind == "dry_run" and plan.entry_day == MONDAY
    assert [o["code"] for o in plan.orders] == demo_bars[-1:-4:-1]  # the stub ranks the last codes first
    assert all(o["quantity"] > 0 and o["amount"] == o["quantity"] * o["reference_price"] for o in plan.orders)
    assert not Order.objects.exists() and not PaperOrder.objects.exists() and not WeeklyRun.objects.exists()
    place_weekly_buys(config, MONDAY, at(MONDAY, 9, 5))
    reconcile_orders(config.broker_account, MONDAY, now=at(MONDAY, 9, 10))
    after = page(client, when=at(MONDAY, 9, 30))
    [plan] = after.context["plans"]
    assert plan.kind == "run" and {o["status"] for o in plan.orders} == {OrderStatus.FILLED}
    assert sorted(plan.candidates) == sorted(demo_bars)
    body = after.content.decode()
    assert "status-filled" in body
    # Saturday: this week's entry ran, so its run is still shown
    saturday = page(client, when=at(MONDAY + dt.timedelta(days=5), 10))
    assert saturday.context["plans"][0].kind == "run"


def test_a_kis_account_never_makes_the_dashboard_call_the_broker(client, user, monkeypatch):
    account = BrokerAccountFactory(owner=user, mode=BrokerMode.SIMULATED)

    def unreachable(*args, **kwargs):
        raise AssertionError("the dashboard must not call the broker")

    monkeypatch.setattr("market.brokers.kis.KisBroker.__init__", unreachable)
    client.force_login(user)
    response = client.get(reverse("dashboard"))
    assert response.status_code == 200
    body = response.content.decode()
    assert reverse("market:connection_test", args=[account.pk]) in body  # the balance loads over HTMX
    assert response.context["accounts"][0].cash is None


def test_dashboard_shows_only_the_users_own_accounts(client, user, other_user, paper_account):
    theirs = BrokerAccountFactory(owner=other_user, name="남의 계좌", mode=BrokerMode.PAPER, app_key="",
                                  app_secret="", account_number="")
    halt_trading(account=theirs, reason="남의 정지")
    client.force_login(user)
    body = client.get(reverse("dashboard")).content.decode()
    assert paper_account.name in body and theirs.name not in body and "남의 정지" not in body


# ------------------------------------------------------------------------------------------- kill switch
def test_kill_switch_toggle_over_htmx(client, user, other_user, paper_account):
    client.force_login(user)
    url = reverse("orders:trading_control")
    halted = client.post(url, {"action": "halt", "account": paper_account.pk, "reason": "점검"}, **HTMX)
    assert halted.status_code == 200
    body = halted.content.decode()
    assert body.lstrip().startswith('<section class="card" id="kill-switch">') and "<html" not in body
    assert "badge-halted" in body and "점검" in body and "hx-confirm" in body
    control = TradingControl.objects.get(account=paper_account)
    assert control.halted and control.halt_reason == "점검" and control.halted_by == user
    # Lifting it needs a second factor: a user without one is sent to set one up, the switch stays on.
    refused = client.post(url, {"action": "resume", "account": paper_account.pk}, **HTMX)
    assert refused.status_code == 204 and refused["HX-Redirect"] == reverse("mfa_index")
    assert TradingControl.objects.get(account=paper_account).halted
    step_up(client, user)
    resumed = client.post(url, {"action": "resume", "account": paper_account.pk}, **HTMX)
    assert "badge-halted" not in resumed.content.decode()
    assert not TradingControl.objects.get(account=paper_account).halted
    # the global switch is staff only; another user's account does not exist for this user
    assert client.post(url, {"action": "halt", "account": ""}, **HTMX).status_code == 403
    theirs = BrokerAccountFactory(owner=other_user, mode=BrokerMode.PAPER, app_key="", app_secret="",
                                  account_number="")
    assert client.post(url, {"action": "halt", "account": theirs.pk}, **HTMX).status_code == 404
    assert not TradingControl.objects.filter(halted=True).exists()
    # without HTMX: back to the dashboard
    assert client.post(url, {"action": "halt", "account": paper_account.pk}).status_code == 302
    assert client.get(url).status_code == 405
    assert client.post(url, {"action": "explode", "account": paper_account.pk}, **HTMX).status_code == 400


def test_staff_switch_the_global_halt(client, user, paper_account):
    user.is_staff = True
    user.save()
    client.force_login(user)
    response = client.post(reverse("orders:trading_control"), {"action": "halt", "account": "", "reason": "전체"},
                           **HTMX)
    assert response.status_code == 200 and TradingControl.objects.get(scope=TradingControl.GLOBAL).halted
    assert "kill-switch-global" in response.content.decode()


# ------------------------------------------------------------------------------------------- alerts
def test_open_alerts_are_listed_and_resolved_over_htmx(client, user, other_user, paper_account):
    alert = TradingAlert.objects.create(account=paper_account, kind=AlertKind.POSITION_MISMATCH,
                                        message="005930 수량이 다릅니다", blocks_entries=True)
    theirs = TradingAlert.objects.create(
        account=BrokerAccountFactory(owner=other_user, mode=BrokerMode.PAPER, app_key="", app_secret="",
                                     account_number=""),
        kind=AlertKind.JOB_FAILED, message="남의 알림")
    client.force_login(user)
    body = client.get(reverse("dashboard")).content.decode()
    assert f'id="alert-{alert.pk}"' in body and "남의 알림" not in body
    response = client.post(reverse("orders:resolve_alert", args=[alert.pk]), {"note": "수동 확인"}, **HTMX)
    assert response.status_code == 200 and 'id="no-alerts"' in response.content.decode()
    alert.refresh_from_db()
    assert alert.resolved_at is not None and alert.resolved_by == user and alert.resolution_note == "수동 확인"
    assert client.post(reverse("orders:resolve_alert", args=[theirs.pk]), **HTMX).status_code == 404


# ------------------------------------------------------------------------------------------- 주문 page
@pytest.fixture
def mixed_orders(user, paper_account, demo_bars):
    filled = place_manual_order(user, None, "005930", quantity=2, now=at(MONDAY, 10))
    rejected = place_manual_order(user, None, "000660", now=at(MONDAY, 18))  # after the close: refused
    halt_trading(account=paper_account, reason="점검 중")
    halted = place_manual_order(user, None, "035420", side="buy", now=at(MONDAY + dt.timedelta(days=1), 10))
    assert (filled.status, rejected.status, halted.status) == ("filled", "rejected", "rejected")
    return filled, rejected, halted


def test_orders_page_filters_over_htmx_with_status_colours_messages_and_fills(client, user, other_user, mixed_orders):
    filled, rejected, halted = mixed_orders
    client.force_login(user)
    url = reverse("orders:index")
    full = client.get(url).content.decode()
    assert 'id="order-filters"' in full and 'hx-target="#orders-list"' in full
    for order in mixed_orders:
        assert f'id="order-{order.pk}"' in full
    assert "status-filled" in full and "status-rejected" in full
    assert f'id="fills-{filled.pk}"' in full  # the fill under its order
    assert "점검 중" in full and "정규장" in full  # the reasons of the rejections
    partial = client.get(url, {"status": "rejected"}, HTTP_HX_REQUEST="true", HTTP_HX_TARGET="orders-list")
    body = partial.content.decode()
    assert body.lstrip().startswith('<div id="orders-list">') and "<html" not in body
    assert f'id="order-{rejected.pk}"' in body and f'id="order-{halted.pk}"' in body
    assert f'id="order-{filled.pk}"' not in body
    by_code = client.get(url, {"code": "005930"}, HTTP_HX_REQUEST="true", HTTP_HX_TARGET="orders-list").content.decode()
    assert f'id="order-{filled.pk}"' in by_code and f'id="order-{rejected.pk}"' not in by_code
    tuesday = (MONDAY + dt.timedelta(days=1)).isoformat()
    by_date = client.get(url, {"start": tuesday, "end": tuesday}).content.decode()
    assert f'id="order-{halted.pk}"' in by_date and f'id="order-{filled.pk}"' not in by_date
    assert f'id="order-{rejected.pk}"' in by_date  # placed after Monday's close: Tuesday's order
    by_side = client.get(url, {"side": "sell"}).content.decode()
    assert 'id="no-orders"' in by_side
    assert client.get(url, {"status": "nonsense"}).status_code == 200  # an unknown status is ignored
    assert client.get(url, {"start": "not-a-date"}).status_code == 400  # a bad date is an error (shown)
    client.force_login(other_user)
    assert f'id="order-{filled.pk}"' not in client.get(url).content.decode()


def test_the_equity_line_is_cash_plus_the_shares_held_at_each_close(user, config, paper_account):
    from market.models import DailyBar, PaperAccount

    place_weekly_buys(config, MONDAY, at(MONDAY, 9, 5))
    reconcile_orders(paper_account, MONDAY, now=at(MONDAY, 9, 10))
    tuesday, wednesday = MONDAY + dt.timedelta(days=1), MONDAY + dt.timedelta(days=2)
    sold = Order.objects.filter(config=config).order_by("code").first().code
    place_manual_order(user, None, sold, side="sell", quantity=1, now=at(tuesday, 13))  # fills at Tuesday's close
    data = dashboard_for(user, now=at(wednesday, 20))
    [summary] = data["accounts"]
    # forward from the paper account's starting cash, with the broker's fill prices and fees
    cash, held = PaperAccount.objects.get(broker_account=paper_account).initial_cash, {}
    expected = [(MONDAY - dt.timedelta(days=3), cash)]  # the Friday before the first fill: all cash
    for day in (MONDAY, tuesday, wednesday):
        for fill in PaperOrder.objects.filter(trading_date=day, status="filled"):
            amount = fill.fill_price * fill.filled_quantity
            if fill.side == "buy":
                cash -= amount + fill.commission
                held[fill.code] = held.get(fill.code, 0) + fill.filled_quantity
            else:
                cash += amount - fill.commission - fill.tax
                held[fill.code] -= fill.filled_quantity
        value = sum(q * DailyBar.objects.get(instrument__code=c, date=day).close for c, q in held.items())
        expected.append((day, cash + value))
    assert summary.equity == expected
    assert summary.equity[-1][1] == summary.total_value
    assert data["equity_chart"]["labels"] == [day.isoformat() for day, _ in expected]
