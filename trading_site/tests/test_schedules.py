"""Periodic tasks come from the apps' schedules, in Asia/Seoul, and admin edits survive a re-run."""

import datetime as dt
import io

import pytest
from django.core.management import call_command
from django_celery_beat.models import PeriodicTask

from trading_site.schedules import Schedule, collect_schedules, install_schedules

pytestmark = pytest.mark.django_db

JOB = Schedule(name="test: job", task="trading_site.ping", minute="5", hour="9", day_of_week="1-5")


def test_install_creates_a_seoul_crontab_once():
    assert install_schedules([JOB]) == [(JOB, True)]
    assert install_schedules([JOB]) == [(JOB, False)]
    task = PeriodicTask.objects.get(name="test: job")
    assert str(task.crontab.timezone) == "Asia/Seoul"
    assert (task.crontab.minute, task.crontab.hour, task.crontab.day_of_week) == ("5", "9", "1-5")


def test_admin_changes_survive_a_rerun():
    install_schedules([JOB])
    PeriodicTask.objects.filter(name="test: job").update(enabled=False)
    install_schedules([JOB])
    assert PeriodicTask.objects.get(name="test: job").enabled is False


def test_next_run_is_seoul_time_whatever_the_process_zone(monkeypatch):
    install_schedules([JOB])
    task = PeriodicTask.objects.get(name="test: job")
    monkeypatch.setenv("TZ", "America/New_York")
    # Friday 2026-11-20 10:00 KST → the next run is Monday 2026-11-23 09:05 KST
    now = dt.datetime(2026, 11, 20, 1, 0, tzinfo=dt.UTC)
    schedule = task.crontab.schedule
    schedule.nowfun = lambda: now
    next_run = (now + schedule.remaining_estimate(now)).astimezone(dt.timezone(dt.timedelta(hours=9)))
    assert (next_run.weekday(), next_run.hour, next_run.minute) == (0, 9, 5)


def test_command_installs_and_lists_every_app_schedule():
    out = io.StringIO()
    call_command("setup_schedules", stdout=out)
    declared = collect_schedules()
    assert {"market.refresh_recent_bars", "market.analyze_last_week"} <= {s.task for s in declared}
    for schedule in declared:
        assert PeriodicTask.objects.filter(name=schedule.name, task=schedule.task).exists()
        assert f"created  {schedule.name}: {schedule.task}" in out.getvalue()
