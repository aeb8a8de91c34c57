"""Crashes injected at each point of the send path, then resume + reconcile: exactly one broker order
per intent and every accepted order recorded. Also the lost-answer case against the fake KIS host."""

from __future__ import annotations

import datetime as dt

import pytest
import time_machine
from django.utils import timezone

from accounts.models import BrokerMode
from accounts.tests.factories import BrokerAccountFactory
from market.krx import SEOUL
from market.models import PaperOrder
from market.tests.fake_kis import FAKE_ACCOUNT_NO, FAKE_APP_KEY, FAKE_APP_SECRET, FakeKisServer
from orders import common, weekly
from orders.execution import send_order
from orders.models import Order, OrderStatus, WeeklyRunStatus
from orders.planning import PlannedOrder, client_order_id
from orders.reconciliation import reconcile_orders
from orders.weekly import place_weekly_buys, resume_interrupted_runs
from strategies.models import StrategyConfig, UniverseMode

from .conftest import MONDAY, at

pytestmark = pytest.mark.django_db


class SimulatedCrash(BaseException):
    """A killed worker: not an Exception, so no handler in the job catches it."""


def crash_at(monkeypatch, point: str, nth: int = 1):
    calls = {"n": 0}

    def hook(name, subject):
        if name == point:
            calls["n"] += 1
            if calls["n"] == nth:
                raise SimulatedCrash(point)

    monkeypatch.setattr(common, "checkpoint", hook)


@pytest.mark.parametrize(("point", "nth"), [
    ("intents_committed", 1), ("before_send", 1), ("before_send", 2), ("after_send", 1), ("after_send", 3),
])
def test_crash_then_resume_sends_each_intent_exactly_once(config, monkeypatch, point, nth):
    crash_at(monkeypatch, point, nth)
    with pytest.raises(SimulatedCrash):
        place_weekly_buys(config, MONDAY, at(MONDAY, 9, 5))
    run = config.weekly_runs.get()
    assert run.status == WeeklyRunStatus.RUNNING and run.planned
    assert Order.objects.count() == 3  # every intent was committed before anything was sent
    monkeypatch.setattr(common, "checkpoint", lambda name, subject: None)

    # A duplicated delivery while the run still looks alive does nothing.
    place_weekly_buys(config, MONDAY, at(MONDAY, 9, 6))
    assert PaperOrder.objects.count() <= 3

    [resumed] = resume_interrupted_runs(at(MONDAY, 9, 20))
    assert resumed.status == WeeklyRunStatus.COMPLETE
    reconcile_orders(config.broker_account, MONDAY, now=at(MONDAY, 9, 25))
    broker_orders = list(PaperOrder.objects.order_by("code"))
    assert len(broker_orders) == 3  # zero duplicates
    ours = {o.broker_order_no: o for o in Order.objects.all()}
    assert set(ours) == {b.order_no for b in broker_orders}  # every accepted order recorded
    assert {o.status for o in ours.values()} == {OrderStatus.FILLED}
    assert resume_interrupted_runs(at(MONDAY, 10, 0)) == []  # nothing left to resume


def test_resume_after_the_entry_cutoff_cancels_unsent_orders(config, monkeypatch):
    crash_at(monkeypatch, "before_send", 2)
    with pytest.raises(SimulatedCrash):
        place_weekly_buys(config, MONDAY, at(MONDAY, 9, 5))
    monkeypatch.setattr(common, "checkpoint", lambda name, subject: None)
    [resumed] = resume_interrupted_runs(at(MONDAY, 14, 0))
    assert resumed.status == WeeklyRunStatus.COMPLETE and "13:00" in resumed.reason
    statuses = sorted(Order.objects.values_list("status", flat=True))
    # The first was sent and filled; the crashed one had no trace at the broker; the third never left.
    assert statuses == ["cancelled", "cancelled", "filled"]
    assert PaperOrder.objects.count() == 1


def test_reconciliation_failure_blocks_the_run_and_sends_nothing(config, monkeypatch):
    crash_at(monkeypatch, "after_send", 1)
    with pytest.raises(SimulatedCrash):
        place_weekly_buys(config, MONDAY, at(MONDAY, 9, 5))
    monkeypatch.setattr(common, "checkpoint", lambda name, subject: None)
    from market.brokers.paper import PaperBroker
    from market.gateway import BrokerError

    def broken(self, start, end):
        raise BrokerError("주문 조회 실패")

    monkeypatch.setattr(PaperBroker, "get_daily_orders", broken)
    [resumed] = resume_interrupted_runs(at(MONDAY, 9, 20))
    assert resumed.status == WeeklyRunStatus.BLOCKED and "주문 조회 실패" in resumed.reason
    assert PaperOrder.objects.count() == 1


