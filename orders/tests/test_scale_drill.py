"""The scale drill (orders.scale_drill): a small fan-out over real Celery workers and Redis against the
fake KIS fleet, on MariaDB/MySQL (the test database, flushed after the test), then the old loop;
and the counting of duplicates, lost orders and retries at the fake host's side."""

from __future__ import annotations

import io
import json
from types import SimpleNamespace
from urllib.parse import urlparse

import pytest
from django.conf import settings
from django.core.management import CommandError, call_command
from django.db import connection

from market.tests.fake_kis import ORDER_CASH_PATH, RATE_LIMITED, FakeKisFleet, FleetEvent
from orders import scale_drill
from orders.scratch import mysql_url


@pytest.mark.django_db(transaction=True)
def test_a_small_drill_fans_the_entry_out_without_duplicates_lost_orders_or_second_tokens():
    if connection.vendor != "mysql":
        pytest.skip("the scale drill runs on MariaDB/MySQL in CI (DATABASE_URL=mysql://…); SQLite here")
    if not settings.REDIS_URL:
        pytest.skip("the scale drill needs Redis (REDIS_URL): the Celery broker and the shared KIS pacer")
    url = mysql_url(settings.DATABASES["default"], settings.DATABASES["default"]["NAME"])
    # The drill flushes its Redis database: never the one the rest of the suite uses (REDIS_URL's).
    suite_db = int(urlparse(settings.REDIS_URL).path.strip("/") or 0)
    out = io.StringIO()
    try:
        call_command("scale_drill", accounts=20, orders_per_account=3, workers=2, sequential_accounts=5, json=True,
                     database_url=url, redis_db=13 if suite_db == 14 else 14, stdout=out)
    except CommandError as error:
        pytest.fail(f"{error}\n{out.getvalue()}")
    print(out.getvalue())
    figures = json.loads(out.getvalue().strip().splitlines()[-1])
    fanout, sequential = figures["fanout"], figures["sequential"]
    assert (figures["duplicates"], figures["lost"], figures["rate_limit_not_retried"]) == (0, 0, 0)
    # The fan-out sent every order: one dispatch, one task per account, every run complete.
    assert (figures["accounts"], figures["orders"], fanout["orders_recorded"]) == (20, 60, 60)
    assert fanout["details"]["dispatches"] == 1 and fanout["runs"] == {"complete": 20}
    assert figures["tokens_per_key"] == {"1": 20} and figures["max_tokens_per_key"] == 1
    assert figures["seconds_to_last_send"] > 0 and figures["seconds_to_last_recorded"] >= figures["seconds_to_last_send"]
    assert sequential["orders_at_broker"] == 15 and sequential["runs"] == {"complete": 5}
    assert figures["sequential_extrapolated"] and figures["sequential_seconds"] > 0


def _fleet_with(accepted: dict[int, list[tuple[str, str]]], events=()) -> FakeKisFleet:
    fleet = FakeKisFleet(latency=None)
    for index, orders in accepted.items():
        account = fleet.add_account(*scale_drill.credentials(index))
        account.tokens_issued.append("token")
        account.accepted_orders.extend({"PDNO": code, "tr_id": "TTTC0012U", "ODNO": number} for code, number in orders)
    fleet.events.extend(events)
    return fleet


def _facts(rows: dict[int, list[tuple[str, str, str]]]) -> dict:
    return {"runs": {"complete": len(rows)}, "accounts": [
        {"account_number": scale_drill.credentials(index)[2], "orders": [
            {"code": code, "status": status, "broker_order_no": number, "answered_at": None}
            for code, status, number in orders]} for index, orders in rows.items()]}


def test_the_count_sees_a_double_send_an_order_not_at_the_broker_one_not_recorded_and_one_not_planned():
    fleet = _fleet_with({0: [("990001", "0000000001"), ("990001", "0000000002"), ("990002", "0000000003")],
                         1: [("990001", "0000000004")]})
    facts = _facts({0: [("990001", "submitted", "0000000001"), ("990002", "submitted", "0000000003")],
                    1: [("990001", "pending", ""), ("990002", "unknown", "")]})
    figures = scale_drill.count_phase(fleet, facts, 0.0, [], 2, [0, 1])
    assert figures.details["broker_orders_beyond_one_per_intent"] == 1  # 990001 bought twice for account 0
    assert figures.duplicates == 1
    # Account 0: its second 990001 order is at the broker but no order records it; account 1: two orders
    # planned that never reached the broker, while the broker has one that no order records.
    assert figures.details["at_broker_not_recorded"] == 2
    assert figures.details["planned_not_at_broker"] == 2
    assert figures.details["not_planned"] == 0
    assert figures.lost == 4 and not figures.ok


