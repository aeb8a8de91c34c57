"""Broker secrets are encrypted at rest and never shown in full."""

import pytest
from cryptography.fernet import Fernet
from django.core.exceptions import ValidationError
from django.db import connection

from accounts.crypto import DecryptionError
from accounts.models import BrokerAccount, BrokerMode
from accounts.services import create_broker_account, rotate_broker_secrets
from accounts.tests.factories import BrokerAccountFactory

pytestmark = pytest.mark.django_db


def raw_row(pk):
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT app_key, app_secret, account_number FROM {BrokerAccount._meta.db_table} WHERE id = %s", [pk]
        )
        return cursor.fetchone()


def test_secrets_are_stored_encrypted(user):
    account = create_broker_account(
        user, name="실전", mode=BrokerMode.REAL, app_key="PSAPPKEY-visible", app_secret="the-app-secret",
        account_number="87654321", product_code="01",
    )
    app_key, app_secret, account_number = raw_row(account.pk)
    for raw, plain in ((app_key, "PSAPPKEY-visible"), (app_secret, "the-app-secret"), (account_number, "87654321")):
        assert plain not in raw
        assert raw.startswith("gAAAA")  # a Fernet token
    fresh = BrokerAccount.objects.get(pk=account.pk)
    assert (fresh.app_key, fresh.app_secret, fresh.account_number) == ("PSAPPKEY-visible", "the-app-secret", "87654321")


def test_masks_never_contain_the_secret(user):
    account = BrokerAccountFactory(owner=user, account_number="87654321", app_key="PSAPPKEYABCDEFGH")
    assert account.masked_account_number == "8765****-01"
    assert account.masked_app_key == "PSAP********"
    assert account.app_secret not in account.masked_app_secret
    assert "87654321" not in str(account) and "87654321" not in repr(account)


def test_kis_account_requires_credentials(user):
    with pytest.raises(ValidationError) as error:
        create_broker_account(user, name="빈 계좌", mode=BrokerMode.REAL)
    assert {"app_key", "app_secret", "account_number"} <= set(error.value.message_dict)
    assert not BrokerAccount.objects.exists()


def test_paper_account_needs_no_credentials_and_first_account_is_default(user):
    account = create_broker_account(user, name="모의", mode=BrokerMode.PAPER)
    assert account.is_default


def test_only_one_default_per_user(user):
    first = BrokerAccountFactory(owner=user)
    second = BrokerAccountFactory(owner=user, is_default=True)
    first.refresh_from_db()
    assert second.is_default and not first.is_default


def test_wrong_key_gives_a_clear_error(user, settings):
    account = BrokerAccountFactory(owner=user)
    settings.FIELD_ENCRYPTION_KEYS = [Fernet.generate_key().decode()]
    with pytest.raises(DecryptionError, match="FIELD_ENCRYPTION_KEYS"):
        BrokerAccount.objects.get(pk=account.pk)


def test_key_rotation_re_encrypts_with_the_new_key(user, settings):
    old_key = Fernet.generate_key().decode()
    settings.FIELD_ENCRYPTION_KEYS = [old_key]
    account = BrokerAccountFactory(owner=user, app_secret="rotate-me")
    new_key = Fernet.generate_key().decode()
    settings.FIELD_ENCRYPTION_KEYS = [new_key, old_key]
    assert rotate_broker_secrets() == 1
    settings.FIELD_ENCRYPTION_KEYS = [new_key]
    assert BrokerAccount.objects.get(pk=account.pk).app_secret == "rotate-me"
