"""The crash drill (reliability.md §1 row 3, the kill test): the weekly entry job runs in a separate
real process, is killed with SIGKILL at a random moment, the recovery runs, and duplicates and lost
orders are counted against the broker's own record.

Each drill works on a scratch database, never the configured one: a temporary SQLite file, or on
MySQL/MariaDB a scratch database next to the configured one (``test_<name>_drill``, the prefix that
test-database grants cover; dropped afterwards).

Processes. The drill starts one worker process on the scratch database (``manage.py crash_drill
--child server``). It sets Django up and builds the KRX calendar once (seconds), then forks a fresh
child for every step, exactly as Celery's prefork pool does; the database connections are closed
before each fork, so every child opens its own. A forked child:

- ``setup``: migrates the scratch database, stores a small demo market, creates one paper account
  and active strategy config per run and picks an entry day with at least three planned buys;
- ``job``: installs a hook on ``orders.common.checkpoint`` and runs ``trade_week entry --config ID
  --date DAY`` (the job clock is 09:05 of that past day on the paper broker). The kill lands either
  at a random checkpoint (``intents_committed``, ``before_send`` n, ``after_send`` n: the child
  announces it and waits there) or after a random delay while every checkpoint sleeps a little
  (anywhere: inside a database transaction, the paper broker's order insert, ...). The drill sends
  SIGKILL to the child's own pid;
- ``recover``: on a clock past ``STALE_AFTER``: ``resume_interrupted_runs``,
  ``reconcile_open_orders``, a redelivered entry (the scheduler may fire again; it must add nothing)
  and one more reconciliation; then it counts against the paper broker's orders table
  (``PaperOrder``, which keeps the client order id each order was sent with): duplicates = broker
  orders beyond the first for one intent; lost = intents with a broker order that is not the one
  recorded on the Order row, plus broker orders that belong to no intent. Also reported: intents
  still open, runs not complete, positions that differ from the broker's holdings.

The command prints one line per run and ``runs: N, duplicates: D, lost orders: L``.
"""

from __future__ import annotations

import datetime as dt
import io
import json
import os
import queue
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from django.conf import settings

from orders.scratch import scratch_database

MARKER = "CRASH-DRILL"
DEFAULT_RUNS = 20
STEP_DELAY = 0.05
DEMO_SYMBOLS = 12
DEMO_END = dt.date(2025, 11, 28)  # a fixed past week: every drill trades the same bars
MIN_PLANNED = 3
CHILD_TIMEOUT = 180.0


class DrillError(Exception):
    """The drill could not run (setup or a child failed in a way that is not the injected kill)."""


@dataclass
class RunResult:
    index: int
    config_id: int
    kill: str  # what was injected
    killed: bool  # the child was still running when the kill was sent
    last_checkpoint: str  # the last checkpoint the child passed before it died ("" = none)
    broker_orders: int = 0
    intents: int = 0
    duplicates: int = 0
    lost: int = 0
    open_intents: int = 0
    unsent: int = 0
    run_status: str = ""
    position_mismatches: int = 0
    seconds: float = 0.0

    @property
    def failed(self) -> bool:
        return bool(self.duplicates or self.lost or self.open_intents or self.position_mismatches
                    or self.run_status != "complete")

    def line(self, total: int) -> str:
        where = f"killed after {self.last_checkpoint}" if self.last_checkpoint else "killed before any checkpoint"
        if not self.killed:
            where = "finished before the kill"
        return (f"run {self.index:>2}/{total}: {self.kill}: {where}; broker orders {self.broker_orders}, "
                f"intents {self.intents}, duplicates {self.duplicates}, lost {self.lost}, open {self.open_intents}, "
                f"run {self.run_status or 'none'}, position mismatches {self.position_mismatches} "
                f"({self.seconds:.1f} s)")


@dataclass
class DrillSummary:
    seed: int
    trading_date: str
    database: str
    runs: list[RunResult] = field(default_factory=list)

    @property
    def duplicates(self) -> int:
        return sum(run.duplicates for run in self.runs)

    @property
    def lost(self) -> int:
        return sum(run.lost for run in self.runs)

    @property
    def failed_runs(self) -> list[RunResult]:
        return [run for run in self.runs if run.failed]

    @property
    def ok(self) -> bool:
        return not self.failed_runs

    def summary_line(self) -> str:
        return f"runs: {len(self.runs)}, duplicates: {self.duplicates}, lost orders: {self.lost}"


