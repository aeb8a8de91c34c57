"""The week's live-vs-backtest comparison (orders.drift) in the report: in the facts the model gets and
in the plain report, with every number traceable to the facts."""

from __future__ import annotations

import json

import pytest
import time_machine

from orders.drift import compare_week
from orders.models import Fill
from reports.facts import build_facts
from reports.llm import build_messages
from reports.rendering import check_numbers
from reports.services import fallback_text

from .conftest import AFTER_THE_WEEK, FRIDAY, MONDAY, WEEK, StubStrategy

pytestmark = pytest.mark.django_db


@pytest.fixture
def drifted_week(traded_week, config, monkeypatch):
    """The traded week compared with its backtest after one week-end sale lost its fill."""
    monkeypatch.setattr("orders.drift.create_strategy", lambda key, params: StubStrategy())
    code = traded_week["bought"][-1]
    Fill.objects.get(order__config=config, order__code=code, order__side="sell").delete()
    with time_machine.travel(AFTER_THE_WEEK, tick=False):
        drift = compare_week(config, MONDAY)
    assert drift.missing_count == 1 and drift.alert
    return {**traded_week, "drift": drift, "missing_code": code}


def test_the_facts_carry_the_weeks_drift(drifted_week, user):
    facts = build_facts(user, WEEK, now=AFTER_THE_WEEK)
    [entry] = facts["drift"]
    drift = drifted_week["drift"]
    assert entry["strategy"] == "주간 평균회귀"
    assert (entry["matched_trades"], entry["missing_trades"], entry["extra_trades"]) == (3, 1, 0)
    assert (entry["pnl_gap"], entry["pnl_gap_bps"], entry["alert"]) == (drift.pnl_gap_krw, drift.gap_bps, True)
    assert entry["alert_threshold_bps"] == 100
    [difference] = entry["differences"]
    assert (difference["code"], difference["date"], difference["side"]) == (
        drifted_week["missing_code"], FRIDAY.isoformat(), "매도")
    assert difference["kind"].startswith("백테스트에만") and difference["name"]
    assert '"drift":' in build_messages(facts)[1]["content"]  # the model is handed the comparison


def test_the_plain_report_mentions_the_drift_with_checked_numbers(drifted_week, user):
    facts = build_facts(user, WEEK, now=AFTER_THE_WEEK)
    text = fallback_text(facts)
    assert "## 실거래 vs 백테스트" in text
    assert f"차이 {drifted_week['drift'].pnl_gap_krw:+,}원" in text and "누락 1건" in text and "**경고**" in text
    assert check_numbers(text, facts) == []


def test_a_week_not_compared_has_no_drift_section(traded_week, user):
    facts = build_facts(user, WEEK, now=AFTER_THE_WEEK)
    assert facts["drift"] == []
    assert "실거래 vs 백테스트" not in fallback_text(facts)
    json.dumps(facts)
