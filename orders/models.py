"""Weekly runs, orders and fills of the auto-trader.

Correctness comes from these rows, not from Celery delivery:
- one `WeeklyRun` per (config, week, job, trading date) (a unique constraint), claimed with a
  conditional UPDATE so a duplicated or retried task never runs a job twice;
- one `Order` per intent, with a deterministic unique `client_order_id`, committed (status pending)
  before the request leaves;
- one `Fill` per increment of an order's filled quantity (unique per order and cumulative quantity),
  so a repeated poll never applies a fill twice. Positions are derived from fills (`selectors`).
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils.translation import gettext_lazy as _

from accounts.models import BrokerAccount
from strategies.models import StrategyConfig


class Job(models.TextChoices):
    ENTRY = "entry", _("entry")
    CHECK = "check", _("check")
    EXIT = "exit", _("exit")


class WeeklyRunStatus(models.TextChoices):
    PENDING = "pending", _("pending")
    RUNNING = "running", _("running")
    # Could not act yet for a reason that passes (before the day's open, a broker read failed, every
    # order refused for a passing reason): the sweep runs it again at `retry_at`, within the slot's window.
    WAITING = "waiting", _("waiting to retry")
    COMPLETE = "complete", _("complete")
    SKIPPED = "skipped", _("skipped")
    FAILED = "failed", _("failed")
    BLOCKED = "blocked", _("blocked")


class WeeklyRun(models.Model):
    config = models.ForeignKey(StrategyConfig, on_delete=models.CASCADE, related_name="weekly_runs")
    iso_week = models.CharField(_("ISO week"), max_length=8)  # "2026-W48"
    week_start = models.DateField(_("week start (Monday)"))
    job = models.CharField(_("job"), max_length=5, choices=Job.choices)
    trading_date = models.DateField(_("trading date"))
    status = models.CharField(
        _("status"), max_length=8, choices=WeeklyRunStatus.choices, default=WeeklyRunStatus.PENDING
    )
    reason = models.TextField(_("reason"), blank=True, default="")
    planned = models.BooleanField(_("orders planned"), default=False)  # intents written; never re-planned
    plan = models.JSONField(_("plan"), default=dict, blank=True)  # candidates/sizing, for the record
    attempts = models.PositiveSmallIntegerField(_("attempts"), default=0)
    retry_at = models.DateTimeField(_("retry at"), null=True, blank=True)  # when a waiting run is tried again
    created_at = models.DateTimeField(_("created"), auto_now_add=True)
    started_at = models.DateTimeField(_("started"), null=True, blank=True)
    finished_at = models.DateTimeField(_("finished"), null=True, blank=True)

    class Meta:
        verbose_name = _("weekly run")
        verbose_name_plural = _("weekly runs")
        ordering = ["-trading_date", "config_id", "job"]
        constraints = [
            models.UniqueConstraint(fields=["config", "week_start", "job", "trading_date"], name="weekly_run_unique"),
        ]

    def __str__(self) -> str:
        return f"{self.config_id} {self.iso_week} {self.job} {self.trading_date} {self.status}"


class OrderSide(models.TextChoices):
    BUY = "buy", _("buy")
    SELL = "sell", _("sell")


class OrderType(models.TextChoices):
    LIMIT = "00", _("limit")
    MARKET = "01", _("market")


class OrderStatus(models.TextChoices):
    PENDING = "pending", _("pending")  # intent stored, not (known to be) sent
    SUBMITTED = "submitted", _("submitted")  # the broker answered with an order number
    ACCEPTED = "accepted", _("accepted")  # seen in the broker's daily orders, nothing filled yet
    PARTIALLY_FILLED = "partially_filled", _("partially filled")
    FILLED = "filled", _("filled")
    REJECTED = "rejected", _("rejected")
    CANCELLED = "cancelled", _("cancelled")
    UNKNOWN = "unknown", _("unknown")  # sent, answer lost: resolved only by reconciliation


OPEN_STATUSES = (
    OrderStatus.PENDING, OrderStatus.SUBMITTED, OrderStatus.ACCEPTED, OrderStatus.PARTIALLY_FILLED,
    OrderStatus.UNKNOWN,
)
TERMINAL_STATUSES = (OrderStatus.FILLED, OrderStatus.REJECTED, OrderStatus.CANCELLED)


class OrderReason(models.TextChoices):
    ENTRY = "entry", _("entry")
    STOP_LOSS = "stop_loss", _("stop loss")
    TAKE_PROFIT = "take_profit", _("take profit")
    SIGNAL = "signal", _("sell signal")
    WEEK_END = "week_end", _("week end")
    MANUAL = "manual", _("manual")


class Order(models.Model):
    run = models.ForeignKey(WeeklyRun, on_delete=models.PROTECT, null=True, blank=True, related_name="orders")
    config = models.ForeignKey(
        StrategyConfig, on_delete=models.PROTECT, null=True, blank=True, related_name="orders"
    )
    broker_account = models.ForeignKey(BrokerAccount, on_delete=models.PROTECT, related_name="orders")
    client_order_id = models.CharField(_("client order id"), max_length=64, unique=True)
    trading_date = models.DateField(_("trading date"))
    code = models.CharField(_("code"), max_length=12)
    side = models.CharField(_("side"), max_length=4, choices=OrderSide.choices)
    order_type = models.CharField(_("order type"), max_length=2, choices=OrderType.choices,
                                  default=OrderType.MARKET)
    quantity = models.PositiveIntegerField(_("quantity"))
    price = models.BigIntegerField(_("limit price"), default=0)  # 0 for market orders
    reference_price = models.BigIntegerField(_("reference price"), default=0)  # the price used for sizing
    status = models.CharField(_("status"), max_length=16, choices=OrderStatus.choices, default=OrderStatus.PENDING)
    reason = models.CharField(_("reason"), max_length=12, choices=OrderReason.choices)
    broker_order_no = models.CharField(_("broker order no"), max_length=20, blank=True, default="")
    broker_org_no = models.CharField(_("broker org no"), max_length=10, blank=True, default="")
    filled_quantity = models.PositiveIntegerField(_("filled quantity"), default=0)
    filled_amount = models.BigIntegerField(_("filled amount (KRW)"), default=0)
    average_fill_price = models.BigIntegerField(_("average fill price (KRW)"), default=0)
    error_message = models.TextField(_("message"), blank=True, default="")
    raw_response = models.JSONField(_("broker answer"), null=True, blank=True)
    send_attempts = models.PositiveSmallIntegerField(_("send attempts"), default=0)
    intent_at = models.DateTimeField(_("intent time"))
    sent_at = models.DateTimeField(_("sent"), null=True, blank=True)  # the send was claimed (request leaving)
    # The send attempt ended (answer, error or lost answer). With `sent_at` it bounds the time the request
    # was in flight: a broker order is adopted as this one only when its time fits that window.
    answered_at = models.DateTimeField(_("answered"), null=True, blank=True)
    created_at = models.DateTimeField(_("created"), auto_now_add=True)
    updated_at = models.DateTimeField(_("updated"), auto_now=True)

    class Meta:
        verbose_name = _("order")
        verbose_name_plural = _("orders")
        ordering = ["-trading_date", "-pk"]
        constraints = [
            models.UniqueConstraint(
                fields=["broker_account", "trading_date", "broker_order_no"], name="order_unique_broker_no",
                condition=~models.Q(broker_order_no=""),
            ),
        ]
        indexes = [models.Index(fields=["broker_account", "trading_date", "status"])]

    def __str__(self) -> str:
        return f"{self.client_order_id} {self.status}"

    @property
    def is_open(self) -> bool:
        return self.status in OPEN_STATUSES


class Fill(models.Model):
    """One increment of an order's filled quantity, as seen by reconciliation or the broker's fill notices
    (both through `reconciliation.record_fill_progress`)."""

    order = models.ForeignKey(Order, on_delete=models.CASCADE, related_name="fills")
    cumulative_quantity = models.PositiveIntegerField(_("filled so far"))  # fill identity within the order
    quantity = models.PositiveIntegerField(_("quantity"))
    price = models.BigIntegerField(_("price (KRW)"))
    amount = models.BigIntegerField(_("amount (KRW)"))
    commission = models.BigIntegerField(_("commission (KRW)"), default=0)
    tax = models.BigIntegerField(_("tax (KRW)"), default=0)
    filled_at = models.DateTimeField(_("filled"))
    created_at = models.DateTimeField(_("recorded"), auto_now_add=True)

    class Meta:
        verbose_name = _("fill")
        verbose_name_plural = _("fills")
        ordering = ["filled_at", "pk"]
        constraints = [
            models.UniqueConstraint(fields=["order", "cumulative_quantity"], name="fill_unique_identity"),
        ]

    def __str__(self) -> str:
        return f"{self.order_id} {self.quantity}@{self.price}"


class TradingControl(models.Model):
    """The kill switch and the risk limits: one global row (`account` empty, scope "global") and at
    most one row per broker account. A halted row blocks every new order in its scope (entries,
    exits and manual orders alike); orders already sent are still reconciled. Empty limits fall
    back to the settings (`ORDERS_MAX_ORDER_KRW`, `ORDERS_DAILY_LOSS_LIMIT_KRW`)."""

    GLOBAL = "global"

    scope = models.CharField(_("scope"), max_length=24, unique=True)  # "global" or "account-<pk>"
    account = models.OneToOneField(
        BrokerAccount, on_delete=models.CASCADE, null=True, blank=True, related_name="trading_control",
        verbose_name=_("broker account"),
    )
    halted = models.BooleanField(_("trading halted (kill switch)"), default=False)
    halt_reason = models.TextField(_("halt reason"), blank=True, default="")
    halted_at = models.DateTimeField(_("halted at"), null=True, blank=True)
    halted_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+",
        verbose_name=_("halted by"),
    )
    max_order_krw = models.BigIntegerField(
        _("max order amount (KRW)"), null=True, blank=True,
        help_text=_("Largest amount of one order; empty uses the site default."),
    )
    daily_loss_limit_krw = models.BigIntegerField(
        _("daily loss limit (KRW)"), null=True, blank=True,
        help_text=_("New buys stop for the day once the day's realised loss reaches this; empty uses the site default."),
    )
    updated_at = models.DateTimeField(_("updated"), auto_now=True)

    class Meta:
        verbose_name = _("trading control")
        verbose_name_plural = _("trading controls")
        ordering = ["scope"]

    def __str__(self) -> str:
        return f"{self.scope} {'halted' if self.halted else 'on'}"

    @staticmethod
    def scope_for(account: BrokerAccount | None) -> str:
        return TradingControl.GLOBAL if account is None else f"account-{account.pk}"


class AlertKind(models.TextChoices):
    POSITION_MISMATCH = "position_mismatch", _("positions differ from the broker")
    ORDER_REJECTED = "order_rejected", _("order rejected")
    ORDER_UNKNOWN = "order_unknown", _("order outcome unknown")
    RECONCILE_FAILED = "reconcile_failed", _("reconciliation failed")
    JOB_FAILED = "job_failed", _("job failed")
    RISK_BLOCKED = "risk_blocked", _("order blocked by a risk check")
    FILLED = "filled", _("order filled")
    DRIFT = "backtest_drift", _("live trading drifted from the backtest")


class TradingAlert(models.Model):
    """Something a person should see. An open alert with `blocks_entries` stops new buys of its
    account until someone resolves it (admin or UI); the reason and who resolved it are kept."""

    account = models.ForeignKey(
        BrokerAccount, on_delete=models.CASCADE, null=True, blank=True, related_name="alerts",
        verbose_name=_("broker account"),
    )
    kind = models.CharField(_("kind"), max_length=20, choices=AlertKind.choices)
    key = models.CharField(_("key"), max_length=120, blank=True, default="")  # one open alert per (account, kind, key)
    message = models.TextField(_("message"))
    details = models.JSONField(_("details"), default=dict, blank=True)
    blocks_entries = models.BooleanField(_("blocks new entries"), default=False)
    created_at = models.DateTimeField(_("created"), auto_now_add=True)
    notified_at = models.DateTimeField(_("notified"), null=True, blank=True)
    resolved_at = models.DateTimeField(_("resolved"), null=True, blank=True)
    resolved_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+",
        verbose_name=_("resolved by"),
    )
    resolution_note = models.TextField(_("resolution note"), blank=True, default="")

    class Meta:
        verbose_name = _("trading alert")
        verbose_name_plural = _("trading alerts")
        ordering = ["-created_at", "-pk"]
        indexes = [models.Index(fields=["account", "resolved_at"])]

    def __str__(self) -> str:
        return f"{self.get_kind_display()}: {self.message[:60]}"

    @property
    def is_open(self) -> bool:
        return self.resolved_at is None


class TradeLog(models.Model):
    """The design's `trade_logs` table: one row per executed trade (a fill), written by reconciliation
    in the same transaction as the fill, so it can neither be missed nor doubled."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="trade_logs",
                             verbose_name=_("user"))
    fill = models.OneToOneField(Fill, on_delete=models.CASCADE, related_name="trade_log", verbose_name=_("fill"))
    symbol = models.CharField(_("symbol"), max_length=12)
    side = models.CharField(_("side"), max_length=4, choices=OrderSide.choices)
    quantity = models.PositiveIntegerField(_("quantity"))
    price = models.BigIntegerField(_("price (KRW)"))
    amount = models.BigIntegerField(_("amount (KRW)"))
    commission = models.BigIntegerField(_("commission (KRW)"), default=0)
    tax = models.BigIntegerField(_("tax (KRW)"), default=0)
    reason = models.CharField(_("reason"), max_length=12, choices=OrderReason.choices)
    timestamp = models.DateTimeField(_("executed"))

    class Meta:
        verbose_name = _("trade log")
        verbose_name_plural = _("trade logs")
        ordering = ["-timestamp", "-pk"]

    def __str__(self) -> str:
        return f"{self.timestamp:%Y-%m-%d} {self.side} {self.symbol} {self.quantity}@{self.price}"


