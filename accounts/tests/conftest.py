"""Fixtures of the login-limit tests (site login, admin login, API token endpoints)."""

from datetime import datetime
from zoneinfo import ZoneInfo

import pytest
import time_machine


@pytest.fixture
def fast_passwords(settings):
    """MD5 hashing: these tests check dozens of passwords, at a second each with the real hasher.
    Request it before any user is made (`pytest.mark.usefixtures` or first in the arguments)."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def clock():
    """A pinned clock the test moves on by hand (`clock.shift(seconds)`). Rate-limit windows are
    measured on it; give each attempt its own instant, as allauth gives a right password's count
    back by its timestamp."""
    start = datetime(2026, 11, 24, 10, 0, tzinfo=ZoneInfo("Asia/Seoul"))
    with time_machine.travel(start, tick=False) as traveller:
        yield traveller
