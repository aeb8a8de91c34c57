"""The Content-Security-Policy in a real browser: the main pages, HTMX, Chart.js, the admin and Swagger UI
work under it with no violation (the `page` fixture in conftest.py fails a test on any), Kakao login's
POST still reaches Kakao, and a violation is really caught."""

from __future__ import annotations

import datetime as dt
import io
import re
from zoneinfo import ZoneInfo

import pytest
import time_machine
from allauth.socialaccount.models import SocialApp
from django.contrib import admin
from django.contrib.sites.models import Site
from django.core.management import call_command
from playwright.sync_api import expect

from accounts.models import User
from accounts.tests.second_factor import add_totp, totp_code
from market.models import DailyBar
from reports.models import WeeklyReport
from strategies.models import BacktestRun
from strategies.services import create_backtest_run, execute_backtest_run

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def log_in_as_demo(page, live_server, totp_secret: str):
    """The password, then the authenticator app's code (the demo user is staff here: the admin needs it)."""
    page.goto(f"{live_server.url}/accounts/login/")
    page.fill("input[name=login]", "demo")
    page.fill("input[name=password]", "demo-trader-2026")
    page.locator("form button[type=submit]").last.click()
    expect(page).to_have_url(f"{live_server.url}/accounts/2fa/authenticate/")
    page.fill("input[name=code]", totp_code(totp_secret))
    page.locator("form:has(input[name=code]) button[type=submit]").first.click()
    expect(page).to_have_url(f"{live_server.url}/")


class FakeRequest:
    """Enough of a request for ModelAdmin.has_add_permission."""

    def __init__(self, user):
        self.user = user


def chart_drawn(page, canvas_id: str) -> None:
    """Chart.js drew on the canvas: a chart object with data, on a canvas with a size."""
    page.wait_for_function(f"window.Chart && Chart.getChart({canvas_id!r}) !== undefined")
    assert page.evaluate(f"Chart.getChart({canvas_id!r}).data.datasets[0].data.length") > 0
    assert page.evaluate(f"document.getElementById({canvas_id!r}).width") > 0


@pytest.fixture
def demo_site(settings):
    """setup_demo's user (made a superuser, for the admin), market and history, its weekly report and a
    finished backtest run; on a Wednesday morning in the session, whatever day the test runs."""
    settings.CELERY_TASK_ALWAYS_EAGER = True
    settings.OPENAI_API_KEY = ""
    with time_machine.travel(dt.datetime(2026, 11, 25, 10, 30, tzinfo=ZoneInfo("Asia/Seoul")), tick=False):
        call_command("setup_demo", symbols=3, years=1, stdout=io.StringIO())
        call_command("weekly_report", week="latest", user="demo", stdout=io.StringIO())
        demo = User.objects.get(username="demo")
        demo.is_staff = demo.is_superuser = True
        demo.save(update_fields=["is_staff", "is_superuser"])
        demo.totp_secret = add_totp(demo)  # staff reach the admin with a second factor
        end = DailyBar.objects.order_by("-date").values_list("date", flat=True).first()
        run = create_backtest_run(
            demo, strategy_key="mean_reversion", params={}, codes=["005930", "000660"],
            start=end - dt.timedelta(days=300), end=end,
        )
        execute_backtest_run(run)
        yield demo


