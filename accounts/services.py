"""Actions that change accounts data. Views, the API, the admin and commands all call these."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from allauth.account.adapter import get_adapter
from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import ProtectedError
from django.utils import timezone

from . import audit
from .crypto import rotate
from .models import BrokerAccount, BrokerMode, SecurityEventKind

logger = logging.getLogger(__name__)

SECRET_FIELDS = ("app_key", "app_secret", "account_number")


class LoginLimited(Exception):
    """Too many failed logins: for this account from this client address, or from this address."""


def authenticate_login(request, *, login: str, password: str):
    """Check a username (or e-mail) and password for the API's token endpoints exactly as the site's
    login form does: through allauth's adapter, so the same failed-login limits
    (ACCOUNT_RATE_LIMITS["login_failed"], per account and client address and per address) count and
    refuse. Returns the user (possibly inactive: the caller decides) or None; raises LoginLimited
    with allauth's (translated) message while the limits refuse, before the password is checked.

    The audit trail: a wrong password is recorded by the `user_login_failed` receiver
    (accounts.signals), a right one for an active user here (`login_succeeded`, and `new_device`)."""
    request = getattr(request, "_request", request)  # a DRF Request wraps Django's
    try:
        user = get_adapter(request).authenticate(request, username=login, password=password)
    except ValidationError as error:
        if error.code == "too_many_login_attempts":
            raise LoginLimited(error.messages[0]) from error
        raise
    if user is not None and user.is_active:
        audit.record_login(user, request=request, detail={"methods": ["password"], "via": "api"})
    return user


def apply_broker_account_changes(account: BrokerAccount, changes: dict) -> BrokerAccount:
    """Set `changes` on the account in memory. A blank secret keeps the stored one, so forms never
    have to show a secret back to let the user edit other fields. `confirm_live_trading=True`
    records the owner's confirmation that a real account may send orders."""
    changes = dict(changes)
    confirm_live_trading = changes.pop("confirm_live_trading", None)
    for name, value in changes.items():
        if name in SECRET_FIELDS and not value and account.pk:
            continue
        setattr(account, name, value.strip() if isinstance(value, str) else value)
    if account.mode != BrokerMode.REAL:
        account.live_trading_confirmed_at = None
    elif confirm_live_trading and account.live_trading_confirmed_at is None:
        account.live_trading_confirmed_at = timezone.now()
    elif confirm_live_trading is False:
        account.live_trading_confirmed_at = None
    return account


AUDITED_KEY_FIELDS = (*SECRET_FIELDS, "product_code")


@transaction.atomic
def save_broker_account(account: BrokerAccount, **changes) -> BrokerAccount:
    """Create or update an account after validating it (raises django's ValidationError). The audit
    trail records, in this transaction: an account added, its keys (app key, app secret, account number,
    product code) changed, real-money trading switched on or off."""
    stored = (BrokerAccount.objects.filter(pk=account.pk).values(*AUDITED_KEY_FIELDS).first()
              if account.pk else None)
    apply_broker_account_changes(account, changes)
    if not BrokerAccount.objects.filter(owner_id=account.owner_id).exclude(pk=account.pk).exists():
        account.is_default = True  # a user's first account is their default
    was_live = bool(account.pk) and BrokerAccount.objects.filter(
        pk=account.pk, live_trading_confirmed_at__isnull=False
    ).exists()
    account.full_clean()
    account.save()
    if stored is None:
        audit.record_event(SecurityEventKind.BROKER_ACCOUNT_ADDED, user=account.owner, broker_account=account,
                           detail=_masked_keys(account))
    else:
        changed = [name for name in AUDITED_KEY_FIELDS if (stored[name] or "") != (getattr(account, name) or "")]
        if changed:
            audit.record_event(SecurityEventKind.BROKER_KEYS_CHANGED, user=account.owner, broker_account=account,
                               detail={"changed": changed, **_masked_keys(account)})
    if account.live_trading_allowed != was_live:
        # An audit line for every switch of real-money trading, on or off.
        logger.warning(
            "real trading %s for broker account %s (user %s)",
            "ENABLED" if account.live_trading_allowed else "disabled", account.pk, account.owner_id,
        )
        audit.record_event(
            SecurityEventKind.REAL_MONEY_ON if account.live_trading_allowed else SecurityEventKind.REAL_MONEY_OFF,
            user=account.owner, broker_account=account, detail={"mode": account.mode},
        )
    if account.is_default:
        BrokerAccount.objects.filter(owner_id=account.owner_id, is_default=True).exclude(pk=account.pk).update(
            is_default=False
        )
    logger.info("broker account %s saved for user %s (mode %s)", account.pk, account.owner_id, account.mode)
    return account


