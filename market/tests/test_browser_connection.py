"""In a real browser: the demo user's paper account shows the demo order's holding through the
connection test (HTMX) on the account page."""

import datetime as dt
import io

import pytest
from django.core.management import call_command
from playwright.sync_api import expect

from market.krx import SEOUL

# setup_demo's market ends "today": pinned to a Wednesday morning in the session, whatever day the test runs.
WEDNESDAY = dt.datetime(2026, 11, 25, 10, 30, tzinfo=SEOUL)

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True), pytest.mark.time_machine(WEDNESDAY, tick=False)]


def test_demo_holding_appears_after_the_connection_test(page, live_server):
    call_command("setup_demo", symbols=2, years=1, stdout=io.StringIO())
    page.goto(f"{live_server.url}/accounts/login/")
    page.fill("input[name=login]", "demo")
    page.fill("input[name=password]", "demo-trader-2026")
    page.locator("form button[type=submit]").last.click()
    page.get_by_role("link", name="계정", exact=True).click()
    page.wait_for_load_state("load")  # HTMX (a deferred script) is wired up before we click
    page.get_by_role("button", name="연결 테스트").first.click()
    result = page.locator(".connection-result")
    expect(result).to_contain_text("연결 성공")
    expect(result).to_contain_text("005930")
    expect(result).to_contain_text("삼성전자")
