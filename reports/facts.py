"""The facts of one user's trading week, computed in code from stored data (never by the model).

Reads only: nothing here places, syncs or changes an order, and no broker is called for a paper
account (its books are read from the database). The facts are a JSON-friendly dict:

- ``week``: ISO week, its KRX trading days, ``as_of`` (the last of them with stored bars) and
  whether the week is complete.
- ``portfolio``: equity (cash + holdings at the close) at the previous week's last close
  (``start``) and at ``as_of`` (``end``), cash, holdings value, P&L and return; the same per account
  under ``accounts`` (labelled "페이퍼 계좌 1"; no account number, name or key).
- ``benchmark``: the equal-weight return of the user's strategy universes (or of every stored
  stock when the user has no strategy) over the same closes, and the excess return.
- ``positions_before`` / ``positions_after``: holdings at those two closes.
- ``trades``: the week's executions with the reason (entry, stop-loss, …, 수동 for orders not
  placed by the auto-trader) and, for sells, the realised P&L (average cost incl. buy commission).
- ``strategies``: the user's strategies with the week's runs and the signals behind their orders.
- ``analysis``: the market's weekly statistics: volatility, outliers, the most extreme z-scores
  (stored rows of `market.WeeklyAnalysis`, else computed in memory by `market.analysis.analyze`).
- ``failures``: rejected / unknown orders, failed / blocked / skipped runs, trading alerts.
- ``series``: equity, cash and the benchmark per trading day, for the charts.

Money in integer KRW; returns as percentages rounded to 2 decimals (``*_pct``).

Where the cash comes from: a paper account's cash is `PaperAccount.cash`; a KIS account's is read
once from the broker (`get_balance`, a read) and counted back through the stored fills. When it
cannot be read the account's cash is reported as unknown and its equity covers the holdings only.
"""

from __future__ import annotations

import bisect
import datetime as dt
import logging
import math
import re
import statistics
from collections import defaultdict
from dataclasses import dataclass, field

import pandas as pd
from django.contrib.auth import get_user_model
from django.db.models import Q
from django.utils import timezone

from accounts.models import BrokerAccount, BrokerMode
from market.analysis import analyze, iso_week_label
from market.analysis_service import parse_week
from market.krx import SEOUL, previous_trading_day, session_open_close, week_trading_days
from market.models import DailyBar, Instrument, Outlier, PaperAccount, PaperOrder, PaperOrderStatus, WeeklyAnalysis
from orders.models import AlertKind, Fill, Order, OrderReason, OrderSide, OrderStatus, TradingAlert, WeeklyRun
from strategies.library import get_strategy
from strategies.models import StrategyConfig

logger = logging.getLogger(__name__)

FACTS_SCHEMA = 1
TOP_OUTLIERS = 10
EXTREME_Z = 5
MAX_CANDIDATES = 10
MAX_FAILURES = 20
HISTORY_CALENDAR_DAYS = 150  # bars loaded before the week for an in-memory analysis (as market does)
PRICE_LOOKBACK_DAYS = 30  # a held stock without a bar on a day is valued at its last close before

MODE_LABELS = {BrokerMode.PAPER: "페이퍼", BrokerMode.SIMULATED: "모의투자", BrokerMode.REAL: "실전"}
SIDE_LABELS = {"buy": "매수", "sell": "매도"}
REASON_LABELS = {
    OrderReason.ENTRY: "주간 진입", OrderReason.STOP_LOSS: "손절", OrderReason.TAKE_PROFIT: "익절",
    OrderReason.SIGNAL: "매도 신호", OrderReason.WEEK_END: "주말 청산", OrderReason.MANUAL: "수동 주문",
}
JOB_LABELS = {"entry": "진입", "check": "점검", "exit": "청산"}
RUN_STATUS_LABELS = {
    "pending": "대기", "running": "실행 중", "complete": "완료", "skipped": "건너뜀", "failed": "실패", "blocked": "차단",
}
ORDER_STATUS_LABELS = {
    "pending": "대기", "submitted": "접수", "accepted": "확인", "partially_filled": "일부 체결", "filled": "체결",
    "rejected": "거부", "cancelled": "취소", "unknown": "결과 미확인",
}
ALERT_LABELS = {
    AlertKind.POSITION_MISMATCH: "브로커 잔고 불일치", AlertKind.ORDER_REJECTED: "주문 거부",
    AlertKind.ORDER_UNKNOWN: "주문 결과 미확인", AlertKind.RECONCILE_FAILED: "주문 대사 실패",
    AlertKind.JOB_FAILED: "작업 실패", AlertKind.RISK_BLOCKED: "위험 한도로 차단",
}
SERIES_LABELS = {"close": "종가", "volume": "거래량"}
METHOD_LABELS = {"zscore": "z-점수", "iqr": "IQR", "hampel": "Hampel"}


