"""The audit trail: every security- and money-relevant action is recorded once, append-only.

`record_event(kind, user=..., ...)` writes one `SecurityEvent` in the caller's transaction (no commit of
its own): an action that is rolled back leaves no row, and the notifications of the kinds in
`NOTIFIED_KINDS` (e-mail, webhook: `accounts.notifications`) go out only once the transaction commits.

Where the action came from (the client address and the user agent) is read from `request` when given,
else from the request being served: `accounts.middleware.AuditContextMiddleware` holds it in a context
variable, so a service called by a view, the API or the admin records it without being handed the
request. The client address is allauth's (the one the login limits count): the TCP peer, or the entry of
X-Forwarded-For that TRUSTED_PROXY_COUNT says our own proxy wrote; a forged header is never believed.

A new device: the first successful login of a user from a (browser family, operating system, network)
they have not logged in from before — the network being the client address's /24 (IPv4) or /64 (IPv6).
It needs no cookie, so it works for the API's token logins too, and a browser update or a new address
within the same network is not "new". A user's very first login has nothing to compare with and is not
reported."""

from __future__ import annotations

import hashlib
import ipaddress
import json
import logging
import re
from contextvars import ContextVar, Token
from functools import partial

from django.core.serializers.json import DjangoJSONEncoder
from django.db import transaction

from .masking import mask_account_number, mask_app_key
from .models import BrokerAccount, SecurityEvent, SecurityEventKind

logger = logging.getLogger(__name__)

Kind = SecurityEventKind

# The kinds the user is told about (e-mail to their address, the site's webhook), after the commit.
NOTIFIED_KINDS = frozenset({Kind.REAL_MONEY_ON, Kind.BROKER_ACCOUNT_ADDED, Kind.BROKER_KEYS_CHANGED, Kind.NEW_DEVICE})

USER_AGENT_MAX_LENGTH = SecurityEvent._meta.get_field("user_agent").max_length
USERNAME_MAX_LENGTH = SecurityEvent._meta.get_field("username").max_length

_current_request: ContextVar = ContextVar("accounts_audit_request", default=None)


# --- the request being served -------------------------------------------------------------------------
def bind_request(request) -> Token:
    """Make `request` the current one (AuditContextMiddleware); returns the token for `unbind_request`."""
    return _current_request.set(request)


def unbind_request(token: Token) -> None:
    _current_request.reset(token)


def current_request():
    """The Django request being served in this context, or None (a command, a task, a test)."""
    return _current_request.get()


def _django_request(request):
    return getattr(request, "_request", request)  # a DRF Request wraps Django's


def client_address(request) -> str | None:
    """The client's address as the login limits and the throttles see it (TRUSTED_PROXY_COUNT), or None."""
    if request is None:
        return None
    from allauth.account.adapter import get_adapter

    try:
        address = get_adapter(request).get_client_ip(request)
    except Exception:  # no address at all (a made-up request), or a header shorter than the proxy count
        return None
    try:
        return str(ipaddress.ip_address(address))
    except ValueError:
        return None


_CONTROL = re.compile(r"[\x00-\x1f\x7f]+")


def user_agent_of(request) -> str:
    if request is None:
        return ""
    return _CONTROL.sub(" ", request.META.get("HTTP_USER_AGENT", "") or "")[:USER_AGENT_MAX_LENGTH]


def _person(user):
    """The user model instance behind `user` (a lazy request.user too), or None for nobody/anonymous."""
    if user is None or not getattr(user, "is_authenticated", False):
        return None
    return getattr(user, "_wrapped", user)


# --- what may be stored -----------------------------------------------------------------------------
_NEVER_STORED = {"password", "app_secret", "secret", "token", "access", "refresh", "recovery_code", "otp"}


def _scrubbed(value, key: str = ""):
    """JSON-safe, with anything that looks like a secret masked (callers mask already: this is the belt)."""
    if isinstance(value, dict):
        return {str(k): _scrubbed(v, str(k).lower()) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_scrubbed(v, key) for v in value]
    if key in _NEVER_STORED and value not in (None, "", True, False):
        return "********"
    if key == "app_key" and isinstance(value, str) and "*" not in value:
        return mask_app_key(value)
    if key == "account_number" and isinstance(value, str) and "*" not in value:
        return mask_account_number(value)
    return value


def _json_detail(detail: dict | None) -> dict:
    return _scrubbed(json.loads(json.dumps(detail or {}, cls=DjangoJSONEncoder)))


def broker_account_label(account: BrokerAccount | None) -> str:
    """`name (1234****-01)`: how an event names an account, the number masked (the mode for a paper one)."""
    if account is None:
        return ""
    number = account.masked_account_number
    return f"{account.name} ({number or account.mode})"[:120]


