"""Equity and benchmark: the portfolio's value at the previous week's last close and at ``as_of``, the
equal-weight benchmark over the same closes (the user's strategy universes, else every stored stock), and
the per-day series the charts draw."""

from __future__ import annotations

import datetime as dt
import statistics

from market.models import DailyBar
from strategies.models import StrategyConfig

from .common import Closes, WeekWindow, logger, pct
from .trades import buys_and_sells

# The benchmark's names in the facts (Korean, for the model); the page translates them (reports.labels).
UNIVERSE_BENCHMARK = "전략 유니버스 동일가중"
ALL_STOCKS_BENCHMARK = "전 종목 동일가중"


def benchmark_universe(configs: list[StrategyConfig], window: WeekWindow) -> tuple[list[str], str]:
    from strategies.services import universe_for

    codes: set[str] = set()
    for config in configs:
        try:
            codes |= set(universe_for(config, window.prev_day))
        except Exception as error:  # a broken universe leaves the benchmark to the whole market
            logger.warning("report: universe of config %s: %s", config.pk, error)
    if codes:
        return sorted(codes), UNIVERSE_BENCHMARK
    stored = DailyBar.objects.filter(date=window.prev_day).values_list("instrument__code", flat=True)
    return sorted(set(stored)), ALL_STOCKS_BENCHMARK


def benchmark_return(codes: list[str], window: WeekWindow, name: str) -> tuple[dict, dict[dt.date, float]]:
    """Equal-weight return of `codes` from the previous week's last close to each day of the week."""
    if window.as_of is None or not codes:
        return {"name": name, "symbols": 0, "return_pct": None}, {}
    closes = Closes(set(codes), window.prev_day, window.as_of)
    base = {code: closes.exactly_on(code, window.prev_day) for code in codes}
    base = {code: close for code, close in base.items() if close}
    by_day: dict[dt.date, float] = {window.prev_day: 0.0} if base else {}
    for day in window.days:
        changes = [closes.on(code, day) / start - 1 for code, start in base.items()]
        if changes:
            by_day[day] = statistics.fmean(changes)
    final = by_day.get(window.as_of)
    return {"name": name, "symbols": len(base), "return_pct": pct(final)}, by_day


def portfolio_facts(totals: dict[dt.date, dict[str, int]], equity: dict[dt.date, int], first_point: dt.date,
                    last_point: dt.date, cash_known: bool) -> dict:
    """All accounts together: equity, cash and holdings at the start and end closes, P&L and return."""
    equity_start, equity_end = equity[first_point], equity[last_point]
    return {
        "equity_start": equity_start, "equity_end": equity_end, "pnl": equity_end - equity_start,
        "return_pct": pct(portfolio_return(equity, first_point, last_point)), "cash_known": cash_known,
        "cash_start": totals[first_point]["cash"] if cash_known else None,
        "cash_end": totals[last_point]["cash"] if cash_known else None,
        "holdings_value_start": totals[first_point]["holdings"],
        "holdings_value_end": totals[last_point]["holdings"],
    }


def portfolio_return(equity: dict[dt.date, int], first_point: dt.date, last_point: dt.date) -> float | None:
    equity_start, equity_end = equity[first_point], equity[last_point]
    return equity_end / equity_start - 1 if equity_start else None


def excess_return_pct(portfolio: float | None, benchmark: dict) -> float | None:
    """The portfolio's return minus the benchmark's, in percentage points."""
    if portfolio is None or benchmark["return_pct"] is None:
        return None
    return round(pct(portfolio) - benchmark["return_pct"], 2)


def series_rows(day_points: list[dt.date], totals: dict[dt.date, dict[str, int]], equity: dict[dt.date, int],
                cash_known: bool, bench_by_day: dict[dt.date, float], trade_rows: list[dict]) -> list[dict]:
    """Equity, cash, the benchmark (scaled to the starting equity) and the traded amounts per day point."""
    equity_start = equity[day_points[0]]
    buys, sells = buys_and_sells(trade_rows)
    series = []
    for day in day_points:
        bench = bench_by_day.get(day)
        iso = day.isoformat()
        series.append({
            "date": iso, "equity": equity[day], "cash": totals[day]["cash"] if cash_known else None,
            "holdings": totals[day]["holdings"],
            "benchmark": round(equity_start * (1 + bench)) if bench is not None and equity_start else None,
            "bought": sum(t["amount"] for t in buys if t["date"] == iso),
            "sold": sum(t["amount"] for t in sells if t["date"] == iso),
        })
    return series
