"""After each KRX session: bring the last days' bars of the watched universe up to date.

With the KIS broker configured (BROKER_BACKEND=kis and a KIS account in .env or as the superuser's
default), bars come from the KIS daily chart through the gateway; otherwise (the embedded paper
setup) the synthetic demo market is extended to the new session, so the paper broker keeps filling."""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass

from django.conf import settings
from django.utils import timezone

from accounts.models import BrokerAccount, BrokerMode
from market.demo import MAX_SYMBOLS, generate_universe
from market.demo_market import store_demo_market
from market.import_service import import_from_kis
from market.kis_env import env_broker_account
from market.krx import SEOUL, is_trading_day
from market.models import DailyBar, Instrument

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class RefreshSummary:
    source: str  # "kis", "demo" or "skipped"
    new_bars: int
    detail: str


def kis_data_account() -> BrokerAccount | None:
    """The KIS account market data is read through: the .env account, else a superuser's KIS account."""
    return env_broker_account() or (
        BrokerAccount.objects.filter(owner__is_superuser=True).exclude(mode=BrokerMode.PAPER)
        .order_by("-is_default", "pk").first()
    )


def watched_codes() -> list[str]:
    """Listed instruments that already have bars: the universe the site trades and analyses."""
    return list(
        Instrument.objects.filter(is_listed=True, bars__isnull=False).distinct().order_by("code")
        .values_list("code", flat=True)
    )


def refresh_recent_bars(now: dt.datetime | None = None, days: int = 7) -> RefreshSummary:
    now = (now or timezone.now()).astimezone(SEOUL)
    today = now.date()
    if not is_trading_day(today):
        return RefreshSummary("skipped", 0, f"{today.isoformat()} is not a KRX trading day")
    account = kis_data_account() if settings.BROKER_BACKEND == "kis" else None
    if account is not None:
        codes = watched_codes()
        report = import_from_kis(account, codes, today - dt.timedelta(days=days), today)
        failed = [source.source for source in report.sources if source.errors]
        if failed:
            logger.warning("bar refresh: %d of %d symbols failed: %s", len(failed), len(codes), ", ".join(failed[:20]))
        return RefreshSummary("kis", report.inserted, f"{len(codes)} symbols, {len(failed)} failed")
    before = DailyBar.objects.count()
    demo_codes = [symbol["code"] for symbol in generate_universe(MAX_SYMBOLS)]
    stored = set(Instrument.objects.filter(code__in=demo_codes).values_list("code", flat=True))
    if not stored:
        return RefreshSummary("skipped", 0, "no KIS data account and no demo instruments")
    symbols = max(index for index, code in enumerate(demo_codes) if code in stored) + 1
    summary = store_demo_market(symbols=symbols, years=1, end=today, now=now)
    return RefreshSummary("demo", DailyBar.objects.count() - before, f"demo market up to {summary.last.isoformat()}")
