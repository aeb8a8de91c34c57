"""`manage.py weekly_report`, the demo flow of the run command, and the Friday schedule."""

from __future__ import annotations

import datetime as dt
import io

import pytest
from django.core.management import CommandError, call_command
from django.test import Client

from market.krx import SEOUL
from reports.models import ReportStatus, WeeklyReport
from trading_site.schedules import collect_schedules, install_schedules

from .conftest import AFTER_THE_WEEK, WEEK

pytestmark = pytest.mark.django_db


def run(*args):
    out = io.StringIO()
    call_command("weekly_report", *args, stdout=out)
    return out.getvalue()


@pytest.fixture
def frozen_now(monkeypatch):
    monkeypatch.setattr("reports.services.timezone.now", lambda: AFTER_THE_WEEK)


def test_writes_a_report_per_active_user_and_keeps_it(traded_week, user, no_model, frozen_now):
    assert run("--week", WEEK) == f"{WEEK} {user.username}: created, fallback — OPENAI_API_KEY가 설정되지 않아 기본 리포트를 만들었습니다.\n"
    assert "exists" in run("--week", WEEK)
    assert WeeklyReport.objects.count() == 1


def test_default_week_is_the_week_just_ended(traded_week, user, no_model, frozen_now):
    run()
    assert WeeklyReport.objects.get().iso_week == WEEK


def test_regenerate_with_the_model(traded_week, user, model_settings, fake_openai, frozen_now):
    run("--week", WEEK, "--user", user.username, "--no-model")
    assert WeeklyReport.objects.get().status == ReportStatus.FALLBACK
    output = run("--week", WEEK, "--user", user.username, "--regenerate")
    assert "replaced, ok" in output
    assert WeeklyReport.objects.get().status == ReportStatus.OK and len(fake_openai.completions) == 1


def test_a_named_user_gets_a_report_even_without_activity(demo_codes, other_user, no_model, frozen_now):
    assert "created, fallback" in run("--week", WEEK, "--user", other_user.username)
    assert run("--week", WEEK) == f"{WEEK}: no user with activity, no report written\n"


def test_bad_arguments(db):
    with pytest.raises(CommandError, match="YYYY-Www"):
        run("--week", "2025-48")
    with pytest.raises(CommandError, match="no user named"):
        run("--user", "nobody")


@pytest.mark.time_machine(dt.datetime(2026, 11, 25, 10, 30, tzinfo=SEOUL), tick=False)  # setup_demo's market ends "today"
def test_the_demo_sees_a_plain_report_of_the_demo_week(no_model):
    """What the run command does: setup_demo, then weekly_report for the demo week."""
    call_command("setup_demo", symbols=3, years=1, stdout=io.StringIO())
    output = run("--week", "latest", "--user", "demo")
    report = WeeklyReport.objects.get(user__username="demo")
    assert "created, fallback" in output and report.status == ReportStatus.FALLBACK
    [trade] = report.facts["trades"]
    assert (trade["code"], trade["quantity"], trade["reason"]) == ("005930", 10, "수동 주문")
    client = Client()
    assert client.login(username="demo", password="demo-trader-2026")
    page = client.get("/reports/").content.decode()
    assert f'data-week="{report.iso_week}"' in page
    detail = client.get(f"/reports/{report.iso_week}/")
    assert detail.status_code == 200 and "status-fallback" in detail.content.decode()
    assert "created" not in run("--week", "latest", "--user", "demo")  # the run command may start again


def test_the_friday_schedule_is_installed():
    from django_celery_beat.models import PeriodicTask

    schedules = {s.name: s for s in collect_schedules() if s.task == "reports.weekly_reports"}
    friday = schedules["reports: weekly reports"]
    assert (friday.minute, friday.hour, friday.day_of_week) == ("0", "18", "5")
    install_schedules()
    task = PeriodicTask.objects.get(name="reports: weekly reports")
    assert task.task == "reports.weekly_reports" and task.crontab.timezone.key == "Asia/Seoul"
    assert (task.crontab.hour, task.crontab.day_of_week) == ("18", "5")
