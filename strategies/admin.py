from django.contrib import admin

from .forms import StrategyConfigForm
from .models import BacktestRun, BacktestSweep, StrategyConfig, WalkForwardRun


class StrategyConfigAdminForm(StrategyConfigForm):
    class Meta(StrategyConfigForm.Meta):
        fields = ["owner", *StrategyConfigForm.Meta.fields]


@admin.register(StrategyConfig)
class StrategyConfigAdmin(admin.ModelAdmin):
    """Parameters are edited as fields generated from the strategy's declarations (bounds enforced).
    Change the strategy and save once to get the new strategy's parameter fields."""

    form = StrategyConfigAdminForm
    list_display = ["name", "owner", "strategy_key", "universe_mode", "max_positions", "cash_per_week", "is_active"]
    list_filter = ["strategy_key", "is_active"]
    search_fields = ["name", "owner__username"]

    def get_fieldsets(self, request, obj=None):
        form = self.form(data=request.POST or None, instance=obj or StrategyConfig())
        params = [field.name for field in form.param_fields()]
        return [(None, {"fields": StrategyConfigAdminForm.Meta.fields}), ("Parameters", {"fields": params})]

    def get_form(self, request, obj=None, change=False, **kwargs):
        # Parameter fields are added by the form itself for the chosen strategy, so the model form
        # is built from the model fields only.
        kwargs["fields"] = StrategyConfigAdminForm.Meta.fields
        return super().get_form(request, obj, change=change, **kwargs)


@admin.register(BacktestRun)
class BacktestRunAdmin(admin.ModelAdmin):
    list_display = ["pk", "owner", "strategy_key", "start", "end", "status", "progress", "created_at"]
    list_filter = ["status", "strategy_key"]
    readonly_fields = ["metrics", "benchmark", "trades", "equity", "error", "finished_at", "created_at"]


@admin.register(BacktestSweep)
class BacktestSweepAdmin(admin.ModelAdmin):
    list_display = ["pk", "owner", "strategy_key", "status", "progress", "seconds", "created_at"]
    list_filter = ["status", "strategy_key"]
    readonly_fields = ["settings", "results", "statistics", "error", "seconds", "finished_at", "created_at"]


@admin.register(WalkForwardRun)
class WalkForwardRunAdmin(admin.ModelAdmin):
    list_display = ["pk", "owner", "strategy_key", "in_sample_weeks", "out_of_sample_weeks", "anchored", "objective",
                    "status", "created_at"]
    list_filter = ["status", "strategy_key", "objective"]
    readonly_fields = ["settings", "result", "error", "finished_at", "created_at"]
