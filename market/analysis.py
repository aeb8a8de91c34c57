"""Weekly statistics and outliers of a whole universe of daily bars. Pure pandas/numpy/scipy, no Django.

``analyze(close, volume)`` takes two wide matrices (index: trading dates, columns: codes) and
returns two long DataFrames: one row per (symbol, ISO week) of statistics and one row per outlier.
Everything is vectorised over the whole universe; the only Python loops run over the (at most
seven) positions inside a week and over blocks of symbols.

Bars and missing data
---------------------
A symbol has a *bar* on a date when its close is a positive finite number and its volume is not
zero. A missing bar (NaN close: not listed yet, delisted, no data) and a suspended day (a bar with
volume 0: KRX repeats the previous close, nothing traded) are both "no bar": they produce no
return, no outlier test and do not count as trading days. A NaN volume on a day with a close is
"volume unknown": the day is a bar, only its volume tests are skipped.

Every rolling window below counts the symbol's own bars, not calendar rows: the 20-bar window of
the z-score is the symbol's last 20 closes, whatever holidays or suspensions lie in between (with no
gaps this is exactly 20 trading days). The daily log return of a bar is ``ln(close / close of the
symbol's previous bar)``; the first bar of a symbol has none, and a bar after a suspension gets the
return over the whole gap.

Weekly statistics (one row per symbol and ISO week with at least one bar)
--------------------------------------------------------------------------
* ``week_start``: Monday of the ISO week; ``iso_week``: "YYYY-Www" (ISO year and week).
* ``trading_days``: the symbol's bars in the week (a holiday or a suspension lowers it).
* ``close``: close of the week's last bar.
* ``weekly_return``: ``close / previous close - 1``, the previous close being that of the symbol's
  last bar before the week (normally the previous week's last close). NaN for the week a symbol
  is listed (no earlier bar).
* The week's daily returns are those of its bars (Monday's is Monday's close over the previous
  week's last close), ``n`` of them; with the central moments ``m_k = mean((r - mean(r))**k)``:

  - ``volatility``: sample standard deviation (ddof=1) times ``sqrt(252)``; NaN when ``n < 2``.
  - ``skew``: ``scipy.stats.skew(r, bias=False)`` = ``sqrt(n(n-1))/(n-2) * m3/m2**1.5``; NaN when
    ``n < 3`` or the returns are all equal.
  - ``kurtosis``: excess kurtosis ``scipy.stats.kurtosis(r, fisher=True, bias=False)`` =
    ``((n**2-1) m4/m2**2 - 3(n-1)**2) / ((n-2)(n-3))``; NaN when ``n < 4`` or all returns are equal.
* ``max_drawdown``: ``min(0, min_t(close_t / peak_t - 1))`` over the week's bars, where ``peak_t``
  is the highest of the previous close and the week's closes up to ``t``. A fraction <= 0
  (-0.05 is a 5 % drawdown). In the week a symbol is listed the peak starts at its first close.
* ``z_score``: ``(close - mean) / std`` of the week's last close, ``mean`` and sample ``std``
  (ddof=1) taken over the symbol's last ``z_window`` = 20 closes ending with that close: the
  definition of ``strategies.library.mean_reversion`` (whose windows also count the symbol's own
  bars). NaN with fewer than 20 bars or when the 20 closes are all equal (zero ``std``).

Outliers (only those dated inside a reported week)
--------------------------------------------------
Two series are tested on every bar: ``close``, as its daily log return, and ``volume``, as
``ln(volume)``. Each test compares the bar's value ``x`` with a *trailing baseline*: the series'
values on the symbol's previous bars, the tested bar excluded (a trailing window keeps a week's
result the same whether it is analysed at once or months later; a centred one would change as
later bars arrive). A test runs only when its baseline is complete (all ``window`` values present)
and its spread is not zero.

* ``zscore``: baseline = previous 60 values; ``score = (x - mean) / std`` (sample std, ddof=1);
  an outlier when ``|score| > 3``.
* ``iqr``: baseline = previous 60 values; Q1 and Q3 are their 25 % and 75 % quantiles with linear
  interpolation (numpy's default); ``score = (x - Q3) / IQR`` above Q3, ``(x - Q1) / IQR`` below Q1,
  0 in between; an outlier when ``|score| > 1.5``, i.e. outside ``Q1 - 1.5 IQR .. Q3 + 1.5 IQR``.
* ``hampel``: baseline = previous 21 values; ``score = (x - median) / (1.4826 * MAD)`` with
  ``MAD = median(|baseline - median|)``; an outlier when ``|score| > 3``.

Each outlier row carries the bar's ``date``, the ``series``, the ``method``, the ``value`` (the
close in KRW, or the volume in shares, of that bar) and the signed ``score``.

Computation
-----------
Each symbol's bars are packed into a (symbols x bars) array, so every window is a plain slice.
Weekly statistics gather each week's bars by their index (one step per position in the week).
The outlier z-score uses running window sums (to about 1e-12 of the variance). The IQR and Hampel
tests need sorted baselines; to sort less, consecutive bars share a sorted "core" of their
baselines, which bounds the fences: only the few bars near or beyond them are tested on their
own sorted baseline. The results are exact (``market/tests/test_analysis.py`` checks them
against a plain per-symbol implementation).
"""