class NoticeSource(models.TextChoices):
    KIS = "kis", _("KIS WebSocket")
    PAPER = "paper", _("paper broker")


class BrokerFillNotice(models.Model):
    """One own-order notice as the broker sent it (KIS H0STCNI0/H0STCNI9, or the paper broker's fill),
    stored once: a redelivered identical notice hits the unique constraint and changes nothing.

    The fills of an order are applied from the *sum* of its stored fill notices, merged with the
    reconciliation's cumulative row under the order's row lock (`orders.fill_notices`): a notice never adds
    a fill of its own, so whichever source arrives first, the order's fills count each share once. A notice
    whose broker order number is not ours yet (the REST answer has not come back) stays pending
    (`applied_at` empty) until the number is recorded."""

    account = models.ForeignKey(BrokerAccount, on_delete=models.CASCADE, related_name="fill_notices",
                                verbose_name=_("broker account"))
    trading_date = models.DateField(_("trading date"))  # the notice's day (Seoul): KIS numbers repeat across days
    order_no = models.CharField(_("broker order no"), max_length=20)  # normalised (normalize_order_no)
    original_order_no = models.CharField(_("original order no"), max_length=20, blank=True, default="")
    code = models.CharField(_("code"), max_length=12)
    side = models.CharField(_("side"), max_length=4, choices=OrderSide.choices)
    is_fill = models.BooleanField(_("fill"))  # False: an acceptance/modify/cancel/reject notice
    rejected = models.BooleanField(_("rejected"), default=False)
    quantity = models.PositiveIntegerField(_("quantity"))  # this fill's shares (the order's in other notices)
    price = models.BigIntegerField(_("price (KRW)"))
    notice_time = models.DateTimeField(_("notice time"))
    raw_fields = models.JSONField(_("notice fields"), default=dict, blank=True)  # as received; account no masked
    source = models.CharField(_("source"), max_length=5, choices=NoticeSource.choices)
    received_at = models.DateTimeField(_("received"), auto_now_add=True)
    applied_at = models.DateTimeField(_("applied"), null=True, blank=True)  # matched with our order
    order = models.ForeignKey(Order, on_delete=models.SET_NULL, null=True, blank=True, related_name="fill_notices",
                              verbose_name=_("order"))

    class Meta:
        verbose_name = _("fill notice")
        verbose_name_plural = _("fill notices")
        ordering = ["notice_time", "pk"]
        constraints = [
            models.UniqueConstraint(
                fields=["account", "order_no", "notice_time", "quantity", "price", "is_fill", "rejected"],
                name="fill_notice_once",
            ),
        ]
        indexes = [models.Index(fields=["account", "trading_date", "order_no"])]

    def __str__(self) -> str:
        kind = "fill" if self.is_fill else "rejected" if self.rejected else "notice"
        return f"{self.order_no} {kind} {self.quantity}@{self.price}"


