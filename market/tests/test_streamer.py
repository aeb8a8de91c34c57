"""The streaming process (market.streaming.streamer and the stream_market command): watches, batching, the
simulator and a KIS source against the fake KIS WebSocket server, end to end on a bus."""

import asyncio
import datetime as dt
import io
import socket
import threading
import time

import pytest
from django.core.management import CommandError, call_command

from market.kis.realtime.records import FILL_NOTICE_TR, ORDER_BOOK_TR, TRADE_TR, OrderBook, Tick
from market.models import IntradayBar
from market.streaming import events
from market.streaming.bus import InProcessBus, LocalBus, serve_local_bus, use_bus
from market.streaming.kis_source import KisSource
from market.streaming.signals import fill_notice_received
from market.streaming.streamer import Streamer
from market.tests.factories import DailyBarFactory, InstrumentFactory
from market.tests.fake_kis_ws import FakeKisWebSocketServer

HTS_ID = "htsuser1"


def watch(client="page-1", source="sim", account=None, codes=("005930",), books=(), ttl=30):
    return events.watch_message(client=client, user=1, account=account, source=source, codes=codes, books=books,
                                ttl=ttl)


def tick(code="005930", price=70_000, volume=3, at=dt.time(10, 0, 1)):
    return Tick(code=code, time=at, price=price, change=price - 69_000, change_rate=1.45, open=69_500,
                high=price, low=69_400, volume=volume, cumulative_volume=1_000, cumulative_amount=70_000_000,
                ask1=price + 100, bid1=price, business_date=dt.date(2026, 12, 7), halted=False,
                vi_reference_price=0, market_phase="20")


def book(code="005930", best_ask=70_100):
    return OrderBook(code=code, time=dt.time(10, 0, 1), asks=tuple(best_ask + 100 * n for n in range(10)),
                     bids=tuple(best_ask - 100 * (n + 1) for n in range(10)), ask_sizes=(10,) * 10,
                     bid_sizes=(20,) * 10, total_ask_size=100, total_bid_size=200, expected_price=0,
                     expected_volume=0)


async def closes(codes, day):
    return {code: 70_000 for code in codes}


async def no_accounts():
    return []


def streamer_for(bus, **options):
    options.setdefault("kis", False)
    options.setdefault("store_candles", False)
    options.setdefault("load_closes", closes)
    options.setdefault("kis_accounts", no_accounts)
    options.setdefault("kis_hours", "always")  # the fake KIS host streams whatever the hour
    return Streamer(bus, **options)


async def receive(subscription, predicate, timeout=5.0):
    """The first message that satisfies ``predicate`` (others are skipped)."""
    deadline = time.monotonic() + timeout
    while True:
        channel, message = await asyncio.wait_for(subscription.__anext__(), max(0.01, deadline - time.monotonic()))
        if predicate(channel, message):
            return channel, message


# ------------------------------------------------------------------------------------------ watches
def test_watches_define_what_is_wanted_and_expire_unless_renewed():
    streamer = streamer_for(InProcessBus())
    now = time.monotonic()
    streamer.handle_watch(watch("a", codes=["005930", "000660"], books=["005930"], ttl=10))
    streamer.handle_watch(watch("b", codes=["000660", "035720"], ttl=60))
    streamer.handle_watch(watch("c", source="kis", account=7, codes=["005930"]))
    assert streamer.wanted("sim") == (["000660", "005930", "035720"], ["005930"])
    assert streamer.wanted("kis", 7) == (["005930"], [])
    assert streamer.expire_watches(now + 20) == ["a"]  # a's ttl passed, b's did not
    assert streamer.wanted("sim") == (["000660", "035720"], [])
    streamer.handle_watch(watch("b", codes=["000660", "035720"], ttl=60))  # renewed
    assert streamer.expire_watches(now + 40) == ["c"]
    assert streamer.wanted("sim") == (["000660", "035720"], [])
    streamer.handle_watch(watch("b", codes=[]))  # a page leaving sends an empty watch
    assert streamer.watches == {}


def test_malformed_watches_are_ignored():
    streamer = streamer_for(InProcessBus())
    streamer.handle_watch({"type": "watch", "client": "x"})  # no source
    streamer.handle_watch(watch(source="nasdaq"))
    streamer.handle_watch(watch(source="kis", account=None))
    streamer.handle_watch({**watch(), "ttl": "forever"})
    streamer.handle_watch(watch(codes=["005930; DROP", "12345", "005930"]))
    assert list(streamer.watches) == ["page-1"] and streamer.watches["page-1"].codes == ("005930",)


