"""The weekly auto-trading jobs: entry buys, exit checks, reconciliation and the resume sweep.

Promises (see ../shared/guides/reliability.md §0–1):

- One `WeeklyRun` per (config, week, job, trading date), claimed by a conditional UPDATE: a second
  or concurrent call of a job finds it running/complete and does nothing. A run left `running`
  longer than `STALE_AFTER` (a killed worker) is taken over by `resume_interrupted_runs`.
- A run plans its orders ONCE: every intent is committed (status pending, deterministic unique
  client order id) in one transaction with `run.planned = True`, before any request leaves. A
  resumed run never re-plans; it only sends what is still pending.
- Before sending, an order's `send_attempts` is incremented and committed. A pending order with
  attempts > 0 (the worker died around the send) is first looked for in the broker's daily
  orders; only when the broker shows no such order is it sent again, and at most once more
  (`MAX_SEND_ATTEMPTS`) — never for a real-money account (`MAX_SEND_ATTEMPTS_REAL`).
- An unclear outcome (`KisOrderOutcomeUnknown`, or any unexpected error from `place_order`) makes
  the order `unknown`. It is never re-sent: reconciliation matches it to the broker's daily orders
  by (trading date, code, side, quantity, limit price, order time >= intent time), each broker row
  used once; still unseen `UNKNOWN_GRACE` after the send, it is closed as rejected.
- Reconciliation fails closed: when the daily orders cannot be read the run is `blocked` and sends
  nothing.

Missed-slot policy: the entry runs only on the week's first trading day, up to `ENTRY_CUTOFF`
(13:00 Seoul, `settings.ORDERS_ENTRY_CUTOFF` overrides); later that day or on another day it is
`skipped` with the reason, and orders planned but not yet sent are cancelled. A check/exit is
never lost: any position opened before the current week's entry day is sold at the next check
(the backtest's "sold at its next available close" rule), so a missed Friday exit is caught up on
Monday's check. Orders planned for a past trading day are not sent late; the next check re-plans.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import math
from dataclasses import asdict, dataclass, field
from decimal import Decimal

import numpy as np
from django.conf import settings
from django.core.serializers.json import DjangoJSONEncoder
from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone

from accounts.models import BrokerAccount, BrokerMode
from market.brokers import broker_for
from market.gateway import BrokerError, DailyOrder, user_message_for
from market.kis.errors import KisError, KisNetworkError
from market.krx import (
    DEFAULT_COMMISSION_RATE,
    SEOUL,
    commission_for,
    first_trading_day_of_week,
    is_trading_day,
    last_trading_day_of_week,
    previous_trading_day,
    sell_tax_for_trade,
)
from market.models import DailyBar, Instrument
from strategies.library import create_strategy
from strategies.models import StrategyConfig
from strategies.services import load_market_data, universe_for

from .models import (
    Fill,
    Job,
    Order,
    OrderReason,
    OrderSide,
    OrderStatus,
    OrderType,
    WeeklyRun,
    WeeklyRunStatus,
)
from .selectors import open_order_quantities, positions_for

logger = logging.getLogger(__name__)

STALE_AFTER = dt.timedelta(minutes=10)  # a run `running` longer than this was interrupted
UNKNOWN_GRACE = dt.timedelta(minutes=30)  # an unknown order unseen this long after its send was not accepted
MAX_SEND_ATTEMPTS = 2  # the first send, plus one re-send when the broker shows no trace of the first
# Real money: a claimed send with no answer is never sent again, even when the broker shows no trace
# (a missed order is a smaller harm than a doubled one); the order stays unknown for reconciliation.
MAX_SEND_ATTEMPTS_REAL = 1
DEFAULT_ENTRY_CUTOFF = dt.time(13, 0)


class SkipRun(Exception):
    """The job has nothing to do this time (the reason is stored on the run)."""


class BlockRun(Exception):
    """The job must not trade until a person looks (the reason is stored on the run)."""


def _checkpoint(name: str, subject: object) -> None:
    """A no-op hook at each step where a crash matters; tests raise from it to simulate a kill."""


@dataclass
class PlannedOrder:
    code: str
    side: str
    quantity: int
    reason: str
    reference_price: int
    client_order_id: str
    order_type: str = OrderType.MARKET
    price: int = 0
    note: str = ""

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass
class JobResult:
    run: WeeklyRun | None
    planned: list[PlannedOrder] = field(default_factory=list)  # filled on dry runs


# ------------------------------------------------------------------------------------------- helpers
def entry_cutoff() -> dt.time:
    value = getattr(settings, "ORDERS_ENTRY_CUTOFF", None)
    if isinstance(value, dt.time):
        return value
    if value:
        return dt.time.fromisoformat(str(value))
    return DEFAULT_ENTRY_CUTOFF


def commission_rate() -> Decimal:
    return Decimal(str(settings.COMMISSION_RATE)) if settings.COMMISSION_RATE else DEFAULT_COMMISSION_RATE


def _commission(amount: int) -> int:
    return commission_for(amount, settings.COMMISSION_RATE or None)


def get_broker(account: BrokerAccount, now: dt.datetime):
    """The account's gateway; the paper broker runs on the job's clock so a replayed date fills right."""
    if account.mode == BrokerMode.PAPER:
        return broker_for(account, clock=lambda: now)
    return broker_for(account)


def week_start_of(day: dt.date) -> dt.date:
    return day - dt.timedelta(days=day.weekday())


def iso_week_label(day: dt.date) -> str:
    year, week, _ = day.isocalendar()
    return f"{year}-W{week:02d}"


def client_order_id(config_id: int, day: dt.date, code: str, side: str, reason: str) -> str:
    """Deterministic id of an intent: a retry computes the same id and finds the existing row."""
    year, week, _ = day.isocalendar()
    base = f"c{config_id}-{year}W{week:02d}-{code}-{'B' if side == OrderSide.BUY else 'S'}-{reason}"
    return base if reason == OrderReason.ENTRY else f"{base}-{day:%Y%m%d}"


def _jsonable(value) -> dict:
    if hasattr(value, "__dataclass_fields__"):
        value = asdict(value)
    return json.loads(json.dumps(value, cls=DjangoJSONEncoder))


def _seoul(moment: dt.datetime) -> dt.datetime:
    return moment.astimezone(SEOUL)


def _may_send(job: str, trading_date: dt.date, now: dt.datetime) -> tuple[bool, str]:
    local = _seoul(now)
    if local.date() != trading_date:
        return False, f"{trading_date} 거래일이 지나 주문을 보내지 않습니다 (다음 점검에서 다시 판단합니다)."
    if job == Job.ENTRY and local.time() > entry_cutoff():
        return False, f"진입 마감 시각({entry_cutoff():%H:%M})이 지나 이번 주 진입을 건너뜁니다."
    return True, ""


# ------------------------------------------------------------------------------------------- planning
def _plan_entry(config: StrategyConfig, trading_date: dt.date, now: dt.datetime, broker) -> tuple[list, dict]:
    """The backtest's entry rules on bars up to the previous trading day's close.

    Differences from the backtest, forced by trading live: the size uses the previous close (the
    open is unknown before the open) and the config's `cash_per_week` rather than all free cash; a
    candidate without a bar on the entry day cannot be known in advance, so it is bought (a
    suspended stock's order is then refused or expires at the broker).
    """
    signal_day = previous_trading_day(trading_date)
    codes = universe_for(config, signal_day)
    if not codes:
        raise SkipRun("유니버스에 종목이 없습니다.")
    data = load_market_data(codes, signal_day, signal_day)
    last = data.dates[-1].astype(object)
    if last != signal_day:
        raise BlockRun(f"{signal_day} 종가가 저장되지 않았습니다 (마지막 일봉 {last}). 시세를 먼저 갱신하세요.")
    strategy = create_strategy(config.strategy_key, config.params)
    extra = {"open": data.open, "high": data.high, "low": data.low} if strategy.needs_ohlc else {}
    signals, scores = strategy.signals_and_scores(data.close, **extra)
    signal_row = np.asarray(signals)[-1]
    score_row = np.asarray(scores, dtype=float)[-1]
    close_row = data.close[-1]

    held = set(positions_for(config)) | set(open_order_quantities(config, OrderSide.BUY))
    slots = config.max_positions - len(held)
    plan_info = {"signal_day": str(signal_day), "held": sorted(held), "slots": slots}
    candidates = [
        i for i, code in enumerate(data.codes)
        if signal_row[i] == 1 and code not in held and np.isfinite(close_row[i])
    ]
    candidates.sort(key=lambda i: (-(score_row[i] if np.isfinite(score_row[i]) else -math.inf), i))
    chosen = candidates[: max(slots, 0)]
    plan_info["candidates"] = [data.codes[i] for i in candidates]
    if not chosen:
        return [], plan_info
    per = int(config.cash_per_week) // len(chosen)
    rate = float(commission_rate())
    planned = []
    for i in chosen:
        code, price = data.codes[i], int(close_row[i])
        shares = max(int(math.floor(per / (price * (1.0 + rate)))), 0)
        while shares > 0 and shares * price + _commission(shares * price) > per:
            shares -= 1
        if shares == 0:
            continue
        planned.append(PlannedOrder(
            code=code, side=OrderSide.BUY, quantity=shares, reason=OrderReason.ENTRY, reference_price=price,
            client_order_id=client_order_id(config.pk, trading_date, code, OrderSide.BUY, OrderReason.ENTRY),
            note=f"score={score_row[i]:.6g}",
        ))
    plan_info["cash_per_order"] = per
    return planned, plan_info


def _day_prices(codes: list[str], trading_date: dt.date, broker) -> dict[str, int]:
    """The day's close when stored, else the broker's current price (the check runs before the close)."""
    stored = dict(
        DailyBar.objects.filter(instrument__code__in=codes, date=trading_date).values_list("instrument__code", "close")
    )
    return {code: int(stored[code]) if code in stored else int(broker.get_quote(code).price) for code in codes}


def _sell_signals(config: StrategyConfig, codes: list[str], trading_date: dt.date,
                  prices: dict[str, int]) -> dict[str, int]:
    """The strategy's signal of the check day per held code (today's price stands in for a missing bar)."""
    try:
        data = load_market_data(codes, trading_date, trading_date)
    except Exception as error:  # no stored bars at all: only stop-loss/take-profit/week-end apply
        logger.warning("no bars for the sell signals of %s: %s", config.pk, error)
        return {}
    strategy = create_strategy(config.strategy_key, config.params)
    close, open_, high, low = data.close, data.open, data.high, data.low
    if data.dates[-1].astype(object) != trading_date:
        today = np.array([[float(prices.get(code, np.nan)) for code in data.codes]])
        close, open_, high, low = (np.vstack((m, today)) for m in (close, open_, high, low))
    extra = {"open": open_, "high": high, "low": low} if strategy.needs_ohlc else {}
    signals, _ = strategy.signals_and_scores(close, **extra)
    row = np.asarray(signals)[-1]
    return {code: int(row[i]) for i, code in enumerate(data.codes) if np.isfinite(row[i])}


def _plan_exit(config: StrategyConfig, trading_date: dt.date, now: dt.datetime, broker,
               liquidate: bool = False) -> tuple[list, dict]:
    """The backtest's exit rules at the check day's close; everything on the week's last day.
    Never sells more than held by the config's fills minus its open sells, nor more than the
    broker says is sellable."""
    positions = positions_for(config)
    if not positions:
        return [], {"held": []}
    open_sells = open_order_quantities(config, OrderSide.SELL)
    sellable_at_broker = {h.code: h.sellable_quantity for h in broker.get_balance().holdings}
    codes = sorted(positions)
    prices = _day_prices(codes, trading_date, broker)
    signals = _sell_signals(config, codes, trading_date, prices)
    strategy = create_strategy(config.strategy_key, config.params)
    stop_loss, take_profit = float(strategy.stop_loss), float(strategy.take_profit)
    week_entry_day = first_trading_day_of_week(trading_date)
    planned, info = [], {"held": codes, "prices": prices}
    for code in codes:
        position = positions[code]
        price = prices[code]
        change = price / position.average_price - 1 if position.average_price else 0.0
        if change <= stop_loss:
            reason = OrderReason.STOP_LOSS
        elif change >= take_profit:
            reason = OrderReason.TAKE_PROFIT
        elif signals.get(code) == -1:
            reason = OrderReason.SIGNAL
        elif liquidate or (week_entry_day and position.opened_on < week_entry_day):
            reason = OrderReason.WEEK_END
        else:
            continue
        quantity = min(position.quantity - open_sells.get(code, 0), sellable_at_broker.get(code, 0))
        if quantity <= 0:
            info.setdefault("not_sellable", []).append(code)
            continue
        planned.append(PlannedOrder(
            code=code, side=OrderSide.SELL, quantity=quantity, reason=reason, reference_price=price,
            client_order_id=client_order_id(config.pk, trading_date, code, OrderSide.SELL, reason),
            note=f"change={change:.4f}",
        ))
    return planned, info


# ------------------------------------------------------------------------------------------- sending
def _send_order(order: Order, broker, now: dt.datetime, may_send: bool, why_not: str) -> None:
    order.refresh_from_db()
    if order.status != OrderStatus.PENDING:
        return
    if not may_send:
        Order.objects.filter(pk=order.pk, status=OrderStatus.PENDING).update(
            status=OrderStatus.CANCELLED, error_message=why_not)
        return
    max_attempts = MAX_SEND_ATTEMPTS_REAL if order.broker_account.mode == BrokerMode.REAL else MAX_SEND_ATTEMPTS
    if order.send_attempts >= max_attempts:
        Order.objects.filter(pk=order.pk, status=OrderStatus.PENDING).update(
            status=OrderStatus.UNKNOWN,
            error_message="주문을 보낸 뒤 결과를 확인하지 못해 다시 보내지 않았습니다. 주문·체결 내역을 확인하세요.")
        return
    claimed = Order.objects.filter(pk=order.pk, status=OrderStatus.PENDING, send_attempts=order.send_attempts).update(
        send_attempts=F("send_attempts") + 1, sent_at=now)
    if not claimed:  # another process is sending it
        return
    _checkpoint("before_send", order)
    try:
        receipt = broker.place_order(
            order.side, order.code, order.quantity, order.price, order.order_type,
            client_order_id=order.client_order_id,
        )
    except Exception as error:
        definitive = isinstance(error, BrokerError) or (
            isinstance(error, KisError) and not error.order_outcome_unknown
            and not (isinstance(error, KisNetworkError) and error.possibly_sent)
        )
        status = OrderStatus.REJECTED if definitive else OrderStatus.UNKNOWN
        if not definitive:
            logger.warning("order %s outcome unknown: %r", order.client_order_id, error)
        Order.objects.filter(pk=order.pk, status=OrderStatus.PENDING).update(
            status=status, error_message=user_message_for(error),
            raw_response={"error": type(error).__name__, "code": getattr(error, "code", "") or getattr(
                error, "msg_cd", "") or ""},
        )
        return
    _checkpoint("after_send", order)
    Order.objects.filter(pk=order.pk, status__in=(OrderStatus.PENDING, OrderStatus.UNKNOWN)).update(
        status=OrderStatus.SUBMITTED, broker_order_no=receipt.order_no, broker_org_no=receipt.org_no,
        raw_response=_jsonable(receipt), error_message="",
    )


# ------------------------------------------------------------------------------------------- reconciliation
@dataclass
class ReconcileSummary:
    checked: int = 0
    matched_unknown: int = 0
    fills_recorded: int = 0
    unresolved: int = 0
    external_orders: list[str] = field(default_factory=list)  # broker order numbers we did not place


def _matches(order: Order, row: DailyOrder) -> bool:
    if row.original_order_no or row.code != order.code or row.side != order.side or row.quantity != order.quantity:
        return False
    if row.order_date is not None and row.order_date != order.trading_date:
        return False
    if order.order_type == OrderType.LIMIT and row.price != order.price:
        return False
    intent = _seoul(order.intent_at).time().replace(microsecond=0)
    return row.order_time is None or row.order_time >= intent


def _apply_row(order: Order, row: DailyOrder, now: dt.datetime) -> int:
    """Move an order to the state the broker shows; record the new fill increment once."""
    recorded = 0
    with transaction.atomic():
        order = Order.objects.select_for_update().get(pk=order.pk)
        if row.filled_quantity > order.filled_quantity:
            total_amount = row.filled_amount or int(row.average_fill_price * row.filled_quantity)
            delta_quantity = row.filled_quantity - order.filled_quantity
            delta_amount = total_amount - order.filled_amount
            tax = 0
            if order.side == OrderSide.SELL:
                market = Instrument.objects.filter(code=order.code).values_list("market", flat=True).first() or "KOSPI"
                tax = sell_tax_for_trade(delta_amount, market, order.trading_date)
            filled_at = now
            if row.order_time is not None:
                filled_at = dt.datetime.combine(order.trading_date, row.order_time, tzinfo=SEOUL)
            _, created = Fill.objects.get_or_create(
                order=order, cumulative_quantity=row.filled_quantity,
                defaults={"quantity": delta_quantity, "price": round(delta_amount / delta_quantity),
                          "amount": delta_amount, "commission": _commission(delta_amount), "tax": tax,
                          "filled_at": filled_at},
            )
            recorded += int(created)
            order.filled_quantity, order.filled_amount = row.filled_quantity, total_amount
            order.average_fill_price = round(total_amount / row.filled_quantity)
        if order.filled_quantity >= order.quantity:
            order.status = OrderStatus.FILLED
        elif row.rejected_quantity and not order.filled_quantity:
            order.status = OrderStatus.REJECTED
        elif row.cancelled or row.rejected_quantity:
            order.status = OrderStatus.CANCELLED
        elif order.filled_quantity:
            order.status = OrderStatus.PARTIALLY_FILLED
        else:
            order.status = OrderStatus.ACCEPTED
        order.broker_order_no = order.broker_order_no or row.order_no
        order.broker_org_no = order.broker_org_no or row.branch_no
        order.raw_response = _jsonable(row)
        order.save()
    return recorded


def reconcile_orders(account: BrokerAccount, trading_date: dt.date, *, broker=None,
                     now: dt.datetime | None = None) -> ReconcileSummary:
    """Poll the broker's orders of `trading_date` and bring our open orders of that day to their real
    state. Never sends anything. Raises the broker's error when the orders cannot be read."""
    now = now or timezone.now()
    summary = ReconcileSummary()
    ours = list(
        Order.objects.filter(broker_account=account, trading_date=trading_date)
        .filter(Q(status__in=(OrderStatus.SUBMITTED, OrderStatus.ACCEPTED, OrderStatus.PARTIALLY_FILLED,
                              OrderStatus.UNKNOWN)) | Q(status=OrderStatus.PENDING, send_attempts__gt=0))
        .order_by("intent_at", "pk")
    )
    if not ours:
        return summary
    broker = broker or get_broker(account, now)
    rows = broker.get_daily_orders(trading_date, trading_date)
    known = set(
        Order.objects.filter(broker_account=account, trading_date=trading_date).exclude(broker_order_no="")
        .values_list("broker_order_no", flat=True)
    )
    by_no = {row.order_no: row for row in rows}
    free = sorted((row for row in rows if row.order_no not in known and not row.original_order_no),
                  key=lambda row: (row.order_time or dt.time.min, row.order_no))
    for order in ours:
        summary.checked += 1
        if order.broker_order_no:
            row = by_no.get(order.broker_order_no)
        else:
            row = next((candidate for candidate in free if _matches(order, candidate)), None)
            if row is not None:
                free.remove(row)
                summary.matched_unknown += 1
        if row is None:
            if (order.status == OrderStatus.UNKNOWN and order.sent_at and now - order.sent_at >= UNKNOWN_GRACE):
                Order.objects.filter(pk=order.pk, status=OrderStatus.UNKNOWN).update(
                    status=OrderStatus.REJECTED,
                    error_message="브로커 주문내역에 없어 접수되지 않은 주문으로 처리했습니다.")
            else:
                summary.unresolved += 1
            continue
        summary.fills_recorded += _apply_row(order, row, now)
    summary.external_orders = [row.order_no for row in free]
    if summary.external_orders:
        logger.warning("account %s has %d broker orders on %s not placed by the auto-trader",
                       account.pk, len(free), trading_date)
    return summary


