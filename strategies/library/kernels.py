"""Compiled (numba) kernels for the hottest strategy: one pass over the (dates × symbols) matrix.

Pure numpy + numba, no Django. The numpy form of the same arithmetic (``numeric.rolling_zscore``)
makes about 2·log2(window) passes over whole arrays plus a compaction for suspended symbols; the
kernel walks each column once, keeps its last ``window`` bars in a ring buffer (a missing bar is
skipped, so the window counts the symbol's OWN bars, as the per-symbol pandas form does) and
spreads the columns over the CPU's cores.

Same numbers as ``numeric.rolling_zscore``: mean = S1/n, std = sqrt(max(n·S2 − S1², 0) / (n(n − ddof))),
z = (x − mean) / std. KRX prices are whole numbers, so the running sums S1 = Σx and S2 = Σx² are
updated by adding the new bar and subtracting the one leaving the window and stay exact (every
partial sum is an integer below 2**53). A column holding any fractional price (adjusted prices from
a CSV) sums its window afresh at each bar instead, so no rounding error accumulates.

Compiled on first use and cached on disk (``cache=True``: ``__pycache__`` next to this file, or
``NUMBA_CACHE_DIR``), so only the very first process pays the compilation (about a second).
"""

from __future__ import annotations

import numpy as np
from numba import get_num_threads, njit, prange

_EXACT_LIMIT = 2.0**53


def zscore_signals(close: np.ndarray, window: int, threshold: float, ddof: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """Rolling z-score on each symbol's own bars → (signals int8, scores = −z).

    signals: +1 where z < −threshold, −1 where z > threshold, else 0 (0 without a bar or before the
    window is full); scores: −z (NaN without a bar or before the window is full).
    """
    close = np.ascontiguousarray(close, dtype=np.float64)
    return _zscore_signals(close, int(window), float(threshold), int(ddof), max(get_num_threads(), 1))


@njit(parallel=True, cache=True, error_model="numpy", nogil=True)
def _zscore_signals(close, window, threshold, ddof, n_threads):
    t, n = close.shape
    signals = np.empty((t, n), dtype=np.int8)
    scores = np.empty((t, n))
    # One contiguous range of columns per thread, walked row by row: the matrices are row-major, so
    # each row's part is read and written in one sweep (walking narrow column blocks down the rows
    # was four times slower: every row touches new cache lines).
    n_parts = max(min(n_threads, n), 1)
    w = float(window)
    denominator = w * (window - ddof)
    exact_limit = _EXACT_LIMIT / w  # x² below this keeps S2 = Σx² over the window exact
    for part in prange(n_parts):
        j0 = part * n // n_parts
        j1 = (part + 1) * n // n_parts
        width = j1 - j0
        ring = np.empty((window, width))  # each column's last `window` bars
        slot = np.zeros(width, dtype=np.int64)  # where its next bar goes in the ring
        count = np.zeros(width, dtype=np.int64)  # its bars so far
        s1 = np.zeros(width)
        s2 = np.zeros(width)
        ready = np.zeros(width, dtype=np.bool_)  # a bar today and a full window
        exact = np.ones(width, dtype=np.bool_)
        for i in range(t):
            row = close[i, j0:j1]
            # Pass 1 (scalar): the window sums of each column that has a bar today.
            for k in range(width):
                x = row[k]
                if x != x:  # no bar: the window waits for the next one
                    ready[k] = False
                    continue
                if exact[k] and (x != np.floor(x) or x * x >= exact_limit):
                    exact[k] = False  # from here on this column sums its window afresh
                p = slot[k]
                seen = count[k]
                if exact[k]:
                    if seen >= window:
                        old = ring[p, k]
                        s1[k] -= old
                        s2[k] -= old * old
                    s1[k] += x
                    s2[k] += x * x
                ring[p, k] = x
                slot[k] = p + 1 if p + 1 < window else 0
                count[k] = seen + 1
                ready[k] = seen + 1 >= window and window > ddof
                if ready[k] and not exact[k]:
                    a = 0.0
                    q = 0.0
                    for r in range(window):
                        a += ring[r, k]
                        q += ring[r, k] * ring[r, k]
                    s1[k] = a
                    s2[k] = q
            # Pass 2 (branch-free, so LLVM vectorises the divisions and square roots): z, the score
            # and the signal of the row's part; cells that are not ready get NaN and 0.
            score_row = scores[i, j0:j1]
            signal_row = signals[i, j0:j1]
            for k in range(width):
                a = s1[k]
                variance = max(s2[k] * w - a * a, 0.0)
                z = (row[k] - a / w) / np.sqrt(variance / denominator)
                ok = ready[k]
                score_row[k] = -z if ok else np.nan
                signal_row[k] = 1 if (ok and z < -threshold) else (-1 if (ok and z > threshold) else 0)
    return signals, scores