def pct(value: float | None) -> float | None:
    """A fraction as a percentage rounded to 2 decimals (0.01234 → 1.23)."""
    if value is None or not math.isfinite(value):
        return None
    return round(value * 100, 2)


def rounded(value: float | None, digits: int = 2) -> float | None:
    if value is None or not math.isfinite(value):
        return None
    return round(float(value), digits)


# ----------------------------------------------------------------------------------------------- the week
@dataclass(frozen=True)
class WeekWindow:
    monday: dt.date
    iso_week: str
    trading_days: list[dt.date]  # the week's KRX sessions
    prev_day: dt.date  # the trading day before the week: the "start" close
    as_of: dt.date | None  # the week's last trading day with stored bars (None: no bar yet)
    complete: bool  # every trading day of the week is over and stored

    @property
    def days(self) -> list[dt.date]:
        """The week's trading days up to `as_of`."""
        return [day for day in self.trading_days if self.as_of is not None and day <= self.as_of]

    @property
    def sunday(self) -> dt.date:
        return self.monday + dt.timedelta(days=6)


def week_window(week: str | dt.date, now: dt.datetime | None = None) -> WeekWindow:
    monday = parse_week(week)
    now = now or timezone.now()
    days = week_trading_days(monday)
    prev_day = previous_trading_day(monday)
    latest_bar = (
        DailyBar.objects.filter(date__gte=monday, date__lte=monday + dt.timedelta(days=6))
        .order_by("-date").values_list("date", flat=True).first()
    )
    as_of = max((day for day in days if latest_bar is not None and day <= latest_bar), default=None)
    complete = bool(days) and as_of == days[-1] and now >= session_open_close(days[-1])[1]
    return WeekWindow(monday, iso_week_label(monday), days, prev_day, as_of, complete)


# ----------------------------------------------------------------------------------------------- executions
@dataclass
class Execution:
    day: dt.date
    at: dt.datetime
    code: str
    side: str
    quantity: int
    price: int
    amount: int
    commission: int
    tax: int
    reason: str
    strategy: str = ""
    order_id: int | None = None  # our orders.Order, when the auto-trader placed it

    @property
    def cash_flow(self) -> int:
        if self.side == OrderSide.BUY:
            return -(self.amount + self.commission)
        return self.amount - self.commission - self.tax


def _our_orders(account: BrokerAccount) -> dict[str, Order]:
    return {
        order.client_order_id: order
        for order in Order.objects.filter(broker_account=account).select_related("config")
    }


def executions_for(account: BrokerAccount) -> list[Execution]:
    """Every execution of the account, oldest first. A paper account's come from the paper broker's
    own books (which also hold orders placed by hand); a KIS account's from the stored fills."""
    result: list[Execution] = []
    if account.mode == BrokerMode.PAPER:
        ours = _our_orders(account)
        rows = PaperOrder.objects.filter(
            account__broker_account=account, status=PaperOrderStatus.FILLED, filled_quantity__gt=0
        ).order_by("trading_date", "filled_at", "pk")
        for row in rows:
            order = ours.get(row.client_order_id) if row.client_order_id else None
            amount = row.fill_price * row.filled_quantity
            result.append(Execution(
                day=row.trading_date, at=row.filled_at or row.placed_at, code=row.code, side=row.side,
                quantity=row.filled_quantity, price=row.fill_price, amount=amount, commission=row.commission,
                tax=row.tax, reason=order.reason if order else OrderReason.MANUAL,
                strategy=order.config.name if order and order.config else "", order_id=order.pk if order else None,
            ))
        return result
    fills = Fill.objects.filter(order__broker_account=account).select_related("order", "order__config")
    for fill in fills.order_by("filled_at", "pk"):
        order = fill.order
        result.append(Execution(
            day=order.trading_date, at=fill.filled_at, code=order.code, side=order.side, quantity=fill.quantity,
            price=fill.price, amount=fill.amount, commission=fill.commission, tax=fill.tax, reason=order.reason,
            strategy=order.config.name if order.config else "", order_id=order.pk,
        ))
    result.sort(key=lambda e: (e.day, e.at))
    return result


