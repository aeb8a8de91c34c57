"""In a real browser, a KIS account's pages fed through the whole real-time path, nothing published by hand:

    fake KIS WebSocket host (market/tests/fake_kis_ws.py, on 127.0.0.1)
      → KisSource (RealtimeSession: registration, AES key/iv, decryption) → Streamer (batching, watches)
      → bus (an InProcessBus shared with the ASGI server) → Server-Sent Events → the pages' JavaScript,

and for a fill notice, further: streamer → fill_notice_received → orders.fill_notices.apply_fill_notice →
the order's Fill → orders.live_events' "fill" event → the dashboard's toast and its re-read 최근 주문.

The dashboard (holding 005930) and 종목 상세 of 005930 are open side by side in two tabs: the dashboard's
watch keeps the symbol registered on the fake host while 종목 상세 adds its 호가, so the trades the fake
host sends reach both. The REST side (quote box, broker balance) talks to the fake KIS REST host.

The clock is pinned to a Wednesday 13:00 in Seoul (a KRX session), whatever the real day or TEST_NOW: the
pages, the fake host's business date, the order's trading date and the notice's date all read it."""

from __future__ import annotations

import asyncio
import datetime as dt
import threading

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from accounts.models import BrokerMode
from accounts.tests.factories import BrokerAccountFactory
from market.kis.models import normalize_order_no
from market.kis.realtime.records import FILL_NOTICE_TR, ORDER_BOOK_TR, TRADE_TR
from market.krx import SEOUL, krx_calendar, previous_trading_day, price_limits, trading_days
from market.streaming import events
from market.streaming.bus import InProcessBus, use_bus
from market.streaming.kis_source import KisSource
from market.streaming.streamer import Streamer
from market.tests.asgi_server import AsgiLiveServer, wait_until
from market.tests.factories import DailyBarFactory, InstrumentFactory
from market.tests.fake_kis import FAKE_ACCOUNT_NO, FAKE_APP_KEY, FAKE_APP_SECRET, FakeKisServer
from market.tests.fake_kis_ws import BASE_PRICES, FakeKisWebSocketServer
from orders.models import BrokerFillNotice, Fill, Order, OrderReason, OrderSide, OrderStatus, OrderType

WEDNESDAY = dt.datetime(2026, 11, 25, 13, 0, tzinfo=SEOUL)
CODE = "005930"
NAME = "삼성전자"
HTS_ID = "htsuser7"

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True), pytest.mark.time_machine(WEDNESDAY, tick=True)]


def won(amount: int) -> str:
    return f"{amount:,}"


class StreamerThread:
    """``manage.py stream_market``'s Streamer, KIS only, on its own event loop in a thread of the test process
    (the bus is in-process): one KisSource for the account against the fake host, from the start (its fill
    notices) and whatever the hour (``kis_hours="always"``)."""

    def __init__(self, bus: InProcessBus, ws_url: str, account_id: int, hts_id: str) -> None:
        self.bus, self.ws_url, self.account_id, self.hts_id = bus, ws_url, account_id, hts_id
        self.streamer: Streamer | None = None
        self.error: BaseException | None = None
        self._ready = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._thread = threading.Thread(target=self._thread_main, name="test-streamer", daemon=True)

    async def _source(self, account: int, callbacks: dict) -> KisSource:
        return KisSource(account, url=self.ws_url, environment="paper", approval_key=lambda: "approval",
                         hts_id=self.hts_id, backoff_min=0.05, backoff_max=0.5, **callbacks)

    async def _accounts(self) -> list[int]:
        return [self.account_id]

    async def _main(self) -> None:
        self._loop, self._stop = asyncio.get_running_loop(), asyncio.Event()
        self.streamer = Streamer(self.bus, sim=False, kis=True, kis_factory=self._source, kis_accounts=self._accounts,
                                 kis_hours="always", expire_every=0.1)
        running = asyncio.create_task(self.streamer.run(self._stop))
        await asyncio.wait_for(self.streamer.ready.wait(), 10)
        self._ready.set()
        await running

    def _thread_main(self) -> None:
        try:
            asyncio.run(self._main())
        except BaseException as error:  # reported by start() / stop()
            self.error = error
        finally:
            self._ready.set()

    def start(self) -> StreamerThread:
        self._thread.start()
        assert self._ready.wait(15), "the streamer did not start"
        if self.error is not None:
            raise self.error
        return self

    def stop(self) -> None:
        if self._loop is not None and self._stop is not None and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(15)
        assert not self._thread.is_alive(), "the streamer did not stop"
        if self.error is not None:
            raise self.error


@pytest.fixture
def kis_account(user):
    """A 모의투자 KIS account with an HTS ID (the fill-notice key), the REST side answered by the fake host."""
    return BrokerAccountFactory(owner=user, mode=BrokerMode.SIMULATED, app_key=FAKE_APP_KEY,
                                app_secret=FAKE_APP_SECRET, account_number=FAKE_ACCOUNT_NO, hts_id=HTS_ID)