def _describe(url: str) -> str:
    return url.split("@")[-1] if "@" in url else url


# ------------------------------------------------------------------------------------------- the worker
class Worker:
    """The drill's worker process (`manage.py crash_drill --child server`) on the scratch database.
    Requests go in as JSON lines on its stdin; marker lines from it and its forked children arrive
    on a queue."""

    def __init__(self, database_url: str) -> None:
        # The drill's tasks (alert notifications) run inline in its own processes: sent to the site's
        # queue they would reach the site's worker with the scratch database's alert ids.
        env = {**os.environ, "DATABASE_URL": database_url, "PYTHONUNBUFFERED": "1",
               "CELERY_TASK_ALWAYS_EAGER": "True", "CELERY_BROKER_URL": "memory://"}
        self.stderr = tempfile.TemporaryFile()
        manage = Path(settings.BASE_DIR) / "manage.py"
        self.process = subprocess.Popen(
            [sys.executable, str(manage), "crash_drill", "--child", "server"], env=env, cwd=settings.BASE_DIR,
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.stderr, text=True, bufsize=1,
        )
        self.lines: queue.Queue[str | None] = queue.Queue()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        self.expect("server-ready", timeout=CHILD_TIMEOUT)

    def _read(self) -> None:
        assert self.process.stdout is not None
        for raw in self.process.stdout:
            if raw.startswith(MARKER):
                self.lines.put(raw[len(MARKER):].strip())
        self.lines.put(None)

    def next_line(self, deadline: float) -> str:
        """The next marker line; "" at the deadline. DrillError when the worker died."""
        try:
            line = self.lines.get(timeout=max(deadline - time.monotonic(), 0.0))
        except queue.Empty:
            return ""
        if line is None:
            raise DrillError(f"the drill's worker process ended:\n{self.error_tail()}")
        return line

    def expect(self, prefix: str, timeout: float) -> str:
        deadline = time.monotonic() + timeout
        while True:
            line = self.next_line(deadline)
            if not line:
                raise DrillError(f"no '{prefix}' from the drill's worker within {timeout:.0f} s:\n{self.error_tail()}")
            if line.startswith(prefix):
                return line

    def send(self, request: dict) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(json.dumps(request) + "\n")
        self.process.stdin.flush()

    def call(self, request: dict, timeout: float = CHILD_TIMEOUT) -> dict:
        """Run one forked step to its end; its `result` payload."""
        self.send(request)
        deadline = time.monotonic() + timeout
        payload = None
        while True:
            line = self.next_line(deadline)
            if not line:
                raise DrillError(f"step {request['op']} did not finish within {timeout:.0f} s:\n{self.error_tail()}")
            if line.startswith("result "):
                payload = json.loads(line[len("result "):])
            elif line.startswith("exit "):
                status = line.split()[2]
                if status != "0" or payload is None:
                    raise DrillError(f"step {request['op']} failed ({status}):\n{self.error_tail()}")
                return payload

    def error_tail(self) -> str:
        self.stderr.seek(0)
        return self.stderr.read().decode("utf-8", "replace")[-3000:]

    def close(self) -> None:
        if self.process.poll() is None:
            try:
                self.send({"op": "quit"})
                self.process.wait(timeout=30)
            except (OSError, subprocess.TimeoutExpired):
                self.process.kill()  # our own worker, by its Popen handle
                self.process.wait()
        self._reader.join(timeout=5)
        self.stderr.close()


def emit(text: str) -> None:
    """A marker line for the drill (worker side). One write, shorter than PIPE_BUF, so the lines of
    the worker and of its forked children never interleave."""
    os.write(sys.stdout.fileno(), f"{MARKER} {text}\n".encode())


