"""The dashboard's reads: the next scheduled runs, this week's plan (the entry job's dry run), each
account's value and equity line, all from stored data; `dashboard_for` puts them together."""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass, field

from django.utils.translation import gettext_lazy

from .models import Job
from .positions import positions_for
from .selectors import (
    ControlState,
    last_closes,
    latest_drifts_for,
    latest_fanout,
    open_alerts_for,
    orders_for,
    own_accounts,
    trading_controls_for,
    value_positions,
)

logger = logging.getLogger(__name__)


# ------------------------------------------------------------------------------------------- schedule
SCHEDULE_LABELS = {  # the task names of the apps' SCHEDULES, as the dashboard names them
    "orders.weekly_entry": gettext_lazy("Weekly entry (buys)"),
    "orders.exit_checks": gettext_lazy("Exit checks"),
    "orders.reconcile": gettext_lazy("Order reconciliation"),
    "orders.compare_live_backtest": gettext_lazy("Live vs backtest"),
    "market.refresh_recent_bars": gettext_lazy("Daily bar refresh"),
    "market.analyze_last_week": gettext_lazy("Weekly analysis"),
    "reports.weekly_reports": gettext_lazy("Weekly reports"),
}
SCHEDULE_NAME_LABELS = {  # rows sharing a task with another row
    "reports: weekly reports catch-up": gettext_lazy("Weekly reports (catch-up)"),
}


@dataclass(frozen=True)
class ScheduledRun:
    name: str
    label: str
    task: str
    next_run: dt.datetime | None  # Asia/Seoul
    description: str


def next_scheduled_runs(now: dt.datetime | None = None, limit: int = 8) -> list[ScheduledRun]:
    """The enabled periodic tasks (django-celery-beat) with their next trigger time in Seoul, soonest
    first. A crontab's next slot after `now`; the tasks themselves skip KRX holidays."""
    from django.utils import timezone
    from django_celery_beat.models import PeriodicTask

    from market.krx import SEOUL

    now = now or timezone.now()
    runs = []
    tasks = (PeriodicTask.objects.filter(enabled=True).exclude(task__startswith="celery.")  # Celery's own housekeeping
             .select_related("crontab", "interval", "solar", "clocked"))
    for task in tasks:
        next_run = None
        try:
            if task.clocked_id:
                next_run = None if task.one_off and task.total_run_count else task.clocked.clocked_time
            else:
                schedule = task.schedule
                schedule.nowfun = lambda: now
                last = now if task.crontab_id else (task.last_run_at or now)
                next_run = now + max(schedule.remaining_estimate(last), dt.timedelta(0))
        except Exception:  # an odd row in the admin must not break the dashboard
            logger.warning("next run of periodic task %s could not be computed", task.pk, exc_info=True)
        runs.append(ScheduledRun(
            name=task.name, label=str(SCHEDULE_NAME_LABELS.get(task.name) or SCHEDULE_LABELS.get(task.task, task.name)), task=task.task,
            next_run=next_run.astimezone(SEOUL) if next_run else None, description=task.description,
        ))
    runs.sort(key=lambda run: (run.next_run is None, run.next_run or now))
    return runs[:limit]


# ------------------------------------------------------------------------------------------- this week's plan
PLAN_CACHE_SECONDS = 300


@dataclass
class WeekPlan:
    config: object
    entry_day: dt.date | None
    kind: str  # "run": the recorded entry run; "dry_run": what the entry would buy now; "none": nothing to show
    run: object | None = None
    orders: list = field(default_factory=list)  # dicts: code, name, side, quantity, reference_price, amount, status
    candidates: list = field(default_factory=list)  # codes ranked by the strategy (recorded runs only)
    message: str = ""


def _next_entry_day(today: dt.date) -> dt.date | None:
    from market.krx import first_trading_day_of_week

    monday = today - dt.timedelta(days=today.weekday())
    for weeks in range(1, 4):
        day = first_trading_day_of_week(monday + dt.timedelta(weeks=weeks))
        if day is not None:
            return day
    return None


