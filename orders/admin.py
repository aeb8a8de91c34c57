from django import forms
from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.template.response import TemplateResponse
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from accounts.step_up import SensitiveAction, require_step_up

from . import controls, weekly
from .models import BrokerFillNotice, Fill, Order, TradeLog, TradingAlert, TradingControl, WeeklyDrift, WeeklyRun


def missed_slot_policy() -> str:
    """The missed-slot policy of `orders.weekly` in one paragraph (shown above the weekly runs)."""
    return gettext(
        "Missed slots: a missed entry still runs the same trading day until %(cutoff)s (Seoul time, "
        "ORDERS_ENTRY_CUTOFF); after that, that week's entry is skipped and the reason is recorded on the run. "
        "A missed check or exit is always caught up at the next opportunity: positions opened before the "
        "current week's entry day are sold at the next check."
    ) % {"cutoff": weekly.entry_cutoff().strftime("%H:%M")}


@admin.register(WeeklyRun)
class WeeklyRunAdmin(admin.ModelAdmin):
    list_display = ("trading_date", "iso_week", "job", "config", "status", "reason", "attempts", "finished_at")
    list_filter = ("job", "status")
    search_fields = ("config__name", "reason")
    readonly_fields = [f.name for f in WeeklyRun._meta.fields]

    def has_add_permission(self, request):
        return False

    def changelist_view(self, request, extra_context=None):
        extra_context = {**(extra_context or {}), "missed_slot_policy": missed_slot_policy()}
        return super().changelist_view(request, extra_context=extra_context)


class FillInline(admin.TabularInline):
    model = Fill
    extra = 0
    can_delete = False
    readonly_fields = ("cumulative_quantity", "quantity", "price", "amount", "commission", "tax", "filled_at")


@admin.register(Order)
class OrderAdmin(admin.ModelAdmin):
    list_display = ("trading_date", "code", "side", "quantity", "status", "reason", "filled_quantity",
                    "average_fill_price", "broker_order_no", "error_message")
    list_filter = ("status", "side", "reason", "trading_date")
    search_fields = ("code", "client_order_id", "broker_order_no")
    readonly_fields = [f.name for f in Order._meta.fields]
    inlines = [FillInline]

    def has_add_permission(self, request):
        return False


# ------------------------------------------------------------------------------------------- kill switch
class TradingControlForm(forms.ModelForm):
    """Limits and the halt reason are edited here; halting and resuming go through the actions, so
    who and when are always recorded."""

    class Meta:
        model = TradingControl
        fields = ["account", "halt_reason", "max_order_krw", "daily_loss_limit_krw"]

    def clean(self):
        cleaned = super().clean()
        if self.instance.pk is None:
            scope = TradingControl.scope_for(cleaned.get("account"))
            if TradingControl.objects.filter(scope=scope).exists():
                raise forms.ValidationError(gettext("There is already a trading control for this scope."))
            self.instance.scope = scope
        for name in ("max_order_krw", "daily_loss_limit_krw"):
            value = cleaned.get(name)
            if value is not None and value <= 0:
                self.add_error(name, gettext("Enter an amount above 0 KRW, or leave it empty for the default."))
        return cleaned


@admin.register(TradingControl)
class TradingControlAdmin(admin.ModelAdmin):
    form = TradingControlForm
    list_display = ("scope", "account", "halted", "halt_reason", "halted_at", "halted_by", "max_order_krw",
                    "daily_loss_limit_krw", "updated_at")
    list_filter = ("halted",)
    search_fields = ("scope", "account__name", "halt_reason")
    actions = ["halt_selected", "resume_selected"]

    def get_readonly_fields(self, request, obj=None):
        fixed = ["scope", "halted", "halted_at", "halted_by", "updated_at"]
        return fixed + ["account"] if obj is not None else fixed

    def changelist_view(self, request, extra_context=None):
        TradingControl.objects.get_or_create(scope=TradingControl.GLOBAL)  # the global switch is always listed
        return super().changelist_view(request, extra_context=extra_context)

    @admin.action(description=_("Halt trading (kill switch) for the selected scopes"), permissions=["change"])
    def halt_selected(self, request, queryset):
        for control in queryset:
            controls.halt_trading(account=control.account, user=request.user,
                                  reason=control.halt_reason or gettext("Halted in the admin."))
        self.message_user(request, gettext("Trading halted for %(count)d scope(s).") % {"count": len(queryset)},
                          messages.WARNING)

    @admin.action(description=_("Resume trading for the selected scopes"), permissions=["change"])
    def resume_selected(self, request, queryset):
        require_step_up(request, SensitiveAction.LIFT_KILL_SWITCH)  # → the second factor, then the action again
        for control in queryset:
            controls.resume_trading(account=control.account, user=request.user)
        self.message_user(request, gettext("Trading resumed for %(count)d scope(s).") % {"count": len(queryset)})


