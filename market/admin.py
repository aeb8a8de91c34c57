from django.contrib import admin

from .models import DailyBar, Instrument, KisAccessToken, PaperAccount, PaperOrder


@admin.register(Instrument)
class InstrumentAdmin(admin.ModelAdmin):
    list_display = ["code", "name", "market", "sector", "is_listed", "is_etf"]
    list_filter = ["market", "is_listed", "is_etf"]
    search_fields = ["code", "name", "name_en"]


@admin.register(DailyBar)
class DailyBarAdmin(admin.ModelAdmin):
    list_display = ["instrument", "date", "open", "high", "low", "close", "volume"]
    list_filter = ["date"]
    search_fields = ["instrument__code", "instrument__name"]
    raw_id_fields = ["instrument"]
    date_hierarchy = "date"


@admin.register(PaperAccount)
class PaperAccountAdmin(admin.ModelAdmin):
    list_display = ["broker_account", "cash", "initial_cash"]
    raw_id_fields = ["broker_account"]


@admin.register(PaperOrder)
class PaperOrderAdmin(admin.ModelAdmin):
    list_display = ["order_no", "account", "code", "side", "order_type", "quantity", "price", "status", "fill_price"]
    list_filter = ["status", "side", "trading_date"]
    readonly_fields = [f.name for f in PaperOrder._meta.fields]


@admin.register(KisAccessToken)
class KisAccessTokenAdmin(admin.ModelAdmin):
    """Shows when tokens expire; never the token."""

    list_display = ["__str__", "expires_at", "updated_at"]
    fields = ["key", "expires_at", "updated_at"]
    readonly_fields = fields
