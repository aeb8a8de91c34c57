"""Alerts: positions checked against the broker's balance (shortfalls block entries until resolved,
extra holdings are only reported), one open alert per (account, kind, key), alerts on rejections,
unknown outcomes, reconciliation failures, failed jobs and fills; the TradeLog; the admin."""

from __future__ import annotations

import datetime as dt

import pytest
from django.db.models import F
from django.urls import reverse

from accounts.tests.second_factor import step_up
from market.brokers.paper import PaperBroker
from market.gateway import BrokerError
from market.models import PaperAccount, PaperOrder, PaperPosition
from orders import controls, positions, weekly
from orders.common import get_broker
from orders.controls import raise_alert, resolve_alert
from orders.execution import send_order
from orders.models import AlertKind, Fill, Order, OrderStatus, TradeLog, TradingAlert, WeeklyRunStatus
from orders.reconciliation import reconcile_open_orders, reconcile_orders
from orders.weekly import place_weekly_buys

from .conftest import MONDAY, at

pytestmark = pytest.mark.django_db

NEXT_MONDAY = MONDAY + dt.timedelta(days=7)


def entry(config):
    result = place_weekly_buys(config, MONDAY, at(MONDAY, 9, 5))
    assert result.run.status == WeeklyRunStatus.COMPLETE
    reconcile_orders(config.broker_account, MONDAY, now=at(MONDAY, 9, 10))
    return result


def mismatches(account, **filters):
    return TradingAlert.objects.filter(account=account, kind=AlertKind.POSITION_MISMATCH, **filters)


def sold_outside(account, code: str, quantity: int) -> None:
    """The owner sells `quantity` shares of `code` in the broker's own app (the paper broker's books)."""
    PaperPosition.objects.filter(account__broker_account=account, code=code).update(quantity=F("quantity") - quantity)


# ------------------------------------------------------------------------------------------- positions
def test_a_shortfall_at_the_broker_blocks_entries_once_until_resolved(config, user):
    entry(config)
    account = config.broker_account
    code = Order.objects.order_by("code").first().code
    held = Order.objects.get(code=code).filled_quantity
    sold_outside(account, code, 2)

    reconcile_open_orders(now=at(MONDAY, 10, 0))
    reconcile_open_orders(now=at(MONDAY, 10, 5))  # a second reconciliation: still one alert
    [alert] = mismatches(account)
    assert alert.blocks_entries and alert.is_open and alert.key == f"shortfall:{code}"
    assert f"{held:,}주" in alert.message and f"{held - 2:,}주" in alert.message and "부족" in alert.message
    assert alert.details["difference"] == -2

    orders_before = PaperOrder.objects.count()
    blocked = place_weekly_buys(config, NEXT_MONDAY, at(NEXT_MONDAY, 9, 5))
    assert blocked.run.status == WeeklyRunStatus.BLOCKED and code in blocked.run.reason
    assert PaperOrder.objects.count() == orders_before and not blocked.run.orders.exists()

    resolve_alert(alert, user=user, note="MTS에서 2주 직접 매도")
    alert.refresh_from_db()
    assert not alert.is_open and alert.resolved_by == user and alert.resolution_note == "MTS에서 2주 직접 매도"
    result = place_weekly_buys(config, NEXT_MONDAY, at(NEXT_MONDAY, 9, 30))  # the blocked run runs again
    assert result.run.pk == blocked.run.pk and result.run.status == WeeklyRunStatus.COMPLETE
    # The acknowledged difference is not reported again; a new difference would be.
    reconcile_open_orders(now=at(NEXT_MONDAY, 10, 0))
    assert mismatches(account).count() == 1
    sold_outside(account, code, 1)
    reconcile_open_orders(now=at(NEXT_MONDAY, 10, 5))
    assert mismatches(account, resolved_at__isnull=True).get().details["difference"] == -3


