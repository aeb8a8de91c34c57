"""Compiled (numba) form of the weekly loop of ``engine.simulate`` and of the buy-and-hold curve.

Pure numpy + numba, no Django. The numpy loop in ``engine.simulate`` spends most of its time in
numpy's per-call overhead (a dozen small array operations per week, a thousand weeks); compiled,
the same steps take microseconds per week. The rules and the integer arithmetic are the ones of
``engine.simulate`` (read its docstring); the tests hold both, and the reference engine, to the
same trades.

The kernel reads its fill prices and buy limits from the run's ``costs.FillPlan`` (int64 matrices
of the buy price at each open and the sell price at each close, slippage and small-cap spread
included, and the participation cap's most shares), so it runs for any slippage, spread, cap and
adjusted (fractional) prices alike. It stops and answers ``ok = False`` only when an amount could
overflow int64 arithmetic (prices or positions near 2**62 / 4 won); the caller then runs the numpy
loop, which uses Python integers where it must.
"""

from __future__ import annotations

import numpy as np
from numba import get_num_threads, njit, prange

STOP_LOSS, TAKE_PROFIT, SIGNAL, WEEK_END = range(4)
_SAFE = 2**62
_HALF = 2**31


@njit(cache=True, inline="always")
def floor_rate(amount, num, den):
    """floor(amount × num / den) exactly for amount, num >= 0 (``costs.floor_times_rate``): one
    division while the product fits in int64 (every realistic order: amounts below 2**31 KRW, rate
    numerators below 2**31), else split so nothing overflows. Shared with the sweep's kernel."""
    if amount < _HALF and num < _HALF:
        return amount * num // den
    return (amount // den) * num + ((amount % den) * num) // den


@njit(cache=True, error_model="numpy", nogil=True)
def weekly_loop(  # noqa: PLR0913, PLR0915 - one flat kernel keeps numba fast
    close, valid, signals, scores, buy_px, sell_px, buy_cap, use_cap, universe, use_universe,
    starts, ends, tax_num, tax_den, market_of,
    first, c_num, c_den, c_float, stop_loss, take_profit, max_positions, initial_cash, last, cash_per_week,
):
    """The weekly rules over all weeks (``cash_per_week`` < 0: no cap on a week's spending).

    ``buy_px``/``sell_px``/``buy_cap``: the ``FillPlan``'s matrices (``buy_cap`` read only with
    ``use_cap``); ``universe``: the buy-candidate mask, read only with ``use_universe`` (pass any 2-D
    arrays of the right dtype otherwise). Returns (ok, equity, trades (10 int64 columns: col,
    entry_row, exit_row, entry_price, exit_price, shares, buy_fee, sell_fee, tax, reason), number of
    trades, open positions (6 columns: col, entry_row, entry_price, shares, buy_fee, last close),
    number of open positions)."""
    n_weeks = starts.shape[0]
    equity = np.empty(max(last - first + 1, 0))
    capacity = 16 + n_weeks * max_positions
    trades = np.zeros((capacity, 10), dtype=np.int64)
    n_trades = 0
    # Held positions, in the order they were bought (as the numpy loop keeps them).
    p_col = np.zeros(max_positions, dtype=np.int64)
    p_row = np.zeros(max_positions, dtype=np.int64)
    p_price = np.zeros(max_positions, dtype=np.int64)
    p_shares = np.zeros(max_positions, dtype=np.int64)
    p_fee = np.zeros(max_positions, dtype=np.int64)
    p_last = np.zeros(max_positions)
    p_carried = np.zeros(max_positions, dtype=np.bool_)
    held = np.zeros(close.shape[1], dtype=np.bool_)
    n_pos = 0
    cash = initial_cash
    chosen = np.zeros(max_positions, dtype=np.int64)
    top_col = np.zeros(max_positions, dtype=np.int64)
    top_key = np.zeros(max_positions)
    sell_day = np.zeros(max_positions, dtype=np.int64)
    for w in range(n_weeks):
        e = starts[w]
        x = ends[w]
        # --- entry at the open of the week's first trading day --------------------------------------
        slots = max_positions - n_pos
        if e > 0 and slots > 0 and cash > 0:
            # The best max_positions candidates (signal +1 the day before, a bar today), by score
            # (higher first, NaN last), ties by column: held ones are skipped below, and at most
            # max_positions − slots of them are held, so no candidate further down is ever needed.
            n_top = 0
            for col in range(close.shape[1]):
                if signals[e - 1, col] != 1 or not valid[e, col]:
                    continue
                if use_universe and not universe[e - 1, col]:
                    continue
                key = scores[e - 1, col]
                if key != key:
                    key = -np.inf
                if n_top == max_positions and key <= top_key[n_top - 1]:
                    continue
                q = n_top if n_top < max_positions else max_positions - 1
                while q > 0 and top_key[q - 1] < key:  # equal keys keep column order
                    top_key[q] = top_key[q - 1]
                    top_col[q] = top_col[q - 1]
                    q -= 1
                top_key[q] = key
                top_col[q] = col
                if n_top < max_positions:
                    n_top += 1
            k = 0
            for b in range(n_top):
                if k == slots:
                    break
                col = top_col[b]
                if not held[col]:
                    chosen[k] = col
                    k += 1
            if k > 0:
                per = (cash if cash_per_week < 0 else min(cash, cash_per_week)) // k
                for q in range(k):
                    col = chosen[q]
                    price = buy_px[e, col]
                    if price < 1 or price > _SAFE // 4:
                        return False, equity, trades, 0, np.zeros((0, 6)), 0
                    shares = np.int64(max(np.floor(per / (price * (1.0 + c_float))), 0.0))
                    amount = shares * price
                    fee = floor_rate(amount, c_num, c_den)
                    while shares > 0 and amount + fee > per:  # float rounding: one share less
                        shares -= 1
                        amount = shares * price
                        fee = floor_rate(amount, c_num, c_den)
                    if use_cap and shares > buy_cap[e, col]:  # participation cap: fewer shares, less cost
                        shares = max(buy_cap[e, col], 0)
                        amount = shares * price
                        fee = floor_rate(amount, c_num, c_den)
                    if shares == 0:
                        continue
                    cash -= amount + fee
                    held[col] = True
                    p_col[n_pos] = col
                    p_row[n_pos] = e
                    p_price[n_pos] = price
                    p_shares[n_pos] = shares
                    p_fee[n_pos] = fee
                    p_last[n_pos] = np.nan
                    p_carried[n_pos] = False
                    n_pos += 1
        if n_pos == 0:
            for r in range(e, x + 1):
                equity[r - first] = cash
            continue
        # --- exits at the closes e..x: each position's first day with a reason to sell --------------
        length = x - e + 1
        for q in range(n_pos):
            col = p_col[q]
            sell_day[q] = -1
            for i in range(length):
                r = e + i
                if not valid[r, col]:
                    continue
                if p_carried[q] or i == length - 1:
                    sell_day[q] = i
                    break
                change = close[r, col] / p_price[q] - 1.0
                if change <= stop_loss or change >= take_profit or signals[r, col] == -1:
                    sell_day[q] = i
                    break
        day_cash = np.zeros(length, dtype=np.int64)
        for i in range(length):  # value of what is held after each close (last known close)
            value = 0.0
            for q in range(n_pos):
                if sell_day[q] >= 0 and i >= sell_day[q]:
                    continue
                col = p_col[q]
                if valid[e + i, col]:
                    p_last[q] = close[e + i, col]
                value += p_last[q] * p_shares[q]
            equity[e + i - first] = value
        keep = 0
        for q in range(n_pos):
            d = sell_day[q]
            if d < 0:  # no bar all week: carried into the next week, sold at its next close
                p_col[keep] = p_col[q]
                p_row[keep] = p_row[q]
                p_price[keep] = p_price[q]
                p_shares[keep] = p_shares[q]
                p_fee[keep] = p_fee[q]
                p_last[keep] = p_last[q]
                p_carried[keep] = True
                keep += 1
                continue
            col = p_col[q]
            r = e + d
            c = close[r, col]
            exit_price = sell_px[r, col]
            if exit_price < 1 or float(exit_price) * p_shares[q] * 4.0 > _SAFE:
                return False, equity, trades, 0, np.zeros((0, 6)), 0
            change = c / p_price[q] - 1.0
            if change <= stop_loss:
                reason = STOP_LOSS
            elif change >= take_profit:
                reason = TAKE_PROFIT
            elif signals[r, col] == -1:
                reason = SIGNAL
            else:
                reason = WEEK_END
            amount = p_shares[q] * exit_price
            sell_fee = floor_rate(amount, c_num, c_den)
            tax = floor_rate(amount, tax_num[r - first, market_of[col]], tax_den)
            day_cash[d] += amount - sell_fee - tax
            t = n_trades
            trades[t, 0] = col
            trades[t, 1] = p_row[q]
            trades[t, 2] = r
            trades[t, 3] = p_price[q]
            trades[t, 4] = exit_price
            trades[t, 5] = p_shares[q]
            trades[t, 6] = p_fee[q]
            trades[t, 7] = sell_fee
            trades[t, 8] = tax
            trades[t, 9] = reason
            n_trades += 1
            held[col] = False
        n_pos = keep
        for i in range(length):
            cash += day_cash[i]
            equity[e + i - first] += cash
    open_positions = np.zeros((n_pos, 6))
    for q in range(n_pos):
        open_positions[q, 0] = p_col[q]
        open_positions[q, 1] = p_row[q]
        open_positions[q, 2] = p_price[q]
        open_positions[q, 3] = p_shares[q]
        open_positions[q, 4] = p_fee[q]
        open_positions[q, 5] = p_last[q]
    return True, equity, trades, n_trades, open_positions, n_pos


def buy_and_hold_value(open_, close, valid, first_row: int, last_row: int, initial: float) -> np.ndarray:
    """``metrics.benchmark_curve`` in one pass: equal units bought at ``first_row``'s open, valued
    at each close (a symbol without a bar that day at its last close)."""
    return _buy_and_hold_value(open_, close, valid, int(first_row), int(last_row), float(initial),
                               max(get_num_threads(), 1))


@njit(parallel=True, cache=True, error_model="numpy", nogil=True)
def _buy_and_hold_value(open_, close, valid, first_row, last_row, initial, n_threads):
    n = close.shape[1]
    rows = last_row - first_row + 1
    bought = 0
    for j in range(n):
        if np.isfinite(open_[first_row, j]):
            bought += 1
    if bought == 0:
        return np.full(rows, initial)
    n_parts = max(min(n_threads, n), 1)
    partial = np.zeros((n_parts, rows))
    for part in prange(n_parts):  # a range of columns per thread, walked row by row (row-major)
        j0 = part * n // n_parts
        j1 = (part + 1) * n // n_parts
        units = np.zeros(j1 - j0)
        last_close = np.zeros(j1 - j0)
        for j in range(j0, j1):
            o = open_[first_row, j]
            if np.isfinite(o):
                units[j - j0] = (initial / bought) / o
                last_close[j - j0] = o
        for r in range(first_row, last_row + 1):
            total = 0.0
            for j in range(j0, j1):
                if units[j - j0] != 0.0:
                    if valid[r, j]:
                        last_close[j - j0] = close[r, j]
                    total += last_close[j - j0] * units[j - j0]
            partial[part, r - first_row] = total
    value = np.zeros(rows)
    for part in range(n_parts):
        value += partial[part]
    return value


@njit(parallel=True, cache=True, nogil=True)
def whole_price_matrices(open_, close):
    """(ok, open as int64, close as int64), 0 where there is no bar (NaN); ok is False as soon as a
    price is not a whole number. One pass over both matrices (``costs.fill_price_matrices``)."""
    t, n = close.shape
    buy = np.zeros((t, n), dtype=np.int64)
    sell = np.zeros((t, n), dtype=np.int64)
    bad = np.zeros(t, dtype=np.bool_)
    for i in prange(t):
        for j in range(n):
            o = open_[i, j]
            c = close[i, j]
            if o == o:
                if o != np.floor(o) or o > 4e18:
                    bad[i] = True
                else:
                    buy[i, j] = np.int64(o)
            if c == c:
                if c != np.floor(c) or c > 4e18:
                    bad[i] = True
                else:
                    sell[i, j] = np.int64(c)
    return not bad.any(), buy, sell
