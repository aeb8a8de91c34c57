"""Trading costs of the backtest, vectorised and exact: commission, sell tax, fill prices on tick.

Pure numpy; the rates and rules come from ``market.krx`` (no Django).

* Commission on every buy and sell: ``floor(amount × rate)``, as ``market.krx.commission_for``
  (default rate ``DEFAULT_COMMISSION_RATE``); computed on int64 with the rate as an exact
  fraction, so it equals the Decimal result.
* Securities-transaction tax on sells: ``floor(amount × rate)`` with the rate of the sell's market
  in force on its settlement date (T+2 trading days), as ``market.krx.sell_tax_for_trade``; or one
  fixed rate for the run when given.
* Fill prices: the bar's price as is when it is a whole number (a real traded price); otherwise
  (adjusted data) the nearest tick. Slippage of n ticks: buys n ticks up, sells n ticks down
  (never below 1 won), on the current KRX grid (an off-grid price is first moved onto the grid in
  the unfavourable direction).
* Participation cap (``BacktestConfig.participation_cap``, None = none): a buy takes at most
  floor(cap × the entry day's volume) shares, the cap as an exact fraction. Sells are never capped
  (a position is always closed in full: the backtest's weekly exit does not wait for liquidity).
* Small-cap spread (``spread_ticks``, 0 = none): a symbol whose average daily traded value over the
  ``SPREAD_LOOKBACK`` (20) rows of the data before the fill day is below ``small_cap_value`` KRW pays
  ``spread_ticks`` more ticks on each side (buys up, sells down), added to the slippage and moved by
  the same tick rules. The traded value of a bar is floor(close × volume) in whole KRW; a day without
  a bar counts 0 (nothing traded); at the data's start the average is over the rows there are (a
  fill on row 0 has none: never a small cap; no engine fills there anyway).

``fill_price_matrices(data, config)`` computes all of it at once as (T × N) int64 matrices
(``FillPlan``): what every engine reads, and the reference engine recomputes trade by trade with
``fill_price``/``is_small_cap``/``buy_cap``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from decimal import ROUND_FLOOR, Decimal
from functools import lru_cache
from typing import Any

import numpy as np

from market.krx.fees import DEFAULT_COMMISSION_RATE, SELL_TAX_SCHEDULE, parse_market
from market.krx.ticks import is_on_tick, round_to_tick, round_to_tick_array, shift_ticks, tick_sizes

# Rows before the fill day whose traded value tells a small cap (the spread's rule).
SPREAD_LOOKBACK = 20


def to_rate(value: Decimal | str | float | int | None, name: str) -> Decimal | None:
    """A rate as Decimal (floats through ``str``, like ``commission_for``); None stays None."""
    if value is None:
        return None
    rate = value if isinstance(value, Decimal) else Decimal(str(value))
    if not rate.is_finite() or rate < 0 or rate >= 1:
        raise ValueError(f"{name} rate must be between 0 and 1, got {value!r}")
    return rate


def floor_times_rate(amounts: np.ndarray, num: int, den: int) -> np.ndarray:
    """floor(amount × num / den) for int64 amounts >= 0, exactly, without overflow."""
    amounts = np.asarray(amounts, dtype=np.int64)
    if num == 0:
        return np.zeros_like(amounts)
    if den * num < 2**62:
        q, r = np.divmod(amounts, den)
        return q * num + (r * num) // den
    return np.array([a * num // den for a in amounts.tolist()], dtype=np.int64)


@dataclass(frozen=True)
class FeeModel:
    """Commission and tax rates of one run (``commission``/``tax`` None = the KRX tables)."""

    commission: Decimal | None = None
    tax: Decimal | None = None

    @classmethod
    def of(cls, commission: Any = None, tax: Any = None) -> FeeModel:
        return cls(to_rate(commission, "commission"), to_rate(tax, "tax"))

    @property
    def commission_rate(self) -> Decimal:
        return DEFAULT_COMMISSION_RATE if self.commission is None else self.commission

    def commission_on(self, amounts: np.ndarray) -> np.ndarray:
        num, den = self.commission_rate.as_integer_ratio()
        return floor_times_rate(amounts, num, den)

    def tax_table(self, dates: np.ndarray, markets: tuple[str, ...]) -> tuple[np.ndarray, int, np.ndarray]:
        """(numerators (T, M) int64, common denominator, market index per code (N,)).

        Row t, column m: the sell-tax rate for a sell executed on ``dates[t]`` in market m.
        """
        parsed = {m: parse_market(m).value for m in set(markets)}
        names = sorted(set(parsed.values()))
        position = {m: names.index(v) for m, v in parsed.items()}
        market_index = np.array([position[m] for m in markets], dtype=np.int64)
        t = len(dates)
        if self.tax is not None:
            num, den = self.tax.as_integer_ratio()
            return np.full((t, len(names)), num, dtype=np.int64), den, market_index
        nums = np.zeros((t, len(names)), dtype=np.int64)
        rows_by_market = {name: _schedule(name) for name in names}
        den = math.lcm(1, *(r.total.as_integer_ratio()[1] for rows in rows_by_market.values() for r in rows))
        if t:
            settle = settlement_dates(dates)
            for m, name in enumerate(names):
                rows = rows_by_market[name]
                starts = np.array([np.datetime64(r.effective_from, "D") for r in rows])
                pos = np.searchsorted(starts, settle, "right") - 1
                if np.any(pos < 0):
                    raise ValueError(f"no {name} sell tax rate known for {settle[pos < 0][0]}")
                scaled = [r.total.as_integer_ratio()[0] * (den // r.total.as_integer_ratio()[1]) for r in rows]
                nums[:, m] = np.array(scaled, dtype=np.int64)[pos]
        return nums, den, market_index


@lru_cache(maxsize=1)
def _sessions() -> np.ndarray:
    from market.krx.calendar import krx_calendar

    return np.asarray(krx_calendar().sessions.values, dtype="datetime64[D]")


def settlement_dates(dates: np.ndarray) -> np.ndarray:
    """Settlement date (T+2 KRX trading days) of a sell on each date; ValueError for a non-trading day."""
    sessions = _sessions()
    dates = np.asarray(dates, dtype="datetime64[D]")
    idx = np.searchsorted(sessions, dates)
    ok = (idx < len(sessions)) & (sessions[np.minimum(idx, len(sessions) - 1)] == dates)
    if not ok.all():
        bad = dates[~ok][0]
        raise ValueError(
            f"{bad} is not a KRX trading day: the sell tax needs a settlement date; pass a fixed tax rate for such data"
        )
    if np.any(idx + 2 >= len(sessions)):
        raise ValueError("dates beyond the KRX calendar's range")
    return sessions[idx + 2]


def _schedule(market: str) -> list:
    return sorted((r for r in SELL_TAX_SCHEDULE if r.market.value == market), key=lambda r: r.effective_from)


# --- fill prices ------------------------------------------------------------------------------------


def fill_prices(prices: np.ndarray, side: str, slippage_ticks: int | np.ndarray = 0) -> np.ndarray:
    """Fill prices (int64 on tick) for bar prices (float, > 0): see the module docstring.

    ``slippage_ticks``: one number, or one per price (the slippage plus a small cap's spread)."""
    p = np.asarray(prices, dtype=float)
    whole = p == np.floor(p)
    out = np.where(whole, p, 1.0).astype(np.int64)
    if not whole.all():
        out[~whole] = round_to_tick_array(np.maximum(np.floor(p[~whole] + 0.5), 1).astype(np.int64), "nearest")
    ticks = np.asarray(slippage_ticks, dtype=np.int64)
    most = int(ticks.max(initial=0))
    if most:
        moving = np.broadcast_to(ticks > 0, out.shape)
        off = moving & (out % tick_sizes(out) != 0)
        if off.any():
            out[off] = round_to_tick_array(out[off], "up" if side == "buy" else "down")
        for k in range(most):
            step = ticks > k
            if side == "buy":
                out = np.where(step, out + tick_sizes(out), out)
            else:
                out = np.where(step & (out > 1), out - tick_sizes(np.maximum(out - 1, 1)), out)
    return out


def fill_price(price: float, side: str, slippage_ticks: int = 0) -> int:
    """``fill_prices`` for one price, with the scalar rules of ``market.krx.ticks`` (reference engine)."""
    if price == math.floor(price):
        p = int(price)
    else:
        p = round_to_tick(max(int(math.floor(price + 0.5)), 1), "nearest")
    if slippage_ticks:
        if not is_on_tick(p):
            p = round_to_tick(p, "up" if side == "buy" else "down")
        if side == "buy":
            p = shift_ticks(p, slippage_ticks)
        else:
            for _ in range(slippage_ticks):
                if p == 1:
                    break
                p = shift_ticks(p, -1)
    return p


# --- participation cap, small-cap spread, the fill plan ----------------------------------------------


def cap_fraction(value: Decimal | float | str | None) -> Decimal | None:
    """The participation cap as Decimal (floats through ``str``); None stays None; 0 < cap <= 1."""
    if value is None:
        return None
    if isinstance(value, bool):
        raise ValueError(f"participation_cap must be a fraction in (0, 1] or None, got {value!r}")
    try:
        cap = value if isinstance(value, Decimal) else Decimal(str(value))
    except ArithmeticError as error:
        raise ValueError(f"participation_cap must be a fraction in (0, 1] or None, got {value!r}") from error
    if not cap.is_finite() or not 0 < cap <= 1:
        raise ValueError(f"participation_cap must be a fraction in (0, 1] or None, got {value!r}")
    return cap


def traded_values(close: np.ndarray, volume: np.ndarray) -> np.ndarray:
    """floor(close × volume) per bar, int64 whole KRW; 0 where there is no bar (close NaN)."""
    with np.errstate(invalid="ignore"):
        value = np.floor(np.asarray(close, dtype=float) * np.asarray(volume, dtype=float))
    return np.where(np.isfinite(value), value, 0.0).astype(np.int64)


def small_cap_matrix(close: np.ndarray, volume: np.ndarray, small_cap_value: int,
                     lookback: int = SPREAD_LOOKBACK) -> np.ndarray:
    """(T × N) bool: on row t, the average traded value of rows t−lookback..t−1 (fewer at the start)
    is below ``small_cap_value``. Exact: sum < small_cap_value × rows, on int64."""
    value = traded_values(close, volume)
    t = value.shape[0]
    sums = np.zeros((t + 1,) + value.shape[1:], dtype=np.int64)
    np.cumsum(value, axis=0, out=sums[1:])
    rows = np.arange(t)
    lo = np.maximum(rows - lookback, 0)
    window = sums[rows] - sums[lo]  # rows lo..t-1
    count = (rows - lo).reshape((-1,) + (1,) * (value.ndim - 1))
    return (count > 0) & (window < int(small_cap_value) * count)


def is_small_cap(close: np.ndarray, volume: np.ndarray, row: int, col: int, small_cap_value: int,
                 lookback: int = SPREAD_LOOKBACK) -> bool:
    """``small_cap_matrix`` for one (fill row, column), bar by bar with Python ints (reference engine)."""
    rows = range(max(row - lookback, 0), row)
    total = 0
    for r in rows:
        c, v = float(close[r, col]), float(volume[r, col])
        if math.isfinite(c) and math.isfinite(v):
            total += math.floor(c * v)
    return len(rows) > 0 and total < small_cap_value * len(rows)


def buy_cap(volume: float, cap: Decimal) -> int:
    """floor(cap × volume) shares, exactly (reference engine)."""
    if not math.isfinite(volume) or volume <= 0:
        return 0
    return int((Decimal(int(volume)) * cap).to_integral_value(rounding=ROUND_FLOOR))


@dataclass(frozen=True)
class FillPlan:
    """Every fill price and buy limit of one run, (T × N) like the data; 0 where there is no bar.

    ``buy``: a buy at that row's open (slippage + spread ticks up); ``sell``: a sell at that row's
    close (ticks down); ``buy_cap``: the most shares a buy on that row may take (None: no cap)."""

    buy: np.ndarray  # int64
    sell: np.ndarray  # int64
    buy_cap: np.ndarray | None  # int64


def fill_price_matrices(data: Any, config: Any) -> FillPlan:
    """The ``FillPlan`` of ``data`` (``MarketData``) under ``config`` (``BacktestConfig``), vectorised.

    Needs ``data.volume`` when the config caps participation or charges a spread."""
    cap = cap_fraction(config.participation_cap)
    spread = int(config.spread_ticks)
    volume = getattr(data, "volume", None)
    if (cap is not None or spread) and volume is None:
        raise ValueError("participation_cap and spread_ticks need the data's volume (MarketData.volume)")
    valid = data.valid
    ticks: int | np.ndarray = int(config.slippage_ticks)
    if not ticks and not spread:
        whole = _whole_price_matrices(data.open, data.close)
        if whole is not None:  # real KRX bars: the fill price is the bar's price (no masked copies)
            buy, sell = whole
            return FillPlan(buy, sell, _share_caps(cap, volume, valid, data.shape))
    if spread:
        small = small_cap_matrix(data.close, volume, int(config.small_cap_value))
        ticks = ticks + spread * small[valid].astype(np.int64)
    buy = np.zeros(data.shape, dtype=np.int64)
    sell = np.zeros(data.shape, dtype=np.int64)
    buy[valid] = fill_prices(data.open[valid], "buy", ticks)
    sell[valid] = fill_prices(data.close[valid], "sell", ticks)
    return FillPlan(buy, sell, _share_caps(cap, volume, valid, data.shape))


def _share_caps(cap: Any, volume: Any, valid: np.ndarray, shape: tuple[int, int]) -> np.ndarray | None:
    if cap is None:
        return None
    num, den = cap.as_integer_ratio()
    shares = np.where(valid, np.asarray(volume, dtype=np.int64), 0).ravel()
    return floor_times_rate(np.maximum(shares, 0), num, den).reshape(shape)


def _whole_price_matrices(open_: np.ndarray, close: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """Open and close as int64 (0 where there is no bar) when every price is a whole number, else None."""
    from strategies.backtest.kernels import whole_price_matrices

    ok, buy, sell = whole_price_matrices(np.ascontiguousarray(open_, dtype=np.float64),
                                         np.ascontiguousarray(close, dtype=np.float64))
    return (buy, sell) if ok else None
