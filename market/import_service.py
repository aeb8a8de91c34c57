"""Market data imports: CSV files, KIS daily charts and KIS stock master files, the demo CSV export
and the bulk-load benchmark. The management commands only parse arguments and print.

Rules shared by every import:

* every malformed row is reported with its file and line; a file (or a KIS symbol) with any
  malformed row is written not at all, the others go in — one transaction per file/symbol, so
  nothing is ever half-written;
* writes go through ``bar_store.upsert_bars``: re-running an import is safe and fast, and inserts
  nothing the second time (a run interrupted half-way is resumed by running it again);
* every bar records its source (``BarSource``): ``csv`` for a CSV file, ``kis`` for KIS, ``demo`` for a
  file exported by ``export_demo_csv`` (its rows say ``source=demo``);
* a code's series is never a mix of demo and real bars: real bars for a code that has demo bars
  replace them entirely, in the same transaction as the write (the result says so per code), and
  the code's weekly analysis rows are deleted with them and recomputed from the real bars after the
  import; demo bars for a code that has real bars are refused (the file is not written);
* progress is reported through callbacks (``on_total``, ``on_source``/``on_batch``) for tqdm bars.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path

import numpy as np
from django.contrib.auth import get_user_model
from django.db import transaction
from django.db.models import Count, Max
from django.utils import timezone

from accounts.models import BrokerAccount, BrokerMode
from market.bar_store import (
    DEFAULT_BATCH_SIZE,
    BarValues,
    MixedSourceError,
    UpsertResult,
    ensure_instruments,
    upsert_bars,
)
from market.importers import (
    BarRow,
    RowError,
    normalize_code,
    read_bars_csv,
    read_master,
    validate_bar,
    write_bars_csv,
)
from market.krx.calendar import next_trading_day
from market.models import BarSource, DailyBar, Instrument, MarketName, WeeklyAnalysis

__all__ = [
    "BENCHMARK_SECTOR",
    "BenchmarkRefused",
    "BenchmarkResult",
    "DemoExport",
    "ImportReport",
    "MasterImportReport",
    "MasterImportRun",
    "SourceResult",
    "benchmark_instruments",
    "export_demo_csv",
    "import_csv",
    "import_from_kis",
    "import_instrument_masters",
    "import_instruments_from_master",
    "non_benchmark_data",
    "replace_demo_bars",
    "run_bulk_load_benchmark",
]


# ---------------------------------------------------------------------------------------------
# Reports
# ---------------------------------------------------------------------------------------------


@dataclass
class SourceResult:
    """One CSV file or one KIS symbol."""

    source: str
    rows: int = 0  # good rows read
    inserted: int = 0
    updated: int = 0  # already stored: updated or unchanged
    errors: list[RowError] = field(default_factory=list)
    written: bool = False
    note: str = ""
    bar_source: str = ""  # BarSource of the bars written: csv, kis or demo
    demo_replaced: dict[str, int] = field(default_factory=dict)  # code -> demo bars removed for real ones

    @property
    def ok(self) -> bool:
        return not self.errors

    @property
    def replacement_notes(self) -> list[str]:
        """One line per code whose demo bars these real bars replaced."""
        return [f"{code}: 데모 일봉 {count:,}개를 지우고 실제 일봉으로 바꿨습니다"
                for code, count in self.demo_replaced.items()]


@dataclass
class ImportReport:
    sources: list[SourceResult] = field(default_factory=list)
    new_instruments: list[str] = field(default_factory=list)
    seconds: float = 0.0
    # Weekly analysis of the codes switched from demo to real bars: week -> codes whose rows were
    # deleted with the demo bars (filled while writing), then code -> weeks recomputed.
    stale_analysis: dict[date, set[str]] = field(default_factory=dict)
    analysis_recomputed: dict[str, int] = field(default_factory=dict)
    analysis_seconds: float = 0.0  # not in ``seconds``: the first analysis of a process loads pandas

    @property
    def demo_replaced(self) -> dict[str, int]:
        """code -> demo bars removed because real bars replaced them."""
        return {code: count for s in self.sources for code, count in s.demo_replaced.items()}

    @property
    def analysis_notes(self) -> list[str]:
        return [f"{code}: 주간 분석 {weeks}주를 실제 일봉으로 다시 계산했습니다"
                for code, weeks in sorted(self.analysis_recomputed.items())]

    @property
    def inserted(self) -> int:
        return sum(s.inserted for s in self.sources)

    @property
    def updated(self) -> int:
        return sum(s.updated for s in self.sources)

    @property
    def errors(self) -> list[RowError]:
        return [error for s in self.sources for error in s.errors]

    @property
    def rejected(self) -> list[SourceResult]:
        return [s for s in self.sources if s.errors]

    @property
    def ok(self) -> bool:
        return not self.rejected

    def summary(self) -> str:
        written = sum(1 for s in self.sources if s.written)
        plural = "" if len(self.sources) == 1 else "s"
        rows = sum(s.rows for s in self.sources if s.written)
        rate = f", {rows / self.seconds:,.0f} rows/s" if self.seconds > 0 and rows else ""
        text = (
            f"{written} of {len(self.sources)} source{plural} imported: {rows:,} rows, {self.inserted:,} new, "
            f"{self.updated:,} already stored (updated or unchanged); {len(self.new_instruments)} new instruments; "
            f"{self.seconds:.1f} s{rate}"
        )
        replaced = self.demo_replaced
        if replaced:
            text += (f"\n데모(합성) 일봉을 실제 일봉으로 바꾼 종목 {len(replaced):,}개: 데모 일봉 "
                     f"{sum(replaced.values()):,}개 삭제")
        if self.rejected:
            text += (f"\n{len(self.rejected)} NOT imported because of {len(self.errors):,} malformed rows: "
                     + ", ".join(s.source for s in self.rejected))
        return text


@dataclass
class SeriesSwitch:
    """What ``replace_demo_bars`` removed: demo bars per code and the weeks of their weekly analysis."""

    demo_bars: dict[str, int] = field(default_factory=dict)
    analysis_weeks: dict[str, list[date]] = field(default_factory=dict)


def replace_demo_bars(instrument_ids: Sequence[int], source: str) -> SeriesSwitch:
    """Make these instruments' series ready for bars of ``source``; call it inside the write's transaction.

    Real bars (csv, kis): instruments whose source is demo lose all their demo bars and their weekly
    analysis rows (with the outliers), which were computed from the demo bars; every instrument takes
    ``source``. Demo bars: refused (``MixedSourceError``) when any of the instruments has a real bar;
    instruments without bars become demo."""
    switch = SeriesSwitch()
    instruments = Instrument.objects.filter(pk__in=list(instrument_ids))
    if source == BarSource.DEMO:
        real = (DailyBar.objects.filter(instrument_id__in=list(instrument_ids)).exclude(source=BarSource.DEMO)
                .order_by().values_list("instrument__code", flat=True).distinct())
        codes = list(real)
        if codes:
            raise MixedSourceError(codes, source)
        instruments.exclude(source=BarSource.DEMO).update(source=BarSource.DEMO)
        return switch
    demo = dict(instruments.filter(source=BarSource.DEMO).values_list("pk", "code"))
    if demo:
        bars = DailyBar.objects.filter(instrument_id__in=list(demo), source=BarSource.DEMO)
        counts = dict(bars.order_by().values_list("instrument_id").annotate(count=Count("id")))
        switch.demo_bars = {code: counts[pk] for pk, code in sorted(demo.items(), key=lambda item: item[1])
                            if counts.get(pk)}
        analyses = WeeklyAnalysis.objects.filter(instrument_id__in=list(demo))
        for pk, week in analyses.order_by("week_start").values_list("instrument_id", "week_start"):
            switch.analysis_weeks.setdefault(demo[pk], []).append(week)
        bars.delete()  # one DELETE: nothing refers to a bar
        analyses.delete()  # and their outliers
    instruments.exclude(source=source).update(source=source)
    return switch


def _write(result: SourceResult, rows: Sequence[BarRow], report: ImportReport, source: str) -> None:
    """Store the good rows of one source in one transaction (demo bars of its codes replaced, see
    ``replace_demo_bars``). A refusal (demo bars for a real code) is reported and writes nothing."""
    try:
        with transaction.atomic():
            codes = sorted({row.code for row in rows})
            sync = ensure_instruments(codes, source=source, update=False)
            switch = replace_demo_bars([sync.ids[code] for code in codes], source)
            stored = upsert_bars(rows, source=source) if rows else UpsertResult()
    except MixedSourceError as error:
        result.errors.append(RowError(result.source, None, str(error)))
        return
    report.new_instruments.extend(sync.created)
    result.inserted, result.updated, result.written = stored.inserted, stored.updated, True
    result.bar_source, result.demo_replaced = source, switch.demo_bars
    for code, weeks in switch.analysis_weeks.items():
        for week in weeks:
            report.stale_analysis.setdefault(week, set()).add(code)


def _recompute_analysis(report: ImportReport) -> None:
    """The weekly analysis rows removed with demo bars, computed again from the real bars (one
    ``analyze_week`` per week for all its codes); a week without real bars of a code stays empty."""
    if not report.stale_analysis:
        return
    from market.analysis_service import analyze_week

    started = time.perf_counter()
    for week, codes in sorted(report.stale_analysis.items()):
        analyze_week(week, codes=sorted(codes))
        for code in codes:
            report.analysis_recomputed[code] = report.analysis_recomputed.get(code, 0) + 1
    report.analysis_seconds = time.perf_counter() - started


# ---------------------------------------------------------------------------------------------
# CSV
# ---------------------------------------------------------------------------------------------


def csv_files(path: str | os.PathLike[str]) -> list[Path]:
    """The CSV files to import: ``path`` itself, or the ``*.csv`` files of a folder (sorted)."""
    target = Path(path)
    if target.is_dir():
        files = sorted(p for p in target.iterdir() if p.is_file() and p.suffix.lower() == ".csv")
        if not files:
            raise ValueError(f"no .csv files in the folder {target}")
        return files
    if target.is_file():
        return [target]
    raise ValueError(f"no such file or folder: {target}")


def import_csv(
    path: str | os.PathLike[str], *, on_total: Callable[[int], object] | None = None,
    on_source: Callable[[SourceResult], object] | None = None,
) -> ImportReport:
    """Import one CSV file or every ``*.csv`` file of a folder (format: ``importers.read_bars_csv``).

    A file with any malformed row is reported and not written; the good files go in, each in one
    transaction. Missing instruments are created (name = code until a master file names them).
    Raises ValueError when the path has nothing to import."""
    files = csv_files(path)
    report = ImportReport()
    started = time.perf_counter()
    if on_total:
        on_total(len(files))
    for file in files:
        rows, errors = read_bars_csv(file)
        result = SourceResult(file.name, rows=len(rows), errors=errors)
        if not errors:
            if not rows:
                result.note = "no rows"
            # read_bars_csv lets a file hold one kind only: demo (export_demo_csv) or real bars
            demo = any(row.source == BarSource.DEMO for row in rows)
            _write(result, rows, report, BarSource.DEMO if demo else BarSource.CSV)
        report.sources.append(result)
        if on_source:
            on_source(result)
    report.seconds = time.perf_counter() - started
    _recompute_analysis(report)
    return report


# ---------------------------------------------------------------------------------------------
# KIS daily charts
# ---------------------------------------------------------------------------------------------


def _kis_rows(code: str, bars: Iterable, source: str) -> tuple[list[BarRow], list[RowError]]:
    rows: list[BarRow] = []
    errors: list[RowError] = []
    for bar in bars:
        open_, high, low = bar.open, bar.high, bar.low
        if (getattr(bar, "no_trade", False) or bar.volume == 0) and bar.close > 0 and not (open_ and high and low):
            open_ = high = low = bar.close  # no trade that day: KIS sends no open/high/low (§4.8 mod_yn)
        problems = validate_bar(open_, high, low, bar.close, bar.volume, bar.traded_value)
        if problems:
            errors.append(RowError(source, None, f"{bar.date.isoformat()}: {'; '.join(problems)}"))
        else:
            rows.append(BarRow(code, bar.date, open_, high, low, bar.close, bar.volume, bar.traded_value))
    return rows, errors


def import_from_kis(
    account: BrokerAccount, codes: Sequence[str], start: date, end: date, *,
    on_total: Callable[[int], object] | None = None, on_source: Callable[[SourceResult], object] | None = None,
) -> ImportReport:
    """Import daily bars of ``codes`` for [start, end] through the account's KIS gateway.

    The client pages through the chart TR (100 rows a call) and keeps under the rate limit. A
    symbol whose answer fails or holds a malformed bar is reported and not written; the others go
    in. Raises ValueError for a paper account, an invalid code or an empty range."""
    from market.brokers import broker_for
    from market.gateway import user_message_for
    from market.kis.errors import KisError

    if account.mode == BrokerMode.PAPER:
        raise ValueError(f"broker account {account.name!r} is a paper account; importing needs a KIS (real or 모의투자) account")
    if start > end:
        raise ValueError(f"start {start.isoformat()} is after end {end.isoformat()}")
    wanted = list(dict.fromkeys(normalize_code(code) for code in codes))
    if not wanted:
        raise ValueError("no codes to import")
    broker = broker_for(account)
    report = ImportReport()
    started = time.perf_counter()
    if on_total:
        on_total(len(wanted))
    for code in wanted:
        source = f"KIS {code}"
        try:
            bars = broker.get_daily_bars(code, start, end)
        except (KisError, ValueError) as error:
            result = SourceResult(source, errors=[RowError(source, None, user_message_for(error))])
        else:
            rows, errors = _kis_rows(code, bars, source)
            result = SourceResult(source, rows=len(rows), errors=errors)
            if not errors:
                if rows:
                    _write(result, rows, report, BarSource.KIS)
                else:
                    result.note = f"KIS returned no bars between {start.isoformat()} and {end.isoformat()}"
        report.sources.append(result)
        if on_source:
            on_source(result)
    report.seconds = time.perf_counter() - started
    _recompute_analysis(report)
    return report


# ---------------------------------------------------------------------------------------------
# KIS stock master files
# ---------------------------------------------------------------------------------------------

# Warrants and ELWs are not traded by this site; everything else with a 6-character code is stored.
SKIPPED_GROUPS = frozenset({"EW", "SW", "SR"})


# A master file with fewer records than this is taken as partial (a hand-cut file of a few codes) and
# marks nothing delisted: the real KIS files hold about 2,500 KOSPI and 1,800 KOSDAQ lines.
FULL_MASTER_MIN_RECORDS = 500


@dataclass
class MasterImportReport:
    file: str
    market: str = ""
    records: int = 0
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    skipped: int = 0
    relisted: int = 0
    errors: list[RowError] = field(default_factory=list)
    codes: set[str] = field(default_factory=set, repr=False)  # every 6-character code the file lists

    @property
    def ok(self) -> bool:
        return not self.errors

    def summary(self) -> str:
        if self.errors:
            return f"{self.file}: NOT imported, {len(self.errors)} malformed lines"
        relisted = f", {self.relisted:,} re-listed" if self.relisted else ""
        return (f"{self.file} ({self.market}): {self.records:,} records, {self.created:,} new, "
                f"{self.updated:,} updated{relisted}, {self.unchanged:,} unchanged, {self.skipped:,} skipped "
                "(ELW/warrants or codes longer than 6)")


def import_instruments_from_master(path: str | os.PathLike[str], market: str | None = None) -> MasterImportReport:
    """Create or update instruments from ``kospi_code.mst`` / ``kosdaq_code.mst``: name, market, ETF flag,
    listed (an instrument marked delisted that a file lists again is listed again, its ``delisted_on``
    cleared). A file with a malformed line is reported and not written. Marking the instruments a file
    no longer lists is ``import_instrument_masters``'s job (it needs every market's file)."""
    parsed = read_master(path, market)
    report = MasterImportReport(Path(path).name, records=len(parsed.records), errors=parsed.errors)
    if parsed.errors:
        return report
    keep = []
    for record in parsed.records:
        if len(record.code) == 6:
            report.codes.add(record.code)
        report.market = record.market or report.market
        if record.group in SKIPPED_GROUPS or len(record.code) != 6:
            report.skipped += 1
            continue
        keep.append({"code": record.code, "name": record.name[:100] or record.code, "market": record.market,
                     "is_etf": record.is_etf, "is_listed": True})
    if market and not report.market:
        report.market = market.upper()
    codes = [item["code"] for item in keep]
    with transaction.atomic():
        report.relisted = Instrument.objects.filter(code__in=codes, is_listed=False).count()
        sync = ensure_instruments(keep, source=BarSource.KIS, update=True)  # the master file comes from KIS
        # Listed again: ensure_instruments set is_listed; the old delisting date goes too.
        Instrument.objects.filter(code__in=codes, delisted_on__isnull=False).update(delisted_on=None)
    report.created, report.updated, report.unchanged = len(sync.created), len(sync.updated), sync.unchanged
    return report


@dataclass
class MasterImportRun:
    """``import_instrument_masters``' outcome: one report per file, and the delisting pass."""

    reports: list[MasterImportReport]
    delisted: list[str] = field(default_factory=list)  # codes marked delisted, ascending
    delisted_markets: tuple[str, ...] = ()  # the markets whose full files were read
    partial: list[str] = field(default_factory=list)  # files taken as partial (no delisting from them)
    as_of: date | None = None

    @property
    def failed(self) -> int:
        return sum(not report.ok for report in self.reports)

    def summary(self) -> str:
        if not self.delisted_markets:
            why = "no full master file" + (f" ({', '.join(self.partial)} taken as partial: fewer than "
                                            f"{FULL_MASTER_MIN_RECORDS:,} records; --full marks anyway)"
                                            if self.partial else "")
            return f"0 instruments marked delisted: {why}"
        when = f"as of {self.as_of}" if self.as_of else "on the trading day after their last bar"
        return (f"{len(self.delisted):,} instruments marked delisted ({'/'.join(self.delisted_markets)}, "
                f"no longer in the master files; {when}; their bars are kept)")


