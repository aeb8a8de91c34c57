"""The sweep under the beat (`run_due_jobs`) and the jobs' retry within the missed-slot policy: a lost
trigger costs one sweep interval, a late open (the year's first session) is waited for, an order that
could not be sent for a reason that passes goes out at the next try — never twice."""

from __future__ import annotations

import datetime as dt

import pytest
from django.core.management import call_command
from django_celery_beat.models import PeriodicTask

from market.brokers.paper import PaperBroker
from market.gateway import BrokerError
from market.models import DailyBar, PaperOrder
from orders.models import AlertKind, Order, OrderStatus, TradingAlert, WeeklyRun, WeeklyRunStatus
from orders.reconciliation import reconcile_orders
from orders.replay import replay_paper_week
from orders.weekly import ENTRY_TASK, place_weekly_buys, run_due_jobs

from .conftest import FRIDAY, MONDAY, at

pytestmark = pytest.mark.django_db

FIRST_SESSION_2023 = dt.date(2023, 1, 2)  # Monday; KRX opens at 10:00 on the year's first session


@pytest.fixture
def schedules(db):
    call_command("setup_schedules")


def runs(config, job=None):
    rows = WeeklyRun.objects.filter(config=config)
    return rows.filter(job=job) if job else rows


# ------------------------------------------------------------------------------------------- lost triggers
def test_a_lost_entry_trigger_is_started_by_the_next_sweep(config, schedules):
    assert run_due_jobs(at(MONDAY, 9, 0)) == []  # before the 09:05 slot: nothing is due
    [run] = run_due_jobs(at(MONDAY, 9, 10))  # the beat's 09:05 message was lost
    assert (run.job, run.status) == ("entry", WeeklyRunStatus.COMPLETE)
    assert PaperOrder.objects.count() == 3
    assert run_due_jobs(at(MONDAY, 9, 15)) == []  # done: the next sweeps add nothing
    assert PaperOrder.objects.count() == 3


def test_the_sweep_respects_the_cutoff_the_calendar_and_a_disabled_schedule(config, schedules):
    assert run_due_jobs(at(MONDAY, 13, 5)) == []  # past the 13:00 entry cut-off: the week's entry is lost
    assert not runs(config).exists()
    tuesday = MONDAY + dt.timedelta(days=1)
    assert run_due_jobs(at(tuesday, 9, 10)) == []  # not the week's first trading day
    assert run_due_jobs(at(dt.date(2025, 11, 29), 10, 0)) == []  # Saturday
    PeriodicTask.objects.filter(task=ENTRY_TASK).update(enabled=False)
    assert run_due_jobs(at(MONDAY, 9, 10)) == []  # switched off in the admin: the sweep does not start it
    assert not runs(config).exists()


def test_a_lost_check_trigger_runs_before_the_close_and_the_exit_on_the_last_day(config, schedules):
    place_weekly_buys(config, MONDAY, at(MONDAY, 9, 5))
    reconcile_orders(config.broker_account, MONDAY, now=at(MONDAY, 9, 10))
    assert run_due_jobs(at(MONDAY, 15, 10)) == []  # before the 15:15 slot
    [check] = run_due_jobs(at(MONDAY, 15, 20))
    assert (check.job, check.status) == ("check", WeeklyRunStatus.COMPLETE)
    assert run_due_jobs(at(MONDAY, 15, 40)) == []  # after the close: the next check catches up instead
    [exit_run] = run_due_jobs(at(FRIDAY, 15, 20))
    assert (exit_run.job, exit_run.trading_date) == ("exit", FRIDAY)
    assert set(Order.objects.filter(side="sell").values_list("reason", flat=True)) == {"week_end"}


def test_the_sweep_and_a_late_beat_message_never_double_an_entry(config, schedules):
    run_due_jobs(at(MONDAY, 9, 10))
    place_weekly_buys(config, MONDAY, at(MONDAY, 9, 11))  # the beat's message arrives after all
    run_due_jobs(at(MONDAY, 9, 15))
    assert runs(config).count() == 1 and PaperOrder.objects.count() == 3


# ------------------------------------------------------------------------------------------- retry within the day
def test_a_read_failure_makes_the_run_wait_and_the_sweep_sends_it_once(config, schedules, monkeypatch):
    real = PaperBroker.get_buyable

    def down(self, code, price=None):
        raise BrokerError("주문가능금액 조회 실패")

    monkeypatch.setattr(PaperBroker, "get_buyable", down)
    result = place_weekly_buys(config, MONDAY, at(MONDAY, 9, 5))
    assert result.run.status == WeeklyRunStatus.WAITING and result.run.retry_at == at(MONDAY, 9, 10)
    assert "다시 시도" in result.run.reason and not PaperOrder.objects.exists()
    alert = TradingAlert.objects.get(kind=AlertKind.JOB_FAILED, key=f"run-{result.run.pk}")
    assert "다시 시도" in alert.message

    assert run_due_jobs(at(MONDAY, 9, 7)) == []  # not before its retry time
    [still] = run_due_jobs(at(MONDAY, 9, 10))  # still down: waits again
    assert still.status == WeeklyRunStatus.WAITING and still.attempts == 2
    monkeypatch.setattr(PaperBroker, "get_buyable", real)
    [done] = run_due_jobs(at(MONDAY, 9, 15))
    assert done.status == WeeklyRunStatus.COMPLETE and done.reason == ""
    assert PaperOrder.objects.count() == 3 and Order.objects.filter(send_attempts=1).count() == 3
    alert.refresh_from_db()
    assert alert.resolved_at is not None  # the job finished: its alert closed itself


