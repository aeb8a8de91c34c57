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
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from decimal import Decimal
from functools import lru_cache
from typing import Any

import numpy as np

from market.krx.fees import DEFAULT_COMMISSION_RATE, SELL_TAX_SCHEDULE, parse_market
from market.krx.ticks import is_on_tick, round_to_tick, round_to_tick_array, shift_ticks, tick_sizes


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


def fill_prices(prices: np.ndarray, side: str, slippage_ticks: int = 0) -> np.ndarray:
    """Fill prices (int64 on tick) for bar prices (float, > 0): see the module docstring."""
    p = np.asarray(prices, dtype=float)
    whole = p == np.floor(p)
    out = np.where(whole, p, 1.0).astype(np.int64)
    if not whole.all():
        out[~whole] = round_to_tick_array(np.maximum(np.floor(p[~whole] + 0.5), 1).astype(np.int64), "nearest")
    if slippage_ticks:
        off = out % tick_sizes(out) != 0
        if off.any():
            out[off] = round_to_tick_array(out[off], "up" if side == "buy" else "down")
        for _ in range(slippage_ticks):
            if side == "buy":
                out = out + tick_sizes(out)
            else:
                out = np.where(out > 1, out - tick_sizes(np.maximum(out - 1, 1)), out)
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
