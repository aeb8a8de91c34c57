"""전략 and 백테스트 pages. Views stay thin: forms check the input, `services` act, `selectors` read
(owner-scoped: another user's config, run or sweep is a 404).

The backtest and sweep forms live here because they are page forms only; the API validates the same
inputs with serializers and both end in `services.create_backtest_run` / `sweeps.create_sweep`.
"""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST, require_safe

from strategies.library.base import ParameterError

from . import selectors
from .forms import (
    DEFAULT_STRATEGY,
    MAX_SWEEP_RUNS,
    BacktestForm,
    ConfigForm,
    SweepForm,
    add_parameter_errors,
)
from .models import BacktestRun, RunStatus, StrategyConfig
from .services import BacktestInputError, ConfigInUse, create_backtest_run, delete_config
from .sweeps import backtest_from_sweep, create_sweep
from .tasks import start_backtest, start_sweep

RUNS_LISTED = 50
SWEEPS_LISTED = 20


# --------------------------------------------------------------------------------------------- 전략


@login_required
@require_safe
def index(request):
    """전략: the user's strategy configurations."""
    configs = selectors.with_strategy_names(selectors.configs_for(request.user))
    return render(request, "strategies/index.html", {"configs": configs})


def _config_form_page(request, config: StrategyConfig):
    form = ConfigForm(request.POST or None, instance=config, owner=request.user)
    if request.method == "POST" and form.is_valid():
        created = config.pk is None
        form.save()
        messages.success(request, _("Strategy created.") if created else _("Strategy saved."))
        return redirect("strategies:index")
    return render(request, "strategies/config_form.html", {"form": form, "config": config})


@login_required
def config_create(request):
    return _config_form_page(request, StrategyConfig(owner=request.user))


@login_required
def config_edit(request, pk: int):
    return _config_form_page(request, selectors.config_for(request.user, pk))


@login_required
@require_POST
def config_active(request, pk: int):
    """Activate or deactivate (`active=1|0`; without it, toggle). HTMX gets the row back."""
    config = selectors.config_for(request.user, pk)
    wanted = request.POST.get("active")
    config.is_active = (wanted == "1") if wanted in ("0", "1") else not config.is_active
    config.save(update_fields=["is_active", "updated_at"])
    if request.htmx:
        config = selectors.with_strategy_names([config])[0]
        return render(request, "strategies/partials/config_row.html", {"config": config})
    messages.success(request, _("Strategy activated.") if config.is_active else _("Strategy deactivated."))
    return redirect("strategies:index")


@login_required
@require_POST
def config_delete(request, pk: int):
    config = selectors.config_for(request.user, pk)
    try:
        delete_config(config)
    except ConfigInUse:
        message = _("%(name)s has orders on record, so it is kept; deactivate it to stop trading.") % {
            "name": config.name}
        messages.error(request, message)
        if request.htmx:  # reload the list, which shows the message
            return HttpResponse(headers={"HX-Redirect": reverse("strategies:index")})
        return redirect("strategies:index")
    if request.htmx:
        return HttpResponse("")  # the row is swapped for nothing
    messages.success(request, _("Strategy deleted."))
    return redirect("strategies:index")


@login_required
@require_safe
def param_fields(request):
    """HTMX: the parameter fields of the strategy chosen in a form's select (`?form=config|backtest|sweep`)."""
    key = request.GET.get("strategy_key") or DEFAULT_STRATEGY
    kind = request.GET.get("form", "config")
    if kind == "config":
        config_id = request.GET.get("config")
        config = selectors.config_for(request.user, int(config_id)) if config_id and config_id.isdigit() else None
        if config is None or config.strategy_key != key:
            config = StrategyConfig(owner=request.user, strategy_key=key)
        form = ConfigForm(instance=config, owner=request.user)
    else:
        form_class = SweepForm if kind == "sweep" else BacktestForm
        form = form_class(owner=request.user, initial={"strategy_key": key})
    return render(request, "strategies/partials/param_fields.html", {"form": form, "kind": kind})