def import_instrument_masters(
    paths: Sequence[str | os.PathLike[str]], market: str | None = None, *, as_of: date | None = None,
    full: bool | None = None,
) -> MasterImportRun:
    """Import every master file (``import_instruments_from_master``), then mark delisted the instruments
    that a newer full master no longer lists.

    * Full or partial: a file is full when it holds at least ``FULL_MASTER_MIN_RECORDS`` records (the
      real KIS files hold thousands; a file of a few codes is partial); ``full`` True/False overrides
      that for every file. Only full, well-formed files delist, each within its own market (KOSPI,
      KOSDAQ); CSV and KIS bar imports never delist anything.
    * Candidates: listed instruments of those markets, not on the demo market's synthetic bars, whose
      code none of the files read in this call lists (a code that moved from KOSDAQ to KOSPI is in
      the other file: not delisted).
    * ``delisted_on``: ``as_of`` (the master's as-of date: the download day, or what the caller says)
      when known; otherwise the KRX trading day after the instrument's last stored bar; an instrument
      without bars and without ``as_of``: the import day (Asia/Seoul). ``is_listed`` becomes False;
      its bars stay (backtests keep it for the dates it traded).
    * A code a file lists again is listed again (``delisted_on`` cleared) by the import itself.
    """
    reports = [import_instruments_from_master(path, market) for path in paths]
    run = MasterImportRun(reports, as_of=as_of)
    full_markets = set()
    for report in reports:
        if not report.ok or not report.market:
            continue
        is_full = full if full is not None else report.records >= FULL_MASTER_MIN_RECORDS
        if is_full:
            full_markets.add(report.market)
        else:
            run.partial.append(report.file)
    if not full_markets:
        return run
    run.delisted_markets = tuple(sorted(full_markets))
    listed = set().union(*(report.codes for report in reports if report.ok))
    with transaction.atomic():
        gone = list(
            Instrument.objects.filter(is_listed=True, market__in=full_markets).exclude(source=BarSource.DEMO)
            .exclude(code__in=listed).order_by("code")
        )
        if not gone:
            return run
        last_bars = dict(
            DailyBar.objects.filter(instrument__in=gone).order_by().values_list("instrument_id")
            .annotate(last=Max("date"))
        )
        today = timezone.localdate()
        for instrument in gone:
            instrument.is_listed = False
            last = last_bars.get(instrument.pk)
            instrument.delisted_on = as_of or (next_trading_day(last) if last else today)
        Instrument.objects.bulk_update(gone, ["is_listed", "delisted_on"], batch_size=1_000)
    run.delisted = [instrument.code for instrument in gone]
    return run


