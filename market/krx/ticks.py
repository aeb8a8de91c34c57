"""KRX price grid (호가가격단위) and daily price limits (가격제한폭) for listed stocks.

KIS rejects an order whose price is off the grid (APBK0506), so every limit
price we send must go through this module first.

Each rule comes twice, with the same semantics: on one int (``tick_size_for``,
``round_to_tick``, ``price_limits``) for orders, and on numpy arrays
(``tick_sizes``, ``round_to_tick_array``, ``price_limits_array``) for the demo
market and the backtester, which apply it to every symbol and day at once.

Only the unified table in force since 2023-01-25 for KOSPI/KOSDAQ/KONEX stocks
is implemented. ETFs/ETNs/ELWs keep a different (5 won) unit and are not
covered here. All prices are integer KRW.
"""

from __future__ import annotations

from datetime import date
from typing import Any, Literal

import numpy as np

TICK_TABLE_EFFECTIVE_FROM = date(2023, 1, 25)

# (lowest price of the band, tick size in the band), ascending. A price p uses
# the last row whose lower bound is <= p. Every band's lower bound is a
# multiple of its own tick, which keeps rounding inside a band.
TICK_TABLE: tuple[tuple[int, int], ...] = (
    (1, 1),
    (2_000, 5),
    (5_000, 10),
    (20_000, 50),
    (50_000, 100),
    (200_000, 500),
    (500_000, 1_000),
)

DAILY_LIMIT_PERCENT = 30

RoundingDirection = Literal["down", "up", "nearest"]


def _require_positive_int(value: int, name: str) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int in KRW, got {value!r}")
    if value < 1:
        raise ValueError(f"{name} must be at least 1 KRW, got {value}")


def tick_size_for(price: int) -> int:
    """Tick size (원) that applies to ``price`` under the 2023 unified table."""
    _require_positive_int(price, "price")
    tick = TICK_TABLE[0][1]
    for band_start, band_tick in TICK_TABLE:
        if price < band_start:
            break
        tick = band_tick
    return tick


def is_on_tick(price: int) -> bool:
    """True when KRX would accept ``price`` as a quote (positive and on the grid)."""
    if isinstance(price, bool) or not isinstance(price, int) or price < 1:
        return False
    return price % tick_size_for(price) == 0


def round_to_tick(price: int, direction: RoundingDirection = "down") -> int:
    """Snap ``price`` onto the grid.

    ``down``: highest valid price <= price; ``up``: lowest valid price >= price;
    ``nearest``: the closer of the two, ties going up (half-up, like ordinary
    rounding). Rounding uses the tick of ``price`` itself; that is safe because
    band boundaries (2,000, 5,000, ...) are on both neighbouring grids.
    """
    _require_positive_int(price, "price")
    tick = tick_size_for(price)
    below = price - price % tick
    above = below if below == price else below + tick
    if direction == "down":
        return below
    if direction == "up":
        return above
    if direction == "nearest":
        return below if price - below < above - price else above
    raise ValueError(f"direction must be 'down', 'up' or 'nearest', got {direction!r}")


