"""Parameter sweeps: record one (``create_sweep``), run it in one shared pass (``execute_sweep``), and
turn one of its sets into a full backtest (``backtest_from_sweep``). The page, the API, Celery and
the shell all call these.

The sweep's sets run through ``strategies.research.sweep`` (each set the same numbers as its own
backtest); the sweep stores each set's metrics and, for the whole sweep, the deflated Sharpe ratio
and the probability of backtest overfitting with their Korean explanation.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from django.db import transaction
from django.utils import timezone

from strategies.library import ParameterError
from strategies.research.sweep import SweepError, clean_grid, grid_sets, run_sweep, sweep_statistics

from . import services
from .market_data import BacktestInputError, load_market_data
from .models import BacktestRun, BacktestSweep, RunStatus

logger = logging.getLogger(__name__)


def _grid_error(error: Exception) -> BacktestInputError:
    if isinstance(error, ParameterError):
        return BacktestInputError(" / ".join(error.errors.values()), field="grid")
    return BacktestInputError(str(error), field="grid")


def create_sweep(
    owner, *, strategy_key: str, grid: Mapping[str, Sequence[Any]], base_params: Mapping[str, Any] | None = None,
    **run_options: Any,
) -> BacktestSweep:
    """Validate the grid (every set's parameters) and the run options shared by every set (as a single
    backtest's), and record a pending sweep. BacktestInputError (Korean, with the field) otherwise."""
    try:
        grid_sets(strategy_key, grid, base_params)  # names known, values and every combination valid
        grid = clean_grid(strategy_key, grid, base_params)  # stored as the engine and the heat map read it
    except (SweepError, ParameterError) as error:
        raise _grid_error(error) from None
    settings = services.validated_run_settings(**run_options)
    settings["base_params"] = dict(base_params or {})
    return BacktestSweep.objects.create(
        owner=owner, strategy_key=strategy_key, grid=grid,
        settings=settings,
    )


def _save_progress(sweep: BacktestSweep, percent: int, status: str | None = None) -> None:
    sweep.progress = percent
    fields = {"progress": percent}
    if status:
        sweep.status = fields["status"] = status
    BacktestSweep.objects.filter(pk=sweep.pk).update(**fields)


def execute_sweep(sweep: BacktestSweep, on_progress: Callable[[int], object] | None = None) -> BacktestSweep:
    """Load the bars, run every set in one pass, store each set's metrics and the sweep's statistics.
    A failure is stored on the sweep with its message (and re-raised)."""
    _save_progress(sweep, 2, RunStatus.RUNNING)
    settings = sweep.settings
    try:
        start, end = dt.date.fromisoformat(settings["start"]), dt.date.fromisoformat(settings["end"])
        data = load_market_data(settings["codes"], start, end, universe_top_n=settings.get("universe_top_n"))
        _save_progress(sweep, 10)
        result = run_sweep(
            sweep.strategy_key, sweep.grid, data, services.backtest_config(settings),
            base_params=settings.get("base_params") or {},
            on_progress=lambda percent: _save_progress(sweep, 10 + percent * 80 // 100),
        )
        statistics = sweep_statistics(result)
    except (SweepError, ParameterError) as error:
        return _fail(sweep, _grid_error(error))
    except Exception as error:
        return _fail(sweep, error)
    sweep.results = [
        {"params": {name: params[name] for name in result.names}, "metrics": metrics}
        for params, metrics in zip(result.param_sets, result.metrics, strict=True)
    ]
    statistics["best_index"] = result.best_index("sharpe")
    sweep.statistics = statistics
    sweep.seconds = round(result.seconds, 3)
    sweep.status, sweep.progress, sweep.error, sweep.finished_at = RunStatus.DONE, 100, "", timezone.now()
    sweep.save(update_fields=["results", "statistics", "seconds", "status", "progress", "error", "finished_at"])
    if on_progress:
        on_progress(100)
    return sweep


def _fail(sweep: BacktestSweep, error: Exception) -> BacktestSweep:
    logger.warning("sweep %s failed: %s", sweep.pk, error)
    sweep.status, sweep.error, sweep.finished_at = RunStatus.FAILED, str(error), timezone.now()
    sweep.save(update_fields=["status", "error", "finished_at"])
    raise error


@transaction.atomic
def backtest_from_sweep(sweep: BacktestSweep, index: int, owner) -> BacktestRun:
    """A pending full backtest of the sweep's set ``index`` (its trades, equity and drawdown), with the
    sweep's settings; run it with ``tasks.start_backtest``."""
    results = sweep.results or []
    if not 0 <= index < len(results):
        raise BacktestInputError(f"스윕에 {index + 1}번째 조합이 없습니다.", field="index")
    settings = dict(sweep.settings)
    params = {**(settings.pop("base_params", None) or {}), **results[index]["params"]}
    settings["start"] = dt.date.fromisoformat(settings["start"])
    settings["end"] = dt.date.fromisoformat(settings["end"])
    return services.create_backtest_run(
        owner, strategy_key=sweep.strategy_key, params=params, sweep=sweep, period_checked=True, **settings
    )
