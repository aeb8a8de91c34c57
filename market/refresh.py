"""After each KRX session: bring the last days' bars of the watched universe up to date.

With the KIS broker configured (BROKER_BACKEND=kis and a KIS account in .env or as the superuser's
default), bars come from the KIS daily chart through the gateway (stored as ``kis`` bars) for the codes
with real bars; otherwise (the embedded paper setup) the synthetic demo market is extended to the new
session (``demo`` bars), so the paper broker keeps filling.

Neither path mixes demo and real prices: the KIS refresh leaves demo codes alone (a week of real bars
would replace years of demo history; `import_prices --kis` imports a code's real history and replaces
its demo bars), and the demo market skips codes that have real bars.

Several KIS app keys (``kis_data_accounts``: the .env account, then the KIS accounts of superusers, then
of staff, one per distinct app key) share the work: the codes are split into one chunk per key, each
refreshed through its own account (``refresh_chunk``; the ``market.refresh_bars_chunk`` task, one per
chunk, on the trading queue), so each key's own rate limit paces only its share. With one key the
refresh runs as one import, as before. A chunk that fails (its account gone, KIS refusing its key)
loses only its own codes: it is logged and reported in its result, the other chunks' bars are stored."""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable
from dataclasses import dataclass, field

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


ENV_ACCOUNT = "env"  # a chunk's account reference for the .env account (never saved, no pk)


def kis_data_accounts() -> list[BrokerAccount]:
    """The KIS accounts market data may be read through, one per distinct app key, in this order: the
    .env account; the superusers' KIS accounts (default accounts first, then by pk); the other staff
    members' (the same). Accounts without an app key, secret or account number are left out."""
    candidates = [env_broker_account()]
    kis_accounts = BrokerAccount.objects.exclude(mode=BrokerMode.PAPER).order_by("-is_default", "pk")
    candidates += list(kis_accounts.filter(owner__is_superuser=True))
    candidates += list(kis_accounts.filter(owner__is_staff=True, owner__is_superuser=False))
    accounts, keys = [], set()
    for account in candidates:
        if account is None or not (account.app_key and account.app_secret and account.account_number):
            continue
        if account.app_key not in keys:
            keys.add(account.app_key)
            accounts.append(account)
    return accounts


def kis_data_account() -> BrokerAccount | None:
    """The KIS account market data is read through when one is enough: the first of `kis_data_accounts`
    (the .env account, else a superuser's KIS account)."""
    accounts = kis_data_accounts()
    return accounts[0] if accounts else None


def account_reference(account: BrokerAccount) -> str:
    return ENV_ACCOUNT if account.pk is None else str(account.pk)


def data_account_for(reference: str) -> BrokerAccount | None:
    """The data account a chunk names, if it is still one (`kis_data_accounts`)."""
    for account in kis_data_accounts():
        if account_reference(account) == reference:
            return account
    return None


def split_codes(codes: list[str], parts: int) -> list[list[str]]:
    """`codes` in `parts` consecutive chunks whose sizes differ by at most one (empty ones left out)."""
    size, extra = divmod(len(codes), max(parts, 1))
    chunks, start = [], 0
    for index in range(max(parts, 1)):
        end = start + size + (1 if index < extra else 0)
        if end > start:
            chunks.append(codes[start:end])
        start = end
    return chunks


@dataclass(frozen=True)
class RefreshChunk:
    """One app key's share of the refresh: its account (`account_reference`), codes and dates."""

    account: str
    codes: list[str]
    start: dt.date
    end: dt.date


@dataclass
class ChunkResult:
    account: str
    codes: int
    new_bars: int = 0
    failed: list[str] = field(default_factory=list)  # the codes whose bars were not stored
    error: str = ""  # the whole chunk failed (its account, the client, the database)

    def as_dict(self) -> dict:
        return {"account": self.account, "codes": self.codes, "new_bars": self.new_bars, "failed": self.failed,
                "error": self.error}


def refresh_chunk(chunk: RefreshChunk) -> ChunkResult:
    """One chunk's codes through its own account. Never raises: a failure is logged and reported."""
    result = ChunkResult(chunk.account, len(chunk.codes))
    try:
        account = data_account_for(chunk.account)
        if account is None:
            raise LookupError(f"KIS data account {chunk.account} is no longer a data account (deleted, or no keys)")
        report = import_from_kis(account, chunk.codes, chunk.start, chunk.end)
    except Exception as error:
        logger.exception("bar refresh: the chunk of account %s (%d symbols) failed", chunk.account, len(chunk.codes))
        result.error, result.failed = f"{type(error).__name__}: {error}", list(chunk.codes)
        return result
    result.new_bars = report.inserted
    result.failed = [source.source.removeprefix("KIS ") for source in report.sources if source.errors]
    if result.failed:
        logger.warning("bar refresh: %d of %d symbols of account %s failed: %s", len(result.failed),
                       len(chunk.codes), chunk.account, ", ".join(result.failed[:20]))
    return result


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


def refresh_recent_bars(now: dt.datetime | None = None, days: int = 7, *,
                        send_chunk: Callable[[RefreshChunk], object] | None = None) -> RefreshSummary:
    """The after-close refresh (module docstring). With several KIS app keys, `send_chunk` receives one
    `RefreshChunk` per key (the task sends each as `market.refresh_bars_chunk`); without it the chunks
    run here one after the other and the summary adds up their results."""
    now = (now or timezone.now()).astimezone(SEOUL)
    today = now.date()
    if not is_trading_day(today):
        return RefreshSummary("skipped", 0, f"{today.isoformat()} is not a KRX trading day")
    # Today's bar only once it is final: before that the chart's row for today is the session so far.
    today = today if seconds_until_bars_final(now) == 0 else previous_trading_day(today)
    accounts = kis_data_accounts() if settings.BROKER_BACKEND == "kis" else []
    if accounts:
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
        if len(accounts) > 1:
            return _refresh_in_chunks(accounts, codes, today - dt.timedelta(days=days), today, detail, send_chunk)
        report = import_from_kis(accounts[0], codes, today - dt.timedelta(days=days), today)
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


def _refresh_in_chunks(accounts: list[BrokerAccount], codes: list[str], start: dt.date, end: dt.date, detail: str,
                       send_chunk: Callable[[RefreshChunk], object] | None) -> RefreshSummary:
    chunks = [RefreshChunk(account_reference(account), part, start, end)
              for account, part in zip(accounts, split_codes(codes, len(accounts)), strict=False)]
    if send_chunk is not None:
        for chunk in chunks:
            send_chunk(chunk)
        return RefreshSummary("kis", 0, f"{len(codes)} symbols in {len(chunks)} chunks, one per KIS app key "
                                        f"(sent as tasks){detail}")
    results = [refresh_chunk(chunk) for chunk in chunks]
    failed = [code for result in results for code in result.failed]
    broken = "".join(f"; chunk of account {result.account} failed: {result.error}" for result in results if result.error)
    return RefreshSummary("kis", sum(result.new_bars for result in results),
                          f"{len(codes)} symbols, {len(failed)} failed, {len(chunks)} KIS app keys{detail}{broken}")