# ---------------------------------------------------------------------------------------------
# Demo CSV export
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DemoExport:
    folder: Path
    files: int
    rows: int
    first: date
    last: date


def export_demo_csv(
    folder: str | os.PathLike[str], *, symbols: int, years: int, end: date | None, now: datetime, seed: int | None = None,
) -> DemoExport:
    """Write the demo market's bars (the same bars ``demo_data`` stores) as ``<code>.csv`` per symbol.

    Each file is written to a temporary name and renamed, so no half-written file is left behind."""
    from market.demo import DEFAULT_SEED
    from market.demo_market import demo_window

    window = demo_window(symbols=symbols, years=years, end=end, now=now,
                         seed=DEFAULT_SEED if seed is None else seed)
    bars = window.bars
    target = Path(folder)
    target.mkdir(parents=True, exist_ok=True)
    start = np.datetime64(window.first, "D")
    rows = 0
    for code, arr in bars.items():
        selected = arr[arr["date"] >= start].tolist()
        final, partial = target / f"{code}.csv", target / f".{code}.csv.partial"
        try:
            with partial.open("w", encoding="utf-8", newline="") as handle:
                rows += write_bars_csv(handle, selected, source=BarSource.DEMO.value)  # imported as demo bars
            os.replace(partial, final)
        finally:
            partial.unlink(missing_ok=True)
    return DemoExport(target, len(bars), rows, window.first, window.last)