def test_a_symbol_wanted_through_several_kis_accounts_is_registered_on_one_session():
    streamer = streamer_for(InProcessBus())
    streamer.handle_watch(watch("a", source="kis", account=2, codes=["005930", "000660"]))
    streamer.handle_watch(watch("b", source="kis", account=1, codes=["005930"], books=["005930"]))
    assert streamer._kis_plan() == {1: (["005930"], ["005930"]), 2: (["000660"], [])}
    streamer.handle_watch(watch("c", source="kis", account=3, codes=["005930"]))
    assert streamer._kis_plan()[3] == ([], [])  # already carried by account 1's session
    streamer.handle_watch(watch("b", codes=[]))  # account 1's page leaves: another session takes it over
    plan = streamer._kis_plan()
    assert 1 not in plan and sorted(plan[2][0] + plan[3][0]) == ["000660", "005930"]


# ------------------------------------------------------------------------------------------ batching
def test_trades_are_batched_per_symbol_and_books_sent_at_most_every_interval():
    bus = InProcessBus()
    streamer = streamer_for(bus, book_interval=10.0)

    async def main():
        channels = [events.tick_channel("kis", "005930"), events.tick_channel("kis", "000660"),
                    events.book_channel("kis", "005930")]
        async with bus.subscribe(channels) as subscription:
            streamer.on_tick("kis", tick(price=70_000), received=1000.0)
            streamer.on_tick("kis", tick(code="000660", price=180_000), received=1000.1)
            streamer.on_tick("kis", tick(price=70_100, volume=5), received=1000.2)
            streamer.on_book("kis", book(best_ask=70_100), received=1000.2)
            streamer.on_book("kis", book(best_ask=70_200), received=1000.3)  # only the latest goes out
            streamer.flush()
            streamer.on_book("kis", book(best_ask=70_300), received=1000.4)
            streamer.flush()  # within the book interval: held back
            await asyncio.sleep(0)
            return [subscription.queue.get_nowait() for _ in range(subscription.queue.qsize())]

    received = asyncio.run(main())
    by_channel = {channel: message for channel, message in received}
    assert len(received) == 3
    samsung = by_channel[events.tick_channel("kis", "005930")]
    assert [t["p"] for t in samsung["ticks"]] == [70_000, 70_100] and samsung["ticks"][1]["v"] == 5
    assert samsung["received"] == 1000.0 and samsung["sent"] > 1000.0 and samsung["source"] == "kis"
    assert samsung["ticks"][0]["t"] == "2026-12-07T10:00:01+09:00"
    assert by_channel[events.book_channel("kis", "005930")]["asks"][0] == 70_200
    assert streamer.ticks_out == 3 and streamer.books_out == 1
    assert streamer.candles["kis"].current("005930").volume == 8


# ------------------------------------------------------------------------------------------ the simulator
def test_a_watched_symbol_streams_from_the_simulator(settings):
    settings.REALTIME_SIM_SESSION = "always"
    bus = InProcessBus()
    streamer = streamer_for(bus, sim_ticks_per_second=40, sim_interval=0.05, expire_every=0.1, sim_seed=3)

    async def main():
        stop = asyncio.Event()
        running = asyncio.create_task(streamer.run(stop))
        channels = [events.tick_channel("sim", "005930"), events.book_channel("sim", "005930"), events.STATUS_CHANNEL]
        async with bus.subscribe(channels) as subscription:
            await asyncio.wait_for(streamer.ready.wait(), 5)
            bus.publish(events.CONTROL_CHANNEL, watch(codes=["005930"], books=["005930"]))
            _, status = await receive(subscription, lambda c, m: m["type"] == "status")
            _, ticks = await receive(subscription, lambda c, m: m["type"] == "ticks")
            _, book_message = await receive(subscription, lambda c, m: m["type"] == "book")
        stop.set()
        await asyncio.wait_for(running, 10)
        return status, ticks, book_message

    status, ticks, book_message = asyncio.run(main())
    assert (status["source"], status["state"], status["account"]) == ("sim", "connected", None)
    assert ticks["code"] == "005930" and ticks["ticks"] and ticks["sent"] >= ticks["received"]
    assert 49_000 <= ticks["ticks"][0]["p"] <= 91_000  # within the limits around the 70,000 close
    assert book_message["code"] == "005930" and len(book_message["asks"]) == 10


