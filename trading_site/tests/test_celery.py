"""A real Celery worker consumes this site's queue: the filesystem transport by default, Redis
when REDIS_URL is set (CI runs the suite both ways)."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def worker_env(tmp_path, settings):
    env = dict(os.environ)
    if not settings.REDIS_URL:
        env["CELERY_DATA_DIR"] = str(tmp_path / "celery")  # a private queue for this test
    return env


def test_task_round_trip_through_a_real_worker(worker_env, tmp_path):
    worker = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "trading_site", "worker", "--pool=solo", "--loglevel=WARNING",
         "--without-gossip", "--without-mingle", "--without-heartbeat"],
        cwd=ROOT, env=worker_env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    try:
        probe = subprocess.run(
            [sys.executable, "-c",
             "import django; django.setup(); from trading_site.tasks import ping; "
             "print(ping.delay().get(timeout=60))"],
            cwd=ROOT, env={**worker_env, "DJANGO_SETTINGS_MODULE": "trading_site.settings"},
            capture_output=True, text=True, timeout=90,
        )
        assert probe.stdout.strip().endswith("pong"), probe.stdout + probe.stderr
    finally:
        worker.send_signal(signal.SIGTERM)
        try:
            worker.wait(timeout=20)
        except subprocess.TimeoutExpired:
            worker.kill()
        time.sleep(0)
