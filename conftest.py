"""Fixtures shared by every app's tests."""

from __future__ import annotations

import atexit
import datetime as dt
import os
import shutil
import tempfile
import time
from functools import partial

import pytest
import time_machine

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


# TEST_NOW runs the whole suite at a chosen moment, to prove that no test depends on the day or the hour:
#   TEST_NOW=2026-12-12T23:30:00+09:00 scripts/test      (a Saturday night in Seoul)
# An ISO datetime with its UTC offset. The clock (time.time, datetime.now, date.today, ... of this process,
# every thread included: pytest-django's live_server answers the browser tests at the same moment) is moved
# there in pytest_configure, so that collection and session fixtures see it too, and moved back to it at the
# start of every test, so that each test starts at TEST_NOW however long the tests before it took; it ticks
# from there (tick=True). A test's own time_machine.travel(...) or `time_machine` fixture still works:
# it travels on top and comes back to TEST_NOW's clock when it ends. Not moved: monotonic clocks
# (timeouts), the browser's own clock, the databases' and Redis's clocks, and child processes that a test
# starts (manage.py, celery, a spawned Process): those see the real time, so what they check must hold at
# any real time. Choose a moment from now on (the coming days or weeks), not in the past: a child would
# find a KIS token that the fake server issued "then" (valid for a day) already expired. Without TEST_NOW
# the clock is the real one.
_TEST_NOW_ENV = "TEST_NOW"
_test_now_travel: list[tuple[dt.datetime, time_machine.travel, time_machine.Traveller]] = []


def _parse_test_now(value: str) -> dt.datetime:
    try:
        moment = dt.datetime.fromisoformat(value.strip())
    except ValueError:
        raise pytest.UsageError(f"{_TEST_NOW_ENV}={value!r} is not an ISO datetime (e.g. 2026-12-12T23:30:00+09:00)") from None
    if moment.tzinfo is None:
        raise pytest.UsageError(f"{_TEST_NOW_ENV}={value!r} needs its UTC offset (e.g. +09:00 for Seoul)")
    return moment


def pytest_configure(config):
    # Real-time events published by the code under test (fills, order status) stay in the test process:
    # never on the local bus of a streamer running on this machine (a developer's open dashboard would show
    # the tests' fills) nor on Redis. Tests of the Redis and local buses choose them explicitly.
    if "REALTIME_BUS" not in os.environ:
        from django.conf import settings

        if settings.configured:
            settings.REALTIME_BUS = "inprocess"
    value = os.environ.get(_TEST_NOW_ENV)
    if not value:
        return
    moment = _parse_test_now(value)
    travel = time_machine.travel(moment, tick=True)
    _test_now_travel.append((moment, travel, travel.start()))


def pytest_unconfigure(config):
    while _test_now_travel:
        _moment, travel, _traveller = _test_now_travel.pop()
        travel.stop()


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(items):
    """Browser tests last (after pytest-django's ordering). Playwright's sync API keeps an event loop
    running in the main thread from the first browser test to the end of the session, and every later
    `asyncio.run` there (the real-time tests, `stream_market` called in a test) would fail with "cannot be
    called from a running event loop"."""
    items.sort(key=lambda item: item.get_closest_marker("browser") is not None)  # stable: order kept otherwise


def pytest_report_header(config):
    if _test_now_travel:
        moment = _test_now_travel[0][0]
        return f"{_TEST_NOW_ENV}: every test starts at {moment.isoformat()} ({moment:%A}), the clock ticking from there"
    return None


@pytest.fixture(autouse=True)
def _test_now_clock():
    """With TEST_NOW, every test starts at that moment (see above)."""
    if _test_now_travel:
        moment, _travel, traveller = _test_now_travel[0]
        traveller.move_to(moment)
    yield


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


# Every page a browser test opens is watched for Content-Security-Policy violations (Chromium logs each
# one to the console, and the securitypolicyviolation event is echoed there too): any fails the test.
_REPORT_CSP_VIOLATIONS = """
document.addEventListener("securitypolicyviolation", function (event) {
  console.error("CSP violation: " + event.violatedDirective + " blocked " + (event.blockedURI || "inline code")
    + " on " + event.documentURI);
});
"""


def _wait_for_function(page, expression, arg=None, *, timeout: float | None = None, polling=None):
    """page.wait_for_function without eval: Playwright's own evaluates the expression with the page's
    eval, which the Content-Security-Policy refuses. page.evaluate runs through the DevTools protocol,
    outside the page's policy; poll it until the expression is truthy (30 s by default, as Playwright)."""
    from playwright.sync_api import Error as PlaywrightError
    from playwright.sync_api import TimeoutError as PlaywrightTimeoutError

    timeout = 30_000 if timeout is None else timeout
    deadline = time.monotonic() + timeout / 1000
    interval = polling if isinstance(polling, (int, float)) else 50
    while True:
        try:
            value = page.evaluate(expression, arg)
        except PlaywrightError as error:  # a navigation replaced the document: ask the new one
            if "context was destroyed" not in str(error) and "navigation" not in str(error):
                raise
            value = None
        if value:
            return value
        if time.monotonic() > deadline:
            raise PlaywrightTimeoutError(f"wait_for_function: {expression!r} still falsy after {timeout} ms")
        page.wait_for_timeout(interval)


@pytest.fixture
def csp_violations() -> list[str]:
    """The CSP violations seen so far by the `page` fixture's page (a test may assert on it early)."""
    return []


@pytest.fixture
def page(context, csp_violations):
    """pytest-playwright's page, failing the test on any Content-Security-Policy violation."""
    page = context.new_page()
    page.add_init_script(_REPORT_CSP_VIOLATIONS)

    def on_console(message):
        if "Content Security Policy" in message.text or message.text.startswith("CSP violation"):
            csp_violations.append(f"{page.url}: {message.text}")

    page.on("console", on_console)
    page.wait_for_function = partial(_wait_for_function, page)
    yield page
    page.close()
    assert not csp_violations, "Content-Security-Policy violations:\n" + "\n".join(csp_violations)


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