from __future__ import annotations

import math
import os
import threading
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd
from numpy.lib.stride_tricks import sliding_window_view

ANNUALISATION_DAYS = 252
Z_WINDOW = 20
OUTLIER_WINDOW = 60
HAMPEL_WINDOW = 21
Z_THRESHOLD = 3.0
IQR_K = 1.5
HAMPEL_THRESHOLD = 3.0
MAD_SCALE = 1.4826  # makes the MAD a consistent estimator of the standard deviation for normal data

SERIES = ("close", "volume")
METHODS = ("zscore", "iqr", "hampel")
WEEKLY_COLUMNS = [
    "code", "week_start", "iso_week", "trading_days", "close", "weekly_return",
    "volatility", "skew", "kurtosis", "max_drawdown", "z_score",
]
OUTLIER_COLUMNS = ["code", "week_start", "date", "series", "method", "value", "score"]
# Bars a symbol needs before a week for every window to be complete on the week's first bar: the
# 60 baseline returns of its first return take 61 closes.
HISTORY_BARS_NEEDED = max(OUTLIER_WINDOW, HAMPEL_WINDOW, Z_WINDOW - 1) + 1

_RESOLUTION = np.finfo(np.float64).resolution  # scipy.stats' tolerance for "all values equal"
_BLOCK_CELLS = 1 << 20  # window cells sorted at a time: 8 MB, so that a block stays in cache
_GATHER_CELLS = 1 << 20  # window cells gathered at a time for the exact tests and the z-score
_SAFETY = 1e-9  # relative margin of the outlier prefilter's bounds


@dataclass(frozen=True)
class AnalysisResult:
    weekly: pd.DataFrame  # WEEKLY_COLUMNS, one row per (code, week_start), sorted by week then code
    outliers: pd.DataFrame  # OUTLIER_COLUMNS, one row per (code, date, series, method)


def week_start(day: date | datetime | pd.Timestamp | str) -> date:
    """Monday of the ISO week containing ``day``."""
    day = pd.Timestamp(day).date()
    return day - timedelta(days=day.weekday())


def iso_week_label(day: date | datetime | pd.Timestamp | str) -> str:
    """"YYYY-Www" of the ISO week containing ``day`` (ISO year: 2024-12-30 is in "2025-W01")."""
    year, week, _ = pd.Timestamp(day).date().isocalendar()
    return f"{year}-W{week:02d}"


def rows_as_records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """The rows as dicts of plain Python values (date, int, float, str), NaN and NaT as None."""
    records = []
    for row in frame.astype(object).to_dict("records"):
        record = {}
        for key, value in row.items():
            if value is None or value is pd.NaT or (isinstance(value, float) and math.isnan(value)):
                value = None
            elif isinstance(value, pd.Timestamp | datetime):
                value = value.date()
            elif isinstance(value, np.generic):
                value = value.item()
            record[key] = value
        records.append(record)
    return records


# ---------------------------------------------------------------------------------------------
# Input: bars packed per symbol
# ---------------------------------------------------------------------------------------------


def _as_matrix(frame: pd.DataFrame, name: str) -> pd.DataFrame:
    if not isinstance(frame, pd.DataFrame):
        raise TypeError(f"{name} must be a DataFrame (index: trading dates, columns: codes)")
    index = pd.DatetimeIndex(pd.to_datetime(frame.index))
    if index.tz is not None:
        index = index.tz_localize(None)
    index = index.normalize()
    if index.has_duplicates:
        raise ValueError(f"{name} has duplicate dates")
    if frame.columns.has_duplicates:
        raise ValueError(f"{name} has duplicate codes")
    frame = frame.set_axis(index, axis=0)
    return frame if index.is_monotonic_increasing else frame.sort_index()


def _by_symbol(frame: pd.DataFrame) -> np.ndarray:
    """(symbols, dates) float64, C-contiguous (free for a homogeneous frame, stored that way)."""
    return np.ascontiguousarray(frame.to_numpy(dtype=np.float64, na_value=np.nan).T)


