from django.contrib import admin

from .models import Fill, Order, WeeklyRun


@admin.register(WeeklyRun)
class WeeklyRunAdmin(admin.ModelAdmin):
    list_display = ("trading_date", "iso_week", "job", "config", "status", "reason", "attempts", "finished_at")
    list_filter = ("job", "status")
    search_fields = ("config__name", "reason")
    readonly_fields = [f.name for f in WeeklyRun._meta.fields]

    def has_add_permission(self, request):
        return False


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
