"""manage.py benchmark_stream: ticks per second and latency from the KIS WebSocket to connected clients.

The path measured is the deployed one: the fake KIS WebSocket server (market/tests/fake_kis_ws.py, in a
thread of this process) streams trade frames to a ``KisSource`` (the real ``RealtimeSession``) inside the real
``Streamer`` (this process's event loop), which batches and publishes them on the bus. The clients run in a
process of their own and receive what a browser would:

* ``--via sse`` (default): the site's SSE endpoint (``/stream/dashboard/``, market.streaming.sse) under
  uvicorn in its own process, read by HTTP clients; each client is a logged-in user's dashboard watching
  every symbol (a throw-away user, KIS account and session are created in the database and deleted after);
* ``--via bus``: subscribers on the bus itself, as the SSE view subscribes (and renews its watches).

Latency is measured per trade, from the moment its frame arrived at the streamer's session (``received``
of its batch: the batch's first frame, so a trade's latency is never understated) to the moment the client
parsed the event. ``ticks_per_s`` is the trades each client received per second on average over the
measured window (every client gets every symbol); ``deliveries_per_s`` sums them over the clients.

The bus is the configured kind (``--bus`` overrides): ``local`` is hosted by this command on free ports
(never the settings' ports, so a running streamer is not disturbed), ``redis`` uses REDIS_URL.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import json
import multiprocessing
import os
import re
import socket
import subprocess
import sys
import time
from collections import Counter
from typing import Any

from django.core.management.base import BaseCommand, CommandError

SIZES = {
    "small": {"symbols": 4, "clients": 2, "duration": 2.0, "rate": 400.0},
    "full": {"symbols": 40, "clients": 20, "duration": 10.0, "rate": 6000.0},
}
ACCOUNT = 1  # the fake KIS account's id on the bus in --via bus (no database row)
RECEIVED = re.compile(rb'"received":([0-9.eE+-]+)')
SENT = re.compile(rb'"sent":([0-9.eE+-]+)')
WARMUP_TIMEOUT = 90.0  # seconds for every client to see its first trade (the site builds the KRX calendar)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _codes(count: int) -> list[str]:
    return [f"{900000 + n:06d}" for n in range(1, count + 1)]


def _percentile(histogram: Counter, fraction: float) -> float:
    """The value (ms) below which ``fraction`` of the weighted samples lie; buckets of 0.1 ms."""
    total = sum(histogram.values())
    if not total:
        return float("nan")
    rank, seen = fraction * total, 0
    for bucket in sorted(histogram):
        seen += histogram[bucket]
        if seen >= rank:
            return bucket / 10
    return max(histogram) / 10


# ---------------------------------------------------------------------------------------------- clients
# The clients run in a spawned process: this module's top level imports nothing that needs Django set up.
class _Window:
    """The measured window opens when every client has seen its first trade and lasts ``duration``."""

    def __init__(self, clients: int, duration: float) -> None:
        self.waiting = set(range(clients))
        self.duration = duration
        self.start: float | None = None
        self.end: float | None = None
        self.cpu = 0.0  # CPU seconds of the client process over the window
        self.done = asyncio.Event()

    def seen(self, client: int, now: float) -> None:
        if client in self.waiting:
            self.waiting.discard(client)
            if not self.waiting:
                self.start = now + 0.5  # the others' first trades are still in flight: let them settle
                self.end = self.start + self.duration
                loop = asyncio.get_running_loop()
                loop.call_later(0.5, self._cpu_start)
                loop.call_later(self.end - now, self._cpu_end)
                loop.call_later(self.end - now + 0.3, self.done.set)

    def _cpu_start(self) -> None:
        self.cpu = time.process_time()

    def _cpu_end(self) -> None:
        self.cpu = time.process_time() - self.cpu


class _Stats:
    def __init__(self) -> None:
        self.ticks = 0
        self.messages = 0
        self.dropped = 0
        self.histogram: Counter = Counter()
        self.transport: Counter = Counter()  # from the streamer's publish ("sent") to the client

    def count(self, window: _Window, message: dict, now: float) -> None:
        if window.start is None or not window.start <= now < window.end:
            return
        ticks = message["count"] if "count" in message else len(message.get("ticks") or ())
        self.ticks += ticks
        self.messages += 1
        self.histogram[max(0, int((now - float(message["received"])) * 10_000))] += ticks
        self.transport[max(0, int((now - float(message["sent"])) * 10_000))] += ticks


async def _bus_client(bus, index: int, config: dict, window: _Window, stats: _Stats) -> None:
    from market.streaming import events

    codes = config["codes"]
    channels = [events.tick_channel("kis", code) for code in codes]
    watch = events.watch_message(client=f"bench-{index}", user=0, account=config["account"], source="kis",
                                 codes=codes)

    async def renew() -> None:
        while True:
            await asyncio.to_thread(bus.publish, events.CONTROL_CHANNEL, watch)
            await asyncio.sleep(2.0 if window.start is None else events.WATCH_TTL_SECONDS / 3)

    async with bus.subscribe(channels) as subscription:
        renewing = asyncio.create_task(renew())
        try:
            async for _channel, message in subscription:
                now = time.time()
                window.seen(index, now)
                stats.count(window, message, now)
        finally:
            renewing.cancel()
            stats.dropped = subscription.dropped


async def _sse_client(index: int, config: dict, window: _Window, stats: _Stats) -> None:
    host, port = "127.0.0.1", config["port"]
    reader, writer = await asyncio.open_connection(host, port, limit=1 << 22)
    writer.write((f"GET {config['path']} HTTP/1.1\r\nHost: {host}:{port}\r\nAccept: text/event-stream\r\n"
                  f"Cookie: sessionid={config['session']}\r\n\r\n").encode())
    head = await reader.readuntil(b"\r\n\r\n")
    status = head.split(b"\r\n", 1)[0]
    if b" 200 " not in status:
        body = await asyncio.wait_for(reader.read(2000), 5)
        raise RuntimeError(f"SSE client {index}: {status.decode()} {body[:300]!r}")
    chunked = b"transfer-encoding: chunked" in head.lower()
    buffer = b""
    try:
        while True:
            if chunked:
                size = int((await reader.readline()).split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    return
                data = (await reader.readexactly(size + 2))[:-2]
            else:
                data = await reader.read(1 << 16)
                if not data:
                    return
            buffer += data
            *blocks, buffer = buffer.split(b"\n\n")
            now = time.time()
            for block in blocks:
                if not block.startswith(b"event: ticks"):
                    continue
                # What the measurement needs, without decoding the whole event: its batch's arrival time
                # and how many trades it carries (each tick object starts with its time, {"t":). The client
                # then costs the machine little of what the server needs (a browser parses in its own CPU).
                received = RECEIVED.search(block)
                if received is None:
                    continue
                message = {"received": float(received.group(1)), "sent": float(SENT.search(block).group(1)),
                           "count": block.count(b'{"t":')}
                window.seen(index, now)
                stats.count(window, message, now)
    finally:
        writer.close()


async def _run_clients(config: dict) -> dict:
    window = _Window(config["clients"], config["duration"])
    stats = [_Stats() for _ in range(config["clients"])]
    bus = None
    if config["via"] == "bus":
        from market.streaming.bus import LocalBus, RedisBus

        bus = LocalBus(config["ports"]) if config["bus"] == "local" else RedisBus(config["redis_url"])
        tasks = [asyncio.create_task(_bus_client(bus, n, config, window, stats[n])) for n in range(config["clients"])]
    else:
        tasks = [asyncio.create_task(_sse_client(n, config, window, stats[n])) for n in range(config["clients"])]
    error = None
    try:
        finished = asyncio.ensure_future(window.done.wait())
        done, _ = await asyncio.wait([finished, *tasks], timeout=WARMUP_TIMEOUT + config["duration"],
                                     return_when=asyncio.FIRST_COMPLETED)
        if finished not in done:
            failed = [t for t in tasks if t.done() and t.exception() is not None]
            error = repr(failed[0].exception()) if failed else (
                f"{len(window.waiting)} of {config['clients']} clients saw no trade within {WARMUP_TIMEOUT:.0f} s")
        finished.cancel()
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if bus is not None:
            bus.close()
    histogram: Counter = Counter()
    transport: Counter = Counter()
    for item in stats:
        histogram.update(item.histogram)
        transport.update(item.transport)
    return {"error": error, "start": window.start, "end": window.end, "cpu": window.cpu,
            "ticks": [item.ticks for item in stats], "messages": [item.messages for item in stats],
            "dropped": sum(item.dropped for item in stats), "histogram": dict(histogram),
            "transport": dict(transport)}


def _client_process(config: dict, connection) -> None:
    try:
        connection.send(asyncio.run(_run_clients(config)))
    except BaseException as error:  # reported to the command, which fails with it
        connection.send({"error": repr(error)})


# ---------------------------------------------------------------------------------------------- command
class Command(BaseCommand):
    help = ("Measure the real-time path: trades per second from a fake KIS WebSocket server through the streamer "
            "and the bus to SSE clients (or bus subscribers), with the latency from frame to client (p50/p99).")

    def add_arguments(self, parser):
        parser.add_argument("--size", choices=sorted(SIZES), default="full",
                            help="preset: full = 40 symbols, 20 clients, 10 s, 6,000 trades/s; small = a quick check")
        parser.add_argument("--symbols", type=int, help="symbols streamed (at most 40: one KIS session)")
        parser.add_argument("--clients", type=int, help="clients, each watching every symbol")
        parser.add_argument("--duration", type=float, help="seconds measured")
        parser.add_argument("--rate", type=float, help="trades per second the fake server sends, in total")
        parser.add_argument("--records-per-frame", type=int, default=4,
                            help="trades per WebSocket frame (KIS packs several at busy times)")
        parser.add_argument("--via", choices=("sse", "bus"), default="sse",
                            help="clients read the SSE endpoint under uvicorn (default) or subscribe to the bus")
        parser.add_argument("--bus", choices=("local", "redis"), default=None,
                            help="the bus (default: the configured REALTIME_BUS; inprocess is measured as local)")
        parser.add_argument("--json", action="store_true", help="print one JSON object")

    def handle(self, *args, **options):
        from django.conf import settings

        preset = SIZES[options["size"]]
        symbols = options["symbols"] or preset["symbols"]
        clients = options["clients"] or preset["clients"]
        duration = options["duration"] or preset["duration"]
        rate = options["rate"] or preset["rate"]
        if not 1 <= symbols <= 40:
            raise CommandError("--symbols must be between 1 and 40 (one KIS session registers at most 40)")
        if clients < 1 or duration <= 0 or rate <= 0 or options["records_per_frame"] < 1:
            raise CommandError("--clients, --duration, --rate and --records-per-frame must be positive")
        bus_kind = options["bus"] or (settings.REALTIME_BUS if settings.REALTIME_BUS in ("local", "redis") else "local")
        if bus_kind == "redis" and not settings.REDIS_URL:
            raise CommandError("--bus redis needs REDIS_URL")
        config = {"via": options["via"], "bus": bus_kind, "codes": _codes(symbols), "clients": clients,
                  "duration": duration, "rate": rate, "per_frame": options["records_per_frame"],
                  "redis_url": settings.REDIS_URL, "ports": (_free_port(), _free_port()), "account": ACCOUNT}
        result = asyncio.run(self._measure(config))
        if options["json"]:
            self.stdout.write(json.dumps(result, ensure_ascii=False))
            return
        self.stdout.write(
            f"{result['ticks_per_s']:,.0f} ticks/s to each of {result['clients']} clients "
            f"({result['deliveries_per_s']:,.0f} deliveries/s), {result['symbols']} symbols, via {result['via']} "
            f"on the {result['bus']} bus; latency frame → client p50 {result['p50_ms']:.1f} ms, "
            f"p99 {result['p99_ms']:.1f} ms (max {result['max_ms']:.1f} ms); offered {result['offered_per_s']:,.0f}/s, "
            f"streamer in {result['streamer_in_per_s']:,.0f}/s; lost to slow clients {result['lost']}")

    async def _measure(self, config: dict) -> dict:
        from market.streaming.bus import LocalBus, RedisBus, serve_local_bus
        from market.streaming.kis_source import KisSource
        from market.streaming.streamer import Streamer

        # The fake server lives with the tests, and the tests import commands: a static import would be an
        # import cycle inside market (lint-imports), so the benchmark loads it by name when it runs.
        fake_server_class = importlib.import_module("market.tests.fake_kis_ws").FakeKisWebSocketServer

        proxy = serve_local_bus(config["ports"]) if config["bus"] == "local" else None
        bus = LocalBus(config["ports"]) if config["bus"] == "local" else RedisBus(config["redis_url"])
        server = fake_server_class(seed=1).start()
        site = None
        account_id = config["account"]
        try:
            if config["via"] == "sse":
                site = await asyncio.to_thread(_Site.start, config)
                account_id = site.account_id

            async def kis_factory(account: int, callbacks: dict[str, Any]):
                return KisSource(account, url=server.url, environment="real", approval_key=lambda: "benchmark",
                                 backoff_min=0.2, **callbacks)

            async def no_accounts() -> list[int]:
                return []

            streamer = Streamer(bus, sim=False, store_candles=False, kis_factory=kis_factory,
                                kis_accounts=no_accounts, kis_hours="always")  # the fake host never closes
            stop = asyncio.Event()
            running = asyncio.create_task(streamer.run(stop))
            await asyncio.wait_for(streamer.ready.wait(), 30)
            context = multiprocessing.get_context("spawn")
            receiving, sending = context.Pipe(duplex=False)
            client_config = {**config, "account": account_id}
            if site is not None:
                client_config.update(port=site.port, session=site.session,
                                     path=f"/stream/dashboard/?watch={account_id}:{','.join(config['codes'])}")
            process = context.Process(target=_client_process, args=(client_config, sending), daemon=True)
            process.start()
            registered = set()
            while not registered >= {("H0STCNT0", code) for code in config["codes"]}:
                if not process.is_alive() or running.done():
                    break
                await asyncio.sleep(0.1)
                registered = await asyncio.to_thread(server.active_registrations)
            started_at, ticks_in_before = time.time(), streamer.ticks_in
            samples: list[tuple[float, float, float]] = []
            sampling = asyncio.create_task(_sample_cpu(samples, site.process.pid if site else None))
            await asyncio.to_thread(server.stream, config["codes"], config["rate"], config["per_frame"])
            result = await asyncio.to_thread(_receive, receiving, process, WARMUP_TIMEOUT + config["duration"] + 30)
            elapsed = time.time() - started_at
            sampling.cancel()
            ticks_in = streamer.ticks_in - ticks_in_before
            generated = server.records_generated
            await asyncio.to_thread(server.stop_stream)
            stop.set()
            await asyncio.wait_for(running, 30)
        finally:
            await asyncio.to_thread(server.stop)
            if site is not None:
                await asyncio.to_thread(site.stop)
            bus.close()
            if proxy is not None:
                proxy.stop()
        if result.get("error"):
            raise CommandError(f"benchmark failed: {result['error']}")
        histogram = Counter({int(k): v for k, v in result["histogram"].items()})
        cpu = _cpu_in_window(samples, result["start"], result["end"])
        transport = Counter({int(k): v for k, v in result["transport"].items()})
        window = result["end"] - result["start"]
        per_client = sum(result["ticks"]) / len(result["ticks"]) / window
        return {
            "ticks_per_s": round(per_client, 1),
            "deliveries_per_s": round(sum(result["ticks"]) / window, 1),
            "p50_ms": round(_percentile(histogram, 0.50), 1),
            "p99_ms": round(_percentile(histogram, 0.99), 1),
            "max_ms": round(max(histogram) / 10, 1) if histogram else float("nan"),
            "p50_publish_to_client_ms": round(_percentile(transport, 0.50), 1),
            "p99_publish_to_client_ms": round(_percentile(transport, 0.99), 1),
            "clients": config["clients"],
            "symbols": len(config["codes"]),
            # CPU seconds per second of the window: this process (fake server + streamer + local bus proxy),
            # the web process (uvicorn, --via sse) and the clients' process.
            "cpu_streamer": round(cpu[0], 2),
            "cpu_web": round(cpu[1], 2) if config["via"] == "sse" else None,
            "cpu_clients": round(result["cpu"] / window, 2),
            "duration_s": round(window, 2),
            "offered_per_s": config["rate"],
            "streamer_in_per_s": round(ticks_in / elapsed, 1) if elapsed else 0.0,
            "generated": generated,
            "lost": result["dropped"],
            "via": config["via"],
            "bus": config["bus"],
            "records_per_frame": config["per_frame"],
        }


def _process_cpu(pid: int | None) -> float:
    """CPU seconds (user + system) used so far by process ``pid`` (Linux /proc), 0 when unknown."""
    if pid is None:
        return 0.0
    try:
        with open(f"/proc/{pid}/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return 0.0


async def _sample_cpu(samples: list, web_pid: int | None) -> None:
    while True:
        samples.append((time.time(), time.process_time(), _process_cpu(web_pid)))
        await asyncio.sleep(0.25)


def _cpu_in_window(samples: list, start: float | None, end: float | None) -> tuple[float, float]:
    """CPU seconds per second of this process and of the web process between the samples nearest the window."""
    if not samples or start is None or end is None:
        return 0.0, 0.0
    first = min(samples, key=lambda s: abs(s[0] - start))
    last = min(samples, key=lambda s: abs(s[0] - end))
    span = last[0] - first[0]
    if span <= 0:
        return 0.0, 0.0
    return (last[1] - first[1]) / span, (last[2] - first[2]) / span


def _receive(connection, process, timeout: float) -> dict:
    if not connection.poll(timeout):
        process.kill()
        return {"error": "the client process did not answer"}
    result = connection.recv()
    process.join(10)
    return result


class _Site:
    """The site under uvicorn in a process of its own, a throw-away user logged in, and a KIS account of
    theirs whose stream the clients watch (the streamer's KIS source for it is the fake server's)."""

    def __init__(self) -> None:
        self.process: subprocess.Popen | None = None
        self.user = None
        self.session = ""

    @classmethod
    def start(cls, config: dict) -> _Site:
        from django.conf import settings
        from django.contrib.auth import get_user_model
        from django.test import Client

        from accounts.models import BrokerAccount, BrokerMode

        site = cls()
        stamp = f"{os.getpid()}-{int(time.time())}"
        site.user = get_user_model().objects.create_user(username=f"benchmark-stream-{stamp}",
                                                         email=f"benchmark-stream-{stamp}@example.invalid")
        account = BrokerAccount.objects.create(owner=site.user, name="benchmark", mode=BrokerMode.SIMULATED,
                                               app_key="benchmark", app_secret="benchmark",
                                               account_number="50000000", hts_id="")
        site.account_id = account.pk
        client = Client()
        client.force_login(site.user)
        site.session = client.cookies[settings.SESSION_COOKIE_NAME].value
        site.port = _free_port()
        env = {**os.environ, "DJANGO_SETTINGS_MODULE": os.environ.get("DJANGO_SETTINGS_MODULE", "trading_site.settings"),
               "REALTIME_BUS": config["bus"], "REALTIME_LOCAL_PUB_PORT": str(config["ports"][0]),
               "REALTIME_LOCAL_SUB_PORT": str(config["ports"][1]), "ALLOWED_HOSTS": "127.0.0.1",
               "SECURE_SSL_REDIRECT": "False", "REALTIME_MAX_STREAMS_PER_USER": str(config["clients"] + 5)}
        site.process = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "--factory", "django.core.asgi:get_asgi_application",
             "--host", "127.0.0.1", "--port", str(site.port), "--log-level", "warning", "--no-access-log",
             "--lifespan", "off", "--no-proxy-headers", "--timeout-graceful-shutdown", "3"],
            cwd=str(settings.BASE_DIR), env=env)
        deadline = time.monotonic() + 60
        while True:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", site.port), timeout=1):
                return site
            if site.process.poll() is not None or time.monotonic() > deadline:
                site.stop()
                raise CommandError("uvicorn did not start for the SSE benchmark")
            time.sleep(0.2)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
        if self.user is not None:
            from django.contrib.sessions.models import Session

            Session.objects.filter(session_key=self.session).delete()
            self.user.delete()  # its broker account goes with it
            self.user = None