@pytest.fixture
def previous_close() -> int:
    """The last stored close: the fake WebSocket host's base price, so its change figures agree with ours."""
    return BASE_PRICES[CODE]


@pytest.fixture
def market_data(db, previous_close):
    """Daily bars of 005930 up to the trading day before today (today's bar is the live one)."""
    today = timezone.now().astimezone(SEOUL).date()
    instrument = InstrumentFactory(code=CODE, name=NAME)
    days = trading_days(today - dt.timedelta(days=90), previous_trading_day(today))
    for back, day in enumerate(reversed(days)):
        close = previous_close - 100 * (back % 7)
        DailyBarFactory(instrument=instrument, date=day, open=close - 200, close=close)
    return instrument


@pytest.fixture
def hosts(settings):
    """The fake KIS hosts: REST (quote box, broker balance) and WebSocket (모의투자: H0STCNI9 notices)."""
    with FakeKisServer(mode="paper", rate_limit_per_second=None) as rest, \
            FakeKisWebSocketServer(mode="paper") as ws:
        settings.KIS_BASE_URLS = {"real": "", "paper": rest.base_url}
        yield rest, ws


@pytest.fixture
def bus():
    with use_bus(InProcessBus()) as in_process:
        yield in_process


@pytest.fixture
def streamer(bus, hosts, kis_account):
    _rest, ws = hosts
    running = StreamerThread(bus, ws.url, kis_account.pk, HTS_ID).start()
    yield running
    running.stop()


@pytest.fixture
def server(bus):
    krx_calendar()
    with AsgiLiveServer() as running:
        yield running


def make_order(account, day: dt.date, *, quantity: int, price: int, status: str, number: str, filled: bool) -> Order:
    order = Order.objects.create(
        broker_account=account, client_order_id=f"live-kis-{number}", trading_date=day, code=CODE,
        side=OrderSide.BUY, order_type=OrderType.LIMIT, quantity=quantity, price=price, reference_price=price,
        status=status, reason=OrderReason.MANUAL, broker_order_no=normalize_order_no(number),
        filled_quantity=quantity if filled else 0, filled_amount=quantity * price if filled else 0,
        average_fill_price=price if filled else 0,
        intent_at=dt.datetime.combine(day, dt.time(9, 1), tzinfo=SEOUL),
    )
    if filled:
        Fill.objects.create(order=order, cumulative_quantity=quantity, quantity=quantity, price=price,
                            amount=quantity * price, filled_at=dt.datetime.combine(day, dt.time(9, 2), tzinfo=SEOUL))
    return order


def log_in(page, base_url: str, username: str, password: str) -> None:
    page.goto(f"{base_url}/accounts/login/")
    page.fill("input[name=login]", username)
    page.fill("input[name=password]", password)
    page.locator("form button[type=submit]").last.click()
    expect(page).to_have_url(f"{base_url}/")


def watch_csp(tab, csp_violations: list[str]) -> None:
    """A second tab reports Content-Security-Policy violations as the `page` fixture's does (Chromium logs each)."""
    def on_console(message) -> None:
        if "Content Security Policy" in message.text:
            csp_violations.append(f"{tab.url}: {message.text}")

    tab.on("console", on_console)


