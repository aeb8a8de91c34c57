"""allauth hooks: failed-login limits keyed on the account and the client address together; the second
factor's secrets encrypted at rest and kept while real money is on."""

from __future__ import annotations

import ipaddress

from allauth import app_settings as allauth_settings
from allauth.account.adapter import DefaultAccountAdapter
from allauth.account.utils import filter_users_by_email, filter_users_by_username
from allauth.mfa.adapter import DefaultMFAAdapter
from django.contrib.sites.shortcuts import get_current_site
from django.utils.translation import gettext_lazy as _

from . import crypto


class AccountAdapter(DefaultAccountAdapter):
    def _get_login_attempts_cache_key(self, request, **credentials) -> str:
        """The key of the per-"key" rate of ACCOUNT_RATE_LIMITS["login_failed"] (the lockout).

        allauth keys it on the login string alone, so failures from anywhere lock the account out
        everywhere: an attacker could keep any user out by mistyping their name. Keyed on the account
        and the client address together, failures on `admin` lock `admin` at that address only, and
        the owner still logs in from theirs. allauth also builds this key to clear the counter after
        a password reset, which then clears it for the address the reset came from."""
        login = credentials.get("email", credentials.get("username", "")) or ""
        site = get_current_site(request)
        return f"{site.domain}:{account_key(login)}:{self.client_address(request)}"

    def client_address(self, request) -> str:
        """The client's address as allauth's per-address limits count it (ALLAUTH_TRUSTED_PROXY_COUNT
        decides which X-Forwarded-For entry is the client's); an IPv6 address counts as its network
        (ALLAUTH_RATE_LIMIT_IPV6_PREFIX), so rotating through one's own /64 gains nothing."""
        address = self.get_client_ip(request)
        try:
            parsed = ipaddress.ip_address(address)
        except ValueError:
            return address
        if parsed.version == 6:
            prefix = allauth_settings.RATE_LIMIT_IPV6_PREFIX
            return str(ipaddress.IPv6Network(f"{parsed}/{prefix}", strict=False).network_address)
        return address


def account_key(login: str) -> str:
    """The account a login names, tried as allauth's backend tries it (e-mail, then username), so
    `demo`, `DEMO` and demo's e-mail address share one counter; a login naming no single account
    counts on its own (lower-cased) text."""
    login = login.strip()
    users = filter_users_by_email(login, prefer_verified=True) if "@" in login else []
    if not users:
        users = [user for user in filter_users_by_username(login)[:5] if user.get_username().lower() == login.lower()]
    if len({user.pk for user in users}) == 1:
        return f"user:{users[0].pk}"
    return f"login:{login.lower()}"


class MFAAdapter(DefaultMFAAdapter):
    """allauth.mfa hooks: TOTP secrets and recovery-code seeds encrypted at rest with the broker keys'
    keys (FIELD_ENCRYPTION_KEYS), and no turning the second factor off while real money is on."""

    error_messages = {
        **DefaultMFAAdapter.error_messages,
        "cannot_delete_authenticator": _(
            "Real-money trading is on for one of your broker accounts: switch it off first, then turn off "
            "the second factor."
        ),
    }

    def encrypt(self, text: str) -> str:
        return crypto.encrypt(text)

    def decrypt(self, encrypted_text: str) -> str:
        return crypto.decrypt(encrypted_text)

    def can_delete_authenticator(self, authenticator) -> bool:
        return not leaves_real_money_without_second_factor(authenticator)


def leaves_real_money_without_second_factor(authenticator) -> bool:
    """Removing `authenticator` would leave a user whose real-money trading is on without a second
    factor (recovery codes alone are none)."""
    from allauth.mfa.models import Authenticator

    from .models import BrokerAccount, BrokerMode

    second_factors = (Authenticator.Type.TOTP, Authenticator.Type.WEBAUTHN)
    if authenticator.type not in second_factors:
        return False
    others = Authenticator.objects.filter(user_id=authenticator.user_id, type__in=second_factors).exclude(
        pk=authenticator.pk)
    if others.exists():
        return False
    return BrokerAccount.objects.filter(owner_id=authenticator.user_id, mode=BrokerMode.REAL,
                                        live_trading_confirmed_at__isnull=False).exists()
