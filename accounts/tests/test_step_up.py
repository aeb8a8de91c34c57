"""Step-up on the broker account paths: switching real money on and adding or changing keys need a second
factor used within STEP_UP_SECONDS — on the page (re-authentication, then the kept POST goes through),
over the API (403 step_up_required, then POST /api/auth/step-up/), in the admin; the second factor
itself (TOTP on a frozen clock, single-use recovery codes, encrypted at rest) and the rule that it stays
on while real money is on."""

from __future__ import annotations

import datetime as dt
import time

import pytest
import time_machine
from allauth.mfa.models import Authenticator
from django.urls import reverse
from rest_framework.test import APIClient
from rest_framework_simplejwt.tokens import RefreshToken

from accounts.models import BrokerAccount, BrokerMode
from accounts.step_up import SensitiveAction, broker_change_action
from accounts.tests.factories import BrokerAccountFactory, UserFactory
from accounts.tests.second_factor import (
    add_totp,
    mark_second_factor_used,
    recovery_codes,
    step_up,
    totp_code,
)

pytestmark = pytest.mark.django_db

SEOUL = dt.timezone(dt.timedelta(hours=9))
MOMENT = dt.datetime(2026, 11, 24, 10, 0, tzinfo=SEOUL)


@pytest.fixture
def clock():
    with time_machine.travel(MOMENT, tick=False) as traveller:
        yield traveller


@pytest.fixture
def real_account(user):
    """A real-mode KIS account with keys, real money not yet confirmed."""
    return BrokerAccountFactory(owner=user, mode=BrokerMode.REAL, app_key="PSREALKEY0001", app_secret="real-secret-1",
                                account_number="12345678", live_trading_confirmed_at=None)


def edit_form(account, **changes) -> dict:
    data = {"name": account.name, "mode": account.mode, "app_key": "", "app_secret": "", "account_number": "",
            "product_code": account.product_code, "hts_id": "", "is_default": "on"}
    data.update(changes)
    return data


def jwt(user) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {RefreshToken.for_user(user).access_token}")
    return client


# ------------------------------------------------------------------------------------ what needs it
def test_which_changes_are_sensitive(user, real_account):
    assert broker_change_action(real_account, {"confirm_live_trading": True}) is SensitiveAction.REAL_MONEY_ON
    assert broker_change_action(real_account, {"app_secret": "new-secret"}) is SensitiveAction.BROKER_KEYS
    assert broker_change_action(real_account, {"app_secret": ""}) is None  # blank keeps the stored one
    assert broker_change_action(real_account, {"app_key": real_account.app_key}) is None  # the same key
    assert broker_change_action(real_account, {"name": "새 이름", "is_default": True}) is None
    new = BrokerAccount(owner=user)
    assert broker_change_action(new, {"name": "모의", "mode": "simulated", "app_key": "K", "app_secret": "S",
                                      "account_number": "50001111"}) is SensitiveAction.BROKER_KEYS
    assert broker_change_action(new, {"name": "종이", "mode": "paper"}) is None
    live = BrokerAccountFactory(owner=user, name="live", mode=BrokerMode.REAL, live_trading_confirmed_at=MOMENT)
    assert broker_change_action(live, {"confirm_live_trading": False}) is None  # switching off is always allowed


# ------------------------------------------------------------------------------------------ the page
def test_real_money_on_the_page_without_a_second_factor_sends_to_set_one_up(client, user, real_account):
    client.force_login(user)
    response = client.post(reverse("accounts:broker_account_edit", args=[real_account.pk]),
                           edit_form(real_account, confirm_live_trading="on"))
    assert response.status_code == 302 and response.url == reverse("mfa_index")
    real_account.refresh_from_db()
    assert real_account.live_trading_confirmed_at is None


def test_real_money_on_the_page_asks_for_the_code_then_the_kept_form_goes_through(clock, client, user, real_account):
    secret = add_totp(user)
    client.force_login(user)
    mark_second_factor_used(client, user, at=time.time())  # the login's second factor …
    clock.shift(301)  # … more than STEP_UP_SECONDS (300) ago
    url = reverse("accounts:broker_account_edit", args=[real_account.pk])
    response = client.post(url, edit_form(real_account, confirm_live_trading="on"))
    assert response.status_code == 302
    assert response.url == reverse("mfa_reauthenticate") + "?next=" + url.replace("/", "%2F")
    real_account.refresh_from_db()
    assert real_account.live_trading_confirmed_at is None
    wrong = client.post(response.url, {"code": "000000" if totp_code(secret) != "000000" else "111111"})
    assert wrong.status_code == 200 and real_account.__class__.objects.get(pk=real_account.pk).live_trading_confirmed_at is None
    done = client.post(response.url, {"code": totp_code(secret)})
    assert done.status_code == 302 and done.url == reverse("accounts:broker_account_list")  # the form's own answer
    real_account.refresh_from_db()
    assert real_account.live_trading_confirmed_at is not None
    # Within the next minutes another sensitive change needs no new code; after them it does again.
    assert client.post(url, edit_form(real_account, app_secret="rotated-secret")).url == reverse(
        "accounts:broker_account_list")
    clock.shift(301)
    assert client.post(url, edit_form(real_account, app_secret="rotated-again")).url.startswith(
        reverse("mfa_reauthenticate"))
    assert BrokerAccount.objects.get(pk=real_account.pk).app_secret == "rotated-secret"


