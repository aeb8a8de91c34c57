"""Which broker account a market command uses: --account ID, else the .env KIS account, else the
superuser's default account."""

from __future__ import annotations

from django.core.management.base import CommandError

from accounts.models import BrokerAccount
from market.kis_env import env_broker_account


def add_account_argument(parser) -> None:
    parser.add_argument("--account", type=int, help="BrokerAccount id (default: the .env KIS account)")


def resolve_account(account_id: int | None) -> BrokerAccount:
    if account_id is not None:
        account = BrokerAccount.objects.filter(pk=account_id).first()
        if account is None:
            raise CommandError(f"broker account {account_id} does not exist")
        return account
    account = env_broker_account()
    if account is None:
        account = BrokerAccount.objects.filter(owner__is_superuser=True, is_default=True).order_by("pk").first()
    if account is None:
        raise CommandError(
            "no broker account: give --account ID, or set KIS_APP_KEY, KIS_APP_SECRET and KIS_ACCOUNT in .env"
        )
    return account
