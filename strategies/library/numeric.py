"""Vectorised building blocks for the strategies: column compaction and rolling windows.

Pure numpy, no Django. Every function works on a (dates × symbols) float matrix in which NaN
means "no bar that day" (suspension, not yet listed, delisted).

Windows count the symbol's OWN bars, as the per-symbol pandas form of each strategy does
(``prices.dropna().rolling(window)``): a 20-day window is the last 20 bars the symbol traded; a
suspension pauses it. On the matrix:

* a column whose bars are contiguous (NaN only before its listing or after its delisting) is used
  as is: NaN propagates through sums and shifts, so a window or a lag that reaches before the
  first bar is NaN — the same numbers as on its own bars;
* a column with a gap (a suspension) is *compacted* first (its bars moved to the top, NaN
  below), the indicator is computed there, and the result is scattered back to the dates (NaN
  where there is no bar). Recursive indicators (Wilder's RSI) need every column to start at row
  0, so they compact the columns with leading NaN too (``edges=True``).

Window sums use binary doubling (S_2k[i] = S_k[i] + S_k[i+k], about log2(window) additions of
whole arrays) instead of a cumulative sum: cheaper than numpy's cumsum along the dates, exact for
whole-number prices (every partial sum is an integer below 2**53), and NaN stays local to the
windows that contain it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True, slots=True)
class Compaction:
    """Where the bars of the compacted columns go in the dense (top-aligned) matrix."""

    rows: np.ndarray  # date row of each moved bar
    cols: np.ndarray  # its column
    dense_rows: np.ndarray  # its row in the dense matrix
    holed_cols: np.ndarray  # the compacted columns

    def compact(self, x: np.ndarray) -> np.ndarray:
        """A dense copy of ``x`` (float): each compacted column's bars moved to the top, NaN below."""
        out = np.array(x, dtype=float, copy=True)
        values = out[self.rows, self.cols]
        out[:, self.holed_cols] = np.nan
        out[self.dense_rows, self.cols] = values
        return out

    def expand(self, dense: np.ndarray, fill: float = np.nan) -> np.ndarray:
        """Scatter a dense result back to the dates, in place; ``fill`` where there is no bar."""
        values = dense[self.dense_rows, self.cols]
        dense[:, self.holed_cols] = fill
        dense[self.rows, self.cols] = values
        return dense


def compaction_for(valid: np.ndarray, edges: bool = False) -> Compaction | None:
    """The compaction of the columns of ``valid`` (bool, dates × symbols) with a gap between two
    bars (``edges=True``: with any missing bar), or None when there is none."""
    t = valid.shape[0]
    counts = valid.sum(axis=0)
    if edges:
        holed = np.flatnonzero(counts < t)
    else:
        first = np.argmax(valid, axis=0)
        last = t - 1 - np.argmax(valid[::-1], axis=0)
        holed = np.flatnonzero((counts > 0) & (counts != last - first + 1))
    if holed.size == 0:
        return None
    local_cols, rows = np.nonzero(valid[:, holed].T)  # sorted by column, then row
    n_bars = counts[holed]
    starts = np.concatenate(([0], np.cumsum(n_bars)[:-1]))
    dense_rows = np.arange(local_cols.size) - np.repeat(starts, n_bars)
    return Compaction(rows, holed[local_cols], dense_rows, holed)


_allocator_ready = False


def prepare_allocator() -> None:
    """Let the C allocator keep freed block temporaries instead of returning them to the OS.

    The blocked computations allocate and free many arrays of a few MB. glibc returns such
    memory to the OS after each block and page-faults it back in the next one, which doubled the
    time of a first (cold) run. glibc raises its mmap threshold (and, with it, the amount of free
    heap it keeps) to the size of the largest mmapped chunk freed so far (capped at 32 MB): freeing
    one 24 MB array once per process sets that up. Harmless with any other allocator.
    """
    global _allocator_ready
    if not _allocator_ready:
        scratch = np.empty(3_000_000)
        del scratch
        _allocator_ready = True


def as_matrix(x) -> np.ndarray:
    """A float64 2-D array (dates × symbols) from an array, a DataFrame or a Series (one column)."""
    arr = np.asarray(x, dtype=float)
    if arr.ndim == 1:
        arr = arr[:, None]
    if arr.ndim != 2:
        raise ValueError(f"expected a (dates × symbols) matrix, got shape {arr.shape}")
    return arr


def window_sums(x: np.ndarray, window: int) -> np.ndarray:
    """Sum of each window of ``window`` consecutive rows: element i covers rows i .. i+window-1.

    Returns ``T - window + 1`` rows (row i belongs to the date ``i + window - 1``). NaN inside a
    window makes that window NaN. Binary doubling: S_2k[i] = S_k[i] + S_k[i + k].
    """
    t = x.shape[0]
    if window < 1 or t < window:
        return np.empty((0,) + x.shape[1:])
    total: np.ndarray | None = None
    offset = 0  # rows already covered by ``total``
    power, span = x, 1  # power[i] = sum of rows i .. i+span-1
    remaining = window
    length = t - window + 1
    while True:
        if remaining & 1:
            part = power[offset : offset + length]
            total = part.copy() if total is None else np.add(total, part, out=total)
            offset += span
        remaining >>= 1
        if not remaining:
            break
        power = power[:-span] + power[span:]
        span *= 2
    return total


