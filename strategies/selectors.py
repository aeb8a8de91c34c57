"""Reads of strategies data for the pages and the API. Every read is scoped to the requesting user:
another user's config, run or sweep answers 404, as if it did not exist.

Besides the queries, the read-side shaping of a finished run for its page lives here: the monthly
returns grid, the drawdown series, the buy-and-hold curve, the sweep's table and heat map.
"""

from __future__ import annotations

import datetime as dt
import logging
import math
from collections.abc import Iterable

from django.core.cache import cache
from django.db.models import Max, Min, QuerySet
from django.shortcuts import get_object_or_404
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from market.models import DailyBar, Instrument
from strategies.library import all_strategies

from . import texts
from .models import BacktestRun, BacktestSweep, RunStatus, StrategyConfig

logger = logging.getLogger(__name__)

# The run page shows at most this many trades (all of them through the API).
TRADES_ON_PAGE = 2000
BENCHMARK_CACHE_SECONDS = 24 * 3600


# ------------------------------------------------------------------------------------------- queries


def configs_for(user) -> QuerySet[StrategyConfig]:
    if not user.is_authenticated:
        return StrategyConfig.objects.none()
    return StrategyConfig.objects.filter(owner=user).select_related("broker_account").order_by("name")


def config_for(user, pk: int) -> StrategyConfig:
    return get_object_or_404(configs_for(user), pk=pk)


def runs_for(user) -> QuerySet[BacktestRun]:
    if not user.is_authenticated:
        return BacktestRun.objects.none()
    return BacktestRun.objects.filter(owner=user).order_by("-created_at", "-pk")


def run_list_for(user) -> QuerySet[BacktestRun]:
    """The user's single runs (not part of a sweep), newest first, without the heavy result columns."""
    return runs_for(user).filter(sweep__isnull=True).defer("trades", "equity").select_related("config")


def comparable_runs_for(user) -> QuerySet[BacktestRun]:
    """Finished runs (single or from a sweep) that can be compared."""
    return runs_for(user).filter(status=RunStatus.DONE).defer("trades", "equity")


def run_for(user, pk: int) -> BacktestRun:
    return get_object_or_404(runs_for(user).select_related("config", "sweep"), pk=pk)


def sweeps_for(user) -> QuerySet[BacktestSweep]:
    if not user.is_authenticated:
        return BacktestSweep.objects.none()
    return BacktestSweep.objects.filter(owner=user).order_by("-created_at", "-pk")


def sweep_for(user, pk: int) -> BacktestSweep:
    return get_object_or_404(sweeps_for(user), pk=pk)


def bar_period(codes: Iterable[str] | None = None) -> tuple[dt.date, dt.date] | None:
    """The first and last date of the stored bars of `codes` (None: of every instrument), or None
    when there are none."""
    bars = DailyBar.objects.all() if codes is None else DailyBar.objects.filter(instrument__code__in=list(codes))
    period = bars.aggregate(first=Min("date"), last=Max("date"))
    return None if period["first"] is None else (period["first"], period["last"])


def instrument_names(codes: Iterable[str]) -> dict[str, str]:
    return dict(Instrument.objects.filter(code__in=list(codes)).values_list("code", "name"))


def strategy_names() -> dict[str, str]:
    """Every registered strategy's name in the active language, by key."""
    return {key: texts.strategy_name(cls) for key, cls in all_strategies().items()}


def strategy_name(key: str) -> str:
    return texts.strategy_name(key)


def with_strategy_names(objects: Iterable) -> list:
    """The objects (configs, runs, sweeps) as a list, each with `strategy_name` (in the active language)."""
    names = strategy_names()
    objects = list(objects)
    for obj in objects:
        obj.strategy_name = names.get(obj.strategy_key, obj.strategy_key)
    return objects


def parameter_labels(key: str) -> dict[str, str]:
    cls = all_strategies().get(key)
    return {p.name: texts.parameter_label(p) for p in cls.parameter_specs()} if cls else {}


# ----------------------------------------------------------------------------------- a run's page