# ------------------------------------------------------------------------------------------- alerts
class AlertStateFilter(admin.SimpleListFilter):
    title = _("state")
    parameter_name = "state"

    def lookups(self, request, model_admin):
        return [("open", _("open")), ("resolved", _("resolved"))]

    def queryset(self, request, queryset):
        if self.value() == "open":
            return queryset.filter(resolved_at__isnull=True)
        if self.value() == "resolved":
            return queryset.filter(resolved_at__isnull=False)
        return queryset


class ResolveAlertsForm(forms.Form):
    note = forms.CharField(label=_("resolution note"), required=False, widget=forms.Textarea(attrs={"rows": 3}),
                           help_text=_("What was checked or fixed (optional). A resolved position mismatch is "
                                       "not reported again while the difference stays the same."))


@admin.register(TradingAlert)
class TradingAlertAdmin(admin.ModelAdmin):
    list_display = ("created_at", "kind", "account", "message", "blocks_entries", "is_open", "resolved_at",
                    "resolved_by")
    list_filter = (AlertStateFilter, "kind", "blocks_entries", "account")
    search_fields = ("message", "key", "account__name")
    readonly_fields = [f.name for f in TradingAlert._meta.fields]
    list_select_related = ("account", "resolved_by")
    actions = ["resolve_alerts"]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False  # alerts are closed through the resolve action only

    def has_delete_permission(self, request, obj=None):
        return False  # kept as the record of what happened

    def has_resolve_permission(self, request):
        opts = self.opts
        return request.user.has_perm(f"{opts.app_label}.change_{opts.model_name}")

    @admin.display(boolean=True, description=_("open"))
    def is_open(self, obj):
        return obj.is_open

    @admin.action(description=_("Resolve the selected alerts"), permissions=["resolve"])
    def resolve_alerts(self, request, queryset):
        alerts = list(queryset.filter(resolved_at__isnull=True).select_related("account"))
        if not alerts:
            self.message_user(request, gettext("None of the selected alerts is open."), messages.WARNING)
            return None
        form = ResolveAlertsForm(request.POST if "apply" in request.POST else None)
        if form.is_bound and form.is_valid():
            for alert in alerts:
                controls.resolve_alert(alert, user=request.user, note=form.cleaned_data["note"])
            self.message_user(request, gettext("%(count)d alert(s) resolved.") % {"count": len(alerts)})
            return None
        context = {
            **self.admin_site.each_context(request),
            "title": gettext("Resolve alerts"),
            "opts": self.opts,
            "alerts": alerts,
            "form": form,
            "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
        }
        return TemplateResponse(request, "admin/orders/tradingalert/resolve.html", context)


@admin.register(TradeLog)
class TradeLogAdmin(admin.ModelAdmin):
    """Read-only: trade logs are written by reconciliation with each fill."""

    list_display = ("timestamp", "user", "symbol", "side", "quantity", "price", "amount", "commission", "tax",
                    "reason")
    # By date through a range filter: a date hierarchy on a datetime needs MySQL's time zone tables.
    list_filter = ("side", "reason", ("timestamp", admin.DateFieldListFilter))
    search_fields = ("symbol", "user__username")
    list_select_related = ("user",)

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(BrokerFillNotice)
class BrokerFillNoticeAdmin(admin.ModelAdmin):
    """The broker's fill notices as received (read only): which were matched to our orders and when; an
    unmatched one belongs to an order placed outside this system (HTS, mobile) or to a lost answer that the
    reconciliation found."""

    list_display = ("notice_time", "account", "code", "side", "is_fill", "rejected", "quantity", "price", "order_no",
                    "order", "source", "applied_at")
    list_filter = ("source", "is_fill", "rejected", ("applied_at", admin.EmptyFieldListFilter))
    search_fields = ("code", "order_no")
    date_hierarchy = "trading_date"
    readonly_fields = [f.name for f in BrokerFillNotice._meta.fields]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False


@admin.register(WeeklyDrift)
class WeeklyDriftAdmin(admin.ModelAdmin):
    """Read-only: the rows are computed by `orders.drift` (task, `manage.py compare_live_backtest`)."""

    list_display = ("week_start", "config", "pnl_gap_krw", "gap_bps", "slippage_krw", "slippage_bps",
                    "missing_count", "extra_count", "qty_diff_count", "alert", "computed_at")
    list_filter = ("alert", "week_start")
    search_fields = ("config__name",)
    readonly_fields = [f.name for f in WeeklyDrift._meta.fields]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False
