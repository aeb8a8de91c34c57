"""Read-side of the orders app for the pages and the API: the user's orders, fills, trade logs, positions
valued at the last close, the kill switch state and the open alerts (the dashboard: `orders.dashboard`)."""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass

from django.db.models import Count, Max, Min

from .models import Fill, Job, JobDispatch, Order
from .positions import Position, positions_for

logger = logging.getLogger(__name__)


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


def drifts_for(user, *, config: int | None = None, week: dt.date | None = None, alert: bool | None = None):
    """The live-vs-backtest comparisons of the user's strategy configs, newest week first."""
    from .models import WeeklyDrift

    queryset = WeeklyDrift.objects.filter(config__owner=user).select_related("config")
    if config is not None:
        queryset = queryset.filter(config_id=config)
    if week is not None:
        queryset = queryset.filter(week_start=week - dt.timedelta(days=week.weekday()))
    if alert is not None:
        queryset = queryset.filter(alert=alert)
    return queryset.order_by("-week_start", "config__name", "config_id")


def latest_drifts_for(user) -> list:
    """The latest compared week of each of the user's active configs with a broker account."""
    latest = {}
    for drift in drifts_for(user).filter(config__is_active=True, config__broker_account__isnull=False):
        latest.setdefault(drift.config_id, drift)
    return sorted(latest.values(), key=lambda d: (d.config.name, d.config_id))


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


def latest_fanout(job: str = Job.ENTRY, user=None) -> dict | None:
    """The last dispatch of `job` and, per broker account (the `user`'s own unless staff or None),
    when its orders of that day left (first and last send), and how long the whole fan-out took
    (dispatch → the last order sent, over every account)."""
    dispatch_row = JobDispatch.objects.filter(job=job).order_by("-dispatched_at", "-pk").first()
    if dispatch_row is None:
        return None
    rows = list(
        Order.objects.filter(run__job=job, trading_date=dispatch_row.trading_date, sent_at__isnull=False)
        .values("broker_account_id", "broker_account__name")
        .annotate(first_sent=Min("sent_at"), last_sent=Max("sent_at"), orders=Count("pk"))
        .order_by("last_sent")
    )
    last = max((row["last_sent"] for row in rows), default=None)
    if user is not None and not user.is_staff:
        mine = set(user.broker_accounts.values_list("pk", flat=True))
        rows = [row for row in rows if row["broker_account_id"] in mine]
    return {
        "dispatch": dispatch_row,
        "accounts": [{**row, "after_seconds": (row["last_sent"] - dispatch_row.dispatched_at).total_seconds()}
                     for row in rows],
        "seconds": None if last is None else (last - dispatch_row.dispatched_at).total_seconds(),
        "orders": sum(row["orders"] for row in rows),
    }
