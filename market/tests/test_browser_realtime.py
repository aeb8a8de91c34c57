"""In a real browser, the live pages under the ASGI server (uvicorn in a thread, asgi_server.py) while
ticks, 호가 and order events are published on the bus (an InProcessBus shared with the server):
종목 상세's intraday candles, quote, 호가, VI/상한가 marks and the daily chart's last bar follow the
trades; 대시보드's holdings P&L moves and a fill shows a toast and a fresh 최근 주문; outside the
session the page says the market is closed and shows the last close. Under the WSGI live server (no
streams) the page says so and keeps the 30-second quote polling. No CSP violation anywhere (the `page`
fixture fails the test on one)."""

from __future__ import annotations

import datetime as dt
import io
import os

import pytest
from django.core.management import call_command
from playwright.sync_api import expect

from accounts.models import User
from market.kis.realtime.records import Tick
from market.krx import SEOUL, krx_calendar, price_limits
from market.models import IntradayBar
from market.streaming import events, store
from market.streaming.bus import InProcessBus, use_bus
from market.tests.asgi_server import AsgiLiveServer, wait_until

WEDNESDAY = dt.datetime(2026, 11, 25, 13, 0, tzinfo=SEOUL)
SATURDAY = dt.datetime(2026, 11, 28, 11, 0, tzinfo=SEOUL)
CODE = "005930"
SCREENSHOTS = os.environ.get("REALTIME_SCREENSHOTS", "")  # a folder: the tests save what the browser saw

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def bus():
    with use_bus(InProcessBus()) as in_process:
        yield in_process


@pytest.fixture
def server(bus):
    krx_calendar()
    with AsgiLiveServer() as running:
        yield running


@pytest.fixture
def demo_market(settings):
    settings.CELERY_TASK_ALWAYS_EAGER = True
    call_command("setup_demo", symbols=3, years=1, stdout=io.StringIO())
    return User.objects.get(username="demo")


def log_in_as_demo(page, base_url: str) -> None:
    page.goto(f"{base_url}/accounts/login/")
    page.fill("input[name=login]", "demo")
    page.fill("input[name=password]", "demo-trader-2026")
    page.locator("form button[type=submit]").last.click()
    expect(page).to_have_url(f"{base_url}/")


def won(amount: int) -> str:
    return f"{amount:,}"


def publish_ticks(bus, day: dt.date, previous_close: int, *trades: tuple[dt.time, int, int], vi: int = 0,
                  code: str = CODE) -> None:
    """One batch of trades (time, price, volume), as the streamer publishes them."""
    records = [
        events.tick_message(Tick(code=code, time=at, price=price, change=price - previous_close,
                                 change_rate=round((price - previous_close) * 100 / previous_close, 2),
                                 open=previous_close, high=price, low=price, volume=volume,
                                 cumulative_volume=10_000 + volume, cumulative_amount=price * 10_000, ask1=price,
                                 bid1=price, business_date=day, halted=False, vi_reference_price=vi,
                                 market_phase="20"), SEOUL)
        for at, price, volume in trades
    ]
    bus.publish(events.tick_channel("sim", code), events.ticks_message("sim", code, records, received=0, sent=0))


def screenshot(page, name: str) -> None:
    if SCREENSHOTS:
        page.screenshot(path=os.path.join(SCREENSHOTS, f"{name}.png"), full_page=True)


# the minutes of the intraday chart's candles, "13:00,13:01" (price_chart.js keeps the bars it draws)
CHART_MINUTES = ("(window.liveMarket.chart ? window.liveMarket.chart.bars.map("
                 "b => window.liveMarket.chart.timeText(b.time).substring(11)).join() : '')")


def live_label(page, name: str) -> str:
    return page.evaluate(f"JSON.parse(document.getElementById('live-data').textContent).labels.{name}")


