"""In a real browser: the demo user opens 리포트, sees the plain report of the demo week with its
charts, and regenerates it with the (fake) model, whose <script> is shown as text and never runs."""

from __future__ import annotations

import datetime as dt
import io

import pytest
from django.core.management import call_command
from playwright.sync_api import expect

from market.krx import SEOUL
from reports.models import ReportStatus, WeeklyReport

# setup_demo's market ends "today": pinned to a Wednesday morning in the session, whatever day the test runs.
WEDNESDAY = dt.datetime(2026, 11, 25, 10, 30, tzinfo=SEOUL)

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True), pytest.mark.time_machine(WEDNESDAY, tick=False)]


def log_in_as_demo(page, live_server):
    page.goto(f"{live_server.url}/accounts/login/")
    page.fill("input[name=login]", "demo")
    page.fill("input[name=password]", "demo-trader-2026")
    page.locator("form button[type=submit]").last.click()
    expect(page).to_have_url(f"{live_server.url}/")


def test_the_demo_report_and_a_regeneration(page, live_server, model_settings, fake_openai, settings):
    settings.CELERY_TASK_ALWAYS_EAGER = True
    model_settings.OPENAI_API_KEY = ""  # the run command without a key
    call_command("setup_demo", symbols=3, years=1, stdout=io.StringIO())
    call_command("weekly_report", week="latest", user="demo", stdout=io.StringIO())
    report = WeeklyReport.objects.get()
    dialogs = []
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))

    log_in_as_demo(page, live_server)
    page.get_by_role("link", name="리포트", exact=True).click()
    row = page.locator(f'tr[data-week="{report.iso_week}"]')
    expect(row.locator(".status-fallback")).to_be_visible()
    row.get_by_role("link", name=report.iso_week).click()
    expect(page.locator("#report-text")).to_contain_text("기본 리포트")
    expect(page.locator("#report-trades")).to_contain_text("005930")
    page.wait_for_function("() => window.reportCharts && window.reportCharts.equity && window.reportCharts.trades")
    assert page.locator("#report-equity-chart").bounding_box()["height"] > 100

    model_settings.OPENAI_API_KEY = "sk-test-key"
    fake_openai.mode = "script"
    page.locator("#regenerate-button").click()
    expect(page.locator("#report-status .status-ok")).to_be_visible()
    expect(page.locator("#report-text")).to_contain_text('<script>alert("xss")</script>')  # text, not a tag
    assert page.locator("#report-text script, #report-text img, #report-text iframe").count() == 0
    page.wait_for_timeout(300)
    assert dialogs == []  # nothing the model wrote ever ran
    assert WeeklyReport.objects.get().status == ReportStatus.OK
