"""The admin: staff see masked accounts; non-staff users cannot get in at all."""

import pytest
from django.urls import reverse

from accounts.models import BrokerAccount
from accounts.tests.factories import BrokerAccountFactory, UserFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin_user(db):
    return UserFactory(is_staff=True, is_superuser=True)


def test_admin_list_and_change_page_show_no_secret(client, admin_user, other_user):
    account = BrokerAccountFactory(owner=other_user, account_number="99887766")
    client.force_login(admin_user)
    listing = client.get(reverse("admin:accounts_brokeraccount_changelist")).content.decode()
    change = client.get(reverse("admin:accounts_brokeraccount_change", args=[account.pk])).content.decode()
    for body in (listing, change):
        assert "9988****-01" in body
        assert "99887766" not in body and account.app_secret not in body and account.app_key not in body


def test_admin_edit_with_blank_secrets_keeps_them(client, admin_user):
    account = BrokerAccountFactory(owner=admin_user)
    client.force_login(admin_user)
    response = client.post(
        reverse("admin:accounts_brokeraccount_change", args=[account.pk]),
        {"owner": admin_user.pk, "name": "admin renamed", "mode": account.mode, "app_key": "", "app_secret": "",
         "account_number": "", "product_code": "01", "hts_id": "", "is_default": "on"},
    )
    assert response.status_code == 302
    fresh = BrokerAccount.objects.get(pk=account.pk)
    assert fresh.name == "admin renamed" and fresh.app_secret == account.app_secret


def test_admin_refuses_invalid_account_number_with_a_message(client, admin_user):
    client.force_login(admin_user)
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
