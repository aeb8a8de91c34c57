from __future__ import annotations

from django.contrib import admin
from django.contrib.auth.admin import UserAdmin
from django.utils.translation import gettext_lazy as _

from . import selectors, services
from .forms import BrokerAccountForm
from .models import BrokerAccount, User


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
        services.save_broker_account(obj, **form.changes())

    def delete_model(self, request, obj):
        services.delete_broker_account(obj)