def _dry_run_entry(config, day: dt.date, now: dt.datetime) -> tuple[list[dict], str]:
    """The entry job's dry run (plans, never sends), cached for a few minutes per config and day."""
    from django.core.cache import cache
    from django.utils.translation import get_language

    from . import weekly

    stamp = config.updated_at.timestamp() if config.updated_at else 0
    key = f"orders:plan:{config.pk}:{day.isoformat()}:{stamp}:{get_language()}"
    cached = cache.get(key)
    if cached is not None:
        return cached
    try:
        result = weekly.place_weekly_buys(config, day, now, dry_run=True)
        planned = [item.as_dict() for item in (result.planned if result else [])]
        value = (planned, "" if planned else str(gettext_lazy("The strategy has no buy candidate for this entry.")))
    except Exception as error:  # SkipRun/BlockRun carry the Korean reason; anything else is logged
        if type(error).__name__ not in ("SkipRun", "BlockRun", "BacktestInputError"):
            logger.warning("dry run of config %s for %s failed", config.pk, day, exc_info=True)
        value = ([], str(error))
    cache.set(key, value, PLAN_CACHE_SECONDS)
    return value


def week_plans_for(user, now: dt.datetime) -> list[WeekPlan]:
    """This week's entry per active strategy: the recorded run with its orders once the entry ran,
    otherwise (before the entry time, or for next week once this week's entry day has passed without
    a run) the dry run of the entry job — paper accounts only, so the page never calls a real broker."""
    from accounts.models import BrokerMode
    from market.krx import SEOUL, first_trading_day_of_week
    from strategies.models import StrategyConfig

    from .models import Job, WeeklyRun

    today = now.astimezone(SEOUL).date()
    this_week = first_trading_day_of_week(today)  # None in a week without a trading day
    configs = list(
        StrategyConfig.objects.filter(owner=user, is_active=True, broker_account__isnull=False)
        .select_related("broker_account").order_by("name", "pk")
    )
    if not configs:
        return []
    runs = {}
    if this_week is not None:
        for run in (WeeklyRun.objects.filter(config__in=configs, job=Job.ENTRY, trading_date=this_week)
                    .prefetch_related("orders")):
            runs[run.config_id] = run
    plans = []
    for config in configs:
        run = runs.get(config.pk)
        if run is not None:
            orders = [
                {"code": o.code, "side": o.side, "quantity": o.quantity, "reference_price": o.reference_price,
                 "amount": o.quantity * o.reference_price, "status": o.status, "status_label": o.get_status_display()}
                for o in sorted(run.orders.all(), key=lambda o: o.pk)
            ]
            message = run.reason or ("" if orders else str(gettext_lazy("The entry placed no order this week.")))
            plans.append(WeekPlan(config, this_week, "run", run=run, orders=orders,
                                  candidates=list((run.plan or {}).get("candidates", []))[:20], message=message))
            continue
        day = this_week if this_week is not None and this_week >= today else _next_entry_day(today)
        if day is None:
            plans.append(WeekPlan(config, None, "none", message=str(gettext_lazy("No KRX trading day in the next weeks."))))
            continue
        if config.broker_account.mode != BrokerMode.PAPER:
            plans.append(WeekPlan(config, day, "none", message=str(gettext_lazy(
                "The plan is computed ahead only for paper accounts; it is shown here once the entry has run."))))
            continue
        planned, message = _dry_run_entry(config, day, now)
        orders = [{**item, "amount": item["quantity"] * item["reference_price"]} for item in planned]
        plans.append(WeekPlan(config, day, "dry_run", orders=orders, message=message))
    names = last_closes(o["code"] for plan in plans for o in plan.orders)
    for plan in plans:
        for order in plan.orders:
            order["name"] = names[order["code"]].name if order["code"] in names else ""
    return plans


# ------------------------------------------------------------------------------------------- account value
EQUITY_DAYS = 250  # about a year of trading days on the chart