# (key, label, format, has a buy-and-hold value)
METRICS = (
    ("total_return", _("Total return"), "signed_percent", True),
    ("cagr", _("CAGR"), "signed_percent", True),
    ("volatility", _("Volatility (ann.)"), "percent", True),
    ("sharpe", _("Sharpe ratio"), "number", True),
    ("sortino", _("Sortino ratio"), "number", True),
    ("max_drawdown", _("Max drawdown"), "percent", True),
    ("win_rate", _("Win rate"), "percent", False),
    ("avg_win", _("Average win"), "signed_percent", False),
    ("avg_loss", _("Average loss"), "signed_percent", False),
    ("turnover", _("Turnover (per year)"), "times", False),
    ("exposure", _("Exposure"), "percent", False),
    ("n_trades", _("Trades"), "integer", False),
)


def format_metric(value, kind: str) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "–"
    if kind == "signed_percent":
        return f"{value * 100:+.2f}%"
    if kind == "percent":
        return f"{value * 100:.2f}%"
    if kind == "number":
        return f"{value:.2f}" if abs(value) >= 0.005 else "0.00"
    if kind == "times":
        return f"{value:.2f}×"
    if kind == "integer":
        return f"{int(value):,}"
    return str(value)


def _tone(value, kind: str) -> str:
    if value is None or kind not in {"signed_percent"} or value == 0:
        return ""
    return "up" if value > 0 else "down"


def _metric_cell(metrics: dict | None, key: str, kind: str) -> dict:
    raw = (metrics or {}).get(key)
    cell = {"text": format_metric(raw, kind), "raw": raw, "tone": _tone(raw, kind)}
    if key == "max_drawdown":
        cell["peak"] = (metrics or {}).get("max_drawdown_peak")
        cell["trough"] = (metrics or {}).get("max_drawdown_trough")
    return cell


def metric_rows(metric_sets: list[dict | None], benchmark: dict | None = None) -> list[dict]:
    """One row per metric: its key, msgid, the formatted value in each metric set, and the
    buy-and-hold benchmark's value where it has the metric (trade metrics it has not)."""
    rows = []
    for key, label, kind, has_benchmark in METRICS:
        rows.append({
            "key": key,
            "label": label,
            "values": [_metric_cell(metrics, key, kind) for metrics in metric_sets],
            "benchmark": _metric_cell(benchmark, key, kind) if benchmark is not None and has_benchmark else None,
        })
    return rows


def drawdown(values: list[float], initial: float | None = None) -> list[float]:
    """equity / running peak − 1 per day (the initial capital counts as the first peak)."""
    peak = initial if initial else -math.inf
    out = []
    for value in values:
        peak = max(peak, value)
        out.append(round(value / peak - 1.0, 6) if peak > 0 else 0.0)
    return out


def monthly_returns(equity: list, initial: float) -> list[dict]:
    """Rows per year: twelve monthly returns (None for months outside the run) and the year's return,
    from the month-end equity (the first month against the initial capital)."""
    if not equity:
        return []
    month_end: dict[tuple[int, int], float] = {}
    for day, value in equity:
        year, month = int(day[:4]), int(day[5:7])
        month_end[(year, month)] = float(value)
    keys = sorted(month_end)
    returns: dict[tuple[int, int], float] = {}
    previous = float(initial)
    for key in keys:
        value = month_end[key]
        returns[key] = value / previous - 1.0 if previous else 0.0
        previous = value
    rows = []
    year_start = float(initial)
    for year in range(keys[0][0], keys[-1][0] + 1):
        months = [returns.get((year, month)) for month in range(1, 13)]
        last = [month_end[(year, m)] for m in range(1, 13) if (year, m) in month_end]
        year_return = last[-1] / year_start - 1.0 if last and year_start else None
        if last:
            year_start = last[-1]
        rows.append({"year": year, "months": [heat_cell(r) for r in months], "total": heat_cell(year_return)})
    return rows


def heat_cell(value: float | None, scale: float = 0.10) -> dict:
    """A value with its text and a background: red for gains, blue for losses (the Korean
    convention), stronger up to ±`scale`."""
    if value is None or not math.isfinite(value):
        return {"value": None, "text": "", "style": ""}
    strength = min(abs(value) / scale, 1.0) if scale > 0 else 0.0
    alpha = round(0.08 + 0.62 * strength, 3) if value != 0 else 0.0
    colour = "217, 45, 32" if value > 0 else "31, 94, 255"
    style = f"background-color: rgba({colour}, {alpha});" if alpha else ""
    if strength > 0.6:
        style += " color: #fff;"
    text = f"{value * 100:+.1f}%" if abs(value) >= 0.0005 else "0.0%"
    return {"value": value, "text": text, "style": style}