@dataclass
class Book:
    """Holdings replayed from executions: quantity and cost (buy amount + buy commission) per code."""

    quantity: dict[str, int] = field(default_factory=dict)
    cost: dict[str, int] = field(default_factory=dict)

    def apply(self, execution: Execution) -> int | None:
        """Apply one execution; returns the realised P&L of a sell."""
        code = execution.code
        held, cost = self.quantity.get(code, 0), self.cost.get(code, 0)
        if execution.side == OrderSide.BUY:
            self.quantity[code], self.cost[code] = held + execution.quantity, cost + execution.amount + execution.commission
            return None
        sold = min(execution.quantity, held)
        basis = cost * sold // held if held else 0
        self.quantity[code], self.cost[code] = held - sold, cost - basis
        if self.quantity[code] == 0:
            del self.quantity[code], self.cost[code]
        return execution.amount - execution.commission - execution.tax - basis

    def copy(self) -> Book:
        return Book(dict(self.quantity), dict(self.cost))


# ----------------------------------------------------------------------------------------------- prices
class Closes:
    """Closes of some codes up to a day, with "last close on or before" lookups."""

    def __init__(self, codes: set[str], start: dt.date, end: dt.date) -> None:
        self._by_code: dict[str, tuple[list[dt.date], list[int]]] = {}
        rows = (
            DailyBar.objects.filter(instrument__code__in=sorted(codes), date__gte=start, date__lte=end)
            .order_by("instrument__code", "date").values_list("instrument__code", "date", "close")
        )
        grouped: dict[str, tuple[list, list]] = defaultdict(lambda: ([], []))
        for code, day, close in rows:
            grouped[code][0].append(day)
            grouped[code][1].append(int(close))
        self._by_code = dict(grouped)

    def on(self, code: str, day: dt.date) -> int | None:
        days, closes = self._by_code.get(code, ([], []))
        index = bisect.bisect_right(days, day) - 1
        return closes[index] if index >= 0 else None

    def exactly_on(self, code: str, day: dt.date) -> int | None:
        days, closes = self._by_code.get(code, ([], []))
        index = bisect.bisect_left(days, day)
        return closes[index] if index < len(days) and days[index] == day else None


def _names(codes) -> dict[str, str]:
    return dict(Instrument.objects.filter(code__in=sorted(set(codes))).values_list("code", "name"))


# ----------------------------------------------------------------------------------------------- market
def _analysis_rows(window: WeekWindow) -> tuple[str, list[dict], list[dict]]:
    """The week's per-stock statistics and outliers: stored rows, else computed in memory (no write)."""
    stored = list(
        WeeklyAnalysis.objects.filter(week_start=window.monday).values("instrument__code", "instrument__name", "volatility", "weekly_return", "z_score")
    )
    if stored:
        weekly = [
            {"code": r["instrument__code"], "name": r["instrument__name"], "volatility": r["volatility"],
             "weekly_return": r["weekly_return"], "z_score": r["z_score"]}
            for r in stored
        ]
        outliers = [
            {"code": code, "name": name, "date": day, "series": series, "method": method, "score": score}
            for code, name, day, series, method, score in Outlier.objects.filter(analysis__week_start=window.monday)
            .values_list("analysis__instrument__code", "analysis__instrument__name", "date", "series", "method", "score")
        ]
        return "stored", weekly, outliers
    if window.as_of is None:
        return "none", [], []
    rows = list(
        DailyBar.objects.filter(date__gte=window.monday - dt.timedelta(days=HISTORY_CALENDAR_DAYS), date__lte=window.as_of)
        .values_list("instrument__code", "date", "close", "volume")
    )
    if not rows:
        return "none", [], []
    frame = pd.DataFrame(rows, columns=["code", "date", "close", "volume"])
    frame["date"] = pd.to_datetime(frame["date"])
    close = frame.pivot(index="date", columns="code", values="close").astype(float)
    volume = frame.pivot(index="date", columns="code", values="volume").astype(float)
    result = analyze(close, volume, weeks=[window.monday])
    names = _names(close.columns)
    weekly = [
        {"code": str(r.code), "name": names.get(str(r.code), ""), "volatility": _finite(r.volatility),
         "weekly_return": _finite(r.weekly_return), "z_score": _finite(r.z_score)}
        for r in result.weekly.itertuples()
    ]
    outliers = [
        {"code": str(r.code), "name": names.get(str(r.code), ""), "date": pd.Timestamp(r.date).date(),
         "series": str(r.series), "method": str(r.method), "score": float(r.score)}
        for r in result.outliers.itertuples()
    ]
    return "computed", weekly, outliers


def _finite(value) -> float | None:
    try:
        value = float(value)
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) else None