@dataclass
class AccountSummary:
    account: object
    control: ControlState
    cash: int | None = None  # None: only the broker knows (KIS accounts; loaded separately)
    positions: list = field(default_factory=list)  # ValuedPosition
    source: str = "fills"  # "paper": the paper broker's stored cash and holdings; "fills": our fills
    equity: list = field(default_factory=list)  # [(date, KRW)] (paper accounts)

    @property
    def securities_value(self) -> int:
        return sum(p.market_value or 0 for p in self.positions)

    @property
    def unrealised_pnl(self) -> int:
        return sum(p.unrealised_pnl or 0 for p in self.positions)

    @property
    def total_value(self) -> int | None:
        return None if self.cash is None else self.cash + self.securities_value

    @property
    def missing_closes(self) -> bool:
        return any(p.last_close is None for p in self.positions)


def paper_equity_series(paper_account, orders: list, closes_by_code: dict, days: list[dt.date]) -> list:
    """End-of-day equity of a paper account on `days` (from the trading day before its first fill, when it
    held only cash): cash + Σ shares × that day's close.

    What it is, honestly: a reconstruction from the paper broker's filled orders. The cash of day t
    is TODAY's stored cash minus the cash flows of the fills after t (buy: −amount−commission; sell:
    +amount−commission−tax), so the last point equals the account value on the card when the last
    day is today's close; the shares held on day t are the fills up to t, marked to day t's close
    (`closes_by_code` carries the last earlier close over a missing bar). No intraday prices; a cash
    change made outside a fill (e.g. in the admin) shifts the whole past line by that amount.
    """
    def flow(o) -> int:
        amount = o["fill_price"] * o["filled_quantity"]
        return -(amount + o["commission"]) if o["side"] == "buy" else amount - o["commission"] - o["tax"]

    orders = sorted(orders, key=lambda o: o["trading_date"])
    total_flows = sum(flow(o) for o in orders)
    flows_so_far, index = 0, 0
    holdings: dict[str, int] = {}
    series = []
    for day in days:
        while index < len(orders) and orders[index]["trading_date"] <= day:
            o = orders[index]
            signed = o["filled_quantity"] if o["side"] == "buy" else -o["filled_quantity"]
            holdings[o["code"]] = holdings.get(o["code"], 0) + signed
            flows_so_far += flow(o)
            index += 1
        cash = paper_account.cash - (total_flows - flows_so_far)
        value = sum(shares * closes_by_code.get(code, {}).get(day, 0) for code, shares in holdings.items() if shares > 0)
        series.append((day, cash + value))
    return series


def _paper_summaries(accounts: list, controls: dict, today: dt.date) -> dict[int, AccountSummary]:
    """Cash, holdings and the equity line of the paper accounts, from the paper broker's tables
    (four or five queries whatever the number of accounts)."""
    from market.krx import previous_trading_day, trading_days
    from market.models import DailyBar, PaperAccount, PaperOrder, PaperOrderStatus, PaperPosition

    if not accounts:
        return {}
    papers = {p.broker_account_id: p for p in PaperAccount.objects.filter(broker_account__in=accounts)}
    holdings: dict[int, list] = {}
    filled: dict[int, list] = {}
    if papers:
        for position in PaperPosition.objects.filter(account__in=papers.values(), quantity__gt=0).order_by("code"):
            holdings.setdefault(position.account_id, []).append(position)
        for row in (PaperOrder.objects.filter(account__in=papers.values(), status=PaperOrderStatus.FILLED)
                    .values("account_id", "code", "side", "filled_quantity", "fill_price", "commission", "tax",
                            "trading_date").order_by("trading_date", "pk")):
            filled.setdefault(row["account_id"], []).append(row)
    closes = last_closes({p.code for rows in holdings.values() for p in rows}, on_or_before=today)
    days: list[dt.date] = []
    carried: dict[str, dict] = {}
    if filled:
        # from the trading day before the first fill (all cash: the starting point) to today
        first_fill = min(rows[0]["trading_date"] for rows in filled.values())
        days = [day for day in trading_days(previous_trading_day(first_fill), today)][-EQUITY_DAYS:]
        codes = {o["code"] for rows in filled.values() for o in rows}
        bars: dict[str, dict] = {}
        if days:
            for code, day, close in (DailyBar.objects.filter(
                    instrument__code__in=codes, date__gte=days[0] - dt.timedelta(days=14), date__lte=days[-1])
                    .values_list("instrument__code", "date", "close")):
                bars.setdefault(code, {})[day] = int(close)
            last_bar = max((max(by_day) for by_day in bars.values() if by_day), default=None)
            days = [day for day in days if last_bar is None or day <= last_bar]  # no point without a close yet
            carried = _with_carry(bars, days)
    default_cash = PaperAccount._meta.get_field("cash").default
    summaries = {}
    for account in accounts:
        paper = papers.get(account.pk)
        rows = holdings.get(paper.pk, []) if paper else []
        summary = AccountSummary(
            account=account, control=controls[account.pk], cash=paper.cash if paper else default_cash,
            positions=value_positions([(p.code, p.quantity, p.cost, None) for p in rows], closes), source="paper",
        )
        if paper and days and filled.get(paper.pk):
            summary.equity = paper_equity_series(paper, filled[paper.pk], carried, days)
        summaries[account.pk] = summary
    return summaries


