"""JWT issuance, refresh, expiry and logout; the design's POST /token; login limits on both token
endpoints; broker accounts over the API."""

import pytest
import time_machine
from django.urls import reverse
from django.utils import timezone
from rest_framework.test import APIClient

from accounts.models import BrokerAccount
from accounts.tests.factories import BrokerAccountFactory, UserFactory
from accounts.tests.second_factor import stepped_up_jwt

pytestmark = pytest.mark.django_db


@pytest.fixture
def api():
    return APIClient()


def obtain(api, username, password):
    return api.post(reverse("api:token_obtain_pair"), {"username": username, "password": password}, format="json")


def test_jwt_pair_gives_access_to_the_api(api, user, password):
    tokens = obtain(api, user.username, password).json()
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {tokens['access']}")
    response = api.get(reverse("api:me"))
    assert response.status_code == 200
    assert response.json()["username"] == user.username


def test_wrong_password_is_401_with_a_message(api, user):
    response = obtain(api, user.username, "nope")
    assert response.status_code == 401
    assert response.json()["detail"]


def test_api_requires_authentication(api):
    response = api.get(reverse("api:me"))
    assert response.status_code == 401
    assert "detail" in response.json()


def test_malformed_jwt_is_401_not_500(api):
    api.credentials(HTTP_AUTHORIZATION="Bearer not.a.jwt")
    response = api.get(reverse("api:me"))
    assert response.status_code == 401
    assert response.json()["detail"]


def test_access_token_expires(api, user, password):
    tokens = obtain(api, user.username, password).json()
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {tokens['access']}")
    with time_machine.travel(timezone.now() + timezone.timedelta(minutes=16), tick=False):
        response = api.get(reverse("api:me"))
    assert response.status_code == 401
    assert response.json()["code"] == "token_not_valid"


def test_refresh_rotates_and_the_old_refresh_token_is_blacklisted(api, user, password):
    first = obtain(api, user.username, password).json()
    rotated = api.post(reverse("api:token_refresh"), {"refresh": first["refresh"]}, format="json")
    assert rotated.status_code == 200
    assert rotated.json()["refresh"] != first["refresh"]
    reused = api.post(reverse("api:token_refresh"), {"refresh": first["refresh"]}, format="json")
    assert reused.status_code == 401


def test_logout_blacklists_the_refresh_token(api, user, password):
    tokens = obtain(api, user.username, password).json()
    assert api.post(reverse("api:token_logout"), {"refresh": tokens["refresh"]}, format="json").status_code == 200
    again = api.post(reverse("api:token_refresh"), {"refresh": tokens["refresh"]}, format="json")
    assert again.status_code == 401


def test_design_token_form_answers_access_token_and_bearer(client, user, password):
    response = client.post("/token", {"username": user.username, "password": password})
    assert response.status_code == 200
    body = response.json()
    assert body["token_type"] == "bearer"
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {body['access_token']}")
    assert api.get(reverse("api:me")).json()["username"] == user.username


def test_design_token_form_errors(client, user):
    wrong = client.post("/token", {"username": user.username, "password": "bad"})
    assert wrong.status_code == 401
    assert wrong.json()["detail"]
    missing = client.post("/token", {"username": user.username})
    assert missing.status_code == 400
    assert "password" in missing.json()


def test_login_attempts_are_throttled(client, user, settings):
    for _ in range(20):
        client.post("/token", {"username": user.username, "password": "bad"})
    response = client.post("/token", {"username": user.username, "password": "bad"})
    assert response.status_code == 429


def test_broker_account_create_returns_masked_values_only(api, user):
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {stepped_up_jwt(user)}")  # keys added: stepped up
    response = api.post(
        reverse("api:broker-account-list"),
        {"name": "실전", "mode": "real", "app_key": "PSAPPKEY1234567890", "app_secret": "top-secret-value",
         "account_number": "12345678", "product_code": "01"},
        format="json",
    )
    assert response.status_code == 201, response.content
    body = response.json()
    text = response.content.decode()
    assert "top-secret-value" not in text and "12345678" not in text and "PSAPPKEY1234567890" not in text
    assert body["masked_account_number"] == "1234****-01"
    assert body["has_app_secret"] is True
    assert BrokerAccount.objects.get(pk=body["id"]).app_secret == "top-secret-value"


def test_broker_account_validation_errors_are_400(api, user):
    api.force_authenticate(user)
    response = api.post(
        reverse("api:broker-account-list"),
        {"name": "x", "mode": "real", "app_key": "k", "app_secret": "s", "account_number": "1234"},
        format="json",
    )
    assert response.status_code == 400
    assert "account_number" in response.json()


def test_blank_secret_on_update_keeps_the_stored_one(api, user):
    account = BrokerAccountFactory(owner=user)
    api.force_authenticate(user)
    response = api.patch(
        reverse("api:broker-account-detail", args=[account.pk]), {"name": "renamed", "app_secret": ""}, format="json"
    )
    assert response.status_code == 200
    account.refresh_from_db()
    assert account.name == "renamed" and account.app_secret.startswith("secret-")


def test_user_never_sees_or_changes_another_users_account(api, user, other_user):
    theirs = BrokerAccountFactory(owner=other_user)
    mine = BrokerAccountFactory(owner=user)
    api.force_authenticate(user)
    listed = [row["id"] for row in api.get(reverse("api:broker-account-list")).json()["results"]]
    assert listed == [mine.pk]
    detail = reverse("api:broker-account-detail", args=[theirs.pk])
    assert api.get(detail).status_code == 404
    assert api.patch(detail, {"name": "hacked"}, format="json").status_code == 404
    assert api.delete(detail).status_code == 404
    theirs.refresh_from_db()
    assert theirs.name != "hacked"


