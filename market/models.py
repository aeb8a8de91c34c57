from __future__ import annotations

from django.db import models
from django.utils.translation import gettext_lazy as _

from accounts.fields import EncryptedTextField
from accounts.models import BrokerAccount


class MarketName(models.TextChoices):
    KOSPI = "KOSPI", "KOSPI"
    KOSDAQ = "KOSDAQ", "KOSDAQ"
    KONEX = "KONEX", "KONEX"


class BarSource(models.TextChoices):
    """Where daily bars come from. Only DEMO is synthetic (market.demo); CSV and KIS are real prices.

    A code's stored series is never a mix of demo and real bars: importing real bars for a code
    replaces its demo bars (market.import_service), and the demo market never writes a code that
    has real bars (market.demo_market)."""

    DEMO = "demo", _("demo (synthetic prices)")
    CSV = "csv", _("CSV import")
    KIS = "kis", _("KIS")


REAL_BAR_SOURCES = (BarSource.CSV, BarSource.KIS)


class Instrument(models.Model):
    """A listed KRX security, identified by its 6-digit short code (e.g. 005930 삼성전자).

    ``source`` is where its daily bars come from (demo = the synthetic demo market; csv / kis = the
    last real import); an instrument without bars keeps the source of the writer that created it."""

    code = models.CharField(_("code"), max_length=6, unique=True)
    name = models.CharField(_("name"), max_length=100)
    name_en = models.CharField(_("English name"), max_length=150, blank=True, default="")
    market = models.CharField(_("market"), max_length=6, choices=MarketName.choices, default=MarketName.KOSPI)
    sector = models.CharField(_("sector"), max_length=100, blank=True, default="")
    is_listed = models.BooleanField(_("listed"), default=True)
    # The day it left the market (absent from a newer master file); its bars stay, and backtests keep
    # it for the dates it traded (no survivorship bias).
    delisted_on = models.DateField(_("delisted on"), null=True, blank=True)
    is_etf = models.BooleanField(_("ETF/ETN"), default=False)
    source = models.CharField(_("data source"), max_length=4, choices=BarSource.choices, default=BarSource.CSV)

    class Meta:
        verbose_name = _("instrument")
        verbose_name_plural = _("instruments")
        ordering = ["code"]
        indexes = [models.Index(fields=["name"], name="instrument_name_idx")]

    def __str__(self) -> str:
        return f"{self.code} {self.name}"

    @property
    def is_demo(self) -> bool:
        """Its prices are the demo market's synthetic bars, not real ones."""
        return self.source == BarSource.DEMO


class DailyBar(models.Model):
    """One trading day of one instrument. Prices in integer KRW; ``source`` says where the bar came from."""

    instrument = models.ForeignKey(Instrument, on_delete=models.CASCADE, related_name="bars")
    date = models.DateField(_("date"))
    open = models.BigIntegerField(_("open"))
    high = models.BigIntegerField(_("high"))
    low = models.BigIntegerField(_("low"))
    close = models.BigIntegerField(_("close"))
    volume = models.BigIntegerField(_("volume"), default=0)
    traded_value = models.BigIntegerField(_("traded value"), null=True, blank=True)
    # Every writer sets it (demo market, CSV and KIS imports, the refreshes). No index of its own:
    # every read of it is per instrument, which the (instrument, date) unique index serves, and a
    # further index would slow the bulk load.
    source = models.CharField(_("source"), max_length=4, choices=BarSource.choices, default=BarSource.CSV)

    class Meta:
        verbose_name = _("daily bar")
        verbose_name_plural = _("daily bars")
        constraints = [models.UniqueConstraint(fields=["instrument", "date"], name="dailybar_unique_day")]
        # (instrument, date) serves "one symbol, a date range" through the unique index;
        # (date) serves "all symbols, one date".
        indexes = [models.Index(fields=["date"], name="dailybar_date_idx")]

    def __str__(self) -> str:
        return f"{self.instrument_id} {self.date} {self.close}"


