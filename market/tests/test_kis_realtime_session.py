"""RealtimeSession against the fake KIS WebSocket server over real sockets on 127.0.0.1.

Timings are shrunk (backoff in tens of milliseconds, stale after a fraction of a second) so the module runs
in a few seconds; every wait polls a condition with a deadline instead of sleeping a fixed time."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import socket
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from market.kis import InMemoryTokenStore, NoRateLimit
from market.kis.client import KisClient
from market.kis.realtime.errors import (
    AppKeyInUseError,
    InvalidApprovalError,
    RealtimeError,
    SubscriptionLimitError,
)
from market.kis.realtime.records import FILL_NOTICE_TR, ORDER_BOOK_TR, TRADE_TR, FillNotice, OrderBook, Tick
from market.kis.realtime.session import RealtimeSession, SessionStatus
from market.tests.fake_kis import (
    APPROVAL_PATH,
    FAKE_ACCOUNT_NO,
    FAKE_APP_KEY,
    FAKE_APP_SECRET,
    FAKE_PRODUCT_CODE,
    FakeKisServer,
)
from market.tests.fake_kis_ws import FakeKisWebSocketServer

FAST = {"backoff_min": 0.02, "backoff_max": 0.1, "ack_timeout": 2.0, "open_timeout": 2.0}


@pytest.fixture
def fake_ws() -> Iterator[FakeKisWebSocketServer]:
    with FakeKisWebSocketServer(seed=7) as server:
        yield server


class Recorder:
    """Everything a session hands to its callbacks."""

    def __init__(self) -> None:
        self.ticks: list[tuple[Tick, float]] = []
        self.books: list[OrderBook] = []
        self.notices: list[FillNotice] = []
        self.statuses: list[SessionStatus] = []

    def session(self, url: str, approval_key: Callable[[], str], **options: Any) -> RealtimeSession:
        return RealtimeSession(
            url, approval_key,
            on_tick=lambda tick, received: self.ticks.append((tick, received)),
            on_book=lambda book, received: self.books.append(book),
            on_notice=self.notices.append,
            on_status=self.statuses.append,
            **(FAST | options),
        )

    def states(self) -> list[str]:
        return [status.state for status in self.statuses]


async def until(condition: Callable[[], bool], timeout: float = 3.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.005)


async def started(session: RealtimeSession) -> asyncio.Task[None]:
    task = asyncio.create_task(session.run())
    await until(lambda: session.connected and session.connections >= 1)
    return task


async def stop(session: RealtimeSession, task: asyncio.Task[None]) -> None:
    await session.close()
    await asyncio.wait_for(task, timeout=3)


def call(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """A fake's control method, off the event loop (it blocks until the server's loop has done it)."""
    return asyncio.to_thread(fn, *args, **kwargs)


# ---------------------------------------------------------------------------------------------- data
def test_registered_ticks_and_books_are_delivered(fake_ws: FakeKisWebSocketServer) -> None:
    rec = Recorder()

    async def scenario() -> None:
        session = rec.session(fake_ws.url, lambda: "approval-1")
        await session.register(TRADE_TR, "005930")  # before run(): remembered, sent on connect
        task = await started(session)
        await session.register(ORDER_BOOK_TR, "005930")
        await session.register(TRADE_TR, "000660")
        assert await call(fake_ws.push_ticks, "005930", 3) == 1
        assert await call(fake_ws.push_ticks, "035720") == 0  # nobody registered it
        assert await call(fake_ws.push_book, "005930") == 1
        await until(lambda: len(rec.ticks) == 3 and len(rec.books) == 1)
        await stop(session, task)

    before = time.time()
    asyncio.run(scenario())
    assert [tick.code for tick, _ in rec.ticks] == ["005930"] * 3
    assert all(before <= received <= time.time() for _, received in rec.ticks)
    cumulative = [tick.cumulative_volume for tick, _ in rec.ticks]
    assert cumulative == sorted(cumulative) and len(set(cumulative)) == 3
    assert rec.books[0].code == "005930"
    sent = fake_ws.messages
    assert {m["header"]["approval_key"] for m in sent} == {"approval-1"}
    assert {m["header"]["custtype"] for m in sent} == {"P"}
    assert [(m["body"]["input"]["tr_id"], m["body"]["input"]["tr_key"]) for m in sent] == [
        (TRADE_TR, "005930"), (ORDER_BOOK_TR, "005930"), (TRADE_TR, "000660")]
    assert rec.states() == ["connecting", "connected", "closed"]


def test_load_generator_frames_of_several_records_all_arrive(fake_ws: FakeKisWebSocketServer) -> None:
    rec = Recorder()
    symbols = ["005930", "000660", "035720"]

    async def scenario() -> None:
        session = rec.session(fake_ws.url, lambda: "approval-1")
        task = await started(session)
        for code in symbols:
            await session.register(TRADE_TR, code)
        await call(fake_ws.stream, symbols, 3_000, records_per_frame=4, duration=0.3)
        await until(lambda: not fake_ws.streaming() and len(rec.ticks) == fake_ws.records_sent)
        await stop(session, task)

    asyncio.run(scenario())
    assert len(rec.ticks) == fake_ws.records_sent > 600  # ~3,000/s for 0.3 s
    assert fake_ws.frames_sent < fake_ws.records_sent  # several records per frame
    assert {tick.code for tick, _ in rec.ticks} == set(symbols)
    for code in symbols:  # each symbol's records arrive in order
        volumes = [tick.cumulative_volume for tick, _ in rec.ticks if tick.code == code]
        assert volumes == sorted(volumes)


def test_unregister_stops_the_symbol(fake_ws: FakeKisWebSocketServer) -> None:
    rec = Recorder()

    async def scenario() -> None:
        session = rec.session(fake_ws.url, lambda: "approval-1")
        task = await started(session)
        await session.register(TRADE_TR, "005930")
        await session.unregister(TRADE_TR, "005930")
        assert session.registrations == frozenset()
        assert await call(fake_ws.push_ticks, "005930") == 0
        await stop(session, task)

    asyncio.run(scenario())
    assert fake_ws.unregistrations[(TRADE_TR, "005930")] == 1
    assert [m["header"]["tr_type"] for m in fake_ws.messages] == ["1", "2"]


def test_pingpong_is_echoed_and_keeps_a_quiet_stream_alive() -> None:
    rec = Recorder()
    with FakeKisWebSocketServer(pingpong_interval=0.05) as fake:

        async def scenario() -> RealtimeSession:
            session = rec.session(fake.url, lambda: "approval-1", stale_after=0.3)
            task = await started(session)
            await session.register(TRADE_TR, "005930")
            await asyncio.sleep(0.8)  # no data at all for well over stale_after: only PINGPONG
            assert await call(fake.pingpong) == 1
            await until(lambda: fake.last_ping in fake.pongs)
            await stop(session, task)
            return session

        session = asyncio.run(scenario())
    assert session.connections == 1 and session.reconnects == 0  # never judged stale
    assert len(fake.pongs) >= 5 and session.pongs_sent == len(fake.pongs)
    assert all(json.loads(text)["header"]["tr_id"] == "PINGPONG" for text in fake.pongs)
    assert "gap" not in rec.states()


# ---------------------------------------------------------------------------------------------- reconnects
def test_dropped_connection_reconnects_reregisters_and_reports_the_gap(fake_ws: FakeKisWebSocketServer) -> None:
    rec = Recorder()
    wanted = {(TRADE_TR, "005930"), (TRADE_TR, "000660"), (ORDER_BOOK_TR, "005930")}

    async def scenario() -> RealtimeSession:
        session = rec.session(fake_ws.url, lambda: "approval-1")
        task = await started(session)
        for key in sorted(wanted):
            await session.register(*key)
        assert await call(fake_ws.push_ticks, "005930") == 1
        await until(lambda: len(rec.ticks) == 1)
        assert await call(fake_ws.drop_connections) == 1
        await until(lambda: session.reconnects == 1 and session.connected and "gap" in rec.states())
        assert await call(fake_ws.push_ticks, "000660", 2) == 1  # flows again on the new connection
        await until(lambda: len(rec.ticks) == 3)
        await stop(session, task)
        return session

    session = asyncio.run(scenario())
    assert fake_ws.connections_opened == 2
    assert all(fake_ws.registrations[key] == 2 for key in wanted)  # every registration sent again
    assert session.registrations == frozenset(wanted)
    states = rec.states()
    assert states == ["connecting", "connected", "reconnecting", "gap", "connected", "closed"]
    gap = rec.statuses[states.index("gap")]
    assert gap.since is not None and gap.until is not None
    assert gap.since <= gap.until <= dt.datetime.now(dt.UTC)
    assert gap.since.utcoffset() == dt.timedelta(hours=9)
    assert session.gaps == [gap]
    assert "끊겼습니다" in gap.message


def test_stale_stream_is_detected_and_reconnected(fake_ws: FakeKisWebSocketServer) -> None:
    rec = Recorder()
    stale_after = 0.3

    async def scenario() -> RealtimeSession:
        session = rec.session(fake_ws.url, lambda: "approval-1", stale_after=stale_after)
        task = await started(session)
        await session.register(TRADE_TR, "005930")
        await call(fake_ws.push_ticks, "005930")
        await until(lambda: len(rec.ticks) == 1)
        silenced_at = time.monotonic()
        await call(fake_ws.go_silent)  # the connection stays open but nothing comes any more
        assert await call(fake_ws.push_ticks, "005930") == 0
        await until(lambda: session.reconnects == 1 and session.connected)
        detected_after = time.monotonic() - silenced_at
        assert await call(fake_ws.push_ticks, "005930") == 1
        await until(lambda: len(rec.ticks) == 2)
        await stop(session, task)
        assert stale_after * 0.8 <= detected_after < stale_after + 1.5
        return session

    session = asyncio.run(scenario())
    assert fake_ws.connections_opened == 2
    [gap] = session.gaps
    assert gap.since is not None and gap.until is not None
    # The gap starts at the last frame received, not when the silence was noticed.
    assert (gap.until - gap.since).total_seconds() >= stale_after * 0.8


def test_backoff_grows_while_the_host_is_down() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # closed again: connections are refused
    rec = Recorder()

    async def scenario() -> RealtimeSession:
        session = rec.session(f"ws://127.0.0.1:{port}", lambda: "approval-1", backoff_min=0.01, backoff_max=0.04)
        task = asyncio.create_task(session.run())
        await until(lambda: len(session.reconnect_delays) >= 5)
        await stop(session, task)
        return session

    session = asyncio.run(scenario())
    for attempt, delay in enumerate(session.reconnect_delays[:5]):
        ceiling = min(0.04, 0.01 * 2 ** attempt)
        assert ceiling / 2 <= delay <= ceiling
    assert session.connections == 0
    assert rec.states()[0] == "connecting" and rec.states()[-1] == "closed"
    assert "connected" not in rec.states()


def test_reconnect_waits_out_kis_holding_the_dropped_session() -> None:
    rec = Recorder()
    with FakeKisWebSocketServer(linger=0.3) as fake:

        async def scenario() -> None:
            session = rec.session(fake.url, lambda: "approval-1")
            task = await started(session)
            await session.register(TRADE_TR, "005930")
            await call(fake.drop_connections)
            await until(lambda: session.reconnects >= 1 and session.connected and "gap" in rec.states())
            await stop(session, task)

        asyncio.run(scenario())
    assert fake.refusals["OPSP8996"] >= 1  # refused while KIS still held the old session
    assert rec.states()[-2:] == ["connected", "closed"]
    assert fake.registrations[(TRADE_TR, "005930")] == 2


# ---------------------------------------------------------------------------------------------- refusals
def test_second_session_of_an_app_key_is_refused() -> None:
    rec_first, rec_second = Recorder(), Recorder()
    with FakeKisWebSocketServer(approval_keys={"key-a": "APP", "key-b": "APP"}) as fake:

        async def scenario() -> None:
            first = rec_first.session(fake.url, lambda: "key-a")
            first_task = await started(first)
            await first.register(TRADE_TR, "005930")
            second = rec_second.session(fake.url, lambda: "key-b")
            await second.register(TRADE_TR, "000660")
            with pytest.raises(AppKeyInUseError) as refused:
                await asyncio.wait_for(second.run(), timeout=3)
            assert refused.value.code == "OPSP8996"
            # The first session is untouched.
            assert await call(fake.push_ticks, "005930") == 1
            await until(lambda: len(rec_first.ticks) == 1)
            await stop(first, first_task)

        asyncio.run(scenario())
    assert fake.refusals["OPSP8996"] == 1
    last = rec_second.statuses[-1]
    assert last.state == "closed" and "OPSP8996" in last.message
    assert "connected" not in rec_second.states()


def test_invalid_approval_gets_one_fresh_key_then_works() -> None:
    """Over HTTP: the session's key comes from KisClient.approval_key (FakeKisServer issues it)."""
    rec = Recorder()
    with FakeKisServer(mode="real", rate_limit_per_second=None) as fake_http, \
            FakeKisWebSocketServer(approval_keys=fake_http) as fake:
        client = KisClient(FAKE_APP_KEY, FAKE_APP_SECRET, FAKE_ACCOUNT_NO, FAKE_PRODUCT_CODE, mode="real",
                           base_url=fake_http.base_url, token_store=InMemoryTokenStore(), rate_limiter=NoRateLimit(),
                           timeout=(1.0, 2.0), backoff_base=0.001, backoff_max=0.01)

        async def scenario() -> RealtimeSession:
            session = rec.session(fake.url, client.approval_key, renew_approval_key=client.approval_key)
            await session.register(TRADE_TR, "005930")
            task = await started(session)
            await call(fake.invalidate_approval_keys)  # e.g. KIS dropped it overnight
            await call(fake.drop_connections)
            await until(lambda: session.reconnects >= 1 and session.connected and "gap" in rec.states())
            assert await call(fake.push_ticks, "005930") == 1
            await until(lambda: len(rec.ticks) == 1)
            await stop(session, task)
            return session

        asyncio.run(scenario())
    assert fake_http.count(APPROVAL_PATH) == 2  # the first key, then one fresh key
    first_key, fresh_key = fake_http.approval_keys_issued
    assert fake.refusals["OPSP0011"] == 1
    assert [m["header"]["approval_key"] for m in fake.messages] == [first_key, first_key, fresh_key]


