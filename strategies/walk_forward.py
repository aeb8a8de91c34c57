"""Walk-forward analyses (issue 14): record one, run it (the grid's sweep, then
``strategies.research.walk_forward``), and the owner-scoped reads. The page, the API, the command
and the Celery task all call these."""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable
from typing import Any

from django.db.models import QuerySet
from django.shortcuts import get_object_or_404
from django.utils import timezone

from strategies.library import get_strategy
from strategies.research.sweep import SweepError, clean_grid, run_sweep
from strategies.research.walk_forward import walk_forward

from .market_data import BacktestInputError, load_market_data
from .models import RunStatus, WalkForwardObjective, WalkForwardRun
from .services import backtest_config, check_bounds, validated_run_settings

logger = logging.getLogger(__name__)

MAX_WINDOW_WEEKS = 1_040  # 20 years
MAX_SETS = 1_000  # the sweep shares one pass over the bars; the overfitting statistics are sized for this


def _iso_weeks(start: dt.date, end: dt.date) -> int:
    """ISO weeks from start's week to end's week, both included."""
    return ((end - dt.timedelta(days=end.weekday())) - (start - dt.timedelta(days=start.weekday()))).days // 7 + 1


def create_walk_forward(
    owner, *, strategy_key: str, grid: dict[str, list], in_sample_weeks: int = 104, out_of_sample_weeks: int = 26,
    anchored: bool = False, objective: str = WalkForwardObjective.SHARPE, base_params: dict | None = None,
    **run_settings: Any,
) -> WalkForwardRun:
    """Validate the inputs and record a pending walk-forward run (run it with `execute_walk_forward`).
    ``run_settings``: those of ``services.validated_run_settings`` (codes, period, cash, costs...).
    Bad inputs raise BacktestInputError (Korean, with the field) or ParameterError; nothing is stored."""
    try:
        get_strategy(strategy_key)  # an unknown key is a field error, not a 500
    except KeyError as error:
        raise BacktestInputError(str(error.args[0] if error.args else error), field="strategy_key") from None
    base_params = dict(base_params or {})
    try:  # every value converted and checked, every combination against the rules across parameters
        grid = clean_grid(strategy_key, grid, base_params, max_sets=MAX_SETS)
    except SweepError as error:
        raise BacktestInputError(str(error), field="grid") from None
    check_bounds("in_sample_weeks", "학습 기간(주)", in_sample_weeks, 1, MAX_WINDOW_WEEKS)
    check_bounds("out_of_sample_weeks", "검증 기간(주)", out_of_sample_weeks, 1, MAX_WINDOW_WEEKS)
    if objective not in WalkForwardObjective.values:
        raise BacktestInputError(
            f"목표 지표는 {', '.join(WalkForwardObjective.values)} 중 하나여야 합니다 (입력값: {str(objective)[:30]}).",
            field="objective",
        )
    checked = validated_run_settings(**run_settings)
    start, end = dt.date.fromisoformat(checked["start"]), dt.date.fromisoformat(checked["end"])
    weeks, needed = _iso_weeks(start, end), in_sample_weeks + out_of_sample_weeks
    if weeks < needed:
        raise BacktestInputError(
            f"기간이 너무 짧습니다: {start} ~ {end}은(는) {weeks}주인데, 학습 {in_sample_weeks}주 + 검증 "
            f"{out_of_sample_weeks}주 = {needed}주가 필요합니다. 기간을 늘리거나 학습·검증 기간을 줄이세요.",
            field="start",
        )
    return WalkForwardRun.objects.create(
        owner=owner, strategy_key=strategy_key, grid=grid, settings={**checked, "base_params": base_params},
        in_sample_weeks=in_sample_weeks, out_of_sample_weeks=out_of_sample_weeks, anchored=bool(anchored),
        objective=objective,
    )


def _set_progress(run: WalkForwardRun, percent: int, status: str | None = None) -> None:
    run.progress = max(0, min(100, int(percent)))
    fields = {"progress": run.progress}
    if status:
        run.status = fields["status"] = status
    WalkForwardRun.objects.filter(pk=run.pk).update(**fields)


def execute_walk_forward(run: WalkForwardRun, on_progress: Callable[[int], object] | None = None) -> WalkForwardRun:
    """Load the bars, sweep the grid (each set's continuous backtest), walk forward over the sweep and
    store the windows, the stitched out-of-sample curve and the summary in `result`. A failure is
    stored on the run with its message (and re-raised for callers that want it)."""
    _set_progress(run, 5, RunStatus.RUNNING)
    try:
        config = backtest_config(run.settings)
        data = load_market_data(list(run.settings["codes"]), config.start, config.end,
                                universe_top_n=run.settings.get("universe_top_n"))
        _set_progress(run, 15)

        def sweep_progress(percent: int) -> None:  # the sweep is most of the work: 15 → 90 %
            _set_progress(run, 15 + int(percent) * 75 // 100)

        sweep = run_sweep(run.strategy_key, run.grid, data, config, base_params=run.settings.get("base_params") or {},
                          on_progress=sweep_progress)
        analysis = walk_forward(sweep, run.in_sample_weeks, run.out_of_sample_weeks, anchored=run.anchored,
                                objective=run.objective)
    except Exception as error:
        logger.warning("walk-forward %s failed: %s", run.pk, error)
        run.status, run.error, run.finished_at = RunStatus.FAILED, str(error), timezone.now()
        run.save(update_fields=["status", "error", "finished_at"])
        raise
    run.result = {**analysis.to_dict(), "sets": sweep.n_sets, "seconds": round(float(sweep.seconds), 3)}
    run.status, run.progress, run.error, run.finished_at = RunStatus.DONE, 100, "", timezone.now()
    run.save(update_fields=["result", "status", "progress", "error", "finished_at"])
    if on_progress:
        on_progress(100)
    return run


# ------------------------------------------------------------------------------------------ reads


def walk_forwards_for(user) -> QuerySet[WalkForwardRun]:
    """The user's walk-forward runs, newest first (nobody else's)."""
    if not user.is_authenticated:
        return WalkForwardRun.objects.none()
    return WalkForwardRun.objects.filter(owner=user).order_by("-created_at", "-pk")


def walk_forward_for(user, pk: int) -> WalkForwardRun:
    """One of the user's runs; another user's answers 404."""
    return get_object_or_404(walk_forwards_for(user), pk=pk)