def _masked_keys(account: BrokerAccount) -> dict:
    """What an event may say about an account's keys: masked, the secret only whether there is one."""
    return {
        "mode": account.mode,
        "app_key": account.masked_app_key,
        "app_secret": bool(account.app_secret),
        "account_number": account.masked_account_number,
    }


def create_broker_account(owner, **fields) -> BrokerAccount:
    return save_broker_account(BrokerAccount(owner=owner), **fields)


class BrokerAccountInUse(Exception):
    """An account that orders or strategy configs refer to is kept (the trading history needs it)."""

    def __init__(self, account: BrokerAccount):
        self.account = account
        super().__init__(
            f"'{account.name}' 계좌는 주문 기록이 있거나 이 계좌로 매매하는 전략이 있어 삭제하지 않았습니다. "
            "매매를 멈추려면 이 계좌의 전략을 비활성화하거나 계좌의 매매를 정지하세요."
        )


@transaction.atomic
def delete_broker_account(account: BrokerAccount) -> None:
    """Delete an account nothing refers to; one with orders on record or strategy configs trading
    through it raises BrokerAccountInUse and stays as it was."""
    owner_id, was_default = account.owner_id, account.is_default
    account_id, was_live = account.pk, account.live_trading_allowed
    try:
        with transaction.atomic():
            account.delete()
    except ProtectedError as error:
        raise BrokerAccountInUse(account) from error
    # The row is gone: the event keeps the account's masked label and its id.
    audit.record_event(SecurityEventKind.BROKER_ACCOUNT_REMOVED, user=account.owner, broker_account=account,
                       detail={"account": account_id, "mode": account.mode, "real_money_was_on": was_live})
    if was_default:
        successor = BrokerAccount.objects.filter(owner_id=owner_id).order_by("pk").first()
        if successor:
            successor.is_default = True
            successor.save(update_fields=["is_default"])


def rotate_broker_secrets() -> int:
    """Re-encrypt every stored secret with the first FIELD_ENCRYPTION_KEYS key."""
    from django.db import connection

    table = BrokerAccount._meta.db_table
    count = 0
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(f"SELECT id, {', '.join(SECRET_FIELDS)} FROM {table}")  # noqa: S608 - fixed names
        for row in cursor.fetchall():
            pk, values = row[0], row[1:]
            rotated = [rotate(v) if v else v for v in values]
            assignments = ", ".join(f"{name} = %s" for name in SECRET_FIELDS)
            cursor.execute(f"UPDATE {table} SET {assignments} WHERE id = %s", [*rotated, pk])  # noqa: S608
            count += 1
    return count


@dataclass
class EnvKisAccount:
    app_key: str
    app_secret: str
    account: str
    product_code: str
    mode: str  # BrokerMode.SIMULATED or BrokerMode.REAL
    hts_id: str

    @property
    def is_complete(self) -> bool:
        return bool(self.app_key and self.app_secret and self.account)


@transaction.atomic
def ensure_superuser(username: str, email: str, password: str, env_account: EnvKisAccount | None = None):
    """Create (or update the password of) a superuser; the `.env` KIS values become their default
    broker account. Returns (user, created, broker_account_or_None)."""
    User = get_user_model()
    user, created = User.objects.get_or_create(username=username, defaults={"email": email})
    user.is_staff = user.is_superuser = True
    if email:
        user.email = email
    user.set_password(password)
    user.save()
    broker_account = None
    if env_account and env_account.is_complete:
        account_number = env_account.account.replace("-", "")[:8]
        existing = BrokerAccount.objects.filter(owner=user, name="KIS (.env)").first()
        broker_account = save_broker_account(
            existing or BrokerAccount(owner=user),
            name="KIS (.env)",
            mode=env_account.mode,
            app_key=env_account.app_key,
            app_secret=env_account.app_secret,
            account_number=account_number,
            product_code=env_account.product_code or "01",
            hts_id=env_account.hts_id,
            is_default=True,
        )
    return user, created, broker_account


@transaction.atomic
def ensure_demo_user(username: str, password: str):
    """The demo login of the run command: a normal user with a paper account."""
    User = get_user_model()
    user, created = User.objects.get_or_create(username=username, defaults={"email": f"{username}@example.com"})
    if created or not user.check_password(password):
        user.set_password(password)
        user.save()
    if not BrokerAccount.objects.filter(owner=user).exists():
        create_broker_account(user, name="모의 계좌", mode=BrokerMode.PAPER, is_default=True)
    return user, created
