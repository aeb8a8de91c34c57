"""Read-side of the orders app: positions are derived from fills (no stored position table)."""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass, field

from django.db.models import F, Sum
from django.utils.translation import gettext_lazy

from .models import OPEN_STATUSES, Fill, Order, OrderSide

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Position:
    code: str
    quantity: int
    cost: int  # KRW paid for the shares still held (buy amounts, without commission)
    opened_on: dt.date  # trading date of the first buy since the position was last flat

    @property
    def average_price(self) -> float:
        return self.cost / self.quantity if self.quantity else 0.0


def positions_for(config=None, *, account=None) -> dict[str, Position]:
    """Open positions of a strategy config (or of a broker account), from its fills in order.

    The order is the broker's: by trading day, then the broker's order number (it numbers orders as
    they reach it, and a sell is accepted only when the shares it sells are held). Fill times are the
    orders' times to the second, and concurrent orders are recorded in any order, so sorting by time
    could put a sell before the buy that made it possible; the sell would then be cut to what was
    held at that point and shares already sold would stay "held" for ever."""
    fills = Fill.objects.select_related("order").order_by(
        "order__trading_date", "order__broker_order_no", "cumulative_quantity", "filled_at", "pk")
    if config is not None:
        fills = fills.filter(order__config=config)
    if account is not None:
        fills = fills.filter(order__broker_account=account)
    state: dict[str, list] = {}  # code -> [quantity, cost, opened_on]
    for fill in fills:
        code = fill.order.code
        quantity, cost, opened_on = state.get(code, [0, 0, None])
        if fill.order.side == OrderSide.BUY:
            if quantity == 0:
                opened_on = fill.order.trading_date
            quantity, cost = quantity + fill.quantity, cost + fill.amount
        else:
            sold = min(fill.quantity, quantity)
            cost -= cost * sold // quantity if quantity else 0
            quantity -= sold
            if quantity == 0:
                cost, opened_on = 0, None
        state[code] = [quantity, cost, opened_on]
    return {
        code: Position(code, quantity, cost, opened_on)
        for code, (quantity, cost, opened_on) in sorted(state.items()) if quantity > 0
    }


def open_order_quantities(config, side: str) -> dict[str, int]:
    """Per code, the not-yet-filled quantity of the config's open orders on one side."""
    rows = (
        Order.objects.filter(config=config, side=side, status__in=OPEN_STATUSES)
        .values("code").annotate(left=Sum(F("quantity") - F("filled_quantity")))
    )
    return {row["code"]: int(row["left"] or 0) for row in rows}


def orders_page_for(user) -> dict:
    """The rest of the 주문 page (the orders list itself is `orders_for`, filtered and paginated): each
    of the user's strategies with its derived positions marked to the last close, and the latest
    weekly runs. Everything is scoped to the user."""
    from .models import WeeklyRun

    return {
        "strategies": positions_by_config(user),
        "runs": WeeklyRun.objects.filter(config__owner=user).select_related("config").order_by("-trading_date", "-pk")[:20],
    }


# ------------------------------------------------------------------------------------------- lists
# Reads for the 주문 page, the dashboard and the API. Every one is scoped to the user's OWN broker
# accounts (staff see their own rows here too: other users' trading is the admin's business).


def own_accounts(user):
    """The broker accounts the user owns, default first."""
    from accounts.models import BrokerAccount

    if not user.is_authenticated:
        return BrokerAccount.objects.none()
    return BrokerAccount.objects.filter(owner=user).order_by("-is_default", "name", "pk")


def own_account(user, pk) -> object | None:
    """One of the user's own accounts, or None (callers answer 404: another user's id reveals nothing)."""
    try:
        pk = int(pk)
    except (TypeError, ValueError):
        return None
    return own_accounts(user).filter(pk=pk).first()


def own_order(user, pk) -> Order | None:
    """One of the user's own orders, or None (another user's id answers like a missing one)."""
    try:
        pk = int(pk)
    except (TypeError, ValueError):
        return None
    return Order.objects.filter(broker_account__owner=user, pk=pk).select_related("broker_account").first()