def test_a_password_re_authentication_is_not_a_second_factor(client, user, real_account):
    add_totp(user)
    user.set_password("correct-horse-battery-9")
    user.save()
    client.force_login(user)
    client.post(reverse("account_reauthenticate"), {"password": "correct-horse-battery-9"})
    response = client.post(reverse("accounts:broker_account_edit", args=[real_account.pk]),
                           edit_form(real_account, confirm_live_trading="on"))
    assert response.url.startswith(reverse("mfa_reauthenticate"))
    real_account.refresh_from_db()
    assert real_account.live_trading_confirmed_at is None


def test_harmless_edits_need_no_second_factor(client, user, real_account):
    client.force_login(user)
    response = client.post(reverse("accounts:broker_account_edit", args=[real_account.pk]),
                           edit_form(real_account, name="주계좌"))
    assert response.status_code == 302 and response.url == reverse("accounts:broker_account_list")
    assert BrokerAccount.objects.get(pk=real_account.pk).name == "주계좌"


def test_adding_keys_on_the_page_needs_the_second_factor(client, user):
    client.force_login(user)
    response = client.post(reverse("accounts:broker_account_create"),
                           {"name": "모의투자", "mode": "simulated", "app_key": "PSKEY123", "app_secret": "SECRET456",
                            "account_number": "50001111", "product_code": "01"})
    assert response.url == reverse("mfa_index")
    assert not BrokerAccount.objects.exists()


# ------------------------------------------------------------------------------------------- the API
def test_api_real_money_on_answers_403_until_the_client_steps_up(clock, user, real_account):
    secret = add_totp(user)
    client = jwt(user)
    url = reverse("api:broker-account-detail", args=[real_account.pk])
    refused = client.patch(url, {"confirm_live_trading": True}, format="json")
    assert refused.status_code == 403
    body = refused.json()
    assert body["code"] == "step_up_required" and body["step_up_url"] == "/api/auth/step-up/"
    assert body["has_second_factor"] is True and "/api/auth/step-up/" in body["detail"]
    assert BrokerAccount.objects.get(pk=real_account.pk).live_trading_confirmed_at is None

    step = reverse("api:step_up")
    assert client.post(step, {"code": "12345"}, format="json").status_code == 400
    answer = client.post(step, {"code": totp_code(secret)}, format="json")
    assert answer.status_code == 200 and answer.json()["method"] == "totp"
    assert dt.datetime.fromisoformat(answer.json()["step_up_expires_at"]) == MOMENT + dt.timedelta(seconds=300)
    stepped = APIClient()
    stepped.credentials(HTTP_AUTHORIZATION=f"Bearer {answer.json()['access']}")
    assert stepped.patch(url, {"confirm_live_trading": True}, format="json").status_code == 200
    assert BrokerAccount.objects.get(pk=real_account.pk).live_trading_confirmed_at is not None
    # The same TOTP code cannot be used twice (allauth marks it used), and the step-up ages out.
    assert client.post(step, {"code": totp_code(secret)}, format="json").status_code == 400
    clock.shift(301)
    again = stepped.patch(url, {"app_secret": "new-secret"}, format="json")
    assert again.status_code == 403 and again.json()["code"] == "step_up_required"


def test_api_keys_need_a_second_factor_the_user_does_not_have(user):
    response = jwt(user).post(reverse("api:broker-account-list"),
                              {"name": "모의", "mode": "simulated", "app_key": "K1", "app_secret": "S1",
                               "account_number": "50001111", "product_code": "01"}, format="json")
    assert response.status_code == 403 and response.json()["has_second_factor"] is False
    assert "/accounts/2fa/" in response.json()["detail"]
    assert not BrokerAccount.objects.exists()
    assert jwt(user).post(reverse("api:step_up"), {"code": "123456"}, format="json").status_code == 400


def test_a_session_step_up_does_not_lend_itself_to_a_token_without_one(client, user, real_account):
    """A JWT request is judged by its token: a browser session of the same user that stepped up does not count."""
    step_up(client, user)
    api = jwt(user)
    api.cookies = client.cookies  # the session cookie travels too
    response = api.patch(reverse("api:broker-account-detail", args=[real_account.pk]),
                         {"confirm_live_trading": True}, format="json")
    assert response.status_code == 403