def rolling_sum(x: np.ndarray, window: int) -> np.ndarray:
    """Rolling sum aligned on the dates: row t covers rows t-window+1 .. t; NaN for t < window-1."""
    out = np.empty(x.shape)
    out[: window - 1] = np.nan
    if x.shape[0] >= window:
        out[window - 1 :] = window_sums(x, window)
    return out


def rolling_mean(x: np.ndarray, window: int) -> np.ndarray:
    """Rolling mean aligned on the dates (NaN until the window is full or when it holds a NaN)."""
    out = rolling_sum(x, window)
    out /= window
    return out


def rolling_mean_var(x: np.ndarray, window: int, ddof: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """Rolling mean and variance (``ddof`` 1: sample, 0: population), aligned on the dates.

    mean = S1 / n and variance = (n·S2 − S1²) / (n(n − ddof)) from the window sums S1 = Σx,
    S2 = Σx². For whole-number prices with n·max² below 2**53 (any KRW price with n <= 20) S1, S2
    and n·S2 − S1² are exact, so each result is one rounding of the exact value. A variance that
    rounds below 0 is 0.
    """
    t, n = x.shape
    mean = np.full((t, n), np.nan)
    var = np.full((t, n), np.nan)
    if window < 1 or t < window or window <= ddof:
        return mean, var
    s1 = window_sums(x, window)
    s2 = window_sums(x * x, window)
    np.divide(s1, window, out=mean[window - 1 :])
    s2 *= window
    s1 *= s1
    s2 -= s1  # n·S2 − S1²
    np.maximum(s2, 0.0, out=s2)
    np.divide(s2, window * (window - ddof), out=var[window - 1 :])
    return mean, var


def rolling_zscore(x: np.ndarray, window: int, ddof: int = 1) -> np.ndarray:
    """(x − rolling mean) / rolling std, aligned on the dates; the same arithmetic as
    ``rolling_mean_var`` (mean = S1/n, std = sqrt((n·S2 − S1²) / (n(n − ddof)))) in fewer passes."""
    t, n = x.shape
    z = np.empty((t, n))
    z[: window - 1] = np.nan
    if window < 1 or t < window or window <= ddof:
        z[:] = np.nan
        return z
    s1 = window_sums(x, window)
    s2 = window_sums(x * x, window)
    zz = z[window - 1 :]
    np.divide(s1, window, out=zz)  # mean
    np.subtract(x[window - 1 :], zz, out=zz)
    s2 *= window
    s1 *= s1
    s2 -= s1  # n·S2 − S1²
    np.maximum(s2, 0.0, out=s2)
    s2 /= window * (window - ddof)
    np.sqrt(s2, out=s2)
    zz /= s2
    return z


def shift_rows(x: np.ndarray, k: int) -> np.ndarray:
    """``x`` moved down ``k`` rows (row t holds row t-k), NaN on top (like ``Series.shift(k)``)."""
    out = np.full(x.shape, np.nan)
    if k == 0:
        out[:] = x
    elif k < x.shape[0]:
        out[k:] = x[:-k]
    return out


def wilder_average(values: np.ndarray, period: int) -> np.ndarray:
    """Wilder's smoothing of each column of a dense matrix whose row 0 holds no value (NaN).

    avg at row ``period`` = mean of rows 1..period (summed in order); afterwards
    avg_t = (avg_{t-1}·(period−1) + value_t) / period. Rows before ``period`` are NaN.
    A loop over dates, vectorised over symbols.
    """
    t, n = values.shape
    out = np.full((t, n), np.nan)
    if t <= period:
        return out
    total = np.zeros(n)
    for row in range(1, period + 1):
        total = total + values[row]
    avg = total / period
    out[period] = avg
    for row in range(period + 1, t):
        avg = (avg * (period - 1) + values[row]) / period
        out[row] = avg
    return out


def rank_rows(order_keys: np.ndarray, eligible: np.ndarray) -> np.ndarray:
    """Rank (0 = best) of each eligible cell of every row, by ``order_keys`` descending, ties by column.

    Cells that are not ``eligible`` get rank ``n_symbols``.
    """
    t, n = order_keys.shape
    keys = np.where(eligible, -order_keys, np.inf)
    order = np.argsort(keys, axis=1, kind="stable")  # ties keep column order
    ranks = np.empty((t, n), dtype=np.int64)
    np.put_along_axis(ranks, order, np.broadcast_to(np.arange(n), (t, n)), axis=1)
    ranks[~eligible] = n
    return ranks
