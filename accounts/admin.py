from __future__ import annotations

from django.contrib import admin
from django.contrib.auth.admin import UserAdmin
from django.http import HttpResponse
from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from django.utils.translation import pgettext_lazy

from . import audit, selectors, services, step_up
from .forms import BrokerAccountForm
from .models import BrokerAccount, SecurityEvent, User


@admin.register(User)
class SiteUserAdmin(UserAdmin):
    pass


class BrokerAccountAdminForm(BrokerAccountForm):
    class Meta(BrokerAccountForm.Meta):
        fields = ["owner", *BrokerAccountForm.Meta.fields]


@admin.register(BrokerAccount)
class BrokerAccountAdmin(admin.ModelAdmin):
    """Secrets are never shown: list and detail give masked values, the form takes new ones only."""

    form = BrokerAccountAdminForm
    list_display = ["name", "owner", "mode", "masked_app_key", "masked_account_number", "is_default", "updated_at"]
    list_filter = ["mode", "is_default"]
    search_fields = ["name", "owner__username"]
    readonly_fields = ["live_trading_confirmed_at", "masked_app_key", "masked_app_secret", "masked_account_number", "created_at", "updated_at"]

    def get_queryset(self, request):
        return selectors.broker_accounts_for(request.user)

    @admin.display(description=_("app key"))
    def masked_app_key(self, obj):
        return obj.masked_app_key

    @admin.display(description=_("app secret"))
    def masked_app_secret(self, obj):
        return obj.masked_app_secret

    @admin.display(description=_("account number"))
    def masked_account_number(self, obj):
        return obj.masked_account_number

    def save_model(self, request, obj, form, change):
        # Keys added or changed, or real money on: the staff member's second factor within the last minutes.
        step_up.require_step_up_for_broker_change(request, obj, form.changes())
        services.save_broker_account(obj, **form.changes())

    def delete_model(self, request, obj):
        services.delete_broker_account(obj)


@admin.register(SecurityEvent)
class SecurityEventAdmin(admin.ModelAdmin):
    """The audit trail, read-only for staff: nobody adds, changes or deletes an event here; filters by
    kind, date and user; the selected events (or all that match: "select all") export as CSV."""

    list_display = ["created_at", "kind", "username", "actor_username", "ip_address", "broker_account_label",
                    "summary"]
    list_filter = ["kind", ("created_at", admin.DateFieldListFilter), ("user", admin.RelatedOnlyFieldListFilter)]
    search_fields = ["username", "actor_username", "ip_address", "broker_account_label", "user_agent"]
    readonly_fields = ["created_at", "kind", "user", "username", "actor", "actor_username", "ip_address",
                       "user_agent", "device", "broker_account", "broker_account_label", "detail", "summary"]
    fields = readonly_fields
    actions = ["export_csv"]
    list_per_page = 100

    def has_module_permission(self, request):
        return self.has_view_permission(request)

    def has_view_permission(self, request, obj=None):
        return bool(request.user.is_active and request.user.is_staff)

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    @admin.display(description=pgettext_lazy("audit", "summary"))
    def summary(self, obj):
        return audit.event_summary(obj)

    @admin.action(description=pgettext_lazy("audit", "Export the selected events as CSV"), permissions=["view"])
    def export_csv(self, request, queryset):
        response = HttpResponse(content_type="text/csv; charset=utf-8")
        stamp = timezone.localtime().strftime("%Y%m%d-%H%M")
        response["Content-Disposition"] = f'attachment; filename="security-events-{stamp}.csv"'
        audit.write_csv(queryset.order_by("-created_at", "-pk"), response)
        return response
