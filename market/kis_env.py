"""The KIS account described by .env (KIS_APP_KEY, KIS_APP_SECRET, KIS_ACCOUNT, ...), as a BrokerAccount
that is never saved: lets the shell commands talk to KIS before any account exists in the database."""

from __future__ import annotations

from django.conf import settings

from accounts.models import BrokerAccount


def env_broker_account() -> BrokerAccount | None:
    if not (settings.KIS_APP_KEY and settings.KIS_APP_SECRET and settings.KIS_ACCOUNT):
        return None
    return BrokerAccount(
        pk=None, name="KIS (.env)", mode=settings.KIS_MODE, app_key=settings.KIS_APP_KEY,
        app_secret=settings.KIS_APP_SECRET, account_number=settings.KIS_ACCOUNT.replace("-", "")[:8],
        product_code=settings.KIS_ACCOUNT_PRODUCT_CODE or "01", hts_id=settings.KIS_HTS_ID,
    )
