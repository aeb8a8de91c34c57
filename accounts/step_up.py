"""Step-up: a second factor used within the last few minutes before an action that moves real money.

Switching real-money trading on, adding or changing a broker account's keys, lifting a kill switch and
a manual order on a real account each need a second factor (TOTP, a passkey or a recovery code, from
allauth's ``mfa`` app) used within ``settings.STEP_UP_SECONDS``:

- in a browser session, the second factor of the login or of allauth's re-authentication
  (``/accounts/2fa/reauthenticate/``) — the "mfa" records allauth keeps in the session;
- for a JWT client, an access token from ``POST /api/auth/step-up/`` (a TOTP or recovery code), which
  carries the moment of the step-up (``step_up_at``); the login tokens do not.

Every entry point (page, HTMX, API, admin) calls ``require_step_up`` before the service; it raises
``StepUpRequired``, which the API answers as 403 ``{"detail", "code": "step_up_required", ...}`` and
``StepUpMiddleware`` turns into the re-authentication page (or the second-factor set-up page for a
user who has none). A password alone never suffices: that is the point of the second factor.
"""

from __future__ import annotations

import copy
import time
from enum import Enum

from allauth.account.authentication import get_authentication_records
from allauth.account.internal.flows.reauthentication import suspend_request
from allauth.mfa.models import Authenticator
from django.conf import settings
from django.contrib import messages
from django.http import HttpResponse, HttpResponseRedirect
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme, urlencode
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from rest_framework import exceptions

# Types that are a second factor on their own; recovery codes exist only beside one of them.
SECOND_FACTOR_TYPES = (Authenticator.Type.TOTP, Authenticator.Type.WEBAUTHN)
STEP_UP_CLAIM = "step_up_at"
STEP_UP_API_PATH = "/api/auth/step-up/"


class SensitiveAction(Enum):
    REAL_MONEY_ON = gettext_lazy("switching on real-money trading")
    BROKER_KEYS = gettext_lazy("adding or changing a broker account's keys")
    LIFT_KILL_SWITCH = gettext_lazy("lifting a kill switch")
    REAL_ORDER = gettext_lazy("an order on a real-money account")


def step_up_seconds() -> int:
    return int(settings.STEP_UP_SECONDS)


def second_factor_types(user) -> list[str]:
    if user is None or not user.is_authenticated:
        return []
    return sorted(set(Authenticator.objects.filter(user_id=user.pk, type__in=SECOND_FACTOR_TYPES)
                      .values_list("type", flat=True)))


def has_second_factor(user) -> bool:
    return bool(second_factor_types(user))


def _token_claim(request) -> float | None:
    """The step-up moment a JWT carries (only when the request was authenticated by that token)."""
    token = getattr(request, "auth", None)
    if token is None or not hasattr(token, "payload"):
        return None
    value = token.payload.get(STEP_UP_CLAIM)
    return float(value) if isinstance(value, int | float) else None


def last_second_factor_at(request) -> float | None:
    """When this request's user last used a second factor (epoch seconds), as far as this request
    proves it: the JWT's claim for a token client, else the session's allauth records."""
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return None
    claim = _token_claim(request)
    if claim is not None or getattr(request, "auth", None) is not None:
        return claim  # a token client: its session (if any) is not what authenticated it
    session = getattr(request, "session", None)
    if session is None:
        return None
    moments = [record.get("at") for record in get_authentication_records(request, user)
               if record.get("method") == "mfa" and isinstance(record.get("at"), int | float)]
    return max(moments) if moments else None


def is_stepped_up(request) -> bool:
    moment = last_second_factor_at(request)
    if moment is None or not has_second_factor(request.user):
        return False
    return 0 <= time.time() - moment < step_up_seconds()


def reauthenticate_url(user) -> str:
    """allauth's re-authentication page for the user's second factor (the authenticator app or a
    recovery code first; a passkey when that is all the user has)."""
    types = second_factor_types(user)
    if Authenticator.Type.TOTP in types or Authenticator.Type.WEBAUTHN not in types:
        return reverse("mfa_reauthenticate")
    return reverse("mfa_reauthenticate_webauthn")


