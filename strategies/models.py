from __future__ import annotations

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models
from django.utils.translation import gettext_lazy as _

from accounts.models import BrokerAccount

from . import validators


class UniverseMode(models.TextChoices):
    CODES = "codes", _("Listed codes")
    TOP_TRADED = "top_traded", _("Top N by traded value")


class StrategyConfig(models.Model):
    """A user's strategy: which strategy, its validated parameters, the universe, sizing, the account."""

    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="strategy_configs")
    name = models.CharField(_("name"), max_length=80)
    strategy_key = models.CharField(_("strategy"), max_length=40)
    params = models.JSONField(_("parameters"), default=dict, blank=True)
    universe_mode = models.CharField(
        _("universe"), max_length=12, choices=UniverseMode.choices, default=UniverseMode.TOP_TRADED
    )
    universe_codes = models.TextField(
        _("codes"), blank=True, default="", help_text=_("6-digit codes separated by commas or spaces.")
    )
    universe_top_n = models.PositiveIntegerField(
        _("top N"), default=200, validators=validators.UNIVERSE_TOP_N_VALIDATORS
    )
    max_positions = models.PositiveSmallIntegerField(
        _("max positions"), default=10, validators=validators.MAX_POSITIONS_VALIDATORS
    )
    cash_per_week = models.BigIntegerField(
        _("cash per week (KRW)"), default=10_000_000, validators=validators.CASH_VALIDATORS
    )
    is_active = models.BooleanField(_("active"), default=False)
    broker_account = models.ForeignKey(
        BrokerAccount, on_delete=models.PROTECT, null=True, blank=True, related_name="strategy_configs",
        verbose_name=_("broker account"),
    )
    created_at = models.DateTimeField(_("created"), auto_now_add=True)
    updated_at = models.DateTimeField(_("updated"), auto_now=True)

    class Meta:
        verbose_name = _("strategy configuration")
        verbose_name_plural = _("strategy configurations")
        ordering = ["owner_id", "name"]
        constraints = [models.UniqueConstraint(fields=["owner", "name"], name="strategy_config_unique_name")]

    def __str__(self) -> str:
        return f"{self.name} ({self.strategy_key})"

    def clean(self):
        """The listed codes: known instruments, duplicates removed (stored normalised); at least one
        when the universe is the listed codes. The form, the admin and the API all end here."""
        super().clean()
        try:
            self.universe_codes = validators.clean_universe_codes(
                self.universe_codes, required=self.universe_mode == UniverseMode.CODES
            )
        except ValidationError as error:
            raise ValidationError({"universe_codes": error.error_list}) from None

    @property
    def code_list(self) -> list[str]:
        """The listed codes, normalised and without duplicates (as the universe uses them)."""
        return validators.normalise_codes(validators.split_codes(self.universe_codes))


class RunStatus(models.TextChoices):
    PENDING = "pending", _("pending")
    RUNNING = "running", _("running")
    DONE = "done", _("done")
    FAILED = "failed", _("failed")


class BacktestSweep(models.Model):
    """A grid of parameter values run as one backtest per combination."""

    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="backtest_sweeps")
    strategy_key = models.CharField(_("strategy"), max_length=40)
    grid = models.JSONField(_("grid"), default=dict)  # {"window": [10, 20], "z_threshold": [1.5, 2.0]}
    created_at = models.DateTimeField(_("created"), auto_now_add=True)

    class Meta:
        verbose_name = _("parameter sweep")
        verbose_name_plural = _("parameter sweeps")
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"sweep {self.pk} {self.strategy_key}"


class BacktestRun(models.Model):
    """One backtest: its inputs, its progress, and (when done) metrics, trades and the equity curve."""

    # null: a run started from the shell (manage.py backtest) without --user
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, null=True, blank=True, related_name="backtest_runs"
    )
    config = models.ForeignKey(StrategyConfig, on_delete=models.SET_NULL, null=True, blank=True, related_name="runs")
    sweep = models.ForeignKey(BacktestSweep, on_delete=models.CASCADE, null=True, blank=True, related_name="runs")
    strategy_key = models.CharField(_("strategy"), max_length=40)
    params = models.JSONField(_("parameters"), default=dict)
    codes = models.JSONField(_("codes"), default=list)
    start = models.DateField(_("start"))
    end = models.DateField(_("end"))
    initial_cash = models.BigIntegerField(_("initial cash"), default=10_000_000)
    max_positions = models.PositiveSmallIntegerField(
        _("max positions"), default=10, validators=validators.MAX_POSITIONS_VALIDATORS
    )
    # The live config's cap on a week's buys (None: every week spends all the cash there is).
    cash_per_week = models.BigIntegerField(
        _("cash per week (KRW)"), null=True, blank=True, validators=validators.CASH_VALIDATORS
    )
    commission = models.DecimalField(_("commission rate"), max_digits=10, decimal_places=8, null=True, blank=True)
    tax = models.DecimalField(_("tax rate"), max_digits=10, decimal_places=8, null=True, blank=True)
    slippage_ticks = models.PositiveSmallIntegerField(_("slippage (ticks)"), default=0)
    status = models.CharField(_("status"), max_length=10, choices=RunStatus.choices, default=RunStatus.PENDING)
    progress = models.PositiveSmallIntegerField(_("progress (%)"), default=0)
    error = models.TextField(_("error"), blank=True, default="")
    metrics = models.JSONField(_("metrics"), null=True, blank=True)
    benchmark = models.JSONField(_("benchmark metrics"), null=True, blank=True)
    trades = models.JSONField(_("trades"), null=True, blank=True)
    equity = models.JSONField(_("equity"), null=True, blank=True)  # [[date, value], ...]
    created_at = models.DateTimeField(_("created"), auto_now_add=True)
    finished_at = models.DateTimeField(_("finished"), null=True, blank=True)

    class Meta:
        verbose_name = _("backtest run")
        verbose_name_plural = _("backtest runs")
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"backtest {self.pk} {self.strategy_key} {self.start}..{self.end}"