def market_facts(window: WeekWindow) -> dict:
    """The market part of the facts (the same for every user of the week)."""
    source, weekly, outliers = _analysis_rows(window)
    volatilities = [row["volatility"] for row in weekly if row["volatility"] is not None]
    returns = [row["weekly_return"] for row in weekly if row["weekly_return"] is not None]
    scored = sorted((row for row in weekly if row["z_score"] is not None), key=lambda row: -abs(row["z_score"]))
    by_series: dict[str, int] = defaultdict(int)
    by_method: dict[str, int] = defaultdict(int)
    for row in outliers:
        by_series[SERIES_LABELS.get(row["series"], row["series"])] += 1
        by_method[METHOD_LABELS.get(row["method"], row["method"])] += 1
    top = sorted(outliers, key=lambda row: (-abs(row["score"]), row["code"], row["date"]))[:TOP_OUTLIERS]
    most_volatile = sorted((r for r in weekly if r["volatility"] is not None), key=lambda r: -r["volatility"])[:3]
    return {
        "source": source,  # stored | computed | none
        "symbols": len(weekly),
        "average_volatility_pct": pct(statistics.fmean(volatilities)) if volatilities else None,
        "median_volatility_pct": pct(statistics.median(volatilities)) if volatilities else None,
        "average_weekly_return_pct": pct(statistics.fmean(returns)) if returns else None,
        "rising": sum(1 for r in returns if r > 0),
        "falling": sum(1 for r in returns if r < 0),
        "most_volatile": [
            {"code": r["code"], "name": r["name"], "volatility_pct": pct(r["volatility"])} for r in most_volatile
        ],
        "outliers": len(outliers),
        "outliers_by_series": dict(sorted(by_series.items())),
        "outliers_by_method": dict(sorted(by_method.items())),
        "top_outliers": [
            {"code": r["code"], "name": r["name"], "date": r["date"].isoformat(),
             "series": SERIES_LABELS.get(r["series"], r["series"]), "method": METHOD_LABELS.get(r["method"], r["method"]),
             "score": rounded(r["score"])}
            for r in top
        ],
        "extreme_z": [
            {"code": r["code"], "name": r["name"], "z_score": rounded(r["z_score"]),
             "weekly_return_pct": pct(r["weekly_return"])}
            for r in scored[:EXTREME_Z]
        ],
    }


# ----------------------------------------------------------------------------------------------- activity
def users_with_activity(week: str | dt.date):
    """Users with something to report for the week: executions, orders, runs or alerts in it, or
    positions held through it (an open position of one of their strategies)."""
    monday = parse_week(week)
    sunday = monday + dt.timedelta(days=6)
    start = dt.datetime.combine(monday, dt.time.min, tzinfo=SEOUL)
    end = dt.datetime.combine(sunday + dt.timedelta(days=1), dt.time.min, tzinfo=SEOUL)
    ids: set[int] = set()
    ids |= set(Order.objects.filter(trading_date__range=(monday, sunday)).values_list("broker_account__owner_id", flat=True))
    ids |= set(WeeklyRun.objects.filter(week_start=monday).values_list("config__owner_id", flat=True))
    ids |= set(
        PaperOrder.objects.filter(trading_date__range=(monday, sunday))
        .values_list("account__broker_account__owner_id", flat=True)
    )
    ids |= set(
        TradingAlert.objects.filter(created_at__gte=start, created_at__lt=end, account__isnull=False)
        .values_list("account__owner_id", flat=True)
    )
    # Positions held into the week: any execution before it on an account whose books are not flat.
    for account in BrokerAccount.objects.exclude(owner_id__in=ids).filter(
        Q(orders__isnull=False) | Q(paper_account__orders__isnull=False)
    ).distinct():
        book = Book()
        for execution in executions_for(account):
            if execution.day >= monday:
                break
            book.apply(execution)
        if book.quantity:
            ids.add(account.owner_id)
    return get_user_model().objects.filter(pk__in=ids).order_by("pk")


# ----------------------------------------------------------------------------------------------- per user
def _account_cash_now(account: BrokerAccount) -> tuple[int | None, str]:
    if account.mode == BrokerMode.PAPER:
        cash = PaperAccount.objects.filter(broker_account=account).values_list("cash", flat=True).first()
        return (int(cash), "paper") if cash is not None else (None, "no paper books")
    try:
        from market.brokers import broker_for

        return int(broker_for(account).get_balance().summary.cash_deposit), "broker balance"
    except Exception as error:  # a report never fails, nor waits long, on the broker
        logger.warning("report: the balance of account %s could not be read: %s", account.pk, type(error).__name__)
        return None, "unavailable"


