"""The site's periodic tasks, declared by each app and installed into django-celery-beat's tables.

An app lists its jobs in `<app>/schedules.py` as `SCHEDULES = [Schedule(...), ...]`. `manage.py
setup_schedules` creates the missing PeriodicTask rows (crontabs in Asia/Seoul) and leaves the ones
an admin has edited (time, enabled) as they are. The beat process (DatabaseScheduler) then runs them;
each task checks the KRX calendar itself, so a crontab of Mon–Fri is only the trigger."""

from __future__ import annotations

import importlib
import json
from dataclasses import dataclass, field

from django.apps import apps
from django.db import transaction

TIME_ZONE = "Asia/Seoul"


@dataclass(frozen=True)
class Schedule:
    name: str  # unique PeriodicTask name, e.g. "market: refresh daily bars"
    task: str  # the Celery task name
    minute: str
    hour: str
    day_of_week: str = "*"
    description: str = ""
    kwargs: dict = field(default_factory=dict)


def collect_schedules() -> list[Schedule]:
    schedules: list[Schedule] = []
    for config in apps.get_app_configs():
        try:
            module = importlib.import_module(f"{config.name}.schedules")
        except ModuleNotFoundError as error:
            if error.name != f"{config.name}.schedules":
                raise
            continue
        schedules.extend(getattr(module, "SCHEDULES", []))
    return schedules


@transaction.atomic
def install_schedules(schedules: list[Schedule] | None = None) -> list[tuple[Schedule, bool]]:
    """Create missing periodic tasks; returns (schedule, created) pairs. Existing rows keep their
    crontab and enabled flag (an admin may have changed them); task, kwargs and description follow
    the code."""
    from django_celery_beat.models import CrontabSchedule, PeriodicTask

    results = []
    for schedule in schedules if schedules is not None else collect_schedules():
        existing = PeriodicTask.objects.filter(name=schedule.name).first()
        if existing:
            existing.task = schedule.task
            existing.kwargs = json.dumps(schedule.kwargs)
            existing.description = schedule.description
            existing.save(update_fields=["task", "kwargs", "description"])
            results.append((schedule, False))
            continue
        crontab, _ = CrontabSchedule.objects.get_or_create(
            minute=schedule.minute, hour=schedule.hour, day_of_week=schedule.day_of_week,
            day_of_month="*", month_of_year="*", timezone=TIME_ZONE,
        )
        PeriodicTask.objects.create(
            name=schedule.name, task=schedule.task, crontab=crontab, kwargs=json.dumps(schedule.kwargs),
            description=schedule.description, enabled=True,
        )
        results.append((schedule, True))
    return results