def test_extra_broker_holdings_are_reported_without_blocking(config, demo_bars):
    entry(config)
    account = config.broker_account
    bought = set(Order.objects.values_list("code", flat=True))
    own_code = next(code for code in demo_bars if code not in bought)
    paper = PaperAccount.objects.get(broker_account=account)
    PaperPosition.objects.create(account=paper, code=own_code, quantity=7, cost=7 * 10_000)  # the owner's own

    reconcile_open_orders(now=at(MONDAY, 10, 0))
    reconcile_open_orders(now=at(MONDAY, 10, 5))
    [alert] = mismatches(account)
    assert not alert.blocks_entries and alert.key == f"extra:{own_code}"
    assert "7주" in alert.message and "사지 않은" in alert.message
    assert controls.entry_block_reason(account) is None
    result = place_weekly_buys(config, NEXT_MONDAY, at(NEXT_MONDAY, 9, 5))
    assert result.run.status == WeeklyRunStatus.COMPLETE

    # The owner sells those shares: the next check closes the alert by itself.
    PaperPosition.objects.filter(account=paper, code=own_code).delete()
    reconcile_open_orders(now=at(MONDAY, 10, 10))
    alert.refresh_from_db()
    assert not alert.is_open and alert.resolved_by is None and "자동 해소" in alert.resolution_note


def test_fills_the_broker_has_not_reported_yet_are_not_a_mismatch(paper_account, demo_bars):
    """A buy filled at the broker but not yet read back: the open order explains the difference."""
    code = demo_bars[0]
    order = Order.objects.create(
        broker_account=paper_account, client_order_id="in-flight-1", trading_date=MONDAY, code=code, side="buy",
        order_type="01", quantity=5, reference_price=0, reason="manual", intent_at=at(MONDAY, 9, 0),
    )
    broker = get_broker(paper_account, at(MONDAY, 9, 30))
    send_order(order, broker, at(MONDAY, 9, 30), True, "")
    report = positions.check_positions(paper_account, broker=broker, now=at(MONDAY, 9, 31))
    assert report.in_flight == [code] and not report.shortfalls and not report.extras
    assert not mismatches(paper_account).exists()


def test_an_order_filled_and_recorded_while_the_balance_is_read_is_not_a_mismatch(paper_account, demo_bars,
                                                                                  monkeypatch):
    """Two requests at once: the check reads the balance (no shares yet), then another request's buy
    is filled and recorded before the check reads our books. Not a shortfall (which would block entries)."""
    code = demo_bars[0]
    broker = get_broker(paper_account, at(MONDAY, 9, 30))
    real_balance = PaperBroker.get_balance

    def balance_then_a_concurrent_buy(self):
        balance = real_balance(self)
        order = Order.objects.create(
            broker_account=paper_account, client_order_id="concurrent-1", trading_date=MONDAY, code=code,
            side="buy", order_type="01", quantity=5, reference_price=0, reason="manual", intent_at=at(MONDAY, 9, 30),
        )
        send_order(order, broker, at(MONDAY, 9, 30), True, "")
        monkeypatch.setattr(PaperBroker, "get_balance", real_balance)
        reconcile_orders(paper_account, MONDAY, broker=broker, now=at(MONDAY, 9, 31), positions=False)
        assert Order.objects.get(pk=order.pk).status == OrderStatus.FILLED
        return balance

    monkeypatch.setattr(PaperBroker, "get_balance", balance_then_a_concurrent_buy)
    report = positions.check_positions(paper_account, broker=broker, now=at(MONDAY, 9, 31))
    assert report.in_flight == [code] and not report.shortfalls
    assert not mismatches(paper_account).exists()
    # The next check sees both sides agree.
    assert positions.check_positions(paper_account, broker=broker, now=at(MONDAY, 9, 35)).matched == [code]


def test_the_entry_fails_closed_when_the_balance_cannot_be_read(config, monkeypatch):
    def down(self):
        raise BrokerError("잔고 조회 실패")

    monkeypatch.setattr(PaperBroker, "get_balance", down)
    result = place_weekly_buys(config, MONDAY, at(MONDAY, 9, 5))
    assert result.run.status == WeeklyRunStatus.BLOCKED and "잔고 조회 실패" in result.run.reason
    assert not Order.objects.exists() and not PaperOrder.objects.exists()
    assert TradingAlert.objects.filter(kind=AlertKind.RECONCILE_FAILED, key="balance").count() == 1