def reconcile_open_orders(now: dt.datetime | None = None) -> dict[int, ReconcileSummary]:
    """Reconcile every account with open orders, for each trading date that has some."""
    now = now or timezone.now()
    results: dict[int, ReconcileSummary] = {}
    pairs = (
        Order.objects.filter(Q(status__in=(OrderStatus.SUBMITTED, OrderStatus.ACCEPTED,
                                           OrderStatus.PARTIALLY_FILLED, OrderStatus.UNKNOWN))
                             | Q(status=OrderStatus.PENDING, send_attempts__gt=0))
        .values_list("broker_account_id", "trading_date").distinct()
    )
    for account_id, trading_date in sorted(set(pairs)):
        account = BrokerAccount.objects.get(pk=account_id)
        try:
            results[account_id] = reconcile_orders(account, trading_date, now=now)
        except (BrokerError, KisError) as error:
            logger.warning("reconciliation of account %s failed: %s", account_id, user_message_for(error))
    return results


# ------------------------------------------------------------------------------------------- jobs
def _finish(run: WeeklyRun, status: str, reason: str, now: dt.datetime) -> WeeklyRun:
    WeeklyRun.objects.filter(pk=run.pk).update(status=status, reason=reason, finished_at=now)
    run.refresh_from_db()
    return run