@pytest.mark.time_machine(WEDNESDAY, tick=True)
def test_detail_page_follows_the_trades(server, bus, demo_market, page, settings):
    settings.REALTIME_SIM_SESSION = "market"  # Wednesday 13:00: the session is open
    today = WEDNESDAY.date()
    previous = store.previous_closes([CODE], today)[CODE]
    lower, upper = price_limits(previous)
    log_in_as_demo(page, server.url)
    page.goto(f"{server.url}/market/{CODE}/")
    wait_until(lambda: bus.subscriber_count(events.tick_channel("sim", CODE)) >= 1, timeout=15)
    page.wait_for_function("window.liveMarket && window.liveMarket.open")
    expect(page.locator("#live-status")).to_have_attribute("data-state", "waiting")
    expect(page.locator("#live-simulated")).to_be_visible()  # the paper account's stream is the simulator's

    first, second, third = previous + 500, previous + 700, previous + 300
    publish_ticks(bus, today, previous, (dt.time(13, 0, 5), first, 120), (dt.time(13, 0, 40), second, 80))
    expect(page.locator("#lq-price")).to_have_text(won(second))
    publish_ticks(bus, today, previous, (dt.time(13, 1, 2), third, 50))
    expect(page.locator("#lq-price")).to_have_text(won(third))
    expect(page.locator("#live-status")).to_have_attribute("data-state", "live")
    expect(page.locator("#quote-box")).to_be_hidden()  # the REST quote steps aside, its polling held
    assert page.evaluate("window.liveMarket.pollingHeld()") is True

    # the intraday chart: two 1-minute candles built from the trades, with their volume
    page.wait_for_function(CHART_MINUTES + " === '13:00,13:01'")
    candles = page.evaluate("window.liveMarket.candles")
    assert candles == [{"minute": "13:00", "o": first, "h": second, "l": first, "c": second, "v": 200},
                       {"minute": "13:01", "o": third, "h": third, "l": third, "c": third, "v": 50}]
    # the chart's bars (price_chart.js, updated bar by bar) are those candles; the previous close's line
    assert page.evaluate("window.liveMarket.chart.bars.map(b => [b.open, b.high, b.low, b.close, b.volume])") == [
        [first, second, first, second, 200], [third, third, third, third, 50]]
    assert page.evaluate("window.liveMarket.chart.lineValues.previous") == [previous, previous]
    assert page.evaluate("window.liveMarket.limits") == {"upper": upper, "lower": lower}

    # the daily chart's last bar (today's, from the demo market) moves with the price
    page.wait_for_function("window.marketCharts !== undefined")
    daily = page.evaluate("(() => { const b = window.marketCharts.price.lastBar(); return [b.time, b.close]; })()")
    assert daily == [today.isoformat(), third]

    # VI, then the upper limit: marked on the chart and in the quote box
    publish_ticks(bus, today, previous, (dt.time(13, 2, 0), upper, 10), vi=previous)
    expect(page.locator("#lq-flags")).to_contain_text(live_label(page, "upper_limit"))
    expect(page.locator("#lq-flags")).to_contain_text(live_label(page, "vi"))
    page.wait_for_function("window.liveMarket.chart.bars.length === 3")
    marks = page.evaluate("window.liveMarket.chart.markers.markers().map(m => [m.time, m.shape, m.text])")
    at = page.evaluate(f"PriceChart.minuteTime('{today.isoformat()}', '13:02')")
    assert marks == [[at, "circle", "VI"], [at, "arrowUp", ""]]  # VI, the upper limit, no lower limit

    # 호가: ten levels a side
    tick = upper // 1000
    bus.publish(events.book_channel("sim", CODE), {
        "type": "book", "source": "sim", "code": CODE, "t": f"{today.isoformat()}T13:02:01+09:00",
        "asks": [upper] + [0] * 9, "bids": [upper - tick * (i + 1) for i in range(10)],
        "ask_sizes": [0] * 10, "bid_sizes": [100 * (i + 1) for i in range(10)], "total_ask": 0, "total_bid": 5_500})
    expect(page.locator("#order-book")).to_be_visible()
    expect(page.locator("#order-book-rows tr")).to_have_count(20)
    expect(page.locator("#order-book-rows tr.book-bid").first).to_contain_text(won(upper - tick))
    expect(page.locator("#ob-total-bid")).to_have_text(won(5_500))
    screenshot(page, "detail_live")


