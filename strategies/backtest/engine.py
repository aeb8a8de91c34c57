"""The vectorised weekly backtester over (dates × symbols) matrices (numpy; one Python step per
week, each vectorised over symbols and over the days of the week). Pure Python, no Django.

Weekly rules (the vectorised engine, the reference engine and the live job follow them exactly):

- Week = calendar week on the KRX calendar (the trading days present in the data index, grouped
  by ISO week); entry day = its first trading day, exit day = its last. A Monday holiday moves the
  entry to Tuesday, a Friday holiday the exit to Thursday; a one-day week enters and exits that
  day.
- Buy candidates: signal +1 on the close of the trading day BEFORE the entry day (the previous
  row of the data index; no look-ahead), that have a bar on the entry day, are not already held
  and, when the data has a point-in-time universe (``MarketData.universe``), are in it on that
  signal day (``universe.top_n_mask``: delisted symbols count on the days they traded); ranked by
  the strategy's score (higher first; mean reversion: z ascending), ties by column
  order (codes ascending); at most max_positions minus the positions still held (carried over, see
  below). Equal split of the available cash, capped by the config's cash per week when one is set
  (the live config's ``cash_per_week``): cash_i = min(cash, cash_per_week) // k for the k chosen;
  shares = floor(cash_i / (price × (1 + commission))) in float64, lowered while shares × price +
  commission exceeds cash_i, then at most floor(participation_cap × the entry day's volume) when
  the config caps participation (the cash a cap leaves unspent stays cash; it is not shared out
  among the others); a candidate with 0 shares is not bought. Bought at the entry day's open
  (plus the optional slippage in ticks, plus ``spread_ticks`` more for a small cap; prices on tick:
  see ``strategies.backtest.costs``, whose ``fill_price_matrices`` gives every fill price).
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
  exit price = the close's fill price (minus the slippage ticks, and minus the spread ticks for a
  small cap: average traded value over the 20 rows before the sell day below ``small_cap_value``).
  Sells are never capped by volume: a position is always sold whole.
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

import numpy as np

from strategies.backtest.costs import fill_price_matrices, floor_times_rate
from strategies.backtest.data import MarketData
from strategies.backtest.kernels import weekly_loop
from strategies.backtest.result import BacktestConfig, BacktestResult, build_result, trading_rows, week_starts

STOP_LOSS, TAKE_PROFIT, SIGNAL, WEEK_END = range(4)
_EMPTY_I = np.zeros(0, dtype=np.int64)
_SAFE = 2**62  # integer products below this cannot overflow int64
# Stand-ins the compiled loop never reads (no cap, no universe mask) but numba needs typed.
_NO_CAP = np.zeros((1, 1), dtype=np.int64)
_NO_UNIVERSE = np.ones((1, 1), dtype=bool)


def run_vectorised(strategy: Any, data: MarketData, config: BacktestConfig | None = None) -> BacktestResult:
    """Signals + scores of ``strategy`` on the whole matrix, then ``simulate``."""
    config = (config or BacktestConfig()).with_exits(strategy)
    _, last = trading_rows(data.dates, config)
    if last < len(data.dates) - 1:
        data = data.between(end=data.dates[last])
    extra = {"open": data.open, "high": data.high, "low": data.low} if strategy.needs_ohlc else {}
    signals, scores = strategy.signals_and_scores(data.close, **extra)
    return simulate(data, signals, scores, config, params=strategy.params)


def simulate(
    data: MarketData, signals: np.ndarray, scores: np.ndarray, config: BacktestConfig,
    params: dict[str, Any] | None = None,
) -> BacktestResult:
    """The weekly rules on precomputed signal (int, dates × symbols) and score matrices.

    ``config.stop_loss``/``take_profit`` must be set (``run_vectorised`` takes them from the strategy).
    """
    if config.stop_loss is None or config.take_profit is None:
        raise ValueError("config.stop_loss and config.take_profit must be set")
    signals = np.asarray(signals)
    scores = np.asarray(scores, dtype=float)
    close, valid = data.close, data.valid
    t, n = close.shape
    if signals.shape != (t, n) or scores.shape != (t, n):
        raise ValueError(f"signals and scores must have the data's shape {(t, n)}")
    first, last = trading_rows(data.dates, config)
    fees = config.fee_model
    c_num, c_den = fees.commission_rate.as_integer_ratio()
    c_float = float(fees.commission_rate)
    sl, tp = float(config.stop_loss), float(config.take_profit)
    plan = fill_price_matrices(data, config)
    buy_px, sell_px, buy_cap = plan.buy, plan.sell, plan.buy_cap
    universe = data.universe
    max_pos = config.max_positions
    # Sell-tax rate per (traded row, market).
    tax_num, tax_den, mkt = fees.tax_table(data.dates[first : last + 1], data.markets)

    starts = week_starts(data.dates[: last + 1])
    starts = starts[starts >= first]
    ends = np.concatenate((starts[1:] - 1, [last])) if len(starts) else _EMPTY_I
    cap = None if config.cash_per_week is None else int(config.cash_per_week)
    if c_num * c_den < _SAFE and int(tax_num.max(initial=0)) * tax_den < _SAFE:
        compiled = weekly_loop(
            close, valid, signals, scores, buy_px, sell_px,
            _NO_CAP if buy_cap is None else buy_cap, buy_cap is not None,
            _NO_UNIVERSE if universe is None else universe, universe is not None,
            starts, ends, tax_num, tax_den, mkt,
            first, c_num, c_den, c_float, sl, tp, max_pos, int(config.initial_cash), last, -1 if cap is None else cap,
        )
        if compiled[0]:  # else an amount near int64's range: the numpy loop below handles it
            _, equity, trades, n_trades, held_now, _ = compiled
            trades = trades[:n_trades]
            return build_result(
                data, config, params or {}, "vectorised", first_row=first, last_row=last, equity=equity,
                cols=trades[:, 0], entry_rows=trades[:, 1], exit_rows=trades[:, 2], entry_price=trades[:, 3],
                exit_price=trades[:, 4], shares=trades[:, 5], buy_fee=trades[:, 6], sell_fee=trades[:, 7],
                tax=trades[:, 8], reason=trades[:, 9],
                open_cols=held_now[:, 0].astype(np.int64), open_entry_rows=held_now[:, 1].astype(np.int64),
                open_entry_price=held_now[:, 2].astype(np.int64), open_shares=held_now[:, 3].astype(np.int64),
                open_buy_fee=held_now[:, 4].astype(np.int64), open_last_close=held_now[:, 5],
            )

    # Buy candidates of every week at once: signal +1 the day before the entry day, a bar on the
    # entry day; sorted by week, then score (higher first, NaN last), then column.
    buy_weeks = np.flatnonzero(starts > 0)
    eligible = (signals[starts[buy_weeks] - 1] == 1) & valid[starts[buy_weeks]]
    if universe is not None:
        eligible &= universe[starts[buy_weeks] - 1]
    wk, cand_cols = np.nonzero(eligible)
    key = scores[starts[buy_weeks][wk] - 1, cand_cols]
    key = np.where(np.isnan(key), -np.inf, key)
    order = np.lexsort((cand_cols, -key, wk))
    cand_cols = cand_cols[order]
    cand_bounds = np.zeros(len(starts) + 1, dtype=np.int64)
    cand_bounds[buy_weeks + 1] = np.bincount(wk, minlength=len(buy_weeks))
    cand_bounds = np.cumsum(cand_bounds)

    cash = int(config.initial_cash)
    equity = np.empty(max(last - first + 1, 0))
    held = np.zeros(n, dtype=bool)
    # Held positions (parallel arrays).
    p_col = _EMPTY_I
    p_shares = _EMPTY_I
    p_price = _EMPTY_I
    p_row = _EMPTY_I
    p_fee = _EMPTY_I
    p_last = np.zeros(0)
    p_carried = np.zeros(0, dtype=bool)
    out: dict[str, list[np.ndarray]] = {k: [] for k in ("col", "entry_row", "exit_row", "entry_price", "exit_price",
                                                         "shares", "buy_fee", "sell_fee", "tax", "reason")}
    for w, (e, x) in enumerate(zip(starts.tolist(), ends.tolist(), strict=True)):
        # --- entry at the open of the week's first trading day -------------------------------------
        slots = max_pos - p_col.size
        b0, b1 = cand_bounds[w], cand_bounds[w + 1]
        if b1 > b0 and slots > 0 and cash > 0:
            cand = cand_cols[b0:b1]
            if p_col.size:
                cand = cand[~held[cand]]
            chosen = cand[:slots]
            if chosen.size:
                per = (cash if cap is None else min(cash, cap)) // chosen.size
                price = buy_px[e, chosen]
                shares = np.maximum(np.floor(per / (price * (1.0 + c_float))), 0).astype(np.int64)
                amount = shares * price
                fee = floor_times_rate(amount, c_num, c_den)
                over = amount + fee > per
                while over.any():  # float rounding: one share less
                    shares = np.where(over, shares - 1, shares)
                    amount = shares * price
                    fee = floor_times_rate(amount, c_num, c_den)
                    over = (amount + fee > per) & (shares > 0)
                if buy_cap is not None:  # participation cap: fewer shares, less cost
                    capped = shares > buy_cap[e, chosen]
                    if capped.any():
                        shares = np.where(capped, np.maximum(buy_cap[e, chosen], 0), shares)
                        amount = shares * price
                        fee = floor_times_rate(amount, c_num, c_den)
                if not shares.all():
                    k = shares > 0
                    chosen, price, shares, amount, fee = chosen[k], price[k], shares[k], amount[k], fee[k]
                if chosen.size:
                    cash -= int(amount.sum() + fee.sum())
                    held[chosen] = True
                    p_col = np.concatenate((p_col, chosen))
                    p_shares = np.concatenate((p_shares, shares))
                    p_price = np.concatenate((p_price, price))
                    p_row = np.concatenate((p_row, np.full(chosen.size, e, dtype=np.int64)))
                    p_fee = np.concatenate((p_fee, fee))
                    p_last = np.concatenate((p_last, np.full(chosen.size, np.nan)))
                    p_carried = np.concatenate((p_carried, np.zeros(chosen.size, dtype=bool)))
        if p_col.size == 0:
            equity[e - first : x - first + 1] = cash
            continue
        # --- exits at the closes e..x, all positions and days at once ------------------------------
        length = x - e + 1
        c = close[e : x + 1, p_col]  # (days, positions)
        has_bar = valid[e : x + 1, p_col]
        all_bars = has_bar.all()
        change = c / p_price
        change -= 1.0
        hit_sl = change <= sl
        hit_tp = change >= tp
        hit_sig = signals[e : x + 1, p_col] == -1
        sell = hit_sl | hit_tp | hit_sig
        sell[-1] = True
        if p_carried.any():
            sell |= p_carried
        if not all_bars:
            sell &= has_bar
            hit_sig &= has_bar
            # Value of what is held after each close: its last known close.
            filled = c.copy()
            prev = p_last
            for i in range(length):
                filled[i] = np.where(has_bar[i], c[i], prev)
                prev = filled[i]
        else:
            filled = c
        day = sell.argmax(axis=0)  # first day with a sell
        sold = sell[day, np.arange(day.size)]
        if sold.all():
            s = np.arange(day.size)
            still_held = np.arange(length)[:, None] < day
        else:
            s = np.flatnonzero(sold)
            still_held = ~(sold & (np.arange(length)[:, None] >= day))
        value = (still_held * filled) @ p_shares if all_bars else np.where(still_held, filled, 0.0) @ p_shares
        day_cash = np.zeros(length, dtype=np.int64)
        if s.size:
            d = day[s]
            reason = np.where(hit_sl[d, s], STOP_LOSS, np.where(hit_tp[d, s], TAKE_PROFIT,
                              np.where(hit_sig[d, s], SIGNAL, WEEK_END)))
            exit_price = sell_px[e + d, p_col[s]]
            amount = p_shares[s] * exit_price
            sell_fee = floor_times_rate(amount, c_num, c_den)
            tax = _tax(amount, tax_num[e + d - first, mkt[p_col[s]]], tax_den)
            np.add.at(day_cash, d, amount - sell_fee - tax)
            for name, arr in (("col", p_col[s]), ("entry_row", p_row[s]), ("exit_row", e + d),
                              ("entry_price", p_price[s]), ("exit_price", exit_price), ("shares", p_shares[s]),
                              ("buy_fee", p_fee[s]), ("sell_fee", sell_fee), ("tax", tax), ("reason", reason)):
                out[name].append(arr)
            held[p_col[s]] = False
        cash_path = np.cumsum(day_cash)
        cash_path += cash
        equity[e - first : x - first + 1] = cash_path + value
        cash = int(cash_path[-1])
        if sold.all():
            p_col = p_shares = p_price = p_row = p_fee = _EMPTY_I
            p_last = np.zeros(0)
            p_carried = np.zeros(0, dtype=bool)
            continue
        keep = ~sold
        p_last = filled[-1][keep]
        p_col, p_shares, p_price, p_row, p_fee = p_col[keep], p_shares[keep], p_price[keep], p_row[keep], p_fee[keep]
        p_carried = np.ones(p_col.size, dtype=bool)

    def cat(name: str, dtype: Any = np.int64) -> np.ndarray:
        return np.concatenate(out[name]).astype(dtype) if out[name] else np.zeros(0, dtype=dtype)

    return build_result(
        data, config, params or {}, "vectorised", first_row=first, last_row=last, equity=equity,
        cols=cat("col"), entry_rows=cat("entry_row"), exit_rows=cat("exit_row"), entry_price=cat("entry_price"),
        exit_price=cat("exit_price"), shares=cat("shares"), buy_fee=cat("buy_fee"), sell_fee=cat("sell_fee"),
        tax=cat("tax"), reason=cat("reason"),
        open_cols=p_col, open_entry_rows=p_row, open_entry_price=p_price, open_shares=p_shares, open_buy_fee=p_fee,
        open_last_close=p_last,
    )


def _tax(amount: np.ndarray, num: np.ndarray, den: int) -> np.ndarray:
    """floor(amount × num / den) element by element (num varies by market and date)."""
    q, r = np.divmod(amount, den)
    if int(num.max(initial=0)) * den < 2**62:
        return q * num + (r * num) // den
    return np.array([a * m // den for a, m in zip(amount.tolist(), num.tolist(), strict=True)], dtype=np.int64)
