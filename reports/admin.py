from django.contrib import admin, messages
from django.utils.translation import gettext_lazy as _

from .models import WeeklyReport
from .tasks import start_regenerate


@admin.register(WeeklyReport)
class WeeklyReportAdmin(admin.ModelAdmin):
    list_display = ("iso_week", "user", "status", "model", "total_tokens", "cost_usd", "attempts", "created_at")
    list_filter = ("status", "iso_week")
    search_fields = ("user__username", "iso_week")
    readonly_fields = [f.name for f in WeeklyReport._meta.fields]
    actions = ["regenerate"]

    def has_add_permission(self, request):
        return False

    @admin.action(description=_("Regenerate with the model"))
    def regenerate(self, request, queryset):
        for report in queryset:
            start_regenerate(report)
        self.message_user(request, _("%(count)d report(s) handed to the workers.") % {"count": queryset.count()},
                          messages.SUCCESS)
