"""Latency of `GET /prices/{symbol}` under concurrent clients, against a real gunicorn.

    DATABASE_URL=mysql://trading:trading@127.0.0.1:3306/trading DEBUG=True \\
        .venv/bin/python manage.py benchmark_prices_api [--requests 500] [--concurrency 8] [--workers 2]

1. Makes sure the benchmark symbol (`BENCH1`) has about ten years of synthetic daily bars (market.demo)
   in the configured database; an existing symbol is reused as it is.
2. Starts `gunicorn trading_site.wsgi:application --workers N` on a free port on 127.0.0.1 with the
   current environment (so the same DATABASE_URL, DEBUG, REDIS_URL…), plus THROTTLE_USER raised so
   the benchmark user is not throttled, and SECURE_SSL_REDIRECT=False (plain HTTP on the loopback)
   unless they are set. With DEBUG off the site also needs SECRET_KEY, FIELD_ENCRYPTION_KEYS and
   ALLOWED_HOSTS in the environment.
3. Logs in through `POST /api/token/` as the benchmark user (created or given a fresh random password
   each run; `--username` picks another login whose password you give with `--password`).
4. Sends a few warm-up requests, then `--requests` requests from `--concurrency` threads (one
   `requests.Session` each) and prints the median, p95 and p99 latency and the requests per second.
5. Stops gunicorn.
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import requests
from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError
from django.db import connection, transaction
from django.utils import timezone

from market.demo import DEFAULT_SEED, DEMO_EPOCH, generate_bars, generate_universe
from market.demo_market import last_complete_session, years_before
from market.krx import trading_days
from market.models import DailyBar, Instrument

BENCH_CODE = "BENCH1"
BENCH_USERNAME = "benchmark"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def percentile(sorted_values: list[float], q: float) -> float:
    """Nearest-rank percentile of an ascending list (q in 0..100)."""
    if not sorted_values:
        return float("nan")
    rank = max(1, min(len(sorted_values), round(q / 100 * len(sorted_values) + 0.5)))
    return sorted_values[rank - 1]


class Command(BaseCommand):
    help = "Median/p95/p99 latency of GET /prices/{symbol} (about ten years of bars) against gunicorn."

    def add_arguments(self, parser):
        parser.add_argument("--requests", dest="total", type=int, default=500, help="measured requests (default 500)")
        parser.add_argument("--concurrency", type=int, default=8, help="concurrent clients (default 8)")
        parser.add_argument("--workers", type=int, default=2, help="gunicorn workers (default 2)")
        parser.add_argument("--warmup", type=int, default=40, help="unmeasured requests first (default 40)")
        parser.add_argument("--years", type=int, default=10, help="years of bars for a new benchmark symbol")
        parser.add_argument("--symbol", default=BENCH_CODE, help=f"symbol to read (default {BENCH_CODE})")
        parser.add_argument("--username", default=BENCH_USERNAME)
        parser.add_argument("--password", default="", help="the password of --username (else a fresh one is set)")
        parser.add_argument("--timeout", type=float, default=30.0, help="seconds to wait for gunicorn to start")

    # --------------------------------------------------------------------------------------------- data
    def ensure_symbol(self, code: str, years: int) -> int:
        existing = DailyBar.objects.filter(instrument__code=code).count()
        if existing:
            return existing
        if code != BENCH_CODE:
            raise CommandError(f"{code} has no stored bars; use the default --symbol {BENCH_CODE} to generate one")
        now = timezone.now()
        last = last_complete_session(now.date(), now)
        first = years_before(last, years)
        if first < DEMO_EPOCH:
            raise CommandError(f"the demo history starts on {DEMO_EPOCH.isoformat()}; ask for fewer --years")
        days = trading_days(DEMO_EPOCH, last)
        universe = generate_universe(1, DEFAULT_SEED)
        bars = next(iter(generate_bars(universe, days, DEFAULT_SEED).values()))
        template = universe[0]
        with transaction.atomic():
            instrument, _ = Instrument.objects.get_or_create(
                code=code,
                defaults={
                    "name": "벤치마크 종목", "name_en": "Benchmark (synthetic)", "market": template["market"],
                    "sector": template["sector"], "is_listed": False,
                },
            )
            rows = [
                DailyBar(
                    instrument=instrument, date=day, open=o, high=h, low=lo, close=c, volume=v, traded_value=value,
                )
                for day, o, h, lo, c, v, value in bars.tolist()
                if day >= first
            ]
            DailyBar.objects.bulk_create(rows, batch_size=2_000, ignore_conflicts=True)
        self.stdout.write(f"generated {len(rows)} synthetic bars for {code} ({first}..{last})")
        return DailyBar.objects.filter(instrument=instrument).count()

    def ensure_user(self, username: str, password: str) -> str:
        User = get_user_model()
        if password:
            return password
        password = secrets.token_urlsafe(18)
        user, _ = User.objects.get_or_create(username=username, defaults={"email": f"{username}@example.invalid"})
        user.set_password(password)
        user.is_active = True
        user.save()
        return password

    # --------------------------------------------------------------------------------------------- server
    def start_gunicorn(self, port: int, workers: int, log_path: Path) -> subprocess.Popen:
        gunicorn = Path(sys.executable).with_name("gunicorn")
        if not gunicorn.exists():
            found = shutil.which("gunicorn")
            if not found:
                raise CommandError("gunicorn not found next to this Python or on PATH")
            gunicorn = Path(found)
        env = os.environ.copy()
        env.setdefault("THROTTLE_USER", "1000000/min")
        env.setdefault("SECURE_SSL_REDIRECT", "False")
        env.setdefault("DJANGO_SETTINGS_MODULE", "trading_site.settings")
        command = [
            str(gunicorn), "trading_site.wsgi:application", "--bind", f"127.0.0.1:{port}",
            "--workers", str(workers), "--log-level", "warning",
        ]
        self.stdout.write("starting: " + " ".join(command))
        log = log_path.open("wb")
        return subprocess.Popen(
            command, cwd=settings.BASE_DIR, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )

    @staticmethod
    def stop(process: subprocess.Popen) -> None:
        if process.poll() is not None:
            return
        process.send_signal(signal.SIGTERM)  # gunicorn's arbiter stops its workers
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)

    def wait_ready(self, process: subprocess.Popen, base: str, timeout: float, log_path: Path) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise CommandError(f"gunicorn exited ({process.returncode}):\n{self.tail(log_path)}")
            try:
                requests.get(f"{base}/healthz", timeout=2, allow_redirects=False)
                return
            except requests.RequestException:
                time.sleep(0.2)
        raise CommandError(f"gunicorn did not answer within {timeout:.0f} s:\n{self.tail(log_path)}")

    @staticmethod
    def tail(path: Path, lines: int = 30) -> str:
        try:
            return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    # --------------------------------------------------------------------------------------------- load
    @staticmethod
    def fire(url: str, token: str, total: int, concurrency: int) -> tuple[list[float], list[str], float, int]:
        """`total` GETs from `concurrency` threads; (latencies in s, errors, wall time, bytes of one body)."""
        latencies: list[float] = []
        errors: list[str] = []
        body_size = [0]
        lock = threading.Lock()
        counter = iter(range(total))
        start_gate = threading.Barrier(concurrency)

        def client():
            session = requests.Session()
            session.headers["Authorization"] = f"Bearer {token}"
            start_gate.wait()
            while True:
                with lock:
                    if next(counter, None) is None:
                        return
                started = time.perf_counter()
                try:
                    response = session.get(url, timeout=30)
                    elapsed = time.perf_counter() - started
                    ok = response.status_code == 200 and response.content.startswith(b'{"prices":[')
                    message = "" if ok else f"HTTP {response.status_code}: {response.text[:120]}"
                    size = len(response.content)
                except requests.RequestException as exc:
                    elapsed, ok, message, size = time.perf_counter() - started, False, type(exc).__name__, 0
                with lock:
                    if ok:
                        latencies.append(elapsed)
                        body_size[0] = size
                    else:
                        errors.append(message)

        threads = [threading.Thread(target=client) for _ in range(concurrency)]
        wall_start = time.perf_counter()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        return latencies, errors, time.perf_counter() - wall_start, body_size[0]

    # --------------------------------------------------------------------------------------------- main
    def handle(self, *args, total: int, concurrency: int, workers: int, warmup: int, years: int, symbol: str,
               username: str, password: str, timeout: float, **options):
        if total < 1 or concurrency < 1 or workers < 1 or years < 1:
            raise CommandError("--requests, --concurrency, --workers and --years must be at least 1")
        rows = self.ensure_symbol(symbol, years)
        password = self.ensure_user(username, password)
        vendor = connection.vendor
        connection.close()  # gunicorn's workers open their own connections

        port = free_port()
        base = f"http://127.0.0.1:{port}"
        log_path = Path(tempfile.mkstemp(prefix="benchmark-gunicorn-", suffix=".log")[1])
        process = self.start_gunicorn(port, workers, log_path)
        try:
            self.wait_ready(process, base, timeout, log_path)
            response = requests.post(
                f"{base}/api/token/", json={"username": username, "password": password}, timeout=10,
                allow_redirects=False,
            )
            if response.status_code != 200:
                raise CommandError(
                    f"login failed: HTTP {response.status_code} {response.text[:200]} "
                    "(with DEBUG off, plain HTTP needs SECURE_SSL_REDIRECT=False)"
                )
            token = response.json()["access"]
            url = f"{base}/prices/{symbol}"
            if warmup:
                _, warm_errors, _, _ = self.fire(url, token, warmup, min(concurrency, warmup))
                if warm_errors:
                    raise CommandError(f"warm-up failed: {warm_errors[0]}")
            latencies, errors, wall, size = self.fire(url, token, total, concurrency)
        finally:
            self.stop(process)
        if not latencies:
            raise CommandError(f"every request failed: {errors[:3]}")

        ms = sorted(latency * 1000 for latency in latencies)
        self.stdout.write(
            f"GET /prices/{symbol}: {rows} bars, {size:,} bytes per response; database {vendor}; "
            f"gunicorn {workers} workers; DEBUG={os.environ.get('DEBUG', 'False')}"
        )
        self.stdout.write(
            f"{len(latencies)} requests ({len(errors)} failed) from {concurrency} concurrent clients "
            f"in {wall:.2f} s, after {warmup} warm-up requests"
        )
        self.stdout.write(
            f"latency ms: median {statistics.median(ms):.1f}  p95 {percentile(ms, 95):.1f}  "
            f"p99 {percentile(ms, 99):.1f}  mean {statistics.fmean(ms):.1f}  min {ms[0]:.1f}  max {ms[-1]:.1f}"
        )
        self.stdout.write(f"throughput: {len(latencies) / wall:.1f} requests/s")
        load = ", ".join(f"{value:.2f}" for value in os.getloadavg())
        self.stdout.write(f"load average {load} on {os.cpu_count()} CPUs (clients, gunicorn and the database share them)")
        if errors:
            self.stdout.write(self.style.WARNING(f"errors, first: {errors[0]}"))
        log_path.unlink(missing_ok=True)