def test_invalid_approval_twice_ends_the_session() -> None:
    rec = Recorder()
    asked: list[str] = []

    def approval_key() -> str:
        asked.append("x")
        return f"unknown-{len(asked)}"

    with FakeKisWebSocketServer(approval_keys={"known": "APP"}) as fake:

        async def scenario() -> None:
            session = rec.session(fake.url, approval_key)
            await session.register(TRADE_TR, "005930")
            with pytest.raises(InvalidApprovalError):
                await asyncio.wait_for(session.run(), timeout=3)

        asyncio.run(scenario())
    assert len(asked) == 2  # one fresh attempt, no more
    assert fake.refusals["OPSP0011"] == 2
    assert rec.states()[-1] == "closed" and "OPSP0011" in rec.statuses[-1].message


def test_registration_over_the_server_cap_is_refused_and_forgotten() -> None:
    rec = Recorder()
    with FakeKisWebSocketServer(cap=2) as fake:

        async def scenario() -> RealtimeSession:
            session = rec.session(fake.url, lambda: "approval-1")
            task = await started(session)
            await session.register(TRADE_TR, "005930")
            await session.register(TRADE_TR, "000660")
            with pytest.raises(SubscriptionLimitError) as refused:
                await session.register(TRADE_TR, "035720")
            assert refused.value.code == "OPSP0008" and "035720" in refused.value.user_message
            with pytest.raises(RealtimeError):
                await session.register(FILL_NOTICE_TR["paper"], "myhts")  # not a TR of a real host
            await stop(session, task)
            return session

        session = asyncio.run(scenario())
    assert session.registrations == {(TRADE_TR, "005930"), (TRADE_TR, "000660")}
    assert fake.refusals["OPSP0008"] == 1


