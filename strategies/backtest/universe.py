"""The universe as it was: point-in-time buy-candidate masks for ``MarketData.universe``.

Pure numpy, no Django. A backtest over today's survivors (today's top 200) picks, for 2016, the
stocks that would go on to do well enough to still be big today; ``top_n_mask`` instead ranks the
symbols on each row by what was known on that row only, delisted ones included while they traded.
"""

from __future__ import annotations

import numpy as np

DEFAULT_LOOKBACK = 60  # trading rows (about three months), like the live top-N universe's 60 days


def top_n_mask(
    traded_value: np.ndarray, n: int, lookback: int = DEFAULT_LOOKBACK, valid: np.ndarray | None = None,
) -> np.ndarray:
    """(T × N) bool: on each row, the ``n`` symbols with the largest traded value summed over the
    ``lookback`` rows up to and including that row (fewer at the start), ties by column order, only
    among symbols with a bar on that row.

    ``traded_value``: KRW per bar, NaN (or anything not finite) where there is no bar; ``valid``
    (optional, bool T × N) says which rows have a bar instead. Values are summed as whole KRW (floored,
    int64), so the sums and the ties are exact. A row's mask uses nothing after that row: it is the
    universe of an entry whose signal day is that row.
    """
    if isinstance(n, bool) or not isinstance(n, int | np.integer) or n < 1:
        raise ValueError(f"n must be a positive int, got {n!r}")
    if isinstance(lookback, bool) or not isinstance(lookback, int | np.integer) or lookback < 1:
        raise ValueError(f"lookback must be a positive int, got {lookback!r}")
    values = np.asarray(traded_value, dtype=float)
    if values.ndim != 2:
        raise ValueError(f"traded_value must be (dates × symbols), got shape {values.shape}")
    finite = np.isfinite(values)
    has_bar = finite if valid is None else np.asarray(valid, dtype=bool)
    if has_bar.shape != values.shape:
        raise ValueError(f"valid must have shape {values.shape}, got {has_bar.shape}")
    t, width = values.shape
    whole = np.where(finite, np.floor(np.fmax(values, 0.0)), 0.0)
    sums = np.zeros((t + 1, width), dtype=np.int64)
    np.cumsum(whole.astype(np.int64), axis=0, out=sums[1:])
    rows = np.arange(t)
    window = sums[rows + 1] - sums[np.maximum(rows + 1 - lookback, 0)]
    # Rank within each row: bars first, then the larger sum, then the column (a stable sort).
    key = np.where(has_bar, -window, np.iinfo(np.int64).max)
    order = np.argsort(key, axis=1, kind="stable")
    rank = np.empty_like(order)
    np.put_along_axis(rank, order, np.broadcast_to(np.arange(width), (t, width)), axis=1)
    return (rank < n) & has_bar