@dataclass
class _Bars:
    """Each symbol's bars packed to the left of a (symbols, bars) array, in date order."""

    rows: np.ndarray  # date row of each bar; -1 past the symbol's last bar
    close: np.ndarray  # NaN past the last bar
    volume: np.ndarray  # NaN past the last bar, and where unknown
    counts: np.ndarray  # (symbols, dates + 1): counts[j, t] = bars of symbol j on date rows < t


def _pack(close: np.ndarray, volume: np.ndarray) -> _Bars:
    n_symbols, n_dates = close.shape
    with np.errstate(invalid="ignore"):
        observed = np.isfinite(close) & (close > 0) & ~(volume <= 0)
    counts = np.zeros((n_symbols, n_dates + 1), dtype=np.int64)
    np.cumsum(observed, axis=1, out=counts[:, 1:])
    if observed.all():  # no gaps: the bars are the dates
        rows = np.broadcast_to(np.arange(n_dates), (n_symbols, n_dates))
        return _Bars(rows=rows, close=close, volume=volume, counts=counts)
    n_bars = int(counts[:, -1].max(initial=0))
    j_idx, t_idx = np.nonzero(observed)
    k_idx = counts[j_idx, t_idx + 1] - 1
    rows = np.full((n_symbols, n_bars), -1, dtype=np.int64)
    packed_close = np.full((n_symbols, n_bars), np.nan)
    packed_volume = np.full((n_symbols, n_bars), np.nan)
    rows[j_idx, k_idx] = t_idx
    packed_close[j_idx, k_idx] = close[j_idx, t_idx]
    packed_volume[j_idx, k_idx] = volume[j_idx, t_idx]
    return _Bars(rows=rows, close=packed_close, volume=packed_volume, counts=counts)


def _log_returns(close: np.ndarray) -> np.ndarray:
    returns = np.full_like(close, np.nan)
    with np.errstate(invalid="ignore", divide="ignore"):
        np.log(close[:, 1:] / close[:, :-1], out=returns[:, 1:])
    return returns


def _log_volume(volume: np.ndarray) -> np.ndarray:
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(volume > 0, np.log(volume), np.nan)


# ---------------------------------------------------------------------------------------------
# Weekly statistics
# ---------------------------------------------------------------------------------------------


