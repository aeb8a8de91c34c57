"""Forms generated from a strategy's declared parameters (strategies.library.base.Parameter): the
admin and the 전략 page use the same form, so bounds and messages are the library's own."""

from __future__ import annotations

from decimal import Decimal
from math import prod

from django import forms
from django.urls import reverse
from django.utils.http import urlencode
from django.utils.translation import gettext_lazy as _

from strategies.library import all_strategies, get_strategy
from strategies.library.base import Parameter, ParameterError
from strategies.research.sweep import MAX_SETS

from . import selectors, texts, validators
from .models import StrategyConfig, UniverseMode
from .services import BacktestInputError, check_period, universe_for

PARAM_PREFIX = "param_"


def strategy_choices() -> list[tuple[str, str]]:
    return [(key, f"{texts.strategy_name(cls)} ({key})") for key, cls in all_strategies().items()]


def field_for(parameter: Parameter, initial) -> forms.Field:
    """A form field for one declared parameter; the library's clean() gives the bound checks and
    their Korean messages."""
    common = {"label": texts.parameter_label(parameter), "help_text": texts.parameter_help(parameter), "initial": initial}
    if parameter.type == "choice":
        return forms.ChoiceField(choices=[(c, c) for c in parameter.choices], **common)
    # Floats take any value within the bounds: browsers count `step` from `min`, so a declared step
    # (a UI hint) would make them refuse valid values such as the default take-profit 0.11.
    widget_attrs = {"step": "1" if parameter.type == "int" else "any"}
    if parameter.min is not None:
        widget_attrs["min"] = parameter.min
    if parameter.max is not None:
        widget_attrs["max"] = parameter.max
    field_class = forms.IntegerField if parameter.type == "int" else forms.FloatField
    return field_class(widget=forms.NumberInput(attrs=widget_attrs), **common)


class ParameterFieldsMixin:
    """For forms carrying one `param_<name>` field per declared parameter of `self.strategy_class`."""

    strategy_class = None

    def strategy_description(self) -> str:
        """The chosen strategy's description in the active language ('' without a strategy)."""
        return texts.strategy_description(self.strategy_class) if self.strategy_class is not None else ""

    def param_fields(self):
        return [self[name] for name in self.fields if name.startswith(PARAM_PREFIX)]

    def clean_parameters(self, cleaned: dict) -> dict:
        """Each value through its declaration's clean(): types, bounds and the Korean messages."""
        if self.strategy_class is None:
            return cleaned
        for parameter in self.strategy_class.parameter_specs():
            name = PARAM_PREFIX + parameter.name
            if name in cleaned:
                try:
                    cleaned[name] = parameter.clean(cleaned[name])
                except ValueError as error:
                    self.add_error(name, str(error))
        return cleaned

    def params(self) -> dict:
        return {
            name[len(PARAM_PREFIX):]: value for name, value in self.cleaned_data.items() if name.startswith(PARAM_PREFIX)
        }


