"""Fixtures shared by every app's tests."""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile

import pytest

# Playwright's sync API runs an event loop in the test thread; Django would then refuse ORM calls
# made by the test itself. Only the tests run with this, never the site.
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")

# Tasks queued by the tests (alert notifications, backtests) go to a throw-away folder, never to the
# checkout's var/celery queue, where the run command's worker would pick them up against its own data.
if "CELERY_DATA_DIR" not in os.environ:
    os.environ["CELERY_DATA_DIR"] = tempfile.mkdtemp(prefix="celery-tests-")
    atexit.register(shutil.rmtree, os.environ["CELERY_DATA_DIR"], True)

CHROMIUM = os.environ.get("CHROMIUM_PATH") or shutil.which("chromium") or shutil.which("chromium-browser")
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-dev-shm-usage",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]


@pytest.fixture(autouse=True)
def _fresh_cache():
    """Throttle counters and cached values never leak from one test into the next."""
    from django.conf import settings

    if not settings.configured:  # pure-Python modules may run with `-p no:django`
        yield
        return
    from django.core.cache import cache

    cache.clear()
    yield
    cache.clear()


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args):
    if not CHROMIUM:
        if os.environ.get("REQUIRE_BROWSER"):
            pytest.fail("Chromium is required (apt-get install chromium) but was not found")
        pytest.skip("Chromium not installed (apt-get install chromium); browser tests skipped")
    return {**browser_type_launch_args, "executable_path": CHROMIUM, "args": CHROMIUM_ARGS}


@pytest.fixture
def password() -> str:
    return "correct-horse-battery-9"


@pytest.fixture
def user(db, password):
    from accounts.tests.factories import UserFactory

    return UserFactory(password=password)


@pytest.fixture
def other_user(db, password):
    from accounts.tests.factories import UserFactory

    return UserFactory(password=password)