def _run_job(config: StrategyConfig, job: str, trading_date: dt.date, now: dt.datetime, *,
             dry_run: bool = False, takeover: bool = False) -> JobResult:
    planner = _plan_entry if job == Job.ENTRY else _plan_exit
    options = {"liquidate": True} if job == Job.EXIT else {}
    account = config.broker_account
    if dry_run:
        if account is None:
            return JobResult(run=None)
        planned, _ = planner(config, trading_date, now, get_broker(account, now), **options)
        return JobResult(run=None, planned=planned)

    run, _ = WeeklyRun.objects.get_or_create(
        config=config, week_start=week_start_of(trading_date), job=job, trading_date=trading_date,
        defaults={"iso_week": iso_week_label(trading_date)},
    )
    claimable = Q(status__in=(WeeklyRunStatus.PENDING, WeeklyRunStatus.FAILED, WeeklyRunStatus.BLOCKED))
    if takeover:
        claimable |= Q(status=WeeklyRunStatus.RUNNING, started_at__lte=now - STALE_AFTER)
    claimed = WeeklyRun.objects.filter(claimable, pk=run.pk).update(
        status=WeeklyRunStatus.RUNNING, started_at=now, attempts=F("attempts") + 1, reason="", finished_at=None)
    if not claimed:  # complete, skipped, or running in another process
        run.refresh_from_db()
        return JobResult(run=run)
    run.refresh_from_db()

    if account is None:
        return JobResult(_finish(run, WeeklyRunStatus.SKIPPED, "브로커 계좌가 지정되지 않았습니다.", now))
    if account.mode != BrokerMode.PAPER and _seoul(now).date() != _seoul(timezone.now()).date():
        return JobResult(_finish(run, WeeklyRunStatus.BLOCKED,
                                 "모의투자/실전 계좌는 오늘 날짜로만 주문할 수 있습니다.", now))
    may_send, why_not = _may_send(job, trading_date, now)
    broker = get_broker(account, now)
    try:
        reconcile_orders(account, trading_date, broker=broker, now=now)
    except (BrokerError, KisError) as error:
        return JobResult(_finish(run, WeeklyRunStatus.BLOCKED,
                                 f"주문 내역을 확인하지 못해 주문을 보내지 않았습니다: {user_message_for(error)}", now))
    try:
        if not run.planned:
            if not may_send:
                raise SkipRun(why_not)
            planned, info = planner(config, trading_date, now, broker, **options)
            with transaction.atomic():
                for item in planned:
                    Order.objects.get_or_create(
                        client_order_id=item.client_order_id,
                        defaults={
                            "run": run, "config": config, "broker_account": account, "trading_date": trading_date,
                            "code": item.code, "side": item.side, "order_type": item.order_type,
                            "quantity": item.quantity, "price": item.price, "reference_price": item.reference_price,
                            "reason": item.reason, "intent_at": now,
                        },
                    )
                info["orders"] = [item.as_dict() for item in planned]
                WeeklyRun.objects.filter(pk=run.pk).update(planned=True, plan=_jsonable(info))
            _checkpoint("intents_committed", run)
        for order in run.orders.filter(status=OrderStatus.PENDING).order_by("pk"):
            _send_order(order, broker, now, may_send, why_not)
    except SkipRun as skip:
        return JobResult(_finish(run, WeeklyRunStatus.SKIPPED, str(skip), now))
    except BlockRun as block:
        return JobResult(_finish(run, WeeklyRunStatus.BLOCKED, str(block), now))
    except Exception as error:
        logger.exception("weekly %s job of config %s failed", job, config.pk)
        return JobResult(_finish(run, WeeklyRunStatus.FAILED, user_message_for(error), now))
    reason = "" if may_send else why_not
    return JobResult(_finish(run, WeeklyRunStatus.COMPLETE, reason, now))