def test_main_pages_admin_and_api_docs_run_under_the_policy(page, live_server, demo_site):
    failed = []
    page.on("response", lambda r: failed.append(f"{r.status} {r.url}") if r.status >= 400 else None)
    dialogs = []
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))

    response = page.goto(f"{live_server.url}/accounts/login/")
    policy = response.headers["content-security-policy"]
    assert "default-src 'self'" in policy and "unsafe-eval" not in policy
    log_in_as_demo(page, live_server, demo_site.totp_secret)

    # 대시보드: the equity line (static/js/dashboard.js, formerly an inline script)
    chart_drawn(page, "equity-chart")

    # 종목 검색 (HTMX as you type) and 종목 상세 with its charts and the quote box loaded over HTMX
    page.goto(f"{live_server.url}/market/")
    page.wait_for_load_state("load")
    page.get_by_role("combobox", name="종목 검색").press_sequentially("삼성", delay=30)
    expect(page.locator("#search-results").get_by_role("option").first).to_contain_text("삼성전자")
    page.goto(f"{live_server.url}/market/005930/")
    # the candle chart (Lightweight Charts, price_chart.js): its bars set, its canvases sized
    page.wait_for_function("window.marketCharts !== undefined")
    assert int(page.locator("#price-chart").get_attribute("data-bars")) > 0
    assert page.evaluate("document.querySelector('#price-chart canvas').width") > 0
    expect(page.locator("#quote-box")).to_be_visible()

    # 전략: the list, the form whose parameter fields HTMX swaps, the backtests and a run's charts
    page.goto(f"{live_server.url}/strategies/")
    expect(page.locator("h1")).to_be_visible()
    page.goto(f"{live_server.url}/strategies/new/")
    page.wait_for_load_state("load")
    page.locator("select[name=strategy_key]").select_option("rsi")
    expect(page.locator("#param-fields")).to_contain_text("RSI 기간")
    page.goto(f"{live_server.url}/strategies/backtests/")
    run = BacktestRun.objects.get()
    page.goto(f"{live_server.url}/strategies/backtests/{run.pk}/")
    chart_drawn(page, "equity-chart")
    chart_drawn(page, "drawdown-chart")
    expect(page.locator("#monthly-returns")).to_be_visible()

    # 주문: filtering goes through HTMX and the URL follows
    page.goto(f"{live_server.url}/orders/")
    page.wait_for_load_state("load")
    page.locator("select[name=side]").select_option("buy")
    expect(page).to_have_url(re.compile(r"side=buy"))

    # 리포트: the list and a report with its two charts
    report = WeeklyReport.objects.get()
    page.goto(f"{live_server.url}/reports/")
    page.goto(f"{live_server.url}/reports/{report.iso_week}/")
    chart_drawn(page, "report-equity-chart")
    chart_drawn(page, "report-trades-chart")

    # 계정: the delete button asks first (data-confirm in static/js/site.js, formerly onsubmit)
    account = demo_site.broker_accounts.first()
    page.goto(f"{live_server.url}/accounts/broker-accounts/{account.pk}/")
    page.locator("form.danger-zone button[type=submit]").click()
    expect(page).to_have_url(f"{live_server.url}/accounts/broker-accounts/{account.pk}/")
    assert len(dialogs) == 1  # dismissed: nothing deleted
    assert demo_site.broker_accounts.filter(pk=account.pk).exists()

    # the admin: the index, every model's list and add form (Django's widgets, django-celery-beat's
    # periodic task form), a change form
    paths = ["", f"accounts/user/{demo_site.pk}/change/"]
    for model, model_admin in admin.site._registry.items():
        base = f"{model._meta.app_label}/{model._meta.model_name}/"
        paths.append(base)
        if model_admin.has_add_permission(FakeRequest(demo_site)):
            paths.append(base + "add/")
    assert len(paths) > 30
    for path in paths:
        page.goto(f"{live_server.url}/admin/{path}")
        expect(page.locator("#content")).to_be_visible()

    # Swagger UI draws the operations from the schema
    page.goto(f"{live_server.url}/api/docs/")
    expect(page.locator(".swagger-ui .info .title")).to_contain_text("KIS Weekly Trader API")
    expect(page.locator(".opblock").first).to_be_visible()

    # the 404 page is the site's, under the same policy
    response = page.goto(f"{live_server.url}/no-such-page/")
    assert response.status == 404 and "content-security-policy" in response.headers
    expect(page.locator("h1")).to_have_text("찾을 수 없음")

    assert failed == [f"404 {live_server.url}/no-such-page/"]  # no missing script, style or icon


def test_kakao_login_post_reaches_kakao(page, live_server):
    """form-action allows Kakao's OAuth pages: Chromium checks the redirect after the POST against it."""
    app = SocialApp.objects.create(provider="kakao", name="Kakao", client_id="browser-test-client", secret="")
    app.sites.add(Site.objects.get_current())
    reached = []

    def fake_kakao(route):
        reached.append(route.request.url)
        route.fulfill(status=200, content_type="text/html", body="<h1>kakao</h1>")

    page.route(re.compile(r"https://(kauth|accounts)\.kakao\.com/.*"), fake_kakao)
    page.goto(f"{live_server.url}/accounts/kakao/login/?process=login")
    page.locator("form button[type=submit]").last.click()
    expect(page.locator("h1")).to_have_text("kakao")
    assert reached and reached[0].startswith("https://kauth.kakao.com/oauth/authorize?")
    assert "client_id=browser-test-client" in reached[0]


def test_a_violation_is_caught(page, live_server, csp_violations):
    response = page.goto(f"{live_server.url}/accounts/login/")
    assert "script-src 'self'" in response.headers["content-security-policy"]
    page.evaluate("""() => {
        const script = document.createElement("script");
        script.textContent = "window.injected = true";
        document.body.appendChild(script);
    }""")
    for _ in range(50):  # the console message arrives asynchronously
        if csp_violations:
            break
        page.wait_for_timeout(50)
    assert page.evaluate("window.injected === undefined")  # the inline script never ran
    assert any("script-src" in violation for violation in csp_violations), csp_violations
    csp_violations.clear()  # seen and expected: the fixture's final check passes