@pytest.mark.django_db(transaction=True)
def test_candles_of_the_stream_are_stored_with_the_prices_from_the_database(settings):
    settings.REALTIME_SIM_SESSION = "always"
    DailyBarFactory(instrument=InstrumentFactory(code="005930"), date=dt.date(2020, 1, 2), close=50_000)
    bus = InProcessBus()
    streamer = Streamer(bus, kis=False, sim_ticks_per_second=40, sim_interval=0.05, expire_every=0.1)

    async def main():
        stop = asyncio.Event()
        running = asyncio.create_task(streamer.run(stop))
        async with bus.subscribe([events.tick_channel("sim", "005930")]) as subscription:
            await asyncio.wait_for(streamer.ready.wait(), 5)
            bus.publish(events.CONTROL_CHANNEL, watch(codes=["005930"]))
            _, ticks = await receive(subscription, lambda c, m: True)
        stop.set()
        await asyncio.wait_for(running, 10)
        return ticks

    ticks = asyncio.run(main())
    assert 35_000 <= ticks["ticks"][0]["p"] <= 65_000
    bars = list(IntradayBar.objects.filter(source="sim", code="005930"))
    assert bars and streamer.candles_stored >= len(bars)
    assert all(35_000 <= bar.low <= bar.high <= 65_000 for bar in bars)
    assert sum(bar.volume for bar in bars) >= sum(t["v"] for t in ticks["ticks"])


def test_a_failing_source_is_reported_and_started_again(settings):
    settings.REALTIME_SIM_SESSION = "always"
    bus = InProcessBus()
    calls = []

    async def flaky_closes(codes, day):
        calls.append(codes)
        if len(calls) == 1:
            raise ConnectionError("database went away")
        return {code: 70_000 for code in codes}

    async def broken_factory(account, callbacks):
        raise RuntimeError("no keys")

    streamer = streamer_for(bus, load_closes=flaky_closes, sim_interval=0.05, expire_every=0.1,
                            sim_ticks_per_second=40, kis=True, kis_factory=broken_factory)

    async def main():
        stop = asyncio.Event()
        running = asyncio.create_task(streamer.run(stop))
        async with bus.subscribe([events.STATUS_CHANNEL, events.tick_channel("sim", "005930")]) as subscription:
            await asyncio.wait_for(streamer.ready.wait(), 5)
            bus.publish(events.CONTROL_CHANNEL, watch(codes=["005930"]))
            bus.publish(events.CONTROL_CHANNEL, watch("kis-page", source="kis", account=9, codes=["005930"]))
            seen = []
            # every status until the simulator's trades come back
            await receive(subscription, lambda c, m: seen.append(m) or m["type"] == "ticks", timeout=10)
        stop.set()
        await asyncio.wait_for(running, 10)
        return seen

    seen = asyncio.run(main())
    [sim_down, *_] = [m for m in seen if m.get("state") == "closed" and m["source"] == "sim"]
    [kis_down, *_] = [m for m in seen if m.get("state") == "closed" and m["source"] == "kis"]
    assert "중단" in sim_down["message"] and kis_down["account"] == 9 and "no keys" in kis_down["message"]
    assert len(calls) >= 2


