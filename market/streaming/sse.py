"""Server-Sent Events to the browser: the bus's messages for one page, under ASGI.

``GET /stream/market/<code>/``  종목 상세: that symbol's ticks (``event: ticks``), 호가 (``book``) and the
streamer's state (``status``), from the source of the user's default broker account
(``sources.stream_source_for``: the paper simulator or the account's KIS session).
``GET /stream/dashboard/?watch=<account pk>:<code>,<code>&watch=...``  대시보드: the ticks of the holdings the
page shows (the page names them: holdings of KIS accounts come from the orders app, which market may not
import), the user's own order events (``fill`` / ``order``, ``events.user_channel``) and status.

Each view is async and holds no thread while its stream is open: the generator waits on the bus. The
first event of every stream is a ``status`` computed here (KRX calendar, or the simulator's session
setting), so a page knows at once whether the market is closed even when the streamer has nothing to say.

While a stream is open it renews a watch (``events.watch_message`` on ``rt:control``) every ttl/3, so the
streamer keeps its symbols subscribed; when it closes it sends an empty watch. Limits: at most
``REALTIME_MAX_STREAMS_PER_USER`` open streams per user (429), counted as slots in Django's cache (Redis in
production, so across web processes) that expire unless renewed: a process that dies leaks nothing for
longer than ``SLOT_TTL_SECONDS``. A slow client never makes the server buffer without bound: what arrives
while it is being written to is coalesced (ticks appended up to a cap, the latest 호가 and status only;
order events are kept, they come from their own bus subscription so a tick flood cannot push them out).

Under WSGI (the test live server, a plain ``runserver``) a stream would hold a worker forever and never
see the client leave: the views answer 204 there (an EventSource does not reconnect after it), the page's
probe (``?probe=1``) learns why, and the pages fall back to polling.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
import logging
import re
import time
import uuid
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass, field
from typing import Any

from asgiref.sync import sync_to_async
from django.conf import settings
from django.core.cache import cache
from django.core.handlers.asgi import ASGIRequest
from django.http import HttpResponse, JsonResponse, StreamingHttpResponse
from django.utils import timezone
from django.utils.translation import gettext as _

from market.krx import SEOUL, is_regular_session, price_limits

from . import events
from .bus import get_bus

logger = logging.getLogger(__name__)

EVENT_TYPES = frozenset({"ticks", "book", "fill", "order", "status"})
KEEPALIVE_SECONDS = 15.0  # a comment line this often keeps proxies and the browser from closing an idle stream
RETRY_MILLISECONDS = 3000  # the browser's reconnect delay after a dropped stream
WATCH_TTL_SECONDS = events.WATCH_TTL_SECONDS  # renewed every third of it
SLOT_TTL_SECONDS = 60  # a stream slot not renewed for this long is free again (its process died)
MIN_FLUSH_SECONDS = 0.05  # under load, one write per 50 ms per client carries everything that arrived
MAX_TICKS_PER_EVENT = 500  # a slow client gets the latest ticks of a symbol, and how many it missed
MAX_PENDING_ORDER_EVENTS = 200
MAX_DASHBOARD_CODES = 40  # one KIS session registers at most 40 symbols (§6)
CODE = re.compile(r"^[0-9A-Za-z]{6}$")


def _json_error(message: str, status: int) -> JsonResponse:
    return JsonResponse({"detail": message}, status=status, json_dumps_params={"ensure_ascii": False})


# ------------------------------------------------------------------------------------------ stream slots
class StreamSlots:
    """At most ``limit`` open streams per user, as cache keys ``rt:sse:<user>:<n>`` (n < limit) that one stream
    holds with a token. ``cache.add`` is atomic (Redis SET NX), so two processes never take the same slot;
    every key expires unless its stream renews it."""

    def __init__(self, user_id: int, limit: int, ttl: int = SLOT_TTL_SECONDS) -> None:
        self.user_id, self.limit, self.ttl = user_id, limit, ttl
        self.token = uuid.uuid4().hex
        self.key: str | None = None

    def _key(self, n: int) -> str:
        return f"rt:sse:{self.user_id}:{n}"

    async def acquire(self) -> bool:
        for n in range(self.limit):
            if await cache.aadd(self._key(n), self.token, self.ttl):
                self.key = self._key(n)
                return True
        return False

    async def renew(self) -> None:
        if self.key is None:
            return
        if await cache.aget(self.key) == self.token:
            await cache.atouch(self.key, self.ttl)
        elif not await cache.aadd(self.key, self.token, self.ttl):
            # The slot expired (the loop stalled past the ttl) and another stream took it: take another, or
            # stay open without one rather than cut a stream the user is watching.
            self.key = None
            await self.acquire()

    async def release(self) -> None:
        if self.key is not None and await cache.aget(self.key) == self.token:
            await cache.adelete(self.key)
        self.key = None


async def open_streams(user_id: int, limit: int) -> int:
    """How many stream slots of the user are taken (tests, diagnostics)."""
    keys = [f"rt:sse:{user_id}:{n}" for n in range(limit)]
    return len(await cache.aget_many(keys))


# ------------------------------------------------------------------------------------------ coalescing
ENCODED = "\0sse"  # where a bus message keeps its encoded ``data:`` line (never sent: see encoded_data)


def encoded_data(message: dict[str, Any]) -> bytes:
    """The message as JSON, encoded once: the bus hands one decoded dict to every stream of the process, so
    twenty browsers watching a symbol cost one json.dumps per message, not twenty. (json.dumps never writes
    a newline, so one ``data:`` line carries it.)"""
    data = message.get(ENCODED)
    if data is None:
        data = json.dumps({k: v for k, v in message.items() if k != ENCODED}, ensure_ascii=False,
                          separators=(",", ":")).encode()
        message[ENCODED] = data
    return data


def copied(message: dict[str, Any], **changes: Any) -> dict[str, Any]:
    """A stream's own copy of a shared message (without the shared encoding, which it no longer matches)."""
    copy = {k: v for k, v in message.items() if k != ENCODED}
    copy.update(changes)
    return copy


