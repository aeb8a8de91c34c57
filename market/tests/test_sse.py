"""The Server-Sent Events endpoints under a real ASGI server (uvicorn on 127.0.0.1, see asgi_server.py):
login, the per-user limit and its release on disconnect, events forwarded by name, watch heartbeats on
rt:control, one user's order events never reaching another, and the coalescing of a slow client."""

from __future__ import annotations

import asyncio
import datetime as dt
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
import time_machine
from django.test import Client

from accounts.tests.factories import BrokerAccountFactory
from market.kis.realtime.records import Tick
from market.krx import SEOUL, krx_calendar, price_limits
from market.models import IntradayBar
from market.streaming import events, sse
from market.streaming.bus import InProcessBus, use_bus
from market.tests.asgi_server import AsgiLiveServer, SseClient, wait_until
from market.tests.factories import InstrumentFactory, PaperBrokerAccountFactory

pytestmark = pytest.mark.django_db(transaction=True)

CODE = "005930"
SATURDAY_NIGHT = dt.datetime(2026, 12, 12, 23, 30, tzinfo=SEOUL)


class RecordingBus(InProcessBus):
    """The in-process bus, remembering what was published (the watch heartbeats)."""

    def __init__(self) -> None:
        super().__init__()
        self.published: list[tuple[str, dict]] = []
        self._guard = threading.Lock()

    def publish(self, channel, message):
        with self._guard:
            self.published.append((channel, dict(message)))
        super().publish(channel, message)

    def watches(self) -> list[dict]:
        with self._guard:
            return [m for channel, m in self.published if channel == events.CONTROL_CHANNEL]


@pytest.fixture(scope="module")
def server():
    krx_calendar()  # as trading_site.asgi does at start: built once, not inside a stream's first request
    with AsgiLiveServer() as running:
        yield running


@pytest.fixture
def bus():
    with use_bus(RecordingBus()) as recording:
        yield recording


@pytest.fixture
def instrument():
    return InstrumentFactory(code=CODE, name="삼성전자")


@pytest.fixture(autouse=True)
def simulated_session_always(settings):
    settings.REALTIME_SIM_SESSION = "always"


def session_of(user) -> str:
    client = Client()
    client.force_login(user)
    return client.cookies["sessionid"].value


def subscribed(bus: InProcessBus, channel: str, count: int = 1):
    wait_until(lambda: bus.subscriber_count(channel) >= count)


def tick(price: int, change: int, *, volume: int = 10, vi: int = 0) -> dict:
    record = Tick(code=CODE, time=dt.time(10, 15, 3), price=price, change=change,
                  change_rate=round(change * 100 / (price - change), 2), open=price - 100, high=price + 200,
                  low=price - 300, volume=volume, cumulative_volume=1_000 + volume, cumulative_amount=price * 1_000,
                  ask1=price + 100, bid1=price, business_date=dt.date(2026, 12, 14), halted=False,
                  vi_reference_price=vi, market_phase="20")
    return events.tick_message(record, SEOUL)


def ticks(*records: dict, source: str = "sim") -> dict:
    return events.ticks_message(source, CODE, records, received=1.0, sent=1.1)


def in_thread(function, *args):
    """Run in a thread of its own: once a browser test ran, Playwright's event loop runs in the test thread
    for the rest of the session, and neither asyncio.run nor Django's async-to-sync work there."""
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(function, *args).result()


def open_streams(user, limit: int) -> int:
    return in_thread(asyncio.run, sse.open_streams(user.pk, limit))


# ------------------------------------------------------------------------------------------ refusals
def test_a_stream_needs_a_login(server, instrument):
    for path in (f"/stream/market/{CODE}/", "/stream/dashboard/"):
        stream = SseClient(server.url, path)
        assert stream.status == 401
        assert stream.json()["detail"]
        stream.close()


def test_under_wsgi_the_stream_is_refused_not_held(user, instrument):
    """The test client (like the WSGI live server) would have to hold a thread per stream forever."""
    client = Client()
    client.force_login(user)
    response = in_thread(client.get, f"/stream/market/{CODE}/")
    assert response.status_code == 204  # an EventSource does not come back after a 204
    probe = in_thread(client.get, f"/stream/market/{CODE}/?probe=1")
    assert probe.json()["available"] is False
    assert "ASGI" in probe.json()["detail"]