def orders_for(user, *, status: str | None = None, side: str | None = None, code: str | None = None,
               start: dt.date | None = None, end: dt.date | None = None, reason: str | None = None,
               account: int | None = None):
    """The user's orders, newest first, filtered (each filter optional; dates are trading dates)."""
    queryset = Order.objects.filter(broker_account__owner=user).select_related("config", "broker_account")
    if status:
        queryset = queryset.filter(status=status)
    if side:
        queryset = queryset.filter(side=side)
    if code:
        queryset = queryset.filter(code=code.strip().upper())
    if start:
        queryset = queryset.filter(trading_date__gte=start)
    if end:
        queryset = queryset.filter(trading_date__lte=end)
    if reason:
        queryset = queryset.filter(reason=reason)
    if account:
        queryset = queryset.filter(broker_account_id=account)
    return queryset.order_by("-trading_date", "-intent_at", "-pk")


def seoul_day_range(field: str, start: dt.date | None, end: dt.date | None) -> dict:
    """Filter arguments bounding a datetime field by Seoul calendar days, as a plain range (a `__date`
    lookup would need MySQL's time zone tables, which a server may not have loaded)."""
    from market.krx import SEOUL

    bounds = {}
    if start:
        bounds[f"{field}__gte"] = dt.datetime.combine(start, dt.time.min, tzinfo=SEOUL)
    if end:
        bounds[f"{field}__lt"] = dt.datetime.combine(end + dt.timedelta(days=1), dt.time.min, tzinfo=SEOUL)
    return bounds


def fills_for(user, *, code: str | None = None, side: str | None = None, start: dt.date | None = None,
              end: dt.date | None = None, order: int | None = None):
    """The user's fills, newest first; `start`/`end` bound the fill's date in Seoul."""
    queryset = Fill.objects.filter(order__broker_account__owner=user).select_related("order")
    if code:
        queryset = queryset.filter(order__code=code.strip().upper())
    if side:
        queryset = queryset.filter(order__side=side)
    queryset = queryset.filter(**seoul_day_range("filled_at", start, end))
    if order:
        queryset = queryset.filter(order_id=order)
    return queryset.order_by("-filled_at", "-pk")


def trade_logs_for(user, *, symbol: str | None = None, side: str | None = None, start: dt.date | None = None,
                   end: dt.date | None = None, reason: str | None = None):
    from .models import TradeLog

    queryset = TradeLog.objects.filter(user=user)
    if symbol:
        queryset = queryset.filter(symbol=symbol.strip().upper())
    if side:
        queryset = queryset.filter(side=side)
    queryset = queryset.filter(**seoul_day_range("timestamp", start, end))
    if reason:
        queryset = queryset.filter(reason=reason)
    return queryset.order_by("-timestamp", "-pk")


# ------------------------------------------------------------------------------------------- valuation
@dataclass(frozen=True)
class LastClose:
    code: str
    name: str
    date: dt.date | None
    close: int | None


@dataclass(frozen=True)
class ValuedPosition:
    """A position marked to the last stored close. `cost` and the P&L leave out commission and tax."""

    code: str
    name: str
    quantity: int
    cost: int
    opened_on: dt.date | None
    last_close: int | None
    last_close_date: dt.date | None

    @property
    def average_price(self) -> float:
        return self.cost / self.quantity if self.quantity else 0.0

    @property
    def market_value(self) -> int | None:
        return None if self.last_close is None else self.last_close * self.quantity

    @property
    def unrealised_pnl(self) -> int | None:
        return None if self.market_value is None else self.market_value - self.cost

    @property
    def unrealised_pnl_rate(self) -> float | None:
        pnl = self.unrealised_pnl
        return None if pnl is None or not self.cost else pnl / self.cost

    @property
    def unrealised_pnl_percent(self) -> float | None:
        rate = self.unrealised_pnl_rate
        return None if rate is None else rate * 100


def last_closes(codes, *, on_or_before: dt.date | None = None) -> dict[str, LastClose]:
    """Name and last stored close per code, in one query."""
    from django.db.models import OuterRef, Subquery

    from market.models import DailyBar, Instrument

    codes = sorted(set(codes))
    if not codes:
        return {}
    bars = DailyBar.objects.filter(instrument=OuterRef("pk"))
    if on_or_before is not None:
        bars = bars.filter(date__lte=on_or_before)
    bars = bars.order_by("-date")
    rows = (
        Instrument.objects.filter(code__in=codes)
        .annotate(last_date=Subquery(bars.values("date")[:1]), last_close=Subquery(bars.values("close")[:1]))
        .values_list("code", "name", "last_date", "last_close")
    )
    found = {code: LastClose(code, name, day, None if close is None else int(close)) for code, name, day, close in rows}
    return {code: found.get(code, LastClose(code, "", None, None)) for code in codes}


