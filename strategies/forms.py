"""Forms generated from a strategy's declared parameters (strategies.library.base.Parameter): the
admin and the 전략 page use the same form, so bounds and messages are the library's own."""

from __future__ import annotations

from django import forms
from django.utils.translation import gettext_lazy as _

from strategies.library import all_strategies, get_strategy
from strategies.library.base import Parameter, ParameterError

from .models import StrategyConfig

PARAM_PREFIX = "param_"


def strategy_choices() -> list[tuple[str, str]]:
    return [(key, f"{cls.name or key} ({key})") for key, cls in all_strategies().items()]


def field_for(parameter: Parameter, initial) -> forms.Field:
    """A form field for one declared parameter; the library's clean() gives the bound checks and
    their Korean messages."""
    common = {"label": parameter.label or parameter.name, "help_text": parameter.help, "initial": initial}
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
            "cash_per_week", "broker_account", "is_active",
        ]

    def __init__(self, *args, owner=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.owner = owner or (self.instance.owner if self.instance.owner_id else None)
        self.fields["strategy_key"].choices = strategy_choices()
        if "broker_account" in self.fields and self.owner is not None:
            self.fields["broker_account"].queryset = self.owner.broker_accounts.all()
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
        cleaned = self.clean_parameters(super().clean())
        if cleaned.get("universe_mode") == "codes" and not (cleaned.get("universe_codes") or "").strip():
            self.add_error("universe_codes", _("List at least one code, or choose the top-N universe."))
        return cleaned

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
