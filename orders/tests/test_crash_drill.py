"""The crash drill: real processes killed with SIGKILL, recovery, counts against the broker's record."""

from __future__ import annotations

import datetime as dt
import re
from io import StringIO

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from market.models import PaperOrder
from orders import drill
from orders.reconciliation import reconcile_orders
from orders.scratch import scratch_name
from orders.weekly import place_weekly_buys

from .conftest import MONDAY, at

pytestmark = pytest.mark.django_db


def test_crash_drill_kills_the_entry_job_and_counts_nothing_lost_or_doubled():
    out = StringIO()
    # Seed 7 draws three checkpoint kills (deterministic, whatever the machine's speed): after the
    # first order reached the broker but before its answer was stored, right after the intents were
    # committed, and after the fourth order's answer. The drill's own runs mix in random-delay kills.
    call_command("crash_drill", runs=3, seed=7, stdout=out)
    text = out.getvalue()
    lines = [line for line in text.splitlines() if line.startswith("run ")]
    assert len(lines) == 3, text
    assert [re.search(r"killed after (\S+ #\d)", line).group(1) for line in lines] == [
        "after_send #1", "intents_committed #1", "after_send #4"], text
    assert all("duplicates 0, lost 0, open 0, run complete, position mismatches 0" in line for line in lines), text
    assert "runs: 3, duplicates: 0, lost orders: 0" in text


def test_the_counts_see_duplicates_and_lost_orders(config):
    place_weekly_buys(config, MONDAY, at(MONDAY, 9, 5))
    reconcile_orders(config.broker_account, MONDAY, now=at(MONDAY, 9, 10))
    clean = drill.count_against_broker(config, MONDAY)
    assert (clean["broker_orders"], clean["intents"], clean["duplicates"], clean["lost"]) == (3, 3, 0, 0)
    assert (clean["open_intents"], clean["run_status"], clean["position_mismatches"]) == (0, "complete", 0)

    first, second, _ = PaperOrder.objects.order_by("pk")
    account = first.account

    def copy(row, **changes):
        fields = {name: getattr(row, name) for name in (
            "code", "side", "order_type", "quantity", "price", "trading_date", "placed_at", "client_order_id")}
        number = f"{PaperOrder.objects.count() + 100:010d}"
        return PaperOrder.objects.create(account=account, order_no=number, **{**fields, **changes})

    copy(first)  # sent twice for one intent
    copy(first, client_order_id="")  # a broker order no intent of ours placed
    config.orders.filter(client_order_id=second.client_order_id).update(broker_order_no="")  # not recorded
    counts = drill.count_against_broker(config, MONDAY)
    assert (counts["broker_orders"], counts["duplicates"], counts["lost"]) == (5, 1, 2)


def test_the_command_fails_when_a_run_lost_or_doubled_an_order(monkeypatch):
    summary = drill.DrillSummary(seed=1, trading_date="2025-11-17", database="x")
    summary.runs.append(drill.RunResult(index=1, config_id=1, kill="SIGKILL", killed=True, last_checkpoint="",
                                        broker_orders=4, intents=3, duplicates=1, run_status="complete"))
    monkeypatch.setattr(drill, "run_drill", lambda *args, **kwargs: summary)
    out = StringIO()
    with pytest.raises(CommandError, match="crash drill failed"):
        call_command("crash_drill", runs=1, stdout=out)
    assert "runs: 1, duplicates: 1, lost orders: 0" in out.getvalue()


def test_scratch_database_names():
    assert scratch_name("trading", "drill") == "test_trading_drill"
    assert scratch_name("test_trading", "drill") == "test_trading_drill"
    assert dt.date.fromisoformat(drill.DEMO_END.isoformat()).weekday() == 4  # a Friday: a complete week