def _strategy_rules(config: StrategyConfig) -> dict:
    try:
        cls = get_strategy(config.strategy_key)
    except KeyError:
        return {"name": config.strategy_key, "description": "", "parameters": []}
    try:
        params = cls.validate_params(config.params)
    except Exception:  # stored parameters that no longer validate: shown as stored
        params = dict(config.params)
    return {
        "name": cls.name,
        "description": cls.description,
        "parameters": [
            {"name": spec.name, "label": spec.label or spec.name, "value": params.get(spec.name, spec.default)}
            for spec in cls.parameter_specs()
        ],
    }


_NOTE_NUMBER = re.compile(r"(score|change)=(-?[0-9.eE+-]+)")


def _note_values(order_info: dict) -> dict:
    """The numbers behind an order's note, as facts: the entry's ranking score, the change since entry."""
    values = {key: _finite(value) for key, value in _NOTE_NUMBER.findall(order_info.get("note", ""))}
    result = {}
    if values.get("score") is not None:
        result["score"] = rounded(values["score"])
    if values.get("change") is not None:
        result["change_pct"] = pct(values["change"])
    return result


def _why(order_info: dict, rules: dict) -> str:
    """Why an order of a run was planned, in Korean, from the run's plan (no model involved)."""
    reason = order_info.get("reason", "")
    values = {key: _finite(value) for key, value in _NOTE_NUMBER.findall(order_info.get("note", ""))}
    params = {p["name"]: p["value"] for p in rules.get("parameters", [])}
    if reason == OrderReason.ENTRY:
        score = values.get("score")
        return "매수 신호 (순위 점수 %s)" % (f"{score:.2f}" if score is not None else "–")
    change = values.get("change")
    change_text = f"진입가 대비 {change * 100:+.2f}%" if change is not None else ""
    if reason == OrderReason.STOP_LOSS:
        limit = _finite(params.get("stop_loss"))
        return f"손절: {change_text}" + (f" (기준 {limit * 100:+.2f}%)" if limit is not None else "")
    if reason == OrderReason.TAKE_PROFIT:
        limit = _finite(params.get("take_profit"))
        return f"익절: {change_text}" + (f" (기준 {limit * 100:+.2f}%)" if limit is not None else "")
    if reason == OrderReason.SIGNAL:
        return f"전략의 매도 신호 ({change_text})" if change_text else "전략의 매도 신호"
    if reason == OrderReason.WEEK_END:
        return f"주간 마지막 거래일 청산 ({change_text})" if change_text else "주간 마지막 거래일 청산"
    return REASON_LABELS.get(reason, reason)


def _strategy_facts(configs: list[StrategyConfig], runs: list[WeeklyRun], window: WeekWindow,
                    names: dict[str, str]) -> list[dict]:
    result = []
    runs_by_config: dict[int, list[WeeklyRun]] = defaultdict(list)
    for run in sorted(runs, key=lambda run: (run.trading_date, run.pk)):
        runs_by_config[run.config_id].append(run)
    for config in configs:
        runs = runs_by_config.get(config.pk, [])
        if not runs and not config.is_active:
            continue
        rules = _strategy_rules(config)
        signals = []
        for run in runs:
            plan = run.plan or {}
            orders = plan.get("orders") or []
            entry = {
                "date": run.trading_date.isoformat(), "job": JOB_LABELS.get(run.job, run.job),
                "signal_day": plan.get("signal_day"),
                "orders": [
                    {"code": o.get("code", ""), "name": names.get(o.get("code", ""), ""),
                     "side": SIDE_LABELS.get(o.get("side", ""), o.get("side", "")), "quantity": o.get("quantity"),
                     "reference_price": o.get("reference_price"),
                     "reason": REASON_LABELS.get(o.get("reason", ""), o.get("reason", "")), "why": _why(o, rules),
                     **_note_values(o)}
                    for o in orders
                ],
            }
            if run.job == "entry":
                candidates = plan.get("candidates") or []
                entry["candidates"] = len(candidates)
                entry["top_candidates"] = [
                    {"code": code, "name": names.get(code, "")} for code in candidates[:MAX_CANDIDATES]
                ]
                entry["free_slots"] = plan.get("slots")
            if entry["orders"] or run.job == "entry":
                signals.append(entry)
        result.append({
            "name": config.name, "strategy": rules["name"], "active": config.is_active,
            "rules": rules["description"], "parameters": rules["parameters"],
            "max_positions": config.max_positions, "cash_per_week": int(config.cash_per_week),
            "runs": [
                {"date": run.trading_date.isoformat(), "job": JOB_LABELS.get(run.job, run.job),
                 "status": RUN_STATUS_LABELS.get(run.status, run.status), "reason": run.reason}
                for run in runs
            ],
            "signals": signals,
        })
    return result


