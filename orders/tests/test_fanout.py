"""The weekly jobs fanned out per broker account: one task per account with its configs in order, a
deadline, queues that keep trading apart from research, and nothing placed twice whatever the
delivery."""

from __future__ import annotations

import datetime as dt

import pytest
import time_machine
from celery import current_app

from accounts.models import BrokerMode
from accounts.tests.factories import BrokerAccountFactory
from market.models import PaperOrder
from orders import fanout, tasks
from orders.models import JobDispatch, Order, WeeklyRun
from orders.selectors import latest_fanout
from strategies.models import StrategyConfig, UniverseMode

from .conftest import MONDAY, at

pytestmark = pytest.mark.django_db


@pytest.fixture
def accounts(user, other_user, demo_bars, stub_strategy):
    """Two users' paper accounts; the first has two active configs, the second one (and an inactive one)."""
    first = BrokerAccountFactory(owner=user, mode=BrokerMode.PAPER, app_key="", app_secret="", account_number="")
    second = BrokerAccountFactory(owner=other_user, mode=BrokerMode.PAPER, app_key="", app_secret="",
                                  account_number="")

    def make(owner, account, name, active=True):
        return StrategyConfig.objects.create(
            owner=owner, name=name, strategy_key="ma_crossover", params={}, universe_mode=UniverseMode.CODES,
            universe_codes=" ".join(demo_bars), max_positions=2, cash_per_week=2_000_000, is_active=active,
            broker_account=account,
        )

    configs = [make(user, first, "a"), make(user, first, "b"), make(other_user, second, "c"),
               make(other_user, second, "off", active=False)]
    return first, second, configs


def test_dispatch_sends_one_task_per_account_with_its_configs_in_order(accounts):
    first, second, configs = accounts
    sent = []
    with time_machine.travel(at(MONDAY, 9, 5), tick=False):
        result = fanout.dispatch("entry", lambda *args: sent.append(args))
    assert [(job, account, ids) for job, account, ids, _day, _deadline in sent] == [
        ("entry", first.pk, [configs[0].pk, configs[1].pk]), ("entry", second.pk, [configs[2].pk])]
    deadline = fanout.job_deadline("entry", MONDAY)
    assert {d for *_, d in sent} == {deadline} and deadline.date() == MONDAY and deadline > at(MONDAY, 9, 5)
    row = JobDispatch.objects.get()
    assert (row.job, row.trading_date, row.accounts, row.configs) == ("entry", MONDAY, 2, 3)
    assert result.summary()["accounts"] == 2


def test_the_entry_through_the_tasks_places_every_account_once_even_when_delivered_twice(accounts):
    with time_machine.travel(at(MONDAY, 9, 5), tick=False):
        tasks.weekly_entry()
        sent = Order.objects.count()
        # Every account's task delivered again (a redelivery after a worker died, or two workers).
        for account_id, config_ids in fanout.configs_by_account().items():
            tasks.account_job("entry", account_id, config_ids, MONDAY.isoformat(),
                              fanout.job_deadline("entry", MONDAY).isoformat())
    assert sent > 0 and Order.objects.count() == sent == PaperOrder.objects.count()
    assert set(WeeklyRun.objects.filter(job="entry").values_list("status", flat=True)) == {"complete"}
    assert WeeklyRun.objects.filter(job="entry").count() == 3  # the inactive config did nothing


def test_a_task_after_its_deadline_does_nothing(accounts):
    first, _second, configs = accounts
    deadline = fanout.job_deadline("entry", MONDAY)
    with time_machine.travel(deadline + dt.timedelta(seconds=1), tick=False):
        result = fanout.run_account_job("entry", first.pk, [configs[0].pk], MONDAY, deadline)
    assert result == {"skipped": "deadline passed"} and not WeeklyRun.objects.exists()


def test_a_config_moved_to_another_account_is_not_run_by_the_old_accounts_task(accounts):
    first, second, configs = accounts
    StrategyConfig.objects.filter(pk=configs[1].pk).update(broker_account=second)
    with time_machine.travel(at(MONDAY, 9, 5), tick=False):
        result = fanout.run_account_job("entry", first.pk, [configs[0].pk, configs[1].pk], MONDAY,
                                        fanout.job_deadline("entry", MONDAY))
    assert list(result) == [configs[0].pk]


def test_trading_and_research_tasks_go_to_their_own_queues():
    router = current_app.amqp.router
    def queue(name):
        return router.route({}, name)["queue"].name
    assert queue("orders.account_job") == queue("orders.weekly_entry") == queue("orders.reconcile") == "trading"
    assert queue("market.refresh_recent_bars") == "trading"
    assert queue("strategies.run_sweep") == queue("strategies.run_backtest") == "research"
    assert queue("reports.weekly_reports") == queue("market.analyze_last_week") == "research"


def test_the_dashboard_summary_gives_each_accounts_send_times(accounts):
    with time_machine.travel(at(MONDAY, 9, 5), tick=False):
        tasks.weekly_entry()
    summary = latest_fanout("entry")
    assert summary["dispatch"].accounts == 2 and len(summary["accounts"]) == 2
    assert summary["orders"] == Order.objects.filter(sent_at__isnull=False).count()
    assert summary["seconds"] == 0.0  # the clock is pinned: every order left at the slot


def test_the_dashboard_shows_the_last_entrys_fanout_for_the_users_own_accounts(client, user, accounts):
    first, second, _configs = accounts
    with time_machine.travel(at(MONDAY, 9, 5), tick=False):
        tasks.weekly_entry()
    client.force_login(user)
    with time_machine.travel(at(MONDAY, 10, 0), tick=False):
        page = client.get("/").content.decode()
    assert 'id="fanout"' in page and first.name in page
    assert f"<td>{second.name}</td>" not in page  # another user's account is not listed


def test_the_reconciliation_sweep_sends_one_expiring_task_per_account(accounts, monkeypatch):
    first, second, _configs = accounts
    sent = []
    monkeypatch.setattr(tasks.reconcile_account, "apply_async", lambda args, **options: sent.append((args, options)))
    with time_machine.travel(at(MONDAY, 10, 0), tick=False):
        summary = tasks.reconcile()
    assert summary["accounts"] == 2
    assert [args for args, _ in sent] == [(first.pk,), (second.pk,)]
    assert all(o["queue"] == "trading" and o["expires"] == 300 for _, o in sent)