def test_a_run_still_waiting_at_the_cutoff_is_skipped_with_its_orders_cancelled(config, schedules, monkeypatch):
    monkeypatch.setattr(PaperBroker, "get_buyable", lambda self, code, price=None: (_ for _ in ()).throw(
        BrokerError("주문가능금액 조회 실패")))
    run = place_weekly_buys(config, MONDAY, at(MONDAY, 12, 55)).run
    assert run.status == WeeklyRunStatus.WAITING
    [run] = run_due_jobs(at(MONDAY, 13, 5))
    assert run.status == WeeklyRunStatus.SKIPPED and "13:00" in run.reason and "취소" in run.reason
    assert set(Order.objects.values_list("status", flat=True)) == {OrderStatus.CANCELLED}
    assert not PaperOrder.objects.exists()
    assert "실행되지 못했습니다" in TradingAlert.objects.get(kind=AlertKind.JOB_FAILED).message


def test_a_waiting_run_of_a_deactivated_strategy_is_dropped(config, schedules, monkeypatch):
    monkeypatch.setattr(PaperBroker, "get_buyable", lambda self, code, price=None: (_ for _ in ()).throw(
        BrokerError("주문가능금액 조회 실패")))
    place_weekly_buys(config, MONDAY, at(MONDAY, 9, 5))
    config.is_active = False
    config.save(update_fields=["is_active"])
    [run] = run_due_jobs(at(MONDAY, 9, 10))
    assert run.status == WeeklyRunStatus.SKIPPED and "비활성화" in run.reason
    assert set(Order.objects.values_list("status", flat=True)) == {OrderStatus.CANCELLED}


# ------------------------------------------------------------------------------------------- late opens
@pytest.fixture
def bars_2023(db):
    call_command("demo_data", symbols=5, years=1, end="2023-01-06")


@pytest.fixture
def config_2023(user, paper_account, bars_2023, stub_strategy):
    from market.models import Instrument
    from strategies.models import StrategyConfig, UniverseMode

    codes = sorted(Instrument.objects.values_list("code", flat=True))
    return StrategyConfig.objects.create(
        owner=user, name="2023", strategy_key="ma_crossover", params={}, universe_mode=UniverseMode.CODES,
        universe_codes=" ".join(codes), max_positions=3, cash_per_week=3_000_000, is_active=True,
        broker_account=paper_account,
    )


def test_the_years_first_session_opens_at_ten_and_the_entry_waits_for_it(config_2023, schedules):
    result = place_weekly_buys(config_2023, FIRST_SESSION_2023, at(FIRST_SESSION_2023, 9, 5))
    run = result.run
    assert run.status == WeeklyRunStatus.WAITING and "10:00" in run.reason
    assert run.retry_at == at(FIRST_SESSION_2023, 10, 0) and not run.planned
    assert not Order.objects.exists()
    assert not TradingAlert.objects.filter(kind=AlertKind.JOB_FAILED).exists()  # expected, not a failure

    assert run_due_jobs(at(FIRST_SESSION_2023, 9, 55)) == []  # not before the open
    [run] = run_due_jobs(at(FIRST_SESSION_2023, 10, 0))
    assert run.status == WeeklyRunStatus.COMPLETE and run.reason == ""
    reconcile_orders(config_2023.broker_account, FIRST_SESSION_2023, now=at(FIRST_SESSION_2023, 10, 5))
    orders = list(Order.objects.all())
    assert len(orders) == 3 and {o.status for o in orders} == {OrderStatus.FILLED}
    for order in orders:  # sized at and filled at the day's open, as the backtest buys
        opening = DailyBar.objects.get(instrument__code=order.code, date=FIRST_SESSION_2023).open
        assert order.reference_price == opening and order.average_fill_price == opening


def test_a_replayed_week_with_a_late_open_enters_after_the_open(config_2023):
    replay_paper_week(config_2023, FIRST_SESSION_2023, until=at(dt.date(2023, 1, 7), 0, 0))
    entry = WeeklyRun.objects.get(config=config_2023, job="entry")
    assert entry.status == WeeklyRunStatus.COMPLETE and entry.attempts == 2
    assert Order.objects.filter(side="buy", status=OrderStatus.FILLED).count() == 3
    assert {o.intent_at for o in Order.objects.filter(side="buy")} == {at(FIRST_SESSION_2023, 10, 0)}


@pytest.mark.parametrize("kis_week", [{"mode": "real", "max_positions": 1}], ids=["real"], indirect=True)
def test_an_order_kis_refused_at_its_gateway_is_sent_at_the_next_try_once(kis_week):
    """EGW00201 (the per-key rate limit) on every try of the order: KIS did not take it, so the
    order stays pending, the run waits, and the next try sends it — once, even on a real account."""
    from market.tests.fake_kis import ORDER_CASH_PATH

    from .kis_week import WEEK

    week = kis_week
    week.fake.add_fault(ORDER_CASH_PATH, "rate_limit", times=None, method="POST")
    run = place_weekly_buys(week.config, WEEK, week.at(WEEK, 9, 5)).run
    [order] = Order.objects.all()
    assert run.status == WeeklyRunStatus.WAITING and "다시 시도" in run.reason
    assert (order.status, order.send_attempts) == (OrderStatus.PENDING, 0) and "전달되지 않았습니다" in order.error_message
    assert week.fake.accepted_orders == []

    week.fake.clear_faults()
    run = place_weekly_buys(week.config, WEEK, week.at(WEEK, 9, 10)).run
    order.refresh_from_db()
    assert run.status == WeeklyRunStatus.COMPLETE
    assert order.status == OrderStatus.SUBMITTED and order.send_attempts == 1 and order.error_message == ""
    assert len(week.fake.accepted_orders) == 1
    place_weekly_buys(week.config, WEEK, week.at(WEEK, 9, 15))
    assert len(week.fake.accepted_orders) == 1