class Pending:
    """What arrived since the last write, coalesced per channel: ticks appended (the newest
    ``MAX_TICKS_PER_EVENT`` kept, the rest counted in ``dropped``), only the latest 호가 and status,
    every order event (up to a cap). Insertion order is kept, so a symbol's first news goes out first.
    A message that did not need merging is kept as the bus gave it (shared with the other streams)."""

    def __init__(self) -> None:
        self._items: dict[Any, dict[str, Any]] = {}
        self._merged: set[Any] = set()
        self._order_events = 0
        self._sequence = 0

    def __bool__(self) -> bool:
        return bool(self._items)

    def add(self, channel: str, message: dict[str, Any]) -> None:
        kind = message.get("type")
        if kind not in EVENT_TYPES:
            return
        if kind == "ticks":
            key = ("ticks", channel)
            held = self._items.get(key)
            if held is None and len(message.get("ticks", ())) <= MAX_TICKS_PER_EVENT:
                self._items[key] = message  # as the bus gave it
                return
            if held is None:
                held = self._items[key] = copied(message, ticks=[], dropped=int(message.get("dropped", 0)))
                self._merged.add(key)
            else:
                if key not in self._merged:  # a second batch before the write: a merged copy of its own
                    held = self._items[key] = copied(held, ticks=list(held.get("ticks", ())),
                                                     dropped=int(held.get("dropped", 0)))
                    self._merged.add(key)
                held["dropped"] += int(message.get("dropped", 0))
                held["sent"] = message.get("sent", held.get("sent"))
            held["ticks"].extend(message.get("ticks", ()))
            excess = len(held["ticks"]) - MAX_TICKS_PER_EVENT
            if excess > 0:
                del held["ticks"][:excess]
                held["dropped"] += excess
        elif kind == "book":
            self._items.pop(("book", channel), None)  # the latest 호가 goes out, in the latest place
            self._items[("book", channel)] = message
        elif kind == "status":
            key = ("status", message.get("source"), message.get("account"))
            self._items.pop(key, None)
            self._items[key] = message
        else:  # fill / order: each one counts
            if self._order_events >= MAX_PENDING_ORDER_EVENTS:
                logger.warning("SSE client too slow: an order event was dropped (the page reloads its orders)")
                return
            self._sequence += 1
            self._order_events += 1
            self._items[("user", self._sequence)] = message

    def take(self) -> list[dict[str, Any]]:
        items = list(self._items.values())
        self._items.clear()
        self._merged.clear()
        self._order_events = 0
        return items


def sse_event(kind: str, data: dict[str, Any], event_id: str | None = None) -> bytes:
    """One SSE event."""
    head = f"event: {kind}\n" + (f"id: {event_id}\n" if event_id else "")
    return head.encode() + b"data: " + encoded_data(data) + b"\n\n"


