"""Compiled (numba) kernels of the shared-pass sweep (``strategies.research.sweep``).

Pure numpy + numba, no Django. Two steps per group of parameter sets that share their signals:

* ``rank_candidates``: for every week, the best ``k`` buy candidates (by the ranking key on the day
  before the entry day, higher first, ties by column; a bar on the entry day; in the universe) —
  once for the whole group.
* ``sweep_group``: the weekly loop of ``strategies.backtest.kernels.weekly_loop`` for every set of
  the group at once, one set per thread (``prange``). A set differs from its neighbours only in
  the scalars it compares against: a candidate is bought when its key is above the set's buy
  threshold (so the candidates of a set are a prefix of the group's ranking), a position is sold on
  the exit signal when −exit_value is above the set's exit threshold, and on its stop-loss /
  take-profit. Fill prices come precomputed (``costs.fill_price_matrices``), so slippage and spread
  cost nothing here.

The arithmetic (integer KRW, commission and tax as exact fractions, equity at each close) is the
one of ``weekly_loop``; the tests hold every set's equity and trades statistics equal to
``run_backtest`` of that set.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from strategies.backtest.kernels import floor_rate

STOP_LOSS, TAKE_PROFIT, SIGNAL, WEEK_END = range(4)
_SAFE = 2**62
# Columns of the per-set statistics returned by ``sweep_group``.
STAT_NAMES = (
    "n_trades", "n_wins", "sum_win_return", "n_losses", "sum_loss_return", "total_pnl", "fees", "tax",
    "bought_value", "held_days", "stop_loss", "take_profit", "signal", "week_end",
)
N_STATS = len(STAT_NAMES)


@njit(parallel=True, cache=True, error_model="numpy", nogil=True)
def rank_candidates(key, valid, universe, has_universe, starts, k):
    """(columns (weeks × k), keys (weeks × k), count per week): the best ``k`` columns by ``key`` on
    the row before each week's entry row, among those with a bar on the entry row (and in the
    universe on the signal row); a NaN key is never a candidate."""
    n_weeks = starts.shape[0]
    n = key.shape[1]
    cand_col = np.full((n_weeks, k), -1, dtype=np.int64)
    cand_key = np.full((n_weeks, k), np.nan)
    n_cand = np.zeros(n_weeks, dtype=np.int64)
    for w in prange(n_weeks):
        e = starts[w]
        if e == 0:
            continue
        top_col = cand_col[w]
        top_key = cand_key[w]
        n_top = 0
        for col in range(n):
            if not valid[e, col]:
                continue
            if has_universe and not universe[e - 1, col]:
                continue
            value = key[e - 1, col]
            if value != value:
                continue
            if n_top == k and value <= top_key[n_top - 1]:
                continue
            q = n_top if n_top < k else k - 1
            while q > 0 and top_key[q - 1] < value:  # equal keys keep column order
                top_key[q] = top_key[q - 1]
                top_col[q] = top_col[q - 1]
                q -= 1
            top_key[q] = value
            top_col[q] = col
            if n_top < k:
                n_top += 1
        n_cand[w] = n_top
    return cand_col, cand_key, n_cand


@njit(parallel=True, cache=True, error_model="numpy", nogil=True)
def sweep_group(  # noqa: PLR0913, PLR0915 - one flat kernel keeps numba fast
    close, valid, buy_price, sell_price, buy_cap, has_cap, exit_value, cand_col, cand_key, n_cand,
    starts, ends, tax_num, tax_den, market_of, first, last, c_num, c_den, c_float,
    max_positions, initial_cash, cash_per_week, buy_threshold, exit_threshold, stop_loss, take_profit,
):
    """The weekly rules for each set s (thresholds and exits per set). Returns (ok per set,
    equity (sets × rows), statistics (sets × N_STATS)). ``ok`` is False only where an amount could
    overflow int64 arithmetic (the caller reports it)."""
    n_sets = buy_threshold.shape[0]
    rows = max(last - first + 1, 0)
    n = close.shape[1]
    ok = np.ones(n_sets, dtype=np.bool_)
    equity = np.zeros((n_sets, rows))
    stats = np.zeros((n_sets, N_STATS))
    longest = 1
    for w in range(starts.shape[0]):
        longest = max(longest, ends[w] - starts[w] + 1)
    for s in prange(n_sets):
        buy_thr = buy_threshold[s]
        exit_thr = exit_threshold[s]
        sl = stop_loss[s]
        tp = take_profit[s]
        eq = equity[s]
        st = stats[s]
        p_col = np.zeros(max_positions, dtype=np.int64)
        p_price = np.zeros(max_positions, dtype=np.int64)
        p_shares = np.zeros(max_positions, dtype=np.int64)
        p_fee = np.zeros(max_positions, dtype=np.int64)
        p_last = np.zeros(max_positions)
        p_carried = np.zeros(max_positions, dtype=np.bool_)
        sell_day = np.zeros(max_positions, dtype=np.int64)
        chosen = np.zeros(max_positions, dtype=np.int64)
        held = np.zeros(n, dtype=np.bool_)
        day_cash = np.zeros(longest, dtype=np.int64)
        n_pos = 0
        cash = initial_cash
        for w in range(starts.shape[0]):
            e = starts[w]
            x = ends[w]
            # --- entry at the open of the week's first trading day ----------------------------------
            slots = max_positions - n_pos
            if e > 0 and slots > 0 and cash > 0:
                k = 0
                for b in range(n_cand[w]):
                    if not cand_key[w, b] > buy_thr:  # the set's candidates: a prefix of the ranking
                        break
                    col = cand_col[w, b]
                    if held[col]:
                        continue
                    chosen[k] = col
                    k += 1
                    if k == slots:
                        break
                if k > 0:
                    per = (cash if cash_per_week < 0 else min(cash, cash_per_week)) // k
                    for q in range(k):
                        col = chosen[q]
                        price = buy_price[e, col]
                        if price * 4 > _SAFE:
                            ok[s] = False
                            break
                        shares = np.int64(max(np.floor(per / (price * (1.0 + c_float))), 0.0))
                        amount = shares * price
                        fee = floor_rate(amount, c_num, c_den)
                        while shares > 0 and amount + fee > per:  # float rounding: one share less
                            shares -= 1
                            amount = shares * price
                            fee = floor_rate(amount, c_num, c_den)
                        if has_cap and shares > buy_cap[e, col]:
                            shares = buy_cap[e, col]
                            amount = shares * price
                            fee = floor_rate(amount, c_num, c_den)
                        if shares <= 0:
                            continue
                        cash -= amount + fee
                        held[col] = True
                        p_col[n_pos] = col
                        p_price[n_pos] = price
                        p_shares[n_pos] = shares
                        p_fee[n_pos] = fee
                        p_last[n_pos] = np.nan
                        p_carried[n_pos] = False
                        n_pos += 1
            if not ok[s]:
                break
            if n_pos == 0:
                for r in range(e, x + 1):
                    eq[r - first] = cash
                continue
            # --- exits at the closes e..x ---------------------------------------------------------
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
                    if change <= sl or change >= tp or -exit_value[r, col] > exit_thr:
                        sell_day[q] = i
                        break
            for i in range(length):  # value after each close; a day with a position held counts as exposed
                value = 0.0
                exposed = False
                for q in range(n_pos):
                    if sell_day[q] >= 0 and i > sell_day[q]:
                        continue
                    exposed = True
                    if sell_day[q] >= 0 and i == sell_day[q]:
                        continue
                    col = p_col[q]
                    if valid[e + i, col]:
                        p_last[q] = close[e + i, col]
                    value += p_last[q] * p_shares[q]
                eq[e + i - first] = value
                if exposed:
                    st[9] += 1.0
            keep = 0
            day_cash[:length] = 0
            for q in range(n_pos):
                d = sell_day[q]
                if d < 0:  # no bar all week: carried into the next week, sold at its next close
                    p_col[keep] = p_col[q]
                    p_price[keep] = p_price[q]
                    p_shares[keep] = p_shares[q]
                    p_fee[keep] = p_fee[q]
                    p_last[keep] = p_last[q]
                    p_carried[keep] = True
                    keep += 1
                    continue
                col = p_col[q]
                r = e + d
                exit_price = sell_price[r, col]
                if float(exit_price) * p_shares[q] * 4.0 > _SAFE:  # in float: the int64 product could wrap
                    ok[s] = False
                    break
                change = close[r, col] / p_price[q] - 1.0
                if change <= sl:
                    reason = STOP_LOSS
                elif change >= tp:
                    reason = TAKE_PROFIT
                elif -exit_value[r, col] > exit_thr:
                    reason = SIGNAL
                else:
                    reason = WEEK_END
                amount = p_shares[q] * exit_price
                sell_fee = floor_rate(amount, c_num, c_den)
                tax = floor_rate(amount, tax_num[r - first, market_of[col]], tax_den)
                day_cash[d] += amount - sell_fee - tax
                cost = p_price[q] * p_shares[q] + p_fee[q]
                pnl = amount - sell_fee - tax - cost
                ret = pnl / cost if cost > 0 else float(pnl)
                st[0] += 1.0
                if pnl > 0:
                    st[1] += 1.0
                    st[2] += ret
                else:
                    st[3] += 1.0
                    st[4] += ret
                st[5] += pnl
                st[6] += p_fee[q] + sell_fee
                st[7] += tax
                st[8] += p_price[q] * p_shares[q]
                st[10 + reason] += 1.0
                held[col] = False
            if not ok[s]:
                break
            n_pos = keep
            for i in range(length):
                cash += day_cash[i]
                eq[e + i - first] += cash
    return ok, equity, stats