def price_limits(prev_close: int) -> tuple[int, int]:
    """Lower and upper daily limit prices (하한가, 상한가) for a base price.

    The band is ±30% of the base price (normally the previous close). The raw
    limits are moved inward onto the grid: the upper limit is cut down to the
    tick of its own band (호가단위 미만 절사) and the lower limit is raised
    (절상). Integer arithmetic only, so there is no float error. The fact sheet
    marks the rounding method unconfirmed: when a live quote is available,
    prefer KIS ``stck_mxpr``/``stck_llam``.
    """
    _require_positive_int(prev_close, "prev_close")
    upper_raw = prev_close * (100 + DAILY_LIMIT_PERCENT) // 100
    lower_raw = -(-prev_close * (100 - DAILY_LIMIT_PERCENT) // 100)
    upper = round_to_tick(upper_raw, "down")
    lower = round_to_tick(max(lower_raw, 1), "up")
    return lower, upper


def shift_ticks(price: int, n: int) -> int:
    """Move an on-grid ``price`` by ``n`` ticks (n > 0 up, n < 0 down).

    Used to model slippage in ticks. Crossing a band boundary switches the
    tick size, e.g. 1,999 +1 -> 2,000 and 2,000 +1 -> 2,005; 2,000 -1 -> 1,999.
    """
    if not is_on_tick(price):
        raise ValueError(f"price must be a positive on-grid price, got {price!r}")
    if isinstance(n, bool) or not isinstance(n, int):
        raise TypeError(f"n must be an int, got {n!r}")
    shifted = price
    for _ in range(abs(n)):
        if n > 0:
            shifted += tick_size_for(shifted)
        else:
            if shifted == 1:
                raise ValueError(f"cannot move {price} down {-n} ticks: below 1 KRW")
            shifted -= tick_size_for(shifted - 1)
    return shifted


# ---------------------------------------------------------------------------------------------
# The same grid on numpy arrays (element by element equal to the scalar functions above)
# ---------------------------------------------------------------------------------------------

_BAND_STARTS = np.array([start for start, _ in TICK_TABLE], dtype=np.int64)
_BAND_TICKS = np.array([tick for _, tick in TICK_TABLE], dtype=np.int64)


def _check_positive(p: np.ndarray, name: str) -> None:
    if p.dtype.kind not in "iuf":
        raise TypeError(f"{name} must be a numeric array, got dtype {p.dtype}")
    if p.size and (not np.all(np.isfinite(p)) or p.min() < 1):
        raise ValueError(f"{name} must be at least 1 KRW everywhere")


def tick_sizes(prices: Any) -> np.ndarray:
    """Tick size of each price (``tick_size_for`` on an array); a float uses its integer part."""
    p = np.asarray(prices)
    _check_positive(p, "prices")
    whole = np.floor(p).astype(np.int64) if p.dtype.kind == "f" else p.astype(np.int64)
    return _BAND_TICKS[np.searchsorted(_BAND_STARTS, whole, side="right") - 1]


def round_to_tick_array(prices: Any, direction: RoundingDirection = "down") -> np.ndarray:
    """``round_to_tick`` on an array of prices >= 1 (int or float), returning int64.

    ``down``: highest grid price <= p; ``up``: lowest grid price >= p; ``nearest``: the closer
    one, ties up. The tick is that of the price itself, as in ``round_to_tick``; for integer
    input the result equals ``round_to_tick`` element by element.
    """
    if direction not in ("down", "up", "nearest"):
        raise ValueError(f"direction must be 'down', 'up' or 'nearest', got {direction!r}")
    p = np.asarray(prices)
    tick = tick_sizes(p)
    if p.dtype.kind == "f":
        below = np.floor(p / tick) * tick
    else:
        p = p.astype(np.int64)
        below = p - p % tick
    above = np.where(below == p, below, below + tick)
    if direction == "down":
        out = below
    elif direction == "up":
        out = above
    else:
        out = np.where(p - below < above - p, below, above)
    return np.asarray(out).astype(np.int64)


def price_limits_array(prev_close: Any) -> tuple[np.ndarray, np.ndarray]:
    """``price_limits`` on an int array: (lower, upper) daily limits, ±30 % moved onto the grid."""
    base = np.asarray(prev_close)
    if base.dtype.kind not in "iu":
        raise TypeError("prev_close must be an integer array")
    base = base.astype(np.int64)
    _check_positive(base, "prev_close")
    upper_raw = base * (100 + DAILY_LIMIT_PERCENT) // 100
    lower_raw = -(-base * (100 - DAILY_LIMIT_PERCENT) // 100)
    upper = round_to_tick_array(upper_raw, "down")
    lower = round_to_tick_array(np.maximum(lower_raw, 1), "up")
    return lower, upper
