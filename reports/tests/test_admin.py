"""The admin lists the reports read-only and hands a regeneration to the workers."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model

from accounts.tests.second_factor import step_up
from reports.models import ReportStatus, WeeklyReport
from reports.services import generate_report

from .conftest import AFTER_THE_WEEK, WEEK

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin_client(client):
    admin = get_user_model().objects.create_superuser("boss", "boss@example.com", "correct-horse-battery-9")
    step_up(client, admin)  # the admin needs a second factor
    return client


def test_changelist_and_regenerate_action(admin_client, traded_week, user, no_model, model_settings, fake_openai,
                                          settings):
    model_settings.OPENAI_API_KEY = ""
    report = generate_report(user, WEEK, now=AFTER_THE_WEEK).report
    assert admin_client.get("/admin/reports/weeklyreport/").status_code == 200
    assert admin_client.get(f"/admin/reports/weeklyreport/{report.pk}/change/").status_code == 200
    assert admin_client.get("/admin/reports/weeklyreport/add/").status_code == 403
    settings.CELERY_TASK_ALWAYS_EAGER = True
    model_settings.OPENAI_API_KEY = "sk-test-key"
    response = admin_client.post("/admin/reports/weeklyreport/", {
        "action": "regenerate", "_selected_action": [report.pk],
    })
    assert response.status_code == 302
    assert WeeklyReport.objects.get().status == ReportStatus.OK and len(fake_openai.completions) == 1