def value_positions(positions, closes: dict[str, LastClose] | None = None) -> list[ValuedPosition]:
    """`positions`: Position objects (derived from fills) or (code, quantity, cost, opened_on) tuples."""
    items = [(p.code, p.quantity, p.cost, p.opened_on) if isinstance(p, Position) else tuple(p) for p in positions]
    closes = closes if closes is not None else last_closes(code for code, *_ in items)
    result = []
    for code, quantity, cost, opened_on in items:
        close = closes.get(code) or LastClose(code, "", None, None)
        result.append(ValuedPosition(code, close.name, int(quantity), int(cost), opened_on, close.close, close.date))
    return result


def positions_by_account(user) -> list[tuple]:
    """[(account, [ValuedPosition])] for each of the user's accounts: positions derived from the
    auto-trader's fills (manual orders included), marked to the last stored close."""
    accounts = list(own_accounts(user))
    derived = {account.pk: positions_for(account=account) for account in accounts}
    closes = last_closes(code for positions in derived.values() for code in positions)
    return [(account, value_positions(derived[account.pk].values(), closes)) for account in accounts]


def positions_by_config(user) -> list[tuple]:
    """[(strategy config, [ValuedPosition])] for each of the user's strategy configs."""
    from strategies.models import StrategyConfig

    configs = list(StrategyConfig.objects.filter(owner=user).select_related("broker_account").order_by("name", "pk"))
    derived = {config.pk: positions_for(config) for config in configs}
    closes = last_closes(code for positions in derived.values() for code in positions)
    return [(config, value_positions(derived[config.pk].values(), closes)) for config in configs]


# ------------------------------------------------------------------------------------------- kill switch, alerts
@dataclass(frozen=True)
class ControlState:
    account: object | None  # None: the global switch
    halted: bool
    reason: str
    halted_at: dt.datetime | None


def trading_controls_for(user, accounts: list | None = None) -> dict:
    """The global kill switch and one switch per own account (`accounts` when already read)."""
    from .models import TradingControl

    accounts = list(own_accounts(user)) if accounts is None else accounts
    rows = {
        row.scope: row
        for row in TradingControl.objects.filter(
            scope__in=[TradingControl.GLOBAL, *(TradingControl.scope_for(a) for a in accounts)])
    }

    def state(account):
        row = rows.get(TradingControl.scope_for(account))
        if row is None:
            return ControlState(account, False, "", None)
        return ControlState(account, row.halted, row.halt_reason, row.halted_at)

    return {"global": state(None), "accounts": [state(account) for account in accounts]}


def open_alerts_for(user, limit: int = 20) -> list:
    """Open alerts of the user's accounts that need a person; staff also see the site-wide ones (no
    account). Fill notices (kind `filled`) are left out: they are news, already sent by e-mail or
    webhook, and the orders list shows the fills."""
    from django.db.models import Q

    from .models import AlertKind, TradingAlert

    scope = Q(account__owner=user)
    if user.is_staff:
        scope |= Q(account__isnull=True)
    return list(
        TradingAlert.objects.filter(scope, resolved_at__isnull=True).exclude(kind=AlertKind.FILLED)
        .select_related("account").order_by("-created_at", "-pk")[:limit]
    )


def alert_for(user, pk):
    """One alert the user may resolve, or None."""
    from django.db.models import Q

    from .models import TradingAlert

    scope = Q(account__owner=user)
    if user.is_staff:
        scope |= Q(account__isnull=True)
    return TradingAlert.objects.filter(scope, pk=pk).select_related("account").first()


# ------------------------------------------------------------------------------------------- schedule
SCHEDULE_LABELS = {  # the task names of the apps' SCHEDULES, as the dashboard names them
    "orders.weekly_entry": gettext_lazy("Weekly entry (buys)"),
    "orders.exit_checks": gettext_lazy("Exit checks"),
    "orders.reconcile": gettext_lazy("Order reconciliation"),
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

    from . import services

    stamp = config.updated_at.timestamp() if config.updated_at else 0
    key = f"orders:plan:{config.pk}:{day.isoformat()}:{stamp}:{get_language()}"
    cached = cache.get(key)
    if cached is not None:
        return cached
    try:
        result = services.place_weekly_buys(config, day, now, dry_run=True)
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
        "equity_account": equity_account,
        "equity_chart": {
            "labels": [day.isoformat() for day, _ in equity_account.equity],
            "values": [value for _, value in equity_account.equity],
            "label": str(gettext_lazy("Account value (KRW)")),
        } if equity_account else None,
        "now": now.astimezone(SEOUL),
    }