def test_a_rate_limit_answer_counts_as_retried_only_when_the_same_request_was_answered_later():
    key = scale_drill.credentials(0)[0]

    def event(digest, outcome, at):
        return FleetEvent(key, "POST", ORDER_CASH_PATH, digest, outcome, at, at)

    fleet = _fleet_with({0: [("990001", "0000000001")]}, [
        event("a", RATE_LIMITED, 1.0), event("a", "ok", 1.5),  # retried and answered
        event("b", "ok", 0.5), event("b", RATE_LIMITED, 2.0),  # answered before, refused after: not retried
    ])
    assert fleet.rate_limit_answers() == (2, 1)
    figures = scale_drill.count_phase(fleet, _facts({0: [("990001", "submitted", "0000000001")]}), 0.0,
                                      [(1, 1.6)], 1, [0])
    assert (figures.rate_limit_answers, figures.rate_limit_not_retried, figures.lost) == (2, 1, 0)
    assert figures.seconds_to_last_recorded == 1.6 and not figures.ok


def test_a_key_with_two_tokens_fails_the_drill():
    fleet = _fleet_with({0: [("990001", "0000000001")], 1: [("990001", "0000000002")]})
    fleet.accounts[scale_drill.credentials(1)[0]].tokens_issued.append("second")
    facts = _facts({0: [("990001", "submitted", "0000000001")], 1: [("990001", "submitted", "0000000002")]})
    figures = scale_drill.count_phase(fleet, facts, 0.0, [], 1, [0, 1])
    assert figures.tokens_per_key == {"1": 1, "2": 1}
    assert figures.keys_with_more_than_one_token == 1 and not figures.ok


def test_the_fleet_routes_each_app_key_to_its_own_account_with_its_own_limit_and_token(monkeypatch):
    import time

    import requests

    # The host's clock for its limits stands still: every request falls in the same second and minute.
    monkeypatch.setattr("market.tests.fake_kis.time", SimpleNamespace(monotonic=lambda: 1_000.0, time=time.time))
    with FakeKisFleet(latency=None) as fleet:
        first, second = scale_drill.credentials(0), scale_drill.credentials(1)
        for credentials in (first, second):
            fleet.add_account(*credentials)
        tokens = {}
        for app_key, secret, _ in (first, second):
            answer = requests.post(f"{fleet.base_url}/oauth2/tokenP", timeout=5, json={
                "grant_type": "client_credentials", "appkey": app_key, "appsecret": secret})
            assert answer.status_code == 200
            tokens[app_key] = answer.json()["access_token"]
        again = requests.post(f"{fleet.base_url}/oauth2/tokenP", timeout=5, json={
            "grant_type": "client_credentials", "appkey": first[0], "appsecret": first[1]})
        assert again.json()["error_code"] == "EGW00133"  # one issuance per key per minute, like KIS

        def balance(credentials, token):
            return requests.get(f"{fleet.base_url}/uapi/domestic-stock/v1/trading/inquire-balance", timeout=5,
                                headers={"appkey": credentials[0], "appsecret": credentials[1], "custtype": "P",
                                         "authorization": f"Bearer {token}", "tr_id": "TTTC8434R"},
                                params={"CANO": credentials[2], "ACNT_PRDT_CD": "01", "INQR_DVSN": "01",
                                        "AFHR_FLPR_YN": "N", "OFL_YN": "", "UNPR_DVSN": "01",
                                        "FUND_STTL_ICLD_YN": "N", "FNCG_AMT_AUTO_RDPT_YN": "N", "PRCS_DVSN": "00",
                                        "CTX_AREA_FK100": "", "CTX_AREA_NK100": ""})

        answers = [balance(first, tokens[first[0]]).json()["msg_cd"] for _ in range(21)]
        assert answers[20] == "EGW00201" and answers.count("EGW00201") == 1  # the 21st: KIS's 20/s per key
        assert balance(second, tokens[second[0]]).json()["rt_cd"] == "0"  # another key has its own budget
        assert balance(second, tokens[first[0]]).json()["msg_cd"] == "EGW00121"  # a token is its key's only
    assert fleet.tokens_issued() == {first[0]: 1, second[0]: 1}
    assert fleet.rate_limit_answers() == (1, 1)  # the same request was answered before, never after
