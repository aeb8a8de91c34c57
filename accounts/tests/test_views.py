"""The account pages: masked values, write-only secrets, and no access to other users' accounts."""

import pytest
from django.urls import reverse

from accounts.models import BrokerAccount
from accounts.tests.factories import BrokerAccountFactory
from accounts.tests.second_factor import step_up

pytestmark = pytest.mark.django_db


def test_list_shows_masked_values_only(client, user):
    account = BrokerAccountFactory(owner=user, account_number="11223344")
    client.force_login(user)
    body = client.get(reverse("accounts:broker_account_list")).content.decode()
    assert account.name in body and "1122****-01" in body
    assert "11223344" not in body and account.app_secret not in body and account.app_key not in body


def test_edit_form_never_renders_secrets(client, user):
    account = BrokerAccountFactory(owner=user)
    client.force_login(user)
    body = client.get(reverse("accounts:broker_account_edit", args=[account.pk])).content.decode()
    assert account.app_secret not in body and account.app_key not in body and account.account_number not in body


def test_create_through_the_page(client, user):
    step_up(client, user)  # keys added: a second factor within the last minutes
    response = client.post(
        reverse("accounts:broker_account_create"),
        {"name": "모의투자", "mode": "simulated", "app_key": "PSKEY123", "app_secret": "SECRET456",
         "account_number": "50001111", "product_code": "01"},
    )
    assert response.status_code == 302
    account = BrokerAccount.objects.get(owner=user)
    assert account.app_secret == "SECRET456" and account.is_default


def test_invalid_input_is_shown_on_the_form(client, user):
    client.force_login(user)
    response = client.post(
        reverse("accounts:broker_account_create"),
        {"name": "실전", "mode": "real", "app_key": "", "app_secret": "", "account_number": "12", "product_code": "1"},
    )
    assert response.status_code == 200
    errors = response.context["form"].errors
    assert {"app_key", "account_number", "product_code"} <= set(errors)
    assert not BrokerAccount.objects.exists()


def test_edit_keeps_secret_when_left_blank(client, user):
    account = BrokerAccountFactory(owner=user)
    secret = account.app_secret
    client.force_login(user)
    response = client.post(
        reverse("accounts:broker_account_edit", args=[account.pk]),
        {"name": "새 이름", "mode": account.mode, "app_key": "", "app_secret": "", "account_number": "",
         "product_code": "01", "is_default": "on"},
    )
    assert response.status_code == 302, response.context["form"].errors
    account.refresh_from_db()
    assert account.name == "새 이름" and account.app_secret == secret


def test_other_users_account_pages_are_404(client, user, other_user):
    theirs = BrokerAccountFactory(owner=other_user)
    client.force_login(user)
    assert client.get(reverse("accounts:broker_account_edit", args=[theirs.pk])).status_code == 404
    assert client.post(reverse("accounts:broker_account_delete", args=[theirs.pk])).status_code == 404
    assert theirs.name not in client.get(reverse("accounts:broker_account_list")).content.decode()
    assert theirs.name not in client.get(reverse("dashboard")).content.decode()
    assert BrokerAccount.objects.filter(pk=theirs.pk).exists()
