"""After each KRX session: bring the last days' bars of the watched universe up to date.

With the KIS broker configured (BROKER_BACKEND=kis and a KIS account in .env or as the superuser's
default), bars come from the KIS daily chart through the gateway (stored as ``kis`` bars) for the codes
with real bars; otherwise (the embedded paper setup) the synthetic demo market is extended to the new
session (``demo`` bars), so the paper broker keeps filling.

Neither path mixes demo and real prices: the KIS refresh leaves demo codes alone (a week of real bars
would replace years of demo history; `import_prices --kis` imports a code's real history and replaces
its demo bars), and the demo market skips codes that have real bars."""

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
from market.krx import SEOUL, is_trading_day, previous_trading_day, session_open_close
from market.models import BarSource, DailyBar, Instrument

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


def watched_codes(*, real: bool | None = None) -> list[str]:
    """Listed instruments that already have bars: the universe the site trades and analyses.
    ``real=True``: only those with real prices; ``real=False``: only the demo (synthetic) ones."""
    instruments = Instrument.objects.filter(is_listed=True, bars__isnull=False)
    if real is True:
        instruments = instruments.exclude(source=BarSource.DEMO)
    elif real is False:
        instruments = instruments.filter(source=BarSource.DEMO)
    return list(instruments.distinct().order_by("code").values_list("code", flat=True))


# A day's bar is final this long after its session's close (the closing auction is settled).
BARS_FINAL_AFTER = dt.timedelta(minutes=5)


def seconds_until_bars_final(now: dt.datetime | None = None) -> float:
    """How long until today's bar is final: 0 on a closed day or after the close. The schedule's 16:05
    is before the close on late-closing days (CSAT days close at 16:30): the task waits this long."""
    now = (now or timezone.now()).astimezone(SEOUL)
    if not is_trading_day(now.date()):
        return 0.0
    final_at = session_open_close(now.date())[1] + BARS_FINAL_AFTER
    return max((final_at - now).total_seconds(), 0.0)


def refresh_recent_bars(now: dt.datetime | None = None, days: int = 7) -> RefreshSummary:
    now = (now or timezone.now()).astimezone(SEOUL)
    today = now.date()
    if not is_trading_day(today):
        return RefreshSummary("skipped", 0, f"{today.isoformat()} is not a KRX trading day")
    # Today's bar only once it is final: before that the chart's row for today is the session so far.
    today = today if seconds_until_bars_final(now) == 0 else previous_trading_day(today)
    account = kis_data_account() if settings.BROKER_BACKEND == "kis" else None
    if account is not None:
        codes = watched_codes(real=True)
        demo = watched_codes(real=False)
        detail = ""
        if demo:
            logger.warning("bar refresh: %d demo codes left alone (import their real history with "
                           "import_prices --kis): %s", len(demo), ", ".join(demo[:20]))
            detail = (f", {len(demo)} demo codes left alone (데모 종목은 실제 일봉과 섞지 않습니다; "
                      "import_prices --kis CODE --start YYYY-MM-DD replaces their demo bars)")
        if not codes:
            return RefreshSummary("skipped", 0, "no codes with real bars" + detail)
        report = import_from_kis(account, codes, today - dt.timedelta(days=days), today)
        failed = [source.source for source in report.sources if source.errors]
        if failed:
            logger.warning("bar refresh: %d of %d symbols failed: %s", len(failed), len(codes), ", ".join(failed[:20]))
        return RefreshSummary("kis", report.inserted, f"{len(codes)} symbols, {len(failed)} failed{detail}")
    before = DailyBar.objects.count()
    demo_codes = [symbol["code"] for symbol in generate_universe(MAX_SYMBOLS)]
    # The demo market grows by the demo instruments it made (a code with real bars is skipped by it).
    stored = set(Instrument.objects.filter(code__in=demo_codes, source=BarSource.DEMO).values_list("code", flat=True))
    if not stored:
        return RefreshSummary("skipped", 0, "no KIS data account and no demo instruments")
    symbols = max(index for index, code in enumerate(demo_codes) if code in stored) + 1
    summary = store_demo_market(symbols=symbols, years=1, end=today, now=now)
    detail = f"demo market up to {summary.last.isoformat()}"
    if summary.skipped_real:
        detail += f"; {len(summary.skipped_real)} codes with real bars left alone"
    return RefreshSummary("demo", DailyBar.objects.count() - before, detail)