@pytest.mark.time_machine(WEDNESDAY, tick=True)
def test_dashboard_pnl_moves_and_a_fill_shows_a_toast_and_the_orders(server, bus, demo_market, page, settings):
    settings.REALTIME_SIM_SESSION = "market"
    today = WEDNESDAY.date()
    log_in_as_demo(page, server.url)
    row = page.locator(f"#account-{demo_market.broker_accounts.get().pk} tr[data-code='{CODE}']")
    expect(row).to_be_visible()
    wait_until(lambda: bus.subscriber_count(events.tick_channel("sim", CODE)) >= 1, timeout=15)
    wait_until(lambda: bus.subscriber_count(events.user_channel(demo_market.pk)) >= 1)
    quantity, cost = int(row.get_attribute("data-quantity")), int(row.get_attribute("data-cost"))

    price = store.previous_closes([CODE], today)[CODE] + 1_000
    publish_ticks(bus, today, price - 1_000, (dt.time(13, 0, 1), price, 10))
    expect(row.locator("[data-live=price]")).to_contain_text(won(price))
    expect(row.locator("[data-live=value]")).to_have_text(won(price * quantity))
    expect(row.locator("[data-live=pnl]")).to_contain_text(won(price * quantity - cost))
    expect(page.locator("#live-status")).to_have_attribute("data-state", "live")

    page.evaluate("document.getElementById('recent-orders').dataset.before = 'fill'")
    bus.publish(events.user_channel(demo_market.pk), events.order_event(
        "fill", order_id=1, code=CODE, side="buy", status="filled", quantity=3, filled_quantity=3, price=price,
        fill_quantity=3))
    toast = page.locator("#toasts .toast")
    expect(toast).to_be_visible()
    expect(toast).to_contain_text(f"{CODE}")
    expect(toast).to_contain_text(won(price))
    # 최근 주문 came back from the server at once (a new element, without the mark put on the old one)
    page.wait_for_function("document.getElementById('recent-orders') && "
                           "!document.getElementById('recent-orders').dataset.before")
    expect(page.locator("#recent-orders tbody tr").first).to_be_visible()
    # the account card was read again too, and the live price put back on it
    expect(row.locator("[data-live=price]")).to_contain_text(won(price))
    screenshot(page, "dashboard_live")


@pytest.mark.time_machine(WEDNESDAY, tick=True)
def test_a_dropped_stream_reconnects_and_reports_the_gap(bus, demo_market, page, settings):
    """The server goes away (a restart): the page says it is reconnecting, comes back by itself, reports
    the gap with its times and takes the gap's candles from the stored 1-minute bars."""
    settings.REALTIME_SIM_SESSION = "market"
    krx_calendar()
    today = WEDNESDAY.date()
    previous = store.previous_closes([CODE], today)[CODE]
    first = AsgiLiveServer().start()
    port = first.port
    log_in_as_demo(page, first.url)
    page.goto(f"{first.url}/market/{CODE}/")
    wait_until(lambda: bus.subscriber_count(events.tick_channel("sim", CODE)) >= 1, timeout=15)
    publish_ticks(bus, today, previous, (dt.time(12, 58, 1), previous + 100, 5))
    expect(page.locator("#live-status")).to_have_attribute("data-state", "live")

    first.stop()  # open streams are cut: the browser's EventSource starts reconnecting
    expect(page.locator("#live-status")).to_have_attribute("data-state", "reconnecting")
    # meanwhile the streamer went on: its stored candle of the gap is what the page gets back
    IntradayBar.objects.create(source="sim", code=CODE, minute=dt.datetime(2026, 11, 25, 12, 59, tzinfo=SEOUL),
                               open=previous + 100, high=previous + 400, low=previous, close=previous + 300,
                               volume=77)
    with AsgiLiveServer(port=port):
        expect(page.locator("#live-status")).to_have_attribute("data-state", "live", timeout=20_000)
        gap = live_label(page, "gap").split("{")[0]
        expect(page.locator("#live-status")).to_contain_text(gap)
        page.wait_for_function("window.liveMarket.candles.some(c => c.minute === '12:59' && c.v === 77)")
        assert page.evaluate("window.liveMarket.gap.since") < page.evaluate("window.liveMarket.gap.until")
        page.close()  # before the server stops (its stream would hold the shutdown)


@pytest.mark.time_machine(SATURDAY, tick=True)
def test_outside_the_session_the_page_says_closed_with_the_last_close(server, bus, demo_market, page, settings):
    settings.REALTIME_SIM_SESSION = "market"
    log_in_as_demo(page, server.url)
    page.goto(f"{server.url}/market/{CODE}/")
    status = page.locator("#live-status")
    expect(status).to_have_attribute("data-state", "closed")
    last_close = page.evaluate("JSON.parse(document.getElementById('live-data').textContent).last_close")
    expect(status).to_contain_text(won(last_close))
    expect(page.locator("#quote-box .quote-last")).to_be_visible()  # the stored quote, not polled
    assert page.evaluate("window.liveMarket.pollingHeld()") is False
    screenshot(page, "detail_closed")


@pytest.mark.time_machine(WEDNESDAY, tick=True)
def test_under_wsgi_the_page_says_why_and_keeps_polling(page, live_server, demo_market):
    log_in_as_demo(page, live_server.url)
    page.goto(f"{live_server.url}/market/{CODE}/")
    status = page.locator("#live-status")
    expect(status).to_have_attribute("data-state", "unavailable")
    expect(status).to_contain_text("ASGI")
    expect(page.locator("#quote-box .quote-last")).to_be_visible()
    assert page.evaluate("window.liveMarket.pollingHeld()") is False