# ------------------------------------------------------------------------------------------ KIS
@pytest.mark.django_db(transaction=True)
def test_a_kis_account_streams_trades_books_and_fill_notices_and_survives_a_dropped_connection():
    bus = InProcessBus()
    notices = []

    def on_notice(sender, account_id, notice, source, **kwargs):
        notices.append((account_id, notice.code, notice.quantity, source, threading.current_thread().name))

    fill_notice_received.connect(on_notice, dispatch_uid="test_streamer.notice")
    with FakeKisWebSocketServer() as server:

        async def factory(account, callbacks):
            return KisSource(account, url=server.url, environment="real", approval_key=lambda: "approval",
                             hts_id=HTS_ID, backoff_min=0.05, backoff_max=0.2, **callbacks)

        async def accounts():
            return [1]

        streamer = streamer_for(bus, kis=True, sim=False, kis_factory=factory, kis_accounts=accounts,
                                expire_every=0.1)
        notice_key = (FILL_NOTICE_TR["real"], HTS_ID)

        async def until(predicate, timeout=5.0):
            deadline = time.monotonic() + timeout
            while not predicate():
                assert time.monotonic() < deadline, "condition not met in time"
                await asyncio.sleep(0.02)

        async def main():
            stop = asyncio.Event()
            running = asyncio.create_task(streamer.run(stop))
            channels = [events.tick_channel("kis", "005930"), events.book_channel("kis", "005930"),
                        events.STATUS_CHANNEL]
            async with bus.subscribe(channels) as subscription:
                await asyncio.wait_for(streamer.ready.wait(), 5)
                # the fill-notice registration is on from the start, without any page
                await until(lambda: notice_key in server.active_registrations())
                bus.publish(events.CONTROL_CHANNEL, watch(source="kis", account=1, codes=["005930"],
                                                          books=["005930"], ttl=1))
                await until(lambda: (TRADE_TR, "005930") in server.active_registrations())
                assert (ORDER_BOOK_TR, "005930") in server.active_registrations()
                await asyncio.to_thread(server.push_ticks, "005930", 3)
                _, ticks = await receive(subscription, lambda c, m: m["type"] == "ticks")
                await asyncio.to_thread(server.push_book, "005930")
                _, book_message = await receive(subscription, lambda c, m: m["type"] == "book")
                await asyncio.to_thread(server.push_fill_notice, HTS_ID, code="005930", quantity=7)
                await until(lambda: notices)

                await asyncio.to_thread(server.drop_connections)
                _, gap = await receive(subscription, lambda c, m: m.get("state") == "gap")
                await until(lambda: (TRADE_TR, "005930") in server.active_registrations())
                await asyncio.to_thread(server.push_ticks, "005930", 1)
                _, after = await receive(subscription, lambda c, m: m["type"] == "ticks")

                # the page stops renewing its watch: the symbol is unregistered, the notices stay
                await until(lambda: (TRADE_TR, "005930") not in server.active_registrations(), timeout=5)
                assert notice_key in server.active_registrations()
            stop.set()
            await asyncio.wait_for(running, 10)
            return ticks, book_message, gap, after

        try:
            ticks, book_message, gap, after = asyncio.run(main())
        finally:
            fill_notice_received.disconnect(dispatch_uid="test_streamer.notice")
    assert ticks["source"] == "kis" and len(ticks["ticks"]) == 3 and ticks["received"] <= ticks["sent"]
    assert book_message["code"] == "005930" and len(book_message["bids"]) == 10
    assert notices == [(1, "005930", 7, "kis", notices[0][4])] and notices[0][4] != "MainThread"
    assert gap["account"] == 1 and gap["since"] and gap["until"] and gap["since"] <= gap["until"]
    assert len(after["ticks"]) == 1


@pytest.mark.django_db(transaction=True)
def test_stream_market_makes_a_kis_accounts_source_from_the_database(settings):
    from accounts.models import BrokerMode
    from accounts.tests.factories import BrokerAccountFactory
    from market.management.commands.stream_market import kis_factory
    from market.tests.factories import PaperBrokerAccountFactory
    from market.tests.fake_kis import FAKE_ACCOUNT_NO, FAKE_APP_KEY, FAKE_APP_SECRET, FakeKisServer

    account = BrokerAccountFactory(mode=BrokerMode.SIMULATED, app_key=FAKE_APP_KEY, app_secret=FAKE_APP_SECRET,
                                   account_number=FAKE_ACCOUNT_NO, hts_id=HTS_ID)
    paper = PaperBrokerAccountFactory()
    statuses = []
    callbacks = {"on_tick": lambda *a: None, "on_book": lambda *a: None, "on_notice": lambda *a: None,
                 "on_status": statuses.append}
    with FakeKisServer(mode="paper", rate_limit_per_second=None) as rest, \
            FakeKisWebSocketServer(approval_keys=rest, mode="paper") as ws:
        settings.KIS_BASE_URLS = {"real": "", "paper": rest.base_url}
        settings.KIS_WS_URLS = {"real": "ws://127.0.0.1:9", "paper": ws.url}  # 모의투자 → the paper host

        async def main():
            assert await kis_factory(paper.pk, callbacks) is None
            assert await kis_factory(999_999, callbacks) is None
            source = await kis_factory(account.pk, callbacks)
            running = asyncio.create_task(source.run())
            deadline = time.monotonic() + 10
            while (FILL_NOTICE_TR["paper"], HTS_ID) not in ws.active_registrations():
                assert time.monotonic() < deadline, "the fill notices were not registered"
                await asyncio.sleep(0.05)
            await source.close()
            await asyncio.wait_for(running, 5)
            return source

        source = asyncio.run(main())
    assert source.environment == "paper" and source.account == account.pk
    assert rest.approval_keys_issued  # the key came from the site's KIS client over HTTP
    assert "connected" in [s.state for s in statuses]


# ------------------------------------------------------------------------------------------ the command
def test_stream_market_runs_for_a_while_and_stops(settings):
    settings.REALTIME_SIM_SESSION = "always"
    settings.REALTIME_BUS = "inprocess"
    out = io.StringIO()
    with use_bus(InProcessBus()):
        started = time.monotonic()
        call_command("stream_market", "--once-for", "0.5", "--no-kis", stdout=out)
    assert time.monotonic() - started < 10
    output = out.getvalue()
    assert "streamer started" in output and "bus: inprocess" in output and "KIS accounts: disabled" in output
    assert "streamer stopped" in output


