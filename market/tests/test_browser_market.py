"""In a real browser: search 삼성 on 종목 검색, open 삼성전자 with the keyboard, see the chart and the
z-score panel on 종목 상세."""

import datetime as dt
import io
import re

import pytest
from django.core.management import call_command
from playwright.sync_api import expect

from market.krx import SEOUL
from market.models import DailyBar, Outlier, WeeklyAnalysis

# setup_demo's market ends "today" and it analyses the last complete week: on a Wednesday in the session
# that is the week before the last bar's, which add_weekly_analysis adds (from Saturday to Monday morning
# both are the same week).
WEDNESDAY = dt.datetime(2026, 11, 25, 13, 0, tzinfo=SEOUL)

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True), pytest.mark.time_machine(WEDNESDAY, tick=False)]


def log_in_as_demo(page, live_server):
    page.goto(f"{live_server.url}/accounts/login/")
    page.fill("input[name=login]", "demo")
    page.fill("input[name=password]", "demo-trader-2026")
    page.locator("form button[type=submit]").last.click()
    expect(page).to_have_url(f"{live_server.url}/")


def add_weekly_analysis():
    last = DailyBar.objects.filter(instrument__code="005930").order_by("-date").first()
    monday = last.date.fromordinal(last.date.toordinal() - last.date.weekday())
    week = WeeklyAnalysis.objects.create(
        instrument=last.instrument, week_start=monday, iso_week=f"{monday:%G-W%V}", trading_days=5, close=last.close,
        weekly_return=0.012, volatility=0.21, skew=0.3, kurtosis=-0.4, max_drawdown=-0.015, z_score=2.2,
    )
    Outlier.objects.create(analysis=week, date=last.date, series="close", method="zscore", value=last.close, score=2.2)


def test_search_with_the_keyboard_and_open_the_detail_page(page, live_server):
    call_command("setup_demo", symbols=3, years=1, stdout=io.StringIO())
    add_weekly_analysis()
    log_in_as_demo(page, live_server)
    page.get_by_role("link", name="종목", exact=True).click()
    expect(page.locator("h1")).to_have_text("종목 검색")
    page.wait_for_load_state("load")  # HTMX (a deferred script) is wired up before we type

    box = page.get_by_role("combobox", name="종목 검색")
    box.press_sequentially("삼성", delay=50)
    results = page.locator("#search-results")
    expect(results.get_by_role("option").first).to_contain_text("삼성전자")
    expect(results).not_to_contain_text("SK하이닉스")
    expect(page).to_have_url(re.compile(r"/market/\?q=%EC%82%BC%EC%84%B1$"))  # the URL follows the search

    box.press("ArrowDown")
    expect(page.locator("#search-option-005930")).to_have_attribute("aria-selected", "true")
    box.press("Enter")

    expect(page).to_have_url(f"{live_server.url}/market/005930/")
    expect(page.locator("h1")).to_contain_text("삼성전자")
    expect(page.locator("#price-chart canvas").first).to_be_visible()
    expect(page.locator("#zscore-panel")).to_contain_text("z-점수")
    # the candle chart (price_chart.js) drew every stored bar, the MA and band lines, the z-score pane with
    # its ±2.0 levels, and the outlier's ▲
    page.wait_for_function("window.marketCharts !== undefined")
    count = DailyBar.objects.filter(instrument__code="005930").count()
    expect(page.locator("#price-chart")).to_have_attribute("data-bars", str(count))
    assert page.evaluate("Object.keys(window.marketCharts.price.lineSeries)") == ["ma", "upper", "lower"]
    assert page.evaluate("window.marketCharts.price.oscillator.priceLines().map(l => l.options().price)") == [
        2.0, 0, -2.0]
    outlier_days = sorted({d.isoformat() for d in Outlier.objects.filter(
        analysis__instrument__code="005930").values_list("date", flat=True)})
    assert page.evaluate("window.marketCharts.price.markers.markers().map(m => m.time)") == outlier_days
    assert DailyBar.objects.filter(instrument__code="005930").latest("date").date.isoformat() in outlier_days
    # the quote box came through HTMX from the paper broker, the weekly analysis table is there
    expect(page.locator("#quote-box .quote-last")).to_be_visible()
    expect(page.locator(".analysis-table")).to_contain_text("+1.20%")

    # the period buttons: 3개월 shows the last 63 days, 전체 every bar
    page.get_by_role("button", name="3개월").click()
    expect(page.locator("#price-chart")).to_have_attribute("data-from", str(count - 63))
    page.get_by_role("button", name="전체").click()
    expect(page.locator("#price-chart")).to_have_attribute("data-from", "0")
    expect(page.locator("#price-chart")).to_have_attribute("data-to", str(count - 1))


def test_click_a_result_and_the_empty_detail_page(page, live_server):
    call_command("setup_demo", symbols=2, years=1, stdout=io.StringIO())
    DailyBar.objects.filter(instrument__code="000660").delete()
    WeeklyAnalysis.objects.filter(instrument__code="000660").delete()  # setup_demo analysed it
    log_in_as_demo(page, live_server)
    page.goto(f"{live_server.url}/market/")
    page.get_by_role("combobox", name="종목 검색").fill("ㅎㅇㄴㅅ")
    page.get_by_role("option").filter(has_text="SK하이닉스").get_by_role("link").click()
    expect(page).to_have_url(f"{live_server.url}/market/000660/")
    expect(page.locator("#no-bars")).to_be_visible()
    expect(page.locator("#no-analysis")).to_be_visible()
    expect(page.locator("canvas")).to_have_count(0)