# ------------------------------------------------------------------------------------------- the drill
def _kill_plan(rng: random.Random, planned: int, job_seconds: float) -> tuple[str, dict]:
    """(description, the job request's kill fields)."""
    if rng.random() < 0.5:
        points = [("intents_committed", 1)] + [
            (name, nth) for nth in range(1, planned + 1) for name in ("before_send", "after_send")]
        name, nth = rng.choice(points)
        return f"SIGKILL at {name} #{nth}", {"kill_at": f"{name}:{nth}", "step_delay": 0, "delay": None}
    delay = round(rng.uniform(0.0, job_seconds), 3)  # anywhere inside the job (measured by `_calibrate`)
    return f"SIGKILL {delay * 1000:.0f} ms into the job", {"kill_at": "", "step_delay": STEP_DELAY, "delay": delay}


def _calibrate(worker: Worker, config_id: int, day: str) -> float:
    """Seconds one entry job takes with the step delays (not killed, not counted)."""
    worker.send({"op": "job", "config": config_id, "date": day, "kill_at": "", "step_delay": STEP_DELAY})
    pid = worker.expect("forked ", CHILD_TIMEOUT).split()[1]
    ready = done = None
    while True:
        line = worker.expect("", CHILD_TIMEOUT)
        if line == "ready":
            ready = time.monotonic()
        elif line == "done":
            done = time.monotonic()
        elif line.startswith(f"exit {pid} "):
            if line.split()[2] != "0" or ready is None or done is None:
                raise DrillError(f"the calibration job failed ({line}):\n{worker.error_tail()}")
            return done - ready


def _one_run(worker: Worker, index: int, config_id: int, day: str, planned: int, job_seconds: float,
             rng: random.Random) -> RunResult:
    started = time.monotonic()
    kill, plan = _kill_plan(rng, planned, job_seconds)
    worker.send({"op": "job", "config": config_id, "date": day, "kill_at": plan["kill_at"],
                 "step_delay": plan["step_delay"]})
    pid = int(worker.expect("forked ", CHILD_TIMEOUT).split()[1])
    deadline = time.monotonic() + CHILD_TIMEOUT
    last, killed, kill_at, status = "", False, None, None

    def sigkill() -> bool:
        try:
            os.kill(pid, signal.SIGKILL)  # the forked job's own pid
        except ProcessLookupError:
            return False
        return True

    while status is None:
        line = worker.next_line(kill_at if kill_at is not None else deadline)
        if not line:
            if kill_at is None:
                sigkill()
                raise DrillError(f"the entry job made no progress within {CHILD_TIMEOUT:.0f} s:\n{worker.error_tail()}")
            killed, kill_at = sigkill(), None  # the random delay is over
            deadline = time.monotonic() + CHILD_TIMEOUT
        elif line.startswith("at "):
            last = line[3:]
        elif line == "ready" and plan["delay"] is not None:
            kill_at = time.monotonic() + plan["delay"]
        elif line == "kill-me":
            killed = sigkill()
        elif line.startswith(f"exit {pid} "):
            status = line.split()[2]
    if status == "signal-9":
        killed = True
    elif status == "0":
        killed = False
    else:
        raise DrillError(f"the entry job failed on its own ({status}):\n{worker.error_tail()}")
    payload = worker.call({"op": "recover", "config": config_id, "date": day})
    return RunResult(index=index, config_id=config_id, kill=kill, killed=killed, last_checkpoint=last,
                     seconds=time.monotonic() - started, **payload)


def run_drill(runs: int = DEFAULT_RUNS, seed: int | None = None, *, database_url: str | None = None,
              keep: bool = False, out: Callable[[str], object] = print) -> DrillSummary:
    """The whole drill; `out` receives the progress lines. Raises DrillError when it cannot run."""
    if runs < 1:
        raise DrillError("runs must be at least 1")
    seed = random.SystemRandom().randrange(2**31) if seed is None else seed
    rng = random.Random(seed)
    with scratch_database("drill", database_url=database_url, keep=keep) as (url, _folder):
        out(f"crash drill: {runs} runs, seed {seed}, scratch database {_describe(url)}")
        worker = Worker(url)
        try:
            setup = worker.call({"op": "setup", "runs": runs}, timeout=900)
            summary = DrillSummary(seed=seed, trading_date=setup["date"], database=_describe(url))
            job_seconds = _calibrate(worker, setup["calibration"], setup["date"])
            out(f"entry day {setup['date']}: {setup['planned']} buys planned per run; an unkilled job takes "
                f"{job_seconds:.2f} s with {STEP_DELAY * 1000:.0f} ms at each checkpoint")
            for index, config_id in enumerate(setup["configs"], start=1):
                result = _one_run(worker, index, config_id, setup["date"], setup["planned"], job_seconds, rng)
                summary.runs.append(result)
                out(result.line(runs))
        finally:
            worker.close()
        if keep:
            out(f"scratch database kept: {url}")
    return summary