def _trailing_mean_std_at(
    values: np.ndarray, window: int, bar: np.ndarray, valid: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Mean and sample std of each symbol's ``window`` values ending at ``bar`` (symbols x weeks).

    NaN where invalid, where the window starts before the first bar, and std 0 where the values
    are all equal (two-pass formula on the gathered windows: exact, no running sums)."""
    mean = np.full(bar.shape, np.nan)
    std = np.full(bar.shape, np.nan)
    if values.shape[1] < window:
        return mean, std
    windows = sliding_window_view(values, window, axis=1)  # window m ends at bar m + window - 1
    j_idx, w_idx = np.nonzero(valid & (bar >= window - 1))
    first = bar[j_idx, w_idx] - (window - 1)
    step = max(1, _GATHER_CELLS // window)
    for start in range(0, len(j_idx), step):
        cells = slice(start, start + step)
        block = windows[j_idx[cells], first[cells]]
        mu = block.mean(axis=1)
        dev = block - mu[:, None]
        var = np.einsum("ij,ij->i", dev, dev) / (window - 1)
        mean[j_idx[cells], w_idx[cells]] = mu
        std[j_idx[cells], w_idx[cells]] = np.where(var <= (_RESOLUTION * mu) ** 2, 0.0, np.sqrt(var))
    return mean, std


def _weekly_stats(
    bars: _Bars, returns: np.ndarray, first_row: np.ndarray, last_row: np.ndarray, z_window: int
) -> dict[str, np.ndarray]:
    """Statistics of the weeks spanning date rows first_row[w] .. last_row[w]: (symbols, weeks)."""
    n_symbols, n_bars = bars.close.shape
    before = bars.counts[:, first_row]  # index of the week's first bar = bars before the week
    n_days = bars.counts[:, last_row + 1] - before
    has_bar = n_days > 0
    last_bar = before + n_days - 1
    offset = (np.arange(n_symbols, dtype=np.int64) * n_bars)[:, None]
    flat_close, flat_returns = bars.close.ravel(), returns.ravel()

    def at(flat: np.ndarray, bar: np.ndarray, valid: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        out = flat.take(np.clip(bar, 0, n_bars - 1) + offset, out=out)
        np.copyto(out, np.nan, where=~valid)
        return out

    close = at(flat_close, last_bar, has_bar)
    previous = at(flat_close, before - 1, before > 0)
    length = int(n_days.max(initial=0))
    day_returns = np.empty((length, *n_days.shape))
    peak = previous.copy()
    max_drawdown = np.full(n_days.shape, np.nan)
    day_close = np.empty(n_days.shape)
    with np.errstate(invalid="ignore", divide="ignore"):
        for k in range(length):
            in_week = k < n_days
            at(flat_returns, before + k, in_week, out=day_returns[k])
            # Drawdown from the running peak of the previous close and the week's closes so far.
            at(flat_close, before + k, in_week, out=day_close)
            np.fmax(peak, day_close, out=peak)
            np.fmin(max_drawdown, day_close / peak - 1.0, out=max_drawdown)
        max_drawdown = np.minimum(max_drawdown, 0.0)

        # Moments of the week's returns (NaN where a bar has none), two-pass.
        present = np.isfinite(day_returns)
        n = present.sum(axis=0)
        np.copyto(day_returns, 0.0, where=~present)
        mean = day_returns.sum(axis=0) / n
        dev = np.subtract(day_returns, mean, out=day_returns)
        np.copyto(dev, 0.0, where=~present)
        dev2 = dev * dev
        m2 = dev2.sum(axis=0) / n
        m3 = np.einsum("kij,kij->ij", dev2, dev) / n
        m4 = np.einsum("kij,kij->ij", dev2, dev2) / n
        constant = m2 <= (_RESOLUTION * mean) ** 2  # scipy.stats' test
        volatility = np.where(n >= 2, np.sqrt(m2 * n / (n - 1)) * math.sqrt(ANNUALISATION_DAYS), np.nan)
        skew = np.where((n >= 3) & ~constant, np.sqrt(n * (n - 1.0)) / (n - 2.0) * m3 / m2**1.5, np.nan)
        kurtosis = np.where(
            (n >= 4) & ~constant,
            ((n * n - 1.0) * m4 / (m2 * m2) - 3.0 * (n - 1.0) ** 2) / ((n - 2.0) * (n - 3.0)),
            np.nan,
        )
        z_mean, z_std = _trailing_mean_std_at(bars.close, z_window, last_bar, has_bar)
        z_score = np.where(z_std > 0, (close - z_mean) / z_std, np.nan)
        weekly_return = close / previous - 1.0
    return {
        "trading_days": n_days,
        "close": close,
        "weekly_return": weekly_return,
        "volatility": volatility,
        "skew": skew,
        "kurtosis": kurtosis,
        "max_drawdown": max_drawdown,
        "z_score": z_score,
    }


# ---------------------------------------------------------------------------------------------
# Outliers
# ---------------------------------------------------------------------------------------------

Hits = tuple[np.ndarray, np.ndarray, np.ndarray]  # symbol, bar and score of each outlier found


def _no_hits() -> Hits:
    return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64), np.zeros(0)


def _concat_hits(parts: list[Hits]) -> Hits:
    parts = [part for part in parts if len(part[0])]
    if not parts:
        return _no_hits()
    return tuple(np.concatenate([part[i] for part in parts]) for i in range(3))  # type: ignore[return-value]


def _over(score: np.ndarray, wanted: np.ndarray, threshold: float, symbol_offset: int, bar_offset: int) -> Hits:
    with np.errstate(invalid="ignore"):
        j, k = np.nonzero(wanted & (np.abs(score) > threshold))
    return j + symbol_offset, k + bar_offset, score[j, k]


def _by_blocks(n_symbols: int, per_block: int, work: Callable[[slice], Hits], threads: int) -> Hits:
    """``work`` on consecutive blocks of symbols, in threads (the heavy numpy calls release the GIL)."""
    blocks = [slice(start, min(start + per_block, n_symbols)) for start in range(0, n_symbols, per_block)]
    if threads > 1 and len(blocks) > 1:
        with ThreadPoolExecutor(max_workers=threads) as pool:
            return _concat_hits(list(pool.map(work, blocks)))
    return _concat_hits([work(block) for block in blocks])


def _thread_buffer(local: threading.local, shape: tuple[int, ...]) -> np.ndarray:
    """A scratch array per thread, reused: touching fresh memory costs more than sorting it."""
    buffer = getattr(local, "buffer", None)
    if buffer is None:
        buffer = local.buffer = np.empty(shape)
    return buffer


def _quantile_of_sorted(ordered: np.ndarray, q: float) -> np.ndarray:
    """numpy's default (linear) quantile of rows sorted along the last axis."""
    h = (ordered.shape[-1] - 1) * q
    lo = math.floor(h)
    hi = min(lo + 1, ordered.shape[-1] - 1)
    return ordered[..., lo] + (h - lo) * (ordered[..., hi] - ordered[..., lo])


def _iqr_score(ordered: np.ndarray, x: np.ndarray) -> np.ndarray:
    """IQR score of x against its sorted complete baseline (rows along the last axis)."""
    q1, q3 = _quantile_of_sorted(ordered, 0.25), _quantile_of_sorted(ordered, 0.75)
    iqr = q3 - q1
    beyond = np.where(x > q3, x - q3, np.where(x < q1, x - q1, 0.0))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(iqr > 0, beyond / iqr, np.nan)


def _hampel_score(ordered: np.ndarray, x: np.ndarray) -> np.ndarray:
    """Hampel score of x against its sorted complete baseline (rows along the last axis)."""
    window = ordered.shape[-1]
    h = window // 2
    if window % 2:
        median = ordered[..., h]
        # The deviations from the median form two ascending runs from 0: median - ordered[h - a]
        # and ordered[h + a] - median. The MAD, the (h + 1)-th smallest deviation, is the least
        # over the splits (a values from the first run, h - a from the second, beyond the 0) of
        # the larger of the last values taken: max(median - ordered[h - a], ordered[2h - a] - median).
        mad = ordered[..., 2 * h] - median
        for a in range(1, h):
            np.minimum(mad, np.maximum(median - ordered[..., h - a], ordered[..., 2 * h - a] - median), out=mad)
        np.minimum(mad, median - ordered[..., 0], out=mad)
    else:
        median = 0.5 * (ordered[..., h - 1] + ordered[..., h])
        deviations = np.sort(np.abs(ordered - median[..., None]), axis=-1)
        mad = 0.5 * (deviations[..., h - 1] + deviations[..., h])
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(mad > 0, (x - median) / (MAD_SCALE * mad), np.nan)


def _windowed_sums(values: np.ndarray, window: int) -> np.ndarray:
    """Sum of each ``window`` consecutive values along axis 1: entry m sums m .. m + window - 1."""
    cumulative = np.zeros((values.shape[0], values.shape[1] + 1))
    np.cumsum(values, axis=1, out=cumulative[:, 1:])
    return cumulative[:, window:] - cumulative[:, :-window]


def _zscore_hits(values: np.ndarray, target: np.ndarray, window: int, threads: int) -> Hits:
    """z-score test of each target bar against the previous ``window`` values.

    Mean and sample variance come from running sums of the values minus the symbol's mean (so
    that they stay small: the error is about 1e-12 of the variance). A baseline of equal values
    (zero spread: not tested) is recognised exactly, by counting changes between neighbours."""
    n_symbols, n_bars = values.shape
    if n_bars <= window:
        return _no_hits()
    per_block = max(1, _BLOCK_CELLS // (4 * n_bars))

    def work(block: slice) -> Hits:
        wanted = target[block, window:]
        if not wanted.any():
            return _no_hits()
        block_values = values[block]
        present = np.isfinite(block_values)
        n_present = present.sum(axis=1, keepdims=True)
        reference = np.where(present, block_values, 0.0).sum(axis=1, keepdims=True) / np.maximum(n_present, 1)
        centred = np.where(present, block_values - reference, 0.0)
        complete = _windowed_sums(present.astype(np.float64), window)[:, :-1] == window
        sums = _windowed_sums(centred, window)[:, :-1]
        squares = _windowed_sums(centred * centred, window)[:, :-1]
        changes = np.zeros(block_values.shape)
        changes[:, 1:] = block_values[:, 1:] != block_values[:, :-1]
        # Bars m + 1 .. m + window - 1 differ from their predecessors: the baseline m .. m + window - 1 varies.
        varies = _windowed_sums(changes[:, 1:], window - 1)[:, :-1] > 0
        mean = sums / window
        variance = np.maximum((squares - sums * mean) / (window - 1), 0.0)
        x = block_values[:, window:] - reference
        with np.errstate(invalid="ignore", divide="ignore"):
            score = np.where(complete & varies & (variance > 0), (x - mean) / np.sqrt(variance), np.nan)
        return _over(score, wanted, Z_THRESHOLD, block.start, window)

    return _by_blocks(n_symbols, per_block, work, threads)


# A sorted core is shared by runs of this many consecutive bars: more bars per run sort less but
# bound more loosely (more bars left for the exact test).
IQR_RUN = 8
HAMPEL_RUN = 4

SafeInterval = Callable[[np.ndarray, int], tuple[np.ndarray, np.ndarray]]


def _iqr_safe_interval(cores: np.ndarray, extra: int) -> tuple[np.ndarray, np.ndarray]:
    """Values that are certainly inside both IQR fences of every baseline holding ``cores``
    (sorted, along the last axis) plus ``extra`` other values."""
    core_len = cores.shape[-1]
    window = core_len + extra

    def order_stat(k: int, upper: bool) -> np.ndarray | float:
        # The baseline's k-th smallest lies between core[k - extra] and core[k].
        if upper:
            return cores[..., k] if k < core_len else np.inf
        return cores[..., k - extra] if k >= extra else -np.inf

    def quantile(q: float, upper: bool) -> np.ndarray | float:
        h = (window - 1) * q
        lo = math.floor(h)
        if h == lo:
            return order_stat(lo, upper)
        return (1 - (h - lo)) * order_stat(lo, upper) + (h - lo) * order_stat(lo + 1, upper)

    q1_high, q3_low = quantile(0.25, True), quantile(0.75, False)
    with np.errstate(invalid="ignore"):
        # Upper fence Q3 + k IQR = (1 + k) Q3 - k Q1 is at least this; the lower fence at most.
        return (1 + IQR_K) * q1_high - IQR_K * q3_low, (1 + IQR_K) * q3_low - IQR_K * q1_high


def _hampel_safe_interval(cores: np.ndarray, extra: int) -> tuple[np.ndarray, np.ndarray]:
    """Values whose Hampel score is certainly at most the threshold for every baseline holding
    ``cores`` (sorted, along the last axis) plus ``extra`` other values."""
    core_len = cores.shape[-1]
    window = core_len + extra
    h = window // 2
    # The median (the h-th smallest value of 2h + 1, or the mean of the (h-1)-th and h-th of 2h)
    # lies between core[h - extra] (core[h - 1 - extra] for an even window) and core[h].
    low_index = h - extra - (1 - window % 2)
    if low_index < 0:
        nothing = np.full(cores.shape[:-1], np.nan)
        return nothing, nothing
    median_low, median_high = cores[..., low_index], cores[..., h]
    # At least (window + 1) // 2 values lie within MAD of the median, hence at least `need` core
    # values: 2 MAD >= the narrowest span of `need` consecutive sorted core values.
    need = (window + 1) // 2 - extra
    span = need - 1
    mad_low = cores[..., span:] - cores[..., : core_len - span] if span > 0 else np.zeros((*cores.shape[:-1], 1))
    reach = HAMPEL_THRESHOLD * MAD_SCALE * 0.5 * mad_low.min(axis=-1)
    return median_high - reach, median_low + reach


def _prefiltered_hits(
    values: np.ndarray, target: np.ndarray, window: int, run: int, safe_interval: SafeInterval,
    exact_score: Callable[[np.ndarray, np.ndarray], np.ndarray], threshold: float, threads: int,
) -> Hits:
    """Outlier test of each target bar against its baseline, the ``window`` values before it.

    Sorting every baseline is the costly part, so the baselines of ``run`` consecutive bars share
    one sorted core: the ``window - run + 1`` values common to them. With ``run - 1`` other values
    in each baseline, the core bounds every order statistic of the baseline (its k-th smallest lies
    between core[k - run + 1] and core[k]), hence the score: ``safe_interval`` gives, per run, the
    values that certainly pass. The other bars (a few percent) get ``exact_score`` on their own
    sorted baseline (NaN unless the baseline is complete) and are kept if ``|score| > threshold``.
    """
    n_symbols, n_bars = values.shape
    if n_bars <= window:
        return _no_hits()
    run = max(1, min(run, window // 4))  # a longer run would leave little to bound by
    extra = run - 1
    core_len = window - extra
    n_tested = n_bars - window
    n_runs = -(-n_tested // run)
    # Run r holds bars window + r * run ... (the last run may be short); its core starts at bar
    # r * run + extra and ends just before the run's first bar.
    cores = sliding_window_view(values, core_len, axis=1)[:, extra::run][:, :n_runs]
    baselines = sliding_window_view(values, window, axis=1)  # the baseline of bar k starts at k - window
    tested = values[:, window:]
    wanted = target[:, window:] & np.isfinite(tested)
    local = threading.local()
    per_block = max(1, _BLOCK_CELLS // (n_runs * core_len))

    def work(block: slice) -> Hits:
        want = wanted[block]
        if not want.any():
            return _no_hits()
        ordered = _thread_buffer(local, (per_block, n_runs, core_len))[: want.shape[0]]
        np.copyto(ordered, cores[block])
        ordered.sort(axis=-1)
        low, high = safe_interval(ordered, extra)
        with np.errstate(invalid="ignore"):
            # Rounding differs between the bounds and the exact scores: values within a hair of a
            # bound go to the exact test.
            margin = _SAFETY * (np.abs(low) + np.abs(high))
            low = np.broadcast_to(low + margin, ordered.shape[:-1])
            high = np.broadcast_to(high - margin, ordered.shape[:-1])
            x = tested[block]
            safe = (x >= np.repeat(low, run, axis=1)[:, :n_tested]) & (x <= np.repeat(high, run, axis=1)[:, :n_tested])
        j, m = np.nonzero(want & ~safe)
        found = []
        step = max(1, _GATHER_CELLS // window)
        for start in range(0, len(j), step):
            symbols, bars = j[start : start + step] + block.start, m[start : start + step]
            exact = np.sort(baselines[symbols, bars], axis=-1)
            score = exact_score(exact, tested[symbols, bars])
            score[~np.isfinite(exact[:, -1])] = np.nan  # incomplete baseline (NaN sorts last)
            with np.errstate(invalid="ignore"):
                hit = np.abs(score) > threshold
            found.append((symbols[hit], bars[hit] + window, score[hit]))
        return _concat_hits(found)

    return _by_blocks(n_symbols, per_block, work, threads)


def _find_outliers(
    bars: _Bars, returns: np.ndarray, codes: pd.Index, dates: np.ndarray, mondays_by_row: np.ndarray,
    reported: np.ndarray, *, outlier_window: int, hampel_window: int, threads: int,
) -> pd.DataFrame:
    in_reported_week = np.isin(mondays_by_row, reported)
    target = (bars.rows >= 0) & in_reported_week[np.maximum(bars.rows, 0)]
    tested_bars = np.nonzero(target.any(axis=0))[0]
    if len(tested_bars) == 0:
        return _outlier_frame([], codes, dates, mondays_by_row)
    # Only the bars from the longest baseline before the first tested bar matter.
    start = max(0, int(tested_bars[0]) - max(outlier_window, hampel_window))
    stop = int(tested_bars[-1]) + 1
    window_bars = slice(start, stop)
    target, rows = target[:, window_bars], bars.rows[:, window_bars]
    raw = {"close": bars.close[:, window_bars], "volume": bars.volume[:, window_bars]}
    tested = {"close": returns[:, window_bars], "volume": _log_volume(raw["volume"])}
    parts: list[tuple[np.ndarray, ...]] = []
    for series_code, series in enumerate(SERIES):
        values = np.ascontiguousarray(tested[series])
        hits = {
            "zscore": _zscore_hits(values, target, outlier_window, threads),
            "iqr": _prefiltered_hits(
                values, target, outlier_window, IQR_RUN, _iqr_safe_interval, _iqr_score, IQR_K, threads
            ),
            "hampel": _prefiltered_hits(
                values, target, hampel_window, HAMPEL_RUN, _hampel_safe_interval, _hampel_score,
                HAMPEL_THRESHOLD, threads,
            ),
        }
        for method_code, method in enumerate(METHODS):
            j, k, score = hits[method]
            kind = np.full(len(j), series_code * len(METHODS) + method_code, dtype=np.int64)
            parts.append((j, rows[j, k], kind, raw[series][j, k], score))
    return _outlier_frame(parts, codes, dates, mondays_by_row)


def _outlier_frame(
    parts: list[tuple[np.ndarray, ...]], codes: pd.Index, dates: np.ndarray | None = None,
    mondays_by_row: np.ndarray | None = None,
) -> pd.DataFrame:
    """The long outlier table from (symbol, date row, series * 3 + method, value, score) arrays,
    sorted by week, code, date, series and method."""
    if parts:
        symbol, row, kind, value, score = (np.concatenate([part[i] for part in parts]) for i in range(5))
    else:
        symbol, row, kind = (np.zeros(0, dtype=np.int64) for _ in range(3))
        value, score = np.zeros(0), np.zeros(0)
    if dates is None or mondays_by_row is None:
        dates = mondays_by_row = np.zeros(0, dtype="datetime64[D]")
    monday = mondays_by_row[row].astype(np.int64)
    key = ((monday * len(codes) + symbol) * max(len(dates), 1) + row) * (len(SERIES) * len(METHODS)) + kind
    order = np.argsort(key, kind="stable")
    symbol, row, kind = symbol[order], row[order], kind[order]
    return pd.DataFrame(
        {
            "code": pd.Categorical.from_codes(symbol, categories=codes),
            "week_start": mondays_by_row[row].astype("datetime64[s]"),
            "date": dates[row].astype("datetime64[s]"),
            "series": pd.Categorical.from_codes(kind // len(METHODS), categories=list(SERIES)),
            "method": pd.Categorical.from_codes(kind % len(METHODS), categories=list(METHODS)),
            "value": value[order].astype(np.float64),
            "score": score[order].astype(np.float64),
        },
        columns=OUTLIER_COLUMNS,
    )


def _weekly_frame(
    stats: dict[str, np.ndarray], labels: list[str], codes: pd.Index, mondays: np.ndarray
) -> pd.DataFrame:
    """The long weekly table: one row per (week, symbol) with a bar, week-major."""
    if stats:
        week_idx, symbol_idx = np.nonzero(stats["trading_days"].T > 0)
    else:
        week_idx = symbol_idx = np.zeros(0, dtype=np.int64)

    def column(key: str) -> np.ndarray:
        return stats[key][symbol_idx, week_idx] if stats else np.zeros(0)

    return pd.DataFrame(
        {
            "code": pd.Categorical.from_codes(symbol_idx, categories=codes),
            "week_start": mondays[week_idx].astype("datetime64[s]"),
            "iso_week": pd.Categorical.from_codes(week_idx, categories=pd.Index(labels, dtype=object)),
            "trading_days": column("trading_days").astype(np.int64),
            "close": np.rint(column("close")).astype(np.int64),
            **{
                key: column(key).astype(np.float64)
                for key in ("weekly_return", "volatility", "skew", "kurtosis", "max_drawdown", "z_score")
            },
        },
        columns=WEEKLY_COLUMNS,
    )


# ---------------------------------------------------------------------------------------------
# Entry point
# ---------------------------------------------------------------------------------------------


def analyze(
    close: pd.DataFrame,
    volume: pd.DataFrame | None = None,
    *,
    weeks: Iterable[Any] | None = None,
    z_window: int = Z_WINDOW,
    outlier_window: int = OUTLIER_WINDOW,
    hampel_window: int = HAMPEL_WINDOW,
    find_outliers: bool = True,
    threads: int | None = None,
) -> AnalysisResult:
    """Weekly statistics and outliers of every symbol; see the module docstring for definitions.

    ``close`` and ``volume``: DataFrames indexed by trading date (any order), one column per code;
    volume is aligned on close (``None``: unknown, no volume tests). ``weeks``: the ISO weeks to
    report, as any day in each (default: every week of the index). The rows before the first one
    serve as history: pass ``HISTORY_BARS_NEEDED`` bars or more so that every window is complete.
    ``find_outliers=False`` skips the outlier tests. ``threads``: sorting threads (default: CPUs).

    ``weekly``: WEEKLY_COLUMNS, sorted by week then code; ``outliers``: OUTLIER_COLUMNS sorted by
    week, code, date, series and method. ``code``, ``iso_week``, ``series`` and ``method`` are
    categoricals; dates are datetime64; NaN means "not defined" (None when stored).
    """
    for name, value in (("z_window", z_window), ("outlier_window", outlier_window), ("hampel_window", hampel_window)):
        if value < 2:
            raise ValueError(f"{name} must be at least 2, got {value}")
    close = _as_matrix(close, "close")
    if volume is None:
        volume = pd.DataFrame(np.nan, index=close.index, columns=close.columns)
    volume = _as_matrix(volume, "volume").reindex(index=close.index, columns=close.columns)
    codes = close.columns
    dates = close.index.to_numpy().astype("datetime64[D]")
    threads = threads or min(os.cpu_count() or 1, 8)

    # ISO weeks: contiguous blocks of date rows (1970-01-01, day 0, was a Thursday).
    mondays_by_row = dates - ((dates.astype(np.int64) + 3) % 7).astype("timedelta64[D]")
    mondays, first_row = np.unique(mondays_by_row, return_index=True)
    last_row = np.append(first_row[1:], len(dates)) - 1
    if weeks is not None:
        wanted = np.array([np.datetime64(week_start(day), "D") for day in weeks], dtype="datetime64[D]")
        keep = np.isin(mondays, wanted)
        mondays, first_row, last_row = mondays[keep], first_row[keep], last_row[keep]

    if len(mondays) == 0 or len(codes) == 0:
        return AnalysisResult(weekly=_weekly_frame({}, [], codes, mondays), outliers=_outlier_frame([], codes))
    bars = _pack(_by_symbol(close), _by_symbol(volume))
    if bars.close.shape[1] == 0:  # not a single bar
        return AnalysisResult(weekly=_weekly_frame({}, [], codes, mondays), outliers=_outlier_frame([], codes))
    returns = _log_returns(bars.close)
    stats = _weekly_stats(bars, returns, first_row, last_row, z_window)
    labels = [iso_week_label(pd.Timestamp(monday)) for monday in mondays]
    weekly = _weekly_frame(stats, labels, codes, mondays)
    if find_outliers:
        outliers = _find_outliers(
            bars, returns, codes, dates, mondays_by_row, mondays,
            outlier_window=outlier_window, hampel_window=hampel_window, threads=threads,
        )
    else:
        outliers = _outlier_frame([], codes)
    return AnalysisResult(weekly=weekly, outliers=outliers)