# ------------------------------------------------------------------------------------------- other alerts
def test_one_open_alert_per_account_kind_and_key(paper_account):
    first, created = raise_alert(paper_account, AlertKind.JOB_FAILED, "실패", key="run-1")
    again, created_again = raise_alert(paper_account, AlertKind.JOB_FAILED, "또 실패", key="run-1")
    assert created and not created_again and again.pk == first.pk
    other, created_other = raise_alert(paper_account, AlertKind.ORDER_REJECTED, "거부", key="run-1")
    assert created_other and other.pk != first.pk
    resolve_alert(first, user=None)
    reopened, created_new = raise_alert(paper_account, AlertKind.JOB_FAILED, "다시 실패", key="run-1")
    assert created_new and reopened.pk != first.pk  # after resolution a new occurrence is a new alert


def test_a_fill_makes_exactly_one_trade_log_and_one_filled_alert_even_when_reconciled_twice(config, user):
    entry(config)
    reconcile_orders(config.broker_account, MONDAY, now=at(MONDAY, 9, 20))
    reconcile_open_orders(now=at(MONDAY, 9, 25))
    fills = list(Fill.objects.select_related("order"))
    assert len(fills) == 3
    assert TradeLog.objects.count() == 3
    for fill in fills:
        log = fill.trade_log
        assert (log.user, log.symbol, log.side, log.quantity, log.price, log.amount, log.commission, log.tax,
                log.reason, log.timestamp) == (user, fill.order.code, "buy", fill.quantity, fill.price, fill.amount,
                                               fill.commission, fill.tax, "entry", fill.filled_at)
    filled = TradingAlert.objects.filter(kind=AlertKind.FILLED)
    assert filled.count() == 3 and not filled.filter(blocks_entries=True).exists()
    assert {alert.key for alert in filled} == {f"fill-{fill.pk}" for fill in fills}


def test_a_broker_rejection_and_an_unknown_outcome_raise_alerts(paper_account, demo_bars, monkeypatch):
    sell = Order.objects.create(
        broker_account=paper_account, client_order_id="reject-1", trading_date=MONDAY, code=demo_bars[0],
        side="sell", order_type="01", quantity=5, reference_price=0, reason="manual", intent_at=at(MONDAY, 9, 0),
    )
    send_order(sell, get_broker(paper_account, at(MONDAY, 10, 0)), at(MONDAY, 10, 0), True, "")
    sell.refresh_from_db()
    assert sell.status == OrderStatus.REJECTED and "매도가능수량" in sell.error_message  # the broker's own answer
    alert = TradingAlert.objects.get(kind=AlertKind.ORDER_REJECTED)
    assert alert.key == f"order-{sell.pk}" and "매도가능수량" in alert.message and demo_bars[0] in alert.message

    def lost(self, *args, **kwargs):
        raise TimeoutError("read timed out")

    monkeypatch.setattr(PaperBroker, "place_order", lost)
    buy = Order.objects.create(
        broker_account=paper_account, client_order_id="unknown-1", trading_date=MONDAY, code=demo_bars[0],
        side="buy", order_type="01", quantity=1, reference_price=0, reason="manual", intent_at=at(MONDAY, 9, 0),
    )
    send_order(buy, get_broker(paper_account, at(MONDAY, 10, 0)), at(MONDAY, 10, 0), True, "")
    buy.refresh_from_db()
    assert buy.status == OrderStatus.UNKNOWN
    assert TradingAlert.objects.get(kind=AlertKind.ORDER_UNKNOWN).key == f"order-{buy.pk}"


