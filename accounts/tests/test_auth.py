"""Sign-up, login, logout and password change through allauth's pages."""

import pytest
from django.contrib.auth import get_user_model
from django.urls import reverse

pytestmark = pytest.mark.django_db


def test_login_with_username_reaches_the_dashboard(client, user, password):
    response = client.post(reverse("account_login"), {"login": user.username, "password": password}, follow=True)
    assert response.redirect_chain[-1][0] == reverse("dashboard")
    assert response.context["user"] == user


def test_login_with_wrong_password_shows_an_error_and_stays_anonymous(client, user):
    response = client.post(reverse("account_login"), {"login": user.username, "password": "wrong-password"})
    assert response.status_code == 200
    assert not response.context["user"].is_authenticated
    assert response.context["form"].errors


def test_dashboard_requires_login(client):
    response = client.get(reverse("dashboard"))
    assert response.status_code == 302
    assert response.url.startswith(reverse("account_login"))


def test_sign_up_creates_a_user_and_logs_in(client):
    response = client.post(
        reverse("account_signup"),
        {"username": "newtrader", "email": "new@example.com", "password1": "Kospi-2026-weekly", "password2": "Kospi-2026-weekly"},
        follow=True,
    )
    assert response.status_code == 200
    user = get_user_model().objects.get(username="newtrader")
    assert user.check_password("Kospi-2026-weekly")
    assert response.context["user"] == user


def test_sign_up_refuses_an_email_already_in_use(client, user):
    response = client.post(
        reverse("account_signup"),
        {"username": "another", "email": user.email, "password1": "Kospi-2026-weekly", "password2": "Kospi-2026-weekly"},
    )
    assert response.status_code == 200
    assert "email" in response.context["form"].errors
    assert not get_user_model().objects.filter(username="another").exists()


def test_logout_ends_the_session(client, user):
    client.force_login(user)
    client.post(reverse("account_logout"))
    assert client.get(reverse("dashboard")).status_code == 302


def test_password_change(client, user, password):
    client.force_login(user)
    response = client.post(
        reverse("account_change_password"),
        {"oldpassword": password, "password1": "Brand-new-pass-77", "password2": "Brand-new-pass-77"},
    )
    assert response.status_code == 302
    user.refresh_from_db()
    assert user.check_password("Brand-new-pass-77")


def test_pages_are_korean_by_default(client, user):
    client.force_login(user)
    body = client.get(reverse("dashboard")).content.decode()
    assert "대시보드" in body and "리포트" in body
    assert '<html lang="ko">' in body


def test_language_switch_to_english(client, user):
    client.force_login(user)
    client.post(reverse("set_language"), {"language": "en", "next": "/"})
    body = client.get(reverse("dashboard")).content.decode()
    assert "Dashboard" in body and '<html lang="en">' in body


def test_browser_language_does_not_override_korean_default(client, user):
    client.force_login(user)
    body = client.get(reverse("dashboard"), HTTP_ACCEPT_LANGUAGE="en-US,en;q=0.9").content.decode()
    assert "대시보드" in body
