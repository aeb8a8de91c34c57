"""Commands, Celery tasks and the declared schedules."""

from __future__ import annotations

import datetime as dt
from io import StringIO

import pytest
import time_machine
from django.core.management import call_command

from market.krx import SEOUL
from market.models import PaperOrder
from orders import tasks
from orders.models import Order, OrderStatus, WeeklyRun
from orders.schedules import SCHEDULES

from .conftest import FRIDAY, MONDAY

pytestmark = pytest.mark.django_db


def test_trade_week_dry_run_prints_and_writes_nothing(config):
    out = StringIO()
    call_command("trade_week", "entry", config=config.pk, date=MONDAY.isoformat(), dry_run=True, stdout=out)
    assert "3 order(s) would be sent" in out.getvalue()
    assert not Order.objects.exists() and not WeeklyRun.objects.exists()


def test_trade_week_for_a_past_paper_week_and_reconcile(config):
    out = StringIO()
    call_command("trade_week", "entry", date=MONDAY.isoformat(), stdout=out)
    call_command("trade_week", "entry", date=MONDAY.isoformat(), stdout=out)  # again: nothing new
    call_command("trade_week", "check", date=(MONDAY + dt.timedelta(days=1)).isoformat(), stdout=out)
    call_command("reconcile_orders", date=MONDAY.isoformat(), stdout=out)
    assert PaperOrder.objects.count() == 3
    assert set(Order.objects.values_list("status", flat=True)) == {OrderStatus.FILLED}
    call_command("trade_week", "exit", date=FRIDAY.isoformat(), stdout=out)
    call_command("reconcile_orders", stdout=out)
    assert Order.objects.filter(side="sell", status=OrderStatus.FILLED).count() == 3
    assert "complete" in out.getvalue()


def test_tasks_run_the_jobs_once_per_delivery_key(config):
    with time_machine.travel(dt.datetime(2025, 11, 24, 9, 5, tzinfo=SEOUL), tick=False):
        first = tasks.weekly_entry()
        second = tasks.weekly_entry()  # a duplicated delivery
        tasks.reconcile()
    assert first["accounts"] == second["accounts"] == 1 and first["configs"] == 1
    assert PaperOrder.objects.count() == 3
    assert WeeklyRun.objects.get(config=config, job="entry").status == "complete"
    with time_machine.travel(dt.datetime(2025, 11, 25, 9, 5, tzinfo=SEOUL), tick=False):
        assert tasks.weekly_entry()["accounts"] == 1  # Tuesday: dispatched, but not the first trading day
    assert WeeklyRun.objects.filter(job="entry").count() == 1
    with time_machine.travel(dt.datetime(2025, 11, 22, 9, 5, tzinfo=SEOUL), tick=False):
        assert "skipped" in tasks.exit_checks()  # Saturday


def test_schedules_are_declared_and_installable():
    from trading_site.schedules import install_schedules

    names = {s.task for s in SCHEDULES}
    assert names == {"orders.weekly_entry", "orders.exit_checks", "orders.reconcile", "orders.compare_live_backtest"}
    created = install_schedules(SCHEDULES)
    assert all(flag for _, flag in created)
    assert all(flag is False for _, flag in install_schedules(SCHEDULES))  # idempotent