def benchmark_equity(run: BacktestRun) -> list | None:
    """The equal-weight buy-and-hold curve of the run's universe on the run's dates ([date, value]
    pairs), or None when the bars are gone. The run stores the benchmark's metrics only, so the
    curve is recomputed from the stored bars (the backtester's own function) and cached."""
    stored = getattr(run, "benchmark_equity", None)
    if stored:
        return stored
    if run.status != RunStatus.DONE or not run.equity:
        return None
    key = f"strategies:benchmark-equity:{run.pk}:{run.finished_at.timestamp() if run.finished_at else 0}"
    cached = cache.get(key)
    if cached is not None:
        return cached or None
    curve = _compute_benchmark_equity(run)
    cache.set(key, curve or [], BENCHMARK_CACHE_SECONDS)
    return curve


def _compute_benchmark_equity(run: BacktestRun) -> list | None:
    from strategies.backtest import BacktestConfig
    from strategies.backtest.metrics import benchmark_curve
    from strategies.backtest.result import trading_rows

    from .market_data import BacktestInputError, load_market_data

    try:
        data = load_market_data(run.codes, run.start, run.end)
    except BacktestInputError:
        return None
    first, last = trading_rows(data.dates, BacktestConfig(start=run.start, end=run.end))
    values = benchmark_curve(data.open, data.close, first, last, float(run.initial_cash), data.valid)
    dates = [str(day) for day in data.dates[first : last + 1]]
    if len(dates) != len(run.equity) or (dates and dates[0] != run.equity[0][0]):
        return None  # the stored bars changed since the run
    return [[day, round(float(value), 2)] for day, value in zip(dates, values, strict=True)]


def run_chart_payload(run: BacktestRun, labels: dict) -> dict:
    """Everything the run page's charts draw: dates, equity, buy-and-hold, both drawdowns."""
    equity = run.equity or []
    dates = [day for day, _value in equity]
    values = [round(float(value), 2) for _day, value in equity]
    bench = benchmark_equity(run)
    bench_values = [value for _day, value in bench] if bench else None
    initial = float(run.initial_cash)
    return {
        "dates": dates,
        "equity": values,
        "benchmark": bench_values,
        "drawdown": drawdown(values, initial),
        "benchmark_drawdown": drawdown(bench_values, initial) if bench_values else None,
        "labels": labels,
    }


def compare_chart_payload(runs: list[BacktestRun], labels: list[str]) -> dict:
    """Both equity curves on one date axis (the union of their dates; null where a run has none)."""
    dates = sorted({day for run in runs for day, _value in (run.equity or [])})
    series = []
    for run, label in zip(runs, labels, strict=True):
        by_date = {day: round(float(value), 2) for day, value in (run.equity or [])}
        series.append({"label": label, "values": [by_date.get(day) for day in dates]})
    return {"dates": dates, "series": series}


def trades_for_page(run: BacktestRun) -> tuple[list[dict], int]:
    trades = run.trades or []
    return trades[:TRADES_ON_PAGE], len(trades)


# -------------------------------------------------------------------------------------- sweeps

SWEEP_ROWS_SHOWN = 500
# Metrics the heat map can show: (key, label, kind of format_metric).
HEATMAP_METRICS = (
    ("total_return", _("Total return"), "signed_percent"),
    ("sharpe", _("Sharpe ratio"), "number"),
    ("cagr", _("CAGR"), "signed_percent"),
    ("max_drawdown", _("Max drawdown"), "percent"),
)


def swept_parameters(sweep: BacktestSweep) -> list[str]:
    """The grid's parameters that take more than one value (in the grid's order)."""
    return [name for name, values in sweep.grid.items() if len(values) > 1]


def sweep_best_index(sweep: BacktestSweep) -> int | None:
    return (sweep.statistics or {}).get("best_index")


def sweep_rows(sweep: BacktestSweep, limit: int = SWEEP_ROWS_SHOWN) -> tuple[list[dict], int]:
    """The sets as table rows, best Sharpe first (at most ``limit``), and the number of sets."""
    names = list(sweep.grid)
    results = sweep.results or []
    best = sweep_best_index(sweep)
    order = sorted(range(len(results)), key=lambda i: -(results[i]["metrics"].get("sharpe") or -math.inf))
    rows = []
    for index in order[:limit]:
        metrics = results[index]["metrics"] or {}
        rows.append({
            "index": index,
            "params": [results[index]["params"].get(name) for name in names],
            "metrics": metrics,
            "cells": {key: format_metric(metrics.get(key), kind) for key, _label, kind, _b in METRICS},
            "tone": _tone(metrics.get("total_return"), "signed_percent"),
            "is_best": index == best,
        })
    return rows, len(results)


