from __future__ import annotations

from django.conf import settings
from django.contrib.auth.models import AbstractUser
from django.core.exceptions import ValidationError
from django.core.validators import RegexValidator
from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from django.utils.translation import pgettext_lazy

from .fields import EncryptedTextField
from .masking import mask_account_number, mask_app_key, mask_secret


class User(AbstractUser):
    """The site's user. A custom model from the first migration, so fields can be added later."""

    class Meta(AbstractUser.Meta):
        swappable = "AUTH_USER_MODEL"
        verbose_name = _("user")
        verbose_name_plural = _("users")


class BrokerMode(models.TextChoices):
    # paper: the embedded PaperBroker, no network. simulated: KIS's 모의투자 server.
    # real: KIS real trading with real money.
    PAPER = "paper", _("Paper (built-in simulation)")
    SIMULATED = "simulated", _("KIS simulated trading")
    REAL = "real", _("KIS real trading")


account_number_validator = RegexValidator(r"^\d{8}$", _("The account number is the first 8 digits."))
product_code_validator = RegexValidator(r"^\d{2}$", _("The product code is 2 digits (usually 01)."))


class BrokerAccount(models.Model):
    """A user's securities account at KIS (or a paper account). Secrets are encrypted at rest."""

    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="broker_accounts", verbose_name=_("owner")
    )
    name = models.CharField(_("name"), max_length=60)
    mode = models.CharField(_("mode"), max_length=10, choices=BrokerMode.choices, default=BrokerMode.PAPER)
    app_key = EncryptedTextField(_("app key"), blank=True, default="")
    app_secret = EncryptedTextField(_("app secret"), blank=True, default="")
    account_number = EncryptedTextField(
        _("account number"), blank=True, default="", validators=[account_number_validator]
    )
    product_code = models.CharField(
        _("product code"), max_length=2, default="01", validators=[product_code_validator]
    )
    hts_id = models.CharField(_("HTS ID"), max_length=40, blank=True, default="")
    is_default = models.BooleanField(_("default account"), default=False)
    # Real money moves only after the owner confirmed it for this account; cleared when the mode
    # changes away from real.
    live_trading_confirmed_at = models.DateTimeField(_("real trading confirmed"), null=True, blank=True)
    created_at = models.DateTimeField(_("created"), auto_now_add=True)
    updated_at = models.DateTimeField(_("updated"), auto_now=True)

    class Meta:
        verbose_name = _("broker account")
        verbose_name_plural = _("broker accounts")
        ordering = ["owner_id", "-is_default", "name"]
        constraints = [
            models.UniqueConstraint(fields=["owner", "name"], name="broker_account_unique_name_per_owner"),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.get_mode_display()})"

    @property
    def live_trading_allowed(self) -> bool:
        return self.mode == BrokerMode.REAL and self.live_trading_confirmed_at is not None

    @property
    def needs_kis_credentials(self) -> bool:
        return self.mode != BrokerMode.PAPER

    @property
    def masked_app_key(self) -> str:
        return mask_app_key(self.app_key)

    @property
    def masked_app_secret(self) -> str:
        return mask_secret(self.app_secret)

    @property
    def masked_account_number(self) -> str:
        return mask_account_number(self.account_number, self.product_code)

    def clean(self) -> None:
        super().clean()
        if self.needs_kis_credentials:
            missing = {
                "app_key": self.app_key,
                "app_secret": self.app_secret,
                "account_number": self.account_number,
            }
            errors = {name: _("Required for a KIS account.") for name, value in missing.items() if not value}
            if errors:
                raise ValidationError(errors)


