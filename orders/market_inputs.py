"""What the weekly planners read from the market at their slot, so that the live jobs follow the
backtest's weekly rules (strategies/backtest/engine.py) with the prices a trader has at that time.

- `EntryOpens`: the entry day's opening price at the 09:05 slot. The paper broker fills a morning
  market order at the stored bar's open; KIS reports the day's open in the quote (`stck_oprc`). A
  code known to have no bar that day (suspended; a KIS quote halted or without an open after the
  session opened) is not a candidate, as in the backtest; an open not known yet (the paper
  broker's bar of today is stored only after the close, a failed quote) falls back to the
  previous close. On the real host the answer (open, or no bar) is shared for the minute through
  Django's cache (Redis in production): every account whose universe holds a code asks KIS once a
  minute for its open, not once each (`ENTRY_OPEN_CACHE_SECONDS`). Only this planning read is
  shared; order prices are KIS's own, and the risk checks' base price is never taken from it.
- `orderable_cash`: the broker's orderable cash (KIS `ord_psbl_cash`, the paper account's cash);
  the planner splits min(cash per week, orderable cash) equally.
- `refresh_day_bars`: before the 15:15 check, the day's bars of the held codes through the
  account's gateway (KIS daily chart; a paper account on a KIS data backend reads them through the
  site's KIS data account). Finished sessions missing from the store are written; the day's own
  bar is still in progress at 15:15, so it is used by the check (price and signal row) and not
  stored: a stored partial bar would be read as the day's final close by the paper broker and the
  backtests until the after-close refresh. Nothing is fetched when the day's bars are already
  stored, nor for a paper account replaying a past date (its stored bars are the data), nor for a
  paper account on the demo market (the demo market grows only after the close). A failure is
  logged and returned; the check then uses the broker's current price.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass, field

from django.conf import settings
from django.core.cache import cache
from django.db.models import Max
from django.utils import timezone

from accounts.models import BrokerAccount, BrokerMode
from market.gateway import BrokerError, user_message_for
from market.kis.errors import KisError
from market.krx import SEOUL, previous_trading_day, session_open_close
from market.models import BarSource, DailyBar, Instrument

logger = logging.getLogger(__name__)

REFRESH_DAYS = 10  # calendar days fetched before the check day (one chart request per code)
BROKER_ERRORS = (BrokerError, KisError, OSError, TimeoutError, ValueError)


@dataclass(frozen=True)
class Bar:
    open: int
    high: int
    low: int
    close: int


def _today() -> dt.date:
    return timezone.now().astimezone(SEOUL).date()


# ------------------------------------------------------------------------------------------- entry
OPEN, NO_BAR, UNKNOWN = "open", "no_bar", "unknown"
ENTRY_OPEN_CACHE_SECONDS = 90  # a little over the minute of the key: kept for the whole minute


def entry_open_cache_key(code: str, moment: dt.datetime) -> str:
    """The shared cache's key of a code's entry-day open read from the real host in `moment`'s minute."""
    return f"orders:entry-open:real:{code}:{moment.astimezone(SEOUL):%Y%m%d%H%M}"


class EntryOpens:
    """The entry day's opening prices as known at `now`, looked up code by code (a KIS quote each,
    only for the candidates the planner reaches)."""

    def __init__(self, codes: list[str], trading_date: dt.date, now: dt.datetime, broker) -> None:
        self.trading_date, self.now, self.broker = trading_date, now, broker
        self.stored = dict(
            DailyBar.objects.filter(instrument__code__in=codes, date=trading_date)
            .values_list("instrument__code", "open")
        )
        self.paper = getattr(broker, "mode", "") == BrokerMode.PAPER

    def lookup(self, code: str) -> tuple[str, int | None]:
        """(OPEN, price) | (NO_BAR, None): no bar that day | (UNKNOWN, None): not known yet."""
        if code in self.stored:
            return OPEN, int(self.stored[code])
        if self.paper:  # the paper broker's data are the stored bars
            return (NO_BAR, None) if self.stored else (UNKNOWN, None)
        if self.now < session_open_close(self.trading_date)[0]:
            return UNKNOWN, None
        shared = (getattr(self.broker, "mode", "") == BrokerMode.REAL
                  and self.now.astimezone(SEOUL).date() == self.trading_date)
        key = entry_open_cache_key(code, self.now)
        if shared:
            try:
                known = cache.get(key)
            except Exception as error:  # the cache is a shortcut: without it, KIS is asked
                logger.warning("entry open cache unreadable: %s", error)
                known = None
            if known is not None:
                return known[0], known[1]
        try:
            quote = self.broker.get_quote(code)
        except BROKER_ERRORS as error:
            logger.warning("entry open of %s unknown (quote failed): %s", code, user_message_for(error))
            return UNKNOWN, None  # not shared: the next account asks KIS itself
        found = (NO_BAR, None) if quote.temporarily_halted or quote.open <= 0 else (OPEN, int(quote.open))
        if shared:
            try:
                cache.set(key, found, ENTRY_OPEN_CACHE_SECONDS)
            except Exception as error:
                logger.warning("entry open cache not written: %s", error)
        return found


