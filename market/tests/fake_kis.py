"""A fake KIS REST server for tests, speaking the wire format of ``shared/kis/fake_responses.md``.

It runs ``http.server.ThreadingHTTPServer`` on 127.0.0.1 (port 0) in a thread, so the client under test
talks real HTTP with real sockets, time-outs and dropped connections. Field names, header names and error
bodies follow the fact sheet; values are invented. Where KIS's real answer is unknown (e.g. selling more
than held on a real account) the fake answers with a ``FAKE....`` msg_cd so nobody mistakes it for KIS.

What it enforces, like KIS:
* tokenP: credentials, one issuance per minute per app key (403 EGW00133, ``error_code`` shape), the same
  token again within 6 hours; expired/invalidated tokens answer 500 EGW00123/EGW00121.
* every /uapi call: appkey/appsecret/authorization ("Bearer ...")/custtype headers, tr_id valid for the
  path *and* the host (real vs paper), POST bodies with upper-case keys and string values, the account.
* a per-app-key requests-per-second limit (500 EGW00201).
* tr_cont/CTX_AREA_FK100/NK100 pagination for balance and daily orders.
* an in-memory order book: accepted orders appear in daily orders; fills change holdings and cash.

Fault modes (``add_fault``) let a test make one path misbehave ``times`` times (None = forever):
refusals (nothing is processed): ``rate_limit``, ``token_expired``, ``token_invalid``, ``data_changed``,
``echo_secret``, ``reject`` (a business rejection, HTTP 200 ``rt_cd`` "1": ``body`` given by the test,
default APBK0918 "장운영시간이 아닙니다."), ``lost_request`` (the connection drops before KIS processes
anything: to the caller it looks exactly like ``drop_connection``), ``endless_same_key``, ``endless_new_key``;
after processing (an order IS accepted, then the answer is lost or garbled): ``drop_connection``,
``delay``, ``bad_gateway``, ``empty_msg_cd``, ``garbage_body``, ``missing_odno``, ``raw`` (answer
``status``/``body`` given by the test, for malformed-answer tests).

``FakeKisFleet`` serves many customers from one host, as KIS does: one ``FakeKisServer`` per app key
(its own token limit, per-second limit and order book), chosen by the request's app key, with 30–80 ms
per call and a record of every answer; the scale drill (``orders.scale_drill``) runs on it.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import itertools
import json
import random
import secrets
import socket
import threading
import time
import uuid
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit
from zoneinfo import ZoneInfo

SEOUL = ZoneInfo("Asia/Seoul")

# Sentinel credentials: unique strings that tests search for in logs and error texts.
FAKE_APP_KEY = "PSfakeAppKeySENTINEL0000000000000001"  # 36 chars like a real app key
FAKE_APP_SECRET = ("SECRETsentinel" + "x" * 200)[:180]  # 180 chars like a real app secret
FAKE_ACCOUNT_NO = "50123456"
FAKE_PRODUCT_CODE = "01"

TOKEN_PATH = "/oauth2/tokenP"
REVOKE_PATH = "/oauth2/revokeP"
APPROVAL_PATH = "/oauth2/Approval"
HASHKEY_PATH = "/uapi/hashkey"
ORDER_CASH_PATH = "/uapi/domestic-stock/v1/trading/order-cash"
ORDER_REVISE_CANCEL_PATH = "/uapi/domestic-stock/v1/trading/order-rvsecncl"
BALANCE_PATH = "/uapi/domestic-stock/v1/trading/inquire-balance"
DAILY_ORDERS_PATH = "/uapi/domestic-stock/v1/trading/inquire-daily-ccld"
BUYABLE_PATH = "/uapi/domestic-stock/v1/trading/inquire-psbl-order"
QUOTE_PATH = "/uapi/domestic-stock/v1/quotations/inquire-price"
DAILY_CHART_PATH = "/uapi/domestic-stock/v1/quotations/inquire-daily-itemchartprice"

# path -> (method, real tr_ids, paper tr_ids)
ROUTES: dict[str, tuple[str, frozenset[str], frozenset[str]]] = {
    ORDER_CASH_PATH: ("POST", frozenset({"TTTC0011U", "TTTC0012U"}), frozenset({"VTTC0011U", "VTTC0012U"})),
    ORDER_REVISE_CANCEL_PATH: ("POST", frozenset({"TTTC0013U"}), frozenset({"VTTC0013U"})),
    BALANCE_PATH: ("GET", frozenset({"TTTC8434R"}), frozenset({"VTTC8434R"})),
    DAILY_ORDERS_PATH: ("GET", frozenset({"TTTC0081R", "CTSC9215R"}), frozenset({"VTTC0081R", "VTSC9215R"})),
    BUYABLE_PATH: ("GET", frozenset({"TTTC8908R"}), frozenset({"VTTC8908R"})),
    QUOTE_PATH: ("GET", frozenset({"FHKST01010100"}), frozenset({"FHKST01010100"})),
    DAILY_CHART_PATH: ("GET", frozenset({"FHKST03010100"}), frozenset({"FHKST03010100"})),
}
PAGINATED_PATHS = frozenset({BALANCE_PATH, DAILY_ORDERS_PATH})

REFUSAL_FAULTS = frozenset(
    {"rate_limit", "token_expired", "token_invalid", "data_changed", "echo_secret", "reject", "lost_request"}
)
PAGINATION_FAULTS = frozenset({"endless_same_key", "endless_new_key"})
AFTER_PROCESSING_FAULTS = frozenset(
    {"drop_connection", "delay", "bad_gateway", "empty_msg_cd", "garbage_body", "missing_odno", "raw"}
)

# Market holidays the fake knows (enough for realistic gaps in the charts).
HOLIDAYS = frozenset({
    dt.date(2025, 1, 1), dt.date(2025, 1, 28), dt.date(2025, 1, 29), dt.date(2025, 1, 30),
    dt.date(2025, 3, 3), dt.date(2025, 5, 5), dt.date(2025, 5, 6), dt.date(2025, 6, 3), dt.date(2025, 6, 6),
    dt.date(2025, 8, 15), dt.date(2025, 10, 3), dt.date(2025, 10, 6), dt.date(2025, 10, 7),
    dt.date(2025, 10, 8), dt.date(2025, 10, 9), dt.date(2025, 12, 25), dt.date(2025, 12, 31),
    dt.date(2026, 1, 1), dt.date(2026, 2, 16), dt.date(2026, 2, 17), dt.date(2026, 2, 18),
    dt.date(2026, 3, 2), dt.date(2026, 5, 5), dt.date(2026, 5, 25), dt.date(2026, 8, 17),
    dt.date(2026, 9, 24), dt.date(2026, 9, 25), dt.date(2026, 10, 5), dt.date(2026, 10, 9),
    dt.date(2026, 12, 25), dt.date(2026, 12, 31),
})


def tick_size(price: int) -> int:
    """KRX tick table since 2023-01-25 (§8)."""
    for limit, tick in ((2_000, 1), (5_000, 5), (20_000, 10), (50_000, 50), (200_000, 100), (500_000, 500)):
        if price < limit:
            return tick
    return 1_000


def is_trading_day(day: dt.date) -> bool:
    return day.weekday() < 5 and day not in HOLIDAYS


def trading_days(start: dt.date, end: dt.date) -> list[dt.date]:
    days = []
    day = start
    while day <= end:
        if is_trading_day(day):
            days.append(day)
        day += dt.timedelta(days=1)
    return days


@dataclass
class Stock:
    code: str
    name: str
    price: int
    base_price: int  # previous close
    listed_on: dt.date = dt.date(2015, 1, 2)

    @property
    def upper_limit(self) -> int:
        raw = self.base_price * 13 // 10
        return raw - raw % tick_size(raw)

    @property
    def lower_limit(self) -> int:
        raw = -(-self.base_price * 7 // 10)  # ceil
        tick = tick_size(raw)
        return raw + (-raw % tick)


@dataclass
class Position:
    quantity: int
    average_price: Decimal
    bought_today: int = 0
    sold_today: int = 0


@dataclass
class Fault:
    kind: str
    remaining: int | None  # None = forever
    delay: float = 0.0
    method: str | None = None
    skip: int = 0  # let this many matching requests through first (e.g. fail only page 2)
    status: int = 200  # for "raw"
    body: bytes = b""  # for "raw"


@dataclass
class RecordedRequest:
    method: str
    path: str
    tr_id: str
    headers: dict[str, str]
    query: dict[str, str]
    body: dict[str, Any] | None
    raw_body: bytes


@dataclass
class Reply:
    status: int
    body: bytes
    headers: dict[str, str] = field(default_factory=dict)
    action: str = "send"  # send | drop | delay
    delay: float = 0.0


@dataclass
class AppState:
    app_secret: str
    last_issue: float = float("-inf")  # monotonic time of the last successful tokenP
    current_token: str | None = None
    sent: deque[float] = field(default_factory=deque)  # request times for the rate limit


@dataclass
class TokenState:
    app_key: str
    expires_at: dt.datetime
    issued_at: dt.datetime
    status: str = "valid"  # valid | expired | invalid


def _json(obj: Any) -> bytes:
    return json.dumps(obj, ensure_ascii=False).encode("utf-8")


def _error(status: int, msg_cd: str, msg1: str, rt_cd: str = "1") -> Reply:
    return Reply(status, _json({"rt_cd": rt_cd, "msg_cd": msg_cd, "msg1": msg1}))


def _oauth_error(code: str, description: str, status: int = 403) -> Reply:
    return Reply(status, _json({"error_description": description, "error_code": code}))


def real_time() -> float:
    """The real wall clock, also in a process whose clock time-machine moved (a suite run with TEST_NOW):
    for a host whose clients are child processes, which run on the real clock."""
    try:
        from time_machine import escape_hatch
    except ImportError:  # time-machine is a test dependency; without it no clock is moved
        return time.time()
    if not escape_hatch.is_travelling():  # the escape hatch raises outside a travel: the clock is the real one
        return time.time()
    return escape_hatch.time.time()


class _LocalHost:
    """Serving on 127.0.0.1 in a thread (the single-account server and the fleet): start, stop, `with`.
    ``wall_clock`` (seconds since the epoch) is the host's clock: this process's by default (a test that
    pins its clock pins the broker's), ``real_time`` for a host that child processes call."""

    _httpd: ThreadingHTTPServer | None
    _thread: threading.Thread | None
    _stopping: threading.Event
    wall_clock: Callable[[], float] = staticmethod(lambda: time.time())

    def now(self) -> dt.datetime:
        """The host's clock, in Seoul."""
        return dt.datetime.fromtimestamp(self.wall_clock(), SEOUL)

    def _serve(self, httpd: ThreadingHTTPServer, name: str, poll_interval: float):
        httpd.fake = self  # type: ignore[attr-defined]
        self._httpd = httpd
        self._thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": poll_interval},
                                        name=name, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def base_url(self) -> str:
        assert self._httpd is not None, "server not started"
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}"


