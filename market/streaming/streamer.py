"""The streaming process's core (``manage.py stream_market``): market data in, bus messages out.

One asyncio loop:

* **What is wanted.** Pages (the SSE endpoint) renew watch messages on ``rt:control`` (client, source,
  account, codes, books, ttl). A watch not renewed within its ttl expires; the union of the live watches
  is what each source streams: the simulator (source "sim") for every "sim" watch, the KIS session of the
  watched account for a "kis" watch. A code wanted through several KIS accounts is registered on one of
  their sessions only (its ticks are public and one channel carries them), so it costs one of the 40
  registrations once.
* **Sources.** ``SimSource`` (market.streaming.sim) and one ``KisSource`` per KIS account
  (market.streaming.kis_source): every KIS account with keys and an HTS ID gets its session at start, for
  its fill notices, the others when watched. A source that fails is logged, reported as "closed" and
  started again after a pause; the others carry on.
* **Out.** Trades are batched per symbol every ``batch_interval`` (50 ms) into one ``ticks`` message
  (``received``: when the batch's first frame arrived, ``sent``: when it was published); 호가 go out as the
  latest book, at most once per ``book_interval`` per symbol; status changes go to ``rt:status`` at once,
  and the current state of every source is repeated every ``status_repeat`` seconds (a page opened later
  learns it too; gaps are sent once, when they end).
* **Candles.** Every trade goes into 1-minute candles (market.streaming.candles); finished minutes, and
  every few seconds the minute so far, are stored (``IntradayBar``) in a worker thread, so a page opened
  during the day draws the day's candles so far.
* **Fill notices** go to ``market.streaming.signals.fill_notice_received`` in a worker thread (the orders
  app applies them with the database; nothing of Django runs on the event loop).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import re
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any

from market.kis.realtime.records import FillNotice, OrderBook, Tick
from market.kis.realtime.session import SessionStatus
from market.streaming import events
from market.streaming.bus import Bus
from market.streaming.candles import SEOUL, CandleBuilder
from market.streaming.sim import SimSource

logger = logging.getLogger(__name__)

CODE = re.compile(r"^[0-9A-Z]{6}$")
MAX_CODES_PER_WATCH = 60
MAX_TTL_SECONDS = 300
CANDLE_CLOSE_GRACE = dt.timedelta(seconds=3)  # a trade's exchange time may trail the clock a little
OPEN_CANDLES_EVERY = 5.0  # seconds between writes of the minutes in progress
PRUNE_EVERY = 6 * 3600.0
ACCOUNT_REFRESH_EVERY = 60.0
# KIS sessions are open from a little before the open to a little after the close of a KRX trading day
# (the pre-open auction and the closing auction's fills); outside, nothing connects to KIS and the pages
# show the last close.
KIS_HOURS_MARGIN = dt.timedelta(minutes=30)
KIS_CLOSED_MESSAGE = ("장 운영 시간이 아닙니다. 마지막 종가를 보여 드립니다. "
                      "KIS 실시간 연결은 다음 거래일 장 시작 30분 전에 다시 엽니다.")


def kis_hours_open(now: dt.datetime) -> bool:
    """Whether KIS real-time sessions should be open at aware ``now`` (KRX calendar, late opens included)."""
    from market.krx import is_trading_day, session_open_close

    day = now.astimezone(SEOUL).date()
    if not is_trading_day(day):
        return False
    opens, closes = session_open_close(day)
    return opens - KIS_HOURS_MARGIN <= now <= closes + KIS_HOURS_MARGIN
RESTART_MIN, RESTART_MAX = 1.0, 60.0
# The session's "connecting" is reported as "reconnecting": the pages know one "not live yet" state.
STATE_NAMES = {"connecting": "reconnecting"}


@dataclass(slots=True)
class Watch:
    client: str
    source: str
    account: int | None
    codes: tuple[str, ...]
    books: tuple[str, ...]
    expires: float  # monotonic
    since: float  # monotonic: first seen (older watches keep their registrations at the cap)


def _iso(moment: dt.datetime | None) -> str | None:
    return moment.astimezone(SEOUL).isoformat() if moment is not None else None


class Streamer:
    """Run with ``await streamer.run(stop_event)``. ``kis_factory(account_id, callbacks)`` builds the source of
    a KIS account (None when it cannot stream: not a KIS account, no keys; stream_market gives the one that
    reads ``BrokerAccount``; without one there is no KIS source); ``kis_accounts()`` lists the accounts to
    stream from the start (fill notices), by default the KIS accounts with keys and an HTS ID."""

    def __init__(
        self,
        bus: Bus,
        *,
        sim_session: str | None = None,
        sim_ticks_per_second: float | None = None,
        sim_seed: int | None = None,
        sim_interval: float = 0.1,
        batch_interval: float = 0.05,
        book_interval: float = 0.25,
        status_repeat: float = 5.0,
        expire_every: float = 1.0,
        store_candles: bool = True,
        sim: bool = True,
        kis: bool = True,
        kis_factory: Callable[[int, dict[str, Any]], Awaitable[Any]] | None = None,
        kis_accounts: Callable[[], Awaitable[Iterable[int]]] | None = None,
        kis_hours: str = "market",
        load_closes: Callable[[list[str], dt.date], Awaitable[dict[str, int]]] | None = None,
        clock: Callable[[], dt.datetime] | None = None,
    ) -> None:
        from django.conf import settings

        self.bus = bus
        self.batch_interval = batch_interval
        self.book_interval = book_interval
        self.status_repeat = status_repeat
        self.expire_every = expire_every
        self.store_candles = store_candles
        self.sim_enabled = sim
        self.clock = clock or (lambda: dt.datetime.now(SEOUL))
        self.kis_enabled = kis and kis_factory is not None
        self.kis_factory = kis_factory
        self.kis_accounts = kis_accounts or _kis_accounts_from_db
        self.kis_hours = kis_hours  # "market": only around KRX sessions (kis_hours_open); "always": tests
        self._kis_open: bool | None = None  # the hours' state last applied
        self.sim = SimSource(
            on_tick=lambda tick, received: self.on_tick("sim", tick, received),
            on_book=lambda book, received: self.on_book("sim", book, received),
            on_status=lambda state, message: self.on_status("sim", None, state, message=message),
            load_closes=load_closes or _previous_closes,
            session=sim_session or settings.REALTIME_SIM_SESSION,
            ticks_per_second=sim_ticks_per_second or settings.REALTIME_SIM_TICKS_PER_SECOND,
            seed=sim_seed, interval=sim_interval, clock=self.clock,
        )
        self.kis: dict[int, Any] = {}  # account id -> KisSource
        self._kis_tasks: dict[int, asyncio.Task] = {}
        self._kis_unavailable: dict[int, float] = {}  # account id -> monotonic time to ask again
        self._kis_boot: set[int] = set()  # accounts streamed from the start (fill notices), kept unwatched
        self._kis_boot_wanted: set[int] = set()  # the fill-notice accounts, in the hours or not
        self._kis_owner: dict[str, int] = {}  # code -> the account whose session carries its trades
        self._kis_book_owner: dict[str, int] = {}
        self.watches: dict[str, Watch] = {}
        self.candles = {source: CandleBuilder() for source in events.SOURCES}
        self._batches: dict[tuple[str, str], list] = {}  # (source, code) -> [received, [tick messages]]
        self._books: dict[tuple[str, str], tuple[OrderBook, float]] = {}
        self._book_sent: dict[tuple[str, str], float] = {}
        self.statuses: dict[tuple[str, int | None], dict[str, Any]] = {}
        self._dirty = asyncio.Event()
        self._background: set[asyncio.Task] = set()
        self._stop: asyncio.Event | None = None
        self.ready = asyncio.Event()  # set once the control subscription is up
        # Counters (tests, the benchmark, logs).
        self.ticks_in = 0
        self.ticks_out = 0
        self.batches_out = 0
        self.books_out = 0
        self.notices_in = 0
        self.candles_stored = 0

    # ---------------------------------------------------------------------------------------------- intake
    def on_tick(self, source: str, tick: Tick, received: float) -> None:
        key = (source, tick.code)
        message = events.tick_message(tick, SEOUL)
        batch = self._batches.get(key)
        if batch is None:
            self._batches[key] = [received, [message]]
        else:
            batch[1].append(message)
        self.ticks_in += 1
        day = tick.business_date or self.clock().date()
        moment = dt.datetime.combine(day, tick.time, tzinfo=SEOUL)
        self.candles[source].add(tick.code, moment, tick.price, tick.volume)

    def on_book(self, source: str, book: OrderBook, received: float) -> None:
        self._books[(source, book.code)] = (book, received)

    def on_status(self, source: str, account: int | None, state: str, *, since: str | None = None,
                  until: str | None = None, message: str = "", **extra: Any) -> None:
        state = STATE_NAMES.get(state, state)
        status = {**events.status_message(source, state, account=account, since=since, until=until,
                                          message=message), **extra}
        if state != "gap":  # a gap is told once, when it ends; the state after it is repeated
            self.statuses[(source, account)] = status
        self.bus.publish(events.STATUS_CHANNEL, status)
        log = logger.warning if state in ("gap", "closed") else logger.info
        log("status %s%s: %s %s", source, f" #{account}" if account is not None else "", state, message)

    def _on_session_status(self, account: int, status: SessionStatus) -> None:
        self.on_status("kis", account, status.state, since=_iso(status.since), until=_iso(status.until),
                       message=status.message)

    def on_notice(self, account: int, notice: FillNotice) -> None:
        self.notices_in += 1
        self._spawn(asyncio.to_thread(_send_fill_notice, account, notice), "fill-notice")

    def _spawn(self, coroutine, name: str) -> asyncio.Task:
        task = asyncio.get_running_loop().create_task(coroutine, name=name)
        self._background.add(task)
        task.add_done_callback(self._background.discard)
        return task

    # ---------------------------------------------------------------------------------------------- watches
    def handle_watch(self, message: dict[str, Any]) -> None:
        """A page's watch heartbeat (``events.watch_message``); malformed ones are ignored."""
        try:
            client = str(message["client"])[:100]
            source = message["source"]
            account = message.get("account")
            account = int(account) if account is not None else None
            codes = tuple(dict.fromkeys(c for c in message.get("codes", ()) if isinstance(c, str) and CODE.match(c)))
            books = tuple(dict.fromkeys(c for c in message.get("books", ()) if isinstance(c, str) and CODE.match(c)))
            ttl = min(max(float(message.get("ttl", events.WATCH_TTL_SECONDS)), 1.0), MAX_TTL_SECONDS)
        except (KeyError, TypeError, ValueError):
            logger.warning("malformed watch message ignored")
            return
        if source not in events.SOURCES or (source == "kis" and account is None):
            logger.warning("watch for an unknown source %r / account %r ignored", source, account)
            return
        codes, books = codes[:MAX_CODES_PER_WATCH], books[:MAX_CODES_PER_WATCH]
        now = time.monotonic()
        previous = self.watches.get(client)
        if not codes and not books:  # a page leaving says so with an empty watch
            if self.watches.pop(client, None) is not None:
                self._dirty.set()
            return
        self.watches[client] = Watch(client, source, account if source == "kis" else None, codes, books,
                                     now + ttl, previous.since if previous else now)
        if previous is None or (previous.source, previous.account, previous.codes, previous.books) != (
                source, self.watches[client].account, codes, books):
            self._dirty.set()
        if previous is None:  # a new page learns the state of its source at once
            status = self.statuses.get((source, self.watches[client].account))
            if status is not None:
                self.bus.publish(events.STATUS_CHANNEL, status)

    def expire_watches(self, now: float | None = None) -> list[str]:
        now = time.monotonic() if now is None else now
        gone = [client for client, watch in self.watches.items() if watch.expires <= now]
        for client in gone:
            del self.watches[client]
        if gone:
            self._dirty.set()
        return gone

    def wanted(self, source: str, account: int | None = None) -> tuple[list[str], list[str]]:
        """The codes and books wanted from a source (oldest watch first)."""
        codes: dict[str, None] = {}
        books: dict[str, None] = {}
        for watch in sorted(self.watches.values(), key=lambda w: w.since):
            if watch.source == source and (source != "kis" or watch.account == account):
                codes.update(dict.fromkeys(watch.codes))
                books.update(dict.fromkeys(watch.books))
        return list(codes), list(books)

    def _kis_plan(self) -> dict[int, tuple[list[str], list[str]]]:
        """Per KIS account, what its session carries: each code on one session only (its current owner
        while that account still wants it, else the first account that wants it)."""
        wanted = {account: self.wanted("kis", account)
                  for account in sorted({w.account for w in self.watches.values() if w.source == "kis"})}
        plan: dict[int, tuple[list[str], list[str]]] = {account: ([], []) for account in wanted}
        for index, owners in ((0, self._kis_owner), (1, self._kis_book_owner)):
            chosen: dict[str, int] = {}
            for account, lists in wanted.items():
                for code in lists[index]:
                    owner = owners.get(code)
                    keep = owner is not None and code in wanted.get(owner, ([], []))[index]
                    chosen.setdefault(code, owner if keep else account)
            owners.clear()
            owners.update(chosen)
            for code, account in chosen.items():
                plan[account][index].append(code)
        return plan

    async def reconcile(self) -> None:
        """Tell every source what is wanted now."""
        self._dirty.clear()
        if self.sim_enabled:
            self.sim.set_wanted(*self.wanted("sim"))
        if not self.kis_enabled:
            return
        plan = self._kis_plan()
        if not self._kis_hours_open():
            # Outside the hours: no KIS session at all (nothing to stream, nothing to poll); every
            # account a page asks for, and every fill-notice account, hears why.
            for account in sorted(set(self.kis)):
                await self._stop_kis(account)
            for account in sorted(set(plan) | self._kis_boot_wanted):
                self.on_status("kis", account, "market_closed", message=KIS_CLOSED_MESSAGE)
            return
        for account in sorted(set(plan) | set(self.kis)):
            codes, books = plan.get(account, ([], []))
            source = self.kis.get(account)
            if source is None and (codes or books):
                source = await self._start_kis(account)
            if source is None:
                continue
            if not codes and not books and account not in self._kis_boot:
                await self._stop_kis(account)
                continue
            refused = await source.set_wanted(codes, books)
            if refused:
                state = self.statuses.get(("kis", account), {}).get("state", "reconnecting")
                self.on_status("kis", account, state, message=" ".join(source.refused[c] for c in refused),
                               refused=refused)

    # ---------------------------------------------------------------------------------------------- KIS
    def _kis_callbacks(self, account: int) -> dict[str, Any]:
        return {
            "on_tick": lambda tick, received: self.on_tick("kis", tick, received),
            "on_book": lambda book, received: self.on_book("kis", book, received),
            "on_notice": lambda notice: self.on_notice(account, notice),
            "on_status": lambda status: self._on_session_status(account, status),
        }

    async def _start_kis(self, account: int, *, boot: bool = False):
        if time.monotonic() < self._kis_unavailable.get(account, 0.0):
            return None
        try:
            source = await self.kis_factory(account, self._kis_callbacks(account))
        except Exception as error:
            logger.exception("KIS source #%s could not be made", account)
            source, message = None, f"실시간 연결을 준비하지 못했습니다: {error}"
        else:
            message = "이 계정으로는 실시간 시세를 받을 수 없습니다 (한국투자증권 계정과 키가 필요합니다)."
        if source is None:
            self._kis_unavailable[account] = time.monotonic() + ACCOUNT_REFRESH_EVERY
            self.on_status("kis", account, "closed", message=message)
            return None
        self.kis[account] = source
        if boot:
            self._kis_boot.add(account)
        self._kis_tasks[account] = self._spawn(self._supervise(f"kis#{account}", source.run, "kis", account),
                                               f"kis-source-{account}")
        logger.info("KIS source #%s started (%s)", account, source.environment)
        return source

    async def _stop_kis(self, account: int) -> None:
        source = self.kis.pop(account, None)
        task = self._kis_tasks.pop(account, None)
        self._kis_boot.discard(account)
        if source is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(source.close(), 5)
        if task is not None:
            task.cancel()
            with contextlib.suppress(BaseException):
                await task
        self.statuses.pop(("kis", account), None)

    def _kis_hours_open(self) -> bool:
        return self.kis_hours == "always" or kis_hours_open(self.clock())

    async def check_kis_hours(self) -> None:
        """Open or close the KIS sessions when the hours begin or end."""
        now_open = self._kis_hours_open()
        if now_open == self._kis_open:
            return
        self._kis_open = now_open
        logger.info("KIS real-time hours %s", "begin" if now_open else "end")
        if now_open:
            await self.refresh_accounts()
        self._dirty.set()

    async def refresh_accounts(self) -> None:
        """Start the sessions of KIS accounts that stream fill notices; stop those of accounts gone."""
        try:
            accounts = set(await self.kis_accounts())
        except Exception:
            logger.exception("KIS accounts could not be listed")
            return
        self._kis_boot_wanted = accounts
        if not self._kis_hours_open():
            return
        self._kis_boot |= accounts & set(self.kis)
        for account in sorted(accounts - set(self.kis)):
            await self._start_kis(account, boot=True)
        for account in sorted(self._kis_boot - accounts):
            self._kis_boot.discard(account)
            self._dirty.set()  # stopped by reconcile unless a page watches it

    # ---------------------------------------------------------------------------------------------- loops
    async def _supervise(self, name: str, run: Callable[[], Awaitable[None]], source: str,
                         account: int | None) -> None:
        """Run a source; when it fails, report it and run it again after a growing pause."""
        pause = RESTART_MIN
        while True:
            started = time.monotonic()
            try:
                await run()
                return
            except asyncio.CancelledError:
                raise
            except Exception as error:
                if pause == RESTART_MIN:
                    logger.exception("source %s failed; restarting in %.0f s", name, pause)
                else:  # the same trouble again: one line, not the whole traceback
                    logger.warning("source %s failed again (%s: %s); restarting in %.0f s", name,
                                   type(error).__name__, error, pause)
                self.on_status(source, account, "closed",
                               message=f"실시간 시세 공급이 중단되었습니다 ({type(error).__name__}). "
                                       f"{pause:.0f}초 뒤 다시 시작합니다.")
            if time.monotonic() - started > 60:
                pause = RESTART_MIN
            await asyncio.sleep(pause)
            pause = min(pause * 2, RESTART_MAX)

    def flush(self) -> None:
        """Publish the batched trades and the books that are due."""
        batches, self._batches = self._batches, {}
        publish = self.bus.publish
        for (source, code), (received, ticks) in batches.items():
            publish(events.tick_channel(source, code),
                    events.ticks_message(source, code, ticks, received=received, sent=time.time()))
            self.ticks_out += len(ticks)
            self.batches_out += 1
        if self._books:
            now = time.monotonic()
            for key, (book, _received) in list(self._books.items()):
                if now - self._book_sent.get(key, 0.0) < self.book_interval:
                    continue
                del self._books[key]
                self._book_sent[key] = now
                publish(events.book_channel(key[0], key[1]), events.book_message(key[0], book, SEOUL))
                self.books_out += 1

    async def _flush_loop(self) -> None:
        while True:
            await asyncio.sleep(self.batch_interval)
            try:
                self.flush()
            except Exception:
                logger.exception("publishing failed")

    async def _control_loop(self) -> None:
        async with self.bus.subscribe([events.CONTROL_CHANNEL]) as subscription:
            self.ready.set()
            async for _channel, message in subscription:
                if message.get("type") == "watch":
                    self.handle_watch(message)

    async def _housekeeping_loop(self) -> None:
        last_repeat = last_open_candles = last_accounts = time.monotonic()
        last_prune = 0.0
        storing: asyncio.Task | None = None
        while True:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._dirty.wait(), self.expire_every)
            now = time.monotonic()
            self.expire_watches(now)
            if self._dirty.is_set():
                try:
                    await self.reconcile()
                except Exception:
                    logger.exception("applying the watches failed")
            if now - last_repeat >= self.status_repeat:
                last_repeat = now
                for status in list(self.statuses.values()):
                    self.bus.publish(events.STATUS_CHANNEL, status)
            if self.kis_enabled:
                await self.check_kis_hours()
            if self.kis_enabled and now - last_accounts >= ACCOUNT_REFRESH_EVERY:
                last_accounts = now
                await self.refresh_accounts()
            if self.store_candles and (storing is None or storing.done()):
                with_open = now - last_open_candles >= OPEN_CANDLES_EVERY
                if with_open:
                    last_open_candles = now
                rows = self._candles_to_store(with_open)
                prune = now - last_prune >= PRUNE_EVERY
                if prune:
                    last_prune = now
                if rows or prune:
                    storing = self._spawn(asyncio.to_thread(self._store, rows, prune), "store-candles")

    def _candles_to_store(self, with_open: bool) -> dict[str, list]:
        cutoff = self.clock() - CANDLE_CLOSE_GRACE
        rows: dict[str, list] = {}
        for source, builder in self.candles.items():
            builder.close_until(cutoff)
            candles = builder.take_finished() + (builder.open_candles() if with_open else [])
            if candles:
                rows[source] = candles
        return rows

    def _store(self, rows: dict[str, list], prune: bool) -> None:
        from django.db import close_old_connections

        from market.streaming import store

        close_old_connections()
        try:
            for source, candles in rows.items():
                self.candles_stored += store.save_candles(source, candles)
            if prune:
                store.prune_intraday()
        except Exception:
            logger.exception("storing candles failed")
        finally:
            close_old_connections()

    async def run(self, stop: asyncio.Event | None = None) -> None:
        """Run until ``stop`` is set (or the task is cancelled); then close every source and store the
        candles built so far."""
        self._stop = stop or asyncio.Event()
        tasks = [
            self._spawn(self._control_loop(), "control"),
            self._spawn(self._flush_loop(), "flush"),
            self._spawn(self._housekeeping_loop(), "housekeeping"),
        ]
        if self.sim_enabled:
            tasks.append(self._spawn(self._supervise("sim", self.sim.run, "sim", None), "sim-source"))
        if self.kis_enabled:
            await self.refresh_accounts()
            self._kis_open = None  # the housekeeping applies the hours at once
        try:
            stopping = asyncio.ensure_future(self._stop.wait())
            await asyncio.wait([stopping, *tasks], return_when=asyncio.FIRST_COMPLETED)
            stopping.cancel()
            for task in tasks:
                if task.done() and not task.cancelled() and task.exception() is not None:
                    logger.error("streamer task %s ended: %r", task.get_name(), task.exception())
        finally:
            await self.shutdown(tasks)

    async def shutdown(self, tasks: Iterable[asyncio.Task] = ()) -> None:
        await self.sim.close()
        for account in list(self.kis):
            await self._stop_kis(account)
        for task in [*tasks, *self._background]:
            if task.get_name() not in ("fill-notice", "store-candles"):
                task.cancel()
        pending = [t for t in self._background if not t.done()]
        if pending:
            await asyncio.wait(pending, timeout=10)
        with contextlib.suppress(Exception):
            self.flush()
        if self.store_candles:
            for builder in self.candles.values():
                builder.close_until(self.clock() + dt.timedelta(minutes=1))
            rows = {source: b.take_finished() for source, b in self.candles.items()}
            rows = {source: candles for source, candles in rows.items() if candles}
            if rows:
                await asyncio.to_thread(self._store, rows, False)


