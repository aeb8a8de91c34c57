"""The weekly backtester: pure Python/numpy/pandas (no Django), two engines that follow the same rules.

``run_backtest(strategy, data, config, engine="vectorised" | "reference")`` → ``BacktestResult``
(trades DataFrame, daily equity Series, metrics, benchmark). ``MarketData`` holds the
(dates × symbols) bars; ``BacktestConfig`` the run settings.

The weekly rules (which both engines and the live job follow exactly) are written out once, in
the docstring of ``strategies.backtest.engine``.
"""

from __future__ import annotations

from typing import Any

from strategies.backtest.data import MarketData
from strategies.backtest.engine import run_vectorised, simulate
from strategies.backtest.reference import run_reference
from strategies.backtest.result import REASONS, TRADE_COLUMNS, BacktestConfig, BacktestResult

ENGINES = ("vectorised", "reference")


def run_backtest(
    strategy: Any, data: MarketData, config: BacktestConfig | None = None, engine: str = "vectorised"
) -> BacktestResult:
    """Backtest ``strategy`` (a ``strategies.library`` Strategy instance) on ``data`` by the weekly rules."""
    if engine == "vectorised":
        return run_vectorised(strategy, data, config)
    if engine == "reference":
        return run_reference(strategy, data, config)
    raise ValueError(f"engine must be one of {ENGINES}, got {engine!r}")


__all__ = [
    "ENGINES",
    "REASONS",
    "TRADE_COLUMNS",
    "BacktestConfig",
    "BacktestResult",
    "MarketData",
    "run_backtest",
    "run_reference",
    "run_vectorised",
    "simulate",
]
