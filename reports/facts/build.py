"""``build_facts``: one user's week, section by section (each section in its own module)."""

from __future__ import annotations

import datetime as dt

from django.utils import timezone

from accounts.models import BrokerAccount
from orders.models import Order, WeeklyRun
from strategies.models import StrategyConfig

from .common import Closes, instrument_names, week_window
from .drift import drift_codes, drift_facts
from .equity import (
    benchmark_return,
    benchmark_universe,
    excess_return_pct,
    portfolio_facts,
    portfolio_return,
    series_rows,
)
from .failures import failure_facts
from .market_analysis import market_facts
from .positions import account_states, account_values, merge_books, position_rows
from .strategy_runs import codes_in_runs, strategy_facts
from .trades import trade_rows, trade_summary

FACTS_SCHEMA = 1
PRICE_LOOKBACK_DAYS = 30  # a held stock without a bar on a day is valued at its last close before


def build_facts(user, week: str | dt.date, *, market: dict | None = None, now: dt.datetime | None = None) -> dict:
    """The facts of `user`'s week (see the package docstring). `market`: precomputed `market_facts`."""
    now = now or timezone.now()
    window = week_window(week, now)
    accounts = list(BrokerAccount.objects.filter(owner=user).order_by("-is_default", "pk"))
    configs = list(StrategyConfig.objects.filter(owner=user).order_by("name", "pk"))
    day_points = [window.prev_day, *window.days]
    first_point, last_point = day_points[0], day_points[-1]

    states, trades, codes = account_states(accounts, day_points, window)
    runs = list(WeeklyRun.objects.filter(config__in=configs, week_start=window.monday))
    codes |= codes_in_runs(runs)
    codes |= set(Order.objects.filter(broker_account__in=accounts, trading_date__range=(window.monday, window.sunday))
                 .values_list("code", flat=True))
    names = instrument_names((codes | drift_codes(configs, window)) - {""})
    closes = Closes(codes, window.prev_day - dt.timedelta(days=PRICE_LOOKBACK_DAYS), last_point) if codes else None

    cash_known = all(state.cash_now is not None for state in states)
    account_facts, totals = account_values(states, closes, day_points)
    equity = {day: totals[day]["cash"] + totals[day]["holdings"] for day in day_points}
    bench_codes, bench_name = benchmark_universe(configs, window)
    benchmark, bench_by_day = benchmark_return(bench_codes, window, bench_name)
    trade_facts = trade_rows(trades, names)

    before = merge_books([state.books[first_point] for state in states])
    after = merge_books([state.books[last_point] for state in states])
    failures = failure_facts(accounts, configs, window, names)
    failures["count"] = sum(len(value) for value in failures.values())
    return {
        "schema": FACTS_SCHEMA,
        "week": {
            "iso_week": window.iso_week, "start": window.monday.isoformat(), "end": window.sunday.isoformat(),
            "trading_days": [day.isoformat() for day in window.trading_days],
            "previous_close_day": window.prev_day.isoformat(),
            "as_of": window.as_of.isoformat() if window.as_of else None, "complete": window.complete,
        },
        "portfolio": portfolio_facts(totals, equity, first_point, last_point, cash_known),
        "benchmark": benchmark,
        "excess_return_pct": excess_return_pct(portfolio_return(equity, first_point, last_point), benchmark),
        "accounts": account_facts,
        "positions_before": position_rows(before, closes, first_point, names),
        "positions_after": position_rows(after, closes, last_point, names),
        "trades": trade_facts,
        "trade_summary": trade_summary(trade_facts),
        "strategies": strategy_facts(configs, runs, window, names),
        "analysis": market if market is not None else market_facts(window),
        "failures": failures,
        "drift": drift_facts(configs, window, names),
        "series": series_rows(day_points, totals, equity, cash_known, bench_by_day, trade_facts),
    }
