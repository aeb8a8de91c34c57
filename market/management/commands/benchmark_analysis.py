"""manage.py benchmark_analysis: the whole-universe weekly analysis on synthetic bars, timed.

Builds 2,500 symbols x 10 years of demo bars in memory (market.demo; no database), then times
``market.analysis.analyze`` on the whole matrix:

1. the weekly table for EVERY ISO week of the 10 years (about 520 weeks x 2,500 symbols);
2. the same plus the outlier tests of every bar of every week (6 tests per bar);
3. the latest week only, with the whole history in memory (what the weekly job computes).

The issue's target (< 5 s) is for (1); (2) is reported against the same target.
"""

from __future__ import annotations

import time
from datetime import date

import numpy as np
import pandas as pd
from django.core.management.base import BaseCommand, CommandError

from market.analysis import AnalysisResult, analyze, iso_week_label
from market.demo import DEFAULT_SEED, MAX_SYMBOLS, generate_bars, generate_universe
from market.demo_market import years_before
from market.krx import SEOUL, trading_days

TARGET_SECONDS = 5.0


def benchmark_universe(n_symbols: int, seed: int = DEFAULT_SEED) -> list[dict]:
    """``n_symbols`` demo companies. The demo stops at MAX_SYMBOLS (1,009), so further ones come
    from universes of the next seeds, renumbered 1NNNNN, 2NNNNN, ... (unique codes)."""
    universe: list[dict] = []
    for copy in range(-(-n_symbols // MAX_SYMBOLS)):
        batch = generate_universe(min(MAX_SYMBOLS, n_symbols - len(universe)), seed + copy)
        if copy:
            batch = [{**sym, "code": f"{copy}{i:05d}"} for i, sym in enumerate(batch)]
        universe.extend(batch)
    return universe


def benchmark_matrices(
    n_symbols: int, years: int, end: date, seed: int = DEFAULT_SEED, missing: float = 0.0
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Close and volume matrices (trading dates x codes) of the synthetic market; ``missing``: the
    share of bars removed at random (suspensions / missing data) to time the path with gaps."""
    days = trading_days(years_before(end, years), end)
    universe = benchmark_universe(n_symbols, seed)
    bars = generate_bars(universe, days, seed)
    codes = [sym["code"] for sym in universe]
    index = pd.DatetimeIndex(np.array(days, dtype="datetime64[D]"))
    close = np.stack([bars[code]["close"] for code in codes], axis=1).astype(np.float64)
    volume = np.stack([bars[code]["volume"] for code in codes], axis=1).astype(np.float64)
    if missing > 0:
        close[np.random.default_rng(seed).random(close.shape) < missing] = np.nan
    return pd.DataFrame(close, index=index, columns=codes), pd.DataFrame(volume, index=index, columns=codes)


class Command(BaseCommand):
    help = "Time the whole-universe weekly analysis (market.analysis) on synthetic bars in memory; no database."

    def add_arguments(self, parser):
        parser.add_argument("--symbols", type=int, default=2_500, help="number of symbols (default 2500)")
        parser.add_argument("--years", type=int, default=10, help="years of daily bars (default 10)")
        parser.add_argument("--end", type=date.fromisoformat, default=None, help="last date (default today, Seoul)")
        parser.add_argument("--repeat", type=int, default=1, help="runs of each measurement; the best is shown")
        parser.add_argument("--threads", type=int, default=None, help="sorting threads (default: CPUs)")
        parser.add_argument("--missing", type=float, default=0.0, help="share of bars removed at random (0..0.5)")
        parser.add_argument("--seed", type=int, default=DEFAULT_SEED)

    def handle(self, *args, symbols, years, end, repeat, threads, missing, seed, **options):
        if symbols < 1 or years < 1 or repeat < 1:
            raise CommandError("--symbols, --years and --repeat must be at least 1")
        if not 0 <= missing <= 0.5:
            raise CommandError("--missing must be between 0 and 0.5")
        end = end or pd.Timestamp.now(tz=SEOUL).date()

        started = time.perf_counter()
        close, volume = benchmark_matrices(symbols, years, end, seed, missing)
        self.stdout.write(
            f"data: {close.shape[1]:,} symbols x {close.shape[0]:,} trading days "
            f"({close.index[0].date()}..{close.index[-1].date()}), {int(close.notna().sum().sum()):,} bars, "
            f"built in {time.perf_counter() - started:.1f} s (not timed)"
        )

        def timed(**kwargs) -> tuple[float, AnalysisResult]:
            runs = []
            for _ in range(repeat):
                wall = time.perf_counter()
                result = analyze(close, volume, threads=threads, **kwargs)
                runs.append(time.perf_counter() - wall)
            return min(runs), result

        seconds, result = timed(find_outliers=False)
        weeks = result.weekly["week_start"].nunique()
        self.stdout.write(
            f"weekly table, all {weeks} weeks x {close.shape[1]:,} symbols: {seconds:.2f} s "
            f"({len(result.weekly):,} rows)"
        )
        weekly_seconds = seconds

        seconds, result = timed()
        self.stdout.write(
            f"weekly table + outliers, all weeks: {seconds:.2f} s "
            f"({len(result.weekly):,} rows, {len(result.outliers):,} outliers)"
        )
        full_seconds = seconds

        last = close.index[-1]
        seconds, result = timed(weeks=[last])
        self.stdout.write(
            f"latest week only ({iso_week_label(last)}, whole history in memory): {seconds:.2f} s "
            f"({len(result.weekly):,} rows, {len(result.outliers):,} outliers)"
        )
        verdict = "met" if weekly_seconds < TARGET_SECONDS else "NOT met"
        self.stdout.write(
            f"target < {TARGET_SECONDS:.0f} s for the whole-universe weekly analysis: {verdict} "
            f"({weekly_seconds:.2f} s weekly table, {full_seconds:.2f} s with outliers)"
        )
