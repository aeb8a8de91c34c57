"""전략 and 백테스트 pages. Views stay thin: forms check the input, `services` act, `selectors` read
(owner-scoped: another user's config, run or sweep is a 404).

The backtest and sweep forms live here because they are page forms only; the API validates the same
inputs with serializers and both end in `services.create_backtest_run` / `services.create_sweep`.
"""

from __future__ import annotations

from decimal import Decimal
from math import prod

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.http import urlencode
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.http import require_POST, require_safe

from strategies.library import get_strategy
from strategies.library.base import ParameterError

from . import selectors
from .forms import PARAM_PREFIX, ParameterFieldsMixin, StrategyConfigForm, field_for, strategy_choices
from .models import BacktestRun, RunStatus, StrategyConfig
from .services import BacktestInputError, create_backtest_run, create_sweep, normalise_codes, universe_for
from .tasks import start_backtest, start_sweep

DEFAULT_STRATEGY = "mean_reversion"
MAX_SWEEP_RUNS = 100
RUNS_LISTED = 50
SWEEPS_LISTED = 20


# ------------------------------------------------------------------------------------------------ forms


def _strategy_class(key: str | None):
    try:
        return get_strategy(key or DEFAULT_STRATEGY)
    except KeyError:
        return None


def _reload_attrs(kind: str, config_pk: int | None = None) -> dict:
    """The strategy select's HTMX attributes: on change, fetch the chosen strategy's parameter fields."""
    query = {"form": kind, **({"config": config_pk} if config_pk else {})}
    return {
        "hx-get": f"{reverse('strategies:param_fields')}?{urlencode(query)}", "hx-target": "#param-fields",
        "hx-trigger": "change", "hx-include": "this", "hx-swap": "innerHTML", "hx-indicator": "#param-loading",
    }


def _add_parameter_errors(form: forms.Form, error: ParameterError) -> None:
    for name, message in error.errors.items():
        field = PARAM_PREFIX + name
        form.add_error(field if field in form.fields else None, message)


