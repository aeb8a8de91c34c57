"""Reports API: owner only, sanitised HTML, OpenAPI-documented."""

from __future__ import annotations

import pytest
from rest_framework.test import APIClient

from reports.models import WeeklyReport
from reports.services import generate_report

from .conftest import AFTER_THE_WEEK, WEEK

pytestmark = pytest.mark.django_db


@pytest.fixture
def api(user):
    client = APIClient()
    client.force_authenticate(user)
    return client


@pytest.fixture
def report(traded_week, user, no_model):
    return generate_report(user, WEEK, now=AFTER_THE_WEEK).report


def test_requires_authentication():
    client = APIClient()
    assert client.get("/api/reports/").status_code == 401
    assert client.get(f"/api/reports/{WEEK}/").status_code == 401


def test_list(api, report):
    body = api.get("/api/reports/").json()
    assert body["count"] == 1
    [item] = body["results"]
    assert item["week"] == WEEK and item["status"] == "fallback" and item["url"] == f"/api/reports/{WEEK}/"
    assert item["summary"]["return_pct"] == report.facts["portfolio"]["return_pct"]
    assert item["summary"]["trades"] == 4 and "facts" not in item and "text" not in item


def test_detail(api, report):
    body = api.get(f"/api/reports/{WEEK}/").json()
    assert body["week"] == WEEK and body["text"] == report.text and body["facts"] == report.facts
    assert "<h2>요약</h2>" in body["html"] and body["unverified_numbers"] == []
    assert body["prompt_tokens"] == 0 and body["cost_usd"] is None


def test_detail_html_is_sanitised(api, report):
    WeeklyReport.objects.filter(pk=report.pk).update(text="<script>alert(1)</script>")
    body = api.get(f"/api/reports/{WEEK}/").json()
    assert body["text"] == "<script>alert(1)</script>" and "<script" not in body["html"]


def test_owner_only(other_user, report):
    client = APIClient()
    client.force_authenticate(other_user)
    assert client.get("/api/reports/").json()["count"] == 0
    assert client.get(f"/api/reports/{WEEK}/").status_code == 404


def test_unknown_or_malformed_week(api, report):
    assert api.get("/api/reports/2025-W01/").status_code == 404
    assert api.get("/api/reports/latest/").status_code == 404


def test_documented_in_the_schema(api):
    schema = api.get("/api/schema/", HTTP_ACCEPT="application/json").json()
    assert "/api/reports/" in schema["paths"] and "/api/reports/{week}/" in schema["paths"]
    detail = schema["paths"]["/api/reports/{week}/"]["get"]
    assert detail["operationId"] == "reports_retrieve" and "404" in detail["responses"]
