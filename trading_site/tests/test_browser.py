"""The site shell in a real browser (Debian's Chromium through Playwright) against the live server."""

import datetime as dt
import re

import pytest
import time_machine
from playwright.sync_api import expect

from accounts.tests.factories import UserFactory
from accounts.tests.second_factor import add_totp, totp_code

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def log_in(page, live_server, username, password):
    page.goto(f"{live_server.url}/accounts/login/")
    page.fill("input[name=login]", username)
    page.fill("input[name=password]", password)
    page.locator("form button[type=submit]").last.click()


def test_login_dashboard_language_switch_logout(page, live_server):
    user = UserFactory(password="Browser-pass-2026")
    log_in(page, live_server, user.username, "Browser-pass-2026")

    expect(page).to_have_url(f"{live_server.url}/")
    expect(page.locator("h1")).to_have_text("대시보드")
    nav = page.get_by_role("navigation")
    for label in ("대시보드", "종목", "전략", "주문", "리포트", "계정"):
        expect(nav.get_by_role("link", name=label, exact=True)).to_be_visible()
    assert page.evaluate("typeof window.htmx") == "object"  # HTMX served from our static files
    assert page.evaluate("typeof window.Chart") == "function"

    page.select_option("#language-select", "en")
    expect(page.locator("h1")).to_have_text("Dashboard")
    expect(page.locator("html")).to_have_attribute("lang", "en")

    page.select_option("#language-select", "ko")
    expect(page.locator("h1")).to_have_text("대시보드")

    page.locator("#logout-button").click()
    expect(page).to_have_url(re.compile(r"/accounts/login/"))
    page.goto(f"{live_server.url}/")
    expect(page).to_have_url(re.compile(r"/accounts/login/\?next=/"))


def test_wrong_password_shows_an_error(page, live_server):
    user = UserFactory(password="Browser-pass-2026")
    log_in(page, live_server, user.username, "not-the-password")
    expect(page).to_have_url(re.compile(r"/accounts/login/"))
    expect(page.locator(".errorlist, .alert, [role=alert]").first).to_be_visible()


def test_broker_account_page_masks_the_account_number(page, live_server):
    """Keys are added with the second factor: the login's code, then — minutes later — asked again, and
    the form that was sent goes through once it is confirmed."""
    user = UserFactory(password="Browser-pass-2026")
    secret = add_totp(user)
    log_in(page, live_server, user.username, "Browser-pass-2026")
    expect(page).to_have_url(re.compile(r"/accounts/2fa/authenticate/"))
    page.fill("input[name=code]", totp_code(secret))
    page.locator("form:has(input[name=code]) button[type=submit]").first.click()
    expect(page.locator("h1")).to_have_text("대시보드")
    # Six minutes later: the login's second factor is now older than STEP_UP_SECONDS.
    with time_machine.travel(dt.datetime.now(dt.UTC) + dt.timedelta(minutes=6), tick=True):
        page.get_by_role("link", name="계정", exact=True).click()
        page.get_by_role("link", name="증권 계좌 추가").click()
        page.fill("input[name=name]", "모의투자 계좌")
        page.select_option("select[name=mode]", "simulated")
        page.fill("input[name=app_key]", "PSBROWSERKEY123")
        page.fill("input[name=app_secret]", "browser-secret")
        page.fill("input[name=account_number]", "50123456")
        page.locator("form.form button[type=submit]").click()
        expect(page).to_have_url(re.compile(r"/accounts/2fa/reauthenticate/"))
        page.fill("input[name=code]", totp_code(secret))
        page.locator("form:has(input[name=code]) button[type=submit]").first.click()
        expect(page.locator("table")).to_contain_text("5012****-01")
    assert "50123456" not in page.content()
