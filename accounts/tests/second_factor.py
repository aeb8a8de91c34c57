"""Second-factor helpers for tests: a TOTP authenticator made as allauth makes it, its codes at a given
moment, and a browser session or a JWT that has just used it (a step-up)."""

from __future__ import annotations

import time

from allauth.account.authentication import AUTHENTICATION_METHODS_SESSION_KEY
from allauth.account.internal.flows.login import _AUTHENTICATION_METHODS_USER_SESSION_KEY
from allauth.account.internal.userkit import user_id_to_str
from allauth.mfa import app_settings as mfa_settings
from allauth.mfa.models import Authenticator
from allauth.mfa.recovery_codes.internal.auth import RecoveryCodes
from allauth.mfa.totp.internal.auth import TOTP, format_hotp_value, generate_totp_secret, hotp_value

from accounts.step_up import STEP_UP_CLAIM


def add_totp(user, *, recovery_codes: bool = False) -> str:
    """Activate an authenticator app for `user` (as allauth's set-up page does); returns the secret."""
    secret = generate_totp_secret()
    TOTP.activate(user, secret)
    if recovery_codes:
        RecoveryCodes.activate(user)
    return secret


def totp_code(secret: str, at: float | None = None) -> str:
    """The authenticator app's code at `at` (epoch seconds; now by default)."""
    moment = time.time() if at is None else at
    return format_hotp_value(hotp_value(secret, int(moment // mfa_settings.TOTP_PERIOD)))


def recovery_codes(user) -> list[str]:
    return RecoveryCodes(Authenticator.objects.get(user=user, type=Authenticator.Type.RECOVERY_CODES)).get_unused_codes()


def mark_second_factor_used(client, user, *, at: float | None = None) -> None:
    """The client's session used the second factor at `at` (now by default): what allauth records after
    a login or a re-authentication with it. The user needs an authenticator (see `step_up`)."""
    authenticator = Authenticator.objects.filter(user=user).exclude(type=Authenticator.Type.RECOVERY_CODES).first()
    assert authenticator is not None, "add a second factor first (add_totp)"
    session = client.session
    session[AUTHENTICATION_METHODS_SESSION_KEY] = [
        {"method": "mfa", "at": time.time() if at is None else at, "id": authenticator.pk,
         "type": authenticator.type, "reauthenticated": True},
    ]
    session[_AUTHENTICATION_METHODS_USER_SESSION_KEY] = user_id_to_str(user)
    session.save()


def _ensure_second_factor(user) -> None:
    if not Authenticator.objects.filter(user=user, type__in=[Authenticator.Type.TOTP,
                                                              Authenticator.Type.WEBAUTHN]).exists():
        add_totp(user)


def step_up(client, user) -> None:
    """Log `client` in as `user` with a second factor just used (one is added if the user has none)."""
    _ensure_second_factor(user)
    client.force_login(user)
    mark_second_factor_used(client, user)


def stepped_up_jwt(user, *, at: float | None = None) -> str:
    """An access token as POST /api/auth/step-up/ returns it (for tests that are not about that call);
    the user gets a second factor if they have none. Use as `api.credentials(HTTP_AUTHORIZATION=...)`."""
    from rest_framework_simplejwt.tokens import AccessToken

    _ensure_second_factor(user)
    token = AccessToken.for_user(user)
    token[STEP_UP_CLAIM] = int(time.time() if at is None else at)
    return str(token)