def test_a_forged_step_up_claim_is_rejected(user, real_account):
    from rest_framework_simplejwt.tokens import AccessToken

    add_totp(user)
    token = str(AccessToken.for_user(user))
    header, payload, signature = token.split(".")
    import base64
    import json

    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    claims["step_up_at"] = int(time.time())
    forged_payload = base64.urlsafe_b64encode(json.dumps(claims).encode()).decode().rstrip("=")
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {header}.{forged_payload}.{signature}")
    response = client.patch(reverse("api:broker-account-detail", args=[real_account.pk]),
                            {"confirm_live_trading": True}, format="json")
    assert response.status_code == 401
    assert BrokerAccount.objects.get(pk=real_account.pk).live_trading_confirmed_at is None


def test_recovery_codes_step_up_once_each(user, real_account):
    add_totp(user, recovery_codes=True)
    code = recovery_codes(user)[0]
    client = jwt(user)
    first = client.post(reverse("api:step_up"), {"code": code}, format="json")
    assert first.status_code == 200 and first.json()["method"] == "recovery_codes"
    assert client.post(reverse("api:step_up"), {"code": code}, format="json").status_code == 400
    assert code not in recovery_codes(user)


def test_wrong_codes_are_limited(user):
    add_totp(user)
    client = jwt(user)
    statuses = [client.post(reverse("api:step_up"), {"code": "000000"}, format="json").status_code
                for _ in range(8)]
    assert 429 in statuses and statuses[0] == 400


# ---------------------------------------------------------------------------------- the second factor
def test_totp_codes_on_a_frozen_clock(clock, client, user):
    secret = add_totp(user)
    client.force_login(user)
    earlier = totp_code(secret, at=time.time() - 90)  # three periods back: no longer valid
    if earlier != totp_code(secret):
        assert client.post(reverse("mfa_reauthenticate"), {"code": earlier}).status_code == 200  # the form again
    assert client.post(reverse("mfa_reauthenticate"), {"code": totp_code(secret)}).status_code == 302


def test_the_totp_secret_is_encrypted_at_rest(user):
    secret = add_totp(user)
    stored = Authenticator.objects.get(user=user, type=Authenticator.Type.TOTP).data["secret"]
    assert secret not in stored and stored.startswith("gAAAA")  # a Fernet token


def test_the_second_factor_stays_on_while_real_money_is_on(clock, client, user, real_account):
    secret = add_totp(user)
    real_account.live_trading_confirmed_at = MOMENT
    real_account.save()
    step_up(client, user)
    deactivate = reverse("mfa_deactivate_totp")
    refused = client.post(deactivate, {"code": totp_code(secret)})
    assert refused.status_code == 200
    assert Authenticator.objects.filter(user=user, type=Authenticator.Type.TOTP).exists()
    # A passkey as the last second factor is kept too.
    Authenticator.objects.filter(user=user, type=Authenticator.Type.TOTP).delete()
    passkey = Authenticator.objects.create(user=user, type=Authenticator.Type.WEBAUTHN,
                                           data={"name": "phone", "credential": {}})
    response = client.post(reverse("mfa_remove_webauthn", args=[passkey.pk]))
    assert response.status_code == 302 and Authenticator.objects.filter(pk=passkey.pk).exists()
    # Real money off first, then the second factor can go.
    client.post(reverse("accounts:broker_account_edit", args=[real_account.pk]), edit_form(real_account))
    assert BrokerAccount.objects.get(pk=real_account.pk).live_trading_confirmed_at is None
    client.post(reverse("mfa_remove_webauthn", args=[passkey.pk]))
    assert not Authenticator.objects.filter(pk=passkey.pk).exists()


def test_a_kakao_only_user_can_add_a_second_factor(client):
    user = UserFactory()
    user.set_unusable_password()
    user.save()
    client.force_login(user)
    page = client.get(reverse("mfa_activate_totp"))
    assert page.status_code == 200, page.status_code


def test_the_admin_asks_for_the_second_factor_again_before_changing_keys(clock, client):
    staff = UserFactory(is_staff=True, is_superuser=True)
    account = BrokerAccountFactory(owner=staff, mode=BrokerMode.SIMULATED, app_secret="old-secret")
    step_up(client, staff)
    clock.shift(301)  # the admin session's second factor, minutes ago: the admin opens, keys wait
    url = reverse("admin:accounts_brokeraccount_change", args=[account.pk])
    form = {"owner": staff.pk, "name": account.name, "mode": account.mode, "app_key": "", "app_secret": "new-secret",
            "account_number": "", "product_code": "01", "hts_id": "", "is_default": "on"}
    response = client.post(url, form)
    assert response.status_code == 302 and response.url.startswith(reverse("mfa_reauthenticate"))
    assert BrokerAccount.objects.get(pk=account.pk).app_secret == "old-secret"
    mark_second_factor_used(client, staff)
    assert client.post(url, form).status_code == 302
    assert BrokerAccount.objects.get(pk=account.pk).app_secret == "new-secret"
