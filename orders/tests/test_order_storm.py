"""The order storm (orders.storm): a small storm through the run command's server on the configured
database kind (a scratch SQLite file; on MySQL/MariaDB the test database, which the test flushes
afterwards) counts 0 server errors, duplicates, unsettled orders and lost alerts; the plan and the
counting themselves."""

from __future__ import annotations

import datetime as dt
import json
import random
import sqlite3

import pytest
from django.conf import settings
from django.db import connection

from accounts.models import BrokerMode
from accounts.tests.factories import BrokerAccountFactory
from market.models import PaperAccount, PaperOrder
from orders import storm
from orders.manual import manual_client_order_id
from orders.models import AlertKind, Order, OrderReason, OrderStatus, TradingAlert
from orders.scratch import mysql_url

from .conftest import MONDAY


@pytest.mark.django_db(transaction=True)
def test_a_small_storm_answers_no_5xx_and_loses_nothing(tmp_path):
    # The storm runs on the test database, already migrated, so the test stays well under a minute: on
    # MySQL/MariaDB the test database itself (flushed after the test); on SQLite a file copy of the
    # in-memory test database, which other processes cannot open.
    if connection.vendor == "mysql":
        url = mysql_url(settings.DATABASES["default"], settings.DATABASES["default"]["NAME"])
    else:
        path = tmp_path / "storm.sqlite3"
        connection.ensure_connection()
        copy = sqlite3.connect(path)
        connection.connection.backup(copy)
        copy.close()
        url = f"sqlite:///{path}"
    lines = []
    summary = storm.run_storm(users=2, requests_count=40, parallel=8, same_key_share=0.3, seed=20261207,
                              database_url=url, out=lines.append)
    assert (summary.server_errors, summary.duplicates, summary.unsettled, summary.lost_alerts) == (0, 0, 0, 0), (
        f"{summary.line()}\n{json.dumps(summary.details, ensure_ascii=False, indent=1)}")
    assert summary.ok and sum(summary.status_codes.values()) == 40
    print("\n".join(lines))
    # It exercised what matters: replays of a key (200), fills with their alerts, refusals with theirs,
    # every alert handed to the worker and sent to the webhook.
    assert summary.status_codes.get("200") and summary.status_codes.get("201")
    assert summary.details["orders"].get("filled") and summary.details["orders"].get("rejected")
    alerts = summary.details["alerts"]
    assert alerts.get("filled") and alerts.get("risk_blocked")
    assert summary.details["webhook_posts"] >= sum(alerts.values())
    as_json = json.loads(summary.as_json())
    assert {"server_errors", "duplicates", "unsettled", "lost_alerts", "requests", "seconds",
            "status_codes"} <= set(as_json)


def test_the_plan_repeats_keys_mostly_right_behind_their_first_request():
    plan = storm.plan_requests(200, 4, ["005930", "000660", "035420"], 0.3, random.Random(7))
    assert len(plan) == 200 and [request.index for request in plan] == list(range(200))
    repeats = [request for request in plan if request.original is not None]
    assert len(repeats) == 60
    for repeat in repeats:
        assert (repeat.key, repeat.user, repeat.code, repeat.body) == (
            repeat.original.key, repeat.original.user, repeat.original.code, repeat.original.body)
        assert repeat.key and repeat.original.index < repeat.index
    double_clicks = sum(1 for repeat in repeats if plan[repeat.index - 1].key == repeat.key)
    assert double_clicks >= len(repeats) // 2
    originals = [request for request in plan if request.original is None]
    assert len({request.key for request in originals if request.key}) == sum(1 for r in originals if r.key)
    assert {request.body["side"] for request in plan} == {"buy", "sell"}
    assert any(request.body["quantity"] == storm.OVERSIZED_QUANTITY for request in plan)
    assert {request.user for request in plan} == {0, 1, 2, 3}


@pytest.mark.django_db
def test_the_count_sees_a_5xx_a_double_send_a_pending_order_and_a_lost_alert(user, tmp_path):
    """The counting itself: each kind of failure is counted where it belongs."""
    account = BrokerAccountFactory(owner=user, mode=BrokerMode.PAPER, app_key="", app_secret="", account_number="")
    paper = PaperAccount.objects.create(broker_account=account)
    intent = dt.datetime(2025, 11, 24, 10, 0, tzinfo=dt.UTC)

    def order(key, status, **fields):
        return Order.objects.create(
            broker_account=account, client_order_id=manual_client_order_id(user, key), trading_date=MONDAY,
            code="005930", side="buy", quantity=1, reason=OrderReason.MANUAL, intent_at=intent, status=status,
            **fields)

    sent_twice = order("k-1", OrderStatus.SUBMITTED, broker_order_no="0000000001")
    for number in (1, 2):  # the broker got it twice
        PaperOrder.objects.create(account=paper, order_no=f"{number:010d}", client_order_id=sent_twice.client_order_id,
                                  code="005930", side="buy", order_type="01", quantity=1, trading_date=MONDAY,
                                  placed_at=intent)
    left_pending = order("k-2", OrderStatus.PENDING)
    refused = order("k-3", OrderStatus.REJECTED)  # and no alert for it
    TradingAlert.objects.create(account=account, kind=AlertKind.RISK_BLOCKED, key="order-999999",
                                message="x", details={"order": 999999}, notified_at=intent)
    answers = [
        {"index": 0, "user": 0, "key": "k-1", "status": 201, "trade_id": sent_twice.pk},
        {"index": 1, "user": 0, "key": "k-2", "status": 201, "trade_id": left_pending.pk},
        {"index": 2, "user": 0, "key": "k-3", "status": 500, "trade_id": None},
        {"index": 3, "user": 0, "key": "k-3", "status": 200, "trade_id": refused.pk},
    ]
    path = tmp_path / "answers.json"
    path.write_text(json.dumps({"setup": {"usernames": [user.username], "codes": ["005930"]}, "answers": answers}))
    counted = storm.child_count(str(path))
    details = counted["details"]
    assert details["broker_orders_beyond_one_per_order"] == 1 and counted["duplicates"] == 1
    assert details["pending_orders"] == 1 and counted["unsettled"] == 1
    assert details["refused_orders_without_alert"] == 1 and details["alerts_naming_missing_rows"] == 1
    assert counted["lost_alerts"] == 2
