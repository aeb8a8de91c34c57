"""The walk-forward page's form: the sweep form's grid, stocks, period and costs, plus the windows
and the objective. The service (`strategies.walk_forward.create_walk_forward`) checks everything
again, as it does for the API and the command."""

from __future__ import annotations

from django import forms
from django.utils.translation import gettext_lazy as _

from . import selectors
from .forms import SweepForm
from .models import WalkForwardObjective, WalkForwardRun
from .services import RUN_SETTINGS
from .walk_forward import MAX_WINDOW_WEEKS

DEFAULT_YEARS = 3  # 104 + 26 weeks by default: the form's period must hold one in-sample + out-of-sample window


def _years_before(day, years: int):
    try:
        return day.replace(year=day.year - years)
    except ValueError:  # 29 February
        return day.replace(year=day.year - years, day=28)


class WalkForwardForm(SweepForm):
    """A parameter grid (comma-separated values per parameter) and the walk-forward windows."""

    # The strategy select reloads the same grid fields as the sweep form's (`?form=sweep`).
    kind = "sweep"

    in_sample_weeks = forms.IntegerField(
        label=_("in-sample weeks"), min_value=1, max_value=MAX_WINDOW_WEEKS,
        initial=WalkForwardRun._meta.get_field("in_sample_weeks").default,
        help_text=_("The weeks on which the parameters are chosen (104 weeks: about two years)."),
    )
    out_of_sample_weeks = forms.IntegerField(
        label=_("out-of-sample weeks"), min_value=1, max_value=MAX_WINDOW_WEEKS,
        initial=WalkForwardRun._meta.get_field("out_of_sample_weeks").default,
        help_text=_("The following weeks traded with the chosen parameters; the windows move on by this many weeks."),
    )
    anchored = forms.BooleanField(
        label=_("anchored"), required=False,
        help_text=_("Every in-sample window starts at the first week (it grows) instead of rolling forward."),
    )
    objective = forms.ChoiceField(
        label=_("objective"), choices=WalkForwardObjective.choices, initial=WalkForwardObjective.SHARPE,
        help_text=_("What \"best\" means when the parameters are chosen in each in-sample window."),
    )

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        stored = selectors.bar_period()
        _start, end = selectors.default_period(stored)
        start = _years_before(end, DEFAULT_YEARS)
        if stored is not None:
            start = max(start, stored[0])
        self.fields["start"].initial = start

    def window_fields(self):
        return [self[name] for name in ("in_sample_weeks", "out_of_sample_weeks", "objective", "anchored")]

    def walk_forward_options(self) -> dict:
        """The keyword arguments of `create_walk_forward` (with `strategy_key` and `grid`)."""
        # The run settings a walk-forward takes (a config's universe is in `codes` already).
        options = {name: value for name, value in self.run_options().items() if name in RUN_SETTINGS}
        data = self.cleaned_data
        return {
            **options, "strategy_key": self.strategy_class.key, "grid": data["grid"],
            "in_sample_weeks": data["in_sample_weeks"], "out_of_sample_weeks": data["out_of_sample_weeks"],
            "anchored": data["anchored"], "objective": data["objective"],
        }
