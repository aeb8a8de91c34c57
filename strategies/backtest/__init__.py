"""The weekly backtester: pure Python/numpy/pandas (no Django), two engines that follow the same rules.

``run_backtest(strategy, data, config, engine="vectorised" | "reference")`` → ``BacktestResult``
(trades DataFrame, daily equity Series, metrics, benchmark). ``MarketData`` holds the
(dates × symbols) bars; ``BacktestConfig`` the run settings.

Weekly rules (the vectorised engine, the reference engine and the live job follow them exactly):

- Week = calendar week on the KRX calendar (the trading days present in the data index, grouped
  by ISO week); entry day = its first trading day, exit day = its last. A Monday holiday moves the
  entry to Tuesday, a Friday holiday the exit to Thursday; a one-day week enters and exits that
  day.
- Buy candidates: signal +1 on the close of the trading day BEFORE the entry day (the previous
  row of the data index; no look-ahead), that have a bar on the entry day and are not already
  held; ranked by the strategy's score (higher first; mean reversion: z ascending), ties by column
  order (codes ascending); at most max_positions minus the positions still held (carried over, see
  below). Equal split of the available cash: cash_i = cash // k for the k chosen;
  shares = floor(cash_i / (open × (1 + commission))) in float64, lowered while shares × price +
  commission exceeds cash_i; a candidate with 0 shares is not bought. Bought at the entry day's
  open (plus the optional slippage in ticks; prices on tick).
- On each trading day's close from the entry day to the exit day, for each held position with a
  bar that day: sell at that close when close/entry − 1 <= stop_loss, else when >= take_profit,
  else when the day's signal is −1 (reasons stop_loss, take_profit, signal). At the exit day's
  close everything left is sold (reason week_end, unless one of the three applies). A position
  with no bar that day (suspension, NaN) is sold at its next available close, even in a later
  week (reason: the first of stop_loss/take_profit/signal that applies at that close, else
  week_end); until then it is valued at its last close. A position that never trades again stays
  open (listed in open_positions, valued at its last close).
- Commission on both sides, floor(amount × rate) like market.krx.fees.commission_for
  (DEFAULT_COMMISSION_RATE unless overridden), and securities-transaction tax on sells by market
  and date like sell_tax_for_trade (rate in force on the T+2 settlement date), unless a fixed tax
  rate is given for the run; integer KRW cash and integer shares. Entry price = the fill price;
  exit price = the close's fill price (minus the slippage ticks).
- Output: trades (code, entry_date, entry_price, exit_date, exit_price, shares, fees = buy + sell
  commission, tax, reason ∈ stop_loss/take_profit/signal/week_end, pnl, return), daily equity at
  each close (cash + shares × last close) from the first traded week, and metrics (total return,
  CAGR, annualised volatility, Sharpe, Sortino, max drawdown with its peak/trough dates, win rate,
  average win/loss, turnover, exposure), and the same for an equal-weight buy-and-hold benchmark
  of the universe.
- Period: trading starts with the first week whose entry day is on or after ``start`` (earlier
  bars only warm the signals up; the data's first day has no day before it, so no buy then) and
  stops at ``end`` (a week cut by ``end`` exits on its last day kept).
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
