"""Backtest settings and results (shared by the vectorised and the reference engine)."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import date
from decimal import Decimal
from typing import Any

import numpy as np
import pandas as pd

from strategies.backtest.costs import FeeModel, cap_fraction
from strategies.backtest.data import MarketData, to_day
from strategies.backtest.metrics import benchmark_curve, curve_metrics, held_mask, trade_metrics

REASONS = ("stop_loss", "take_profit", "signal", "week_end")
TRADE_COLUMNS = (
    "code", "market", "entry_date", "entry_price", "exit_date", "exit_price", "shares",
    "fees", "tax", "reason", "buy_fee", "sell_fee", "pnl", "return",
)


@dataclass(frozen=True)
class BacktestConfig:
    """One run's settings. ``commission``/``tax`` None = the KRX tables (``market.krx.fees``);
    a number overrides the rate for the whole run. ``stop_loss``/``take_profit`` None = the
    strategy's parameters. ``cash_per_week`` caps the cash a week's entry spends (the live
    config's cash per week): cash_i = min(cash, cash_per_week) // k; None = all available cash.
    Trading starts with the first week whose first trading day is on or after ``start``; bars
    before it only warm the signals up. Bars after ``end`` are ignored.

    ``participation_cap`` (a fraction in (0, 1], None = no cap): a buy takes at most floor(cap ×
    the entry day's volume) shares; sells are never capped. ``spread_ticks`` (0 = none): a symbol
    whose average daily traded value over the 20 rows before the fill day is below
    ``small_cap_value`` KRW pays that many more ticks on each side. Both need ``MarketData.volume``
    (rules in ``strategies.backtest.costs``)."""

    initial_cash: int = 10_000_000
    max_positions: int = 10
    commission: Decimal | float | str | None = None
    tax: Decimal | float | str | None = None
    slippage_ticks: int = 0
    start: date | None = None
    end: date | None = None
    stop_loss: float | None = None
    take_profit: float | None = None
    cash_per_week: int | None = None
    participation_cap: float | Decimal | None = None
    spread_ticks: int = 0
    small_cap_value: int = 1_000_000_000

    def __post_init__(self) -> None:
        if isinstance(self.initial_cash, bool) or not isinstance(self.initial_cash, int | np.integer) or self.initial_cash < 0:
            raise ValueError(f"initial_cash must be a non-negative int (KRW), got {self.initial_cash!r}")
        if isinstance(self.max_positions, bool) or not isinstance(self.max_positions, int) or self.max_positions < 1:
            raise ValueError(f"max_positions must be a positive int, got {self.max_positions!r}")
        if isinstance(self.slippage_ticks, bool) or not isinstance(self.slippage_ticks, int) or self.slippage_ticks < 0:
            raise ValueError(f"slippage_ticks must be a non-negative int, got {self.slippage_ticks!r}")
        if self.cash_per_week is not None and (
            isinstance(self.cash_per_week, bool) or not isinstance(self.cash_per_week, int | np.integer)
            or self.cash_per_week < 0
        ):
            raise ValueError(f"cash_per_week must be None or a non-negative int (KRW), got {self.cash_per_week!r}")
        FeeModel.of(self.commission, self.tax)  # validates the rates
        cap_fraction(self.participation_cap)  # validates the cap
        if isinstance(self.spread_ticks, bool) or not isinstance(self.spread_ticks, int | np.integer) or self.spread_ticks < 0:
            raise ValueError(f"spread_ticks must be a non-negative int, got {self.spread_ticks!r}")
        if (
            isinstance(self.small_cap_value, bool) or not isinstance(self.small_cap_value, int | np.integer)
            or self.small_cap_value < 0
        ):
            raise ValueError(f"small_cap_value must be a non-negative int (KRW), got {self.small_cap_value!r}")

    @property
    def fee_model(self) -> FeeModel:
        return FeeModel.of(self.commission, self.tax)

    def with_exits(self, strategy: Any) -> BacktestConfig:
        return replace(
            self,
            stop_loss=strategy.stop_loss if self.stop_loss is None else self.stop_loss,
            take_profit=strategy.take_profit if self.take_profit is None else self.take_profit,
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "initial_cash": int(self.initial_cash), "max_positions": self.max_positions,
            "commission": None if self.commission is None else str(self.commission),
            "tax": None if self.tax is None else str(self.tax), "slippage_ticks": self.slippage_ticks,
            "start": None if self.start is None else str(to_day(self.start)),
            "end": None if self.end is None else str(to_day(self.end)),
            "stop_loss": self.stop_loss, "take_profit": self.take_profit,
            "cash_per_week": None if self.cash_per_week is None else int(self.cash_per_week),
            "participation_cap": None if self.participation_cap is None else str(self.participation_cap),
            "spread_ticks": int(self.spread_ticks), "small_cap_value": int(self.small_cap_value),
        }


@dataclass
class BacktestResult:
    trades: pd.DataFrame  # one row per closed trade, TRADE_COLUMNS, sorted by exit/entry date and code
    equity: pd.Series  # equity at each trading day's close (KRW), date index
    metrics: dict[str, Any]
    benchmark: dict[str, Any]  # metrics of the equal-weight buy-and-hold
    benchmark_equity: pd.Series
    open_positions: pd.DataFrame  # positions never sold (no bar after their last week), valued at last close
    config: BacktestConfig
    params: dict[str, Any] = field(default_factory=dict)
    engine: str = ""

    def trade_records(self) -> list[dict[str, Any]]:
        """Trades as JSON-friendly dicts."""
        records = []
        for row in self.trades.itertuples(index=False):
            rec = dict(zip(TRADE_COLUMNS, row, strict=True))
            for key in ("entry_price", "exit_price", "shares", "fees", "tax", "buy_fee", "sell_fee", "pnl"):
                rec[key] = int(rec[key])
            rec["entry_date"], rec["exit_date"] = str(rec["entry_date"])[:10], str(rec["exit_date"])[:10]
            rec["return"] = float(rec["return"])
            records.append(rec)
        return records

    def to_dict(self) -> dict[str, Any]:
        """{"metrics", "benchmark", "trades", "equity": [[date, value]], "open_positions", "config", "params"}."""
        return {
            "metrics": self.metrics,
            "benchmark": self.benchmark,
            "trades": self.trade_records(),
            "equity": [[str(d)[:10], float(v)] for d, v in zip(self.equity.index, self.equity.to_numpy(), strict=True)],
            "benchmark_equity": [
                [str(d)[:10], float(v)] for d, v in zip(self.benchmark_equity.index, self.benchmark_equity.to_numpy(), strict=True)
            ],
            "open_positions": self.open_positions.assign(
                entry_date=self.open_positions["entry_date"].astype(str).str[:10]
            ).to_dict("records") if len(self.open_positions) else [],
            "config": self.config.as_dict(),
            "params": dict(self.params),
            "engine": self.engine,
        }


def build_result(
    data: MarketData, config: BacktestConfig, params: dict[str, Any], engine: str, *,
    first_row: int, last_row: int, equity: np.ndarray,
    cols: np.ndarray, entry_rows: np.ndarray, exit_rows: np.ndarray, entry_price: np.ndarray, exit_price: np.ndarray,
    shares: np.ndarray, buy_fee: np.ndarray, sell_fee: np.ndarray, tax: np.ndarray, reason: np.ndarray,
    open_cols: np.ndarray, open_entry_rows: np.ndarray, open_entry_price: np.ndarray, open_shares: np.ndarray,
    open_buy_fee: np.ndarray, open_last_close: np.ndarray,
) -> BacktestResult:
    """Assemble trades, equity, metrics and the benchmark from the engines' arrays."""
    index = data.index
    codes = np.array(data.codes, dtype=object)
    markets = np.array(data.markets, dtype=object)
    cost = entry_price * shares + buy_fee
    proceeds = exit_price * shares - sell_fee - tax
    order = np.lexsort((cols, entry_rows, exit_rows))
    trades = pd.DataFrame(
        {
            "code": codes[cols][order] if len(cols) else np.array([], dtype=object),
            "market": markets[cols][order] if len(cols) else np.array([], dtype=object),
            "entry_date": index[entry_rows[order]],
            "entry_price": entry_price[order],
            "exit_date": index[exit_rows[order]],
            "exit_price": exit_price[order],
            "shares": shares[order],
            "fees": (buy_fee + sell_fee)[order],
            "tax": tax[order],
            "reason": np.array(REASONS, dtype=object)[reason[order]] if len(cols) else np.array([], dtype=object),
            "buy_fee": buy_fee[order],
            "sell_fee": sell_fee[order],
            "pnl": (proceeds - cost)[order],
            "return": ((proceeds - cost) / np.where(cost > 0, cost, 1))[order],
        },
        columns=list(TRADE_COLUMNS),
    )
    open_positions = pd.DataFrame(
        {
            "code": codes[open_cols] if len(open_cols) else np.array([], dtype=object),
            "entry_date": index[open_entry_rows],
            "entry_price": open_entry_price,
            "shares": open_shares,
            "buy_fee": open_buy_fee,
            "last_close": open_last_close,
        }
    )
    dates = data.dates[first_row : last_row + 1]
    eq = pd.Series(equity, index=index[first_row : last_row + 1], name="equity")
    initial = float(config.initial_cash)
    metrics = curve_metrics(dates, equity, initial)
    held = held_mask(len(data.dates), np.concatenate([entry_rows, open_entry_rows]),
                     np.concatenate([exit_rows, np.full(len(open_cols), len(data.dates) - 1)]))
    metrics.update(trade_metrics(trades, equity, dates, held[first_row : last_row + 1]))
    bench = benchmark_curve(data.open, data.close, first_row, last_row, initial, data.valid)
    bench_series = pd.Series(bench, index=eq.index, name="benchmark")
    return BacktestResult(
        trades=trades, equity=eq, metrics=metrics, benchmark=curve_metrics(dates, bench, initial),
        benchmark_equity=bench_series, open_positions=open_positions, config=config, params=dict(params), engine=engine,
    )


def week_starts(dates: np.ndarray) -> np.ndarray:
    """Row index of the first trading day of each ISO week in ``dates`` (datetime64[D], increasing)."""
    if len(dates) == 0:
        return np.zeros(0, dtype=np.int64)
    days = dates.astype("datetime64[D]").astype(np.int64)
    monday = days - (days + 3) % 7  # 1970-01-01 was a Thursday
    return np.flatnonzero(np.concatenate(([True], monday[1:] != monday[:-1])))


def trading_rows(dates: np.ndarray, config: BacktestConfig) -> tuple[int, int]:
    """(first row traded = the entry day of the first week starting on/after ``start``, last row <= ``end``)."""
    last = len(dates) - 1 if config.end is None else int(np.searchsorted(dates, to_day(config.end), "right")) - 1
    starts = week_starts(dates[: last + 1])
    if config.start is not None:
        starts = starts[dates[starts] >= to_day(config.start)]
    first = int(starts[0]) if len(starts) else last + 1
    return first, last