# ------------------------------------------------------------------------------------------- worker side
def serve() -> None:
    """The worker (`--child server`): warm up once, then fork one child per request line."""
    from django.db import connections as all_connections

    from market.krx import is_trading_day

    is_trading_day(DEMO_END)  # builds the KRX calendar once; every fork inherits it
    all_connections.close_all()
    emit("server-ready")
    for raw in sys.stdin:
        request = json.loads(raw)
        if request["op"] == "quit":
            break
        all_connections.close_all()  # never share a connection with a child
        go_read, go_write = os.pipe()  # the child starts only once "forked <pid>" is out
        pid = os.fork()
        if pid == 0:
            os.close(go_write)
            os.read(go_read, 1)
            os.close(go_read)
            _forked_child(request)  # never returns
        os.close(go_read)
        emit(f"forked {pid}")
        os.write(go_write, b"1")
        os.close(go_write)
        _, status = os.waitpid(pid, 0)
        if os.WIFSIGNALED(status):
            emit(f"exit {pid} signal-{os.WTERMSIG(status)}")
        else:
            emit(f"exit {pid} {os.WEXITSTATUS(status)}")


def _forked_child(request: dict) -> None:
    code = 0
    try:
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        op = request["op"]
        if op == "setup":
            emit("result " + json.dumps(child_setup(request["runs"]), default=str))
        elif op == "job":
            child_job(request["config"], request["date"], request.get("kill_at", ""),
                      float(request.get("step_delay") or 0))
        elif op == "recover":
            emit("result " + json.dumps(child_recover(request["config"], request["date"]), default=str))
        else:
            raise ValueError(f"unknown request {op!r}")
    except BaseException:  # reported to the drill through stderr and the exit status
        import traceback

        traceback.print_exc()
        code = 1
    finally:
        sys.stderr.flush()
        os._exit(code)


def child_setup(runs: int) -> dict:
    """Migrate the scratch database, store the demo market, pick the entry day, create the configs."""
    from django.contrib.auth import get_user_model
    from django.core.management import call_command

    from accounts.models import BrokerMode
    from accounts.services import create_broker_account
    from market.krx import SEOUL, first_trading_day_of_week, trading_days
    from market.models import Instrument
    from orders.weekly import place_weekly_buys
    from strategies.library import get_strategy
    from strategies.models import StrategyConfig, UniverseMode

    call_command("migrate", interactive=False, verbosity=0)
    call_command("demo_data", symbols=DEMO_SYMBOLS, years=1, end=DEMO_END.isoformat(), stdout=io.StringIO())

    codes = sorted(Instrument.objects.values_list("code", flat=True))[:DEMO_SYMBOLS]
    token = f"{int(time.time())}-{os.getpid()}"
    users = get_user_model().objects
    params = {**get_strategy("mean_reversion").defaults(), "z_threshold": 1.0}

    def new_config(label: str) -> StrategyConfig:
        user = users.create_user(username=f"crash-drill-{token}-{label}", password=None)
        account = create_broker_account(user, name=f"crash drill {label}", mode=BrokerMode.PAPER, app_key="",
                                        app_secret="", account_number="")
        return StrategyConfig.objects.create(
            owner=user, name=f"crash drill {label}", strategy_key="mean_reversion", params=params,
            universe_mode=UniverseMode.CODES, universe_codes=" ".join(codes), max_positions=5,
            cash_per_week=10_000_000, is_active=False, broker_account=account,
        )

    probe = new_config("probe")
    best, planned = None, 0
    mondays = sorted({first_trading_day_of_week(day) for day in trading_days(DEMO_END - dt.timedelta(days=180),
                                                                              DEMO_END)}, reverse=True)
    for day in mondays:
        now = dt.datetime.combine(day, dt.time(9, 5), tzinfo=SEOUL)
        result = place_weekly_buys(probe, day, now, dry_run=True)
        count = len(result.planned) if result else 0
        if count > planned:
            best, planned = day, count
        if planned >= MIN_PLANNED:
            break
    if best is None:
        raise DrillError("no entry day with planned buys in the demo market")
    configs = [new_config(str(index)).pk for index in range(1, runs + 1)]
    return {"date": best.isoformat(), "planned": planned, "configs": configs,
            "calibration": new_config("calibration").pk}