# ------------------------------------------------------------------------------------------ what a stream watches
@dataclass
class WatchGroup:
    """What one stream asks the streamer for from one source: ("sim", None) or ("kis", account pk)."""

    source: str
    account: int | None
    codes: set[str] = field(default_factory=set)
    books: set[str] = field(default_factory=set)
    accounts: list[int] = field(default_factory=list)  # the dashboard accounts priced from this source

    def channels(self) -> list[str]:
        return ([events.tick_channel(self.source, code) for code in sorted(self.codes)]
                + [events.book_channel(self.source, code) for code in sorted(self.books)])


def session_state(source: str, now=None) -> str:
    """"open" or "market_closed" for a source right now: KRX hours, except the simulator when it is told
    to simulate a session at any hour (REALTIME_SIM_SESSION=always, the demo at night)."""
    if source == "sim" and settings.REALTIME_SIM_SESSION == "always":
        return "open"
    return "open" if is_regular_session(now or timezone.now()) else "market_closed"


def _opening_status(group: WatchGroup) -> dict[str, Any]:
    state = session_state(group.source)
    message = _("Market closed (KRX regular session: weekdays 09:00–15:30).") if state == "market_closed" else ""
    status = events.status_message(group.source, state, account=group.account, message=message)
    status["origin"] = "web"  # computed here at connect time, not reported by the streamer
    status["accounts"] = group.accounts
    return status


def _event_id() -> str:
    return str(int(time.time() * 1000))


def _with_limits(message: dict[str, Any], known: dict[tuple[str, str], int]) -> dict[str, Any]:
    """The daily limits (상한가/하한가) go along with a symbol's ticks whenever its previous close is new to
    this stream (the page marks a trade at a limit): KRX rules on the server, not re-implemented in JS."""
    ticks = message.get("ticks") or []
    if not ticks:
        return message
    last = ticks[-1]
    try:
        previous_close = int(last["p"]) - int(last["chg"])
    except (KeyError, TypeError, ValueError):
        return message
    key = (message.get("source", ""), message.get("code", ""))
    if previous_close <= 0 or known.get(key) == previous_close:
        return message
    known[key] = previous_close
    lower, upper = price_limits(previous_close)
    return copied(message, limits={"previous_close": previous_close, "lower": lower, "upper": upper})


async def _event_stream(*, user_id: int, groups: list[WatchGroup], user_channels: list[str], slot: StreamSlots,
                        opening: list[bytes]) -> AsyncIterator[bytes]:
    """The body of one stream; its ``finally`` (run when the client leaves: Django cancels the response
    task and closes this generator) gives back the slot and tells the streamer the watch is over."""
    bus = get_bus()
    pending = Pending()
    wake = asyncio.Event()
    failed: list[BaseException] = []
    client = f"sse-{uuid.uuid4().hex[:12]}"
    market_channels = [channel for group in groups for channel in group.channels()]
    control_channels = [*user_channels, events.STATUS_CHANNEL]
    sources = {(group.source, group.account) for group in groups}
    sources_any_account = {group.source for group in groups if group.account is None}
    limits_known: dict[tuple[str, str], int] = {}

    def wanted(channel: str, message: dict[str, Any]) -> bool:
        if channel != events.STATUS_CHANNEL:
            return True
        source, account = message.get("source"), message.get("account")
        return (source, account) in sources or (source in sources_any_account and account is None)

    async def pump(subscription) -> None:
        try:
            async for channel, message in subscription:
                if wanted(channel, message):
                    pending.add(channel, message)
                    wake.set()
        except Exception as error:  # the bus went away: end the stream, the browser reconnects
            logger.warning("SSE bus subscription failed: %s", error)
            failed.append(error)
            wake.set()

    async def publish_watches(ttl: int) -> None:
        for n, group in enumerate(groups):
            if not group.codes and not group.books:
                continue
            message = events.watch_message(client=f"{client}-{n}", user=user_id, account=group.account,
                                           source=group.source, codes=group.codes if ttl else (),
                                           books=group.books if ttl else (), ttl=ttl)
            # publish is sync and may touch the network (Redis): off the event loop
            await asyncio.to_thread(bus.publish, events.CONTROL_CHANNEL, message)

    async def keep_watching() -> None:
        while True:
            await publish_watches(WATCH_TTL_SECONDS)
            try:
                await slot.renew()
            except Exception as error:  # the cache is down: the stream goes on, its slot expires by itself
                logger.warning("SSE stream slot not renewed: %s", error)
            await asyncio.sleep(WATCH_TTL_SECONDS / 3)

    tasks: list[asyncio.Task] = []
    try:
        async with contextlib.AsyncExitStack() as stack:
            subscriptions = []
            if market_channels:
                subscriptions.append(await stack.enter_async_context(bus.subscribe(market_channels)))
            # order events and status on a subscription of their own: a flood of ticks cannot push them out
            subscriptions.append(await stack.enter_async_context(bus.subscribe(control_channels)))
            tasks = [asyncio.create_task(pump(s)) for s in subscriptions]
            tasks.append(asyncio.create_task(keep_watching()))
            yield f"retry: {RETRY_MILLISECONDS}\n\n".encode() + b"".join(opening)
            last_flush = 0.0
            dropped_seen = 0
            while not failed:
                try:
                    await asyncio.wait_for(wake.wait(), KEEPALIVE_SECONDS)
                except TimeoutError:
                    yield b": keep-alive\n\n"
                    continue
                # Under load, wait a little so one write carries everything that came meanwhile.
                pause = MIN_FLUSH_SECONDS - (time.monotonic() - last_flush)
                if pause > 0:
                    await asyncio.sleep(pause)
                wake.clear()
                items = pending.take()
                if not items:
                    continue
                dropped = sum(getattr(s, "dropped", 0) for s in subscriptions)
                event_id = _event_id()
                chunk = []
                for message in items:
                    if message["type"] == "ticks":
                        message = _with_limits(message, limits_known)
                        if dropped > dropped_seen:  # the bus dropped messages for this slow client
                            message = copied(message, dropped=message.get("dropped", 0) + dropped - dropped_seen)
                            dropped_seen = dropped
                    chunk.append(sse_event(message["type"], message, event_id))
                last_flush = time.monotonic()
                yield b"".join(chunk)
    finally:
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(BaseException):
                await task
        with contextlib.suppress(Exception):
            await publish_watches(0)  # an empty watch: the streamer may drop the symbols now
        with contextlib.suppress(Exception):
            await slot.release()