# ---------------------------------------------------------------------------------------------
# Bulk-load benchmark
# ---------------------------------------------------------------------------------------------

# Benchmark instruments: codes 98NNNN, sector "benchmark", names "벤치마크 NNNN". No listed KRX stock
# uses a 98xxxx short code today; the sector and name mark them as well, and the benchmark refuses a
# database holding anything else unless forced.
BENCHMARK_SECTOR = "benchmark"
BENCHMARK_NAME = "벤치마크"
BENCHMARK_MAX_SYMBOLS = 10_000
BENCHMARK_FIRST_DAY = date(2010, 1, 4)
BENCHMARK_SEED = 20261125
SYMBOLS_PER_CHUNK = 100


class BenchmarkRefused(Exception):
    pass


@dataclass(frozen=True)
class BenchmarkResult:
    symbols: int
    days: int
    rows: int
    inserted: int
    updated: int
    load_seconds: float  # time spent in upsert_bars only
    generate_seconds: float
    rerun_rows: int  # one chunk loaded again: must insert nothing
    rerun_inserted: int
    rerun_seconds: float
    cleanup_seconds: float | None  # None when kept
    removed_leftovers: int
    vendor: str
    method: str

    @property
    def rows_per_second(self) -> float:
        return self.rows / self.load_seconds if self.load_seconds else 0.0