def _failure_facts(accounts: list[BrokerAccount], configs: list[StrategyConfig], window: WeekWindow,
                   names: dict[str, str]) -> dict:
    start = dt.datetime.combine(window.monday, dt.time.min, tzinfo=SEOUL)
    end = dt.datetime.combine(window.sunday + dt.timedelta(days=1), dt.time.min, tzinfo=SEOUL)
    bad_orders = (
        Order.objects.filter(broker_account__in=accounts, trading_date__range=(window.monday, window.sunday))
        .filter(status__in=(OrderStatus.REJECTED, OrderStatus.UNKNOWN, OrderStatus.CANCELLED))
        .order_by("trading_date", "pk")
    )
    failed_runs = WeeklyRun.objects.filter(
        config__in=configs, week_start=window.monday, status__in=("failed", "blocked", "skipped"),
    ).select_related("config").order_by("trading_date", "pk")
    alerts = TradingAlert.objects.filter(
        account__in=accounts, created_at__gte=start, created_at__lt=end,
    ).exclude(kind=AlertKind.FILLED).order_by("created_at", "pk")
    unfilled_paper = PaperOrder.objects.filter(
        account__broker_account__in=accounts, trading_date__range=(window.monday, window.sunday),
        status__in=(PaperOrderStatus.CANCELLED, PaperOrderStatus.EXPIRED),
    ).order_by("trading_date", "pk")
    ours = set(bad_orders.values_list("client_order_id", flat=True))
    return {
        "rejected_orders": [
            {"date": o.trading_date.isoformat(), "code": o.code, "name": names.get(o.code, ""),
             "side": SIDE_LABELS.get(o.side, o.side), "quantity": o.quantity,
             "status": ORDER_STATUS_LABELS.get(o.status, o.status), "message": o.error_message}
            for o in bad_orders[:MAX_FAILURES]
        ],
        "unfilled_paper_orders": [
            {"date": o.trading_date.isoformat(), "code": o.code, "name": names.get(o.code, ""),
             "side": SIDE_LABELS.get(o.side, o.side), "quantity": int(o.quantity),
             "status": "만료" if o.status == PaperOrderStatus.EXPIRED else "취소"}
            for o in unfilled_paper[:MAX_FAILURES] if not o.client_order_id or o.client_order_id not in ours
        ],
        "runs": [
            {"date": r.trading_date.isoformat(), "strategy": r.config.name, "job": JOB_LABELS.get(r.job, r.job),
             "status": RUN_STATUS_LABELS.get(r.status, r.status), "reason": r.reason}
            for r in failed_runs[:MAX_FAILURES]
        ],
        "alerts": [
            {"date": a.created_at.astimezone(SEOUL).date().isoformat(), "kind": ALERT_LABELS.get(a.kind, a.kind),
             "message": a.message, "resolved": a.resolved_at is not None}
            for a in alerts[:MAX_FAILURES]
        ],
    }


def _position_rows(book: Book, closes: Closes | None, day: dt.date, names: dict[str, str]) -> list[dict]:
    rows = []
    for code in sorted(book.quantity):
        quantity, cost = book.quantity[code], book.cost[code]
        close = closes.on(code, day) if closes else None
        value = close * quantity if close is not None else cost
        rows.append({
            "code": code, "name": names.get(code, ""), "quantity": quantity,
            "average_price": round(cost / quantity) if quantity else 0, "close": close, "value": value,
            "unrealized_pnl": value - cost, "unrealized_pct": pct(value / cost - 1) if cost else None,
        })
    total = sum(row["value"] for row in rows)
    for row in rows:
        row["weight_pct"] = pct(row["value"] / total) if total else None
    return rows


def _merge_books(books: list[Book]) -> Book:
    merged = Book()
    for book in books:
        for code, quantity in book.quantity.items():
            merged.quantity[code] = merged.quantity.get(code, 0) + quantity
            merged.cost[code] = merged.cost.get(code, 0) + book.cost[code]
    return merged


def _replay(executions: list[Execution], day_points: list[dt.date], window: WeekWindow
            ) -> tuple[dict[dt.date, Book], list[tuple[Execution, int | None]]]:
    """The books at the close of each day point, and the week's executions with their realised P&L."""
    book = Book()
    snapshots: dict[dt.date, Book] = {}
    trades: list[tuple[Execution, int | None]] = []
    points = iter(sorted(day_points))
    pending = next(points, None)
    for execution in executions:
        while pending is not None and execution.day > pending:
            snapshots[pending] = book.copy()
            pending = next(points, None)
        realised = book.apply(execution)
        if window.monday <= execution.day <= window.sunday:
            trades.append((execution, realised))
    while pending is not None:
        snapshots[pending] = book.copy()
        pending = next(points, None)
    return snapshots, trades