# ----------------------------------------------------------------------------------- fake KIS host
ORDER_PATH = "/uapi/domestic-stock/v1/trading/order-cash"
KIS_MONDAY = dt.date(2026, 11, 23)


@pytest.fixture
def fake_vts(settings):
    with time_machine.travel(dt.datetime(2026, 11, 23, 9, 5, tzinfo=SEOUL), tick=True):
        with FakeKisServer(mode="paper", rate_limit_per_second=None) as server:
            settings.KIS_BASE_URLS = {"real": "", "paper": server.base_url}
            yield server


@pytest.fixture
def kis_config(user, fake_vts, monkeypatch):
    account = BrokerAccountFactory(
        owner=user, mode=BrokerMode.SIMULATED, app_key=FAKE_APP_KEY, app_secret=FAKE_APP_SECRET,
        account_number=FAKE_ACCOUNT_NO,
    )
    config = StrategyConfig.objects.create(
        owner=user, name="kis", strategy_key="ma_crossover", universe_mode=UniverseMode.CODES,
        universe_codes="005930", max_positions=1, cash_per_week=1_000_000, is_active=True, broker_account=account,
    )
    plan = [PlannedOrder(code="005930", side="buy", quantity=3, reason="entry", reference_price=72_900,
                         client_order_id=client_order_id(config.pk, KIS_MONDAY, "005930", "buy", "entry"))]
    monkeypatch.setattr(weekly, "plan_entry", lambda *args, **kwargs: (plan, {}))
    return config


def test_lost_order_answer_is_found_by_reconciliation_without_a_resend(fake_vts, kis_config):
    fake_vts.add_fault(ORDER_PATH, "drop_connection")
    result = place_weekly_buys(kis_config, KIS_MONDAY, timezone.now())
    assert result.run.status == WeeklyRunStatus.COMPLETE
    order = Order.objects.get()
    assert order.status == OrderStatus.UNKNOWN and not order.broker_order_no and order.error_message
    assert fake_vts.count(ORDER_PATH, "POST") == 1

    # Redelivered entry task and the resume sweep: nothing is sent again.
    place_weekly_buys(kis_config, KIS_MONDAY, timezone.now())
    resume_interrupted_runs(timezone.now() + dt.timedelta(minutes=15))
    summary = reconcile_orders(kis_config.broker_account, KIS_MONDAY)
    assert summary.matched_unknown == 1 and summary.external_orders == []
    order.refresh_from_db()
    assert order.broker_order_no == fake_vts.accepted_orders[0]["ODNO"]
    assert order.status == OrderStatus.FILLED and order.filled_quantity == 3
    assert order.fills.count() == 1
    reconcile_orders(kis_config.broker_account, KIS_MONDAY)
    assert order.fills.count() == 1  # a repeated poll applies no fill twice
    assert fake_vts.count(ORDER_PATH, "POST") == 1  # zero duplicates


def test_kis_order_sent_once_and_recorded(fake_vts, kis_config):
    place_weekly_buys(kis_config, KIS_MONDAY, timezone.now())
    order = Order.objects.get()
    assert order.status == OrderStatus.SUBMITTED and order.broker_order_no == fake_vts.accepted_orders[0]["ODNO"]
    assert fake_vts.tr_ids(ORDER_PATH) == ["VTTC0012U"]
    reconcile_orders(kis_config.broker_account, KIS_MONDAY)
    order.refresh_from_db()
    assert order.status == OrderStatus.FILLED


def test_real_account_never_resends_a_claimed_order(config):
    """A real-money order whose send was claimed but never answered (the worker died around the
    request) is left unknown for reconciliation, never sent a second time."""
    from accounts.models import BrokerMode
    from orders.models import Order, OrderStatus

    class NoBroker:
        def place_order(self, *args, **kwargs):
            raise AssertionError("a real-money order must not be sent twice")

    account = config.broker_account
    account.mode = BrokerMode.REAL
    account.save(update_fields=["mode"])
    order = Order.objects.create(
        config=config, broker_account=account, trading_date=MONDAY, code="005930", side="buy", order_type="01",
        quantity=1, price=0, reference_price=70_000, reason="entry", client_order_id="c-real-1", intent_at=at(MONDAY, 9, 5),
        send_attempts=1,
    )
    send_order(order, NoBroker(), at(MONDAY, 9, 20), True, "")
    order.refresh_from_db()
    assert order.status == OrderStatus.UNKNOWN