# ----------------------------------------------------------------------------------------- 백테스트


def _initial_from_config(request) -> tuple[dict, dict | None]:
    config_id = request.GET.get("config", "")
    if not config_id.isdigit():
        return {}, None
    config = selectors.config_for(request.user, int(config_id))
    # "Backtest this config": every setting the live jobs use (strategy, parameters, universe, max
    # positions, cash per week), so the backtest trades as the config would.
    initial = {
        "strategy_key": config.strategy_key, "config": config.pk, "max_positions": config.max_positions,
        "cash_per_week": config.cash_per_week,
    }
    return initial, dict(config.params)


@login_required
def backtests(request):
    """백테스트: the run form (→ a pending run handed to the workers → its page), the user's runs and sweeps."""
    initial, initial_params = _initial_from_config(request) if request.method == "GET" else ({}, None)
    form = BacktestForm(request.POST or None, owner=request.user, initial=initial, initial_params=initial_params)
    if request.method == "POST" and form.is_valid():
        try:
            run = create_backtest_run(
                request.user, strategy_key=form.strategy_class.key, params=form.params(), **form.run_options()
            )
        except ParameterError as error:
            add_parameter_errors(form, error)
        except BacktestInputError as error:
            form.add_error(error.field if error.field in form.fields else None, str(error))
        else:
            start_backtest(run)
            return redirect("strategies:run_detail", pk=run.pk)
    return render(request, "strategies/backtests.html", {
        "form": form,
        "runs": selectors.with_strategy_names(selectors.run_list_for(request.user)[:RUNS_LISTED]),
        "sweeps": selectors.with_strategy_names(selectors.sweeps_for(request.user)[:SWEEPS_LISTED]),
    })


def _reason_labels() -> dict[str, str]:
    return {
        "stop_loss": _("stop loss"), "take_profit": _("take profit"), "signal": _("sell signal"),
        "week_end": _("week end"),
    }


def _run_header(run: BacktestRun) -> dict:
    labels = selectors.parameter_labels(run.strategy_key)
    return {
        "strategy_name": selectors.strategy_name(run.strategy_key),
        "params": [(labels.get(name, name), value) for name, value in run.params.items()],
    }


@login_required
@require_safe
def run_detail(request, pk: int):
    """One run: progress while it runs; then metrics next to buy-and-hold, charts, monthly returns, trades."""
    run = selectors.run_for(request.user, pk)
    context = {"run": run, **_run_header(run)}
    if run.status == RunStatus.DONE:
        rows = selectors.metric_rows([run.metrics], benchmark=run.benchmark or {})
        trades, trade_count = selectors.trades_for_page(run)
        reasons = _reason_labels()
        names = selectors.instrument_names({trade["code"] for trade in trades})
        context.update({
            "metric_rows": rows,
            "chart": selectors.run_chart_payload(run, {
                "equity": _("Strategy"), "benchmark": _("Buy and hold (equal weight)"),
                "drawdown": _("Strategy drawdown"), "benchmark_drawdown": _("Buy-and-hold drawdown"),
            }),
            "monthly": selectors.monthly_returns(run.equity or [], float(run.initial_cash)),
            "months": range(1, 13),
            "trades": [
                {**trade, "name": names.get(trade["code"], ""), "reason_label": reasons.get(trade["reason"], trade["reason"])}
                for trade in trades
            ],
            "trade_count": trade_count,
        })
    return render(request, "strategies/run_detail.html", context)


@login_required
@require_safe
def run_status(request, pk: int):
    """HTMX, polled every second while the run is pending or running: the progress bar. When the run
    has finished, the page reloads itself to show the results (or the error)."""
    run = selectors.run_for(request.user, pk)
    if request.htmx and run.status in (RunStatus.DONE, RunStatus.FAILED):
        response = HttpResponse("")
        response["HX-Refresh"] = "true"
        return response
    return render(request, "strategies/partials/run_status.html", {"run": run})