class WeeklyDrift(models.Model):
    """One strategy config's week of live trading compared with the backtest of the same config over
    the same week and bars (`orders.drift.compare_week`): one row per (config, week), recomputed in
    place. `trades` holds one row per (code, side, trading date) with the backtest's and the live
    quantities and prices; the sums below are derived from them (definitions in `orders.drift`)."""

    config = models.ForeignKey(StrategyConfig, on_delete=models.CASCADE, related_name="weekly_drifts",
                               verbose_name=_("strategy config"))
    week_start = models.DateField(_("week start (Monday)"))
    week_end = models.DateField(_("week end (last trading day)"))
    trades = models.JSONField(_("trades compared"), default=list, blank=True)
    matched_count = models.PositiveIntegerField(_("matched trades"), default=0)
    missing_count = models.PositiveIntegerField(_("missing trades (backtest only)"), default=0)
    extra_count = models.PositiveIntegerField(_("extra trades (live only)"), default=0)
    qty_diff_count = models.PositiveIntegerField(_("trades with another quantity"), default=0)
    live_pnl = models.BigIntegerField(_("live realised P&L (KRW)"), default=0)
    backtest_pnl = models.BigIntegerField(_("backtest realised P&L (KRW)"), default=0)
    pnl_gap_krw = models.BigIntegerField(_("P&L gap (KRW)"), default=0)  # live − backtest
    invested_krw = models.BigIntegerField(_("cash invested (KRW)"), default=0)
    gap_bps = models.FloatField(_("P&L gap (bp of the cash invested)"), default=0.0)
    slippage_krw = models.BigIntegerField(_("slippage (KRW)"), default=0)  # positive: live paid more / got less
    slippage_bps = models.FloatField(_("slippage (bp)"), null=True, blank=True)  # None: no matched trade
    alert = models.BooleanField(_("drift alert"), default=False)
    alert_reasons = models.JSONField(_("alert reasons"), default=list, blank=True)
    details = models.JSONField(_("details"), default=dict, blank=True)  # the backtest's inputs, for the record
    alerted_at = models.DateTimeField(_("alerted"), null=True, blank=True)  # the week's one alert was raised
    trading_alert = models.ForeignKey(TradingAlert, on_delete=models.SET_NULL, null=True, blank=True,
                                      related_name="+", verbose_name=_("trading alert"))
    created_at = models.DateTimeField(_("created"), auto_now_add=True)
    computed_at = models.DateTimeField(_("computed"))

    class Meta:
        verbose_name = _("weekly drift")
        verbose_name_plural = _("weekly drifts")
        ordering = ["-week_start", "config_id"]
        constraints = [
            models.UniqueConstraint(fields=["config", "week_start"], name="weekly_drift_unique"),
        ]

    def __str__(self) -> str:
        return f"{self.config_id} {self.week_start} gap {self.pnl_gap_krw} ({self.gap_bps:.1f}bp)"


class JobDispatch(models.Model):
    """One fan-out of a weekly job (orders.fanout): when the dispatcher sent one task per broker
    account, how many, and the deadline after which a late task does nothing (the sweep's missed-slot
    policy takes over). The dashboard reads the accounts' order times against it."""

    job = models.CharField(_("job"), max_length=8, choices=Job.choices)
    trading_date = models.DateField(_("trading date"))
    dispatched_at = models.DateTimeField(_("dispatched"))
    deadline = models.DateTimeField(_("deadline"))
    accounts = models.PositiveIntegerField(_("accounts"), default=0)
    configs = models.PositiveIntegerField(_("strategies"), default=0)

    class Meta:
        verbose_name = _("job dispatch")
        verbose_name_plural = _("job dispatches")
        ordering = ["-dispatched_at", "-pk"]
        indexes = [models.Index(fields=["job", "trading_date"], name="dispatch_job_date_idx")]

    def __str__(self) -> str:
        return f"{self.job} {self.trading_date} → {self.accounts} accounts"