def _with_carry(bar_rows: dict[str, dict], days: list[dt.date]) -> dict[str, dict]:
    """Per code, a close for every day in `days` (the last earlier close where a bar is missing)."""
    result = {}
    for code, by_day in bar_rows.items():
        ordered = sorted(by_day.items())
        filled, last, i = {}, None, 0
        for day in days:
            while i < len(ordered) and ordered[i][0] <= day:
                last = ordered[i][1]
                i += 1
            if last is not None:
                filled[day] = last
        result[code] = filled
    return result


def dashboard_for(user, *, now: dt.datetime | None = None, with_plan: bool = True) -> dict:
    """Everything the dashboard shows, from stored data only (no broker call): per own account the
    cash, holdings with P&L at the last stored close and the kill switch (paper accounts from the
    paper broker's tables, KIS accounts from our fills; their broker balance loads separately), the
    equity line of paper accounts, this week's plan, the next scheduled runs, recent orders and
    open alerts."""
    from django.utils import timezone

    from accounts.models import BrokerMode
    from market.krx import SEOUL

    now = now or timezone.now()
    today = now.astimezone(SEOUL).date()
    accounts = list(own_accounts(user))
    controls = trading_controls_for(user, accounts)
    by_account = {state.account.pk: state for state in controls["accounts"]}
    paper = [a for a in accounts if a.mode == BrokerMode.PAPER]
    summaries = _paper_summaries(paper, by_account, today)
    others = [a for a in accounts if a.mode != BrokerMode.PAPER]
    derived = {a.pk: positions_for(account=a) for a in others}
    closes = last_closes({code for positions in derived.values() for code in positions}, on_or_before=today)
    for account in others:
        summaries[account.pk] = AccountSummary(
            account=account, control=by_account[account.pk], cash=None,
            positions=value_positions(derived[account.pk].values(), closes), source="fills",
        )
    equity_account = next((summaries[a.pk] for a in paper if summaries[a.pk].equity), None)
    return {
        "accounts": [summaries[a.pk] for a in accounts],
        "controls": controls,
        "plans": week_plans_for(user, now) if with_plan else [],
        "schedule": next_scheduled_runs(now),
        "recent_orders": list(orders_for(user)[:10]),
        "alerts": open_alerts_for(user),
        "drifts": latest_drifts_for(user),
        "fanout": latest_fanout(Job.ENTRY, user),
        "equity_account": equity_account,
        "equity_chart": {
            "labels": [day.isoformat() for day, _ in equity_account.equity],
            "values": [value for _, value in equity_account.equity],
            "label": str(gettext_lazy("Account value (KRW)")),
        } if equity_account else None,
        "now": now.astimezone(SEOUL),
    }