def benchmark_instruments():
    return Instrument.objects.filter(code__startswith="98", sector=BENCHMARK_SECTOR, name__startswith=BENCHMARK_NAME)


def non_benchmark_data() -> dict[str, int]:
    """What the database holds besides benchmark instruments: {description: count}, zero counts left out."""
    counts = {
        "instruments": Instrument.objects.exclude(pk__in=benchmark_instruments().values("pk")).count(),
        "users": get_user_model().objects.count(),
    }
    return {name: count for name, count in counts.items() if count}


def _benchmark_universe(symbols: int) -> list[dict]:
    universe = []
    for i in range(symbols):
        rng = np.random.default_rng([BENCHMARK_SEED, i])
        universe.append({
            "code": f"98{i:04d}", "name": f"{BENCHMARK_NAME} {i:04d}", "market": MarketName.KOSPI,
            "sector": BENCHMARK_SECTOR, "base_price": int(rng.choice([1_990, 4_990, 19_950, 49_900, 199_500])),
            "daily_vol": float(rng.uniform(0.015, 0.03)), "beta": float(rng.uniform(0.6, 1.4)),
            "annual_drift": float(rng.uniform(-0.04, 0.1)), "avg_value": float(rng.uniform(3e9, 1e11)),
        })
    return universe


def _delete_benchmark(instrument_ids: list[int]) -> None:
    for offset in range(0, len(instrument_ids), 20):
        chunk = instrument_ids[offset : offset + 20]
        DailyBar.objects.filter(instrument_id__in=chunk).delete()
    Instrument.objects.filter(pk__in=instrument_ids).delete()


