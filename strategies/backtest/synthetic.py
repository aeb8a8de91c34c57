"""Synthetic markets for tests and the benchmark. Pure numpy (no Django).

* ``random_walk_market``: a fast, fully vectorised random walk on the KRX tick grid for large
  universes (2,500 symbols × 5,000 days in about a second): log-normal daily moves with a common
  market factor and rare overreactions that fade (so mean reversion has something to
  trade), opens/highs/lows on tick around the close, a share of symbols listed mid-period or
  delisted early, and random suspensions (NaN bars). No ±30 % clamp (daily moves are capped at
  ±25 % before rounding instead).
* ``demo_market``: ``market.demo``'s generator (the demo site's market, at most 1,009 symbols,
  one Python step per day) as ``MarketData``.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date

import numpy as np

from market.demo import generate_bars, generate_universe
from market.krx.ticks import round_to_tick_array
from strategies.backtest.data import MarketData


def krx_days(n_days: int, end: date = date(2026, 10, 30)) -> list[date]:
    """The last ``n_days`` KRX trading days up to ``end`` (needs the KRX calendar)."""
    from market.krx.calendar import trading_days

    days = trading_days(date(2000, 1, 4), end)
    if n_days > len(days):
        raise ValueError(f"only {len(days)} KRX trading days up to {end}")
    return days[-n_days:]


def random_walk_market(
    n_symbols: int, days: Sequence[date] | np.ndarray, seed: int = 7, *,
    listed_late: float = 0.15, delisted: float = 0.03, suspended: float = 0.05,
) -> MarketData:
    dates = np.asarray(days, dtype="datetime64[D]")
    t, n = len(dates), n_symbols
    rng = np.random.default_rng(seed)
    vol = rng.uniform(0.012, 0.035, n)
    beta = rng.uniform(0.5, 1.5, n)
    market = rng.standard_normal(t) * 0.01
    moves = beta * market[:, None] + vol * rng.standard_normal((t, n))
    # Overreactions: a 3-8 % shock that is undone over the next days (AR(1) in log price).
    shock = np.where(rng.random((t, n)) < 0.002, rng.choice([-1.0, 1.0], (t, n)) * rng.uniform(0.03, 0.08, (t, n)), 0.0)
    np.clip(moves, -0.25, 0.25, out=moves)
    log_price = np.cumsum(moves, axis=0)
    over = np.zeros(n)
    overreaction = np.empty((t, n))
    for i in range(t):  # vectorised over symbols
        over = 0.7 * over + shock[i]
        overreaction[i] = over
    start_price = np.exp(rng.uniform(np.log(1_000), np.log(500_000), n))
    raw_close = start_price * np.exp(log_price + overreaction)
    close = round_to_tick_array(np.maximum(raw_close, 1.0), "nearest").astype(float)
    prev = np.vstack([close[:1], close[:-1]])
    raw_open = prev * np.exp(0.35 * np.log(close / prev) + 0.3 * vol * rng.standard_normal((t, n)))
    open_ = round_to_tick_array(np.maximum(raw_open, 1.0), "nearest").astype(float)
    top = np.maximum(open_, close) * np.exp(0.5 * vol * np.abs(rng.standard_normal((t, n))))
    bottom = np.minimum(open_, close) * np.exp(-0.5 * vol * np.abs(rng.standard_normal((t, n))))
    high = round_to_tick_array(top, "up").astype(float)
    low = round_to_tick_array(np.maximum(bottom, 1.0), "down").astype(float)
    missing = np.zeros((t, n), dtype=bool)
    late = np.flatnonzero(rng.random(n) < listed_late)
    for j, first in zip(late, rng.integers(1, max(t - 60, 2), late.size), strict=True):
        missing[:first, j] = True
    gone = np.flatnonzero(rng.random(n) < delisted)
    for j, last in zip(gone, rng.integers(t // 2, t, gone.size), strict=True):
        missing[last:, j] = True
    halted = np.flatnonzero(rng.random(n) < suspended)
    for j in halted:
        for _ in range(int(rng.integers(1, 4))):
            begin = int(rng.integers(0, t))
            missing[begin : begin + int(rng.integers(1, 21)), j] = True
    for arr in (open_, high, low, close):
        arr[missing] = np.nan
    codes = tuple(f"{900000 + j:06d}" for j in range(n))
    markets = tuple(np.where(rng.random(n) < 0.4, "KOSDAQ", "KOSPI").tolist())
    return MarketData(dates, codes, open_, high, low, close, markets=markets)


def demo_market(n_symbols: int, days: Sequence[date], seed: int | None = None) -> MarketData:
    """``market.demo``'s synthetic bars for ``n_symbols`` (<= 1,009) on ``days`` as MarketData."""
    kwargs = {} if seed is None else {"seed": seed}
    universe = generate_universe(n_symbols, **kwargs)
    bars = generate_bars(universe, list(days), **kwargs)
    return MarketData.from_bars(bars, markets={s["code"]: s["market"] for s in universe})
