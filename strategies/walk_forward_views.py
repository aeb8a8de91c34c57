"""The walk-forward pages: the form (→ `create_walk_forward` → the Celery task → the run's page), the
run's page and its results partial (HTMX, polled while the run works). Thin: the form checks the
input, `strategies.walk_forward` acts and reads (owner-scoped: another user's run is a 404)."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.shortcuts import redirect, render
from django.utils.translation import gettext as _
from django.views.decorators.http import require_safe

from strategies.library.base import ParameterError

from . import selectors
from .forms import DEFAULT_STRATEGY, MAX_SWEEP_RUNS, add_parameter_errors
from .models import RunStatus, WalkForwardRun
from .services import BacktestInputError
from .tasks import start_walk_forward
from .walk_forward import create_walk_forward, walk_forward_for, walk_forwards_for
from .walk_forward_forms import WalkForwardForm

RUNS_LISTED = 20

# How each objective's values read: ratios as numbers, returns as signed percentages.
OBJECTIVE_FORMAT = {"sharpe": "number", "calmar": "number", "total_return": "signed_percent", "cagr": "signed_percent"}


@login_required
def walk_forward_create(request):
    """New walk-forward analysis, and the user's earlier ones."""
    form = WalkForwardForm(request.POST or None, owner=request.user,
                           initial={"strategy_key": request.GET.get("strategy_key") or DEFAULT_STRATEGY})
    if request.method == "POST" and form.is_valid():
        try:
            run = create_walk_forward(request.user, **form.walk_forward_options())
        except ParameterError as error:
            add_parameter_errors(form, error)
        except BacktestInputError as error:
            form.add_error(error.field if error.field in form.fields else None, str(error))
        else:
            start_walk_forward(run)
            return redirect("strategies:walk_forward_detail", pk=run.pk)
    runs = selectors.with_strategy_names(walk_forwards_for(request.user).defer("result")[:RUNS_LISTED])
    return render(request, "strategies/walk_forward_form.html", {"form": form, "runs": runs, "max_runs": MAX_SWEEP_RUNS})


def _tone(value) -> str:
    return "" if not value else ("up" if value > 0 else "down")


def verdict(efficiency: float | None) -> str:
    """One plain sentence on the walk-forward efficiency (OOS CAGR / mean IS CAGR)."""
    if efficiency is None:
        return _("The chosen parameters earned nothing in sample, so there is no efficiency to judge: "
                 "treat the strategy as unproven.")
    if efficiency >= 0.5:
        return _("The out-of-sample weeks kept at least half of the in-sample return: the choice of parameters "
                 "carries over to unseen weeks reasonably well.")
    if efficiency > 0:
        return _("The out-of-sample weeks kept less than half of the in-sample return: much of what the "
                 "in-sample figures show is fitted to the past.")
    return _("The out-of-sample weeks lost money although the in-sample weeks earned: the parameters chosen on "
             "the past did not work on the weeks that followed.")


def _results_context(run: WalkForwardRun) -> dict:
    labels = selectors.parameter_labels(run.strategy_key)
    context = {
        "run": run,
        "active": run.status in (RunStatus.PENDING, RunStatus.RUNNING),
        "strategy_name": selectors.strategy_name(run.strategy_key),
        "grid_items": [(labels.get(name, name), values) for name, values in run.grid.items()],
        "objective_label": run.get_objective_display(),
    }
    result = run.result if run.status == RunStatus.DONE else None
    if not result:
        return context
    kind = OBJECTIVE_FORMAT.get(run.objective, "number")
    fmt = selectors.format_metric
    windows, previous = [], None
    for window in result["windows"]:
        windows.append({
            **window,
            "params_items": [(labels.get(name, name), value) for name, value in window["params"].items()],
            "changed": previous is not None and window["set_index"] != previous,
            "in_sample_text": fmt(window["in_sample_objective"], kind),
            "out_of_sample_text": fmt(window["out_of_sample_objective"], kind),
            "in_sample_return_text": fmt(window["in_sample_return"], "signed_percent"),
            "out_of_sample_return_text": fmt(window["out_of_sample_return"], "signed_percent"),
            "tone": _tone(window["out_of_sample_return"]),
        })
        previous = window["set_index"]
    summary = result["summary"]
    context.update({
        "result": result,
        "windows": windows,
        "summary": summary,
        "cards": [
            {"key": key, "label": label, "text": fmt(summary.get(key), form),
             "tone": _tone(summary.get(key)) if form == "signed_percent" else ""}
            for key, label, form in (
                ("total_return", _("Total return"), "signed_percent"), ("cagr", _("CAGR"), "signed_percent"),
                ("sharpe", _("Sharpe ratio"), "number"), ("max_drawdown", _("Max drawdown"), "percent"),
            )
        ],
        "gap": {
            "in_sample": fmt(summary.get("mean_in_sample_objective"), kind),
            "out_of_sample": fmt(summary.get("mean_out_of_sample_objective"), kind),
            "gap": fmt(summary.get("gap"), kind),
            "efficiency": fmt(summary.get("efficiency"), "percent"),
            "verdict": verdict(summary.get("efficiency")),
        },
        "chart": {
            "dates": [day for day, _value in result["equity"]],
            "equity": [value for _day, value in result["equity"]],
            "initial": result["initial_cash"],
            "windows": [window["out_of_sample_start"] for window in result["windows"]],
            "labels": {"equity": _("Out-of-sample equity (stitched)"), "initial": _("Initial cash")},
        },
    })
    return context


@login_required
@require_safe
def walk_forward_detail(request, pk: int):
    return render(request, "strategies/walk_forward_detail.html", _results_context(walk_forward_for(request.user, pk)))


@login_required
@require_safe
def walk_forward_results(request, pk: int):
    """HTMX, polled every second while the run is pending or running: progress, then the results."""
    return render(
        request, "strategies/walk_forward_results.html", _results_context(walk_forward_for(request.user, pk))
    )