def orderable_cash(broker, code: str, price: int) -> int | None:
    """The broker's orderable cash (None when it cannot be read)."""
    try:
        return int(broker.get_buyable(code, price).orderable_cash)
    except BROKER_ERRORS as error:
        logger.warning("orderable cash unknown: %s", user_message_for(error))
        return None


# ------------------------------------------------------------------------------------------- check
@dataclass
class DayRefresh:
    source: str  # "stored", "kis", "kis-data", "skipped"
    bars: dict[str, Bar] = field(default_factory=dict)  # the check day's bar per code (not stored)
    stored: int = 0  # finished sessions written
    errors: dict[str, str] = field(default_factory=dict)  # code -> message
    note: str = ""

    def as_dict(self) -> dict:
        return {"source": self.source, "fetched": sorted(self.bars), "stored": self.stored,
                "errors": self.errors, "note": self.note}


def _data_broker(account: BrokerAccount, broker):
    """The gateway the day's bars come from, or (None, why not)."""
    if account.mode != BrokerMode.PAPER:
        return broker, "kis"
    if settings.BROKER_BACKEND != "kis":
        return None, "demo market: the day's bar is stored after the close"
    from market.brokers import broker_for
    from market.refresh import kis_data_account  # the after-close refresh's data account

    data_account = kis_data_account()
    if data_account is None:
        return None, "no KIS data account"
    return broker_for(data_account), "kis-data"


def refresh_day_bars(account: BrokerAccount, codes: list[str], trading_date: dt.date, now: dt.datetime,
                     broker) -> DayRefresh:
    """See the module docstring. Never raises for a broker failure."""
    codes = sorted(set(codes))
    if not codes:
        return DayRefresh("skipped", note="no codes")
    stored_today = set(
        DailyBar.objects.filter(instrument__code__in=codes, date=trading_date)
        .values_list("instrument__code", flat=True)
    )
    missing = [code for code in codes if code not in stored_today]
    # Demo instruments' series are synthetic: a real bar from KIS is never mixed into them.
    demo = set(Instrument.objects.filter(code__in=missing, source=BarSource.DEMO).values_list("code", flat=True))
    missing = [code for code in missing if code not in demo]
    if not missing:
        return DayRefresh("stored")
    if account.mode == BrokerMode.PAPER and trading_date < _today():
        return DayRefresh("skipped", note=f"paper replay of {trading_date}: stored bars are not changed")
    source, how = _data_broker(account, broker)
    if source is None:
        return DayRefresh("skipped", note=how)
    from market.bar_store import upsert_bars
    from market.importers import BarRow, validate_bar

    result = DayRefresh(how)
    last_stored = dict(
        DailyBar.objects.filter(instrument__code__in=missing, date__lt=trading_date)
        .order_by().values_list("instrument__code").annotate(last=Max("date"))
    )
    previous = previous_trading_day(trading_date)
    session_over = now >= session_open_close(trading_date)[1]
    finished = []
    for code in missing:
        start = trading_date - dt.timedelta(days=REFRESH_DAYS)
        if last_stored.get(code) is not None and last_stored[code] >= previous:
            start = trading_date  # only the day itself is missing
        try:
            bars = source.get_daily_bars(code, start, trading_date)
        except BROKER_ERRORS as error:
            result.errors[code] = user_message_for(error)
            continue
        for bar in bars:
            if validate_bar(bar.open, bar.high, bar.low, bar.close, bar.volume, bar.traded_value):
                continue  # a no-trade or malformed row: left to the after-close import
            if bar.date == trading_date:
                result.bars[code] = Bar(bar.open, bar.high, bar.low, bar.close)
            if bar.date < trading_date or (bar.date == trading_date and session_over):
                finished.append(BarRow(code, bar.date, bar.open, bar.high, bar.low, bar.close, bar.volume,
                                       bar.traded_value))
    if finished:
        try:
            result.stored = upsert_bars(finished, source=BarSource.KIS).inserted
        except Exception as error:  # a storage failure must not stop the check
            logger.warning("storing refreshed bars failed: %s", error)
            result.errors["store"] = str(error)
    if result.errors:
        logger.warning("bar refresh before the check of %s: %d of %d codes failed: %s", trading_date,
                       len(result.errors), len(missing), result.errors)
    return result