class ConfigForm(StrategyConfigForm):
    """The generated strategy-config form, plus the per-owner unique name as a form error."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["strategy_key"].widget.attrs.update(_reload_attrs("config", self.instance.pk))
        self.fields["universe_codes"].widget.attrs["rows"] = 2

    def clean_name(self):
        name = self.cleaned_data["name"]
        owner = self.owner or (self.instance.owner if self.instance.owner_id else None)
        if owner is not None and selectors.configs_for(owner).filter(name=name).exclude(pk=self.instance.pk).exists():
            raise forms.ValidationError(_("You already have a strategy with this name."))
        return name


class RunOptionsForm(ParameterFieldsMixin, forms.Form):
    """What a backtest runs on: strategy, universe (codes or a config's universe), period, sizing, costs."""

    kind = "backtest"

    strategy_key = forms.ChoiceField(label=gettext_lazy("strategy"), choices=())
    codes = forms.CharField(
        label=gettext_lazy("codes"), required=False, max_length=20_000,
        help_text=gettext_lazy("6-digit codes separated by commas or spaces."),
        widget=forms.TextInput(attrs={"placeholder": "005930, 000660, 035720"}),
    )
    config = forms.ModelChoiceField(
        label=gettext_lazy("or the universe of a strategy"), required=False, queryset=StrategyConfig.objects.none(),
        empty_label=gettext_lazy("— use the codes above —"),
    )
    start = forms.DateField(label=gettext_lazy("start"), widget=forms.DateInput(attrs={"type": "date"}))
    end = forms.DateField(label=gettext_lazy("end"), widget=forms.DateInput(attrs={"type": "date"}))
    initial_cash = forms.IntegerField(
        label=gettext_lazy("initial cash (KRW)"), min_value=100_000, max_value=1_000_000_000_000, initial=10_000_000,
        widget=forms.NumberInput(attrs={"step": "100000"}),
    )
    max_positions = forms.IntegerField(label=gettext_lazy("max positions"), min_value=1, max_value=200, initial=10)
    commission = forms.DecimalField(
        label=gettext_lazy("commission rate"), required=False, min_value=0, max_value=Decimal("0.05"), max_digits=10,
        decimal_places=8, help_text=gettext_lazy("Empty: the KRX fee table. A fraction per side, e.g. 0.00015."),
        widget=forms.NumberInput(attrs={"step": "any", "placeholder": "0.00015"}),
    )
    tax = forms.DecimalField(
        label=gettext_lazy("transaction tax rate"), required=False, min_value=0, max_value=Decimal("0.05"), max_digits=10,
        decimal_places=8, help_text=gettext_lazy("Empty: the dated tax table by market. A fraction of each sell, e.g. 0.002."),
        widget=forms.NumberInput(attrs={"step": "any", "placeholder": "0.002"}),
    )
    slippage_ticks = forms.IntegerField(label=gettext_lazy("slippage (ticks)"), min_value=0, max_value=50, initial=0)

    def __init__(self, *args, owner, initial_params: dict | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.owner = owner
        self.fields["strategy_key"].choices = strategy_choices()
        self.fields["strategy_key"].widget.attrs.update(_reload_attrs(self.kind))
        self.fields["config"].queryset = selectors.configs_for(owner)
        start, end = selectors.default_period()
        self.fields["start"].initial, self.fields["end"].initial = start, end
        key = self.data.get(self.add_prefix("strategy_key")) or self.initial.get("strategy_key") or DEFAULT_STRATEGY
        self.strategy_class = _strategy_class(key)
        if self.strategy_class is None:
            return
        self.fields["strategy_key"].initial = self.strategy_class.key
        for parameter in self.strategy_class.parameter_specs():
            initial = (initial_params or {}).get(parameter.name, parameter.default)
            self.fields[PARAM_PREFIX + parameter.name] = self.parameter_field(parameter, initial)

    def parameter_field(self, parameter, initial) -> forms.Field:
        raise NotImplementedError

    def option_fields(self):
        return [self[name] for name in ("initial_cash", "max_positions")]

    def cost_fields(self):
        return [self[name] for name in ("commission", "tax", "slippage_ticks")]

    def clean(self):
        cleaned = super().clean()
        start, end = cleaned.get("start"), cleaned.get("end")
        if start and end and start >= end:
            self.add_error("end", _("The end must be after the start."))
        codes = normalise_codes((cleaned.get("codes") or "").replace(",", " ").split())
        config = cleaned.get("config")
        if codes:
            unknown = selectors.unknown_codes(codes)
            if unknown:
                self.add_error("codes", _("Unknown codes: %(codes)s") % {"codes": ", ".join(unknown[:20])})
        elif config is not None and end:
            codes = universe_for(config, end)
            if not codes:
                self.add_error("config", _("This strategy's universe has no stocks with bars in the period."))
        elif "codes" not in self.errors:
            self.add_error("codes", _("List at least one code, or choose a strategy's universe."))
        cleaned["code_list"] = codes
        return cleaned

    def run_options(self) -> dict:
        data = self.cleaned_data
        return {
            "codes": data["code_list"], "start": data["start"], "end": data["end"],
            "initial_cash": data["initial_cash"], "max_positions": data["max_positions"],
            "commission": data.get("commission"), "tax": data.get("tax"),
            "slippage_ticks": data.get("slippage_ticks") or 0, "config": data.get("config"),
        }


class BacktestForm(RunOptionsForm):
    """One backtest: one value per declared parameter (bounds from the declaration)."""

    def parameter_field(self, parameter, initial):
        return field_for(parameter, initial)

    def clean(self):
        return self.clean_parameters(super().clean())


class SweepForm(RunOptionsForm):
    """A parameter grid: comma-separated values per parameter; every combination is one run."""

    kind = "sweep"

    def parameter_field(self, parameter, initial):
        values = ", ".join(parameter.choices) if parameter.type == "choice" else ""
        help_text = _("Comma-separated values, e.g. %(example)s. Empty: the default (%(default)s).") % {
            "example": values or self._example(parameter), "default": parameter.default,
        }
        return forms.CharField(
            label=parameter.label or parameter.name, required=False, max_length=500, help_text=help_text,
            initial=self._initial_values(parameter, initial),
            widget=forms.TextInput(attrs={"placeholder": str(parameter.default)}),
        )

    @staticmethod
    def _initial_values(parameter, initial) -> str:
        if isinstance(initial, list | tuple):
            return ", ".join(str(value) for value in initial)
        return ""

    @staticmethod
    def _example(parameter) -> str:
        if parameter.type == "int":
            base = int(parameter.default)
            low = int(parameter.min) if parameter.min is not None else base - 10
            return ", ".join(str(v) for v in sorted({max(low, base - 10), base, base + 10}))
        base = float(parameter.default)
        step = float(parameter.step or (abs(base) * 0.25 or 0.5))
        return ", ".join(f"{v:g}" for v in (base - step, base, base + step))

    def clean(self):
        cleaned = super().clean()
        if self.strategy_class is None:
            return cleaned
        grid: dict[str, list] = {}
        for parameter in self.strategy_class.parameter_specs():
            name = PARAM_PREFIX + parameter.name
            text = (cleaned.get(name) or "").strip()
            if not text:
                continue
            values, errors = [], []
            for item in (part.strip() for part in text.split(",")):
                if not item:
                    continue
                try:
                    value = parameter.clean(item)
                except ValueError as error:
                    errors.append(str(error))
                    continue
                if value not in values:
                    values.append(value)
            for message in errors:
                self.add_error(name, message)
            if values and not errors:
                grid[parameter.name] = values
        if not grid and not any(name.startswith(PARAM_PREFIX) for name in self.errors):
            self.add_error(None, _("Enter values for at least one parameter."))
        runs = prod(len(values) for values in grid.values()) if grid else 0
        if runs > MAX_SWEEP_RUNS:
            self.add_error(
                None, _("%(runs)d combinations: at most %(max)d runs per sweep.") % {"runs": runs, "max": MAX_SWEEP_RUNS}
            )
        cleaned["grid"] = grid
        return cleaned


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
    config.delete()
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
    initial = {"strategy_key": config.strategy_key, "config": config.pk, "max_positions": config.max_positions}
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
            _add_parameter_errors(form, error)
        except BacktestInputError as error:
            form.add_error(None, str(error))
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
    """Parameter sweep: a grid of values per parameter → one run per combination, fanned out to the workers."""
    form = SweepForm(request.POST or None, owner=request.user,
                     initial={"strategy_key": request.GET.get("strategy_key") or DEFAULT_STRATEGY})
    if request.method == "POST" and form.is_valid():
        try:
            sweep = create_sweep(
                request.user, strategy_key=form.strategy_class.key, grid=form.cleaned_data["grid"],
                **form.run_options(),
            )
        except ParameterError as error:
            _add_parameter_errors(form, error)
        except BacktestInputError as error:
            form.add_error(None, str(error))
        else:
            start_sweep(sweep)
            return redirect("strategies:sweep_detail", pk=sweep.pk)
    return render(request, "strategies/sweep_form.html", {"form": form, "max_runs": MAX_SWEEP_RUNS})


def _sweep_context(sweep) -> dict:
    rows = selectors.sweep_rows(sweep)
    labels = selectors.parameter_labels(sweep.strategy_key)
    return {
        "sweep": sweep,
        "rows": rows,
        "progress": selectors.sweep_progress(rows),
        "heatmap": selectors.sweep_heatmap(sweep, rows),
        "param_names": [labels.get(name, name) for name in sweep.grid],
        "grid_items": [(labels.get(name, name), values) for name, values in sweep.grid.items()],
        "strategy_name": selectors.strategy_name(sweep.strategy_key),
        "first_run": rows[0]["run"] if rows else None,
    }


@login_required
@require_safe
def sweep_detail(request, pk: int):
    return render(request, "strategies/sweep_detail.html", _sweep_context(selectors.sweep_for(request.user, pk)))


@login_required
@require_safe
def sweep_results(request, pk: int):
    """HTMX, polled every second while runs are unfinished: the results table and heat map."""
    return render(
        request, "strategies/partials/sweep_results.html", _sweep_context(selectors.sweep_for(request.user, pk))
    )