class PaperAccount(models.Model):
    """The paper broker's books for one paper broker account: cash in KRW."""

    broker_account = models.OneToOneField(BrokerAccount, on_delete=models.CASCADE, related_name="paper_account")
    initial_cash = models.BigIntegerField(_("initial cash"), default=100_000_000)
    cash = models.BigIntegerField(_("cash"), default=100_000_000)
    next_order_no = models.PositiveIntegerField(default=1)

    class Meta:
        verbose_name = _("paper account")
        verbose_name_plural = _("paper accounts")

    def __str__(self) -> str:
        return f"paper #{self.broker_account_id}"


class PaperPosition(models.Model):
    account = models.ForeignKey(PaperAccount, on_delete=models.CASCADE, related_name="positions")
    code = models.CharField(max_length=6)
    quantity = models.BigIntegerField(default=0)
    cost = models.BigIntegerField(default=0, help_text="purchase amount of the shares held, KRW, fees excluded")

    class Meta:
        constraints = [models.UniqueConstraint(fields=["account", "code"], name="paper_position_unique_code")]

    def __str__(self) -> str:
        return f"{self.code} × {self.quantity}"


class PaperOrderStatus(models.TextChoices):
    OPEN = "open", _("unfilled")
    FILLED = "filled", _("filled")
    CANCELLED = "cancelled", _("cancelled")
    EXPIRED = "expired", _("expired")


class PaperOrder(models.Model):
    """An order as the paper broker's "exchange" sees it; its order number plays KIS's ODNO."""

    account = models.ForeignKey(PaperAccount, on_delete=models.CASCADE, related_name="orders",
                                verbose_name=_("paper account"))
    order_no = models.CharField(_("order number"), max_length=10)
    client_order_id = models.CharField(_("client order ID"), max_length=64, blank=True, default="")
    code = models.CharField(_("code"), max_length=6)
    side = models.CharField(_("side"), max_length=4)  # buy / sell
    order_type = models.CharField(_("order type"), max_length=2)  # 00 limit, 01 market
    quantity = models.BigIntegerField(_("quantity"))
    price = models.BigIntegerField(_("price"), default=0)
    trading_date = models.DateField(_("trading date"))
    placed_at = models.DateTimeField(_("placed at"))
    status = models.CharField(_("status"), max_length=10, choices=PaperOrderStatus.choices,
                              default=PaperOrderStatus.OPEN)
    filled_quantity = models.BigIntegerField(_("filled quantity"), default=0)
    fill_price = models.BigIntegerField(_("fill price"), default=0)
    commission = models.BigIntegerField(_("commission"), default=0)
    tax = models.BigIntegerField(_("tax"), default=0)
    filled_at = models.DateTimeField(_("filled at"), null=True, blank=True)

    class Meta:
        verbose_name = _("paper order")
        verbose_name_plural = _("paper orders")
        constraints = [models.UniqueConstraint(fields=["account", "order_no"], name="paper_order_unique_no")]
        indexes = [models.Index(fields=["account", "trading_date"], name="paper_order_day_idx")]

    def __str__(self) -> str:
        return f"{self.order_no} {self.side} {self.code} × {self.quantity} ({self.status})"


class KisAccessToken(models.Model):
    """KIS access tokens shared by every process (web, workers, beat), encrypted at rest.

    KIS allows about one issuance a minute per app key and notifies the account owner of each, so a
    token is issued once and reused until shortly before it expires."""

    key = models.CharField(max_length=64, unique=True)
    token = EncryptedTextField()
    expires_at = models.DateTimeField()
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = _("KIS access token")
        verbose_name_plural = _("KIS access tokens")

    def __str__(self) -> str:  # never the token itself
        return f"token {self.key[:8]}… expires {self.expires_at:%Y-%m-%d %H:%M}"


