"""The admin: staff see masked accounts; non-staff users cannot get in at all; its login is the site's."""

import pytest
from django.urls import reverse

from accounts.models import BrokerAccount
from accounts.tests.factories import BrokerAccountFactory, UserFactory
from accounts.tests.second_factor import add_totp, step_up, totp_code

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin_user(db):
    return UserFactory(is_staff=True, is_superuser=True)


def test_admin_list_and_change_page_show_no_secret(client, admin_user, other_user):
    account = BrokerAccountFactory(owner=other_user, account_number="99887766")
    step_up(client, admin_user)  # staff reach the admin with a second factor
    listing = client.get(reverse("admin:accounts_brokeraccount_changelist")).content.decode()
    change = client.get(reverse("admin:accounts_brokeraccount_change", args=[account.pk])).content.decode()
    for body in (listing, change):
        assert "9988****-01" in body
        assert "99887766" not in body and account.app_secret not in body and account.app_key not in body


def test_admin_edit_with_blank_secrets_keeps_them(client, admin_user):
    account = BrokerAccountFactory(owner=admin_user)
    step_up(client, admin_user)  # staff reach the admin with a second factor
    response = client.post(
        reverse("admin:accounts_brokeraccount_change", args=[account.pk]),
        {"owner": admin_user.pk, "name": "admin renamed", "mode": account.mode, "app_key": "", "app_secret": "",
         "account_number": "", "product_code": "01", "hts_id": "", "is_default": "on"},
    )
    assert response.status_code == 302
    fresh = BrokerAccount.objects.get(pk=account.pk)
    assert fresh.name == "admin renamed" and fresh.app_secret == account.app_secret


def test_admin_refuses_invalid_account_number_with_a_message(client, admin_user):
    step_up(client, admin_user)  # staff reach the admin with a second factor
    response = client.post(
        reverse("admin:accounts_brokeraccount_add"),
        {"owner": admin_user.pk, "name": "bad", "mode": "real", "app_key": "k", "app_secret": "s",
         "account_number": "12ab", "product_code": "01", "hts_id": ""},
    )
    assert response.status_code == 200
    assert "account_number" in response.context["adminform"].form.errors
    assert not BrokerAccount.objects.exists()


def test_non_staff_user_cannot_open_the_admin(client, user, other_user):
    account = BrokerAccountFactory(owner=other_user)
    client.force_login(user)
    response = client.get(reverse("admin:accounts_brokeraccount_change", args=[account.pk]))
    assert response.status_code == 302 and reverse("admin:login") in response.url


# --- The admin's login goes through the site's (allauth), with its limits ---------------------------

def test_the_admin_login_form_checks_no_password(fast_passwords, clock, client):
    """The issue: 60 wrong passwords on /admin/login/ were all answered 200, then the right one logged
    in. Now /admin/login/ only sends to the site's login, rate-limited and with the lockout."""
    staff = UserFactory(username="boss", is_staff=True, is_superuser=True)
    url = reverse("admin:login") + "?next=/admin/"
    for guess in [f"guess-{n}" for n in range(60)] + ["correct-horse-battery-9"]:
        response = client.post(url, {"username": staff.username, "password": guess})
        clock.shift(0.4)
        assert response.status_code == 302
        assert response.url == reverse("account_login") + "?next=%2Fadmin%2F"
    assert "_auth_user_id" not in client.session


def test_admin_brute_force_is_locked_then_429_and_staff_get_in_after_the_window(fast_passwords, clock, client):
    staff = UserFactory(username="boss", is_staff=True, is_superuser=True)
    login_page = client.get(reverse("admin:index"), follow=True)
    assert login_page.redirect_chain[-1][0] == reverse("account_login") + "?next=%2Fadmin%2F"
    login_url = login_page.redirect_chain[-1][0]

    def attempt(password):
        response = client.post(login_url, {"login": staff.username, "password": password})
        clock.shift(0.4)
        return response

    for _ in range(5):
        assert attempt("wrong-guess").status_code == 200
    locked = attempt("correct-horse-battery-9")  # the lockout refuses before the password is checked
    assert locked.status_code == 200
    assert "_auth_user_id" not in client.session
    assert [error.code for error in locked.context["form"].errors.as_data()["__all__"]] == ["too_many_login_attempts"]
    # Login POSTs 7 to 36 of the minute from this address: from the 31st on, 429 (30 a minute).
    statuses = [attempt("wrong-guess").status_code for _ in range(30)]
    assert statuses == [200] * 24 + [429] * 6

    clock.shift(5 * 60)
    secret = add_totp(staff)
    response = client.post(login_url, {"login": staff.username, "password": "correct-horse-battery-9"}, follow=True)
    # The password is the first step only: allauth asks for the second factor, then the admin opens.
    assert response.redirect_chain[-1][0] == reverse("mfa_authenticate")
    assert "_auth_user_id" not in client.session
    response = client.post(reverse("mfa_authenticate"), {"code": totp_code(secret)}, follow=True)
    assert response.redirect_chain[-1][0] == "/admin/"
    assert response.status_code == 200 and response.context["user"] == staff


def test_staff_without_a_second_factor_are_sent_to_set_one_up_not_into_the_admin(client):
    staff = UserFactory(is_staff=True, is_superuser=True)
    client.force_login(staff)  # a password login (or Kakao): no second factor in this session
    response = client.get(reverse("admin:index"), follow=True)
    assert response.redirect_chain[-1][0] == reverse("mfa_index")
    assert client.get(reverse("admin:accounts_brokeraccount_changelist")).status_code == 302


def test_staff_with_a_second_factor_not_used_in_this_session_confirm_it_first(client):
    staff = UserFactory(is_staff=True, is_superuser=True)
    secret = add_totp(staff)
    client.force_login(staff)
    response = client.get(reverse("admin:index"), follow=True)
    assert response.redirect_chain[-1][0].startswith(reverse("mfa_reauthenticate") + "?next=")
    assert client.get(reverse("admin:index")).status_code == 302
    confirmed = client.post(response.redirect_chain[-1][0], {"code": totp_code(secret)}, follow=True)
    assert confirmed.redirect_chain[-1][0] == "/admin/" and confirmed.status_code == 200
    assert client.get(reverse("admin:accounts_brokeraccount_changelist")).status_code == 200


def test_a_logged_in_non_staff_user_is_refused_at_the_admin_login(client, user):
    client.force_login(user)
    assert client.get(reverse("admin:login")).status_code == 403
