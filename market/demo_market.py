"""Storing the synthetic demo market (market.demo) in the database: instruments and daily bars.

Used by `manage.py demo_data`, the run command's setup and the after-close refresh. Idempotent:
re-running adds only what is missing, and every run simulates from the same epoch, so every run agrees
on every date's bar. Every bar and instrument it writes is marked ``BarSource.DEMO``; a code that has
real bars (imported from a CSV file or KIS) is skipped, so a real bar is never overwritten by, nor mixed
with, a synthetic one."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime

import numpy as np
from django.db import transaction

from market.demo import DEFAULT_SEED, DEMO_EPOCH, generate_bars, generate_universe
from market.krx import SEOUL, is_trading_day, previous_trading_day, session_open_close, trading_days
from market.models import BarSource, DailyBar, Instrument

BATCH_SIZE = 5_000


@dataclass(frozen=True)
class DemoMarketSummary:
    new_instruments: int
    new_bars: int
    total_bars: int
    first: date
    last: date
    skipped_real: tuple[str, ...] = ()  # codes of the demo universe that have real bars: not written

    @property
    def skipped_note(self) -> str:
        if not self.skipped_real:
            return ""
        shown = ", ".join(self.skipped_real[:20]) + (" …" if len(self.skipped_real) > 20 else "")
        return (f"실제 일봉이 있는 종목 {len(self.skipped_real)}개는 데모 일봉을 만들지 않았습니다 "
                f"(real prices are never mixed with demo bars): {shown}")


def last_complete_session(end: date, now: datetime) -> date:
    """The last trading day <= ``end`` whose bar is final at ``now`` (aware).

    Today counts only once its regular session has closed (15:30 KST); a later ``end`` is cut back
    to today, since the demo never shows bars from the future.
    """
    today = now.astimezone(SEOUL).date()
    end = min(end, today)
    if is_trading_day(end) and (end < today or now >= session_open_close(end)[1]):
        return end
    return previous_trading_day(end)


def years_before(day: date, years: int) -> date:
    try:
        return day.replace(year=day.year - years)
    except ValueError:  # 29 February
        return day.replace(year=day.year - years, day=28)


@dataclass(frozen=True)
class DemoWindow:
    universe: list[dict]
    bars: dict  # code -> market.demo bar array from the epoch
    first: date  # first trading day of the requested window
    last: date


def demo_window(*, symbols: int, years: int, end: date | None, now: datetime, seed: int = DEFAULT_SEED) -> DemoWindow:
    """The demo market's bars for `years` up to `end` (today at the latest; today only after the
    close). Raises ValueError with a message for a range the demo cannot produce."""
    today = now.astimezone(SEOUL).date()
    end = min(end or today, today)
    last = last_complete_session(end, now)
    first = years_before(end, years)
    if first < DEMO_EPOCH:
        raise ValueError(f"the demo history starts on {DEMO_EPOCH.isoformat()}; ask for fewer years")
    # Always simulate from the epoch so that every run agrees on every date's bar.
    days = trading_days(DEMO_EPOCH, last)
    window = [d for d in days if d >= first]
    if not window:
        raise ValueError(f"no KRX trading day between {first.isoformat()} and {last.isoformat()}")
    universe = generate_universe(symbols, seed)
    return DemoWindow(universe, generate_bars(universe, days, seed), window[0], window[-1])


def store_demo_market(
    *, symbols: int, years: int, end: date | None, now: datetime, seed: int = DEFAULT_SEED,
    on_total: Callable[[int], object] | None = None, on_batch: Callable[[int], object] | None = None,
) -> DemoMarketSummary:
    """Store `symbols` demo instruments with `years` of bars up to `end` (default: today). Raises
    ValueError with a message for a range the demo cannot produce."""
    window = demo_window(symbols=symbols, years=years, end=end, now=now, seed=seed)
    universe, bars, first, last = window.universe, window.bars, window.first, window.last

    codes = [sym["code"] for sym in universe]
    with transaction.atomic():
        existing = dict(Instrument.objects.filter(code__in=codes).values_list("code", "source"))
        Instrument.objects.bulk_create(
            [
                Instrument(
                    code=sym["code"],
                    name=sym["name"],
                    name_en=sym["name_en"],
                    market=sym["market"],
                    sector=sym["sector"],
                    source=BarSource.DEMO,
                )
                for sym in universe
                if sym["code"] not in existing
            ],
            ignore_conflicts=True,
        )
        all_ids = dict(Instrument.objects.filter(code__in=codes).values_list("code", "id"))
        # A code with any real bar keeps its real series: no demo bar is written next to or over it.
        with_real_bars = set(
            DailyBar.objects.filter(instrument_id__in=all_ids.values()).exclude(source=BarSource.DEMO)
            .order_by().values_list("instrument_id", flat=True).distinct()
        )
        skipped = tuple(sorted(code for code, pk in all_ids.items() if pk in with_real_bars))
        ids = {code: pk for code, pk in all_ids.items() if pk not in with_real_bars}
        # An instrument created by a real writer (a master file, an import) that has no bars yet
        # becomes a demo instrument with the demo bars it gets now.
        Instrument.objects.filter(pk__in=list(ids.values())).exclude(source=BarSource.DEMO).update(
            source=BarSource.DEMO)
    new_instruments = len(all_ids) - len(existing)

    in_range = DailyBar.objects.filter(instrument_id__in=ids.values(), date__gte=first, date__lte=last)
    stored = set(in_range.values_list("instrument_id", "date"))
    before = len(stored)
    rows: list[DailyBar] = []
    start = np.datetime64(first, "D")
    for code, arr in bars.items():
        if code not in ids:
            continue  # real bars
        instrument_id = ids[code]
        for day, open_, high, low, close, volume, value in arr[arr["date"] >= start].tolist():
            if (instrument_id, day) not in stored:
                rows.append(
                    DailyBar(
                        instrument_id=instrument_id,
                        date=day,
                        open=open_,
                        high=high,
                        low=low,
                        close=close,
                        volume=volume,
                        traded_value=value,
                        source=BarSource.DEMO,
                    )
                )

    if on_total:
        on_total(len(rows))
    for offset in range(0, len(rows), BATCH_SIZE):
        batch = rows[offset : offset + BATCH_SIZE]
        with transaction.atomic():
            DailyBar.objects.bulk_create(batch, batch_size=BATCH_SIZE, ignore_conflicts=True)
        if on_batch:
            on_batch(len(batch))

    total = in_range.count()
    return DemoMarketSummary(new_instruments, total - before, total, first, last, skipped)
