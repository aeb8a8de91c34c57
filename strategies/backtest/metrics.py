"""Performance metrics of an equity curve and of a list of trades, and the equal-weight
buy-and-hold benchmark of the universe. Pure numpy/pandas.

Definitions (daily data, 252 trading days a year, risk-free rate 0):

* total_return = final / initial − 1; CAGR = (final / initial) ** (1 / years) − 1 with
  years = calendar days from the first to the last date / 365.25 (None under one day).
* daily returns: the first day against the initial capital, then close to close.
* volatility = std(daily, ddof=1) · √252; Sharpe = mean(daily) / std(daily) · √252;
  Sortino = mean(daily) / √mean(min(daily, 0)²) · √252 (None when undefined).
* max_drawdown = min(equity / running peak − 1), the initial capital counting as the first peak;
  its peak date (last high before the trough) and trough date.
* win_rate = share of trades with pnl > 0; avg_win / avg_loss = mean return (pnl / cost) of
  winning / losing trades.
* turnover = bought value / mean equity, per year; exposure = share of trading days on which a
  position was held at some time of the day (bought at or before that day's open, not sold
  before that day's close).
* benchmark: the initial capital split equally over the symbols with a bar on the first day,
  bought at that day's open (fractional, no costs) and held; a suspended symbol keeps its last
  close.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from strategies.backtest.kernels import buy_and_hold_value

TRADING_DAYS_PER_YEAR = 252


def _f(x: float) -> float | None:
    return None if x is None or not math.isfinite(x) else float(x)


def curve_metrics(dates: np.ndarray, equity: np.ndarray, initial: float) -> dict[str, Any]:
    n = len(equity)
    if n == 0:
        return {"start": None, "end": None, "days": 0, "initial": initial, "final": initial, "total_return": 0.0,
                "cagr": None, "volatility": None, "sharpe": None, "sortino": None, "max_drawdown": 0.0,
                "max_drawdown_peak": None, "max_drawdown_trough": None}
    equity = np.asarray(equity, dtype=float)
    final = float(equity[-1])
    prev = np.concatenate(([initial], equity[:-1]))
    with np.errstate(divide="ignore", invalid="ignore"):
        daily = equity / prev - 1.0
    years = (dates[-1] - dates[0]).astype("timedelta64[D]").astype(int) / 365.25
    growth = final / initial if initial else float("nan")
    cagr = growth ** (1 / years) - 1 if years > 0 and growth > 0 else None
    sd = float(np.std(daily, ddof=1)) if n > 1 else float("nan")
    mean = float(np.mean(daily))
    downside = math.sqrt(float(np.mean(np.minimum(daily, 0.0) ** 2)))
    root = math.sqrt(TRADING_DAYS_PER_YEAR)
    curve = np.concatenate(([initial], equity))
    peaks = np.maximum.accumulate(curve)
    drawdown = curve / peaks - 1.0
    trough = int(np.argmin(drawdown))
    peak = int(np.flatnonzero(curve[: trough + 1] == peaks[trough])[-1]) if trough else 0
    day = [str(d) for d in dates]
    return {
        "start": day[0],
        "end": day[-1],
        "days": n,
        "initial": float(initial),
        "final": final,
        "total_return": _f(growth - 1),
        "cagr": _f(cagr) if cagr is not None else None,
        "volatility": _f(sd * root),
        "sharpe": _f(mean / sd * root) if sd > 0 else None,
        "sortino": _f(mean / downside * root) if downside > 0 else None,
        "max_drawdown": _f(float(drawdown[trough])),
        "max_drawdown_peak": day[max(peak - 1, 0)] if drawdown[trough] < 0 else None,
        "max_drawdown_trough": day[trough - 1] if drawdown[trough] < 0 else None,
    }


def trade_metrics(trades: pd.DataFrame, equity: np.ndarray, dates: np.ndarray, held_days: np.ndarray) -> dict[str, Any]:
    n = len(trades)
    pnl = trades["pnl"].to_numpy(dtype=float) if n else np.zeros(0)
    ret = trades["return"].to_numpy(dtype=float) if n else np.zeros(0)
    wins, losses = ret[pnl > 0], ret[pnl <= 0]
    years = (dates[-1] - dates[0]).astype("timedelta64[D]").astype(int) / 365.25 if len(dates) else 0
    bought = float((trades["entry_price"] * trades["shares"]).sum()) if n else 0.0
    mean_equity = float(np.mean(equity)) if len(equity) else 0.0
    return {
        "n_trades": n,
        "win_rate": _f(len(wins) / n) if n else None,
        "avg_win": _f(float(wins.mean())) if len(wins) else None,
        "avg_loss": _f(float(losses.mean())) if len(losses) else None,
        "total_pnl": float(pnl.sum()),
        "fees": int(trades["fees"].sum()) if n else 0,
        "tax": int(trades["tax"].sum()) if n else 0,
        "bought_value": bought,
        "turnover": _f(bought / mean_equity / years) if years > 0 and mean_equity > 0 else None,
        "exposure": _f(float(held_days.mean())) if len(held_days) else None,
        "reasons": {str(k): int(v) for k, v in trades["reason"].value_counts().sort_index().items()} if n else {},
    }


def held_mask(n_rows: int, entry_rows: np.ndarray, exit_rows: np.ndarray) -> np.ndarray:
    """Days (rows) on which at least one position was held: entry_row <= row <= exit_row."""
    delta = np.zeros(n_rows + 1, dtype=np.int64)
    np.add.at(delta, np.asarray(entry_rows, dtype=np.int64), 1)
    np.add.at(delta, np.asarray(exit_rows, dtype=np.int64) + 1, -1)
    return np.cumsum(delta[:-1]) > 0


def benchmark_curve(
    open_: np.ndarray, close: np.ndarray, first_row: int, last_row: int, initial: float,
    valid: np.ndarray | None = None,
) -> np.ndarray:
    """Equal-weight buy-and-hold of the universe from ``first_row``'s open to ``last_row``'s close
    (a symbol without a bar that day counts at its last close; compiled, one pass)."""
    if last_row < first_row:
        return np.zeros(0)
    valid = np.isfinite(close) if valid is None else valid
    return buy_and_hold_value(open_, close, valid, first_row, last_row, float(initial))
