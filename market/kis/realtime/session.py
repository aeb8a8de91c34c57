"""One KIS WebSocket session (fact sheet §6.1): connect, register, read frames, stay alive, come back.

KIS allows one session per app key and 40 registrations per session, so a process keeps one
``RealtimeSession`` per account and shares it (``subscriptions.SubscriptionManager``). The session:

* asks for the approval key through a plain callable (it may do HTTP: it runs in a worker thread) on every
  (re)connect -- the client caches it for 24 h -- and, when KIS calls the key invalid, gets ONE fresh key
  before giving up with ``InvalidApprovalError``;
* connects with the maintained ``websockets`` library, without WebSocket-level pings (KIS keeps sessions
  alive with its own JSON ``PINGPONG``, which is answered by sending the same text back);
* remembers every registration and re-registers all of them on each new connection; the AES key/iv of a TR
  is taken from the latest answer, so encrypted fill notices decrypt with the fresh key after a reconnect;
* treats a connection on which nothing (no data, no PINGPONG) arrived for ``stale_after`` seconds as dead,
  closes it and reconnects;
* reconnects with exponential backoff and jitter, and after a reconnect reports the gap (``since``..``until``)
  through ``on_status`` -- a gap is never hidden;
* raises a refused session out of ``run()`` after reporting "closed": ``AppKeyInUseError`` (OPSP8996, another
  session of the app key is open) and ``InvalidApprovalError``.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import inspect
import random
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Literal

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import InvalidURI, WebSocketException

from ..errors import KisAuthError, KisError, KisTokenIssueThrottled
from ..transport import SEOUL
from .errors import (
    AppKeyInUseError,
    InvalidApprovalError,
    RealtimeError,
    RealtimeProtocolError,
    SubscriptionLimitError,
)
from .frames import (
    ControlAnswer,
    DataFrame,
    PingPong,
    decode_records,
    logger,
    parse_frame,
    register_message,
    unregister_message,
)
from .records import FILL_NOTICE_TR, FillNotice, OrderBook, Tick

State = Literal["connecting", "connected", "reconnecting", "gap", "closed"]
Key = tuple[str, str]  # (tr_id, tr_key)

# A connection that stayed up this long was healthy: the next failure starts the backoff from the bottom.
HEALTHY_AFTER_SECONDS = 10.0


@dataclass(frozen=True, slots=True)
class SessionStatus:
    """What the session is doing, for pages and logs. ``gap``: no data from ``since`` to ``until``."""

    state: State
    since: dt.datetime | None
    until: dt.datetime | None
    message: str


class _ConnectionLost(Exception):
    """The connection ended (dropped, stale, closed by the server) and the session should reconnect."""


class RealtimeSession:
    """One WebSocket session of one app key. Use ``await run()`` in a task, ``await close()`` to stop."""

    def __init__(
        self,
        url: str,
        approval_key: Callable[[], str],
        *,
        environment: Literal["real", "paper"] = "real",
        on_tick: Callable[[Tick, float], Any] | None = None,
        on_book: Callable[[OrderBook, float], Any] | None = None,
        on_notice: Callable[[FillNotice], Any] | None = None,
        on_status: Callable[[SessionStatus], Any] | None = None,
        stale_after: float = 150.0,
        backoff_min: float = 0.5,
        backoff_max: float = 30.0,
        renew_approval_key: Callable[[str], str] | None = None,
        ack_timeout: float = 5.0,
        open_timeout: float = 10.0,
        in_use_grace: float = 60.0,
    ) -> None:
        if environment not in FILL_NOTICE_TR:
            raise ValueError("environment must be 'real' or 'paper'")
        if stale_after <= 0 or backoff_min <= 0 or backoff_max < backoff_min:
            raise ValueError("stale_after and backoff_min must be > 0 and backoff_max >= backoff_min")
        self.url = url
        self.environment = environment
        self._approval_key_source = approval_key
        # Given the key KIS refused, a fresh one (KisClient.approval_key does this); without it the plain
        # source is asked again, which suits sources that do not cache.
        self._renew_approval_key = renew_approval_key
        self._on_tick = on_tick
        self._on_book = on_book
        self._on_notice = on_notice
        self._on_status = on_status
        self._stale_after = stale_after
        self._backoff_min = backoff_min
        self._backoff_max = backoff_max
        self._ack_timeout = ack_timeout
        self._open_timeout = open_timeout
        # KIS may still hold a dropped session for a while: OPSP8996 on a *re*connect is retried this long.
        self._in_use_grace = in_use_grace

        self._registrations: set[Key] = set()
        self._approval: str | None = None
        self._aes: dict[str, tuple[str, str]] = {}  # tr_id -> (key, iv), from the latest answer
        self._pending: dict[Key, deque[asyncio.Future[ControlAnswer | None]]] = {}
        self._ws: ClientConnection | None = None
        self._live = False
        self._last_activity = time.monotonic()
        self._stale = False
        self._key_confirmed = False  # KIS accepted a registration with the current approval key
        self._close_requested = False
        self._wake: asyncio.Event | None = None
        self._stopped: asyncio.Event | None = None
        self._running = False

        # Counters (tests, the stream benchmark, the status page).
        self.connections = 0  # connections opened
        self.reconnects = 0  # connections opened after the first
        self.pongs_sent = 0
        self.frames_received = 0
        self.records_received = 0
        self.gaps: list[SessionStatus] = []
        self.reconnect_delays: list[float] = []  # every backoff wait, in order

    # ------------------------------------------------------------------------------------------ public API
    @property
    def registrations(self) -> frozenset[Key]:
        return frozenset(self._registrations)

    @property
    def connected(self) -> bool:
        """Connected and every registration answered (the "connected" status has been reported)."""
        return self._live

    @property
    def notice_tr(self) -> str:
        """The fill-notice TR of this environment (H0STCNI0 real, H0STCNI9 paper); its key is the HTS ID."""
        return FILL_NOTICE_TR[self.environment]

    async def register(self, tr_id: str, tr_key: str) -> None:
        """Register (TR, key) now if connected, and on every reconnect. Raises ``SubscriptionLimitError``
        when KIS refuses it over its cap (OPSP0008), ``RealtimeError`` for another refusal; either way the
        registration is forgotten. Without a connection it is only remembered."""
        key = (tr_id, tr_key)
        if key in self._registrations:
            return
        self._registrations.add(key)
        ws = self._ws
        if ws is None:
            return
        answer = await self._send_and_wait(ws, register_message, key)
        error = answer.error if answer is not None else None
        if error is None or isinstance(error, (AppKeyInUseError, InvalidApprovalError)):
            return  # a refused session is raised by run(); the registration is kept for the next one
        self._registrations.discard(key)
        raise error

    async def unregister(self, tr_id: str, tr_key: str) -> None:
        """Forget (TR, key) and unregister it at KIS if connected."""
        key = (tr_id, tr_key)
        if key not in self._registrations:
            return
        self._registrations.discard(key)
        ws = self._ws
        if ws is not None:
            await self._send_and_wait(ws, unregister_message, key)

    async def close(self) -> None:
        """Stop: close the connection, end ``run()`` (which reports "closed") and wait for it."""
        self._close_requested = True
        if self._wake is not None:
            self._wake.set()
        ws = self._ws
        if ws is not None:
            await ws.close()
        if self._running and self._stopped is not None:
            await self._stopped.wait()

    async def run(self) -> None:
        """Connect, (re)register everything and deliver frames until ``close()``. Raises ``AppKeyInUseError``,
        ``InvalidApprovalError`` or ``KisAuthError`` (approval key refused over HTTP) when KIS refuses the
        session for good, after reporting status "closed"."""
        if self._running:
            raise RuntimeError("this session is already running")
        self._running = True
        self._wake = asyncio.Event()
        self._stopped = asyncio.Event()
        failure: BaseException | None = None
        try:
            await self._run_loop()
        except BaseException as exc:
            failure = exc
            raise
        finally:
            if isinstance(failure, KisError):
                message = failure.user_message
            elif failure is None or isinstance(failure, asyncio.CancelledError):
                message = "한국투자증권 실시간 연결을 종료했습니다."
            else:
                message = "한국투자증권 실시간 연결이 오류로 종료되었습니다."
            self._status("closed", None, None, message)
            self._running = False
            self._stopped.set()

    # ------------------------------------------------------------------------------------------ the loop
    async def _run_loop(self) -> None:
        attempt = 0  # failures since the last healthy connection (drives the backoff)
        ready_once = False
        gap_since: dt.datetime | None = None
        fresh_key_tried = False
        rejected_key: str | None = None  # set until a fresh key replaced the one KIS refused
        in_use_since: float | None = None
        while not self._close_requested:
            if not ready_once:  # a reconnect was announced when the connection ended
                self._status("connecting", None, None, "한국투자증권 실시간 연결을 여는 중입니다.")
            opened_at = time.monotonic()
            ready = False

            def on_ready() -> None:
                nonlocal ready, ready_once, in_use_since, fresh_key_tried, gap_since
                ready = ready_once = True
                in_use_since = None
                if self._key_confirmed:
                    fresh_key_tried = False  # a later refusal (the next day) earns its own fresh try
                if gap_since is not None:
                    until = dt.datetime.now(SEOUL)
                    gap = SessionStatus("gap", gap_since, until, _gap_message(gap_since, until))
                    self.gaps.append(gap)
                    self._emit(gap)
                    gap_since = None
                self._status("connected", None, None,
                             f"한국투자증권 실시간 연결됨 (등록 {len(self._registrations)}개).")

            try:
                if rejected_key is not None:
                    self._approval = await asyncio.to_thread(self._fresh_approval_key, rejected_key)
                    rejected_key = None
                else:
                    # The client caches the key (24 h) and renews it near the end: ask on every connect.
                    self._approval = await asyncio.to_thread(self._approval_key_source)
                async with connect(self.url, ping_interval=None, open_timeout=self._open_timeout,
                                   close_timeout=2.0, compression=None, user_agent_header=None) as ws:
                    self.connections += 1
                    if ready_once:
                        self.reconnects += 1
                    await self._serve(ws, on_ready)
            except InvalidApprovalError:
                if self._close_requested:
                    return
                if fresh_key_tried:
                    raise
                fresh_key_tried = True
                rejected_key = self._approval or ""
                logger.warning("KIS refused the WebSocket approval key (OPSP0011); trying once with a fresh key")
                continue
            except AppKeyInUseError:
                # First connection: another program holds the session. On a reconnect KIS may still hold
                # our own dropped session for a moment: retry within the grace period.
                now = time.monotonic()
                in_use_since = in_use_since if in_use_since is not None else now
                if self._close_requested:
                    return
                if not ready_once or now - in_use_since > self._in_use_grace:
                    raise
                logger.warning("KIS says the app key is in use (OPSP8996) after a reconnect; retrying")
            except KisTokenIssueThrottled as exc:
                logger.warning("KIS approval key issuance throttled: %s", exc)
            except (KisAuthError, InvalidURI):
                raise  # the approval endpoint refused the app key/secret, or the URL is wrong: no retry helps
            except (OSError, TimeoutError, WebSocketException, _ConnectionLost, RealtimeError, KisError) as exc:
                if not self._close_requested:
                    logger.warning("KIS real-time connection lost or failed: %s: %s", type(exc).__name__, exc)
            if self._close_requested:
                return
            if ready:
                # Data stopped when the connection died -- or, for a stale one, at its last frame.
                lost_at = self._last_activity_wall() if self._stale else dt.datetime.now(SEOUL)
                gap_since = gap_since or lost_at
                if time.monotonic() - opened_at >= HEALTHY_AFTER_SECONDS:
                    attempt = 0
            delay = min(self._backoff_max, self._backoff_min * (2 ** attempt)) * random.uniform(0.5, 1.0)
            attempt += 1
            self.reconnect_delays.append(delay)
            if ready_once:
                self._status("reconnecting", gap_since, None,
                             f"한국투자증권 실시간 연결이 끊어졌습니다. {delay:.1f}초 뒤 다시 연결합니다.")
            await self._sleep(delay)

    async def _serve(self, ws: ClientConnection, on_ready: Callable[[], None]) -> None:
        """Re-register everything on ``ws``, call ``on_ready`` once KIS has answered, then read until the
        connection ends. Raises the fatal refusals, ``_ConnectionLost`` or the connection's error."""
        if self._close_requested:
            return
        self._ws = ws
        self._aes.clear()  # keys come fresh with each answer (§6.1 step 6)
        self._stale = False
        self._key_confirmed = False
        self._last_activity = time.monotonic()
        reader = asyncio.create_task(self._read(ws), name="kis-ws-reader")
        watchdog = asyncio.create_task(self._watch_stale(ws), name="kis-ws-watchdog")
        try:
            await self._register_all(ws)
            if not reader.done():
                self._live = True
                on_ready()
            await reader  # returns on a clean close, raises a fatal refusal or the connection's error
            raise _ConnectionLost("stale stream" if self._stale else "connection closed")
        finally:
            self._ws = None
            self._live = False
            watchdog.cancel()
            if not reader.done():
                reader.cancel()
            with contextlib.suppress(BaseException):
                await reader
            with contextlib.suppress(asyncio.CancelledError):
                await watchdog
            self._release_pending()

    async def _register_all(self, ws: ClientConnection) -> None:
        keys = sorted(self._registrations)
        if not keys:
            return
        waiting = []
        for key in keys:
            if key not in self._registrations:
                continue
            waiting.append(self._expect(key))
            await ws.send(register_message(self._approval or "", *key))
        done, _ = await asyncio.wait(waiting, timeout=self._ack_timeout)
        for future in done:
            answer = future.result()
            error = answer.error if answer is not None else None
            if isinstance(error, SubscriptionLimitError):
                # Kept: it is registered again on the next connection, when KIS may have room.
                logger.warning("KIS refused a re-registration over its cap (OPSP0008): %s", error.subject)
        if len(done) < len(waiting):
            logger.warning("KIS answered %d of %d re-registrations within %.1fs", len(done), len(waiting),
                           self._ack_timeout)

    async def _read(self, ws: ClientConnection) -> None:
        try:
            await self._read_frames(ws)
        finally:
            self._release_pending()  # nobody waits for an answer that cannot come any more

    async def _read_frames(self, ws: ClientConnection) -> None:
        on_data = self._on_data
        async for text in ws:
            self._last_activity = time.monotonic()
            if isinstance(text, bytes):
                text = text.decode("utf-8", errors="replace")
            try:
                frame = parse_frame(text)
            except RealtimeProtocolError as exc:
                logger.warning("KIS real-time frame skipped: %s", exc.detail)
                continue
            if isinstance(frame, DataFrame):
                await on_data(frame, time.time())
            elif isinstance(frame, PingPong):
                await ws.send(frame.text)  # KIS closes sessions that do not answer
                self.pongs_sent += 1
            else:
                self._on_answer(frame)

    async def _watch_stale(self, ws: ClientConnection) -> None:
        while True:
            idle = time.monotonic() - self._last_activity
            if idle >= self._stale_after:
                self._stale = True
                logger.warning("KIS real-time stream stale: nothing received for %.1fs; reconnecting", idle)
                await ws.close(code=1000, reason="stale")
                return
            await asyncio.sleep(self._stale_after - idle)

    # ------------------------------------------------------------------------------------------ frames
    async def _on_data(self, frame: DataFrame, received: float) -> None:
        self.frames_received += 1
        try:
            records = decode_records(frame, self._aes.get(frame.tr_id))
        except RealtimeProtocolError as exc:
            # Never the payload: a fill notice holds the account number.
            logger.warning("KIS real-time %s frame skipped: %s", frame.tr_id, exc.detail)
            return
        self.records_received += len(records)
        for record in records:
            try:
                if isinstance(record, Tick):
                    result = self._on_tick(record, received) if self._on_tick else None
                elif isinstance(record, OrderBook):
                    result = self._on_book(record, received) if self._on_book else None
                else:
                    result = self._on_notice(record) if self._on_notice else None
                if result is not None and inspect.isawaitable(result):
                    await result
            except Exception:  # a consumer's bug must not end the stream for everyone else
                logger.exception("KIS real-time %s callback failed", frame.tr_id)

    def _on_answer(self, answer: ControlAnswer) -> None:
        error = answer.error
        if error is None:
            if answer.key and answer.iv:
                self._aes[answer.tr_id] = (answer.key, answer.iv)
            if answer.msg_cd in ("OPSP0000", "OPSP0002"):
                self._key_confirmed = True
        queue = self._pending.get((answer.tr_id, answer.tr_key))
        if queue:
            future = queue.popleft()
            if not future.done():
                future.set_result(answer)
        if isinstance(error, (AppKeyInUseError, InvalidApprovalError)):
            raise error  # ends the reader; run() decides
        if error is not None:
            logger.warning("KIS refused a real-time registration: %s", error)

    # ------------------------------------------------------------------------------------------ helpers
    def _expect(self, key: Key) -> asyncio.Future[ControlAnswer | None]:
        future: asyncio.Future[ControlAnswer | None] = asyncio.get_running_loop().create_future()
        self._pending.setdefault(key, deque()).append(future)
        return future

    async def _send_and_wait(self, ws: ClientConnection, build: Callable[[str, str, str], str],
                             key: Key) -> ControlAnswer | None:
        """Send one (un)registration and wait for its answer; None when the connection ended first or KIS
        did not answer within ``ack_timeout`` (the registration then stands until told otherwise)."""
        future = self._expect(key)
        try:
            await ws.send(build(self._approval or "", *key))
            return await asyncio.wait_for(asyncio.shield(future), timeout=self._ack_timeout)
        except (TimeoutError, WebSocketException, OSError):
            return None
        finally:
            queue = self._pending.get(key)
            if queue and future in queue and not future.done():
                queue.remove(future)
                future.cancel()

    def _release_pending(self) -> None:
        for queue in self._pending.values():
            for future in queue:
                if not future.done():
                    future.set_result(None)
        self._pending.clear()

    def _fresh_approval_key(self, rejected: str) -> str:
        if self._renew_approval_key is not None:
            return self._renew_approval_key(rejected)
        return self._approval_key_source()

    def _last_activity_wall(self) -> dt.datetime:
        idle = time.monotonic() - self._last_activity
        return dt.datetime.now(SEOUL) - dt.timedelta(seconds=idle)

    async def _sleep(self, seconds: float) -> None:
        assert self._wake is not None
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), timeout=seconds)

    def _status(self, state: State, since: dt.datetime | None, until: dt.datetime | None, message: str) -> None:
        self._emit(SessionStatus(state, since, until, message))

    def _emit(self, status: SessionStatus) -> None:
        if self._on_status is None:
            return
        try:
            result = self._on_status(status)
            if inspect.isawaitable(result):
                asyncio.ensure_future(_awaited(result))
        except Exception:
            logger.exception("KIS real-time status callback failed")


async def _awaited(result: Awaitable[Any]) -> None:
    try:
        await result
    except Exception:
        logger.exception("KIS real-time status callback failed")


def _gap_message(since: dt.datetime, until: dt.datetime) -> str:
    return (f"실시간 연결이 {since:%H:%M:%S}부터 {until:%H:%M:%S}까지 끊겼습니다. "
            "그동안의 시세·체결통보는 빠졌을 수 있으며, 체결은 주문 대사로 확인됩니다.")