def test_unknown_symbol_and_foreign_or_malformed_watch(server, bus, user, other_user):
    foreign = PaperBrokerAccountFactory(owner=other_user)
    session = session_of(user)
    unknown = SseClient(server.url, "/stream/market/999999/", session=session)
    assert unknown.status == 404
    unknown.close()
    for query, status in ((f"watch={foreign.pk}:{CODE}", 404), ("watch=abc", 400), ("watch=1:12", 400)):
        stream = SseClient(server.url, f"/stream/dashboard/?{query}", session=session)
        assert stream.status == status, query
        assert stream.json()["detail"]
        stream.close()
    assert open_streams(user, 6) == 0


# ------------------------------------------------------------------------------------------ forwarding
def test_market_stream_forwards_ticks_book_and_status_by_name(server, bus, user, instrument):
    stream = SseClient(server.url, f"/stream/market/{CODE}/", session=session_of(user))
    assert stream.status == 200
    assert stream.headers["Content-Type"].startswith("text/event-stream")
    assert stream.headers["Cache-Control"] == "no-cache"
    assert stream.headers["X-Accel-Buffering"] == "no"
    name, status = stream.next_event()
    assert (name, status["state"], status["source"], status["origin"]) == ("status", "open", "sim", "web")
    assert stream.retry == sse.RETRY_MILLISECONDS
    subscribed(bus, events.tick_channel("sim", CODE))

    bus.publish(events.STATUS_CHANNEL, events.status_message("kis", "gap", account=999))  # another source
    bus.publish(events.tick_channel("kis", CODE), ticks(tick(1, 0), source="kis"))  # not this page's source
    bus.publish(events.tick_channel("sim", CODE), ticks(tick(70_500, 500), tick(70_600, 600, volume=3)))
    bus.publish(events.book_channel("sim", CODE), {"type": "book", "source": "sim", "code": CODE,
                                                    "asks": [70_600] * 10, "bids": [70_500] * 10,
                                                    "ask_sizes": [1] * 10, "bid_sizes": [2] * 10,
                                                    "total_ask": 10, "total_bid": 20})
    bus.publish(events.STATUS_CHANNEL, events.status_message("sim", "connected", message="ok"))

    # one subscription per kind (market data; order events and status), so the order holds within each
    got = [stream.next_event() for _ in range(3)]
    assert [name for name, _ in got if name != "status"] == ["ticks", "book"]
    received = dict(got)
    data = received["ticks"]
    assert [t["p"] for t in data["ticks"]] == [70_500, 70_600]
    lower, upper = price_limits(70_000)
    assert data["limits"] == {"previous_close": 70_000, "lower": lower, "upper": upper}
    assert stream.last_id and stream.last_id.isdigit()
    assert (received["book"]["bids"][0], received["book"]["total_bid"]) == (70_500, 20)
    assert (received["status"]["source"], received["status"]["state"]) == ("sim", "connected")
    stream.close()


def test_keep_alive_comments_on_a_quiet_stream(server, bus, user, instrument, monkeypatch):
    monkeypatch.setattr(sse, "KEEPALIVE_SECONDS", 0.1)
    stream = SseClient(server.url, f"/stream/market/{CODE}/", session=session_of(user))
    stream.next_event()
    subscribed(bus, events.tick_channel("sim", CODE))
    wait_until(lambda: stream.response.readline() == b": keep-alive\n")
    stream.close()


def test_outside_the_session_the_first_status_says_market_closed(server, bus, user, instrument, settings):
    settings.REALTIME_SIM_SESSION = "market"
    with time_machine.travel(SATURDAY_NIGHT, tick=True):
        stream = SseClient(server.url, f"/stream/market/{CODE}/", session=session_of(user))
        name, status = stream.next_event()
        stream.close()
    assert (name, status["state"], status["source"]) == ("status", "market_closed", "sim")
    assert status["message"]