class SecurityEventKind(models.TextChoices):
    LOGIN_SUCCEEDED = "login_succeeded", pgettext_lazy("audit", "Logged in")
    LOGIN_FAILED = "login_failed", pgettext_lazy("audit", "Failed login")
    NEW_DEVICE = "new_device", pgettext_lazy("audit", "Login from a new device")
    MFA_ADDED = "mfa_added", pgettext_lazy("audit", "Second factor added")
    MFA_REMOVED = "mfa_removed", pgettext_lazy("audit", "Second factor removed")
    RECOVERY_CODES_GENERATED = "recovery_codes_generated", pgettext_lazy("audit", "Recovery codes generated")
    RECOVERY_CODE_USED = "recovery_code_used", pgettext_lazy("audit", "Recovery code used")
    STEP_UP = "step_up", pgettext_lazy("audit", "Second factor confirmed for a sensitive action")
    REAL_MONEY_ON = "real_money_on", pgettext_lazy("audit", "Real-money trading switched on")
    REAL_MONEY_OFF = "real_money_off", pgettext_lazy("audit", "Real-money trading switched off")
    BROKER_ACCOUNT_ADDED = "broker_account_added", pgettext_lazy("audit", "Broker account added")
    BROKER_KEYS_CHANGED = "broker_keys_changed", pgettext_lazy("audit", "Broker keys changed")
    BROKER_ACCOUNT_REMOVED = "broker_account_removed", pgettext_lazy("audit", "Broker account removed")
    KILL_SWITCH_ON = "kill_switch_on", pgettext_lazy("audit", "Trading halted (kill switch)")
    KILL_SWITCH_OFF = "kill_switch_off", pgettext_lazy("audit", "Trading resumed (kill switch off)")
    MANUAL_ORDER = "manual_order", pgettext_lazy("audit", "Manual order")
    SCHEDULE_CHANGED = "schedule_changed", pgettext_lazy("audit", "Schedule changed")


class SecurityEventIsAppendOnly(Exception):
    """A security event is written once: never changed, never deleted."""


class SecurityEventQuerySet(models.QuerySet):
    """Bulk changes are refused too. (Deleting a user or a broker account still clears the link through
    Django's base manager: the row stays, with the stored username and account label.)"""

    def update(self, **kwargs):
        raise SecurityEventIsAppendOnly("security events are append-only")

    def delete(self):
        raise SecurityEventIsAppendOnly("security events are append-only")

    def bulk_update(self, objs, fields, batch_size=None):
        raise SecurityEventIsAppendOnly("security events are append-only")


class SecurityEvent(models.Model):
    """The audit trail: one row per security- or money-relevant action (accounts.audit.record_event),
    written in the action's own transaction and never changed. No secrets: keys and account numbers
    only masked."""

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True,
        related_name="security_events", verbose_name=_("user"),
    )
    # Kept when the user is deleted; for a failed login naming no account, the login that was typed.
    username = models.CharField(_("username"), max_length=150, blank=True, default="")
    kind = models.CharField(pgettext_lazy("audit", "event"), max_length=32, choices=SecurityEventKind.choices)
    created_at = models.DateTimeField(pgettext_lazy("audit", "time"), default=timezone.now, db_index=True)
    ip_address = models.GenericIPAddressField(pgettext_lazy("audit", "client address"), null=True, blank=True)
    user_agent = models.CharField(pgettext_lazy("audit", "user agent"), max_length=300, blank=True, default="")
    # A login's device (accounts.audit.device_key: browser, system and network), to spot new ones.
    device = models.CharField(pgettext_lazy("audit", "device"), max_length=40, blank=True, default="")
    broker_account = models.ForeignKey(
        BrokerAccount, on_delete=models.SET_NULL, null=True, blank=True, related_name="+",
        verbose_name=_("broker account"),
    )
    broker_account_label = models.CharField(_("broker account"), max_length=120, blank=True, default="")
    # Who did it when not the user themselves (staff in the admin).
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+",
        verbose_name=pgettext_lazy("audit", "done by"),
    )
    actor_username = models.CharField(pgettext_lazy("audit", "done by"), max_length=150, blank=True, default="")
    detail = models.JSONField(pgettext_lazy("audit", "detail"), default=dict, blank=True)

    objects = SecurityEventQuerySet.as_manager()

    class Meta:
        verbose_name = pgettext_lazy("audit", "security event")
        verbose_name_plural = pgettext_lazy("audit", "security events")
        ordering = ["-created_at", "-pk"]
        default_permissions = ("view",)
        indexes = [
            models.Index(fields=["user", "-created_at"], name="security_event_user_time"),
            models.Index(fields=["user", "kind", "device"], name="security_event_device"),
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} · {self.username or '-'} · {self.created_at:%Y-%m-%d %H:%M}"

    def save(self, *args, **kwargs):
        if not self._state.adding or self.pk is not None:
            raise SecurityEventIsAppendOnly("a security event is never changed")
        kwargs["force_insert"] = True
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        raise SecurityEventIsAppendOnly("a security event is never deleted")