class FakeKisServer(_LocalHost):
    """One KIS host (``mode`` "real" or "paper") with one account. Start with ``start()`` or as a context."""

    def __init__(
        self,
        mode: str = "real",
        app_key: str = FAKE_APP_KEY,
        app_secret: str = FAKE_APP_SECRET,
        account_no: str = FAKE_ACCOUNT_NO,
        product_code: str = FAKE_PRODUCT_CODE,
        rate_limit_per_second: int | None | str = "kis",
        today: dt.date | None = None,
        port: int = 0,
    ) -> None:
        if mode not in ("real", "paper"):
            raise ValueError("mode must be real or paper")
        self.mode = mode
        self.port = port
        self.account_no = account_no
        self.product_code = product_code
        self.apps: dict[str, AppState] = {app_key: AppState(app_secret)}
        # "kis": KIS's ~20/s real, 2/s paper per app key; None switches the limit off.
        self.rate_limit_per_second: int | None = (
            (20 if mode == "real" else 2) if rate_limit_per_second == "kis" else rate_limit_per_second  # type: ignore[assignment]
        )
        self.today = today or self.now().date()
        self.token_min_interval = 60.0  # seconds between issuances per app key (EGW00133)
        self.token_delay = 0.0  # seconds tokenP takes, to make concurrent callers overlap
        self.balance_page_size = 50 if mode == "real" else 20
        self.daily_orders_page_size = 100 if mode == "real" else 15
        self.chart_padding = 0  # number of empty {} objects appended to chart output2
        self.auto_fill = True  # accepted orders fill at once (limit at its price, market at the quote)
        self.cash = 10_000_000
        # The broker's clock minus ours: order times (ORD_TMD, ord_tmd) are stamped on the broker's clock.
        self.clock_offset = dt.timedelta(0)
        # 모의투자 answers an order with its number unpadded ("47001") while its daily orders pad it
        # ("0000047001") (KIS_API.md §4.1); the real host pads both.
        self.short_order_numbers = mode == "paper"

        self.stocks: dict[str, Stock] = {}
        for stock in (
            Stock("005930", "삼성전자", 72_900, 73_200),
            Stock("000660", "SK하이닉스", 185_500, 183_500),
            Stock("035720", "카카오", 41_250, 41_000),
            Stock("0039P0", "신규상장", 12_340, 12_000, listed_on=dt.date(2025, 11, 3)),
        ):
            self.stocks[stock.code] = stock
        self.positions: dict[str, Position] = {}
        # (code, day) -> chart row values set by a test (``set_bar``); other days are generated.
        self.bar_overrides: dict[tuple[str, dt.date], dict[str, int]] = {}
        self.order_rows: list[dict[str, str]] = []  # inquire-daily-ccld rows, in acceptance order
        self.accepted_orders: list[dict[str, str]] = []  # bodies of accepted order-cash/rvsecncl POSTs

        self.tokens: dict[str, TokenState] = {}
        self.tokens_issued: list[str] = []  # every new token value handed out
        # WebSocket approval keys (§2.3): key -> app key, so a fake WebSocket server can check them.
        self.approval_keys: dict[str, str] = {}
        self.approval_keys_issued: list[str] = []
        self.requests: list[RecordedRequest] = []
        self.counts: Counter[tuple[str, str]] = Counter()
        self.rate_limited = 0  # how many requests the per-key limit refused
        self._faults: dict[str, list[Fault]] = {}
        self._continuations: dict[tuple[str, str], tuple[str, int]] = {}  # (path, nk) -> (fk, offset)
        self._endless_counter = itertools.count(1)
        self._order_seq = itertools.count(117_100)
        self._lock = threading.RLock()
        self._stopping = threading.Event()
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------------------------------ lifecycle
    def start(self) -> FakeKisServer:
        httpd = ThreadingHTTPServer(("127.0.0.1", self.port), _Handler)
        httpd.daemon_threads = True
        return self._serve(httpd, "fake-kis", poll_interval=0.01)

    # ------------------------------------------------------------------------------------ test controls
    def add_fault(self, path: str, kind: str, times: int | None = 1, delay: float = 0.0,
                  method: str | None = None, skip: int = 0, status: int = 200, body: bytes | str = b"") -> None:
        if kind not in REFUSAL_FAULTS | PAGINATION_FAULTS | AFTER_PROCESSING_FAULTS:
            raise ValueError(f"unknown fault {kind}")
        raw = body.encode("utf-8") if isinstance(body, str) else body
        with self._lock:
            self._faults.setdefault(path, []).append(Fault(kind, times, delay, method, skip, status, raw))

    def clear_faults(self) -> None:
        with self._lock:
            self._faults.clear()

    def count(self, path: str, method: str | None = None) -> int:
        with self._lock:
            if method:
                return self.counts[(method.upper(), path)]
            return sum(n for (_, p), n in self.counts.items() if p == path)

    def tr_ids(self, path: str) -> list[str]:
        with self._lock:
            return [r.tr_id for r in self.requests if r.path == path]

    def expire_tokens(self) -> None:
        """All tokens expired (as after 24 h): API calls answer EGW00123, tokenP may issue again."""
        with self._lock:
            for state in self.tokens.values():
                state.status = "expired"
            for app in self.apps.values():
                app.current_token = None
                app.last_issue = float("-inf")

    def invalidate_tokens(self) -> None:
        """Tokens dropped by KIS (e.g. maintenance): API calls answer EGW00121."""
        with self._lock:
            for state in self.tokens.values():
                state.status = "invalid"
            for app in self.apps.values():
                app.current_token = None
                app.last_issue = float("-inf")

    def token_issued_elsewhere(self, app_key: str = FAKE_APP_KEY) -> None:
        """Another client of the app key (another process, a script) issued a token just now: tokenP
        answers EGW00133 until ``token_min_interval`` seconds have passed."""
        with self._lock:
            self.apps[app_key].last_issue = time.monotonic()

    def register_token(self, token: str, expires_at: dt.datetime, app_key: str = FAKE_APP_KEY) -> None:
        """Make the fake accept a token issued 'earlier' (for tests that pre-fill a token store)."""
        with self._lock:
            self.tokens[token] = TokenState(app_key, expires_at, self.now() - dt.timedelta(hours=7))

    def set_holdings(self, holdings: dict[str, tuple[int, int]]) -> None:
        """``{code: (quantity, average_price)}``; unknown codes become new stocks."""
        with self._lock:
            self.positions.clear()
            for code, (quantity, average) in holdings.items():
                if code not in self.stocks:
                    self.stocks[code] = Stock(code, f"종목{code}", average, average)
                self.positions[code] = Position(quantity, Decimal(average))

    def seed_orders(self, count: int, day: dt.date, code: str = "005930", side: str = "buy") -> list[str]:
        """Add ``count`` filled orders on ``day`` (e.g. placed earlier or from the MTS app); returns ODNOs."""
        numbers = []
        with self._lock:
            stock = self.stocks[code]
            for index in range(count):
                odno = f"{next(self._order_seq):010d}"
                order_time = f"{9 + index // 3600 % 6:02d}{index // 60 % 60:02d}{index % 60:02d}"
                self.order_rows.append(self._order_row(
                    day, odno, "", side, stock, 1, stock.price, "00", order_time, filled=True))
                numbers.append(odno)
        return numbers

    def broker_now(self) -> dt.datetime:
        """The broker's clock: ours plus ``clock_offset``."""
        return self.now() + self.clock_offset

    def place_external_order(self, code: str, side: str, quantity: int, *, price: int = 0,
                             at: dt.datetime | None = None, filled: bool | None = None) -> str:
        """An order the account's owner placed outside the auto-trader (HTS, the mobile app) at ``at``
        (the broker's clock; default now): it shows in the daily orders like any other. A market order
        fills at the quote when ``filled`` (default: ``auto_fill``). Returns its ODNO (padded)."""
        with self._lock:
            stock = self.stocks[code]
            odno = f"{next(self._order_seq):010d}"
            filled = self.auto_fill if filled is None else filled
            order_type = "00" if price else "01"
            fill_price = price or stock.price
            moment = (at or self.broker_now()).astimezone(SEOUL)
            row = self._order_row(moment.date() if at else self.today, odno, "", side, stock, quantity,
                                  fill_price if filled else price, order_type, moment.strftime("%H%M%S"),
                                  filled=filled)
            self.order_rows.append(row)
            if filled:
                self._fill(side, stock, quantity, fill_price)
        return odno

    # ------------------------------------------------------------------------------------ dispatch
    def _take_fault(self, method: str, path: str) -> Fault | None:
        with self._lock:
            for fault in self._faults.get(path, []):
                if fault.method and fault.method.upper() != method:
                    continue
                if fault.skip > 0:
                    fault.skip -= 1
                    continue
                if fault.remaining is None:
                    return fault
                if fault.remaining > 0:
                    fault.remaining -= 1
                    return fault
        return None

    def handle(self, method: str, raw_path: str, headers: dict[str, str], raw_body: bytes) -> Reply:
        parts = urlsplit(raw_path)
        path = parts.path
        query = dict(parse_qsl(parts.query, keep_blank_values=True))
        body: dict[str, Any] | None = None
        if raw_body:
            try:
                parsed = json.loads(raw_body.decode("utf-8"))
                body = parsed if isinstance(parsed, dict) else None
            except (ValueError, UnicodeDecodeError):
                body = None
        tr_id = headers.get("tr_id", "")
        with self._lock:
            self.counts[(method, path)] += 1
            self.requests.append(RecordedRequest(method, path, tr_id, dict(headers), query, body, raw_body))

        fault = self._take_fault(method, path)
        if fault and fault.kind in REFUSAL_FAULTS:
            return self._refusal(fault, headers)

        if path == TOKEN_PATH and method == "POST":
            if self.token_delay:
                self._stopping.wait(self.token_delay)
            reply = self._token(body)
        elif path == REVOKE_PATH and method == "POST":
            reply = self._revoke(body)
        elif path == APPROVAL_PATH and method == "POST":
            reply = self._approval(body)
        elif path == HASHKEY_PATH and method == "POST":
            reply = self._hashkey(headers, body, raw_body)
        elif path in ROUTES:
            reply = self._api(method, path, headers, query, body, raw_body, fault)
        else:
            reply = _error(500, "MCA00124", "해당 서비스를 찾을수 없습니다.")
        if fault and fault.kind in AFTER_PROCESSING_FAULTS:
            reply = self._garble(fault, reply)
        return reply

    def _refusal(self, fault: Fault, headers: dict[str, str]) -> Reply:
        if fault.kind == "lost_request":  # lost on the way: KIS never processed it, the caller cannot tell
            return Reply(0, b"", action="drop")
        if fault.kind == "rate_limit":
            return _error(500, "EGW00201", "초당 거래건수를 초과하였습니다.")
        if fault.kind == "token_expired":
            return _error(500, "EGW00123", "기간이 만료된 token 입니다.")
        if fault.kind == "token_invalid":
            return _error(500, "EGW00121", "유효하지 않은 token 입니다.")
        if fault.kind == "data_changed":
            return _error(200, "SYDB0050", "조회이후에 자료가 변경되었습니다.(다시 조회하세요)", rt_cd="7")
        if fault.kind == "reject":
            body = fault.body or _json({"rt_cd": "1", "msg_cd": "APBK0918", "msg1": "장운영시간이 아닙니다.", "output": {}})
            return Reply(fault.status, body)
        # echo_secret: an error text that repeats what the client sent (KIS has been seen echoing input).
        echoed = (f"입력값 오류 appsecret={headers.get('appsecret', '')} "
                  f"{headers.get('authorization', '')} CANO={self.account_no}")
        return _error(200, "OPSQ2001", echoed, rt_cd="2")

    def _garble(self, fault: Fault, reply: Reply) -> Reply:
        if fault.kind == "drop_connection":
            return Reply(0, b"", action="drop")
        if fault.kind == "delay":
            return Reply(reply.status, reply.body, reply.headers, action="delay", delay=fault.delay)
        if fault.kind == "bad_gateway":
            return Reply(502, b"<html><body><h1>502 Bad Gateway</h1></body></html>",
                         {"content-type": "text/html"})
        if fault.kind == "empty_msg_cd":
            return _error(500, "", "")
        if fault.kind == "raw":
            content_type = "application/json; charset=utf-8" if fault.body[:1] == b"{" else "text/html"
            return Reply(fault.status, fault.body, {"content-type": content_type})
        if fault.kind == "garbage_body":
            return Reply(200, b'{"rt_cd":"0","msg_cd":"APBK0013","output":{"ODNO":', reply.headers)
        # missing_odno: a "success" without an order number
        data = json.loads(reply.body)
        data["output"] = {}
        return Reply(reply.status, _json(data), reply.headers)

    # ------------------------------------------------------------------------------------ oauth
    def _token(self, body: dict[str, Any] | None) -> Reply:
        if not body or body.get("grant_type") != "client_credentials":
            return _oauth_error("FAKE0401", "fake: grant_type must be client_credentials")
        app_key = str(body.get("appkey", ""))
        with self._lock:
            app = self.apps.get(app_key)
            if app is None:
                return _oauth_error("EGW00103", "유효하지 않은 AppKey입니다.")
            if body.get("appsecret") != app.app_secret:
                return _oauth_error("EGW00105", "유효하지 않은 AppSecret입니다.")
            now_mono = time.monotonic()
            if now_mono - app.last_issue < self.token_min_interval:
                return _oauth_error("EGW00133", "접근토큰 발급 잠시 후 다시 시도하세요(1분당 1회)")
            now = self.now().replace(microsecond=0)
            current = self.tokens.get(app.current_token or "")
            if current and current.status == "valid" and now - current.issued_at < dt.timedelta(hours=6):
                token, state = app.current_token, current  # same token within 6 h (§2.1)
            else:
                token = "eyJ0eXAiOiJKV1QiLCJhbGciOiJIUzUxMiJ9." + secrets.token_urlsafe(48) + ".ZmFrZQ"
                state = TokenState(app_key, now + dt.timedelta(days=1), now)
                self.tokens[token] = state
                self.tokens_issued.append(token)
                app.current_token = token
            app.last_issue = now_mono
        return Reply(200, _json({
            "access_token": token,
            "access_token_token_expired": state.expires_at.strftime("%Y-%m-%d %H:%M:%S"),
            "token_type": "Bearer",
            "expires_in": int((state.expires_at - now).total_seconds()),
        }))

    def _revoke(self, body: dict[str, Any] | None) -> Reply:
        body = body or {}
        with self._lock:
            app = self.apps.get(str(body.get("appkey", "")))
            if app is None or body.get("appsecret") != app.app_secret:
                return _oauth_error("EGW00103", "유효하지 않은 AppKey입니다.")
            state = self.tokens.get(str(body.get("token", "")))
            if state is None or state.status != "valid":
                return _oauth_error("EGW00121", "유효하지 않은 token 입니다.")
            state.status = "invalid"
            app.current_token = None
        return Reply(200, _json({"code": 200, "message": "접근토큰 폐기에 성공하였습니다"}))

    def _approval(self, body: dict[str, Any] | None) -> Reply:
        """WebSocket approval key: the secret travels as ``secretkey``, not ``appsecret`` (§2.3)."""
        if not body or body.get("grant_type") != "client_credentials":
            return _oauth_error("FAKE0401", "fake: grant_type must be client_credentials")
        with self._lock:
            app = self.apps.get(str(body.get("appkey", "")))
            if app is None:
                return _oauth_error("EGW00103", "유효하지 않은 AppKey입니다.")
            if body.get("secretkey") != app.app_secret:
                return _oauth_error("EGW00105", "유효하지 않은 AppSecret입니다.")
            key = str(uuid.uuid4())  # 36 chars like KIS's
            self.approval_keys[key] = str(body["appkey"])
            self.approval_keys_issued.append(key)
        return Reply(200, _json({"approval_key": key}))

    def _hashkey(self, headers: dict[str, str], body: dict[str, Any] | None, raw_body: bytes) -> Reply:
        app = self.apps.get(headers.get("appkey", ""))
        if app is None or headers.get("appsecret") != app.app_secret:
            return _error(500, "EGW00103", "유효하지 않은 AppKey입니다.")
        return Reply(200, _json({"BODY": body, "HASH": hashlib.sha256(raw_body).hexdigest()}))

    # ------------------------------------------------------------------------------------ /uapi
    def _api(self, method: str, path: str, headers: dict[str, str], query: dict[str, str],
             body: dict[str, Any] | None, raw_body: bytes, fault: Fault | None) -> Reply:
        route_method, real_ids, paper_ids = ROUTES[path]
        if method != route_method:
            return _error(500, "MCA00124", "해당 서비스를 찾을수 없습니다.")
        app_key = headers.get("appkey", "")
        with self._lock:
            app = self.apps.get(app_key)
            if app is None or headers.get("appsecret") != app.app_secret:
                return _error(500, "EGW00103", "유효하지 않은 AppKey입니다.")
            if self.rate_limit_per_second is not None:
                now = time.monotonic()
                while app.sent and app.sent[0] <= now - 1.0:
                    app.sent.popleft()
                if len(app.sent) >= self.rate_limit_per_second:
                    self.rate_limited += 1
                    return _error(500, "EGW00201", "초당 거래건수를 초과하였습니다.")
                app.sent.append(now)
            authorization = headers.get("authorization", "")
            if not authorization.startswith("Bearer "):
                return _error(500, "EGW00121", "유효하지 않은 token 입니다.")
            state = self.tokens.get(authorization[len("Bearer "):])
            if state is None or state.status == "invalid" or state.app_key != app_key:
                return _error(500, "EGW00121", "유효하지 않은 token 입니다.")
            if state.status == "expired" or state.expires_at <= self.now():
                return _error(500, "EGW00123", "기간이 만료된 token 입니다.")
        if headers.get("custtype") != "P":
            return _error(500, "FAKE0400", "fake: custtype header must be P")
        tr_id = headers.get("tr_id", "")
        allowed = real_ids if self.mode == "real" else paper_ids
        if tr_id not in allowed:
            if self.mode == "paper":
                return _error(500, "EGW02006", "모의투자 TR 이 아닙니다.")
            return _error(500, "MCA00124", "해당 서비스를 찾을수 없습니다.")
        if method == "POST":
            if body is None:
                return _error(200, "OPSQ2001", "ERROR : INPUT INVALID_CHECK_BODY", rt_cd="2")
            if any(key != key.upper() or not isinstance(value, str) for key, value in body.items()):
                return _error(200, "OPSQ2001", "ERROR : INPUT INVALID_CHECK_BODY_FORMAT", rt_cd="2")
            if "hashkey" in headers and headers["hashkey"] != hashlib.sha256(raw_body).hexdigest():
                return _error(500, "EGW00131", "유효하지 않은 hashkey입니다.")
            fields = body
        else:
            fields = query
        if path not in (QUOTE_PATH, DAILY_CHART_PATH):
            if fields.get("CANO") != self.account_no or fields.get("ACNT_PRDT_CD") != self.product_code:
                return _error(200, "OPSQ2000", "ERROR : INPUT INVALID_CHECK_ACNO", rt_cd="2")
        with self._lock:
            if path == QUOTE_PATH:
                return self._quote(query)
            if path == DAILY_CHART_PATH:
                return self._chart(query)
            if path == ORDER_CASH_PATH:
                return self._order_cash(tr_id, fields)
            if path == ORDER_REVISE_CANCEL_PATH:
                return self._revise_cancel(fields)
            if path == BALANCE_PATH:
                return self._balance(headers, query, fault)
            if path == DAILY_ORDERS_PATH:
                return self._daily_orders(headers, query, fault)
            return self._buyable(query)

    # quotations
    @staticmethod
    def _fid(query: dict[str, str], name: str) -> str:
        # KIS accepts FID_* names in upper and lower case (§3.1).
        return query.get(name, query.get(name.lower(), ""))

    def _ok(self, payload: dict[str, Any], msg_cd: str = "MCA00000", msg1: str = "정상처리 되었습니다.",
            tr_cont: str | None = None) -> Reply:
        data = {"rt_cd": "0", "msg_cd": msg_cd, "msg1": msg1} | payload
        headers = {"tr_cont": tr_cont} if tr_cont is not None else {}
        return Reply(200, _json(data), headers)

    def _quote(self, query: dict[str, str]) -> Reply:
        stock = self.stocks.get(self._fid(query, "FID_INPUT_ISCD"))
        if stock is None:
            return self._ok({"output": {"stck_prpr": "0", "stck_shrn_iscd": "", "iscd_stat_cls_code": ""}})
        change = stock.price - stock.base_price
        sign = "2" if change > 0 else "5" if change < 0 else "3"
        rate = (Decimal(change) * 100 / stock.base_price).quantize(Decimal("0.01"), ROUND_HALF_UP)
        tick = tick_size(stock.price)
        return self._ok({"output": {
            "iscd_stat_cls_code": "55", "marg_rate": "20.00", "rprs_mrkt_kor_name": "KOSPI200",
            "new_hgpr_lwpr_cls_code": "", "bstp_kor_isnm": "전기·전자", "temp_stop_yn": "N",
            "oprc_rang_cont_yn": "N", "clpr_rang_cont_yn": "N", "crdt_able_yn": "Y",
            "stck_prpr": str(stock.price), "prdy_vrss": str(change), "prdy_vrss_sign": sign,
            "prdy_ctrt": str(rate), "acml_tr_pbmn": str(stock.price * 1_234_567), "acml_vol": "1234567",
            "stck_oprc": str(stock.base_price), "stck_hgpr": str(max(stock.price, stock.base_price) + tick),
            "stck_lwpr": str(min(stock.price, stock.base_price) - tick),
            "stck_mxpr": str(stock.upper_limit), "stck_llam": str(stock.lower_limit),
            "stck_sdpr": str(stock.base_price), "aspr_unit": str(tick), "hts_deal_qty_unit_val": "1",
            "per": "14.52", "pbr": "1.31", "eps": "5020.00", "bps": "55650.00", "hts_avls": "4315416",
            "lstn_stcn": "5919637922", "w52_hgpr": "88800", "w52_lwpr": "49900",
            "stck_shrn_iscd": stock.code, "vi_cls_code": "N", "mrkt_warn_cls_code": "00",
            "short_over_yn": "N", "sltr_yn": "N", "mang_issu_cls_code": "N", "invt_caful_yn": "N",
        }})

    def set_bar(self, code: str, day: dt.date, *, close: int, open: int | None = None,  # noqa: A002
                high: int | None = None, low: int | None = None, volume: int = 1_000_000) -> None:
        """Serve this bar for ``code`` on ``day`` in the daily chart instead of the generated one."""
        open_ = close if open is None else open
        with self._lock:
            self.bar_overrides[(code, day)] = {
                "open": open_, "high": max(open_, close) if high is None else high,
                "low": min(open_, close) if low is None else low, "close": close, "volume": volume,
            }

    def bar_for(self, code: str, day: dt.date) -> dict[str, str]:
        """The deterministic daily bar the fake serves for ``code`` on ``day`` (tests use it as expected)."""
        override = self.bar_overrides.get((code, day))
        if override is not None:
            return {
                "stck_bsop_date": day.strftime("%Y%m%d"), "stck_clpr": str(override["close"]),
                "stck_oprc": str(override["open"]), "stck_hgpr": str(override["high"]),
                "stck_lwpr": str(override["low"]), "acml_vol": str(override["volume"]),
                "acml_tr_pbmn": str(override["volume"] * override["close"]), "flng_cls_code": "00",
                "prtt_rate": "0.00", "mod_yn": "N", "prdy_vrss_sign": "3", "prdy_vrss": "0", "revl_issu_reas": "",
            }
        stock = self.stocks[code]
        seed = int(hashlib.sha256(f"{code}{day.isoformat()}".encode()).hexdigest()[:8], 16)
        close = max(stock.base_price + (seed % 2001 - 1000) * tick_size(stock.base_price) // 10, 1_000)
        close -= close % tick_size(close)
        step = tick_size(close)
        open_ = close + ((seed >> 4) % 5 - 2) * step
        high = max(open_, close) + ((seed >> 8) % 4) * step
        low = min(open_, close) - ((seed >> 12) % 4) * step
        volume = 1_000_000 + seed % 9_000_000
        return {
            "stck_bsop_date": day.strftime("%Y%m%d"), "stck_clpr": str(close), "stck_oprc": str(open_),
            "stck_hgpr": str(high), "stck_lwpr": str(low), "acml_vol": str(volume),
            "acml_tr_pbmn": str(volume * close), "flng_cls_code": "00", "prtt_rate": "0.00", "mod_yn": "N",
            "prdy_vrss_sign": "3", "prdy_vrss": "0", "revl_issu_reas": "",
        }

    def _chart(self, query: dict[str, str]) -> Reply:
        code = self._fid(query, "FID_INPUT_ISCD")
        stock = self.stocks.get(code)
        start = _parse_yyyymmdd(self._fid(query, "FID_INPUT_DATE_1"))
        end = _parse_yyyymmdd(self._fid(query, "FID_INPUT_DATE_2"))
        if start is None or end is None or self._fid(query, "FID_PERIOD_DIV_CODE") != "D":
            return _error(200, "OPSQ2001", "ERROR : INPUT INVALID_CHECK_DATE", rt_cd="2")
        if stock is None:
            return self._ok({"output1": {"stck_prpr": "0", "hts_kor_isnm": ""}, "output2": []})
        days = trading_days(max(start, stock.listed_on), min(end, self.today))
        rows: list[dict[str, str]] = [self.bar_for(code, day) for day in reversed(days)][:100]
        padded: list[dict[str, str]] = rows + [{} for _ in range(self.chart_padding)]
        return self._ok({
            "output1": {"stck_prpr": str(stock.price), "hts_kor_isnm": stock.name, "stck_shrn_iscd": code,
                        "stck_prdy_clpr": str(stock.base_price), "stck_mxpr": str(stock.upper_limit),
                        "stck_llam": str(stock.lower_limit)},
            "output2": padded,
        })

    # orders
    def _order_row(self, day: dt.date, odno: str, original: str, side: str, stock: Stock, quantity: int,
                   price: int, order_type: str, order_time: str, filled: bool) -> dict[str, str]:
        org = "91252" if self.mode == "real" else "00950"
        return {
            "ord_dt": day.strftime("%Y%m%d"), "ord_gno_brno": org, "odno": odno, "orgn_odno": original,
            "ord_dvsn_name": "지정가" if order_type == "00" else "시장가",
            "sll_buy_dvsn_cd": "02" if side == "buy" else "01",
            "sll_buy_dvsn_cd_name": "현금매수" if side == "buy" else "현금매도",
            "pdno": stock.code, "prdt_name": stock.name, "ord_qty": str(quantity), "ord_unpr": str(price),
            "ord_tmd": order_time, "tot_ccld_qty": str(quantity if filled else 0),
            "avg_prvs": str(price if filled else 0), "cncl_yn": "N",
            "tot_ccld_amt": str(quantity * price if filled else 0), "loan_dt": "", "ordr_empno": "OpnAPI",
            "ord_dvsn_cd": order_type, "cnc_cfrm_qty": "0", "rmn_qty": str(0 if filled else quantity),
            "rjct_qty": "0", "ccld_cndt_name": "없음", "inqr_ip_addr": "", "cpbc_ordp_ord_rcit_dvsn_cd": "",
            "cpbc_ordp_infm_mthd_dvsn_cd": "", "infm_tmd": "", "ctac_tlno": "", "prdt_type_cd": "300",
            "excg_dvsn_cd": "01", "cpbc_ordp_mtrl_dvsn_cd": "", "ord_orgno": org, "rsvn_ord_end_dt": "",
            "excg_id_dvsn_Cd": "KRX", "stpm_cndt_pric": "0", "stpm_efct_occr_dtmd": "",
        }

    def _fill(self, side: str, stock: Stock, quantity: int, price: int) -> None:
        position = self.positions.get(stock.code)
        if side == "buy":
            self.cash -= quantity * price
            if position is None:
                self.positions[stock.code] = Position(quantity, Decimal(price), bought_today=quantity)
            else:
                total = position.average_price * position.quantity + quantity * price
                position.quantity += quantity
                position.average_price = total / position.quantity
                position.bought_today += quantity
        else:
            assert position is not None
            self.cash += quantity * price
            position.quantity -= quantity
            position.sold_today += quantity

    def _order_cash(self, tr_id: str, body: dict[str, str]) -> Reply:
        side = "buy" if tr_id.endswith("0012U") else "sell"
        stock = self.stocks.get(body.get("PDNO", ""))
        order_type = body.get("ORD_DVSN", "")
        quantity_text, price_text = body.get("ORD_QTY", ""), body.get("ORD_UNPR", "")
        if stock is None:
            return _error(200, "FAKE0001", "fake: 주문 가능한 종목이 아닙니다.")
        if not quantity_text.isdigit() or int(quantity_text) <= 0:
            return _error(200, "OPSQ2001", "ERROR : INPUT INVALID_CHECK_ORD_QTY", rt_cd="2")
        if not price_text.isdigit():
            return _error(200, "OPSQ2001", "ERROR : INPUT INVALID_CHECK_ORD_UNPR", rt_cd="2")
        if order_type not in ("00", "01") or (self.mode == "paper" and body.get("EXCG_ID_DVSN_CD", "KRX") != "KRX"):
            return _error(200, "OPSQ2001", "ERROR : INPUT INVALID_CHECK_ORD_DVSN", rt_cd="2")
        quantity, price = int(quantity_text), int(price_text)
        if order_type == "01" and price != 0:
            return _error(200, "OPSQ2001", "ERROR : INPUT INVALID_CHECK_ORD_UNPR", rt_cd="2")
        if order_type == "00":
            if price % tick_size(price) or price == 0:
                return _error(200, "APBK0506", "주식주문호가단위 오류입니다.")
            if not stock.lower_limit <= price <= stock.upper_limit:
                return _error(200, "FAKE0004", "fake: 주문가격이 가격제한폭을 벗어났습니다.")
        reserve_price = price if order_type == "00" else stock.upper_limit  # market buys reserve the upper limit
        if side == "buy" and quantity * reserve_price > self.cash:
            return _error(200, "APBK0919", "주문가능금액을 초과 했습니다")
        position = self.positions.get(stock.code)
        if side == "sell" and (position is None or position.quantity < quantity):
            if self.mode == "paper":
                return _error(200, "40240000", "모의투자 잔고내역이 없습니다.")
            return _error(200, "FAKE0002", "fake: 매도가능수량을 초과했습니다.")
        odno = f"{next(self._order_seq):010d}"
        order_time = self.broker_now().strftime("%H%M%S")
        fill_price = price if order_type == "00" else stock.price
        row = self._order_row(self.today, odno, "", side, stock, quantity, fill_price if self.auto_fill else price,
                              order_type, order_time, filled=self.auto_fill)
        if order_type == "01" and not self.auto_fill:
            row["ord_unpr"] = "0"
        self.order_rows.append(row)
        self.accepted_orders.append(dict(body, tr_id=tr_id, ODNO=odno))
        if self.auto_fill:
            self._fill(side, stock, quantity, fill_price)
        if self.mode == "real":
            msg_cd, msg1 = "APBK0013", "주문 전송 완료 되었습니다."
        else:
            msg_cd, msg1 = "40600000", f"모의투자 {'매수' if side == 'buy' else '매도'}주문이 완료 되었습니다."
        org = "91252" if self.mode == "real" else "00950"
        answered_odno = odno.lstrip("0") if self.short_order_numbers else odno
        return self._ok({"output": {"KRX_FWDG_ORD_ORGNO": org, "ODNO": answered_odno, "ORD_TMD": order_time}},
                        msg_cd=msg_cd, msg1=msg1)

    def _revise_cancel(self, body: dict[str, str]) -> Reply:
        original = next((row for row in self.order_rows if row["odno"] == body.get("ORGN_ODNO")
                         and row["ord_dt"] == self.today.strftime("%Y%m%d")), None)
        nothing_left = ("40330000", "모의투자 정정/취소할 수량이 없습니다.") if self.mode == "paper" else (
            "FAKE0003", "fake: 정정/취소할 수량이 없습니다.")
        if original is None or original["ord_gno_brno"] != body.get("KRX_FWDG_ORD_ORGNO"):
            return _error(200, *nothing_left)
        remaining = int(original["rmn_qty"])
        all_quantity = body.get("QTY_ALL_ORD_YN") == "Y"
        quantity = remaining if all_quantity else int(body.get("ORD_QTY") or 0)
        if remaining <= 0 or quantity <= 0 or quantity > remaining:
            return _error(200, *nothing_left)
        action = body.get("RVSE_CNCL_DVSN_CD")
        if action not in ("01", "02"):
            return _error(200, "OPSQ2001", "ERROR : INPUT INVALID_CHECK_RVSE_CNCL_DVSN_CD", rt_cd="2")
        stock = self.stocks[original["pdno"]]
        side = "buy" if original["sll_buy_dvsn_cd"] == "02" else "sell"
        odno = f"{next(self._order_seq):010d}"
        order_time = self.broker_now().strftime("%H%M%S")
        original["rmn_qty"] = str(remaining - quantity)
        if action == "02":
            row = self._order_row(self.today, odno, original["odno"], side, stock, quantity,
                                  int(original["ord_unpr"]), original["ord_dvsn_cd"], order_time, filled=False)
            row.update(cncl_yn="Y", cnc_cfrm_qty=str(quantity), rmn_qty="0")
            original["cnc_cfrm_qty"] = str(int(original["cnc_cfrm_qty"]) + quantity)
        else:
            price = int(body.get("ORD_UNPR") or 0)
            row = self._order_row(self.today, odno, original["odno"], side, stock, quantity, price,
                                  body.get("ORD_DVSN", "00"), order_time, filled=self.auto_fill)
            if self.auto_fill:
                self._fill(side, stock, quantity, price)
        self.order_rows.append(row)
        self.accepted_orders.append(dict(body, ODNO=odno))
        return self._ok({"output": {"krx_fwdg_ord_orgno": original["ord_gno_brno"], "odno": odno,
                                    "ord_tmd": order_time}}, msg_cd="APBK0013", msg1="주문 전송 완료 되었습니다.")

    # paginated inquiries
    def _page(self, path: str, headers: dict[str, str], query: dict[str, str], rows: list[dict[str, str]],
              page_size: int, fk: str, fault: Fault | None) -> tuple[list[dict[str, str]], str, str, str] | Reply:
        """Rows of this page, response tr_cont, fk, nk -- or an error Reply for a bad continuation."""
        if fault and fault.kind in PAGINATION_FAULTS:
            nk = "ENDLESS^" if fault.kind == "endless_same_key" else f"ENDLESS{next(self._endless_counter)}^"
            return rows[:page_size], "M", fk, nk
        offset = 0
        if headers.get("tr_cont", "") == "N":
            key = (path, query.get("CTX_AREA_NK100", ""))
            if key not in self._continuations or self._continuations[key][0] != query.get("CTX_AREA_FK100"):
                return _error(200, "OPSQ2001", "ERROR : INPUT INVALID_CHECK_CTX_AREA", rt_cd="2")
            offset = self._continuations[key][1]
        page = rows[offset:offset + page_size]
        if offset + page_size < len(rows):
            nk = f"{page[-1].get('pdno') or page[-1].get('odno')}^{offset + page_size}^"
            self._continuations[(path, nk)] = (fk, offset + page_size)
            return page, "M", fk, nk
        return page, "D", fk, ""

    def _balance(self, headers: dict[str, str], query: dict[str, str], fault: Fault | None) -> Reply:
        if query.get("INQR_DVSN") != "01":
            return _error(200, "OPSQ2001", "ERROR : INPUT INVALID_CHECK_INQR_DVSN", rt_cd="2")
        rows = []
        for code in sorted(self.positions):
            position, stock = self.positions[code], self.stocks[code]
            purchase = int((position.average_price * position.quantity).to_integral_value(ROUND_HALF_UP))
            evaluation = stock.price * position.quantity
            rate = (Decimal(evaluation - purchase) * 100 / purchase).quantize(Decimal("0.01")) if purchase else 0
            rows.append({
                "pdno": code, "prdt_name": stock.name, "trad_dvsn_name": "현금", "bfdy_buy_qty": "0",
                "bfdy_sll_qty": "0", "thdt_buyqty": str(position.bought_today),
                "thdt_sll_qty": str(position.sold_today), "hldg_qty": str(position.quantity),
                "ord_psbl_qty": str(position.quantity),
                "pchs_avg_pric": str(position.average_price.quantize(Decimal("0.0001"))),
                "pchs_amt": str(purchase), "prpr": str(stock.price), "evlu_amt": str(evaluation),
                "evlu_pfls_amt": str(evaluation - purchase), "evlu_pfls_rt": str(rate),
                "evlu_erng_rt": "0.00000000", "loan_dt": "", "loan_amt": "0", "stln_slng_chgs": "0",
                "expd_dt": "", "fltt_rt": "0.00000000", "bfdy_cprs_icdc": "0", "item_mgna_rt_name": "20%",
                "grta_rt_name": "", "sbst_pric": str(stock.price * 78 // 100), "stck_loan_unpr": "0.0000",
            })
        fk = f"{self.account_no}^{self.product_code}^N^N^01^01^N^"
        paged = self._page(BALANCE_PATH, headers, query, rows, self.balance_page_size, fk, fault)
        if isinstance(paged, Reply):
            return paged
        page, tr_cont, fk, nk = paged
        securities = sum(int(row["evlu_amt"]) for row in rows)
        purchases = sum(int(row["pchs_amt"]) for row in rows)
        summary = {
            "dnca_tot_amt": str(self.cash), "nxdy_excc_amt": str(self.cash), "prvs_rcdl_excc_amt": str(self.cash),
            "cma_evlu_amt": "0", "bfdy_buy_amt": "0", "thdt_buy_amt": "0", "nxdy_auto_rdpt_amt": "0",
            "bfdy_sll_amt": "0", "thdt_sll_amt": "0", "d2_auto_rdpt_amt": "0", "bfdy_tlex_amt": "0",
            "thdt_tlex_amt": "0", "tot_loan_amt": "0", "scts_evlu_amt": str(securities),
            "tot_evlu_amt": str(securities + self.cash), "nass_amt": str(securities + self.cash),
            "fncg_gld_auto_rdpt_yn": "", "pchs_amt_smtl_amt": str(purchases),
            "evlu_amt_smtl_amt": str(securities), "evlu_pfls_smtl_amt": str(securities - purchases),
            "tot_stln_slng_chgs": "0", "bfdy_tot_asst_evlu_amt": str(self.cash), "asst_icdc_amt": "0",
            "asst_icdc_erng_rt": "0.00000000",
        }
        return self._ok({"ctx_area_fk100": fk, "ctx_area_nk100": nk, "output1": page, "output2": [summary]},
                        msg_cd="KIOK0510", msg1="조회되었습니다", tr_cont=tr_cont)

    def _daily_orders(self, headers: dict[str, str], query: dict[str, str], fault: Fault | None) -> Reply:
        start = _parse_yyyymmdd(query.get("INQR_STRT_DT", ""))
        end = _parse_yyyymmdd(query.get("INQR_END_DT", ""))
        side = query.get("SLL_BUY_DVSN_CD")
        fill = query.get("CCLD_DVSN")
        if start is None or end is None:
            return _error(200, "OPSQ2001", "ERROR : INPUT INVALID_CHECK_INQR_DT", rt_cd="2")
        if side not in ("00", "01", "02"):  # two digits, never "0/1/2" (pitfall 19)
            return _error(200, "OPSQ2001", "ERROR : INPUT INVALID_CHECK_SLL_BUY_DVSN_CD", rt_cd="2")
        if fill not in ("00", "01", "02") or query.get("INQR_DVSN") not in ("00", "01"):
            return _error(200, "OPSQ2001", "ERROR : INPUT INVALID_CHECK_INQR_DVSN", rt_cd="2")
        rows = [
            row for row in self.order_rows
            if start.strftime("%Y%m%d") <= row["ord_dt"] <= end.strftime("%Y%m%d")
            and (side == "00" or row["sll_buy_dvsn_cd"] == side)
            and (not query.get("PDNO") or row["pdno"] == query["PDNO"])
            and (not query.get("ODNO") or row["odno"] == query["ODNO"])
            and (fill == "00" or (fill == "01" and int(row["tot_ccld_qty"]) > 0)
                 or (fill == "02" and int(row["rmn_qty"]) > 0))
        ]
        rows.sort(key=lambda row: (row["ord_dt"], row["ord_tmd"], row["odno"]),
                  reverse=query.get("INQR_DVSN") == "00")
        fk = (f"{self.account_no}^{self.product_code}^{query.get('INQR_STRT_DT')}^{query.get('INQR_END_DT')}"
              f"^{side}^^{fill}^00^00^^^KRX")
        paged = self._page(DAILY_ORDERS_PATH, headers, query, rows, self.daily_orders_page_size, fk, fault)
        if isinstance(paged, Reply):
            return paged
        page, tr_cont, fk, nk = paged
        filled_qty = sum(int(row["tot_ccld_qty"]) for row in rows)
        filled_amt = sum(int(row["tot_ccld_amt"]) for row in rows)
        summary = {
            "tot_ord_qty": str(sum(int(row["ord_qty"]) for row in rows)), "tot_ccld_qty": str(filled_qty),
            "tot_ccld_amt": str(filled_amt), "prsm_tlex_smtl": str(filled_amt * 15 // 100_000),
            "pchs_avg_pric": f"{(Decimal(filled_amt) / filled_qty) if filled_qty else Decimal(0):.4f}",
        }
        return self._ok({"ctx_area_fk100": fk, "ctx_area_nk100": nk, "output1": page, "output2": summary},
                        msg_cd="KIOK0510", msg1="조회되었습니다", tr_cont=tr_cont)

    def _buyable(self, query: dict[str, str]) -> Reply:
        stock = self.stocks.get(query.get("PDNO", ""))
        if stock is None:
            return _error(200, "FAKE0001", "fake: 주문 가능한 종목이 아닙니다.")
        price_text = query.get("ORD_UNPR", "")
        price = int(price_text) if price_text.isdigit() and int(price_text) > 0 else stock.upper_limit
        # A fee margin of 0.015% keeps the amount payable, like KIS's own sizing.
        quantity = int(Decimal(self.cash) / (Decimal(price) * Decimal("1.00015")))
        return self._ok({"output": {
            "ord_psbl_cash": str(self.cash), "ord_psbl_sbst": "0", "ruse_psbl_amt": "0", "fund_rpch_chgs": "0",
            "psbl_qty_calc_unpr": str(price), "nrcvb_buy_amt": str(quantity * price),
            "nrcvb_buy_qty": str(quantity), "max_buy_amt": str(quantity * price), "max_buy_qty": str(quantity),
            "cma_evlu_amt": "0", "ovrs_re_use_amt_wcrc": "0", "ord_psbl_frcr_amt_wcrc": "0",
        }}, msg_cd="KIOK0510", msg1="조회되었습니다")


def _parse_yyyymmdd(text: str) -> dt.date | None:
    try:
        return dt.datetime.strptime(text, "%Y%m%d").date()
    except ValueError:
        return None


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, like KIS behind its gateway
    server_version = "FakeKIS/1.0"
    # Headers and body go out in two writes; with Nagle on, the client's delayed ACK adds ~40 ms per reply.
    disable_nagle_algorithm = True

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        return None  # request lines carry CANO; keep test output clean

    def do_GET(self) -> None:  # noqa: N802 - stdlib name
        self._serve("GET")

    def do_POST(self) -> None:  # noqa: N802 - stdlib name
        self._serve("POST")

    def _serve(self, method: str) -> None:
        fake: FakeKisServer = self.server.fake  # type: ignore[attr-defined]
        length = int(self.headers.get("Content-Length") or 0)
        raw_body = self.rfile.read(length) if length else b""
        headers = {name.lower(): value for name, value in self.headers.items()}
        reply = fake.handle(method, self.path, headers, raw_body)
        try:
            if reply.action == "drop":
                # The request was read (and processed); the answer never comes.
                self.close_connection = True
                self.connection.shutdown(socket.SHUT_RDWR)
                return
            if reply.action == "delay" and fake._stopping.wait(reply.delay):
                return
            self.send_response(reply.status)
            self.send_header("content-type", reply.headers.get("content-type", "application/json; charset=utf-8"))
            tr_id = headers.get("tr_id")
            if tr_id:
                self.send_header("tr_id", tr_id)
            if "tr_cont" in reply.headers:
                self.send_header("tr_cont", reply.headers["tr_cont"])
            self.send_header("Content-Length", str(len(reply.body)))
            self.end_headers()
            self.wfile.write(reply.body)
        except (BrokenPipeError, ConnectionResetError, OSError):
            self.close_connection = True  # the client gave up (time-out); nothing to do



# ------------------------------------------------------------------------------------------ the fleet
RATE_LIMITED, TOKEN_THROTTLED, OK, REFUSED = "rate_limited", "token_throttled", "ok", "refused"


@dataclass
class FleetEvent:
    """One request the fleet answered: whose, what (a digest of method, path with query, tr_id and body:
    a retry of the same request has the same digest), the outcome, and when (the fleet's ``wall_clock``)."""

    app_key: str
    method: str
    path: str
    digest: str
    outcome: str  # OK | RATE_LIMITED (EGW00201) | TOKEN_THROTTLED (EGW00133) | REFUSED (any other error)
    received: float
    answered: float


class _FleetHTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    # Hundreds of clients connect at the 09:05 burst; the default backlog of 5 drops SYNs (1 s retries).
    request_queue_size = 1024


class FakeKisFleet(_LocalHost):
    """Many customers' KIS accounts behind one host, as KIS serves every app key from the same address:
    one ``FakeKisServer`` per app key (its own token and one-per-minute issuance, its own per-second
    limit answering EGW00201, its own cash, holdings and daily orders), chosen by the request's app key
    (the ``appkey`` header, or the body of tokenP/revokeP/Approval), with a network latency per call
    drawn from ``latency`` (seconds, uniform). Every answer is recorded as a ``FleetEvent``. For load
    drills (``orders.scale_drill``); the single-account ``FakeKisServer`` is unchanged."""

    def __init__(self, mode: str = "real", latency: tuple[float, float] | None = (0.03, 0.08),
                 today: dt.date | None = None, port: int = 0, seed: int = 0,
                 wall_clock: Callable[[], float] | None = None) -> None:
        if mode not in ("real", "paper"):
            raise ValueError("mode must be real or paper")
        self.mode, self.latency, self.port = mode, latency, port
        if wall_clock is not None:
            self.wall_clock = wall_clock
        self.today = today or self.now().date()
        self.clock_offset = dt.timedelta(0)
        self.stocks: dict[str, Stock] = {}
        self.accounts: dict[str, FakeKisServer] = {}
        self.events: list[FleetEvent] = []
        self._events_lock = threading.Lock()
        self._random = random.Random(seed)
        self._cash: dict[str, int] = {}
        self._stopping = threading.Event()
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    def add_account(self, app_key: str, app_secret: str, account_no: str, product_code: str = FAKE_PRODUCT_CODE,
                    cash: int = 10_000_000) -> FakeKisServer:
        """A customer with its own app key; trades the fleet's ``stocks`` (shared, read-only)."""
        account = FakeKisServer(mode=self.mode, app_key=app_key, app_secret=app_secret, account_no=account_no,
                                product_code=product_code, today=self.today)
        account.wall_clock = self.wall_clock
        if self.stocks:
            account.stocks = self.stocks
        account.cash = self._cash[app_key] = cash
        account.clock_offset = self.clock_offset
        account._stopping = self._stopping
        self.accounts[app_key] = account
        return account

    def reset(self) -> None:
        """Every account as new (no token, no orders, its starting cash), and no events: the same
        customers for another run."""
        for app_key, account in list(self.accounts.items()):
            app = account.apps[app_key]
            self.add_account(app_key, app.app_secret, account.account_no, account.product_code,
                             cash=self._cash[app_key])
        with self._events_lock:
            self.events.clear()

    # lifecycle
    def start(self) -> FakeKisFleet:
        return self._serve(_FleetHTTPServer(("127.0.0.1", self.port), _Handler), "fake-kis-fleet", poll_interval=0.05)

    # serving
    def handle(self, method: str, raw_path: str, headers: dict[str, str], raw_body: bytes) -> Reply:
        received = self.wall_clock()
        app_key = headers.get("appkey", "")
        path = urlsplit(raw_path).path
        if not app_key and path in (TOKEN_PATH, REVOKE_PATH, APPROVAL_PATH):
            try:
                app_key = str(json.loads(raw_body.decode("utf-8")).get("appkey", ""))
            except (ValueError, UnicodeDecodeError, AttributeError):
                app_key = ""
        if self.latency:
            low, high = self.latency
            with self._events_lock:
                pause = self._random.uniform(low, high)
            self._stopping.wait(pause)
        account = self.accounts.get(app_key)
        if account is None:
            reply = (_oauth_error("EGW00103", "유효하지 않은 AppKey입니다.") if path.startswith("/oauth2/")
                     else _error(500, "EGW00103", "유효하지 않은 AppKey입니다."))
        else:
            reply = account.handle(method, raw_path, headers, raw_body)
        if b"EGW00201" in reply.body:
            outcome = RATE_LIMITED
        elif b"EGW00133" in reply.body:
            outcome = TOKEN_THROTTLED
        elif reply.status == 200 and (b'"rt_cd": "0"' in reply.body or b"access_token" in reply.body):
            outcome = OK
        else:
            outcome = REFUSED
        digest = hashlib.sha256(b"\0".join((method.encode(), raw_path.encode(), headers.get("tr_id", "").encode(),
                                             raw_body))).hexdigest()[:16]
        with self._events_lock:
            self.events.append(FleetEvent(app_key, method, path, digest, outcome, received, self.wall_clock()))
        return reply

    # what happened
    def orders(self) -> dict[str, list[dict[str, str]]]:
        """The accepted orders per app key (the bodies KIS took, with their ODNO)."""
        return {key: list(account.accepted_orders) for key, account in self.accounts.items()}

    def tokens_issued(self) -> dict[str, int]:
        return {key: len(account.tokens_issued) for key, account in self.accounts.items()}

    def rate_limit_answers(self) -> tuple[int, int]:
        """(EGW00201 answers, those never followed by an answered retry of the same request)."""
        with self._events_lock:
            events = list(self.events)
        limited = [event for event in events if event.outcome == RATE_LIMITED]
        answered_later: dict[tuple[str, str], float] = {}
        for event in events:
            if event.outcome != RATE_LIMITED:
                key = (event.app_key, event.digest)
                answered_later[key] = max(answered_later.get(key, 0.0), event.received)
        not_retried = sum(1 for event in limited if answered_later.get((event.app_key, event.digest), 0.0) < event.received)
        return len(limited), not_retried


def main(argv: list[str] | None = None) -> None:
    """Run the fake KIS host by hand, e.g. to try `manage.py kis_check` without a KIS account:

        python -m market.tests.fake_kis --mode paper --port 29443
    """
    import argparse

    parser = argparse.ArgumentParser(description="A fake KIS Open API host on 127.0.0.1 (for trying the site)")
    parser.add_argument("--mode", choices=["real", "paper"], default="paper")
    parser.add_argument("--port", type=int, default=29443)
    args = parser.parse_args(argv)
    server = FakeKisServer(mode=args.mode, port=args.port).start()
    simulated = args.mode == "paper"
    print(f"fake KIS ({'모의투자' if simulated else '실전'}) listening on {server.base_url}")
    print("put these in .env (or the environment):")
    print(f"  KIS_URL_BASE={server.base_url}")
    print(f"  KIS_MODE={'simulated' if simulated else 'real'}")
    print(f"  KIS_APP_KEY={FAKE_APP_KEY}")
    print(f"  KIS_APP_SECRET={FAKE_APP_SECRET}")
    print(f"  KIS_ACCOUNT={FAKE_ACCOUNT_NO}")
    print(f"  KIS_ACCOUNT_PRODUCT_CODE={FAKE_PRODUCT_CODE}")
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        server.stop()


if __name__ == "__main__":
    main()
