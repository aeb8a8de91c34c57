"""The weekly report: one row per (user, ISO week), the design's `weekly_reports` table.

`facts` holds everything the report says, computed in code (`reports.facts`); `text` is the
report in Markdown, written by the model (`status` ok) or by the plain template from the same facts
(`status` fallback). The text is untrusted input: it is only ever shown through
`reports.rendering.render_report` (raw HTML escaped, sanitised), and `unverified_numbers` lists the
numbers of the text that match no fact.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _


class ReportStatus(models.TextChoices):
    OK = "ok", _("written by the model")
    FALLBACK = "fallback", _("plain report (no model)")
    FAILED = "failed", _("failed")


class WeeklyReport(models.Model):
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="weekly_reports", verbose_name=_("user"),
    )
    iso_week = models.CharField(_("ISO week"), max_length=8)  # "2026-W48"
    week_start = models.DateField(_("week start (Monday)"))
    facts = models.JSONField(_("facts"), default=dict, blank=True)
    text = models.TextField(_("text (Markdown)"), blank=True, default="")
    model = models.CharField(_("model"), max_length=100, blank=True, default="")
    status = models.CharField(_("status"), max_length=8, choices=ReportStatus.choices, default=ReportStatus.FAILED)
    status_reason = models.TextField(_("status reason"), blank=True, default="")  # why fallback / failed
    attempts = models.PositiveSmallIntegerField(_("model calls"), default=0)
    prompt_tokens = models.PositiveIntegerField(_("prompt tokens"), default=0)
    completion_tokens = models.PositiveIntegerField(_("completion tokens"), default=0)
    total_tokens = models.PositiveIntegerField(_("total tokens"), default=0)
    cost_usd = models.DecimalField(_("cost (USD)"), max_digits=12, decimal_places=6, null=True, blank=True)
    unverified_numbers = models.JSONField(_("numbers not found in the facts"), default=list, blank=True)
    emailed_at = models.DateTimeField(_("e-mailed"), null=True, blank=True)
    created_at = models.DateTimeField(_("created"), default=timezone.now)  # reset when regenerated

    class Meta:
        db_table = "weekly_reports"
        verbose_name = _("weekly report")
        verbose_name_plural = _("weekly reports")
        ordering = ["-week_start", "user_id"]
        constraints = [
            models.UniqueConstraint(fields=["user", "iso_week"], name="weekly_report_unique_user_week"),
        ]

    def __str__(self) -> str:
        return f"{self.user_id} {self.iso_week} {self.status}"

    @property
    def is_fallback(self) -> bool:
        return self.status == ReportStatus.FALLBACK