def _benchmark(codes: list[str], window: WeekWindow, name: str) -> tuple[dict, dict[dt.date, float]]:
    """Equal-weight return of `codes` from the previous week's last close to each day of the week."""
    if window.as_of is None or not codes:
        return {"name": name, "symbols": 0, "return_pct": None}, {}
    closes = Closes(set(codes), window.prev_day, window.as_of)
    base = {code: closes.exactly_on(code, window.prev_day) for code in codes}
    base = {code: close for code, close in base.items() if close}
    by_day: dict[dt.date, float] = {window.prev_day: 0.0} if base else {}
    for day in window.days:
        changes = [closes.on(code, day) / start - 1 for code, start in base.items()]
        if changes:
            by_day[day] = statistics.fmean(changes)
    final = by_day.get(window.as_of)
    return {"name": name, "symbols": len(base), "return_pct": pct(final)}, by_day


def _benchmark_universe(configs: list[StrategyConfig], window: WeekWindow) -> tuple[list[str], str]:
    from strategies.services import universe_for

    codes: set[str] = set()
    for config in configs:
        try:
            codes |= set(universe_for(config, window.prev_day))
        except Exception as error:  # a broken universe leaves the benchmark to the whole market
            logger.warning("report: universe of config %s: %s", config.pk, error)
    if codes:
        return sorted(codes), "전략 유니버스 동일가중"
    stored = DailyBar.objects.filter(date=window.prev_day).values_list("instrument__code", flat=True)
    return sorted(set(stored)), "전 종목 동일가중"


@dataclass
class _AccountState:
    label: str
    mode: str
    cash_now: int | None
    cash_source: str
    books: dict[dt.date, Book]
    later_flow: dict[dt.date, int]  # cash flow of the executions after each day