# ---------------------------------------------------------------------------------------------- fill notices
@pytest.mark.parametrize("mode", ["real", "paper"])
def test_fill_notices_decrypt_with_the_key_of_each_connection(mode: str) -> None:
    rec = Recorder()
    notice_tr = FILL_NOTICE_TR[mode]
    with FakeKisWebSocketServer(mode=mode) as fake:

        async def scenario() -> None:
            session = rec.session(fake.url, lambda: "approval-1", environment=mode)
            assert session.notice_tr == notice_tr
            task = await started(session)
            await session.register(notice_tr, "myhtsid")
            assert await call(fake.push_fill_notice, "myhtsid", quantity=7, price=71_300) == 1
            await until(lambda: len(rec.notices) == 1)
            await call(fake.drop_connections)
            await until(lambda: session.reconnects == 1 and session.connected)
            assert await call(fake.push_fill_notice, "myhtsid", side="sell", quantity=3, price=71_400,
                              extra_fields=["NEW1", "NEW2"]) == 1
            await until(lambda: len(rec.notices) == 2)
            await stop(session, task)

        asyncio.run(scenario())
    keys = [(key, iv) for tr_id, key, iv in fake.aes_keys_issued if tr_id == notice_tr]
    assert len(keys) == 2 and keys[0] != keys[1]  # the second notice only decrypts with the fresh key
    first, second = rec.notices
    assert (first.side, first.quantity, first.price, first.is_fill) == ("buy", 7, 71_300, True)
    assert (second.side, second.quantity, second.price) == ("sell", 3, 71_400)
    assert first.customer_id == second.customer_id == "myhtsid"


def test_a_frame_that_fails_to_decode_is_skipped_not_fatal(fake_ws: FakeKisWebSocketServer) -> None:
    rec = Recorder()

    async def scenario() -> RealtimeSession:
        session = rec.session(fake_ws.url, lambda: "approval-1")
        task = await started(session)
        await session.register(TRADE_TR, "005930")
        await call(fake_ws.push_raw, "0|H0STCNT0|001|005930^broken")
        await call(fake_ws.push_raw, "1|H0STCNI0|001|bm90IGVuY3J5cHRlZA==")  # no key for this TR
        await call(fake_ws.push_raw, "0|H0STMKO0|001|005930^X")  # a TR this client does not know
        await call(fake_ws.push_raw, "not a frame")
        await call(fake_ws.push_ticks, "005930")
        await until(lambda: len(rec.ticks) == 1)
        await stop(session, task)
        return session

    session = asyncio.run(scenario())
    assert session.connections == 1 and session.frames_received == 4