def run_bulk_load_benchmark(
    *, symbols: int, years: int, keep: bool = False, force: bool = False, batch_size: int = DEFAULT_BATCH_SIZE,
    method: str | None = None, on_total: Callable[[int], object] | None = None,
    on_batch: Callable[[UpsertResult], object] | None = None,
) -> BenchmarkResult:
    """Load ``symbols`` × ``years`` of synthetic bars (``market.demo``) with ``upsert_bars`` and time it.

    Refuses (BenchmarkRefused) a database holding anything but benchmark data unless ``force``;
    removes leftovers of an earlier ``keep`` run first, and its own instruments and bars afterwards
    unless ``keep``. Bars are generated per chunk of symbols outside the timed part."""
    from django.db import connection

    from market.demo import generate_bars
    from market.krx import trading_days

    if not 1 <= symbols <= BENCHMARK_MAX_SYMBOLS:
        raise ValueError(f"symbols must be between 1 and {BENCHMARK_MAX_SYMBOLS:,}")
    if not 1 <= years <= 15:
        raise ValueError("years must be between 1 and 15")
    others = non_benchmark_data()
    if others and not force:
        held = ", ".join(f"{count:,} {name}" for name, count in others.items())
        raise BenchmarkRefused(
            f"the database '{connection.settings_dict['NAME']}' already holds data that is not benchmark data ({held}); "
            "run the benchmark on an empty database, or pass --force to run it anyway (it only adds and then "
            "removes its own 98xxxx instruments)"
        )
    leftovers = list(benchmark_instruments().values_list("pk", flat=True))
    if leftovers:
        _delete_benchmark(leftovers)

    end = BENCHMARK_FIRST_DAY.replace(year=BENCHMARK_FIRST_DAY.year + years)
    days = trading_days(BENCHMARK_FIRST_DAY, end - timedelta(days=1))
    universe = _benchmark_universe(symbols)
    sync = ensure_instruments(universe, source=BarSource.DEMO, update=False)  # synthetic (market.demo) bars
    ids = sync.ids
    if on_total:
        on_total(symbols * len(days))

    load = generate = 0.0
    stored = UpsertResult()
    first_chunk: list[BarValues] = []
    try:
        for offset in range(0, symbols, SYMBOLS_PER_CHUNK):
            chunk = universe[offset : offset + SYMBOLS_PER_CHUNK]
            started = time.perf_counter()
            bars = generate_bars(chunk, days, BENCHMARK_SEED)
            rows: list[BarValues] = [
                (ids[code], *bar) for code, arr in bars.items() for bar in arr.tolist()
            ]
            generate += time.perf_counter() - started
            started = time.perf_counter()
            stored += upsert_bars(rows, source=BarSource.DEMO, batch_size=batch_size, method=method,
                                  on_batch=on_batch)
            load += time.perf_counter() - started
            if not first_chunk:
                first_chunk = rows
        started = time.perf_counter()
        rerun = upsert_bars(first_chunk, source=BarSource.DEMO, batch_size=batch_size, method=method)
        rerun_seconds = time.perf_counter() - started
    except BaseException:
        if not keep:
            _delete_benchmark(list(ids.values()))
        raise
    cleanup: float | None = None
    if not keep:
        started = time.perf_counter()
        _delete_benchmark(list(ids.values()))
        cleanup = time.perf_counter() - started
    return BenchmarkResult(
        symbols=symbols, days=len(days), rows=stored.total, inserted=stored.inserted, updated=stored.updated,
        load_seconds=load, generate_seconds=generate, rerun_rows=len(first_chunk), rerun_inserted=rerun.inserted,
        rerun_seconds=rerun_seconds, cleanup_seconds=cleanup, removed_leftovers=len(leftovers),
        vendor=connection.vendor, method=method or ("mysql" if connection.vendor == "mysql" else connection.vendor),
    )
