"""The reference backtest: a straightforward per-symbol implementation of the same weekly rules
as ``strategies.backtest.engine`` (see its docstring), written for clarity, not speed.

Each symbol's signals and scores come from the strategy's per-symbol pandas form
(``generate_signals``/``generate_scores`` on the symbol's own bars), its bars are looked up in a
dict by date, and the simulation loops over weeks, days and positions in plain Python, with the
scalar KRX functions (``commission_for``, ``sell_tax_for`` on the ``settlement_date`` as
``sell_tax_for_trade`` does, ``shift_ticks``); the participation cap, the small-cap test and the
point-in-time universe are looked up trade by trade (``costs.buy_cap``, ``costs.is_small_cap``), not
taken from ``costs.fill_price_matrices``. The tests
check that the vectorised engine gives exactly the same trades and the same equity.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import date
from decimal import ROUND_FLOOR, Decimal
from functools import lru_cache
from typing import Any

import numpy as np
import pandas as pd

from market.krx.calendar import settlement_date
from market.krx.fees import commission_for, sell_tax_for
from strategies.backtest.costs import buy_cap, cap_fraction, fill_price, is_small_cap
from strategies.backtest.data import MarketData
from strategies.backtest.result import REASONS, BacktestConfig, BacktestResult, build_result


@dataclass
class _Position:
    code: str
    shares: int
    entry_price: int
    entry_date: date
    buy_fee: int
    last_close: float
    carried: bool = False


def symbol_signals_and_scores(strategy: Any, data: MarketData, code: str,
                              universe: pd.DataFrame | None) -> tuple[pd.Series, pd.Series, pd.Series]:
    """(closes, signals, scores) of one symbol from the per-symbol (design) form: its own bars, its OHLC
    frame when the strategy needs it, the universe's closes (``data.frame("close")``) when it ranks across
    symbols. The one way this form is called (the reference backtest, the look-ahead check)."""
    bars = data.symbol_bars(code)
    prices = bars["close"].rename(code)
    context: dict[str, Any] = {}
    if strategy.needs_ohlc:
        context["ohlc"] = bars
    if strategy.cross_sectional:
        context["universe"] = universe
    sig, score = strategy.generate_signals_and_scores(prices, **context)
    return prices, sig, score


def per_symbol_signals(strategy: Any, data: MarketData) -> tuple[dict[str, dict], dict[str, dict]]:
    """{code: {date: signal}} (non-zero signals only) and {code: {date: score}} (buy days) from the
    per-symbol (design) form of the strategy, one symbol at a time on its own bars."""
    universe = data.frame("close") if strategy.cross_sectional else None
    signals: dict[str, dict] = {}
    scores: dict[str, dict] = {}
    for code in data.codes:
        prices, sig, score = symbol_signals_and_scores(strategy, data, code, universe)
        # Only the days with a signal are stored (a missing day reads as 0); scores of buy days.
        sig_values = sig.to_numpy()
        nonzero = np.flatnonzero(sig_values)
        on = prices.index[nonzero].date
        signals[code] = dict(zip(on, sig_values[nonzero].tolist(), strict=True))
        buys = sig_values[nonzero] == 1
        scores[code] = dict(zip(on[buys], score.to_numpy()[nonzero][buys].tolist(), strict=True))
    return signals, scores


def signals_from_matrices(data: MarketData, signals: np.ndarray, scores: np.ndarray) -> tuple[dict, dict]:
    """The per-symbol dicts of ``per_symbol_signals`` built from signal/score matrices instead."""
    days = [pd.Timestamp(d).date() for d in data.dates]
    sig_of: dict[str, dict] = {}
    score_of: dict[str, dict] = {}
    for j, code in enumerate(data.codes):
        rows = np.flatnonzero(signals[:, j])
        sig_of[code] = {days[i]: int(signals[i, j]) for i in rows}
        score_of[code] = {days[i]: float(scores[i, j]) for i in rows if signals[i, j] == 1}
    return sig_of, score_of


def run_reference(strategy: Any, data: MarketData, config: BacktestConfig | None = None) -> BacktestResult:
    config = (config or BacktestConfig()).with_exits(strategy)
    if config.end is not None:
        data = data.between(end=config.end)
    signals, scores = per_symbol_signals(strategy, data)
    return simulate_reference(data, signals, scores, config, params=strategy.params)


def simulate_reference(
    data: MarketData, signals: dict[str, dict], scores: dict[str, dict], config: BacktestConfig,
    params: dict[str, Any] | None = None,
) -> BacktestResult:
    commission_rate = config.fee_model.commission_rate
    tax_rate = config.fee_model.tax
    stop_loss, take_profit, ticks = float(config.stop_loss), float(config.take_profit), config.slippage_ticks
    days = [pd.Timestamp(d).date() for d in data.dates]
    row_of = {d: i for i, d in enumerate(days)}
    market_of = dict(zip(data.codes, data.markets, strict=True))
    column_of = {code: j for j, code in enumerate(data.codes)}
    opens, closes = data.open, data.close
    cap = cap_fraction(config.participation_cap)
    spread, small_cap_value = int(config.spread_ticks), int(config.small_cap_value)
    volume, universe = data.volume, data.universe
    if (cap is not None or spread) and volume is None:
        raise ValueError("participation_cap and spread_ticks need the data's volume (MarketData.volume)")

    def ticks_on(code: str, day: date) -> int:
        """Slippage, plus the spread when the symbol is a small cap on that fill day."""
        if spread and is_small_cap(closes, volume, row_of[day], column_of[code], small_cap_value):
            return ticks + spread
        return ticks

    def bar(code: str, day: date) -> tuple[float, float] | None:
        """The symbol's (open, close) that day, None without a bar."""
        i, j = row_of[day], column_of[code]
        close = float(closes[i, j])
        return None if math.isnan(close) else (float(opens[i, j]), close)

    # Weeks: consecutive trading days of the same ISO week.
    weeks: list[list[date]] = []
    for day in days:
        if weeks and weeks[-1][0].isocalendar()[:2] == day.isocalendar()[:2]:
            weeks[-1].append(day)
        else:
            weeks.append([day])
    start = None if config.start is None else pd.Timestamp(config.start).date()
    weeks = [w for w in weeks if start is None or w[0] >= start]

    def commission(amount: int) -> int:
        return commission_for(amount, commission_rate)

    # sell_tax_for_trade(amount, market, day) = sell_tax_for(amount, market, settlement_date(day));
    # the calendar lookup is slow (about 3 ms), so each day's settlement date is looked up once.
    settlement = lru_cache(maxsize=None)(settlement_date)

    def tax(amount: int, code: str, day: date) -> int:
        if tax_rate is None:
            return sell_tax_for(amount, market_of[code], settlement(day))
        return int((Decimal(amount) * tax_rate).to_integral_value(rounding=ROUND_FLOOR))

    cash = int(config.initial_cash)
    positions: list[_Position] = []
    trades: list[dict[str, Any]] = []
    equity: list[float] = []
    for week in weeks:
        entry_day, exit_day = week[0], week[-1]
        # Entry: candidates from the previous trading day's signals, bought at the entry day's open.
        entry_row = row_of[entry_day]
        slots = config.max_positions - len(positions)
        if entry_row > 0 and slots > 0 and cash > 0:
            previous_day = days[entry_row - 1]
            held = {p.code for p in positions}
            candidates = []
            for code in data.codes:
                if code in held or signals[code].get(previous_day, 0) != 1 or bar(code, entry_day) is None:
                    continue
                if universe is not None and not universe[entry_row - 1, column_of[code]]:
                    continue  # not in the universe as it was on the signal day
                score = scores[code].get(previous_day, math.nan)
                rank_key = -score if not math.isnan(score) else math.inf
                candidates.append((rank_key, column_of[code], code))
            candidates.sort()
            chosen = candidates[:slots]
            if chosen:
                spendable = cash if config.cash_per_week is None else min(cash, int(config.cash_per_week))
                per = spendable // len(chosen)
                for _, _, code in chosen:
                    price = fill_price(bar(code, entry_day)[0], "buy", ticks_on(code, entry_day))
                    shares = max(math.floor(per / (price * (1.0 + float(commission_rate)))), 0)
                    while shares > 0 and shares * price + commission(shares * price) > per:
                        shares -= 1
                    if cap is not None:
                        shares = min(shares, buy_cap(float(volume[entry_row, column_of[code]]), cap))
                    if shares == 0:
                        continue
                    fee = commission(shares * price)
                    cash -= shares * price + fee
                    positions.append(_Position(code, shares, price, entry_day, fee, math.nan))
        # Exits at each close of the week.
        for day in week:
            for position in list(positions):
                today = bar(position.code, day)
                if today is None:
                    continue  # suspended: sold at its next available close
                close = today[1]
                position.last_close = close
                change = close / position.entry_price - 1.0
                if change <= stop_loss:
                    reason = "stop_loss"
                elif change >= take_profit:
                    reason = "take_profit"
                elif signals[position.code].get(day, 0) == -1:
                    reason = "signal"
                elif day == exit_day or position.carried:
                    reason = "week_end"
                else:
                    continue
                price = fill_price(close, "sell", ticks_on(position.code, day))
                amount = position.shares * price
                fee = commission(amount)
                duty = tax(amount, position.code, day)
                cash += amount - fee - duty
                positions.remove(position)
                trades.append(
                    {"col": column_of[position.code], "entry_row": row_of[position.entry_date], "exit_row": row_of[day],
                     "entry_price": position.entry_price, "exit_price": price, "shares": position.shares,
                     "buy_fee": position.buy_fee, "sell_fee": fee, "tax": duty, "reason": REASONS.index(reason)}
                )
            equity.append(cash + sum(p.shares * p.last_close for p in positions))
        for position in positions:
            position.carried = True

    first = row_of[weeks[0][0]] if weeks else len(days)
    last = len(days) - 1

    def col(name: str) -> np.ndarray:
        return np.array([t[name] for t in trades], dtype=np.int64)

    return build_result(
        data, config, params or {}, "reference", first_row=first, last_row=last,
        equity=np.array(equity, dtype=float), cols=col("col"), entry_rows=col("entry_row"), exit_rows=col("exit_row"),
        entry_price=col("entry_price"), exit_price=col("exit_price"), shares=col("shares"), buy_fee=col("buy_fee"),
        sell_fee=col("sell_fee"), tax=col("tax"), reason=col("reason"),
        open_cols=np.array([column_of[p.code] for p in positions], dtype=np.int64),
        open_entry_rows=np.array([row_of[p.entry_date] for p in positions], dtype=np.int64),
        open_entry_price=np.array([p.entry_price for p in positions], dtype=np.int64),
        open_shares=np.array([p.shares for p in positions], dtype=np.int64),
        open_buy_fee=np.array([p.buy_fee for p in positions], dtype=np.int64),
        open_last_close=np.array([p.last_close for p in positions], dtype=float),
    )
