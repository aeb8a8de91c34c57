"""The Celery application: configured from Django settings (CELERY_* keys), tasks autodiscovered."""

import os

from celery import Celery
from celery.signals import worker_init

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "trading_site.settings")

app = Celery("trading_site")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@app.on_after_configure.connect
def _make_filesystem_queue_dirs(sender, **kwargs):
    """The filesystem transport (embedded default) needs its folders before the first message."""
    options = sender.conf.broker_transport_options or {}
    folders = [options.get(key) for key in ("data_folder_in", "data_folder_out", "processed_folder", "control_folder")]
    result_backend = sender.conf.result_backend or ""
    if result_backend.startswith("file://"):
        folders.append(result_backend[len("file://"):])
    for folder in filter(None, folders):
        os.makedirs(folder, exist_ok=True)


@worker_init.connect
def _build_the_krx_calendar(**kwargs):
    """Build the KRX calendar (seconds) once in the worker's main process, before the pool forks, so
    no 09:05 job spends its first seconds on it."""
    from market.krx import krx_calendar

    krx_calendar()