def build_facts(user, week: str | dt.date, *, market: dict | None = None, now: dt.datetime | None = None) -> dict:
    """The facts of `user`'s week (see the module docstring). `market`: precomputed `market_facts`."""
    now = now or timezone.now()
    window = week_window(week, now)
    accounts = list(BrokerAccount.objects.filter(owner=user).order_by("-is_default", "pk"))
    configs = list(StrategyConfig.objects.filter(owner=user).order_by("name", "pk"))
    day_points = [window.prev_day, *window.days]
    last_point = day_points[-1]

    states: list[_AccountState] = []
    trades: list[tuple[Execution, int | None]] = []
    codes: set[str] = set()
    for index, account in enumerate(accounts, start=1):
        executions = executions_for(account)
        has_books = account.mode == BrokerMode.PAPER and PaperAccount.objects.filter(broker_account=account).exists()
        if not executions and not has_books:
            continue
        books, account_trades = _replay(executions, day_points, window)
        trades += account_trades
        codes |= {execution.code for execution in executions}
        cash_now, cash_source = _account_cash_now(account)
        states.append(_AccountState(
            label=f"{MODE_LABELS.get(account.mode, account.mode)} 계좌 {index}", mode=account.mode,
            cash_now=cash_now, cash_source=cash_source, books=books,
            later_flow={day: sum(e.cash_flow for e in executions if e.day > day) for day in day_points},
        ))

    runs = list(WeeklyRun.objects.filter(config__in=configs, week_start=window.monday))
    for run in runs:
        plan = run.plan or {}
        codes |= {o.get("code", "") for o in plan.get("orders") or []}
        codes |= set((plan.get("candidates") or [])[:MAX_CANDIDATES])
    codes |= set(Order.objects.filter(broker_account__in=accounts, trading_date__range=(window.monday, window.sunday))
                 .values_list("code", flat=True))
    names = _names(codes - {""})
    closes = Closes(codes, window.prev_day - dt.timedelta(days=PRICE_LOOKBACK_DAYS), last_point) if codes else None

    def holdings_value(book: Book, day: dt.date) -> int:
        total = 0
        for code, quantity in book.quantity.items():
            close = closes.on(code, day) if closes else None
            total += close * quantity if close is not None else book.cost[code]
        return total

    cash_known = all(state.cash_now is not None for state in states)
    totals = {day: {"cash": 0, "holdings": 0} for day in day_points}
    account_facts = []
    for state in states:
        values = {}
        for day in day_points:
            cash = state.cash_now - state.later_flow[day] if state.cash_now is not None else None
            holdings = holdings_value(state.books[day], day)
            values[day] = (cash, holdings)
            totals[day]["cash"] += cash or 0
            totals[day]["holdings"] += holdings
        (cash_start, held_start), (cash_end, held_end) = values[window.prev_day], values[last_point]
        equity_start, equity_end = (cash_start or 0) + held_start, (cash_end or 0) + held_end
        account_facts.append({
            "label": state.label, "mode": state.mode, "cash_known": state.cash_now is not None,
            "cash_start": cash_start, "cash_end": cash_end, "holdings_value_start": held_start,
            "holdings_value_end": held_end, "equity_start": equity_start, "equity_end": equity_end,
            "pnl": equity_end - equity_start,
            "return_pct": pct(equity_end / equity_start - 1) if equity_start else None,
        })

    equity = {day: totals[day]["cash"] + totals[day]["holdings"] for day in day_points}
    equity_start, equity_end = equity[window.prev_day], equity[last_point]
    portfolio_return = equity_end / equity_start - 1 if equity_start else None
    bench_codes, bench_name = _benchmark_universe(configs, window)
    benchmark, bench_by_day = _benchmark(bench_codes, window, bench_name)
    excess = None
    if portfolio_return is not None and benchmark["return_pct"] is not None:
        excess = round(pct(portfolio_return) - benchmark["return_pct"], 2)

    trade_rows = [
        {
            "date": e.day.isoformat(), "code": e.code, "name": names.get(e.code, ""),
            "side": SIDE_LABELS.get(e.side, e.side), "quantity": e.quantity, "price": e.price, "amount": e.amount,
            "commission": e.commission, "tax": e.tax, "reason": REASON_LABELS.get(e.reason, e.reason),
            "strategy": e.strategy, "realized_pnl": realised,
        }
        for e, realised in sorted(trades, key=lambda pair: (pair[0].day, pair[0].at))
    ]
    buys = [t for t in trade_rows if t["side"] == SIDE_LABELS["buy"]]
    sells = [t for t in trade_rows if t["side"] == SIDE_LABELS["sell"]]
    realised_values = [t["realized_pnl"] for t in sells if t["realized_pnl"] is not None]

    series = []
    for day in day_points:
        bench = bench_by_day.get(day)
        iso = day.isoformat()
        series.append({
            "date": iso, "equity": equity[day], "cash": totals[day]["cash"] if cash_known else None,
            "holdings": totals[day]["holdings"],
            "benchmark": round(equity_start * (1 + bench)) if bench is not None and equity_start else None,
            "bought": sum(t["amount"] for t in buys if t["date"] == iso),
            "sold": sum(t["amount"] for t in sells if t["date"] == iso),
        })

    before = _merge_books([state.books[window.prev_day] for state in states])
    after = _merge_books([state.books[last_point] for state in states])
    failures = _failure_facts(accounts, configs, window, names)
    failures["count"] = sum(len(value) for value in failures.values())
    return {
        "schema": FACTS_SCHEMA,
        "week": {
            "iso_week": window.iso_week, "start": window.monday.isoformat(), "end": window.sunday.isoformat(),
            "trading_days": [day.isoformat() for day in window.trading_days],
            "previous_close_day": window.prev_day.isoformat(),
            "as_of": window.as_of.isoformat() if window.as_of else None, "complete": window.complete,
        },
        "portfolio": {
            "equity_start": equity_start, "equity_end": equity_end, "pnl": equity_end - equity_start,
            "return_pct": pct(portfolio_return), "cash_known": cash_known,
            "cash_start": totals[window.prev_day]["cash"] if cash_known else None,
            "cash_end": totals[last_point]["cash"] if cash_known else None,
            "holdings_value_start": totals[window.prev_day]["holdings"],
            "holdings_value_end": totals[last_point]["holdings"],
        },
        "benchmark": benchmark,
        "excess_return_pct": excess,
        "accounts": account_facts,
        "positions_before": _position_rows(before, closes, window.prev_day, names),
        "positions_after": _position_rows(after, closes, last_point, names),
        "trades": trade_rows,
        "trade_summary": {
            "count": len(trade_rows), "buys": len(buys), "sells": len(sells),
            "bought_amount": sum(t["amount"] for t in buys), "sold_amount": sum(t["amount"] for t in sells),
            "commission": sum(t["commission"] for t in trade_rows), "tax": sum(t["tax"] for t in trade_rows),
            "realized_pnl": sum(realised_values), "winning_sells": sum(1 for v in realised_values if v > 0),
            "losing_sells": sum(1 for v in realised_values if v < 0),
        },
        "strategies": _strategy_facts(configs, runs, window, names),
        "analysis": market if market is not None else market_facts(window),
        "failures": failures,
        "series": series,
    }


def has_activity(facts: dict) -> bool:
    return bool(
        facts["trades"] or facts["positions_before"] or facts["positions_after"]
        or any(s["runs"] for s in facts["strategies"]) or facts["failures"]["count"]
    )
