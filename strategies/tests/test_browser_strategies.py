"""In a real browser: the demo user creates a strategy (the parameter fields follow the chosen
strategy through HTMX) and activates it; runs a mean-reversion backtest on 005930, 000660 and 035720
over the last two years from 백테스트 and sees the metrics cards, the equity chart next to
buy-and-hold and a sortable trades table."""

import datetime as dt
import io
import os
import re

import pytest
from django.core.management import call_command
from playwright.sync_api import expect

from market.krx import SEOUL
from strategies.models import BacktestRun, StrategyConfig

# setup_demo's market ends "today": pinned to a Wednesday morning in the session, whatever day the test runs.
WEDNESDAY = dt.datetime(2026, 11, 25, 10, 30, tzinfo=SEOUL)

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True), pytest.mark.time_machine(WEDNESDAY, tick=False)]

SCREENSHOT_DIR = os.environ.get("SCREENSHOT_DIR")


@pytest.fixture(autouse=True)
def eager(settings):
    settings.CELERY_TASK_ALWAYS_EAGER = True


def log_in_as_demo(page, live_server):
    page.goto(f"{live_server.url}/accounts/login/")
    page.fill("input[name=login]", "demo")
    page.fill("input[name=password]", "demo-trader-2026")
    page.locator("form button[type=submit]").last.click()
    expect(page).to_have_url(f"{live_server.url}/")


def test_create_and_activate_a_strategy(page, live_server):
    call_command("setup_demo", symbols=3, years=1, stdout=io.StringIO())
    log_in_as_demo(page, live_server)
    for config in StrategyConfig.objects.all():  # setup_demo's demo strategy and its replayed history
        config.orders.all().delete()
        config.delete()  # start from the empty page
    page.get_by_role("link", name="전략", exact=True).click()
    expect(page.locator("#no-configs")).to_contain_text("아직 전략이 없습니다")
    page.get_by_role("link", name="새 전략").click()

    expect(page.locator("#param-fields")).to_contain_text("Z 임계값")
    page.wait_for_load_state("load")  # HTMX (a deferred script) is wired up before we change the select
    page.locator("select[name=strategy_key]").select_option("rsi")
    expect(page.locator("#param-fields")).to_contain_text("RSI 기간")  # swapped in by HTMX
    expect(page.locator("#param-fields")).not_to_contain_text("Z 임계값")

    page.get_by_label("이름").fill("RSI 주간")
    page.get_by_label("RSI 기간").fill("1")
    page.get_by_label("유니버스").select_option("codes")
    page.get_by_label("종목코드").fill("005930, 000660")
    page.locator("#config-form").evaluate("form => form.noValidate = true")  # let the server check the bounds
    page.get_by_role("button", name="저장").click()
    expect(page.locator("#field-param_period .errorlist")).to_contain_text("2 이상 100 이하")
    page.get_by_label("RSI 기간").fill("10")
    page.get_by_role("button", name="저장").click()
    expect(page).to_have_url(f"{live_server.url}/strategies/")

    row = page.locator("tr.config-row").filter(has_text="RSI 주간")
    expect(row).to_contain_text("RSI 역추세")
    expect(row.locator(".badge")).to_have_text("비활성")
    row.get_by_role("button", name="활성화").click()
    expect(row.locator(".badge")).to_have_text("활성")  # HTMX swapped the row
    config = StrategyConfig.objects.get(name="RSI 주간")
    assert config.is_active and config.params["period"] == 10


def test_run_a_mean_reversion_backtest_from_the_page(page, live_server):
    # four demo symbols: 035720 (카카오) is the demo market's fourth
    call_command("setup_demo", symbols=4, years=3, stdout=io.StringIO())
    log_in_as_demo(page, live_server)
    page.get_by_role("link", name="전략", exact=True).click()
    page.get_by_role("link", name="백테스트", exact=True).first.click()
    expect(page.locator("h1")).to_have_text("백테스트")
    expect(page.locator("#no-runs")).to_be_visible()

    form = page.locator("#backtest-form")
    page.wait_for_load_state("load")  # HTMX (a deferred script) is wired up before we change the select
    form.locator("select[name=strategy_key]").select_option("rsi")
    expect(form.locator("#param-fields")).to_contain_text("RSI 기간")
    form.locator("select[name=strategy_key]").select_option("mean_reversion")
    expect(form.locator("#param-fields")).to_contain_text("Z 임계값")
    form.get_by_label("종목코드").fill("005930,000660,035720")
    # the default period is the last two years up to the last stored bar
    start, end = form.get_by_label("시작일").input_value(), form.get_by_label("종료일").input_value()
    assert int(end[:4]) - int(start[:4]) == 2 and end[4:] == start[4:]
    form.get_by_role("button", name="백테스트 실행").click()

    expect(page).to_have_url(re.compile(r"/strategies/backtests/[0-9]+/$"))
    run = BacktestRun.objects.get()
    assert page.url == f"{live_server.url}/strategies/backtests/{run.pk}/"
    assert run.status == "done" and run.codes == ["005930", "000660", "035720"]
    cards = page.locator("#metric-cards")
    expect(cards).to_be_visible()
    expect(cards.locator("[data-metric=total_return] .metric-value")).to_have_text(
        f"{run.metrics['total_return'] * 100:+.2f}%"
    )
    expect(cards.locator("[data-metric=total_return] .metric-benchmark")).to_contain_text("매수 후 보유")
    expect(cards.locator("[data-metric=max_drawdown] .metric-dates").first).to_be_visible()
    expect(page.locator("canvas#equity-chart")).to_be_visible()
    expect(page.locator("canvas#drawdown-chart")).to_be_visible()
    page.wait_for_function("window.backtestCharts && window.backtestCharts.run !== null")
    assert page.evaluate("Chart.getChart('equity-chart').data.datasets.length") == 2  # strategy, buy-and-hold
    assert page.evaluate("Chart.getChart('equity-chart').data.labels.length") == len(run.equity)
    expect(page.locator("#monthly-returns")).to_be_visible()

    if run.trades:
        table = page.locator("#trades-table")
        expect(table.locator("tbody tr")).to_have_count(len(run.trades))
        table.get_by_role("button", name="수익률").click()
        expect(table.locator("th").filter(has_text="수익률")).to_have_attribute("aria-sort", "ascending")
        values = table.locator("tbody tr td:nth-child(10)").evaluate_all(
            "cells => cells.map(c => parseFloat(c.dataset.value))"
        )
        assert values == sorted(values)
        table.get_by_role("button", name="수익률").click()
        expect(table.locator("th").filter(has_text="수익률")).to_have_attribute("aria-sort", "descending")
    else:
        expect(page.locator("#no-trades")).to_be_visible()

    if SCREENSHOT_DIR:
        page.set_viewport_size({"width": 1280, "height": 900})
        page.screenshot(path=os.path.join(SCREENSHOT_DIR, "backtest_run.png"), full_page=True)
