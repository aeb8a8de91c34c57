"""Celery tasks of the reports app: thin triggers of `services`. Idempotency lives in the database
(one report per user and week, claimed before any work), so a repeated delivery is harmless."""

from __future__ import annotations

import logging

from celery import shared_task
from django.contrib.auth import get_user_model
from django.utils import timezone

from . import services
from .models import WeeklyReport

logger = logging.getLogger(__name__)


@shared_task(name="reports.weekly_reports")
def weekly_reports(week: str | None = None) -> dict:
    """The dispatcher: one `reports.user_report` task per user with activity in the week (default: the
    week that just ended), so the reports are written side by side on the research workers."""
    monday = services.resolve_week(week, timezone.now())
    user_ids = list(services.users_with_activity(monday).values_list("pk", flat=True))
    for user_id in user_ids:
        user_report.delay(user_id, monday.isoformat())
    return {"week": monday.isoformat(), "users": len(user_ids)}


@shared_task(name="reports.user_report")
def user_report(user_id: int, week: str) -> str:
    """One user's report of `week`; safe to deliver twice (the report is claimed once per user and week)."""
    return services.generate_user_report(user_id, week).action


@shared_task(name="reports.regenerate_report")
def regenerate_report(user_id: int, iso_week: str) -> str:
    user = get_user_model().objects.get(pk=user_id)
    outcome = services.generate_report(user, iso_week, regenerate=True)
    return f"{outcome.action}: {outcome.report.status if outcome.report else '-'}"


def start_regenerate(report: WeeklyReport) -> None:
    """Hand a regeneration to the workers (inline when CELERY_TASK_ALWAYS_EAGER)."""
    regenerate_report.delay(report.user_id, report.iso_week)