class StepUpRequired(exceptions.APIException):
    """403: the action needs a second factor used within the last few minutes."""

    status_code = 403
    default_code = "step_up_required"

    def __init__(self, action: SensitiveAction, *, has_factor: bool):
        self.action, self.has_factor = action, has_factor
        minutes = max(1, step_up_seconds() // 60)
        if has_factor:
            message = _(
                "%(action)s needs your second factor again (used within the last %(minutes)d minutes). "
                "On the site, confirm it with your authenticator app, a passkey or a recovery code; an API "
                "client with a JWT sends POST %(path)s with {\"code\": \"<6-digit code or recovery code>\"} "
                "and uses the access token it returns."
            ) % {"action": _capitalised(action), "minutes": minutes, "path": STEP_UP_API_PATH}
        else:
            message = _(
                "%(action)s needs a second factor, and your account has none yet. Set up an authenticator "
                "app or a passkey on the 2-step verification page (/accounts/2fa/) first."
            ) % {"action": _capitalised(action)}
        self.message = message
        # On the pages: what to do there (the re-authentication or set-up page comes next).
        self.page_message = (_(
            "%(action)s needs your second factor again: confirm it with your authenticator app, a passkey "
            "or a recovery code, and the action continues."
        ) if has_factor else _(
            "%(action)s needs a second factor. Set up an authenticator app or a passkey first."
        )) % {"action": _capitalised(action)}
        super().__init__(detail=message)
        # The API's body as it is (DRF would turn every value into a string).
        self.detail = {
            "detail": message, "code": self.default_code, "action": action.name.lower(),
            "has_second_factor": has_factor, "step_up_seconds": step_up_seconds(),
            "step_up_url": STEP_UP_API_PATH, "setup_url": reverse("mfa_index"),
        }


def _capitalised(action: SensitiveAction) -> str:
    text = str(action.value)
    return text[:1].upper() + text[1:]


def broker_change_action(account, changes: dict) -> SensitiveAction | None:
    """Which sensitive action saving `changes` on `account` (as stored; a new one unsaved) would be:
    real money switched on, or keys added or changed (a blank secret keeps the stored one); None for
    anything else (a name, the default flag, switching real money off)."""
    from .services import SECRET_FIELDS, apply_broker_account_changes

    candidate = apply_broker_account_changes(copy.copy(account), changes)
    if candidate.live_trading_allowed and not (account.pk and account.live_trading_allowed):
        return SensitiveAction.REAL_MONEY_ON
    if any(getattr(candidate, name) and getattr(candidate, name) != getattr(account, name)
           for name in SECRET_FIELDS):
        return SensitiveAction.BROKER_KEYS
    return None


def require_step_up_for_broker_change(request, account, changes: dict) -> None:
    if action := broker_change_action(account, changes):
        require_step_up(request, action)


def require_step_up(request, action: SensitiveAction) -> None:
    """Raise StepUpRequired unless the request's user used a second factor within STEP_UP_SECONDS."""
    if not is_stepped_up(request):
        raise StepUpRequired(action, has_factor=has_second_factor(request.user))


def session_used_second_factor(request) -> bool:
    """This browser session's login (or a re-authentication since) used the user's second factor."""
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated or not has_second_factor(user):
        return False
    return any(record.get("method") == "mfa" for record in get_authentication_records(request, user))


def staff_admin_login(login_view):
    """The admin's login (already routed to the site's login by allauth's secure_admin_login): staff
    reach the admin only with a second factor used in this session — set one up first, or confirm it."""

    def view(request, *args, **kwargs):
        user = request.user
        if user.is_authenticated and user.is_active and user.is_staff and not session_used_second_factor(request):
            next_url = request.GET.get("next") or reverse("admin:index")
            if not url_has_allowed_host_and_scheme(next_url, allowed_hosts={request.get_host()}):
                next_url = reverse("admin:index")
            if not has_second_factor(user):
                messages.error(request, _("The admin needs a second factor: set up an authenticator app or a "
                                          "passkey first."))
                return HttpResponseRedirect(reverse("mfa_index"))
            messages.info(request, _("The admin needs your second factor: confirm it to continue."))
            return HttpResponseRedirect(f"{reauthenticate_url(user)}?{urlencode({'next': next_url})}")
        return login_view(request, *args, **kwargs)

    return view


def admin_has_permission(default):
    """AdminSite.has_permission plus the session's second factor (see staff_admin_login)."""

    def has_permission(request) -> bool:
        return default(request) and session_used_second_factor(request)

    return has_permission


class StepUpMiddleware:
    """A page, an HTMX request or the admin that raised StepUpRequired: to allauth's re-authentication
    with the second factor, and back (a plain form POST is kept and replayed once it succeeds, as
    allauth does for its own re-authentication; an HTMX request returns to the page it came from), or
    to the second-factor set-up page for a user who has none. The API answers its own 403."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        return self.get_response(request)

    def process_exception(self, request, exception):
        if not isinstance(exception, StepUpRequired):
            return None
        if not exception.has_factor:
            messages.error(request, exception.page_message)
            return _redirect(request, reverse("mfa_index"))
        messages.info(request, exception.page_message)
        target = reauthenticate_url(request.user)
        htmx = getattr(request, "htmx", None)
        if htmx:
            back = htmx.current_url_abs_path or "/"
            if not url_has_allowed_host_and_scheme(back, allowed_hosts={request.get_host()}):
                back = "/"
            return _redirect(request, f"{target}?{urlencode({'next': back})}")
        return suspend_request(request, target)


def _redirect(request, url: str) -> HttpResponse:
    if getattr(request, "htmx", None):
        response = HttpResponse(status=204)
        response["HX-Redirect"] = url
        return response
    return HttpResponseRedirect(url)


class StepUpRefused(Exception):
    def __init__(self, message: str, *, limited: bool = False):
        super().__init__(message)
        self.message, self.limited = message, limited


def step_up_with_code(user, code: str, request=None):
    """A JWT client's step-up: a TOTP code or an unused recovery code (then used up) of `user`, checked
    by allauth's own form (its failed-attempt limit included). Returns an access token for `user` that
    carries the moment (``step_up_at``) and its expiry; raises StepUpRefused."""
    from allauth.mfa import signals
    from allauth.mfa.base.forms import ReauthenticateForm
    from rest_framework_simplejwt.tokens import AccessToken

    if not has_second_factor(user):
        raise StepUpRefused(_("Your account has no second factor yet: set up an authenticator app first."))
    form = ReauthenticateForm(data={"code": code}, user=user)
    if not form.is_valid():
        codes = {error.code for error in form.errors.as_data().get("code", [])}
        if "too_many_login_attempts" in codes:
            raise StepUpRefused(_("Too many wrong codes. Try again later."), limited=True)
        raise StepUpRefused(_("The code is not right (or the recovery code was used already)."))
    authenticator = form.authenticator
    authenticator.record_usage()
    # The audit trail records the step-up (and a recovery code used up) from allauth's own signal.
    signals.authenticator_used.send(sender=Authenticator, request=request, user=user, authenticator=authenticator,
                                    reauthenticated=True, passwordless=False)
    moment = int(time.time())
    token = AccessToken.for_user(user)
    token[STEP_UP_CLAIM] = moment
    return token, authenticator, moment + step_up_seconds()
