"""manage.py stream_market: the real-time streaming process (one per deployment).

KIS WebSocket sessions (one per KIS account) and the paper simulator in, ticks/호가/status out on the bus
(market.streaming.streamer). With REALTIME_BUS=local this process also hosts the local bus's proxy, so the
web processes and workers of this machine reach each other through it; with Redis it only publishes."""

from __future__ import annotations

import asyncio
import logging
import signal

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from accounts.models import BrokerAccount, BrokerMode
from market.brokers.kis import KIS_MODE, kis_client_for
from market.streaming.bus import get_bus, serve_local_bus
from market.streaming.kis_source import KisSource
from market.streaming.streamer import Streamer

logger = logging.getLogger("market.streaming")

MODE_NAMES = {BrokerMode.SIMULATED: "모의투자", BrokerMode.REAL: "실전"}


def _bus_description() -> str:
    kind = settings.REALTIME_BUS
    if kind == "local":
        pub, sub = settings.REALTIME_LOCAL_BUS_PORTS
        return f"local (ZeroMQ 127.0.0.1:{pub}→{sub}, hosted by this process)"
    if kind == "redis":
        url = settings.REDIS_URL
        return f"redis ({url.rsplit('@', 1)[-1]})"  # never the password
    return f"{kind} (this process only: nobody else sees the messages)"


def _accounts_description() -> str:
    accounts = BrokerAccount.objects.filter(mode__in=list(MODE_NAMES)).order_by("pk")
    parts = []
    for account in accounts:
        if not (account.app_key and account.app_secret):
            continue
        notices = "체결통보" if account.hts_id else "HTS ID 없음: 체결통보 없이 시세만"
        parts.append(f"#{account.pk} {MODE_NAMES[account.mode]} ({notices})")
    return ", ".join(parts) if parts else "none (KIS 계정 없음)"


def kis_source_for_account(account_id: int, callbacks: dict) -> KisSource | None:
    """The real-time source of a KIS ``BrokerAccount`` (모의투자 → the paper WebSocket host, 실전 → the real
    one), its approval key from the site's KIS client (cached and shared like the access token); None for an
    account that cannot stream (gone, the paper broker, no app key). Runs in a worker thread: it reads the
    account's encrypted keys."""
    from django.db import close_old_connections

    close_old_connections()
    try:
        account = BrokerAccount.objects.filter(pk=account_id).first()
        if account is None or account.mode not in KIS_MODE or not (account.app_key and account.app_secret):
            return None
        environment = KIS_MODE[account.mode]
        client = kis_client_for(account)
        return KisSource(account.pk, url=settings.KIS_WS_URLS[environment], environment=environment,
                         approval_key=client.approval_key, renew_approval_key=client.approval_key,
                         hts_id=account.hts_id, stale_after=settings.REALTIME_STALE_SECONDS, **callbacks)
    finally:
        close_old_connections()


async def kis_factory(account_id: int, callbacks: dict) -> KisSource | None:
    return await asyncio.to_thread(kis_source_for_account, account_id, callbacks)


class Command(BaseCommand):
    help = ("Run the real-time streamer: KIS WebSocket sessions and the paper simulator in, ticks, 호가 and "
            "status out on the bus (and, with REALTIME_BUS=local, host the local bus).")

    def add_arguments(self, parser):
        parser.add_argument("--once-for", type=float, default=None, metavar="SECONDS",
                            help="stop by itself after this many seconds (tests, smoke checks)")
        parser.add_argument("--no-kis", action="store_true", help="no KIS sessions (the simulator only)")
        parser.add_argument("--no-sim", action="store_true", help="no simulated stream")
        parser.add_argument("--sim-seed", type=int, default=None, help="a fixed seed for the simulator")

    def handle(self, *args, once_for=None, no_kis=False, no_sim=False, sim_seed=None, **options):
        proxy = None
        if settings.REALTIME_BUS == "local":
            try:
                proxy = serve_local_bus(settings.REALTIME_LOCAL_BUS_PORTS)
            except OSError as error:
                raise CommandError(f"실시간 버스를 열 수 없습니다 / cannot host the local bus: {error}") from error
        accounts = "disabled (--no-kis)" if no_kis else _accounts_description()
        sim = "off" if no_sim else (
            f"{'always on' if settings.REALTIME_SIM_SESSION == 'always' else 'KRX session hours'}, "
            f"{settings.REALTIME_SIM_TICKS_PER_SECOND:g} ticks/s per symbol")
        self.stdout.write(f"실시간 스트리머 시작 / streamer started — bus: {_bus_description()}; "
                          f"KIS accounts: {accounts}; simulator: {sim}")
        self.stdout.flush()
        try:
            streamer = asyncio.run(self._run(once_for, not no_kis, not no_sim, sim_seed))
        finally:
            if proxy is not None:
                proxy.stop()
        self.stdout.write(
            f"실시간 스트리머 종료 / streamer stopped — ticks {streamer.ticks_out}, books {streamer.books_out}, "
            f"fill notices {streamer.notices_in}, candles stored {streamer.candles_stored}")

    async def _run(self, once_for: float | None, kis: bool, sim: bool, sim_seed: int | None) -> Streamer:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            try:
                loop.add_signal_handler(sig, stop.set)
            except (NotImplementedError, RuntimeError, ValueError):  # not the main thread
                pass
        if once_for is not None:
            loop.call_later(once_for, stop.set)
        streamer = Streamer(get_bus(), kis=kis, sim=sim, sim_seed=sim_seed, kis_factory=kis_factory)
        await streamer.run(stop)
        return streamer