def test_a_reconciliation_failure_raises_one_alert(config, monkeypatch):
    entry(config)
    Order.objects.update(status=OrderStatus.SUBMITTED)  # something left to reconcile

    def broken(self, start, end):
        raise BrokerError("주문 조회 실패")

    monkeypatch.setattr(PaperBroker, "get_daily_orders", broken)
    results = reconcile_open_orders(now=at(MONDAY, 10, 0))
    assert "주문 조회 실패" in results[config.broker_account_id].error  # the caller sees the failure
    reconcile_open_orders(now=at(MONDAY, 10, 5))
    [alert] = TradingAlert.objects.filter(kind=AlertKind.RECONCILE_FAILED)
    assert "주문 조회 실패" in alert.message and alert.key == f"orders-{MONDAY}"


def test_a_failed_job_raises_an_alert(config, monkeypatch):
    def boom(*args, **kwargs):
        raise RuntimeError("전략 계산 오류")

    monkeypatch.setattr(weekly, "plan_entry", boom)
    result = place_weekly_buys(config, MONDAY, at(MONDAY, 9, 5))
    assert result.run.status == WeeklyRunStatus.FAILED
    alert = TradingAlert.objects.get(kind=AlertKind.JOB_FAILED)
    assert alert.key == f"run-{result.run.pk}" and "전략 계산 오류" in alert.message
    assert alert.account == config.broker_account


# ------------------------------------------------------------------------------------------- admin
@pytest.fixture
def admin_client(client, django_user_model):
    admin_user = django_user_model.objects.create_superuser("boss", "boss@example.com", "pw-boss-123456")
    step_up(client, admin_user)  # the admin needs a second factor
    client.admin_user = admin_user
    return client


def test_admin_resolves_alerts_with_a_note_and_filters_open_ones(admin_client, paper_account):
    blocking, _ = raise_alert(paper_account, AlertKind.POSITION_MISMATCH, "005930 부족", key="shortfall:005930",
                              blocks_entries=True)
    info, _ = raise_alert(paper_account, AlertKind.ORDER_REJECTED, "주문 거부", key="order-1")
    fill, _ = raise_alert(paper_account, AlertKind.FILLED, "체결 소식", key="fill-1")
    url = reverse("admin:orders_tradingalert_changelist")
    listing = admin_client.get(url, {"state": "open"}).content.decode()
    assert "005930 부족" in listing and "주문 거부" in listing
    assert "체결 소식" not in listing and not fill.is_open  # a fill is news: notified, never left open
    detail = admin_client.get(reverse("admin:orders_tradingalert_change", args=[blocking.pk]))
    assert detail.status_code == 200 and 'name="_save"' not in detail.content.decode()  # closed by the action only

    confirm = admin_client.post(url, {"action": "resolve_alerts", "_selected_action": [blocking.pk]})
    assert confirm.status_code == 200 and "005930 부족" in confirm.content.decode()  # asks for the note
    blocking.refresh_from_db()
    assert blocking.is_open
    done = admin_client.post(url, {"action": "resolve_alerts", "_selected_action": [blocking.pk], "apply": "1",
                                   "note": "확인 완료"})
    assert done.status_code == 302
    blocking.refresh_from_db()
    assert not blocking.is_open and blocking.resolved_by == admin_client.admin_user
    assert blocking.resolution_note == "확인 완료"
    assert controls.entry_block_reason(paper_account) is None
    still_open = admin_client.get(url, {"state": "open"}).content.decode()
    assert "005930 부족" not in still_open and "주문 거부" in still_open
    assert info.is_open


def test_admin_trade_logs_are_read_only_and_weekly_runs_show_the_missed_slot_policy(admin_client, config):
    entry(config)
    log = TradeLog.objects.first()
    assert admin_client.get(reverse("admin:orders_tradelog_changelist")).status_code == 200
    assert admin_client.get(reverse("admin:orders_tradelog_add")).status_code == 403
    page = admin_client.get(reverse("admin:orders_tradelog_change", args=[log.pk])).content.decode()
    assert 'name="_save"' not in page
    runs = admin_client.get(reverse("admin:orders_weeklyrun_changelist")).content.decode()
    assert 'id="missed-slot-policy"' in runs and "13:00" in runs and "ORDERS_ENTRY_CUTOFF" in runs