def test_kis_ticks_move_the_chart_and_quote_and_a_fill_notice_shows_a_toast(
        server, bus, streamer, hosts, kis_account, market_data, previous_close, user, password, page, context,
        csp_violations):
    _rest, ws = hosts
    today = timezone.now().astimezone(SEOUL).date()
    lower, upper = price_limits(previous_close)
    make_order(kis_account, previous_trading_day(today), quantity=5, price=previous_close - 1_000,
               status=OrderStatus.FILLED, number="117001", filled=True)  # the holding the dashboard shows
    pending = make_order(kis_account, today, quantity=10, price=previous_close + 800, status=OrderStatus.SUBMITTED,
                         number="117057", filled=False)

    # the account's fill notices are registered on the fake host from the start, without any page
    wait_until(lambda: (FILL_NOTICE_TR["paper"], HTS_ID) in ws.active_registrations(), timeout=10)

    # 대시보드 in one tab: its watch registers 005930's trades on the account's KIS session
    dashboard = context.new_page()
    watch_csp(dashboard, csp_violations)
    log_in(dashboard, server.url, user.username, password)
    row = dashboard.locator(f"#account-{kis_account.pk} tr[data-code='{CODE}']")
    expect(row).to_have_attribute("data-quantity", "5")
    wait_until(lambda: (TRADE_TR, CODE) in ws.active_registrations(), timeout=10)
    wait_until(lambda: bus.subscriber_count(events.user_channel(user.pk)) >= 1)

    # 종목 상세 in another: its watch adds the 호가
    page.goto(f"{server.url}/market/{CODE}/")
    wait_until(lambda: (ORDER_BOOK_TR, CODE) in ws.active_registrations(), timeout=10)
    page.wait_for_function("window.liveMarket && window.liveMarket.open")
    expect(page.locator("#intraday-chart-box")).to_be_hidden()  # no candle yet today
    expect(page.locator("#live-simulated")).to_be_hidden()  # a KIS account's stream is KIS's, not the simulator

    first, second, third = previous_close + 500, previous_close + 700, previous_close + 300
    assert ws.push_ticks(CODE, 1, price=first, volume=120, time=dt.time(13, 0, 5)) == 1
    assert ws.push_ticks(CODE, 1, price=second, volume=80, time=dt.time(13, 0, 40)) == 1
    expect(page.locator("#lq-price")).to_have_text(won(second))
    expect(page.locator("#lq-change")).to_contain_text(won(second - previous_close))
    ws.push_ticks(CODE, 1, price=third, volume=50, time=dt.time(13, 1, 2))
    expect(page.locator("#lq-price")).to_have_text(won(third))
    expect(page.locator("#live-status")).to_have_attribute("data-state", "live")
    expect(page.locator("#quote-box")).to_be_hidden()  # the REST quote steps aside, its polling held
    assert page.evaluate("window.liveMarket.pollingHeld()") is True

    # the intraday chart: two 1-minute candles of the KIS trades, the previous close and the day's limits
    page.wait_for_function("window.liveMarket.chart && window.liveMarket.chart.bars.map("
                           "b => window.liveMarket.chart.timeText(b.time).substring(11)).join() === '13:00,13:01'")
    assert page.evaluate("window.liveMarket.candles") == [
        {"minute": "13:00", "o": first, "h": second, "l": first, "c": second, "v": 200},
        {"minute": "13:01", "o": third, "h": third, "l": third, "c": third, "v": 50}]
    assert page.evaluate("window.liveMarket.chart.lineValues.previous[0]") == previous_close
    assert page.evaluate("window.liveMarket.limits") == {"upper": upper, "lower": lower}
    # the daily chart's last bar is today's, at the last trade
    page.wait_for_function("window.marketCharts !== undefined")
    assert page.evaluate("(() => { const b = window.marketCharts.price.lastBar(); return [b.time, b.close]; })()") == [
        today.isoformat(), third]

    # 호가 from the fake host: ten levels a side around the last trade
    ws.push_book(CODE)
    expect(page.locator("#order-book")).to_be_visible()
    expect(page.locator("#order-book-rows tr")).to_have_count(20)
    expect(page.locator("#order-book-rows tr.book-bid").first).to_contain_text(won(third))

    # the same trades priced the dashboard's holding
    cost = int(row.get_attribute("data-cost"))
    expect(row.locator("[data-live=price]")).to_contain_text(won(third))
    expect(row.locator("[data-live=value]")).to_have_text(won(third * 5))
    expect(row.locator("[data-live=pnl]")).to_contain_text(won(third * 5 - cost))

    # KIS notifies the fill of our pending order (encrypted H0STCNI9 for the account's HTS ID)
    fill_price = previous_close + 800
    dashboard.evaluate("document.getElementById('recent-orders').dataset.before = 'fill'")
    assert ws.push_fill_notice(HTS_ID, account_no=FAKE_ACCOUNT_NO + "01", order_no=pending.broker_order_no,
                               code=CODE, quantity=10, price=fill_price, order_quantity=10,
                               order_price=pending.price, name=NAME) == 1
    toast = dashboard.locator("#toasts .toast-fill")
    expect(toast).to_be_visible()
    expect(toast).to_contain_text(f"{CODE} 매수 10주 체결 ({won(fill_price)}원)")
    # 최근 주문 came back from the server (a new element, without the mark put on the old one), the order filled
    expect(dashboard.locator("#recent-orders:not([data-before])")).to_be_attached()
    newest = dashboard.locator("#recent-orders tbody tr").first
    expect(newest.locator(".order-status")).to_have_class("order-status status-filled")
    expect(newest).to_contain_text(won(fill_price))
    # and the account card: 15 shares now
    expect(row).to_have_attribute("data-quantity", "15")

    pending.refresh_from_db()
    assert (pending.status, pending.filled_quantity, pending.average_fill_price) == (OrderStatus.FILLED, 10, fill_price)
    assert list(Fill.objects.filter(order=pending).values_list("quantity", "price")) == [(10, fill_price)]
    notice = BrokerFillNotice.objects.get()
    assert (notice.order_id, notice.source, notice.trading_date) == (pending.pk, "kis", today)
    assert streamer.streamer.notices_in == 1
    dashboard.close()  # before the server stops (its stream would hold the shutdown)
