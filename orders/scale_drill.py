"""The scale drill (issue 16): the Monday 09:05 entry of many broker accounts fanned out over real
Celery workers against a fake KIS host with KIS's limits, next to the old sequential loop on the same
data; what was sent, when, and what went wrong is counted at the fake host's side.

Everything runs on a scratch database (``orders.scratch``: ``test_<name>_scale`` next to a configured
MySQL/MariaDB database, else a SQLite file; ``--database-url`` names another) and on a Redis database
of its own (``--redis-db``, flushed before each phase and at the end), never the site's.

The processes (all ``manage.py scale_drill --child …`` on the scratch database):

- ``setup``: migrates, stores N instruments with flat bars up to the Friday before the drill's Monday,
  and creates the users, one real-mode KIS account each (its own app key, secret and account number;
  real trading confirmed, as the model requires before a real order leaves) and one active config
  buying those N codes with ``DRILL_STRATEGY`` — a drill-only strategy that signals every code (the
  orders tests' StubStrategy), installed in the drill's own processes only: a process without it
  fails the config loudly (unknown strategy) instead of trading another strategy;
- ``worker`` × ``--workers``: ``celery worker -Q trading --pool threads --concurrency 8`` (see below),
  with the drill strategy and the pinned clock;
- ``facts``: waits for the runs to finish and writes the orders and runs per account to a file; after
  the fan-out it then deletes the orders, runs, alerts, dispatches and KIS tokens (the accounts,
  configs and bars stay) for the old loop;
- ``watch``: counts the orders recorded as at the broker every 0.2 s (the moment of the last one);
- ``sequential``: the old loop (before the fan-out, ``orders.weekly_entry`` called
  ``place_weekly_buys`` for every active config, one after another, with one ``now``), timed.

The fake KIS host (``market.tests.fake_kis.FakeKisFleet``) runs in the drill's own process: one KIS
customer per app key with KIS's per-key limit (20 requests/s on the real host, EGW00201 beyond), one
token issuance per key per minute (EGW00133), 30–80 ms per call, orders filled at once. The host and
the drill's own timing read the real clock (``real_time``), as the children do, even when the drill
runs inside a test process whose clock is pinned (TEST_NOW).

The clock. Every child runs on ``SLOT`` (09:05 of a regular Monday, the week's first trading day;
time-machine, ticking) with the same offset from the real clock, so the KIS pacer's wall clock in
Redis and the order times agree across processes. The workers start with the clock a little before
09:05; once all are ready the drill sends ``orders.weekly_entry`` on the trading queue, as the beat
does, when their clock reads 09:05:00 (later when they were slow to start: reported as
``clock_at_fire``). The worker that takes it runs the dispatcher, which sends one
``orders.account_job`` per account. The sequential loop starts its clock at 09:05:00.

The pool. Each account's task mostly waits on KIS (30–80 ms a call, about 3 + 3 × N calls) and on the
database, so the workers run threads, not processes: ``--pool threads --concurrency 8`` gives 32
accounts in flight with 4 workers on 2 cores at the memory of 4 processes; the CPU, not the pool,
is then the limit (see docs/scaling.md).

What is counted per phase (``PhaseFigures``), at the fake host's side and against the database:

- duplicates: orders the host accepted beyond one per account, code and side (one intent each), and
  broker order numbers recorded on two orders;
- lost: orders the planner should have made and did not (``--orders-per-account`` per account),
  orders planned but not at the host, and orders at the host that no order records (``submitted``
  with that broker number);
- rate-limit answers (EGW00201) and those never followed by an answered retry of the same request;
- token issuances per app key (KIS allows one a minute; more than one in a run is a failure);
- seconds from the slot until the host received the last order, and until the last order's answer
  was recorded in the database; orders per second.

``run_drill`` returns a ``ScaleSummary``; the command prints lines and, with ``--json``, one object.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import sys
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import numpy as np
from django.conf import settings

from market.krx import SEOUL
from orders.fanout import TRADING_QUEUE
from orders.scratch import scratch_database
from orders.storm import MARKER, Child, StormError

DEFAULT_ACCOUNTS = 500
DEFAULT_ORDERS_PER_ACCOUNT = 10
DEFAULT_WORKERS = 4
DEFAULT_POOL = "threads"
DEFAULT_CONCURRENCY = 8
DEFAULT_REDIS_DB = 15
SLOT = dt.datetime(2025, 11, 24, 9, 5, tzinfo=SEOUL)  # a regular Monday: the week's first trading day
LATENCY = (0.03, 0.08)  # seconds per KIS call at the fake host
CASH_PER_ORDER = 200_000
DRILL_STRATEGY = "scale_drill_all_buy"
MAX_ORDERS_PER_ACCOUNT = 100
BAR_DAYS = 150  # calendar days of bars before the Monday
START_TIMEOUT = 600.0  # migrating a scratch MariaDB database and creating the accounts
WORKER_LEAD = 3.0  # seconds before 09:05 at which the workers' clocks start, plus 3 per worker
IDLE_SECONDS = 20.0  # no request at the host for this long: the phase is over (what is missing is lost)
PHASE_TIMEOUT = 1800.0
SETTLE_TIMEOUT = 180.0  # for the runs to finish after the last order
WATCH_INTERVAL = 0.2  # seconds between two counts of the recorded orders


class DrillError(Exception):
    """The drill could not run (set-up, a child, Redis)."""


# ------------------------------------------------------------------------------------------- the data
def credentials(index: int) -> tuple[str, str, str]:
    """(app key, app secret, account number) of the drill's account `index`: KIS's lengths (36, 180, 8
    digits), invented and deterministic, so the host and the database agree without a hand-over."""
    app_key = f"PSscaleDrill{index:06d}".ljust(36, "K")
    secret = (hashlib.sha256(f"scale-drill-{index}".encode()).hexdigest() * 3)[:180]
    return app_key, secret, f"{70_000_000 + index:08d}"


def drill_codes(count: int) -> dict[str, int]:
    """{code: price} of the drill's instruments: 6-digit codes, prices on the tick grid (10,000 +
    500 × i) well under CASH_PER_ORDER, so every planned buy has at least one share."""
    return {f"{990_001 + index:06d}": 10_000 + 500 * index for index in range(count)}


class DrillStrategy:
    """Buy signal for every code on every day (the orders tests' StubStrategy): the planner buys all
    of the config's N codes. Score = column index."""

    needs_ohlc = False
    cross_sectional = False
    params: dict = {}
    stop_loss, take_profit = -0.5, 5.0

    def signals_and_scores(self, close, **_):
        close = np.asarray(close)
        return np.ones(close.shape, dtype=np.int8), np.tile(np.arange(close.shape[1], dtype=float), (close.shape[0], 1))


def install_drill_strategy() -> None:
    """In this process only: the planner knows DRILL_STRATEGY (every other key as before)."""
    from orders import planning

    original = planning.create_strategy
    if getattr(original, "scale_drill", False):
        return

    def create_strategy(key, params=None):
        return DrillStrategy() if key == DRILL_STRATEGY else original(key, params)

    create_strategy.scale_drill = True
    planning.create_strategy = create_strategy


def pin_clock(spec: str) -> None:
    """`spec` "ISO@EPOCH": this process's clock reads ISO when the real clock reads EPOCH, and ticks."""
    import time_machine

    moment, epoch = spec.split("@")
    destination = dt.datetime.fromisoformat(moment) + dt.timedelta(seconds=time.time() - float(epoch))
    time_machine.travel(destination, tick=True).start()  # this process only: it runs the drill and ends


# ------------------------------------------------------------------------------------------- results
@dataclass
class PhaseFigures:
    accounts: int = 0
    orders_expected: int = 0
    orders_planned: int = 0
    orders_at_broker: int = 0
    orders_recorded: int = 0
    seconds_to_first_send: float | None = None
    seconds_to_last_send: float | None = None
    seconds_to_last_recorded: float | None = None
    orders_per_second: float | None = None
    duplicates: int = 0
    lost: int = 0
    rate_limit_answers: int = 0
    rate_limit_not_retried: int = 0
    token_throttled_answers: int = 0
    tokens_per_key: dict[str, int] = field(default_factory=dict)  # issuances → keys
    kis_requests: int = 0
    runs: dict[str, int] = field(default_factory=dict)
    details: dict = field(default_factory=dict)

    @property
    def keys_with_more_than_one_token(self) -> int:
        return sum(keys for tokens, keys in self.tokens_per_key.items() if int(tokens) > 1)

    @property
    def ok(self) -> bool:
        return not (self.duplicates or self.lost or self.rate_limit_not_retried or self.keys_with_more_than_one_token)

    def line(self, name: str) -> str:
        def secs(value):
            return "-" if value is None else f"{value:.1f} s"
        return (f"{name}: {self.orders_at_broker}/{self.orders_expected} orders at the broker, last sent "
                f"{secs(self.seconds_to_last_send)} and recorded {secs(self.seconds_to_last_recorded)} after the "
                f"slot ({self.orders_per_second or 0:.1f}/s); duplicates {self.duplicates}, lost {self.lost}, "
                f"rate-limit answers {self.rate_limit_answers} ({self.rate_limit_not_retried} not retried), "
                f"tokens per key {self.tokens_per_key}, runs {self.runs}")


@dataclass
class ScaleSummary:
    database: str
    redis: str
    accounts: int
    orders_per_account: int
    workers: int
    pool: str
    concurrency: int
    clock_at_fire: str = ""
    fanout: PhaseFigures = field(default_factory=PhaseFigures)
    sequential: PhaseFigures | None = None
    sequential_accounts: int = 0
    machine: dict = field(default_factory=dict)
    worker_tracebacks: int = 0

    @property
    def sequential_seconds(self) -> float | None:
        """The old loop's seconds to its last send, for all accounts (scaled up linearly when it ran on
        the first `sequential_accounts` only)."""
        if self.sequential is None or self.sequential.seconds_to_last_send is None or not self.sequential_accounts:
            return None
        return round(self.sequential.seconds_to_last_send * self.accounts / self.sequential_accounts, 1)

    @property
    def ok(self) -> bool:
        return self.fanout.ok and (self.sequential is None or self.sequential.ok) and not self.worker_tracebacks

    def as_dict(self) -> dict:
        fanout = self.fanout
        speedup = (round(self.sequential_seconds / fanout.seconds_to_last_send, 1)
                   if self.sequential_seconds and fanout.seconds_to_last_send else None)
        sequential = asdict(self.sequential) if self.sequential else None
        tokens_max = max((int(tokens) for tokens in fanout.tokens_per_key), default=0)
        return {
            "ok": self.ok, "accounts": self.accounts, "orders_per_account": self.orders_per_account,
            "orders": fanout.orders_at_broker, "orders_expected": fanout.orders_expected,
            "seconds_to_first_send": fanout.seconds_to_first_send,
            "seconds_to_last_send": fanout.seconds_to_last_send,
            "seconds_to_last_recorded": fanout.seconds_to_last_recorded,
            "orders_per_second": fanout.orders_per_second,
            "sequential_seconds": self.sequential_seconds,
            "sequential_extrapolated": bool(self.sequential and self.sequential_accounts < self.accounts),
            "sequential_accounts": self.sequential_accounts, "speedup": speedup,
            "duplicates": fanout.duplicates + (self.sequential.duplicates if self.sequential else 0),
            "lost": fanout.lost + (self.sequential.lost if self.sequential else 0),
            "rate_limit_answers": fanout.rate_limit_answers,
            "rate_limit_not_retried": fanout.rate_limit_not_retried,
            "tokens_per_key": fanout.tokens_per_key, "max_tokens_per_key": tokens_max,
            "keys_with_more_than_one_token": fanout.keys_with_more_than_one_token,
            "worker_tracebacks": self.worker_tracebacks,
            "workers": self.workers, "pool": self.pool, "concurrency": self.concurrency,
            "clock_at_fire": self.clock_at_fire, "database": self.database, "redis": self.redis,
            "machine": self.machine, "fanout": asdict(fanout), "sequential": sequential,
        }

    def as_json(self) -> str:
        return json.dumps(self.as_dict(), ensure_ascii=False, default=str)


# ------------------------------------------------------------------------------------------- counting
def count_phase(fleet, facts: dict, slot_real: float, recorded_counts: list[tuple[int, float]], per_account: int,
                indexes: list[int]) -> PhaseFigures:
    """The figures of one phase from the fake host's record (`fleet`) and the database's (`facts`, as
    `child_facts` wrote them) for the accounts `indexes`. `slot_real`: the real moment of the slot;
    `recorded_counts`: (orders recorded, real moment) as `child_watch` saw the count grow."""
    from market.kis.models import normalize_order_no
    from market.tests.fake_kis import ORDER_CASH_PATH, RATE_LIMITED, TOKEN_THROTTLED

    figures = PhaseFigures(accounts=len(indexes), orders_expected=len(indexes) * per_account)
    at_host = fleet.orders()
    by_number = {row["account_number"]: row for row in facts["accounts"]}
    details = Counter()
    for index in indexes:
        app_key, _, account_no = credentials(index)
        accepted = at_host.get(app_key, [])
        rows = by_number.get(account_no, {"orders": []})["orders"]
        figures.orders_at_broker += len(accepted)
        figures.orders_planned += len(rows)
        intents = Counter((order.get("PDNO"), order.get("tr_id")) for order in accepted)
        details["broker_orders_beyond_one_per_intent"] += sum(count - 1 for count in intents.values() if count > 1)
        numbers = Counter(normalize_order_no(row["broker_order_no"]) for row in rows if row["broker_order_no"])
        details["broker_numbers_recorded_twice"] += sum(count - 1 for count in numbers.values() if count > 1)
        at_broker = {normalize_order_no(order["ODNO"]) for order in accepted}
        recorded = {normalize_order_no(row["broker_order_no"]) for row in rows
                    if row["broker_order_no"] and row["status"] != "pending"}
        figures.orders_recorded += len(recorded & at_broker)
        details["not_planned"] += max(per_account - len(rows), 0)
        details["planned_not_at_broker"] += sum(
            1 for row in rows if not row["broker_order_no"] or normalize_order_no(row["broker_order_no"]) not in at_broker)
        details["at_broker_not_recorded"] += len(at_broker - recorded)
    figures.duplicates = details["broker_orders_beyond_one_per_intent"] + details["broker_numbers_recorded_twice"]
    figures.lost = details["not_planned"] + details["planned_not_at_broker"] + details["at_broker_not_recorded"]
    figures.details = dict(details)

    events = list(fleet.events)
    figures.kis_requests = len(events)
    sends = sorted(event.received for event in events if event.path == ORDER_CASH_PATH and event.outcome == "ok")
    if sends:
        figures.seconds_to_first_send = round(sends[0] - slot_real, 2)
        figures.seconds_to_last_send = round(sends[-1] - slot_real, 2)
        figures.orders_per_second = round(len(sends) / max(sends[-1] - slot_real, 1e-9), 1)
    if recorded_counts:
        figures.seconds_to_last_recorded = round(recorded_counts[-1][1] - slot_real, 2)
    figures.rate_limit_answers, figures.rate_limit_not_retried = fleet.rate_limit_answers()
    figures.details["rate_limited_orders"] = sum(
        1 for event in events if event.outcome == RATE_LIMITED and event.path == ORDER_CASH_PATH)
    figures.token_throttled_answers = sum(1 for event in events if event.outcome == TOKEN_THROTTLED)
    keys = {credentials(index)[0] for index in indexes}
    issued = Counter(count for key, count in fleet.tokens_issued().items() if key in keys)
    figures.tokens_per_key = {str(tokens): count for tokens, count in sorted(issued.items())}
    figures.details["requests_by_path"] = dict(Counter(event.path.rsplit("/", 1)[-1] for event in events))
    figures.runs = facts["runs"]
    figures.details["alerts"] = facts.get("alerts", {})
    figures.details["dispatches"] = facts.get("dispatches", 0)
    return figures


# ------------------------------------------------------------------------------------------- the drill
def redis_url_for(db: int) -> str:
    """REDIS_URL with database `db` (the drill's own)."""
    if not settings.REDIS_URL:
        raise DrillError("the scale drill needs Redis (REDIS_URL): the Celery broker and the shared KIS pacer")
    parts = urlsplit(settings.REDIS_URL)
    return urlunsplit((parts.scheme, parts.netloc, f"/{db}", parts.query, parts.fragment))


def emit(text: str) -> None:
    """A line for the drill's parent (file descriptor 1: a Celery worker replaces sys.stdout)."""
    os.write(1, f"{MARKER} {text}\n".encode())


def _describe(url: str) -> str:
    return url.split("@")[-1] if "@" in url else url


def _manage(*args: str) -> list[str]:
    return [sys.executable, str(Path(settings.BASE_DIR) / "manage.py"), "scale_drill", *args]


def child_env(database_url: str, redis_url: str, kis_url: str) -> dict[str, str]:
    return {
        **os.environ,
        "DATABASE_URL": database_url,
        "REDIS_URL": redis_url,
        "CELERY_BROKER_URL": redis_url,
        "CELERY_RESULT_BACKEND": redis_url,
        "CELERY_TASK_ALWAYS_EAGER": "False",
        # Every KIS host is the fake: nothing of the drill can reach KIS.
        "KIS_URL_BASE": kis_url, "KIS_REAL_BASE_URL": kis_url, "KIS_PAPER_BASE_URL": kis_url, "KIS_MODE": "real",
        "NOTIFY_EMAIL": "False", "NOTIFY_WEBHOOK_URL": "",
        "PYTHONUNBUFFERED": "1",
    }


def _wait_child(child: Child, prefix: str, timeout: float) -> str:
    try:
        return child.wait_marker(prefix, timeout)
    except StormError as error:
        raise DrillError(str(error)) from error


def _run_child(args: list[str], env: dict[str, str], log: Path, prefix: str, timeout: float) -> str:
    child = Child(_manage(*args), env, log)
    try:
        return _wait_child(child, prefix, timeout)
    finally:
        child.stop()


def _wait_for_orders(fleet, expected: int, out: Callable[[str], object]) -> None:
    """Until the host has `expected` orders, or nothing reached it for IDLE_SECONDS, or PHASE_TIMEOUT."""
    from market.tests.fake_kis import real_time

    started, began = time.monotonic(), real_time()
    reported = 0.0
    while time.monotonic() - started < PHASE_TIMEOUT:
        accepted = sum(len(account.accepted_orders) for account in fleet.accounts.values())
        if accepted >= expected:
            return
        # Before the first request the workers may still be importing: three times the patience.
        last, idle = (fleet.events[-1].received, IDLE_SECONDS) if fleet.events else (began, 3 * IDLE_SECONDS)
        if real_time() - last > idle:
            out(f"  no request for {idle:.0f} s with {accepted}/{expected} orders at the host")
            return
        if time.monotonic() - reported > 15:
            reported = time.monotonic()
            out(f"  {accepted}/{expected} orders at the host after {time.monotonic() - started:.0f} s")
        time.sleep(0.2)
    out(f"  timed out after {PHASE_TIMEOUT:.0f} s")


def _watch(env: dict[str, str], folder: Path, name: str) -> Child:
    """The watcher of the recorded orders (it need not be ready before the first order: only the
    moment the count stops growing matters)."""
    return Child(_manage("--child", "watch"), env, folder / f"watch-{name}.log")


def _recorded(watcher: Child) -> list[tuple[int, float]]:
    _wait_child(watcher, "watching", START_TIMEOUT)
    watcher.stop()
    return [(int(count), float(moment)) for count, moment in
            (marker.split()[1:3] for marker in watcher.markers if marker.startswith("recorded "))]


def _facts(env: dict[str, str], folder: Path, name: str, configs: int, *, reset: bool = False) -> dict:
    """What the database holds once the runs are final; with `reset`, then `child_reset` in the same
    process (one process start less between the phases)."""
    path = folder / f"facts-{name}.json"
    _run_child(["--child", "facts", "--output", str(path), "--configs", str(configs), *(["--reset"] if reset else [])],
               env, folder / f"facts-{name}.log", "reset" if reset else "facts", SETTLE_TIMEOUT + 120)
    return json.loads(path.read_text())


def _machine() -> dict:
    return {"cpus": os.cpu_count(), "load_average": [round(value, 2) for value in os.getloadavg()]}


def run_drill(accounts: int = DEFAULT_ACCOUNTS, orders_per_account: int = DEFAULT_ORDERS_PER_ACCOUNT,
              workers: int = DEFAULT_WORKERS, *, pool: str = DEFAULT_POOL, concurrency: int = DEFAULT_CONCURRENCY,
              sequential_accounts: int | None = None, redis_db: int = DEFAULT_REDIS_DB,
              database_url: str | None = None, keep: bool = False,
              out: Callable[[str], object] = print) -> ScaleSummary:
    """The whole drill; `out` receives the progress lines. Raises DrillError when it cannot run."""
    import redis
    from celery import Celery

    from market.tests.fake_kis import FakeKisFleet, Stock, real_time

    if accounts < 1 or workers < 1 or concurrency < 1:
        raise DrillError("accounts, workers and concurrency must be at least 1")
    if not 1 <= orders_per_account <= MAX_ORDERS_PER_ACCOUNT:
        raise DrillError(f"orders per account must be 1..{MAX_ORDERS_PER_ACCOUNT}")
    sequential_accounts = accounts if sequential_accounts is None else max(0, min(sequential_accounts, accounts))
    drill_redis = redis_url_for(redis_db)
    store = redis.Redis.from_url(drill_redis)
    try:
        store.flushdb()
    except redis.RedisError as error:
        raise DrillError(f"Redis {_describe(drill_redis)}: {error}") from error
    expected = accounts * orders_per_account
    with scratch_database("scale", keep=keep, database_url=database_url) as (url, folder):
        summary = ScaleSummary(database=_describe(url), redis=_describe(drill_redis), accounts=accounts,
                               orders_per_account=orders_per_account, workers=workers, pool=pool,
                               concurrency=concurrency, sequential_accounts=sequential_accounts)
        summary.machine["before"] = _machine()
        out(f"scale drill: {accounts} accounts × {orders_per_account} orders, {workers} workers "
            f"(--pool {pool} --concurrency {concurrency}), database {summary.database}, Redis {summary.redis}; "
            f"load average {summary.machine['before']['load_average']}")
        fleet = FakeKisFleet(mode="real", latency=LATENCY, today=SLOT.date(), wall_clock=real_time).start()
        env = child_env(url, drill_redis, fleet.base_url)
        children: list[Child] = []
        try:
            began = time.monotonic()
            setup = json.loads(_run_child(["--child", "setup", "--accounts", str(accounts), "--orders-per-account",
                                           str(orders_per_account)], env, folder / "setup.log", "setup ",
                                          START_TIMEOUT))
            out(f"set up {setup['accounts']} accounts and configs in {time.monotonic() - began:.1f} s")
            fleet.stocks.update({code: Stock(code, f"스케일{code}", price, price) for code, price in setup["codes"].items()})
            cash = max(10_000_000, orders_per_account * CASH_PER_ORDER * 3 // 2)
            for index in range(accounts):
                fleet.add_account(*credentials(index), cash=cash)

            # Phase 1: the fan-out over real workers.
            slot_real = real_time() + WORKER_LEAD + 3 * workers
            offset = SLOT.timestamp() - slot_real
            _set_broker_clock(fleet, offset)
            clock = f"{SLOT.isoformat()}@{slot_real}"
            for number in range(workers):
                children.append(Child(_manage("--child", "worker", "--clock", clock, "--pool", pool,
                                              "--concurrency", str(concurrency), "--name", f"scale-{number + 1}"),
                                      env, folder / f"worker-{number + 1}.log"))
            workers_only = list(children)
            watcher = _watch(env, folder, "fanout")
            children.append(watcher)
            for child in workers_only:
                _wait_child(child, "ready", START_TIMEOUT)
            _wait_child(watcher, "watching", START_TIMEOUT)
            if real_time() < slot_real:
                time.sleep(slot_real - real_time())
            fired = real_time()
            summary.clock_at_fire = (SLOT + dt.timedelta(seconds=fired - slot_real)).isoformat(timespec="seconds")
            out(f"{workers} workers ready; orders.weekly_entry sent at {summary.clock_at_fire} (the pinned clock)")
            Celery("scale-drill", broker=drill_redis).send_task("orders.weekly_entry", queue=TRADING_QUEUE)
            _wait_for_orders(fleet, expected, out)
            facts = _facts(env, folder, "fanout", accounts, reset=bool(sequential_accounts))
            summary.fanout = count_phase(fleet, facts, fired, _recorded(watcher), orders_per_account,
                                         list(range(accounts)))
            out(summary.fanout.line("fan-out"))
            for child in children:  # all at once: each finishes its tasks (warm shutdown)
                if child.process.poll() is None:
                    child.process.terminate()
            for child in children:
                child.stop()
            summary.worker_tracebacks = sum(_tracebacks(child) for child in workers_only)

            # Phase 2: the old loop on the same data.
            if sequential_accounts:
                store.flushdb()
                fleet.reset()
                watcher = _watch(env, folder, "sequential")
                children.append(watcher)
                sequential = Child(_manage("--child", "sequential", "--accounts", str(sequential_accounts)), env,
                                   folder / "sequential.log")
                children.append(sequential)
                started = float(_wait_child(sequential, "started ", START_TIMEOUT))
                _set_broker_clock(fleet, SLOT.timestamp() - started)
                out(f"sequential loop over {sequential_accounts} configs started")
                _wait_child(sequential, "done", PHASE_TIMEOUT)
                facts = _facts(env, folder, "sequential", sequential_accounts)
                summary.sequential = count_phase(fleet, facts, started, _recorded(watcher), orders_per_account,
                                                 list(range(sequential_accounts)))
                out(summary.sequential.line("sequential"))
                sequential.stop()
                summary.worker_tracebacks += _tracebacks(sequential)
        finally:
            for child in reversed(children):
                child.stop()
            fleet.stop()
            if not keep:
                store.flushdb()
        summary.machine["after"] = _machine()
        if keep:
            out(f"scratch database and folder kept: {summary.database}, {folder} (Redis db {redis_db} too)")
    return summary


def _tracebacks(child: Child) -> int:
    return child.log_path.read_text("utf-8", "replace").count("Traceback (most recent call last)")


def _set_broker_clock(fleet, offset: float) -> None:
    """The host's order times on the children's clock (reconciliation reads them)."""
    fleet.clock_offset = dt.timedelta(seconds=offset)
    for account in fleet.accounts.values():
        account.clock_offset = fleet.clock_offset


# ------------------------------------------------------------------------------------------- child side
def child_setup(accounts: int, per_account: int) -> dict:
    from django.contrib.auth import get_user_model
    from django.contrib.auth.hashers import make_password
    from django.core.management import call_command
    from django.utils import timezone

    from accounts.models import BrokerAccount, BrokerMode
    from market.krx import previous_trading_day, trading_days
    from market.models import DailyBar, Instrument
    from strategies.models import StrategyConfig, UniverseMode

    call_command("migrate", interactive=False, verbosity=0)
    codes = drill_codes(per_account)
    instruments = Instrument.objects.bulk_create(
        [Instrument(code=code, name=f"스케일{code}", market="KOSPI") for code in codes])
    days = trading_days(SLOT.date() - dt.timedelta(days=BAR_DAYS), previous_trading_day(SLOT.date()))
    DailyBar.objects.bulk_create(
        [DailyBar(instrument=instrument, date=day, open=codes[instrument.code], high=codes[instrument.code],
                  low=codes[instrument.code], close=codes[instrument.code], volume=1_000_000,
                  traded_value=1_000_000 * codes[instrument.code]) for instrument in instruments for day in days],
        batch_size=2000)
    unusable = make_password(None)  # nobody logs in as a drill user
    users = get_user_model().objects.bulk_create(
        [get_user_model()(username=f"scale-drill-{index}", password=unusable) for index in range(accounts)],
        batch_size=1000)
    confirmed = timezone.now()
    broker_accounts = []
    for index, user in enumerate(users):
        app_key, secret, number = credentials(index)
        broker_accounts.append(BrokerAccount(
            owner=user, name=f"scale {index}", mode=BrokerMode.REAL, app_key=app_key, app_secret=secret,
            account_number=number, product_code="01", is_default=True, live_trading_confirmed_at=confirmed))
    broker_accounts = BrokerAccount.objects.bulk_create(broker_accounts, batch_size=500)
    StrategyConfig.objects.bulk_create(
        [StrategyConfig(owner=account.owner, name="scale drill", strategy_key=DRILL_STRATEGY, params={},
                        universe_mode=UniverseMode.CODES, universe_codes=" ".join(codes),
                        max_positions=per_account, cash_per_week=per_account * CASH_PER_ORDER, is_active=True,
                        broker_account=account) for account in broker_accounts], batch_size=500)
    sample = BrokerAccount.objects.get(pk=broker_accounts[0].pk)  # the encrypted fields read back
    if (sample.app_key, sample.account_number) != credentials(0)[::2]:
        raise DrillError("the drill's broker accounts did not read back their credentials")
    return {"accounts": len(broker_accounts), "codes": codes, "bars": len(days) * len(codes)}


def child_worker(name: str, pool: str, concurrency: int, clock: str) -> None:
    """A Celery worker on the trading queue with the drill strategy and the pinned clock."""
    from celery.signals import worker_ready

    install_drill_strategy()
    pin_clock(clock)
    worker_ready.connect(lambda **_: emit("ready"), weak=False)
    from celery import current_app  # the project's app, loaded with Django (trading_site/__init__.py)

    current_app.worker_main(["worker", f"--pool={pool}", f"--concurrency={concurrency}", "-Q", TRADING_QUEUE,
                     "--loglevel=WARNING", "--without-gossip", "--without-mingle", "--without-heartbeat",
                     "--hostname", f"{name}@%h"])


def child_sequential(accounts: int) -> None:
    """The old `orders.weekly_entry`: every active config, one after another, with one `now`."""
    from django.utils import timezone

    from market.krx import krx_calendar
    from orders.common import active_configs
    from orders.weekly import place_weekly_buys

    install_drill_strategy()
    krx_calendar()  # built before the clock starts, as a worker builds it at start (trading_site.celery)
    started = time.time()
    pin_clock(f"{SLOT.isoformat()}@{started}")
    emit(f"started {started}")
    now = timezone.now()
    today = now.astimezone(SEOUL).date()
    for config in active_configs().select_related("broker_account")[:accounts]:
        try:
            place_weekly_buys(config, today, now)
        except Exception:  # as the old loop: one config's failure never stops the others
            import logging

            logging.getLogger(__name__).exception("weekly job for config %s failed", config.pk)
    emit("done")


def child_watch() -> None:
    """Every WATCH_INTERVAL, the orders the database records as at the broker (a broker order number,
    no longer pending): a line with the real moment each time the count changes. Runs until stopped."""
    from orders.models import Order, OrderStatus

    emit("watching")
    seen = 0
    while True:
        count = Order.objects.exclude(broker_order_no="").exclude(status=OrderStatus.PENDING).count()
        if count != seen:
            seen = count
            emit(f"recorded {count} {time.time()}")
        time.sleep(WATCH_INTERVAL)


def child_reset() -> None:
    """Between the phases: the accounts, configs and bars stay; what a run wrote goes."""
    from market.models import KisAccessToken
    from orders.models import BrokerFillNotice, Fill, JobDispatch, Order, TradeLog, TradingAlert, WeeklyRun

    for model in (BrokerFillNotice, TradeLog, Fill, TradingAlert, Order, WeeklyRun, JobDispatch, KisAccessToken):
        model.objects.all().delete()
    emit("reset")


def child_facts(output: str, configs: int, reset: bool = False) -> None:
    """Wait until the runs are final (SETTLE_TIMEOUT at most), then write what the database holds."""
    from orders.models import JobDispatch, Order, TradingAlert, WeeklyRun, WeeklyRunStatus

    unfinished = (WeeklyRunStatus.RUNNING, WeeklyRunStatus.PENDING)
    deadline = time.monotonic() + SETTLE_TIMEOUT
    while time.monotonic() < deadline:
        runs = WeeklyRun.objects.filter(trading_date=SLOT.date())
        if runs.count() >= configs and not runs.filter(status__in=unfinished).exists():
            break
        time.sleep(0.5)
    accounts: dict[str, dict] = {}
    for order in Order.objects.select_related("broker_account").order_by("pk"):
        number = order.broker_account.account_number
        accounts.setdefault(number, {"account_number": number, "orders": []})["orders"].append({
            "client_order_id": order.client_order_id, "code": order.code, "side": order.side,
            "status": order.status, "broker_order_no": order.broker_order_no or "",
            "answered_at": order.answered_at.isoformat() if order.answered_at else None,
            "send_attempts": order.send_attempts,
        })
    facts = {
        "accounts": list(accounts.values()),
        "runs": dict(Counter(WeeklyRun.objects.filter(trading_date=SLOT.date()).values_list("status", flat=True))),
        "alerts": dict(Counter(TradingAlert.objects.values_list("kind", flat=True))),
        "dispatches": JobDispatch.objects.count(),
    }
    Path(output).write_text(json.dumps(facts, default=str))
    emit("facts")
    if reset:
        child_reset()
