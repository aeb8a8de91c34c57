"""Kakao login through allauth's Kakao provider, against a fake Kakao server over real HTTP."""

from urllib.parse import parse_qs, urlparse

import pytest
from allauth.socialaccount.models import SocialAccount
from allauth.socialaccount.providers.kakao.views import KakaoOAuth2Adapter
from django.contrib.auth import get_user_model
from django.urls import reverse

from accounts.tests.fake_kakao import FakeKakao

pytestmark = pytest.mark.django_db

KAKAO_APP = {"client_id": "kakao-rest-key", "secret": "kakao-secret", "key": ""}


@pytest.fixture
def kakao_enabled(settings):
    settings.SOCIALACCOUNT_PROVIDERS = {
        "kakao": {**settings.SOCIALACCOUNT_PROVIDERS["kakao"], "APP": KAKAO_APP},
    }


@pytest.fixture
def fake_kakao(monkeypatch):
    with FakeKakao() as fake:
        # Point allauth's adapter at the fake; everything else (state, code exchange, profile
        # parsing, account creation) is allauth's real code over real HTTP.
        monkeypatch.setattr(KakaoOAuth2Adapter, "access_token_url", f"{fake.base_url}/oauth/token")
        monkeypatch.setattr(KakaoOAuth2Adapter, "profile_url", f"{fake.base_url}/v2/user/me")
        yield fake


def start_kakao_login(client, process="login"):
    response = client.post(reverse("kakao_login") + f"?process={process}")
    assert response.status_code == 302
    location = urlparse(response.url)
    assert location.netloc == "kauth.kakao.com"
    query = parse_qs(location.query)
    assert query["client_id"] == ["kakao-rest-key"]
    assert query["redirect_uri"][0].endswith("/accounts/kakao/login/callback/")
    return query["state"][0]


def test_kakao_button_hidden_without_client_id(client):
    body = client.get(reverse("account_login")).content.decode()
    assert "/accounts/kakao/login/" not in body


def test_kakao_button_shown_when_configured(client, kakao_enabled):
    body = client.get(reverse("account_login")).content.decode()
    assert "/accounts/kakao/login/" in body


def test_kakao_login_creates_a_user_and_logs_in(client, kakao_enabled, fake_kakao):
    state = start_kakao_login(client)
    response = client.get(reverse("kakao_callback"), {"code": "good-code", "state": state})
    assert response.status_code == 302
    assert response.url == reverse("dashboard")
    account = SocialAccount.objects.get(provider="kakao", uid="3141592653")
    assert account.user.email == "kakao@example.com"
    assert fake_kakao.token_requests[0]["client_id"] == "kakao-rest-key"
    assert fake_kakao.profile_requests == ["Bearer fake-kakao-access-token"]
    assert client.get(reverse("dashboard")).status_code == 200


def test_second_kakao_login_reuses_the_same_user(client, kakao_enabled, fake_kakao):
    for _ in range(2):
        state = start_kakao_login(client)
        client.get(reverse("kakao_callback"), {"code": "good-code", "state": state})
        client.post(reverse("account_logout"))
    assert get_user_model().objects.count() == 1


def test_existing_user_links_kakao(client, user, kakao_enabled, fake_kakao):
    client.force_login(user)
    state = start_kakao_login(client, process="connect")
    response = client.get(reverse("kakao_callback"), {"code": "good-code", "state": state})
    assert response.status_code == 302
    assert SocialAccount.objects.get(provider="kakao").user == user
    assert get_user_model().objects.count() == 1


def test_rejected_code_does_not_log_in(client, kakao_enabled, fake_kakao):
    state = start_kakao_login(client)
    response = client.get(reverse("kakao_callback"), {"code": "stolen-code", "state": state})
    assert response.status_code == 401  # allauth's "login failure" page, not a 500
    assert not SocialAccount.objects.exists()
    assert client.get(reverse("dashboard")).status_code == 302


def test_forged_state_is_refused(client, kakao_enabled, fake_kakao):
    start_kakao_login(client)
    response = client.get(reverse("kakao_callback"), {"code": "good-code", "state": "forged"})
    assert response.status_code == 401
    assert not SocialAccount.objects.exists()
    assert fake_kakao.token_requests == []