def place_weekly_buys(config: StrategyConfig, trading_date: dt.date, now: dt.datetime, *,
                      dry_run: bool = False) -> JobResult | None:
    """The entry job; does nothing (None) unless `trading_date` is its week's first trading day."""
    if not is_trading_day(trading_date) or first_trading_day_of_week(trading_date) != trading_date:
        return None
    return _run_job(config, Job.ENTRY, trading_date, now, dry_run=dry_run)


def run_exit_checks(config: StrategyConfig, trading_date: dt.date, now: dt.datetime, *,
                    dry_run: bool = False, liquidate: bool | None = None) -> JobResult | None:
    """The close-window job: stop-loss/take-profit/sell signal; on the week's last trading day
    (or with `liquidate=True`) everything the config holds is sold."""
    if not is_trading_day(trading_date):
        return None
    if liquidate is None:
        liquidate = last_trading_day_of_week(trading_date) == trading_date
    return _run_job(config, Job.EXIT if liquidate else Job.CHECK, trading_date, now, dry_run=dry_run)


def resume_interrupted_runs(now: dt.datetime | None = None) -> list[WeeklyRun]:
    """Take over runs left `running` longer than STALE_AFTER (a killed worker): reconcile first, then
    send what is still pending (or cancel it when its slot has passed), then complete the run."""
    now = now or timezone.now()
    resumed = []
    stale = WeeklyRun.objects.filter(status=WeeklyRunStatus.RUNNING, started_at__lte=now - STALE_AFTER)
    for run in stale.select_related("config").order_by("pk"):
        result = _run_job(run.config, run.job, run.trading_date, now, takeover=True)
        if result.run is not None:
            resumed.append(result.run)
    return resumed


def active_configs():
    return StrategyConfig.objects.filter(is_active=True, broker_account__isnull=False).order_by("pk")
