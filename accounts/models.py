from __future__ import annotations

from django.conf import settings
from django.contrib.auth.models import AbstractUser
from django.core.exceptions import ValidationError
from django.core.validators import RegexValidator
from django.db import models
from django.utils.translation import gettext_lazy as _

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