def child_job(config_id: int, day: str, kill_at: str = "", step_delay: float = 0.0) -> None:
    """Run the entry job with the kill hook installed (see the module docstring)."""
    from django.core.management import call_command

    from orders import common

    seen: Counter[str] = Counter()

    def hook(name: str, subject: object) -> None:
        seen[name] += 1
        emit(f"at {name} #{seen[name]}")
        if kill_at == f"{name}:{seen[name]}":
            emit("kill-me")
            time.sleep(CHILD_TIMEOUT)  # the drill kills us here
        if step_delay:
            time.sleep(step_delay)

    common.checkpoint = hook
    emit("ready")
    call_command("trade_week", "entry", config=config_id, date=day, stdout=io.StringIO())
    emit("done")


def child_recover(config_id: int, day: str) -> dict:
    """Recovery on a clock past STALE_AFTER, then the counts against the paper broker's orders."""
    from market.krx import SEOUL
    from orders.common import STALE_AFTER
    from orders.reconciliation import reconcile_open_orders
    from orders.weekly import place_weekly_buys, resume_interrupted_runs
    from strategies.models import StrategyConfig

    config = StrategyConfig.objects.select_related("broker_account").get(pk=config_id)
    trading_date = dt.date.fromisoformat(day)
    slot = dt.datetime.combine(trading_date, dt.time(9, 5), tzinfo=SEOUL)
    now = slot + STALE_AFTER + dt.timedelta(minutes=1)
    resume_interrupted_runs(now)
    reconcile_open_orders(now + dt.timedelta(minutes=1))
    place_weekly_buys(config, trading_date, now + dt.timedelta(minutes=2))  # a redelivered / late trigger
    reconcile_open_orders(now + dt.timedelta(minutes=3))
    return count_against_broker(config, trading_date)


def count_against_broker(config, trading_date: dt.date) -> dict:
    """Duplicates, lost orders and the rest, from the paper broker's own orders table."""
    from market.models import PaperOrder, PaperPosition
    from orders.models import OPEN_STATUSES, Order, WeeklyRun
    from orders.positions import positions_for

    account = config.broker_account
    broker_orders = list(PaperOrder.objects.filter(account__broker_account=account))
    intents = list(Order.objects.filter(broker_account=account))
    by_client: dict[str, list] = {}
    for row in broker_orders:
        by_client.setdefault(row.client_order_id, []).append(row)
    duplicates = sum(len(rows) - 1 for rows in by_client.values() if len(rows) > 1)
    ids = {order.client_order_id for order in intents}
    lost = sum(len(rows) for client_id, rows in by_client.items() if client_id not in ids)  # no Order row
    unsent = 0
    for order in intents:
        rows = by_client.get(order.client_order_id, [])
        if rows and order.broker_order_no not in {row.order_no for row in rows}:
            lost += 1  # at the broker, not recorded on our row
        if not rows:
            unsent += 1
    run = WeeklyRun.objects.filter(config=config, trading_date=trading_date, job="entry").first()
    ours = {code: position.quantity for code, position in positions_for(config).items()}
    theirs = dict(PaperPosition.objects.filter(account__broker_account=account, quantity__gt=0)
                  .values_list("code", "quantity"))
    mismatches = sum(1 for code in set(ours) | set(theirs) if ours.get(code) != theirs.get(code))
    return {
        "broker_orders": len(broker_orders), "intents": len(intents), "duplicates": duplicates, "lost": lost,
        "open_intents": sum(1 for order in intents if order.status in OPEN_STATUSES), "unsent": unsent,
        "run_status": run.status if run else "", "position_mismatches": mismatches,
    }


def as_json(summary: DrillSummary) -> str:
    return json.dumps({**asdict(summary), "duplicates": summary.duplicates, "lost": summary.lost}, default=str)