def sweep_progress(sweep: BacktestSweep) -> dict:
    return {
        "percent": sweep.progress, "active": sweep.status in (RunStatus.PENDING, RunStatus.RUNNING),
        "failed": sweep.status == RunStatus.FAILED,
    }


def sweep_heatmap(sweep: BacktestSweep, x: str | None = None, y: str | None = None,
                  metric: str | None = None) -> dict | None:
    """Any two swept parameters as a grid of one metric (rows ``y``, columns ``x``); the other swept
    parameters are held at the best set's values (said on the page). None with fewer than two."""
    swept = swept_parameters(sweep)
    if len(swept) < 2 or not sweep.results:
        return None
    y = y if y in swept else swept[0]
    x = x if x in swept and x != y else next(name for name in swept if name != y)
    metric_key, metric_label, kind = next((m for m in HEATMAP_METRICS if m[0] == metric), HEATMAP_METRICS[0])
    best = sweep_best_index(sweep)
    anchor = sweep.results[best if best is not None else 0]["params"]
    others = [name for name in swept if name not in (x, y)]
    cells: dict[tuple, tuple[float | None, int]] = {}
    for index, item in enumerate(sweep.results):
        params = item["params"]
        if all(params.get(name) == anchor.get(name) for name in others):
            cells[(params.get(y), params.get(x))] = (item["metrics"].get(metric_key), index)
    finite = [abs(v) for v, _ in cells.values() if v is not None and math.isfinite(v)]
    scale = max(finite) if finite else 0.10
    labels = parameter_labels(sweep.strategy_key)
    grid = []
    for row_value in sweep.grid[y]:
        row = []
        for col_value in sweep.grid[x]:
            value, index = cells.get((row_value, col_value), (None, None))
            cell = heat_cell(value, scale or 0.10)
            if kind != "signed_percent" and cell["value"] is not None:
                cell["text"] = format_metric(value, kind)
            row.append({**cell, "index": index, "is_best": index is not None and index == best})
        grid.append({"value": row_value, "cells": row})
    return {
        "x": x, "y": y, "metric": metric_key, "metric_label": metric_label,
        "row_label": labels.get(y, y), "col_label": labels.get(x, x), "columns": sweep.grid[x], "rows": grid,
        "fixed": [(labels.get(name, name), anchor.get(name)) for name in others],
        "parameter_choices": [(name, labels.get(name, name)) for name in swept],
        "metric_choices": [(key, label) for key, label, _kind in HEATMAP_METRICS],
    }


def sweep_statistics_view(sweep: BacktestSweep) -> dict | None:
    """The sweep's skill-or-luck figures for the page: DSR, PBO, the Korean explanation, a warning."""
    stats = sweep.statistics
    if not stats:
        return None
    dsr, pbo = stats.get("deflated_sharpe"), stats.get("pbo")
    return {
        "dsr": dsr, "pbo": pbo, "explanation": stats.get("explanation") or [], "notes": stats.get("notes") or [],
        "likely_luck": stats.get("likely_luck"), "n_sets": stats.get("n_sets"), "weeks": stats.get("weeks"),
        "dsr_percent": None if not dsr else f"{dsr['dsr'] * 100:.0f}%",
        "pbo_percent": None if not pbo else f"{pbo['pbo'] * 100:.0f}%",
    }


def default_period(
    stored: tuple[dt.date, dt.date] | None = None, today: dt.date | None = None
) -> tuple[dt.date, dt.date]:
    """The backtest form's default period: the last two years up to today, within the `stored` bars'
    period (`bar_period()`) when there are bars, so the defaults are a period the backtest accepts."""
    end = today or timezone.localdate()
    if stored is not None:
        end = min(max(end, stored[0]), stored[1])
    try:
        start = end.replace(year=end.year - 2)
    except ValueError:  # 29 February
        start = end.replace(year=end.year - 2, day=28)
    if stored is not None:
        start = max(start, stored[0])
    return start, end