def test_openapi_schema_and_docs_are_served(client, user):
    schema = client.get(reverse("api:schema"))
    assert schema.status_code == 200
    assert b"/api/broker-accounts/" in schema.content and b"/token" in schema.content
    client.force_login(user)
    docs = client.get(reverse("api:swagger"))
    assert docs.status_code == 200
    assert b"cdn" not in docs.content.lower()


# --- Login limits on the token endpoints -----------------------------------------------------------
# /api/token/ (JSON) and /token (form) count against the site login's failed-login limits (5 per 5
# minutes per account and client address, ACCOUNT_RATE_LIMITS) and DRF's `login` throttle (20 a minute
# per client address), the address being decided by TRUSTED_PROXY_COUNT (0 in the tests).

HOME, ELSEWHERE, PROXY = "198.51.100.7", "203.0.113.9", "10.0.0.2"
LOCKOUT_AFTER = 5
THROTTLE_LOGIN = 20


def token_attempt(clock, endpoint, username, password, address=HOME, **headers) -> int:
    """One login on a token endpoint from a fresh client; the status code."""
    data = {"username": username, "password": password}
    if endpoint == "/token":
        response = APIClient().post("/token", data, REMOTE_ADDR=address, **headers)  # form fields
    else:
        response = APIClient().post(endpoint, data, format="json", REMOTE_ADDR=address, **headers)
    clock.shift(0.4)
    return response.status_code


token_endpoints = pytest.mark.parametrize("endpoint", ["/api/token/", "/token"])


@token_endpoints
def test_forged_forwarded_for_does_not_escape_the_failed_login_lockout(fast_passwords, clock, endpoint):
    """The issue: 60 wrong passwords, each with a made-up X-Forwarded-For, were 60 x 401."""
    victim = UserFactory(username="victim")
    statuses = [
        token_attempt(clock, endpoint, victim.username, "wrong-guess", HTTP_X_FORWARDED_FOR=f"192.0.2.{n}")
        for n in range(60)
    ]
    assert statuses == [401] * LOCKOUT_AFTER + [429] * (60 - LOCKOUT_AFTER)


@token_endpoints
def test_forged_forwarded_for_does_not_escape_the_login_throttle(fast_passwords, clock, endpoint):
    """Spraying usernames (no account reaches its lockout): DRF's throttle counts the real address."""
    statuses = [
        token_attempt(clock, endpoint, f"user{n}", "wrong-guess", HTTP_X_FORWARDED_FOR=f"192.0.2.{n}")
        for n in range(60)
    ]
    assert statuses == [401] * THROTTLE_LOGIN + [429] * (60 - THROTTLE_LOGIN)


@token_endpoints
def test_behind_one_trusted_proxy_the_throttle_counts_the_last_forwarded_address(
    fast_passwords, clock, settings, endpoint
):
    settings.ALLAUTH_TRUSTED_PROXY_COUNT = 1
    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "NUM_PROXIES": 1}
    statuses = [
        token_attempt(clock, endpoint, f"user{n}", "wrong-guess", address=PROXY,
                      HTTP_X_FORWARDED_FOR=f"192.0.2.{n}, {HOME}")
        for n in range(THROTTLE_LOGIN + 1)
    ]
    assert statuses == [401] * THROTTLE_LOGIN + [429]
    # Another client behind the same proxy is not held back, whatever the first entry says.
    assert token_attempt(clock, endpoint, "someone", "wrong-guess", address=PROXY,
                         HTTP_X_FORWARDED_FOR=f"{HOME}, {ELSEWHERE}") == 401


@token_endpoints
def test_failures_on_one_user_do_not_stop_another_from_the_same_address(fast_passwords, clock, endpoint):
    alice, bob = UserFactory(username="alice"), UserFactory(username="bob")
    statuses = [token_attempt(clock, endpoint, alice.username, "wrong-guess") for _ in range(15)]
    assert statuses == [401] * LOCKOUT_AFTER + [429] * (15 - LOCKOUT_AFTER)
    assert token_attempt(clock, endpoint, bob.username, "correct-horse-battery-9") == 200
    # alice is locked at this address only, and only for the window.
    assert token_attempt(clock, endpoint, alice.username, "correct-horse-battery-9") == 429
    assert token_attempt(clock, endpoint, alice.username, "correct-horse-battery-9", address=ELSEWHERE) == 200
    clock.shift(5 * 60)
    assert token_attempt(clock, endpoint, alice.username, "correct-horse-battery-9") == 200


def test_the_site_and_the_api_share_one_lockout(fast_passwords, clock, client):
    alice = UserFactory(username="alice")
    for _ in range(LOCKOUT_AFTER - 2):
        client.post(reverse("account_login"), {"login": "alice", "password": "wrong-guess"}, REMOTE_ADDR=HOME)
        clock.shift(0.4)
    assert token_attempt(clock, "/token", alice.username, "wrong-guess") == 401
    assert token_attempt(clock, "/api/token/", alice.username, "wrong-guess") == 401
    response = APIClient().post("/token", {"username": "alice", "password": "correct-horse-battery-9"}, REMOTE_ADDR=HOME)
    assert response.status_code == 429
    assert "로그인" in response.json()["detail"]  # allauth's message, in Korean
