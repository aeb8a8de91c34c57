"""Reports API: the user's weekly reports. Owner only: another user's report answers 404, as if it
did not exist. `text` is the stored Markdown (untrusted model output); `html` is its sanitised
rendering (raw HTML escaped, no script), safe to insert into a page."""

from __future__ import annotations

from django.urls import reverse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema, extend_schema_field
from rest_framework import generics, serializers

from trading_site.api import ErrorSerializer

from . import selectors
from .models import WeeklyReport
from .rendering import render_report


class ReportSummarySerializer(serializers.Serializer):
    return_pct = serializers.FloatField(allow_null=True, help_text="the week's return, percent")
    pnl = serializers.IntegerField(allow_null=True, help_text="equity change, KRW")
    equity_start = serializers.IntegerField(allow_null=True, help_text="KRW, at the previous week's last close")
    equity_end = serializers.IntegerField(allow_null=True, help_text="KRW, at the week's last stored close")
    benchmark_name = serializers.CharField(allow_null=True)
    benchmark_pct = serializers.FloatField(allow_null=True, help_text="equal-weight benchmark return, percent")
    excess_pct = serializers.FloatField(allow_null=True, help_text="return minus benchmark, percentage points")
    trades = serializers.IntegerField()
    realized_pnl = serializers.IntegerField(allow_null=True, help_text="KRW")
    failures = serializers.IntegerField(help_text="rejected orders, failed runs and alerts")
    start = serializers.DateField(allow_null=True)
    end = serializers.DateField(allow_null=True)
    as_of = serializers.DateField(allow_null=True, help_text="the week's last trading day with stored bars")
    complete = serializers.BooleanField()


@extend_schema_field({
    "type": "string", "pattern": "^(ok|fallback|failed)$",
    "description": "ok: written by the model; fallback: the plain report from the facts (no key, or the API "
                   "failed after retries); failed: no report could be written (see status_reason)",
})
class ReportStatusField(serializers.CharField):
    """The report status, documented inline: an enum named after the field would collide with the
    other apps' `status` enums in the schema."""


class UnverifiedNumberSerializer(serializers.Serializer):
    text = serializers.CharField(help_text="as written in the text, e.g. 12.3%")
    value = serializers.FloatField()


class WeeklyReportListSerializer(serializers.ModelSerializer):
    week = serializers.CharField(source="iso_week", help_text="ISO week, e.g. 2026-W48")
    status = ReportStatusField()
    summary = serializers.SerializerMethodField()
    url = serializers.SerializerMethodField()

    class Meta:
        model = WeeklyReport
        fields = [
            "week", "week_start", "status", "status_reason", "model", "prompt_tokens", "completion_tokens",
            "total_tokens", "cost_usd", "created_at", "summary", "url",
        ]
        read_only_fields = fields

    @extend_schema_field(ReportSummarySerializer)
    def get_summary(self, report) -> dict:
        return selectors.summary(report)

    @extend_schema_field({"type": "string", "format": "uri-reference", "description": "this report in the API"})
    def get_url(self, report) -> str:
        return reverse("api:report-detail", args=[report.iso_week])


class WeeklyReportSerializer(WeeklyReportListSerializer):
    facts = serializers.JSONField(help_text="everything the report says, computed in code (see reports.facts)")
    html = serializers.SerializerMethodField()
    unverified_numbers = UnverifiedNumberSerializer(many=True, help_text="numbers of the text not found in the facts")

    class Meta(WeeklyReportListSerializer.Meta):
        fields = [*WeeklyReportListSerializer.Meta.fields, "attempts", "text", "html", "unverified_numbers", "facts"]
        read_only_fields = fields

    @extend_schema_field(OpenApiTypes.STR)
    def get_html(self, report) -> str:
        return str(render_report(report.text, report.unverified_numbers))


# The API's one error body (`{"detail": "..."}`), under the name this module used to give it.
ReportErrorSerializer = ErrorSerializer


class WeeklyReportListView(generics.ListAPIView):
    """`GET /api/reports/`: your weekly reports, newest week first."""

    serializer_class = WeeklyReportListSerializer

    def get_queryset(self):
        return selectors.reports_for(self.request.user).defer("text")

    @extend_schema(tags=["reports"], operation_id="reports_list")
    def get(self, request, *args, **kwargs):
        return super().get(request, *args, **kwargs)


class WeeklyReportDetailView(generics.RetrieveAPIView):
    """`GET /api/reports/{week}/`: one of your reports with its text, sanitised HTML and facts."""

    serializer_class = WeeklyReportSerializer

    def get_object(self):
        return selectors.report_for(self.request.user, self.kwargs["week"])

    @extend_schema(
        tags=["reports"], operation_id="reports_retrieve",
        parameters=[OpenApiParameter("week", {"type": "string", "pattern": "^[0-9]{4}-W[0-9]{2}$"},
                                     OpenApiParameter.PATH, description="ISO week, e.g. 2026-W48")],
        responses={200: WeeklyReportSerializer, 404: OpenApiResponse(ReportErrorSerializer, description="no such report")},
    )
    def get(self, request, *args, **kwargs):
        return super().get(request, *args, **kwargs)