def _free_ports():
    sockets = [socket.socket() for _ in range(2)]
    for sock in sockets:
        sock.bind(("127.0.0.1", 0))
    ports = tuple(sock.getsockname()[1] for sock in sockets)
    for sock in sockets:
        sock.close()
    return ports


@pytest.mark.django_db
def test_stream_market_hosts_the_local_bus_and_refuses_a_second_host(settings):
    settings.REALTIME_SIM_SESSION = "always"
    settings.REALTIME_BUS = "local"
    settings.REALTIME_LOCAL_BUS_PORTS = ports = _free_ports()
    out = io.StringIO()
    with use_bus(LocalBus(ports)):
        call_command("stream_market", "--once-for", "0.3", stdout=out)
        assert f"127.0.0.1:{ports[0]}→{ports[1]}" in out.getvalue() and "KIS accounts: none" in out.getvalue()
        with serve_local_bus(ports), pytest.raises(CommandError, match="another streamer"):
            call_command("stream_market", "--once-for", "0.3", stdout=io.StringIO())
    with serve_local_bus(ports):  # the command gave the ports back when it stopped
        pass


def test_outside_krx_hours_no_kis_session_is_opened_and_the_pages_hear_why():
    """Nothing connects to KIS outside the hours (a Saturday; a weekday evening); at 08:30 on a trading day
    (30 minutes before the open) the fill-notice session opens, and at the evening it closes again."""
    from market.streaming.streamer import KIS_CLOSED_MESSAGE, kis_hours_open

    seoul = dt.timezone(dt.timedelta(hours=9))
    assert not kis_hours_open(dt.datetime(2026, 12, 12, 10, 0, tzinfo=seoul))  # Saturday
    assert not kis_hours_open(dt.datetime(2026, 12, 7, 8, 29, tzinfo=seoul))
    assert kis_hours_open(dt.datetime(2026, 12, 7, 8, 30, tzinfo=seoul))
    assert kis_hours_open(dt.datetime(2026, 12, 7, 16, 0, tzinfo=seoul))
    assert not kis_hours_open(dt.datetime(2026, 12, 7, 16, 1, tzinfo=seoul))
    assert kis_hours_open(dt.datetime(2027, 1, 4, 9, 30, tzinfo=seoul))  # first session of 2027 opens at 10:00
    assert not kis_hours_open(dt.datetime(2027, 1, 4, 9, 29, tzinfo=seoul))

    bus = InProcessBus()
    now = [dt.datetime(2026, 12, 7, 8, 0, tzinfo=seoul)]
    made = []

    class Source:
        environment = "real"
        refused: dict = {}

        def __init__(self):
            self.closed = asyncio.Event()

        async def run(self):
            await self.closed.wait()

        async def close(self):
            self.closed.set()

        async def set_wanted(self, codes, books):
            return []

    async def factory(account, callbacks):
        made.append(account)
        return Source()

    async def accounts():
        return [5]

    streamer = streamer_for(bus, kis=True, sim=False, kis_factory=factory, kis_accounts=accounts,
                            kis_hours="market", clock=lambda: now[0], expire_every=0.05)

    async def main():
        stop = asyncio.Event()
        running = asyncio.create_task(streamer.run(stop))
        async with bus.subscribe([events.STATUS_CHANNEL]) as subscription:
            await asyncio.wait_for(streamer.ready.wait(), 5)
            bus.publish(events.CONTROL_CHANNEL, watch(source="kis", account=5, codes=["005930"]))
            _, closed = await receive(subscription, lambda c, m: m.get("state") == "market_closed")
            assert made == [] and streamer.kis == {}
            now[0] = dt.datetime(2026, 12, 7, 8, 30, tzinfo=seoul)
            for _ in range(100):
                if 5 in streamer.kis:
                    break
                await asyncio.sleep(0.02)
            opened = list(made)
            now[0] = dt.datetime(2026, 12, 7, 17, 0, tzinfo=seoul)
            for _ in range(100):
                if not streamer.kis:
                    break
                await asyncio.sleep(0.02)
            still_open = dict(streamer.kis)
        stop.set()
        await asyncio.wait_for(running, 10)
        return closed, opened, still_open

    closed, opened, still_open = asyncio.run(main())
    assert closed["account"] == 5 and closed["message"] == KIS_CLOSED_MESSAGE
    assert opened == [5]  # the hours began: one session for the account
    assert still_open == {}  # the hours ended: closed again