# --- writing ------------------------------------------------------------------------------------------
def record_event(kind, *, user, broker_account: BrokerAccount | None = None, actor=None, detail: dict | None = None,
                 request=None) -> SecurityEvent:
    """Record one security event and return it (written in the caller's transaction).

    - `kind`: a `SecurityEventKind` (or its value; an unknown one raises ValueError).
    - `user`: whose event it is (shown in their 보안 활동); None for a failed login naming no account.
    - `broker_account`: the account concerned; its masked label is stored too, so the row still says
      which account it was after the account is deleted.
    - `actor`: who did it when not the user (staff in the admin); stored only when someone else. Left
      None, it is the current request's user (when that is someone else).
    - `detail`: a small JSON object for the page and the export: never a secret (keys and account
      numbers masked with accounts.masking; a field named like a secret is masked anyway).
    - `request`: where the action came from (address, user agent); default: the request being served.
    """
    return _write(kind, user=user, broker_account=broker_account, actor=actor, detail=detail, request=request)


def _write(kind, *, user, broker_account=None, actor=None, detail=None, request=None, username: str = "",
           device: str = "") -> SecurityEvent:
    kind = Kind(kind)
    request = _django_request(request if request is not None else current_request())
    person, actor = _person(user), _person(actor)
    if actor is None and request is not None:
        actor = _person(getattr(request, "user", None))
    if actor is not None and person is not None and actor.pk == person.pk:
        actor = None  # the user themselves: no actor
    event = SecurityEvent.objects.create(
        user=person,
        username=(person.get_username() if person is not None else username or "")[:USERNAME_MAX_LENGTH],
        kind=kind,
        ip_address=client_address(request),
        user_agent=user_agent_of(request),
        device=device,
        broker_account=broker_account if broker_account is not None and broker_account.pk else None,
        broker_account_label=broker_account_label(broker_account),
        actor=actor,
        actor_username=actor.get_username() if actor is not None else "",
        detail=_json_detail(detail),
    )
    if kind in NOTIFIED_KINDS:
        from . import notifications

        transaction.on_commit(partial(notifications.notify_security_event, event), robust=True)
    logger.info("security event %s: %s (user %s, actor %s, address %s)", event.pk, kind,
                getattr(person, "pk", None), getattr(actor, "pk", None), event.ip_address)
    return event


# --- logins -------------------------------------------------------------------------------------------
_BROWSERS = (
    ("Edge", re.compile(r"\bEdg(?:e|A|iOS)?/")),
    ("Samsung Internet", re.compile(r"\bSamsungBrowser/")),
    ("Whale", re.compile(r"\bWhale/")),
    ("KakaoTalk", re.compile(r"\bKAKAOTALK\b", re.IGNORECASE)),
    ("Opera", re.compile(r"\bOPR/|\bOpera\b")),
    ("Firefox", re.compile(r"\bFirefox/|\bFxiOS/")),
    ("Chrome", re.compile(r"Chrome/|\bCriOS/")),  # HeadlessChrome too
    ("Safari", re.compile(r"\bSafari/")),
)
_SYSTEMS = (
    ("iOS", re.compile(r"iPhone|iPad|iPod")),
    ("Android", re.compile(r"Android")),
    ("Windows", re.compile(r"Windows")),
    ("macOS", re.compile(r"Macintosh|Mac OS X")),
    ("ChromeOS", re.compile(r"\bCrOS\b")),
    ("Linux", re.compile(r"Linux")),
)
_PRODUCT = re.compile(r"^([A-Za-z][\w.-]{0,39})/")


def browser_and_system(user_agent: str) -> tuple[str, str]:
    """The browser (or client program) family and the operating system of a User-Agent, no versions:
    ("Chrome", "Windows"), ("Safari", "iOS"), ("curl", ""), ("", "") when there is none."""
    browser = next((name for name, pattern in _BROWSERS if pattern.search(user_agent)), "")
    if not browser:
        match = _PRODUCT.match(user_agent)
        browser = match.group(1) if match else ("?" if user_agent else "")
    system = next((name for name, pattern in _SYSTEMS if pattern.search(user_agent)), "")
    return browser, system


def network_of(address: str | None) -> str:
    """The network a client address counts as for devices: its /24 (IPv4) or /64 (IPv6)."""
    if not address:
        return ""
    parsed = ipaddress.ip_address(address)
    prefix = 24 if parsed.version == 4 else 64
    return str(ipaddress.ip_network(f"{parsed}/{prefix}", strict=False))


def device_label(user_agent: str) -> str:
    browser, system = browser_and_system(user_agent)
    return " · ".join(part for part in (browser, system) if part) or "?"


def device_key(user_agent: str, address: str | None) -> str:
    browser, system = browser_and_system(user_agent)
    return hashlib.sha256(f"{browser}|{system}|{network_of(address)}".encode()).hexdigest()[:32]


def record_login(user, *, request=None, detail: dict | None = None) -> SecurityEvent:
    """A successful login (the site's, Kakao's, a passkey's or the API's token): `login_succeeded`, and
    `new_device` (notified) when the user has logged in before but never from this device."""
    request = _django_request(request if request is not None else current_request())
    user = _person(user)
    agent = user_agent_of(request)
    key = device_key(agent, client_address(request))
    logins = SecurityEvent.objects.filter(user=user, kind=Kind.LOGIN_SUCCEEDED)
    new_device = logins.exists() and not logins.filter(device=key).exists()
    device = {"device": device_label(agent)}
    event = _write(Kind.LOGIN_SUCCEEDED, user=user, request=request, device=key, detail={**(detail or {}), **device})
    if new_device:
        _write(Kind.NEW_DEVICE, user=user, request=request, device=key, detail=device)
    return event


