"""Failed-login limits of the site login (allauth, accounts.adapters): the lockout is per account and
client address, a broader per-address limit stops spraying, and one setting (TRUSTED_PROXY_COUNT) says
which address is the client's for allauth and DRF alike."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.test import Client, RequestFactory, override_settings
from django.urls import reverse

from accounts import services
from accounts.tests.factories import UserFactory

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("fast_passwords")]

ROOT = Path(__file__).resolve().parents[2]
HOME = "198.51.100.7"  # the address the attempts come from
ELSEWHERE = "203.0.113.9"
PASSWORD = "correct-horse-battery-9"  # the factories' password
# ACCOUNT_RATE_LIMITS["login_failed"] in settings: 5 per 5 minutes per account and address, 30 per
# 10 minutes and 200 a day per address; ["login"]: 30 login POSTs a minute per address.
LOCKOUT_AFTER = 5
ADDRESS_FAILURES_PER_10_MIN = 30
ADDRESS_FAILURES_PER_DAY = 200
LOGIN_POSTS_PER_MIN = 30


def log_in(clock, login, password, address=HOME, **headers) -> str:
    """One attempt on the site's login page from a fresh browser: "in", "wrong" (password refused),
    "locked" (refused by the failed-login limits before the password is checked) or "429"."""
    client = Client()
    response = client.post(
        reverse("account_login"), {"login": login, "password": password}, REMOTE_ADDR=address, **headers
    )
    clock.shift(0.4)
    if response.status_code == 429:
        return "429"
    if response.status_code == 302 and "_auth_user_id" in client.session:
        return "in"
    assert response.status_code == 200, response.status_code
    codes = {error.code for error in response.context["form"].errors.as_data().get("__all__", [])}
    return "locked" if "too_many_login_attempts" in codes else "wrong"


@pytest.fixture
def alice():
    return UserFactory(username="alice", email="alice@example.com")


@pytest.fixture
def bob():
    return UserFactory(username="bob", email="bob@example.com")


def test_failures_on_one_account_do_not_lock_out_another_at_the_same_address(clock, alice, bob):
    outcomes = [log_in(clock, "alice", "wrong-guess") for _ in range(15)]
    assert outcomes == ["wrong"] * LOCKOUT_AFTER + ["locked"] * (15 - LOCKOUT_AFTER)
    assert log_in(clock, "bob", PASSWORD) == "in"
    assert log_in(clock, "alice", PASSWORD) == "locked"  # the right password too, at this address


def test_a_locked_account_is_locked_at_that_address_only_until_the_window_ends(clock, alice):
    for _ in range(LOCKOUT_AFTER):
        assert log_in(clock, "alice", "wrong-guess") == "wrong"
    assert log_in(clock, "alice", PASSWORD) == "locked"
    assert log_in(clock, "alice", PASSWORD, address=ELSEWHERE) == "in"
    clock.shift(4 * 60)
    assert log_in(clock, "alice", PASSWORD) == "locked"
    clock.shift(60)
    assert log_in(clock, "alice", PASSWORD) == "in"


def test_a_right_password_gives_its_count_back(clock, alice):
    for _ in range(LOCKOUT_AFTER - 1):
        assert log_in(clock, "alice", "wrong-guess") == "wrong"
    assert log_in(clock, "alice", PASSWORD) == "in"
    assert log_in(clock, "alice", "wrong-guess") == "wrong"  # still one failure left
    assert log_in(clock, "alice", PASSWORD) == "locked"


def test_the_lockout_counts_the_account_whatever_spelling_of_its_login(clock, alice):
    for login in ("alice", "ALICE", "alice@example.com", "Alice@Example.com", "alice"):
        assert log_in(clock, login, "wrong-guess") == "wrong"
    assert log_in(clock, "alice@example.com", PASSWORD) == "locked"
    assert log_in(clock, "alice", PASSWORD) == "locked"


def test_an_ipv6_client_counts_as_its_network(clock, alice):
    for host in range(1, LOCKOUT_AFTER + 1):
        assert log_in(clock, "alice", "wrong-guess", address=f"2001:db8::{host}") == "wrong"
    assert log_in(clock, "alice", PASSWORD, address="2001:db8::ff") == "locked"
    assert log_in(clock, "alice", PASSWORD, address="2001:db8:0:1::1") == "in"


def test_a_burst_over_many_usernames_from_one_address_ends_in_429(clock, bob):
    """The issue's 60 wrong passwords in 26 s, each on another username: refused once the address has
    posted 30 logins in a minute."""
    outcomes = [log_in(clock, f"user{n}", "wrong-guess") for n in range(60)]
    assert outcomes == ["wrong"] * LOGIN_POSTS_PER_MIN + ["429"] * (60 - LOGIN_POSTS_PER_MIN)
    assert log_in(clock, "bob", PASSWORD, address=ELSEWHERE) == "in"


def test_slow_spraying_from_one_address_is_stopped_per_address(clock, bob):
    outcomes = []
    for n in range(ADDRESS_FAILURES_PER_10_MIN + 5):
        outcomes.append(log_in(clock, f"user{n}", "wrong-guess"))
        clock.shift(5)  # 12 a minute: under the per-minute limit on login POSTs
    assert outcomes == ["wrong"] * ADDRESS_FAILURES_PER_10_MIN + ["locked"] * 5
    # By design the broad per-address limit holds everyone at that address for a while...
    assert log_in(clock, "bob", PASSWORD) == "locked"
    # ...but nobody anywhere else.
    assert log_in(clock, "bob", PASSWORD, address=ELSEWHERE) == "in"
    clock.shift(10 * 60)
    assert log_in(clock, "bob", PASSWORD) == "in"


def test_a_sprayer_gets_at_most_the_daily_number_of_guesses_per_address(clock):
    """Through the adapter alone (the login page's password check, without the page): 200 attempts."""
    outcomes = []
    for n in range(ADDRESS_FAILURES_PER_DAY + 3):
        request = RequestFactory().post("/accounts/login/", REMOTE_ADDR=HOME)
        try:
            outcomes.append("in" if services.authenticate_login(request, login=f"user{n}", password="x") else "wrong")
        except services.LoginLimited:
            outcomes.append("locked")
        clock.shift(21)  # under 30 per 10 minutes
    assert outcomes == ["wrong"] * ADDRESS_FAILURES_PER_DAY + ["locked"] * 3


def test_forwarded_for_is_ignored_without_trusted_proxies(clock, alice):
    for n in range(LOCKOUT_AFTER):
        assert log_in(clock, "alice", "wrong-guess", HTTP_X_FORWARDED_FOR=f"192.0.2.{n}") == "wrong"
    assert log_in(clock, "alice", PASSWORD, HTTP_X_FORWARDED_FOR="192.0.2.200") == "locked"


@override_settings(ALLAUTH_TRUSTED_PROXY_COUNT=1)
def test_behind_one_trusted_proxy_the_client_is_the_last_forwarded_address(clock, alice):
    proxy = "10.0.0.2"
    for n in range(LOCKOUT_AFTER):
        forwarded = f"192.0.2.{n}, {HOME}"  # the first entry is the client's to make up
        assert log_in(clock, "alice", "wrong-guess", address=proxy, HTTP_X_FORWARDED_FOR=forwarded) == "wrong"
    assert log_in(clock, "alice", PASSWORD, address=proxy, HTTP_X_FORWARDED_FOR=f"192.0.2.99, {HOME}") == "locked"
    assert log_in(clock, "alice", PASSWORD, address=proxy, HTTP_X_FORWARDED_FOR=f"{HOME}, {ELSEWHERE}") == "in"


CLIENT_ADDRESSES = """
import django, json
django.setup()
from allauth.account.adapter import get_adapter
from django.conf import settings
from django.test import RequestFactory
from rest_framework.throttling import AnonRateThrottle
request = RequestFactory().post("/", REMOTE_ADDR="10.0.0.4", HTTP_X_FORWARDED_FOR="192.0.2.1, 198.51.100.7, 10.0.0.3")
print(json.dumps({
    "setting": settings.TRUSTED_PROXY_COUNT,
    "allauth": get_adapter(request).get_client_ip(request),
    "drf": AnonRateThrottle().get_ident(request),
}))
"""


@pytest.mark.parametrize(("count", "client_address"), [(None, "10.0.0.4"), ("2", "198.51.100.7")])
def test_one_setting_decides_the_client_address_for_allauth_and_drf(count, client_address):
    env = {k: v for k, v in os.environ.items() if k != "TRUSTED_PROXY_COUNT"}
    env.update({"ENV_FILE": "/nonexistent/.env", "DJANGO_SETTINGS_MODULE": "trading_site.settings", "DEBUG": "True"})
    if count is not None:
        env["TRUSTED_PROXY_COUNT"] = count
    result = subprocess.run(
        [sys.executable, "-c", CLIENT_ADDRESSES], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    seen = json.loads(result.stdout.strip().splitlines()[-1])
    assert seen == {"setting": int(count or 0), "allauth": client_address, "drf": client_address}


def test_the_429_page_is_the_sites_own_in_korean(clock, client, bob):
    for _ in range(LOGIN_POSTS_PER_MIN):
        client.post("/accounts/login/", {"login": "nobody", "password": "wrong"})
    response = client.post("/accounts/login/", {"login": "nobody", "password": "wrong"})
    assert response.status_code == 429
    page = response.content.decode()
    assert "시도가 너무 많습니다" in page and "Too Many Requests" not in page
