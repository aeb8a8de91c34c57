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
    # Live versus backtest: the week's live P&L may differ from the backtest of the same week by this
    # many basis points of the cash invested before an alert is raised (orders.drift).
    drift_alert_bps = models.PositiveIntegerField(
        _("drift alert (bp)"), default=100, validators=validators.DRIFT_ALERT_VALIDATORS,
        help_text=_("Alert when the week's live P&L differs from its backtest by more than this many basis "
                    "points of the cash invested (100 = 1%)."),
    )
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
    """A grid of parameter values backtested in one shared pass (strategies.research.sweep): each
    set's metrics in ``results`` (grid order), the overfitting statistics of the whole sweep in
    ``statistics``."""

    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="backtest_sweeps")
    strategy_key = models.CharField(_("strategy"), max_length=40)
    grid = models.JSONField(_("grid"), default=dict)  # {"window": [10, 20], "z_threshold": [1.5, 2.0]}
    # The run settings every set shares: codes, start, end, initial_cash, max_positions, cash_per_week,
    # commission, tax, slippage_ticks, participation_cap, spread_ticks, small_cap_value, universe_top_n.
    settings = models.JSONField(_("settings"), default=dict, blank=True)
    status = models.CharField(_("status"), max_length=10, choices=RunStatus.choices, default=RunStatus.PENDING)
    progress = models.PositiveSmallIntegerField(_("progress (%)"), default=0)
    error = models.TextField(_("error"), blank=True, default="")
    results = models.JSONField(_("results"), null=True, blank=True)  # [{"params": {...}, "metrics": {...}}, ...]
    statistics = models.JSONField(_("statistics"), null=True, blank=True)  # deflated Sharpe, PBO, explanation
    seconds = models.FloatField(_("seconds"), null=True, blank=True)
    created_at = models.DateTimeField(_("created"), auto_now_add=True)
    finished_at = models.DateTimeField(_("finished"), null=True, blank=True)

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
    # Costs beyond commission, tax and slippage (strategies.backtest.costs): a buy takes at most this
    # fraction of the entry day's volume (None: no cap); small caps (average daily traded value below
    # small_cap_value KRW) pay spread_ticks more on each side.
    participation_cap = models.DecimalField(
        _("participation cap"), max_digits=6, decimal_places=4, null=True, blank=True,
        validators=validators.PARTICIPATION_VALIDATORS,
    )
    spread_ticks = models.PositiveSmallIntegerField(_("small-cap spread (ticks)"), default=0)
    small_cap_value = models.BigIntegerField(_("small-cap traded value (KRW)"), default=1_000_000_000)
    # The universe as it was: the top N of `codes` by traded value as of each week (None: all of `codes`).
    universe_top_n = models.PositiveIntegerField(
        _("top N as of each week"), null=True, blank=True, validators=validators.UNIVERSE_TOP_N_VALIDATORS
    )
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


class WalkForwardObjective(models.TextChoices):
    SHARPE = "sharpe", _("Sharpe ratio")
    TOTAL_RETURN = "total_return", _("Total return")
    CAGR = "cagr", _("CAGR")
    CALMAR = "calmar", _("Return / max drawdown")


class WalkForwardRun(models.Model):
    """Walk-forward analysis (strategies.research.walk_forward): in each in-sample window the grid's
    best set by ``objective`` is chosen, the next out-of-sample window trades it; ``result`` holds
    the windows, the chosen parameters, the in-/out-of-sample figures and the stitched curve."""

    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, null=True, blank=True, related_name="walk_forward_runs"
    )
    strategy_key = models.CharField(_("strategy"), max_length=40)
    grid = models.JSONField(_("grid"), default=dict)
    settings = models.JSONField(_("settings"), default=dict, blank=True)  # as BacktestSweep.settings
    in_sample_weeks = models.PositiveSmallIntegerField(_("in-sample weeks"), default=104)
    out_of_sample_weeks = models.PositiveSmallIntegerField(_("out-of-sample weeks"), default=26)
    anchored = models.BooleanField(_("anchored"), default=False)
    objective = models.CharField(
        _("objective"), max_length=14, choices=WalkForwardObjective.choices, default=WalkForwardObjective.SHARPE
    )
    status = models.CharField(_("status"), max_length=10, choices=RunStatus.choices, default=RunStatus.PENDING)
    progress = models.PositiveSmallIntegerField(_("progress (%)"), default=0)
    error = models.TextField(_("error"), blank=True, default="")
    result = models.JSONField(_("result"), null=True, blank=True)
    created_at = models.DateTimeField(_("created"), auto_now_add=True)
    finished_at = models.DateTimeField(_("finished"), null=True, blank=True)

    class Meta:
        verbose_name = _("walk-forward analysis")
        verbose_name_plural = _("walk-forward analyses")
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"walk-forward {self.pk} {self.strategy_key}"