def _stream_response(body: AsyncIterator[bytes]) -> StreamingHttpResponse:
    response = StreamingHttpResponse(body, content_type="text/event-stream; charset=utf-8")
    response["Cache-Control"] = "no-cache"
    response["X-Accel-Buffering"] = "no"  # nginx: pass every event on at once
    return response


# ------------------------------------------------------------------------------------------ views
async def _refusal(request) -> tuple[HttpResponse | None, Any]:
    """The answer that refuses this stream before it opens (or None), and the user."""
    if request.method != "GET":
        return _json_error(_("Method not allowed."), 405), None
    if not isinstance(request, ASGIRequest):
        # 204 is how a server tells an EventSource not to come back (it is not an error: the pages poll
        # instead); the page's probe reads why.
        if request.GET.get("probe"):
            return JsonResponse({"available": False, "detail": _(
                "Live prices need the ASGI server (scripts/run, scripts/serve).")}), None
        return HttpResponse(status=204), None
    user = await request.auser()
    if not user.is_authenticated:
        return _json_error(_("Log in to receive live prices."), 401), None
    return None, user


def _too_many() -> JsonResponse:
    return _json_error(
        _("Too many live windows are open (at most %(count)d per user). Close another tab and reload this page.")
        % {"count": settings.REALTIME_MAX_STREAMS_PER_USER}, 429)


async def _open(request, user, groups: list[WatchGroup], user_channels: list[str],
                opening: list[bytes]) -> HttpResponse:
    slot = StreamSlots(user.pk, settings.REALTIME_MAX_STREAMS_PER_USER)
    try:
        acquired = await slot.acquire()
    except Exception:  # the cache (Redis) is down, and the bus with it: say so rather than fail with a 500
        logger.exception("SSE stream slots unavailable")
        return _json_error(_("Live prices are unavailable for a moment; the page refreshes its quote instead."), 503)
    if not acquired:
        return _too_many()
    if request.GET.get("probe"):
        # The page asks why its EventSource failed (EventSource cannot read an error's body): answer what
        # a stream would get, without opening one.
        await slot.release()
        return JsonResponse({"available": True, "detail": "ok"})
    return _stream_response(_event_stream(user_id=user.pk, groups=groups, user_channels=user_channels, slot=slot,
                                          opening=opening))


