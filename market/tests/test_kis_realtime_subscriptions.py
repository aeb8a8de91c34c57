"""SubscriptionManager: watchers share one session's registrations, within KIS's 40 per session.

Against a real RealtimeSession and the fake KIS WebSocket server, so "registered" means KIS was asked."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Iterator
from typing import TypeVar

import pytest

from market.kis.realtime.errors import SubscriptionLimitError
from market.kis.realtime.records import FILL_NOTICE_TR, TRADE_TR
from market.kis.realtime.session import RealtimeSession
from market.kis.realtime.subscriptions import SubscriptionManager
from market.tests.fake_kis_ws import FakeKisWebSocketServer

T = TypeVar("T")
NOTICES = (FILL_NOTICE_TR["real"], "myhtsid")


def trade(code: str) -> tuple[str, str]:
    return (TRADE_TR, code)


def codes(count: int, start: int = 0) -> list[str]:
    return [f"{100_000 + n:06d}" for n in range(start, start + count)]


@pytest.fixture
def fake_ws() -> Iterator[FakeKisWebSocketServer]:
    with FakeKisWebSocketServer() as server:
        yield server


def with_session(fake: FakeKisWebSocketServer, body: Callable[[RealtimeSession, SubscriptionManager], Awaitable[T]],
                 *, connect_first: bool = True) -> T:
    """Run ``body`` with a connected session (or one connecting after ``body`` when ``connect_first`` is
    False) and a manager on it."""

    async def scenario() -> T:
        session = RealtimeSession(fake.url, lambda: "approval-1", backoff_min=0.02, backoff_max=0.1)
        manager = SubscriptionManager(session)
        task = None
        if connect_first:
            task = asyncio.create_task(session.run())
            await until(lambda: session.connected)
        try:
            return await body(session, manager)
        finally:
            if task is None:
                task = asyncio.create_task(session.run())
                await until(lambda: session.connected)
                await until(lambda: fake.open_connections() == 1)
            await session.close()
            await task

    return asyncio.run(scenario())


async def until(condition: Callable[[], bool], timeout: float = 3.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.005)


def test_watchers_share_registrations_and_unwatched_ones_are_dropped(fake_ws: FakeKisWebSocketServer) -> None:
    async def body(session: RealtimeSession, manager: SubscriptionManager) -> None:
        assert await manager.set_watch("page-1", [trade("005930"), trade("000660")]) == []
        assert await manager.set_watch("page-2", [trade("005930")]) == []
        assert manager.watchers_of(trade("005930")) == {"page-1", "page-2"}
        assert fake_ws.registrations[trade("005930")] == 1  # shared: KIS was asked once

        await manager.drop_watcher("page-1")
        assert manager.registrations == {trade("005930")}  # page-2 still watches it
        assert session.registrations == {trade("005930")}
        assert fake_ws.unregistrations[trade("000660")] == 1
        assert fake_ws.unregistrations[trade("005930")] == 0

        await manager.set_watch("page-2", [])
        assert manager.registrations == frozenset() and manager.watchers == frozenset()
        assert await asyncio.to_thread(fake_ws.active_registrations) == set()

    with_session(fake_ws, body)


def test_the_41st_registration_is_refused_with_a_clear_message(fake_ws: FakeKisWebSocketServer) -> None:
    async def body(session: RealtimeSession, manager: SubscriptionManager) -> None:
        assert await manager.set_watch("notices", [NOTICES]) == []
        wanted = [trade(code) for code in codes(39)]
        assert await manager.set_watch("page-1", wanted) == []
        assert len(manager.registrations) == 40

        extra = trade("035720")
        assert await manager.set_watch("page-2", [trade(codes(1)[0]), extra]) == [extra]
        error = manager.refusals[extra]
        assert error.cap == 40
        assert "40" in error.user_message and "035720" in error.user_message
        assert manager.watched_by("page-2") == {trade(codes(1)[0])}  # what fits is held
        with pytest.raises(SubscriptionLimitError):
            await manager.add("page-3", *extra)

        assert len(session.registrations) == 40
        assert len(await asyncio.to_thread(fake_ws.active_registrations)) == 40
        assert fake_ws.refusals["OPSP0008"] == 0  # refused here, KIS was never asked

        # Room again once a symbol nobody else watches is dropped.
        await manager.set_watch("page-1", wanted[:-1])
        assert await manager.set_watch("page-2", [trade(codes(1)[0]), extra]) == []
        assert extra not in manager.refusals
        assert len(await asyncio.to_thread(fake_ws.active_registrations)) == 40

    with_session(fake_ws, body)


def test_swapping_symbols_at_the_cap_is_not_refused(fake_ws: FakeKisWebSocketServer) -> None:
    async def body(session: RealtimeSession, manager: SubscriptionManager) -> None:
        assert await manager.set_watch("page", [trade(code) for code in codes(40)]) == []
        swapped = [trade(code) for code in codes(39)] + [trade("005930")]
        assert await manager.set_watch("page", swapped) == []
        assert manager.registrations == set(swapped)

    with_session(fake_ws, body)


def test_kis_cap_is_respected_even_below_ours() -> None:
    with FakeKisWebSocketServer(cap=3) as fake:

        async def body(session: RealtimeSession, manager: SubscriptionManager) -> None:
            wanted = [trade(code) for code in codes(5)]
            refused = await manager.set_watch("page", wanted)
            assert refused == wanted[3:]
            assert manager.registrations == set(wanted[:3]) == session.registrations
            assert all(manager.refusals[key].code == "OPSP0008" for key in refused)

        with_session(fake, body)
    assert fake.refusals["OPSP0008"] == 2


def test_a_key_kis_refuses_for_another_reason_is_listed_and_the_rest_proceed(
        fake_ws: FakeKisWebSocketServer) -> None:
    wrong_tr = (FILL_NOTICE_TR["paper"], "myhtsid")  # the paper notice TR on a real host

    async def body(session: RealtimeSession, manager: SubscriptionManager) -> None:
        refused = await manager.set_watch("page", [wrong_tr, trade("005930")])
        assert refused == [wrong_tr]
        assert manager.refusals[wrong_tr].code == "FAKE0404"
        assert manager.registrations == {trade("005930")} == session.registrations

    with_session(fake_ws, body)


def test_concurrent_watchers_never_pass_the_cap(fake_ws: FakeKisWebSocketServer) -> None:
    async def body(session: RealtimeSession, manager: SubscriptionManager) -> None:
        results = await asyncio.gather(*(
            manager.set_watch(f"page-{n}", [trade(code) for code in codes(6, start=n * 5)]) for n in range(10)))
        # Neighbours overlap by one symbol: 51 distinct symbols wanted, 40 fit.
        assert len(manager.registrations) == 40
        assert sum(len(refused) for refused in results) >= 11
        assert await asyncio.to_thread(fake_ws.active_registrations) == set(manager.registrations)
        for key in manager.registrations:
            assert manager.watchers_of(key)

    with_session(fake_ws, body)


def test_watches_made_before_the_connection_are_registered_on_connect(fake_ws: FakeKisWebSocketServer) -> None:
    async def body(session: RealtimeSession, manager: SubscriptionManager) -> None:
        assert await manager.set_watch("notices", [NOTICES]) == []
        assert await manager.set_watch("page", [trade("005930")]) == []
        assert not session.connected

    with_session(fake_ws, body, connect_first=False)
    assert fake_ws.registrations[NOTICES] == 1 and fake_ws.registrations[trade("005930")] == 1


def test_cap_must_fit_kis() -> None:
    session = RealtimeSession("ws://127.0.0.1:9", lambda: "k")
    with pytest.raises(ValueError):
        SubscriptionManager(session, cap=41)