def record_failed_login(*, user, login: str = "", request=None, detail: dict | None = None) -> SecurityEvent:
    """A failed login: the account it named (when exactly one), else only the login that was typed."""
    return _write(Kind.LOGIN_FAILED, user=user, username=(login or "").strip(), request=request, detail=detail)


# --- reading: the 보안 활동 page, the API, the CSV export ----------------------------------------------------
def security_events_for(user):
    """A user's own events, newest first (staff too: the admin is where everyone's are read)."""
    if user is None or not getattr(user, "is_authenticated", False):
        return SecurityEvent.objects.none()
    return SecurityEvent.objects.filter(user_id=user.pk).order_by("-created_at", "-pk")


def _second_factor_label(kind: str) -> str:
    from django.utils.translation import pgettext

    labels = {"totp": pgettext("audit", "Authenticator app"), "webauthn": pgettext("audit", "Passkey"),
              "recovery_codes": pgettext("audit", "Recovery codes")}
    return labels.get(kind, kind or "?")


def event_summary(event: SecurityEvent) -> str:
    """One line on what the event was, in the active language (the page, the API, the export)."""
    from django.utils.translation import gettext as _
    from django.utils.translation import pgettext

    detail = event.detail or {}
    kind = event.kind
    if kind in (Kind.LOGIN_SUCCEEDED, Kind.NEW_DEVICE):
        text = detail.get("device", "")
        if detail.get("via") == "api":
            text = pgettext("audit", "%(device)s, API token") % {"device": text}
        return text
    if kind == Kind.LOGIN_FAILED:
        if detail.get("reason") == "second_factor":
            return pgettext("audit", "Wrong second-factor code (%(type)s)") % {
                "type": _second_factor_label(detail.get("type", ""))}
        if event.user_id is None:
            return pgettext("audit", "Wrong password for an unknown login")
        return pgettext("audit", "Wrong password")
    if kind in (Kind.MFA_ADDED, Kind.MFA_REMOVED, Kind.RECOVERY_CODES_GENERATED, Kind.RECOVERY_CODE_USED):
        return _second_factor_label(detail.get("type", ""))
    if kind == Kind.BROKER_KEYS_CHANGED:
        names = {"app_key": _("app key"), "app_secret": _("app secret"), "account_number": _("account number"),
                 "product_code": _("product code")}
        return ", ".join(str(names.get(name, name)) for name in detail.get("changed", []))
    if kind in (Kind.KILL_SWITCH_ON, Kind.KILL_SWITCH_OFF):
        scope = pgettext("audit", "all trading") if detail.get("scope") == "global" else pgettext("audit", "this account")
        return f"{scope}: {detail['reason']}" if detail.get("reason") else scope
    if kind == Kind.MANUAL_ORDER:
        side = _("buy") if detail.get("side") == "buy" else _("sell")
        price = (pgettext("audit", "%(price)s KRW") % {"price": f"{detail['price']:,}"} if detail.get("price")
                 else pgettext("audit", "market price"))
        return pgettext("audit", "%(code)s %(side)s %(quantity)s shares at %(price)s") % {
            "code": detail.get("code", ""), "side": side, "quantity": f"{detail.get('quantity', 0):,}", "price": price}
    if kind == Kind.SCHEDULE_CHANGED:
        what = detail.get("name") or detail.get("object") or ", ".join(detail.get("tasks", []))
        return f"{detail.get('action', '')}: {what}".strip(": ")
    return ""


CSV_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def _csv_cell(value) -> str:
    """Text a spreadsheet shows as text: a cell that would start a formula gets a leading quote (a user
    agent or a typed login is anyone's text)."""
    text = "" if value is None else str(value)
    return "'" + text if text.startswith(CSV_FORMULA_START) else text


def write_csv(events, stream) -> None:
    """The events as CSV (UTF-8 with a BOM, so spreadsheet programs read the Korean right)."""
    import csv

    from django.utils import timezone
    from django.utils.translation import gettext as _
    from django.utils.translation import pgettext

    stream.write("\ufeff")
    writer = csv.writer(stream)
    writer.writerow([pgettext("audit", "time"), pgettext("audit", "event code"), pgettext("audit", "event"),
                     _("user"), pgettext("audit", "done by"), pgettext("audit", "client address"),
                     pgettext("audit", "user agent"), _("broker account"), pgettext("audit", "summary"),
                     pgettext("audit", "detail")])
    for event in events.iterator(chunk_size=500) if hasattr(events, "iterator") else events:
        writer.writerow([_csv_cell(cell) for cell in (
            timezone.localtime(event.created_at).isoformat(), event.kind, event.get_kind_display(), event.username,
            event.actor_username, event.ip_address or "", event.user_agent, event.broker_account_label,
            event_summary(event), json.dumps(event.detail, ensure_ascii=False, sort_keys=True),
        )])