def test_a_reconnect_gets_the_stored_candles_of_the_gap(server, bus, user, instrument):
    today = dt.datetime.now(SEOUL).date()
    minute = dt.datetime.combine(today, dt.time(9, 1), tzinfo=SEOUL)
    IntradayBar.objects.create(source="sim", code=CODE, minute=minute, open=70_000, high=70_300, low=69_900,
                               close=70_100, volume=1_234)
    IntradayBar.objects.create(source="kis", code=CODE, minute=minute, open=1, high=1, low=1, close=1, volume=1)
    stream = SseClient(server.url, f"/stream/market/{CODE}/", session=session_of(user),
                       headers={"Last-Event-ID": "1"})
    name, bars = stream.next_event_of("bars")
    stream.close()
    assert bars["bars"] == [{"minute": "09:01", "open": 70_000, "high": 70_300, "low": 69_900, "close": 70_100,
                             "volume": 1_234}]


def test_dashboard_forwards_the_holdings_ticks_per_account_source(server, bus, user, instrument):
    paper = PaperBrokerAccountFactory(owner=user)
    kis = BrokerAccountFactory(owner=user)
    stream = SseClient(server.url, f"/stream/dashboard/?watch={paper.pk}:{CODE}&watch={kis.pk}:000660",
                       session=session_of(user))
    assert stream.status == 200
    opening = [stream.next_event()[1] for _ in range(2)]
    assert {(s["source"], s["account"], tuple(s["accounts"])) for s in opening} == {
        ("sim", None, (paper.pk,)), ("kis", kis.pk, (kis.pk,))}
    subscribed(bus, events.tick_channel("kis", "000660"))
    bus.publish(events.tick_channel("sim", CODE), ticks(tick(70_500, 500)))
    name, data = stream.next_event()
    assert (name, data["source"], data["code"]) == ("ticks", "sim", CODE)
    stream.close()


# ------------------------------------------------------------------------------------------ heartbeats
def test_watch_heartbeats_while_open_and_an_empty_watch_after(server, bus, user, instrument, monkeypatch):
    monkeypatch.setattr(sse, "WATCH_TTL_SECONDS", 0.3)  # renewed every 0.1 s
    stream = SseClient(server.url, f"/stream/market/{CODE}/", session=session_of(user))
    stream.next_event()
    beats = wait_until(lambda: [w for w in bus.watches() if w["codes"]] if len(bus.watches()) >= 3 else None)
    first = beats[0]
    assert (first["type"], first["user"], first["source"], first["account"]) == ("watch", user.pk, "sim", None)
    assert (first["codes"], first["books"], first["ttl"]) == ([CODE], [CODE], 0.3)
    assert len({w["client"] for w in beats}) == 1  # one watcher, renewed
    stream.close()
    last = wait_until(lambda: next((w for w in bus.watches() if w["ttl"] == 0), None))
    assert (last["client"], last["codes"], last["books"]) == (first["client"], [], [])


# ------------------------------------------------------------------------------------------ limits
def test_per_user_stream_limit_and_release_on_disconnect(server, bus, user, other_user, instrument, settings):
    settings.REALTIME_MAX_STREAMS_PER_USER = 2
    session = session_of(user)
    path = f"/stream/market/{CODE}/"
    first, second = SseClient(server.url, path, session=session), SseClient(server.url, path, session=session)
    assert (first.status, second.status) == (200, 200)
    first.next_event(), second.next_event()

    refused = SseClient(server.url, path, session=session)
    assert refused.status == 429
    assert "2" in refused.json()["detail"]
    refused.close()
    probe = SseClient(server.url, path + "?probe=1", session=session)
    assert probe.status == 429
    probe.close()
    other = SseClient(server.url, path, session=session_of(other_user))  # a limit per user, not for all
    assert other.status == 200
    other.close()

    first.close()  # the browser tab goes away: the server sees the disconnect and frees the slot
    wait_until(lambda: open_streams(user, 2) == 1)
    again = SseClient(server.url, path, session=session)
    assert again.status == 200
    again.next_event()
    again.close()
    second.close()
    wait_until(lambda: open_streams(user, 2) == 0)
    wait_until(lambda: bus.subscriber_count(events.tick_channel("sim", CODE)) == 0)


def test_a_probe_answers_without_holding_a_slot(server, bus, user, instrument):
    probe = SseClient(server.url, f"/stream/market/{CODE}/?probe=1", session=session_of(user))
    assert (probe.status, probe.json()) == (200, {"available": True, "detail": "ok"})
    probe.close()
    assert open_streams(user, 6) == 0


