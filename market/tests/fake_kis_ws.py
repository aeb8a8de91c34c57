"""A fake KIS WebSocket server for tests and the stream benchmark (fact sheet §6, fake_responses.md §13).

It runs ``websockets``' asyncio server on 127.0.0.1 (port 0) in a thread of its own with its own event loop,
so the client under test talks real WebSocket over real sockets. It speaks KIS's framing:

* registration messages (``tr_type`` "1"/"2") checked for a known approval key (else ``OPSP0011``), ``custtype``
  "P" and a TR of the host's environment; answers ``OPSP0000`` with a fresh AES key/iv per connection and TR,
  ``OPSP0001``, ``OPSP0002`` (already registered), ``OPSP0003`` (not registered), ``OPSP0008`` over the cap
  (40 by default);
* one session per app key: a second connection using a key of the same app gets ``OPSP8996`` and is closed;
* data frames ``0|H0STCNT0|NNN|...`` (several records per frame), ``0|H0STASP0|001|...`` and encrypted fill
  notices ``1|H0STCNI0|001|<base64 AES-256-CBC>`` (``H0STCNI9`` on a paper host) keyed by HTS ID;
* the JSON ``PINGPONG`` on demand and every ``pingpong_interval`` seconds; echoes are counted.

Faults: ``drop_connections()`` (abort, like KIS's 1006), ``go_silent()`` (the open connections stop sending
anything, a stale stream), ``invalidate_approval_keys()``, ``linger`` (KIS still holds a dropped session's
app key for a while). ``stream()`` is a load generator running inside the server's loop.

Approval keys map to app keys: pass the ``FakeKisServer`` that issued them (its ``approval_keys``), an
explicit ``{approval_key: app_key}`` dict, or None to accept any key as its own app.

Control methods are called from the test's thread (not from the server's loop) and return once done.
Where KIS's real answer is unknown the fake answers with a ``FAKE....`` msg_cd.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import random
import secrets
import string
import threading
from collections import Counter
from collections.abc import Coroutine, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed

from market.kis.realtime.frames import encrypt_payload
from market.kis.realtime.records import FILL_NOTICE_TR, ORDER_BOOK_TR, TRADE_TR
from market.tests.fake_kis import SEOUL, tick_size

T = TypeVar("T")

DEFAULT_CAP = 40
# Previous closes of the symbols the fakes know (fake_kis.FakeKisServer's stocks); others start at 10,000.
BASE_PRICES = {"005930": 73_200, "000660": 183_500, "035720": 41_000, "0039P0": 12_000}
_KEY_ALPHABET = string.ascii_letters + string.digits

# The example record of fake_responses.md §13 (46 fields); the fields the fake varies are replaced by name.
_TRADE_TEMPLATE = (
    "005930^093012^72900^5^-300^-0.41^72950.12^73100^73300^72700^73000^72900^15^1234567^90061234500^4021^3890"
    "^-131^96.74^612345^592345^5^49.17^78.21^090000^5^-200^091523^5^-400^092840^2^200^20260105^20^N^30512"
    "^45120^512300^623400^0.02^1578342^78.22^0^N^73200"
).split("^")


class _IssuesApprovalKeys(Protocol):
    approval_keys: dict[str, str]


@dataclass(eq=False)  # identity: kept in sets
class _Connection:
    ws: ServerConnection
    app_key: str | None = None
    registrations: set[tuple[str, str]] = field(default_factory=set)
    aes: dict[str, tuple[str, str]] = field(default_factory=dict)  # tr_id -> (key, iv)
    silent: bool = False


@dataclass
class _Symbol:
    price: int
    base: int
    open: int
    high: int
    low: int
    cumulative_volume: int = 0
    cumulative_amount: int = 0


class FakeKisWebSocketServer:
    """One KIS WebSocket host. ``start()``/``stop()`` or use as a context manager; ``url`` to connect."""

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        approval_keys: _IssuesApprovalKeys | Mapping[str, str] | None = None,
        mode: str = "real",
        cap: int = DEFAULT_CAP,
        pingpong_interval: float | None = None,
        linger: float = 0.0,
        seed: int | None = None,
    ) -> None:
        if mode not in FILL_NOTICE_TR:
            raise ValueError("mode must be real or paper")
        self.host = host
        self.port = port
        self.mode = mode
        self.cap = cap
        self.pingpong_interval = pingpong_interval
        self.linger = linger  # seconds an app key stays "in use" after its connection dropped
        self._approval_source = approval_keys
        self.invalid_approval_keys: set[str] = set()
        self.known_trs = frozenset({TRADE_TR, ORDER_BOOK_TR, FILL_NOTICE_TR[mode]})
        self._random = random.Random(seed)
        self._symbols: dict[str, _Symbol] = {}

        # Counters and records for tests (written only by the server's loop).
        self.connections_opened = 0
        self.registrations: Counter[tuple[str, str]] = Counter()  # successful registrations per (tr_id, key)
        self.unregistrations: Counter[tuple[str, str]] = Counter()
        self.refusals: Counter[str] = Counter()  # msg_cd -> how many
        self.messages: list[dict[str, Any]] = []  # every JSON message received (approval keys included)
        self.pings_sent = 0
        self.last_ping = ""  # the text of the latest PINGPONG sent
        self.aes_keys_issued: list[tuple[str, str, str]] = []  # (tr_id, key, iv), one per connection and TR
        self.pongs: list[str] = []  # echoed PINGPONG texts
        self.frames_sent = 0  # data frames written (per connection)
        self.records_sent = 0  # records written (per connection)
        self.records_generated = 0  # records built by the push methods and the load generator

        self._connections: set[_Connection] = set()
        self._apps: dict[str, _Connection] = {}  # app key -> the connection holding its session
        self._lingering: dict[str, asyncio.TimerHandle] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: Server | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._stop: asyncio.Event | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._streams: set[asyncio.Task[Any]] = set()
        self._startup_error: BaseException | None = None

    # ------------------------------------------------------------------------------------ lifecycle
    def start(self) -> FakeKisWebSocketServer:
        self._thread = threading.Thread(target=self._thread_main, name="fake-kis-ws", daemon=True)
        self._thread.start()
        if not self._ready.wait(timeout=10):
            raise RuntimeError("fake KIS WebSocket server did not start")
        if self._startup_error is not None:
            raise self._startup_error
        return self

    def stop(self) -> None:
        if self._loop is not None and self._stop is not None and self._loop.is_running():
            self._loop.call_soon_threadsafe(self._stop.set)
        if self._thread is not None:
            self._thread.join(timeout=10)

    def __enter__(self) -> FakeKisWebSocketServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        return f"ws://{self.host}:{self.port}"

    def _thread_main(self) -> None:
        try:
            asyncio.run(self._main())
        except BaseException as exc:  # reported to start()
            self._startup_error = exc
            self._ready.set()

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        async with serve(self._handle, self.host, self.port, ping_interval=None, compression=None,
                         close_timeout=1.0, server_header=None) as server:
            self._server = server
            self.port = server.sockets[0].getsockname()[1]
            if self.pingpong_interval:
                self._spawn(self._pingpong_every(self.pingpong_interval), self._tasks)
            self._ready.set()
            await self._stop.wait()
            for task in [*self._tasks, *self._streams]:
                task.cancel()
            for conn in list(self._connections):
                conn.ws.transport.abort()

    # ------------------------------------------------------------------------------------ controls
    def push_ticks(self, code: str, records: int = 1, **fields: Any) -> int:
        """One H0STCNT0 frame of ``records`` trades of ``code`` to every connection registered for it.
        ``fields`` fix values of every record (``price``, ``volume``, ``time``). Returns connections reached."""
        return self._call(self._push_ticks(code, records, fields))

    def push_book(self, code: str) -> int:
        """One H0STASP0 frame (10 levels around the current price) to the connections registered for it."""
        return self._call(self._push(ORDER_BOOK_TR, code, lambda conn: self.book_frame(code)))

    def push_fill_notice(self, hts_id: str, **fields: Any) -> int:
        """An encrypted fill notice (fields of :meth:`fill_notice_text`) for ``hts_id``, encrypted with each
        connection's own key/iv of the notice TR. Returns connections reached."""
        tr_id = FILL_NOTICE_TR[self.mode]
        plaintext = self.fill_notice_text(hts_id, **fields)

        def frame(conn: _Connection) -> str:
            key, iv = conn.aes[tr_id]
            return f"1|{tr_id}|001|{encrypt_payload(plaintext, key, iv)}"

        return self._call(self._push(tr_id, hts_id, frame))

    def push_raw(self, text: str) -> int:
        """Send ``text`` as is to every open connection (unknown TRs, malformed frames)."""
        return self._call(self._broadcast_all(text))

    def pingpong(self) -> int:
        """Send the JSON PINGPONG to every open connection now."""
        return self._call(self._pingpong())

    def drop_connections(self) -> int:
        """Abort every open connection without a close frame (as KIS's 1006 looks to the client)."""
        return self._call(self._drop())

    def go_silent(self) -> int:
        """The open connections stop sending anything (data, answers, PINGPONG): a stale stream. New
        connections behave normally."""
        return self._call(self._silence())

    def invalidate_approval_keys(self) -> int:
        """Every approval key known so far is refused from now on (OPSP0011); keys issued later work."""
        return self._call(self._invalidate())

    def stream(self, codes: Iterable[str], rate_per_s: float, records_per_frame: int = 1,
               duration: float | None = None) -> None:
        """Start a load generator in the server's loop: ``rate_per_s`` trade records per second in total,
        spread round-robin over ``codes``, ``records_per_frame`` records per frame, for ``duration`` seconds
        (None: until ``stop_stream``)."""
        self._call(self._start_stream(list(codes), rate_per_s, records_per_frame, duration))

    def stop_stream(self) -> None:
        self._call(self._stop_streams())

    def streaming(self) -> bool:
        """A load generator is still running."""
        return bool(self._streams)

    def open_connections(self) -> int:
        return len(self._connections)

    def active_registrations(self) -> set[tuple[str, str]]:
        return self._call(self._active())

    # ------------------------------------------------------------------------------------ builders
    def trade_record(self, code: str, *, price: int | None = None, volume: int | None = None,
                     time: dt.time | None = None) -> list[str]:
        """46 H0STCNT0 fields for one trade; the price walks one tick at a time unless given."""
        symbol = self._symbol(code)
        if price is None:
            step = self._random.choice((-1, 0, 1)) * tick_size(symbol.price)
            price = min(max(symbol.price + step, symbol.base * 7 // 10), symbol.base * 13 // 10)
        volume = volume if volume is not None else self._random.randint(1, 50)
        symbol.price = price
        symbol.high = max(symbol.high, price)
        symbol.low = min(symbol.low, price)
        symbol.cumulative_volume += volume
        symbol.cumulative_amount += volume * price
        now = dt.datetime.now(SEOUL)
        change = price - symbol.base
        values = list(_TRADE_TEMPLATE)
        values[0] = code
        values[1] = (time or now.time()).strftime("%H%M%S")
        values[2] = str(price)
        values[3] = "2" if change > 0 else "5" if change < 0 else "3"
        values[4] = str(change)
        values[5] = f"{change / symbol.base * 100:.2f}"
        values[7], values[8], values[9] = str(symbol.open), str(symbol.high), str(symbol.low)
        values[10] = str(price + tick_size(price))
        values[11] = str(price)
        values[12] = str(volume)
        values[13] = str(symbol.cumulative_volume)
        values[14] = str(symbol.cumulative_amount)
        values[33] = now.strftime("%Y%m%d")
        values[45] = "0"
        self.records_generated += 1
        return values

    def trade_frame(self, code: str, records: int = 1, **fields: Any) -> str:
        """``0|H0STCNT0|NNN|...``: ``records`` trades of ``code`` back to back."""
        payload = "^".join("^".join(self.trade_record(code, **fields)) for _ in range(records))
        return f"0|{TRADE_TR}|{records:03d}|{payload}"

    def book_frame(self, code: str) -> str:
        symbol = self._symbol(code)
        price, tick = symbol.price, tick_size(symbol.price)
        asks = [price + tick * (n + 1) for n in range(10)]
        bids = [price - tick * n for n in range(10)]
        ask_sizes = [self._random.randint(100, 5_000) for _ in range(10)]
        bid_sizes = [self._random.randint(100, 5_000) for _ in range(10)]
        values = [code, dt.datetime.now(SEOUL).strftime("%H%M%S"), "0", *map(str, asks), *map(str, bids),
                  *map(str, ask_sizes), *map(str, bid_sizes), str(sum(ask_sizes)), str(sum(bid_sizes)), "0", "0",
                  "0", "0", "0", "0", "0", "0.00", str(symbol.cumulative_volume), "0", "0", "0", "0", "00"]
        assert len(values) == 59
        return f"0|{ORDER_BOOK_TR}|001|{'^'.join(values)}"

    @staticmethod
    def fill_notice_text(hts_id: str, *, account_no: str = "5012345601", order_no: str = "0000117057",
                         original_order_no: str = "", side: str = "buy", correction: str = "0",
                         order_kind: str = "00", code: str = "005930", quantity: int = 10, price: int = 71_200,
                         time: dt.time | None = None, rejected: bool = False, is_fill: bool = True,
                         acceptance: str = "2", branch_no: str = "91252", order_quantity: int | None = None,
                         order_price: int | None = None, name: str = "삼성전자",
                         extra_fields: Iterable[str] = ()) -> str:
        """The decrypted H0STCNI0 record (26 fields of §6.4, then ``extra_fields`` as KIS added in 2026)."""
        values = [
            hts_id, account_no, order_no, original_order_no, "01" if side == "sell" else "02", correction,
            order_kind, "0", code, str(quantity), str(price),
            (time or dt.datetime.now(SEOUL).time()).strftime("%H%M%S"), "1" if rejected else "0",
            "2" if is_fill else "1", acceptance, branch_no,
            str(order_quantity if order_quantity is not None else quantity), "홍길동", "", "1", "Y", "", "10", "",
            name, str(order_price if order_price is not None else price), *extra_fields,
        ]
        return "^".join(values)

    # ------------------------------------------------------------------------------------ the server
    async def _handle(self, ws: ServerConnection) -> None:
        conn = _Connection(ws)
        self._connections.add(conn)
        self.connections_opened += 1
        try:
            async for text in ws:
                await self._on_message(conn, text if isinstance(text, str) else text.decode("utf-8", "replace"))
        except ConnectionClosed:
            pass
        finally:
            self._connections.discard(conn)
            self._release_app(conn)

    async def _on_message(self, conn: _Connection, text: str) -> None:
        try:
            message = json.loads(text)
            header = message["header"]
        except (ValueError, KeyError, TypeError):
            await self._answer(conn, "", "", "9", "OPSP9999", "JSON PARSING ERROR")
            return
        if header.get("tr_id") == "PINGPONG":
            self.pongs.append(text)
            return
        self.messages.append(message)
        try:
            body_input = message["body"]["input"]
            tr_id, tr_key = str(body_input["tr_id"]), str(body_input["tr_key"])
        except (KeyError, TypeError):
            await self._answer(conn, "", "", "9", "OPSP9998", "INVALID INPUT")
            return
        approval_key = str(header.get("approval_key", ""))
        app_key = self._app_key_for(approval_key)
        if app_key is None:
            self.refusals["OPSP0011"] += 1
            await self._answer(conn, tr_id, tr_key, "9", "OPSP0011", "invalid approval : NOT FOUND")
            return
        if conn.app_key is None:
            holder = self._apps.get(app_key)
            if holder is not None and holder is not conn:
                self.refusals["OPSP8996"] += 1
                await self._answer(conn, "(null)", "", "9", "OPSP8996", "ALREADY IN USE appkey")
                await conn.ws.close()
                return
            handle = self._lingering.pop(app_key, None)
            if handle is not None:
                handle.cancel()
            conn.app_key = app_key
            self._apps[app_key] = conn
        elif conn.app_key != app_key:
            await self._answer(conn, tr_id, tr_key, "9", "FAKE0403", "fake: another app key on this session")
            return
        if header.get("custtype") != "P":
            await self._answer(conn, tr_id, tr_key, "9", "FAKE0400", "fake: custtype must be P")
            return
        if tr_id not in self.known_trs:
            await self._answer(conn, tr_id, tr_key, "1", "FAKE0404", "fake: unknown tr_id for this host")
            return
        key = (tr_id, tr_key)
        tr_type = header.get("tr_type")
        if tr_type == "1":
            if key in conn.registrations:
                await self._answer(conn, tr_id, tr_key, "1", "OPSP0002", "ALREADY IN SUBSCRIBE")
            elif len(conn.registrations) >= self.cap:
                self.refusals["OPSP0008"] += 1
                await self._answer(conn, tr_id, tr_key, "1", "OPSP0008", "MAX SUBSCRIBE OVER")
            else:
                conn.registrations.add(key)
                self.registrations[key] += 1
                aes = conn.aes.get(tr_id)
                if aes is None:
                    aes = conn.aes[tr_id] = (_random_text(32), _random_text(16))
                    self.aes_keys_issued.append((tr_id, *aes))
                await self._answer(conn, tr_id, tr_key, "0", "OPSP0000", "SUBSCRIBE SUCCESS",
                                   output={"iv": aes[1], "key": aes[0]})
        elif tr_type == "2":
            if key in conn.registrations:
                conn.registrations.discard(key)
                self.unregistrations[key] += 1
                await self._answer(conn, tr_id, tr_key, "0", "OPSP0001", "UNSUBSCRIBE SUCCESS")
            else:
                await self._answer(conn, tr_id, tr_key, "1", "OPSP0003", "UNSUBSCRIBE ERROR(not found!)")
        else:
            await self._answer(conn, tr_id, tr_key, "9", "FAKE0401", "fake: tr_type must be 1 or 2")

    async def _answer(self, conn: _Connection, tr_id: str, tr_key: str, rt_cd: str, msg_cd: str, msg1: str,
                      output: dict[str, str] | None = None) -> None:
        encrypt = "Y" if tr_id in FILL_NOTICE_TR.values() else "N"
        body: dict[str, Any] = {"rt_cd": rt_cd, "msg_cd": msg_cd, "msg1": msg1}
        if output is not None:
            body["output"] = output
        await self._send(conn, json.dumps({"header": {"tr_id": tr_id, "tr_key": tr_key, "encrypt": encrypt},
                                           "body": body}))

    async def _send(self, conn: _Connection, text: str) -> bool:
        if conn.silent:
            return False
        try:
            await conn.ws.send(text)
            return True
        except ConnectionClosed:
            return False

    def _app_key_for(self, approval_key: str) -> str | None:
        if not approval_key or approval_key in self.invalid_approval_keys:
            return None
        source = self._approval_source
        if source is None:
            return approval_key
        mapping = source if isinstance(source, Mapping) else source.approval_keys
        return mapping.get(approval_key)

    def _release_app(self, conn: _Connection) -> None:
        app_key = conn.app_key
        if app_key is None or self._apps.get(app_key) is not conn:
            return
        if self.linger > 0 and self._loop is not None:
            def release() -> None:
                self._lingering.pop(app_key, None)
                if self._apps.get(app_key) is conn:
                    del self._apps[app_key]
            self._lingering[app_key] = self._loop.call_later(self.linger, release)
        else:
            del self._apps[app_key]

    def _symbol(self, code: str) -> _Symbol:
        symbol = self._symbols.get(code)
        if symbol is None:
            base = BASE_PRICES.get(code, 10_000)
            symbol = _Symbol(price=base, base=base, open=base, high=base, low=base)
            self._symbols[code] = symbol
        return symbol

    # ------------------------------------------------------------------------------------ loop-side actions
    async def _push_ticks(self, code: str, records: int, fields: dict[str, Any]) -> int:
        frame = self.trade_frame(code, records, **fields)
        return await self._push(TRADE_TR, code, lambda conn: frame, records)

    async def _push(self, tr_id: str, tr_key: str, build: Any, records: int = 1) -> int:
        reached = 0
        for conn in list(self._connections):
            if (tr_id, tr_key) in conn.registrations and await self._send(conn, build(conn)):
                reached += 1
                self.frames_sent += 1
                self.records_sent += records
        return reached

    async def _broadcast_all(self, text: str) -> int:
        reached = 0
        for conn in list(self._connections):
            reached += await self._send(conn, text)
        return reached

    async def _pingpong(self) -> int:
        text = json.dumps({"header": {"tr_id": "PINGPONG", "datetime": dt.datetime.now(SEOUL).strftime("%Y%m%d%H%M%S")}})
        self.last_ping = text
        reached = await self._broadcast_all(text)
        self.pings_sent += reached
        return reached

    async def _pingpong_every(self, interval: float) -> None:
        while True:
            await asyncio.sleep(interval)
            await self._pingpong()

    async def _drop(self) -> int:
        dropped = list(self._connections)
        for conn in dropped:
            conn.ws.transport.abort()
        return len(dropped)

    async def _silence(self) -> int:
        for conn in self._connections:
            conn.silent = True
        return len(self._connections)

    async def _invalidate(self) -> int:
        source = self._approval_source
        if source is None:
            known = {str(m.get("header", {}).get("approval_key", "")) for m in self.messages}
        else:
            known = set(source if isinstance(source, Mapping) else source.approval_keys)
        self.invalid_approval_keys |= known
        return len(known)

    async def _active(self) -> set[tuple[str, str]]:
        return set().union(*(conn.registrations for conn in self._connections))

    async def _start_stream(self, codes: list[str], rate: float, per_frame: int, duration: float | None) -> None:
        if not codes or rate <= 0 or per_frame < 1:
            raise ValueError("stream needs codes, a positive rate and at least one record per frame")
        self._spawn(self._stream(codes, rate, per_frame, duration), self._streams)

    async def _stop_streams(self) -> None:
        for task in list(self._streams):
            task.cancel()

    async def _stream(self, codes: list[str], rate: float, per_frame: int, duration: float | None) -> None:
        loop = asyncio.get_running_loop()
        started = loop.time()
        generated = 0
        turn = 0
        while True:
            elapsed = loop.time() - started
            if duration is not None and elapsed >= duration:
                return
            due = int(elapsed * rate) - generated
            while due > 0:
                code = codes[turn % len(codes)]
                turn += 1
                records = min(per_frame, due)
                await self._push_ticks(code, records, {})
                generated += records
                due -= records
            await asyncio.sleep(0.002)

    # ------------------------------------------------------------------------------------ plumbing
    def _spawn(self, coro: Coroutine[Any, Any, Any], group: set[asyncio.Task[Any]]) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        group.add(task)
        task.add_done_callback(group.discard)

    def _call(self, coro: Coroutine[Any, Any, T]) -> T:
        loop = self._loop
        if loop is None or not loop.is_running():
            coro.close()
            raise RuntimeError("fake KIS WebSocket server is not running")
        if threading.current_thread() is self._thread:
            coro.close()
            raise RuntimeError("control methods are for other threads, not the server's loop")
        return asyncio.run_coroutine_threadsafe(coro, loop).result(timeout=10)


def _random_text(length: int) -> str:
    return "".join(secrets.choice(_KEY_ALPHABET) for _ in range(length))