def _bar_json(bar: dict[str, Any]) -> dict[str, Any]:
    """An intraday bar from the store as the page draws it (minute as "HH:MM", Seoul)."""
    minute = bar["minute"]
    if isinstance(minute, str):
        minute = dt.datetime.fromisoformat(minute)
    if isinstance(minute, dt.datetime) and minute.tzinfo is not None:
        minute = minute.astimezone(SEOUL)
    return {"minute": minute.strftime("%H:%M"), "open": int(bar["open"]), "high": int(bar["high"]),
            "low": int(bar["low"]), "close": int(bar["close"]), "volume": int(bar.get("volume") or 0)}


def intraday_bars_json(source: str, code: str, day) -> list[dict[str, Any]]:
    """Today's stored 1-minute bars of a symbol (the streamer writes them), for the page and a reconnect."""
    from .store import intraday_bars

    return [_bar_json(bar) for bar in intraday_bars(source, code, day)]


def _market_context(user, code: str):
    from accounts.selectors import default_broker_account
    from market.selectors import instrument_by_code

    from .sources import stream_source_for

    if instrument_by_code(code) is None:
        return None
    return stream_source_for(default_broker_account(user))


async def market_stream(request, code: str) -> HttpResponse:
    """종목 상세's stream: ticks, 호가 and status of one symbol."""
    refusal, user = await _refusal(request)
    if refusal is not None:
        return refusal
    code = code.upper()
    found = await sync_to_async(_market_context)(user, code)
    if found is None:
        return _json_error(_("Unknown instrument code: %(code)s") % {"code": code}, 404)
    source, account = found
    group = WatchGroup(source, account, codes={code}, books={code})
    opening = [sse_event("status", _opening_status(group), _event_id())]
    if request.headers.get("Last-Event-ID"):
        # A reconnect: the ticks of the gap are lost to this page, the streamer's stored bars are not.
        day = timezone.now().astimezone(SEOUL).date()
        try:
            bars = await sync_to_async(intraday_bars_json)(source, code, day)
        except Exception:
            logger.warning("intraday bars of %s could not be read for a reconnect", code, exc_info=True)
        else:
            opening.append(sse_event("bars", {"type": "bars", "source": source, "code": code,
                                              "day": day.isoformat(), "bars": bars}, _event_id()))
    return await _open(request, user, [group], [], opening)


def _parse_watch(values: Iterable[str]) -> dict[int, set[str]] | None:
    """``?watch=<account pk>:<code>,<code>`` (repeated) → {pk: codes}; None when malformed."""
    wanted: dict[int, set[str]] = {}
    for value in values:
        pk, sep, codes = value.partition(":")
        if not sep or not pk.isdigit():
            return None
        parsed = {code.upper() for code in codes.split(",") if code}
        if any(not CODE.match(code) for code in parsed):
            return None
        wanted.setdefault(int(pk), set()).update(parsed)
    return wanted


def _dashboard_groups(user, wanted: dict[int, set[str]]) -> list[WatchGroup] | None:
    from accounts.models import BrokerAccount

    from .sources import stream_source_for

    accounts = {a.pk: a for a in BrokerAccount.objects.filter(owner=user, pk__in=wanted)}
    if set(accounts) != set(wanted):
        return None
    groups: dict[tuple[str, int | None], WatchGroup] = {}
    for pk in sorted(accounts):
        source, account = stream_source_for(accounts[pk])
        group = groups.setdefault((source, account), WatchGroup(source, account))
        group.codes |= wanted[pk]
        group.accounts.append(pk)
    return list(groups.values())


async def dashboard_stream(request) -> HttpResponse:
    """대시보드's stream: the ticks of the holdings the page shows, the user's order events, status."""
    refusal, user = await _refusal(request)
    if refusal is not None:
        return refusal
    wanted = _parse_watch(request.GET.getlist("watch"))
    if wanted is None:
        return _json_error(_("Malformed watch list: use watch=<account>:<code>,<code>."), 400)
    if any(len(codes) > MAX_DASHBOARD_CODES for codes in wanted.values()):
        return _json_error(_("At most %(count)d stocks per account can be watched live.")
                           % {"count": MAX_DASHBOARD_CODES}, 400)
    groups = await sync_to_async(_dashboard_groups)(user, wanted)
    if groups is None:
        return _json_error(_("No such broker account."), 404)
    opening = [sse_event("status", _opening_status(group), _event_id()) for group in groups]
    return await _open(request, user, groups, [events.user_channel(user.pk)], opening)