# ---------------------------------------------------------------------------------------------- defaults
async def _previous_closes(codes: list[str], day: dt.date) -> dict[str, int]:
    return await asyncio.to_thread(_db_call, "previous_closes", codes, day)


def _db_call(name: str, *args):
    from django.db import close_old_connections

    from market.streaming import store

    close_old_connections()
    try:
        return getattr(store, name)(*args)
    finally:
        close_old_connections()


def _kis_account_ids() -> list[int]:
    from django.db import close_old_connections

    from accounts.models import BrokerAccount, BrokerMode

    close_old_connections()
    try:
        accounts = BrokerAccount.objects.filter(mode__in=[BrokerMode.SIMULATED, BrokerMode.REAL]).order_by("pk")
        return [a.pk for a in accounts if a.app_key and a.app_secret and a.hts_id]
    finally:
        close_old_connections()


async def _kis_accounts_from_db() -> list[int]:
    return await asyncio.to_thread(_kis_account_ids)


def _send_fill_notice(account_id: int, notice: FillNotice) -> None:
    from django.db import close_old_connections

    from market.streaming.signals import fill_notice_received

    close_old_connections()
    try:
        # send_robust: one receiver's failure must not keep the notice from the others
        answers = fill_notice_received.send_robust(sender=Streamer, account_id=account_id, notice=notice, source="kis")
    finally:
        close_old_connections()
    for receiver, answer in answers:
        if isinstance(answer, Exception):
            logger.error("a fill notice of account #%s was not applied by %r (the reconciliation will): %r",
                         account_id, receiver, answer, exc_info=answer)