class WeeklyAnalysis(models.Model):
    """Statistics of one instrument over one ISO week, computed by market.analysis (per week, stored)."""

    instrument = models.ForeignKey(Instrument, on_delete=models.CASCADE, related_name="weekly_analyses")
    week_start = models.DateField(_("week (Monday)"))
    iso_week = models.CharField(_("ISO week"), max_length=8)  # "2026-W47"
    trading_days = models.PositiveSmallIntegerField(_("trading days"))
    close = models.BigIntegerField(_("last close"))
    weekly_return = models.FloatField(_("weekly return"), null=True)
    volatility = models.FloatField(_("annualised volatility"), null=True)
    skew = models.FloatField(_("skew"), null=True)
    kurtosis = models.FloatField(_("excess kurtosis"), null=True)
    max_drawdown = models.FloatField(_("max drawdown"), null=True)
    z_score = models.FloatField(_("z-score of the last close"), null=True)
    z_window = models.PositiveSmallIntegerField(_("z-score window"), default=20)
    computed_at = models.DateTimeField(_("computed"), auto_now=True)

    class Meta:
        verbose_name = _("weekly analysis")
        verbose_name_plural = _("weekly analyses")
        constraints = [
            models.UniqueConstraint(fields=["instrument", "week_start"], name="weekly_analysis_unique_week"),
        ]
        indexes = [models.Index(fields=["week_start"], name="weekly_analysis_week_idx")]

    def __str__(self) -> str:
        return f"{self.instrument_id} {self.iso_week}"


class OutlierMethod(models.TextChoices):
    ZSCORE = "zscore", _("z-score")
    IQR = "iqr", _("IQR")
    HAMPEL = "hampel", _("Hampel (MAD)")


class Outlier(models.Model):
    """One unusual close or volume found in a week's analysis, with the method that found it."""

    analysis = models.ForeignKey(WeeklyAnalysis, on_delete=models.CASCADE, related_name="outliers")
    date = models.DateField(_("date"))
    series = models.CharField(_("series"), max_length=10)  # "close" or "volume"
    method = models.CharField(_("method"), max_length=10, choices=OutlierMethod.choices)
    value = models.FloatField(_("value"))
    score = models.FloatField(_("score"))

    class Meta:
        verbose_name = _("outlier")
        verbose_name_plural = _("outliers")
        constraints = [
            models.UniqueConstraint(fields=["analysis", "date", "series", "method"], name="outlier_unique"),
        ]

    def __str__(self) -> str:
        return f"{self.date} {self.series} {self.method}"


class IntradayBar(models.Model):
    """One minute of one symbol's trades from the real-time stream (a 1-minute candle), so a page opened
    during the day shows the day's candles so far. ``source`` as on the bus: "kis" (KIS WebSocket) or
    "sim" (the paper broker's simulated stream); the two never mix. ``minute`` is the start of the minute
    (aware, Asia/Seoul); prices in integer KRW. Kept for a few trading days (market.streaming.store)."""

    class Source(models.TextChoices):
        KIS = "kis", _("KIS real time")
        SIM = "sim", _("simulated (paper)")

    source = models.CharField(_("source"), max_length=3, choices=Source.choices)
    code = models.CharField(_("code"), max_length=6)
    minute = models.DateTimeField(_("minute"))
    open = models.BigIntegerField(_("open"))
    high = models.BigIntegerField(_("high"))
    low = models.BigIntegerField(_("low"))
    close = models.BigIntegerField(_("close"))
    volume = models.BigIntegerField(_("volume"), default=0)

    class Meta:
        verbose_name = _("intraday bar")
        verbose_name_plural = _("intraday bars")
        # The unique index serves "one source and symbol, one day" (the page's query) as well.
        constraints = [
            models.UniqueConstraint(fields=["source", "code", "minute"], name="intradaybar_unique_minute"),
        ]
        # "Older than N days" (pruning) scans by minute across every symbol.
        indexes = [models.Index(fields=["minute"], name="intradaybar_minute_idx")]

    def __str__(self) -> str:
        return f"{self.source} {self.code} {self.minute:%Y-%m-%d %H:%M} {self.close}"