@login_required
@require_safe
def compare(request):
    """Two of the user's finished runs side by side: metrics and both equity curves on one chart."""
    ids = [value for value in request.GET.getlist("run") if value.isdigit()][:2]
    runs = [selectors.run_for(request.user, int(pk)) for pk in ids]
    context = {
        "choices": selectors.with_strategy_names(selectors.comparable_runs_for(request.user)[:200]),
        "selected": [run.pk for run in runs],
    }
    if len(runs) == 2:
        if any(run.status != RunStatus.DONE for run in runs):
            context["not_done"] = [run for run in runs if run.status != RunStatus.DONE]
        else:
            labels = [f"#{run.pk} {selectors.strategy_name(run.strategy_key)}" for run in runs]
            rows = selectors.metric_rows([run.metrics for run in runs])
            context.update({
                "runs": [{"run": run, "label": label, **_run_header(run)} for run, label in zip(runs, labels, strict=True)],
                "metric_rows": rows,
                "chart": selectors.compare_chart_payload(runs, labels),
            })
    elif ids:
        context["pick_two"] = True
    return render(request, "strategies/compare.html", context)


# --------------------------------------------------------------------------------------------- sweeps


@login_required
def sweep_create(request):
    """Parameter sweep: a grid of values per parameter → every combination in one shared pass on a worker."""
    form = SweepForm(request.POST or None, owner=request.user,
                     initial={"strategy_key": request.GET.get("strategy_key") or DEFAULT_STRATEGY})
    if request.method == "POST" and form.is_valid():
        try:
            sweep = create_sweep(
                request.user, strategy_key=form.strategy_class.key, grid=form.cleaned_data["grid"],
                **form.run_options(),
            )
        except BacktestInputError as error:
            form.add_error(error.field if error.field in form.fields else None, str(error))
        else:
            start_sweep(sweep)
            return redirect("strategies:sweep_detail", pk=sweep.pk)
    return render(request, "strategies/sweep_form.html", {"form": form, "max_runs": MAX_SWEEP_RUNS})


def _sweep_context(request, sweep) -> dict:
    rows, total = selectors.sweep_rows(sweep)
    labels = selectors.parameter_labels(sweep.strategy_key)
    return {
        "sweep": sweep,
        "rows": rows,
        "total_sets": total,
        "rows_cut": total > len(rows),
        "progress": selectors.sweep_progress(sweep),
        "heatmap": selectors.sweep_heatmap(
            sweep, x=request.GET.get("x"), y=request.GET.get("y"), metric=request.GET.get("metric")
        ),
        "statistics": selectors.sweep_statistics_view(sweep),
        "param_names": [labels.get(name, name) for name in sweep.grid],
        "grid_items": [(labels.get(name, name), values) for name, values in sweep.grid.items()],
        "strategy_name": selectors.strategy_name(sweep.strategy_key),
        "settings": sweep.settings,
    }


@login_required
@require_safe
def sweep_detail(request, pk: int):
    sweep = selectors.sweep_for(request.user, pk)
    return render(request, "strategies/sweep_detail.html", _sweep_context(request, sweep))


@login_required
@require_safe
def sweep_results(request, pk: int):
    """HTMX, polled every second while the sweep runs; also the heat map's axis and metric choice."""
    sweep = selectors.sweep_for(request.user, pk)
    return render(request, "strategies/partials/sweep_results.html", _sweep_context(request, sweep))


@login_required
@require_POST
def sweep_set_backtest(request, pk: int, index: int):
    """One set of a finished sweep as a full backtest (trades, equity, drawdown) → its run page."""
    sweep = selectors.sweep_for(request.user, pk)
    try:
        run = backtest_from_sweep(sweep, index, request.user)
    except BacktestInputError as error:
        messages.error(request, str(error))
        return redirect("strategies:sweep_detail", pk=sweep.pk)
    start_backtest(run)
    return redirect("strategies:run_detail", pk=run.pk)