# ------------------------------------------------------------------------------------------ user events
def test_order_events_reach_only_their_owner(server, bus, user, other_user):
    mine = SseClient(server.url, "/stream/dashboard/", session=session_of(user))
    theirs = SseClient(server.url, "/stream/dashboard/", session=session_of(other_user))
    assert (mine.status, theirs.status) == (200, 200)
    subscribed(bus, events.user_channel(user.pk))
    subscribed(bus, events.user_channel(other_user.pk))

    fill = events.order_event("fill", order_id=11, code=CODE, side="buy", status="filled", quantity=3,
                              filled_quantity=3, price=70_000, fill_quantity=3, message="체결")
    bus.publish(events.user_channel(user.pk), fill)
    bus.publish(events.user_channel(other_user.pk), {**fill, "type": "order", "order_id": 22, "status": "submitted"})

    name, data = mine.next_event_of("fill", "order")
    assert (name, data["order_id"], data["fill_quantity"]) == ("fill", 11, 3)
    # the other user's first order event is their own: user 1's fill, published before it, never came
    name, data = theirs.next_event_of("fill", "order")
    assert (name, data["order_id"]) == ("order", 22)
    mine.close()
    theirs.close()


# ------------------------------------------------------------------------------------------ coalescing
def test_a_slow_client_gets_coalesced_events_never_an_unbounded_backlog():
    pending = sse.Pending()
    channel = events.tick_channel("sim", CODE)
    fill = events.order_event("fill", order_id=1, code=CODE, side="buy", status="filled", quantity=1,
                              filled_quantity=1, price=100, fill_quantity=1)
    pending.add(channel, ticks(tick(70_000, 0)))
    pending.add(events.user_channel(1), fill)
    for n in range(1, sse.MAX_TICKS_PER_EVENT + 50):
        pending.add(channel, ticks(tick(70_000 + n * 100, n * 100)))
    for bid in (1, 2, 3):
        pending.add(events.book_channel("sim", CODE), {"type": "book", "bids": [bid]})
    pending.add(events.STATUS_CHANNEL, events.status_message("sim", "reconnecting"))
    pending.add(events.STATUS_CHANNEL, events.status_message("sim", "connected"))
    pending.add(events.user_channel(1), {**fill, "order_id": 2})
    pending.add("rt:other", {"type": "unknown"})

    items = pending.take()
    assert [m["type"] for m in items] == ["ticks", "fill", "book", "status", "fill"]
    coalesced = items[0]
    assert len(coalesced["ticks"]) == sse.MAX_TICKS_PER_EVENT
    assert coalesced["dropped"] == 50
    assert coalesced["ticks"][-1]["p"] == 70_000 + (sse.MAX_TICKS_PER_EVENT + 49) * 100  # the newest kept
    assert items[2]["bids"] == [3]
    assert items[3]["state"] == "connected"
    assert [m["order_id"] for m in items if m["type"] == "fill"] == [1, 2]
    assert not pending and pending.take() == []


def test_a_bus_message_is_encoded_once_for_every_stream_and_copies_encode_their_own():
    shared = ticks(tick(70_500, 500))
    first, second = sse.Pending(), sse.Pending()
    first.add(events.tick_channel("sim", CODE), shared)
    second.add(events.tick_channel("sim", CODE), shared)
    one, = first.take()
    other, = second.take()
    assert one is shared and other is shared  # nothing merged: the bus's own dict
    event = sse.sse_event("ticks", one, "1")
    assert sse.sse_event("ticks", other, "1") == event
    assert shared[sse.ENCODED] in event  # the data line was made once and kept with the message
    assert b"\\u0000" not in event and sse.ENCODED.encode() not in event

    limited = sse._with_limits(shared, {})
    assert sse.ENCODED not in limited  # a stream's own copy does not inherit the shared encoding
    assert b'"limits"' in sse.sse_event("ticks", limited) and b'"limits"' not in event


def test_without_the_cache_a_stream_is_refused_with_a_reason_not_a_500(server, bus, user, instrument, settings):
    session = session_of(user)
    settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache",
                                   "LOCATION": "redis://127.0.0.1:1/0"}}  # nothing listens there
    stream = SseClient(server.url, f"/stream/market/{CODE}/", session=session)
    assert stream.status == 503
    assert stream.json()["detail"]
    stream.close()