class StrategyConfigForm(ParameterFieldsMixin, forms.ModelForm):
    """The strategy config with one field per declared parameter of the chosen strategy."""

    strategy_key = forms.ChoiceField(label=_("strategy"), choices=())

    class Meta:
        model = StrategyConfig
        fields = [
            "name", "strategy_key", "universe_mode", "universe_codes", "universe_top_n", "max_positions",
            "cash_per_week", "drift_alert_bps", "broker_account", "is_active",
        ]

    def __init__(self, *args, owner=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.owner = owner or (self.instance.owner if self.instance.owner_id else None)
        self.fields["strategy_key"].choices = strategy_choices()
        for name, low, high in (
            ("universe_top_n", 1, validators.MAX_UNIVERSE_CODES), ("max_positions", 1, validators.MAX_POSITIONS),
            ("cash_per_week", 0, validators.MAX_CASH_KRW), ("drift_alert_bps", 1, validators.MAX_DRIFT_ALERT_BPS),
        ):
            if name in self.fields:  # the browser's hint; the model's validators decide
                self.fields[name].widget.attrs.update({"min": low, "max": high})
        if "broker_account" in self.fields and self.owner is not None:
            self.fields["broker_account"].queryset = self.owner.broker_accounts.all()
        if "drift_alert_bps" in self.fields:  # optional in the form: empty keeps the stored (or default) threshold
            self.fields["drift_alert_bps"].required = False
        key = self.data.get(self.add_prefix("strategy_key")) or self.instance.strategy_key or "mean_reversion"
        try:
            self.strategy_class = get_strategy(key)
        except KeyError:
            self.strategy_class = None
            return
        self.fields["strategy_key"].initial = key
        if not self.instance.strategy_key:
            # A new config: select the strategy whose parameter fields are shown.
            self.initial["strategy_key"] = key
        stored = self.instance.params if self.instance.strategy_key == key else {}
        for parameter in self.strategy_class.parameter_specs():
            initial = stored.get(parameter.name, parameter.default)
            self.fields[PARAM_PREFIX + parameter.name] = field_for(parameter, initial)

    def clean(self):
        # The universe, the counts and the amounts are the model's rules (StrategyConfig.clean() and
        # its field validators), checked in _post_clean for this form, the admin and the API alike.
        return self.clean_parameters(super().clean())

    def _post_clean(self):
        super()._post_clean()
        if self.strategy_class is None or self.errors:
            return
        try:
            self.instance.params = self.strategy_class.validate_params(self.params())
        except ParameterError as error:  # rules across parameters (e.g. short window < long window)
            for name, message in error.errors.items():
                field = PARAM_PREFIX + name
                self.add_error(field if field in self.fields else None, message)
        if self.owner is not None and not self.instance.owner_id:
            self.instance.owner = self.owner

    def clean_drift_alert_bps(self):
        value = self.cleaned_data.get("drift_alert_bps")
        return self.instance.drift_alert_bps if value is None else value


# --- the 전략 page's config form and the 백테스트 page's run and sweep forms ---------------------------

DEFAULT_STRATEGY = "mean_reversion"
MAX_SWEEP_RUNS = MAX_SETS  # one shared pass (strategies.research.sweep) runs a thousand sets in seconds


def strategy_class_or_none(key: str | None):
    try:
        return get_strategy(key or DEFAULT_STRATEGY)
    except KeyError:
        return None


def reload_attrs(kind: str, config_pk: int | None = None) -> dict:
    """The strategy select's HTMX attributes: on change, fetch the chosen strategy's parameter fields."""
    query = {"form": kind, **({"config": config_pk} if config_pk else {})}
    return {
        "hx-get": f"{reverse('strategies:param_fields')}?{urlencode(query)}", "hx-target": "#param-fields",
        "hx-trigger": "change", "hx-include": "this", "hx-swap": "innerHTML", "hx-indicator": "#param-loading",
    }


def add_parameter_errors(form: forms.Form, error: ParameterError) -> None:
    for name, message in error.errors.items():
        field = PARAM_PREFIX + name
        form.add_error(field if field in form.fields else None, message)


class ConfigForm(StrategyConfigForm):
    """The generated strategy-config form, plus the per-owner unique name as a form error."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["strategy_key"].widget.attrs.update(reload_attrs("config", self.instance.pk))
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

    strategy_key = forms.ChoiceField(label=_("strategy"), choices=())
    codes = forms.CharField(
        label=_("codes"), required=False, max_length=20_000,
        help_text=_("6-digit codes separated by commas or spaces."),
        widget=forms.TextInput(attrs={"placeholder": "005930, 000660, 035720"}),
    )
    config = forms.ModelChoiceField(
        label=_("or the universe of a strategy"), required=False, queryset=StrategyConfig.objects.none(),
        empty_label=_("— use the codes above —"),
    )
    start = forms.DateField(label=_("start"), widget=forms.DateInput(attrs={"type": "date"}))
    end = forms.DateField(label=_("end"), widget=forms.DateInput(attrs={"type": "date"}))
    initial_cash = forms.IntegerField(
        label=_("initial cash (KRW)"), min_value=validators.MIN_INITIAL_CASH_KRW, max_value=validators.MAX_CASH_KRW,
        initial=10_000_000, widget=forms.NumberInput(attrs={"step": "100000"}),
    )
    max_positions = forms.IntegerField(
        label=_("max positions"), min_value=1, max_value=validators.MAX_POSITIONS, initial=10
    )
    cash_per_week = forms.IntegerField(
        label=_("cash per week (KRW)"), required=False, min_value=0, max_value=validators.MAX_CASH_KRW,
        help_text=_("Caps each week's buys like the live strategy does. Empty: every week spends all the cash."),
        widget=forms.NumberInput(attrs={"step": "100000"}),
    )
    commission = forms.DecimalField(
        label=_("commission rate"), required=False, min_value=0, max_value=Decimal("0.05"), max_digits=10,
        decimal_places=8, help_text=_("Empty: the KRX fee table. A fraction per side, e.g. 0.00015."),
        widget=forms.NumberInput(attrs={"step": "any", "placeholder": "0.00015"}),
    )
    tax = forms.DecimalField(
        label=_("transaction tax rate"), required=False, min_value=0, max_value=Decimal("0.05"), max_digits=10,
        decimal_places=8, help_text=_("Empty: the dated tax table by market. A fraction of each sell, e.g. 0.002."),
        widget=forms.NumberInput(attrs={"step": "any", "placeholder": "0.002"}),
    )
    slippage_ticks = forms.IntegerField(
        label=_("slippage (ticks)"), min_value=0, max_value=validators.MAX_SLIPPAGE_TICKS, initial=0
    )
    participation_cap = forms.DecimalField(
        label=_("participation cap"), required=False, min_value=Decimal("0.0001"), max_value=Decimal(1),
        max_digits=6, decimal_places=4,
        help_text=_("A buy takes at most this fraction of the entry day's volume, e.g. 0.05 = 5%. Empty: no cap."),
        widget=forms.NumberInput(attrs={"step": "0.0001", "placeholder": "0.05"}),
    )
    spread_ticks = forms.IntegerField(
        label=_("small-cap spread (ticks)"), required=False, min_value=0, max_value=validators.MAX_SPREAD_TICKS,
        initial=0, help_text=_("Extra ticks paid on each buy and sell of a small cap (the bid-ask spread)."),
    )
    small_cap_value = forms.IntegerField(
        label=_("small-cap traded value (KRW)"), required=False, min_value=0, max_value=validators.MAX_CASH_KRW,
        initial=1_000_000_000, widget=forms.NumberInput(attrs={"step": "100000000"}),
        help_text=_("A stock whose average daily traded value over the previous 20 days is below this is a small cap."),
    )
    universe_top_n = forms.IntegerField(
        label=_("top N as of each week"), required=False, min_value=1, max_value=validators.MAX_UNIVERSE_CODES,
        help_text=_("Only the N stocks with the largest traded value over the previous 60 days are bought each "
                    "week, delisted ones included while they traded. Empty: every listed code."),
    )

    def __init__(self, *args, owner, initial_params: dict | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.owner = owner
        self.fields["strategy_key"].choices = strategy_choices()
        self.fields["strategy_key"].widget.attrs.update(reload_attrs(self.kind))
        self.fields["config"].queryset = selectors.configs_for(owner)
        start, end = selectors.default_period(selectors.bar_period())
        self.fields["start"].initial, self.fields["end"].initial = start, end
        key = self.data.get(self.add_prefix("strategy_key")) or self.initial.get("strategy_key") or DEFAULT_STRATEGY
        self.strategy_class = strategy_class_or_none(key)
        if self.strategy_class is None:
            return
        self.fields["strategy_key"].initial = self.strategy_class.key
        for parameter in self.strategy_class.parameter_specs():
            initial = (initial_params or {}).get(parameter.name, parameter.default)
            self.fields[PARAM_PREFIX + parameter.name] = self.parameter_field(parameter, initial)

    def parameter_field(self, parameter, initial) -> forms.Field:
        raise NotImplementedError

    def option_fields(self):
        return [self[name] for name in ("initial_cash", "max_positions", "cash_per_week")]

    def cost_fields(self):
        return [self[name] for name in ("commission", "tax", "slippage_ticks", "participation_cap", "spread_ticks",
                                        "small_cap_value", "universe_top_n")]

    def clean(self):
        cleaned = super().clean()
        start, end = cleaned.get("start"), cleaned.get("end")
        if start and end and start >= end:
            self.add_error("end", _("The end must be after the start."))
            start = end = None
        config = cleaned.get("config")
        typed = validators.split_codes(cleaned.get("codes"))
        codes: list[str] = []
        if typed:
            try:
                codes = validators.clean_codes(typed)
            except forms.ValidationError as error:
                self.add_error("codes", error)
            else:
                if start and end:
                    self._check_period(codes, start, end)
        elif config is not None:
            # The period against the listed codes' bars, or every stored bar for a top-N universe
            # (chosen on the end date, so it needs a date with bars first).
            listed = config.code_list if config.universe_mode == UniverseMode.CODES else None
            if start and end and self._check_period(listed, start, end):
                codes = universe_for(config, end)
                if not codes:
                    self.add_error("config", _("This strategy's universe has no stocks with bars in the period."))
        elif "codes" not in self.errors:
            self.add_error("codes", _("List at least one code, or choose a strategy's universe."))
        cleaned["code_list"] = codes
        return cleaned

    def _check_period(self, codes, start, end) -> bool:
        try:
            check_period(codes, start, end)
        except BacktestInputError as error:
            self.add_error(error.field if error.field in self.fields else None, str(error))
            return False
        return True

    def run_options(self) -> dict:
        data = self.cleaned_data
        return {
            "codes": data["code_list"], "start": data["start"], "end": data["end"],
            "initial_cash": data["initial_cash"], "max_positions": data["max_positions"],
            "cash_per_week": data.get("cash_per_week"), "commission": data.get("commission"),
            "tax": data.get("tax"), "slippage_ticks": data.get("slippage_ticks") or 0, "config": data.get("config"),
            "participation_cap": data.get("participation_cap"), "spread_ticks": data.get("spread_ticks") or 0,
            "small_cap_value": 1_000_000_000 if data.get("small_cap_value") is None else data["small_cap_value"],
            "universe_top_n": data.get("universe_top_n"),
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
            label=texts.parameter_label(parameter), required=False, max_length=500, help_text=help_text,
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
                None, _("%(runs)s combinations: at most %(max)s per sweep.") % {
                    "runs": f"{runs:,}", "max": f"{MAX_SWEEP_RUNS:,}"}
            )
        cleaned["grid"] = grid
        return cleaned
