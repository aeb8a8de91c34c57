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
import time
from dataclasses import asdict, dataclass, field, replace
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
from market.kis.errors import KisError, KisNetworkError, KisRateLimited, KisTokenIssueThrottled
from market.kis.models import normalize_branch_no, normalize_order_no
from market.krx import (
    DEFAULT_COMMISSION_RATE,
    SEOUL,
    commission_for,
    first_trading_day_of_week,
    is_trading_day,
    last_trading_day_of_week,
    previous_trading_day,
    sell_tax_for_trade,
    session_open_close,
    week_trading_days,
)
from market.models import DailyBar, Instrument
from strategies.library import create_strategy
from strategies.models import StrategyConfig
from strategies.services import load_market_data, universe_for

from . import broker_matching, notifications, risk
from .market_inputs import NO_BAR, EntryOpens, refresh_day_bars
from .market_inputs import orderable_cash as broker_orderable_cash
from .models import (
    OPEN_STATUSES,
    AlertKind,
    Fill,
    Job,
    Order,
    OrderReason,
    OrderSide,
    OrderStatus,
    OrderType,
    TradeLog,
    TradingAlert,
    TradingControl,
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


def _before_open(now: dt.datetime, trading_date: dt.date) -> bool:
    """`now` is on `trading_date` (Seoul) before its regular session opens (10:00 on late-open days)."""
    local = _seoul(now)
    return local.date() == trading_date and is_trading_day(trading_date) and local < session_open_close(trading_date)[0]


def _may_send(job: str, trading_date: dt.date, now: dt.datetime) -> tuple[bool, str]:
    local = _seoul(now)
    if local.date() != trading_date:
        return False, f"{trading_date} 거래일이 지나 주문을 보내지 않습니다 (다음 점검에서 다시 판단합니다)."
    if job == Job.ENTRY and local.time() > entry_cutoff():
        return False, f"진입 마감 시각({entry_cutoff():%H:%M})이 지나 이번 주 진입을 건너뜁니다."
    return True, ""


# ------------------------------------------------------------------------------------------- planning
def _plan_entry(config: StrategyConfig, trading_date: dt.date, now: dt.datetime, broker) -> tuple[list, dict]:
    """The backtest's entry rules (strategies/backtest/engine.py) at the entry slot, on bars up to
    the previous trading day's close (no look-ahead).

    Candidates: signal +1 on the previous trading day's close, a bar that day, not held; a code
    known to have no bar on the entry day is passed over (`market_inputs.EntryOpens`: the stored
    bar for the paper broker, the quote for KIS). Ranked by score (higher first, NaN last), ties by
    code; at most max_positions minus the positions held and buys still open. Cash:
    min(cash_per_week, the broker's orderable cash) split equally among the chosen; shares =
    floor(cash_i / (price × (1 + commission))), lowered while shares × price + commission exceeds
    cash_i, where price = the entry day's open when it is known at the slot (the paper broker fills
    the morning market order at exactly that open), else the previous close.
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
    plan_info["candidates"] = [data.codes[i] for i in candidates]
    opens = EntryOpens([data.codes[i] for i in candidates], trading_date, now, broker)
    chosen, no_bar = [], []  # (column, sizing price, basis)
    for i in candidates:
        if len(chosen) >= slots:
            break
        known, opening = opens.lookup(data.codes[i])
        if known == NO_BAR:
            no_bar.append(data.codes[i])
        elif opening:
            chosen.append((i, opening, "open"))
        else:
            chosen.append((i, int(close_row[i]), "previous_close"))
    if no_bar:
        plan_info["no_bar_on_entry_day"] = no_bar
    if not chosen:
        return [], plan_info
    cash = int(config.cash_per_week)
    orderable = broker_orderable_cash(broker, data.codes[chosen[0][0]], chosen[0][1])
    plan_info["cash_per_week"], plan_info["orderable_cash"] = cash, orderable
    if orderable is not None:
        cash = min(cash, orderable)
    per = max(cash, 0) // len(chosen)
    rate = float(commission_rate())
    planned = []
    for i, price, basis in chosen:
        code = data.codes[i]
        shares = max(int(math.floor(per / (price * (1.0 + rate)))), 0)
        while shares > 0 and shares * price + _commission(shares * price) > per:
            shares -= 1
        if shares == 0:
            continue
        planned.append(PlannedOrder(
            code=code, side=OrderSide.BUY, quantity=shares, reason=OrderReason.ENTRY, reference_price=price,
            client_order_id=client_order_id(config.pk, trading_date, code, OrderSide.BUY, OrderReason.ENTRY),
            note=f"score={score_row[i]:.6g} price={basis}",
        ))
    plan_info["cash_per_order"] = per
    return planned, plan_info


def _day_prices(codes: list[str], trading_date: dt.date, broker) -> dict[str, int]:
    """The day's close per code when stored, else the broker's current price (the check runs before
    the close). A code is left out — held, and sold at its next available close as in the backtest —
    when it has no bar on a day whose bars are stored (suspended), when its quote says trading is
    halted, or when the quote cannot be read."""
    stored = dict(
        DailyBar.objects.filter(instrument__code__in=codes, date=trading_date).values_list("instrument__code", "close")
    )
    day_stored = bool(stored) or DailyBar.objects.filter(date=trading_date).exists()
    prices = {}
    for code in codes:
        if code in stored:
            prices[code] = int(stored[code])
            continue
        if day_stored:
            continue
        try:
            quote = broker.get_quote(code)
        except (BrokerError, KisError) as error:
            logger.warning("no price for %s on %s: %s", code, trading_date, user_message_for(error))
            continue
        if not quote.temporarily_halted and quote.price > 0:
            prices[code] = int(quote.price)
    return prices


def _sell_signals(config: StrategyConfig, codes: list[str], trading_date: dt.date,
                  prices: dict[str, int], day_bars: dict | None = None) -> dict[str, int]:
    """The strategy's signal of the check day per held code, as the backtest computes it: a
    per-symbol strategy on each held code's own bars, a cross-sectional one on the config's universe
    plus the held codes. When the day's bars are not stored, the day's row is the bar fetched before
    the check (`day_bars`), else today's price for all four prices of the held codes."""
    strategy = create_strategy(config.strategy_key, config.params)
    wanted = set(codes)
    if getattr(strategy, "cross_sectional", False):
        wanted |= set(universe_for(config, trading_date))
    known = sorted(Instrument.objects.filter(code__in=wanted).values_list("code", flat=True))
    try:
        data = load_market_data(known, trading_date, trading_date)
    except Exception as error:  # no stored bars at all: only stop-loss/take-profit/week-end apply
        logger.warning("no bars for the sell signals of %s: %s", config.pk, error)
        return {}
    close, open_, high, low = data.close, data.open, data.high, data.low
    if data.dates[-1].astype(object) != trading_date:
        day_bars = day_bars or {}
        row = []
        for code in data.codes:
            bar = day_bars.get(code)
            if bar is not None:
                row.append((bar.open, bar.high, bar.low, bar.close))
            else:
                price = float(prices[code]) if code in prices and code in codes else np.nan
                row.append((price, price, price, price))
        today = np.array(row, dtype=float).T[:, None, :]  # (open, high, low, close) × 1 day × codes
        open_, high, low, close = (np.vstack((m, t)) for m, t in zip((open_, high, low, close), today, strict=True))
    extra = {"open": open_, "high": high, "low": low} if strategy.needs_ohlc else {}
    signals, _ = strategy.signals_and_scores(close, **extra)
    row = np.asarray(signals)[-1]
    return {code: int(row[i]) for i, code in enumerate(data.codes) if code in codes and np.isfinite(row[i])}


def _plan_exit(config: StrategyConfig, trading_date: dt.date, now: dt.datetime, broker,
               liquidate: bool = False) -> tuple[list, dict]:
    """The backtest's exit rules at the check day's close; everything on the week's last day.
    The day's bars of the held codes are refreshed first (`market_inputs.refresh_day_bars`; a
    failure leaves the broker's current price). A code without a price that day is held (sold at
    its next available close). Never sells more than held by the config's fills minus its open
    sells, nor more than the broker says is sellable."""
    positions = positions_for(config)
    if not positions:
        return [], {"held": []}
    codes = sorted(positions)
    refresh = refresh_day_bars(config.broker_account, codes, trading_date, now, broker)
    open_sells = open_order_quantities(config, OrderSide.SELL)
    sellable_at_broker = {h.code: h.sellable_quantity for h in broker.get_balance().holdings}
    fetched = {code: int(bar.close) for code, bar in refresh.bars.items()}
    rest = [code for code in codes if code not in fetched]
    prices = {**(_day_prices(rest, trading_date, broker) if rest else {}), **fetched}
    signals = _sell_signals(config, codes, trading_date, prices, refresh.bars)
    strategy = create_strategy(config.strategy_key, config.params)
    stop_loss, take_profit = float(strategy.stop_loss), float(strategy.take_profit)
    week_entry_day = first_trading_day_of_week(trading_date)
    planned, info = [], {"held": codes, "prices": prices, "bars": refresh.as_dict()}
    for code in codes:
        position = positions[code]
        if code not in prices:
            info.setdefault("no_price", []).append(code)
            continue
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
def _send_order(order: Order, broker, now: dt.datetime, may_send: bool, why_not: str, *,
                patient: bool = False) -> None:
    """Send one pending order at most once, after the pre-trade risk checks (`orders.risk`).

    Outcomes: cancelled (slot passed), unknown (a claimed send without an answer), rejected by a risk
    check (nothing sent; `raw_response={"risk": <check>}` and a RISK_BLOCKED alert), left pending
    with the reason in `error_message` when it could not be sent for a reason that passes (a risk
    input such as the quote or the orderable cash could not be read; the broker surely did not get
    it: rate limit, token limit, connection refused, the request's deadline; with `patient`, the
    weekly jobs' flag, also the market not open yet) — the run sends it when it is tried again —,
    rejected/unknown by the broker (with an alert), or submitted. The send's end is stamped
    (`answered_at`) so reconciliation knows when the request was in flight."""
    order.refresh_from_db()
    if order.status != OrderStatus.PENDING:
        return
    if not may_send:
        Order.objects.filter(pk=order.pk, status=OrderStatus.PENDING).update(
            status=OrderStatus.CANCELLED, error_message=why_not)
        return
    max_attempts = MAX_SEND_ATTEMPTS_REAL if order.broker_account.mode == BrokerMode.REAL else MAX_SEND_ATTEMPTS
    if order.send_attempts >= max_attempts:
        message = "주문을 보낸 뒤 결과를 확인하지 못해 다시 보내지 않았습니다. 주문·체결 내역을 확인하세요."
        if Order.objects.filter(pk=order.pk, status=OrderStatus.PENDING).update(
                status=OrderStatus.UNKNOWN, error_message=message):
            _order_alert(order, AlertKind.ORDER_UNKNOWN, message)
        return
    if _refused_by_risk_checks(order, broker, now, patient=patient):
        return
    claimed = Order.objects.filter(pk=order.pk, status=OrderStatus.PENDING, send_attempts=order.send_attempts).update(
        send_attempts=F("send_attempts") + 1, sent_at=now, answered_at=None)
    if not claimed:  # another process is sending it
        return
    started = time.monotonic()
    _checkpoint("before_send", order)
    try:
        receipt = broker.place_order(
            order.side, order.code, order.quantity, order.price, order.order_type,
            client_order_id=order.client_order_id,
        )
    except Exception as error:
        answered_at = now + dt.timedelta(seconds=time.monotonic() - started)
        message = user_message_for(error)
        if _surely_not_sent_and_passing(error):
            # Give the claim back: the broker never got this request, so the next try is the first send.
            logger.warning("order %s not sent (%s); it is sent when the job runs again", order.client_order_id, error)
            Order.objects.filter(pk=order.pk, status=OrderStatus.PENDING).update(
                send_attempts=F("send_attempts") - 1, sent_at=None,
                error_message=f"주문이 증권사에 전달되지 않았습니다: {message}")
            return
        definitive = isinstance(error, BrokerError) or (
            isinstance(error, KisError) and not error.order_outcome_unknown
            and not (isinstance(error, KisNetworkError) and error.possibly_sent)
        )
        status = OrderStatus.REJECTED if definitive else OrderStatus.UNKNOWN
        if not definitive:
            logger.warning("order %s outcome unknown: %r", order.client_order_id, error)
        if Order.objects.filter(pk=order.pk, status=OrderStatus.PENDING).update(
            status=status, error_message=message, answered_at=answered_at,
            raw_response={"error": type(error).__name__, "code": getattr(error, "code", "") or getattr(
                error, "msg_cd", "") or ""},
        ):
            _order_alert(order, AlertKind.ORDER_REJECTED if definitive else AlertKind.ORDER_UNKNOWN, message)
        return
    _checkpoint("after_send", order)
    Order.objects.filter(pk=order.pk, status__in=(OrderStatus.PENDING, OrderStatus.UNKNOWN)).update(
        status=OrderStatus.SUBMITTED, broker_order_no=normalize_order_no(receipt.order_no),
        broker_org_no=normalize_branch_no(receipt.org_no), raw_response=_jsonable(receipt), error_message="",
        answered_at=now + dt.timedelta(seconds=time.monotonic() - started),
    )
    _close_order_alerts(order, f"자동 해소: 증권사가 주문번호 {normalize_order_no(receipt.order_no)}로 접수했습니다.")


def _surely_not_sent_and_passing(error: Exception) -> bool:
    """The order request never reached the broker, for a reason that passes: the per-key rate limit
    after the client's retries, the token limit, a connection that was never made, or the caller's
    deadline reached before the request left. Such an order may be sent later (it was never sent)."""
    if isinstance(error, KisNetworkError):
        return not error.possibly_sent
    if isinstance(error, (KisRateLimited, KisTokenIssueThrottled)):
        return True
    return bool(getattr(error, "order_not_sent", False))  # KisDeadlineExceeded before the request left


def _refused_by_risk_checks(order: Order, broker, now: dt.datetime, *, patient: bool = False) -> bool:
    """Run `orders.risk.evaluate` on a pending order. True when the order must not be sent now:
    refused (now rejected, with a RISK_BLOCKED alert) or a risk input could not be read (left
    pending with the reason). With `patient`, an order of today before the day's open (a late open
    such as the year's first session) is left pending too: the job sends it after the open.
    Reads the broker only when a check needs it."""
    account = order.broker_account
    facts = risk.OrderFacts.of(order)

    def base_price() -> int | None:
        stored = risk.stored_base_price(order.code, order.trading_date)
        if stored:
            return stored
        try:
            return int(broker.get_quote(order.code).base_price or 0) or None
        except (BrokerError, KisError) as error:
            raise _RiskInputUnavailable(f"{order.code} 기준가를 읽지 못했습니다: {user_message_for(error)}") from error

    def orderable_cash() -> int:
        try:
            buyable = broker.get_buyable(order.code, risk.estimated_price(facts, None) or None)
        except (BrokerError, KisError) as error:
            raise _RiskInputUnavailable(f"주문가능금액을 읽지 못했습니다: {user_message_for(error)}") from error
        return int(buyable.orderable_cash)

    try:
        denial = risk.evaluate(
            facts, now=now, halt_reason=halt_reason_for(account), limits=risk.limits_for(account),
            base_price=base_price, realised_pnl_today=lambda: risk.realised_pnl(account, _seoul(now).date()),
            orderable_cash=orderable_cash, commission=_commission,
        )
    except _RiskInputUnavailable as error:
        message = f"위험 점검에 필요한 정보를 읽지 못해 주문을 보내지 않았습니다 (다시 실행하면 보냅니다): {error}"
        logger.warning("order %s not sent: %s", order.client_order_id, error)
        Order.objects.filter(pk=order.pk, status=OrderStatus.PENDING).update(error_message=message)
        return True
    if denial is None:
        return False
    if patient and denial.check == risk.MARKET_HOURS and _before_open(now, order.trading_date):
        Order.objects.filter(pk=order.pk, status=OrderStatus.PENDING).update(error_message=denial.message)
        return True
    logger.warning("order %s refused by the %s check: %s", order.client_order_id, denial.check, denial.message)
    # Only the order as evaluated: one another process has claimed (and is sending) meanwhile is left alone.
    if Order.objects.filter(pk=order.pk, status=OrderStatus.PENDING, send_attempts=order.send_attempts).update(
            status=OrderStatus.REJECTED, error_message=denial.message, raw_response={"risk": denial.check}):
        _order_alert(order, AlertKind.RISK_BLOCKED, denial.message, details={"risk": denial.check})
    return True


class _RiskInputUnavailable(Exception):
    """A broker read a risk check needs failed: the order is not sent this time."""


# ------------------------------------------------------------------------------------------- reconciliation
@dataclass
class ReconcileSummary:
    checked: int = 0
    matched_unknown: int = 0
    fills_recorded: int = 0
    unresolved: int = 0
    expired: int = 0  # day orders whose unfilled remainder lapsed at the close
    external_orders: list[str] = field(default_factory=list)  # broker order numbers we did not place
    positions: PositionReport | None = None  # the balance comparison, when it ran
    error: str = ""  # the broker could not be read (reconcile_open_orders records it instead of raising)


# An order whose process died inside the request has no `answered_at`: its request may have lasted
# this long (the client's connect + read time-outs, a token issuance first, with room to spare).
LONGEST_ORDER_REQUEST = dt.timedelta(seconds=90)
# Day orders (ORD_DVSN 00/01) end with the regular session; the broker's book is read this long after
# the close before an unfilled remainder is settled as lapsed (the closing auction's fills land first).
SETTLE_AFTER_CLOSE = dt.timedelta(minutes=10)


def clock_tolerance() -> dt.timedelta:
    return dt.timedelta(seconds=max(int(getattr(settings, "ORDERS_BROKER_CLOCK_TOLERANCE_SECONDS", 120)), 0))


def _intent(order: Order) -> broker_matching.Intent:
    start, end = broker_matching.in_flight_window(
        order.sent_at or order.intent_at, order.answered_at, tolerance=clock_tolerance(),
        longest_request=LONGEST_ORDER_REQUEST)
    return broker_matching.Intent(
        key=order.pk, trading_date=order.trading_date, code=order.code, side=order.side, quantity=order.quantity,
        order_type=order.order_type, price=order.price, window_start=start, window_end=end)


def _status_message(order: Order, row: DailyOrder) -> str:
    """The order's message follows its status: a found order loses the "answer lost" text."""
    if order.status == OrderStatus.REJECTED:
        return f"브로커가 주문을 거부했습니다 (거부 수량 {row.rejected_quantity or order.quantity:,}주)."
    if order.status == OrderStatus.CANCELLED:
        unfilled = order.quantity - order.filled_quantity
        done = f" (체결 {order.filled_quantity:,}주)" if order.filled_quantity else ""
        return f"증권사에서 미체결 {unfilled:,}주가 취소되었습니다{done}."
    return ""


def _apply_row(order: Order, row: DailyOrder, now: dt.datetime) -> int:
    """Move an order to the state the broker shows; record the new fill increment once, with its
    TradeLog row and a FILLED alert in the same transaction (so neither can be missed or doubled).
    An order found after its answer was lost gets the broker's number and its alert is closed."""
    recorded = 0
    with transaction.atomic():
        order = Order.objects.select_for_update().get(pk=order.pk)
        previous_status = order.status
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
            fill, created = Fill.objects.get_or_create(
                order=order, cumulative_quantity=row.filled_quantity,
                defaults={"quantity": delta_quantity, "price": round(delta_amount / delta_quantity),
                          "amount": delta_amount, "commission": _commission(delta_amount), "tax": tax,
                          "filled_at": filled_at},
            )
            recorded += int(created)
            _record_trade(order, fill, announce=created)
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
        found = not order.broker_order_no
        order.broker_order_no = normalize_order_no(order.broker_order_no or row.order_no)
        order.broker_org_no = normalize_branch_no(order.broker_org_no or row.branch_no)
        order.raw_response = _jsonable(row)
        if order.status != previous_status or previous_status == OrderStatus.UNKNOWN:
            order.error_message = _status_message(order, row)
        order.save()
        if order.status == OrderStatus.REJECTED and previous_status != OrderStatus.REJECTED:
            _order_alert(order, AlertKind.ORDER_REJECTED, order.error_message)
        if found and previous_status in (OrderStatus.UNKNOWN, OrderStatus.PENDING):
            _close_order_alerts(order, f"자동 해소: 증권사 주문내역에서 주문번호 {order.broker_order_no}로 찾았습니다.")
    return recorded


def _close_order_alerts(order: Order, note: str, *, user=None) -> None:
    """Resolve the open "outcome unknown" alert of an order once its fate is known."""
    for alert in TradingAlert.objects.filter(account_id=order.broker_account_id, kind=AlertKind.ORDER_UNKNOWN,
                                             key=f"order-{order.pk}", resolved_at__isnull=True):
        resolve_alert(alert, user=user, note=note)


def _settle_lapsed(order: Order, row: DailyOrder | None, now: dt.datetime) -> bool:
    """After the trading date's close, a day order the broker still shows open has lapsed: its
    unfilled remainder is settled as cancelled (the fills stay). True when it was settled."""
    if order.status not in (OrderStatus.SUBMITTED, OrderStatus.ACCEPTED, OrderStatus.PARTIALLY_FILLED):
        return False
    if row is None or row.cancelled or not is_trading_day(order.trading_date):
        return False
    if now < session_open_close(order.trading_date)[1] + SETTLE_AFTER_CLOSE:
        return False
    unfilled = order.quantity - order.filled_quantity
    done = f" (체결 {order.filled_quantity:,}주)" if order.filled_quantity else ""
    return bool(Order.objects.filter(pk=order.pk, status=order.status).update(
        status=OrderStatus.CANCELLED,
        error_message=f"{order.trading_date} 장 마감으로 미체결 {unfilled:,}주가 소멸했습니다{done}."))


def _unresolved_order(order: Order, match: broker_matching.Match | None, now: dt.datetime) -> bool:
    """An order the broker's rows do not (uniquely) show. Returns True when it is still open.

    - Rows that look like it exist (the same attributes that day): never "not received". When they
      fit its in-flight time but not one-to-one, or only at other times (the owner's HTS/mobile
      orders look exactly like ours), the order stays `unknown` with an alert listing them, and the
      owner decides on the 주문 page (`adopt_broker_order` / `declare_order_not_received`). A
      claimed send (pending, attempts > 0) becomes `unknown` then, so it is never sent again.
    - No such row: an `unknown` order unseen for `UNKNOWN_GRACE` after its send was not received."""
    candidates = match.candidates if match is not None else []
    if candidates and order.status in (OrderStatus.UNKNOWN, OrderStatus.PENDING):
        listed = [broker_matching.describe_row(row, order.trading_date) for row in candidates]
        if match.in_window:
            why = "주문을 보낸 시각에 맞는 주문이 하나로 정해지지 않아"
        else:
            why = "주문을 보낸 시각과 맞지 않아(다른 프로그램의 주문일 수 있어)"
        message = (
            f"증권사 주문내역에 이 주문과 같은 주문이 {len(candidates):,}건 있지만 {why} 자동으로 연결하지 "
            f"않았습니다. 주문 페이지에서 맞는 주문을 고르거나 접수되지 않았다고 표시하세요: "
            + ", ".join(f"{item['order_no']} ({item['time'] or '시각 없음'})" for item in listed)
        )
        Order.objects.filter(pk=order.pk, status__in=(OrderStatus.UNKNOWN, OrderStatus.PENDING)).update(
            status=OrderStatus.UNKNOWN, error_message=message, sent_at=order.sent_at or now)
        _order_alert(order, AlertKind.ORDER_UNKNOWN, message, details={"candidates": listed}, update=True)
        return True
    if order.status == OrderStatus.UNKNOWN and order.sent_at and now - order.sent_at >= UNKNOWN_GRACE:
        message = "브로커 주문내역에 없어 접수되지 않은 주문으로 처리했습니다."
        if Order.objects.filter(pk=order.pk, status=OrderStatus.UNKNOWN).update(
                status=OrderStatus.REJECTED, error_message=message):
            _close_order_alerts(order, "자동 해소: 증권사 주문내역에 없어 접수되지 않은 주문으로 처리했습니다.")
            _order_alert(order, AlertKind.ORDER_REJECTED, message)
        return False
    return True


def reconcile_orders(account: BrokerAccount, trading_date: dt.date, *, broker=None,
                     now: dt.datetime | None = None, positions: bool = True) -> ReconcileSummary:
    """Poll the broker's orders of `trading_date` and bring our open orders of that day to their real
    state. Never sends anything. Raises the broker's error when the orders cannot be read (after
    opening a RECONCILE_FAILED alert). Orders with a broker number are found by it (normalised:
    `market.kis.models.normalize_order_no`); orders without one by `broker_matching` (attributes and
    the time the request was in flight, with the clock tolerance, one-to-one). After the close a
    day order's unfilled remainder is settled. With `positions`, the derived positions are then
    compared with the broker's balance (`check_positions`; a balance failure is alerted and
    logged, not raised)."""
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
    try:
        rows = broker.get_daily_orders(trading_date, trading_date)
    except (BrokerError, KisError) as error:
        raise_alert(account, AlertKind.RECONCILE_FAILED,
                    f"{trading_date} 주문·체결 내역을 읽지 못했습니다: {user_message_for(error)}",
                    key=f"orders-{trading_date}")
        raise
    rows = [replace(row, order_no=normalize_order_no(row.order_no)) for row in rows]
    known = {
        normalize_order_no(number) for number in
        Order.objects.filter(broker_account=account, trading_date=trading_date).exclude(broker_order_no="")
        .values_list("broker_order_no", flat=True)
    }
    by_no = {row.order_no: row for row in rows}
    free = [row for row in rows if row.order_no not in known and not row.original_order_no.strip("0")]
    # A send claimed moments ago by a live process (pending, no answer yet) is that process's to record:
    # judged here, it could be paired with a look-alike broker order or marked unknown mid-request.
    in_flight = {order.pk for order in ours if order.status == OrderStatus.PENDING and order.answered_at is None
                 and order.sent_at is not None and now - order.sent_at < LONGEST_ORDER_REQUEST}
    ours = [order for order in ours if order.pk not in in_flight]
    summary.unresolved += len(in_flight)
    matches = broker_matching.match_orders([_intent(order) for order in ours if not order.broker_order_no], free)
    for order in ours:
        summary.checked += 1
        match = None
        if order.broker_order_no:
            row = by_no.get(normalize_order_no(order.broker_order_no))
        else:
            match = matches[order.pk]
            row = match.row
            if row is not None:
                summary.matched_unknown += 1
        if row is None:
            summary.unresolved += int(_unresolved_order(order, match, now))
            continue
        summary.fills_recorded += _apply_row(order, row, now)
        order.refresh_from_db()
        summary.expired += int(_settle_lapsed(order, row, now))
    adopted = {match.row.order_no for match in matches.values() if match.row is not None}
    summary.external_orders = [row.order_no for row in free if row.order_no not in adopted]
    if summary.external_orders:
        logger.warning("account %s has %d broker orders on %s not placed by the auto-trader",
                       account.pk, len(summary.external_orders), trading_date)
    if positions:
        try:
            summary.positions = check_positions(account, broker=broker, now=now)
        except (BrokerError, KisError) as error:  # alerted by check_positions; the orders are reconciled
            logger.warning("balance check of account %s failed: %s", account.pk, user_message_for(error))
    return summary


def reconcile_open_orders(now: dt.datetime | None = None) -> dict[int, ReconcileSummary]:
    """Reconcile every account with open orders, for each trading date that has some; then compare
    the positions of every account the auto-trader uses (open orders, fills or an active strategy)
    with its broker balance, once per account. An account whose orders could not be read gets a
    summary with `error` set (the caller decides whether that fails: the command exits 1)."""
    now = now or timezone.now()
    results: dict[int, ReconcileSummary] = {}
    pairs = set(
        Order.objects.filter(Q(status__in=(OrderStatus.SUBMITTED, OrderStatus.ACCEPTED,
                                           OrderStatus.PARTIALLY_FILLED, OrderStatus.UNKNOWN))
                             | Q(status=OrderStatus.PENDING, send_attempts__gt=0))
        .values_list("broker_account_id", "trading_date").distinct()
    )
    failed: set[int] = set()
    for account_id, trading_date in sorted(pairs):
        account = BrokerAccount.objects.get(pk=account_id)
        try:
            summary = reconcile_orders(account, trading_date, now=now, positions=False)
        except (BrokerError, KisError) as error:
            failed.add(account_id)
            logger.warning("reconciliation of account %s failed: %s", account_id, user_message_for(error))
            results[account_id] = ReconcileSummary(error=f"{trading_date}: {user_message_for(error)}")
            continue
        if account_id in failed:
            continue
        previous = results.get(account_id)
        if previous is not None:  # several dates: add them up
            summary.checked += previous.checked
            summary.matched_unknown += previous.matched_unknown
            summary.fills_recorded += previous.fills_recorded
            summary.unresolved += previous.unresolved
            summary.expired += previous.expired
            summary.external_orders = previous.external_orders + summary.external_orders
        results[account_id] = summary
    traded = ({account_id for account_id, _ in pairs}
              | set(Fill.objects.values_list("order__broker_account_id", flat=True).distinct())
              | set(active_configs().values_list("broker_account_id", flat=True)))
    for account in BrokerAccount.objects.filter(pk__in=traded - failed).order_by("pk"):
        try:
            report = check_positions(account, now=now)
        except (BrokerError, KisError) as error:  # alerted by check_positions
            logger.warning("balance check of account %s failed: %s", account.pk, user_message_for(error))
            results.setdefault(account.pk, ReconcileSummary()).error = f"잔고: {user_message_for(error)}"
            continue
        results.setdefault(account.pk, ReconcileSummary()).positions = report
    return results


def adopt_broker_order(order: Order, broker_order_no: str, *, user, now: dt.datetime | None = None) -> Order:
    """The owner says which broker order is this one (an `unknown` order the matching left to a
    person). The broker's daily orders are read again; the row must exist, look like the order and
    belong to no other of our orders. Then it is applied like any reconciled row."""
    now = now or timezone.now()
    number = normalize_order_no(broker_order_no)
    if order.status != OrderStatus.UNKNOWN:
        raise OrderDecisionError("결과를 확인하지 못한(unknown) 주문만 고를 수 있습니다.")
    if Order.objects.filter(broker_account_id=order.broker_account_id, trading_date=order.trading_date,
                            broker_order_no=number).exclude(pk=order.pk).exists():
        raise OrderDecisionError(f"주문번호 {number}는 이미 다른 자동매매 주문에 연결되어 있습니다.")
    broker = get_broker(order.broker_account, now)
    rows = {normalize_order_no(row.order_no): row for row in broker.get_daily_orders(order.trading_date,
                                                                                     order.trading_date)}
    row = rows.get(number)
    if row is None or not broker_matching.same_attributes(_intent(order), replace(row, order_no=number)):
        raise OrderDecisionError(f"증권사 주문내역에 이 주문과 같은 주문번호 {number}가 없습니다.")
    _apply_row(order, replace(row, order_no=number), now)
    order.refresh_from_db()
    _close_order_alerts(order, f"소유자가 증권사 주문번호 {number}를 이 주문으로 확인했습니다.", user=user)
    logger.warning("order %s adopted broker order %s by user %s", order.client_order_id, number,
                   getattr(_real_user(user), "pk", None))
    return order


def declare_order_not_received(order: Order, *, user) -> Order:
    """The owner says an `unknown` order never reached the broker (the look-alike orders are their
    own): it is closed as rejected, never re-sent."""
    if order.status != OrderStatus.UNKNOWN:
        raise OrderDecisionError("결과를 확인하지 못한(unknown) 주문만 접수되지 않음으로 표시할 수 있습니다.")
    message = "소유자가 증권사에 접수되지 않은 주문으로 확인했습니다 (다시 보내지 않습니다)."
    Order.objects.filter(pk=order.pk, status=OrderStatus.UNKNOWN).update(
        status=OrderStatus.REJECTED, error_message=message)
    order.refresh_from_db()
    _close_order_alerts(order, message, user=user)
    return order


class OrderDecisionError(Exception):
    """The owner's decision on an unknown order cannot be applied (Korean message)."""


BROKER_READ_ERRORS = (BrokerError, KisError)  # what a broker read may raise, for the views


# ------------------------------------------------------------------------------------------- kill switch
# One TradingControl row for everything (scope "global") and at most one per broker account. A halt
# blocks every new order in its scope — the jobs end `blocked` before planning, and `_send_order`
# refuses what is still pending (rejected, `kill_switch`) — while orders already sent are still
# reconciled. The dashboard toggle, the API and the admin actions all go through these functions.


def _real_user(user):
    return user if getattr(user, "is_authenticated", False) else None


def _trading_control(account: BrokerAccount | None) -> TradingControl:
    if account is not None and account.pk is None:
        raise ValueError("the broker account must be saved first")
    control, _ = TradingControl.objects.get_or_create(
        scope=TradingControl.scope_for(account), defaults={"account": account})
    return control


def halt_trading(*, account: BrokerAccount | None = None, user=None, reason: str = "") -> TradingControl:
    """Kill switch on, for one account or (account None) for everything. Idempotent: halting again
    only records the new reason and who."""
    control = _trading_control(account)
    reason = (reason or "").strip()
    TradingControl.objects.filter(pk=control.pk).update(
        halted=True, halt_reason=reason, halted_at=timezone.now(), halted_by=_real_user(user))
    control.refresh_from_db()
    logger.warning("trading halted (%s) by %s: %s", control.scope, getattr(_real_user(user), "pk", None), reason)
    return control


def resume_trading(*, account: BrokerAccount | None = None, user=None) -> TradingControl:
    """Kill switch off for that scope (a global halt still stops an account resumed on its own)."""
    control = _trading_control(account)
    TradingControl.objects.filter(pk=control.pk).update(halted=False, halt_reason="", halted_at=None, halted_by=None)
    control.refresh_from_db()
    logger.warning("trading resumed (%s) by %s", control.scope, getattr(_real_user(user), "pk", None))
    return control


def halt_reason_for(account: BrokerAccount | None) -> str | None:
    """Why `account` may not send new orders (the global halt first, then the account's), in Korean;
    None when trading is allowed."""
    scopes = [TradingControl.GLOBAL] + ([TradingControl.scope_for(account)] if account is not None else [])
    halted = {control.scope: control for control in TradingControl.objects.filter(scope__in=scopes, halted=True)}
    control = halted.get(TradingControl.GLOBAL)
    prefix = "전체 자동매매가 중지되어(킬 스위치) 새 주문을 보내지 않습니다"
    if control is None and account is not None:
        control = halted.get(TradingControl.scope_for(account))
        prefix = "이 계좌의 자동매매가 중지되어(킬 스위치) 새 주문을 보내지 않습니다"
    if control is None:
        return None
    return f"{prefix}: {control.halt_reason}" if control.halt_reason else f"{prefix}."


# ------------------------------------------------------------------------------------------- alerts
# One open alert per (account, kind, key); a new one is notified (e-mail, webhook) after its
# transaction commits, and a notification failure never reaches the caller. An open alert with
# `blocks_entries` stops the account's entry job until someone resolves it.


def raise_alert(account: BrokerAccount | None, kind: str, message: str, *, key: str = "",
                details: dict | None = None, blocks_entries: bool = False) -> tuple[TradingAlert, bool]:
    """Open an alert, or return the open one with the same (account, kind, key) unchanged
    (created False, nothing notified).

    The notification is queued when the outermost transaction commits (`on_commit`), never before:
    a worker never looks for an alert that is not committed yet, and an alert rolled back with its
    caller's transaction is never notified. Called outside any transaction, the alert's own
    transaction is tried again when the database reports a lock conflict (MySQL's deadlock 1213 or
    lock-wait time-out 1205, SQLite's busy time-out): what it reports (a refused order) is already
    stored, so a busy moment must not lose it. Inside a caller's transaction the error goes up (the
    caller's transaction is lost with it)."""
    from django.db import OperationalError

    key = key[:120]
    tries = 1 if transaction.get_connection().in_atomic_block else 3
    for attempt in range(1, tries + 1):
        try:
            with transaction.atomic():
                if account is not None:  # serialises alert creation per account: two reconciliations make one
                    list(BrokerAccount.objects.select_for_update().filter(pk=account.pk).values_list("pk",
                                                                                                 flat=True))
                existing = (TradingAlert.objects.filter(account=account, kind=kind, key=key,
                                                        resolved_at__isnull=True).order_by("pk").first())
                if existing is not None:
                    return existing, False
                alert = TradingAlert.objects.create(
                    account=account, kind=kind, key=key, message=message, details=_jsonable(details or {}),
                    blocks_entries=blocks_entries,
                    # A fill is news, not a problem: notified, but never waits for someone to resolve it.
                    resolved_at=timezone.now() if kind == AlertKind.FILLED else None,
                )
                transaction.on_commit(lambda alert_id=alert.pk: _queue_notification(alert_id), robust=True)
            break
        except OperationalError as error:
            if attempt == tries or not _lock_conflict(error):
                raise
            logger.warning("alert %s %s: %s; trying again", kind, key, error)
            time.sleep(0.2 * attempt)
    logger.log(logging.INFO if kind == AlertKind.FILLED else logging.WARNING, "alert %s %s (account %s): %s",
               alert.pk, kind, getattr(account, "pk", None), message)
    return alert, True


def _lock_conflict(error: Exception) -> bool:
    """A transaction lost to another one and may simply be tried again: MySQL's deadlock (1213) or
    lock-wait time-out (1205), SQLite's busy time-out ("database is locked")."""
    return error.args[:1] in ((1205,), (1213,)) or "database is locked" in str(error)


def _queue_notification(alert_id: int) -> None:
    """Hand the e-mail/webhook to a Celery worker, so a slow webhook never delays an order; when the
    queue cannot take it, notify here (a notification is never dropped for want of a worker)."""
    from .tasks import notify_alert  # tasks imports this module

    try:
        notify_alert.delay(alert_id)
    except Exception:
        logger.warning("could not queue the notification of alert %s; sending it now", alert_id, exc_info=True)
        notify(alert_id)


def notify(alert_id: int) -> None:
    """Send an alert's notifications (e-mail, webhook) and stamp it notified; never raises. An alert
    already notified (a redelivered task) is not sent again."""
    try:
        alert = TradingAlert.objects.select_related("account__owner").filter(pk=alert_id).first()
        if alert is None:
            # Queued only once committed (raise_alert), so the row is missing only when the task came
            # from a process on another database sharing this queue (a drill's scratch database).
            logger.warning("alert %s does not exist in this database: nothing to notify", alert_id)
            return
        if alert.notified_at is not None:
            return
        if notifications.notify_alert(alert):
            TradingAlert.objects.filter(pk=alert_id).update(notified_at=timezone.now())
    except Exception:  # a notification never breaks trading
        logger.exception("notifying alert %s failed", alert_id)


def resolve_alert(alert: TradingAlert, *, user, note: str = "") -> TradingAlert:
    """Close an alert, recording who, when and why. A resolved position mismatch is acknowledged:
    the same difference is not reported again (a new difference is). Resolving twice keeps the first."""
    TradingAlert.objects.filter(pk=alert.pk, resolved_at__isnull=True).update(
        resolved_at=timezone.now(), resolved_by=_real_user(user), resolution_note=(note or "").strip())
    alert.refresh_from_db()
    return alert


def entry_block_reason(account: BrokerAccount) -> str | None:
    """Why the account's entries are blocked by open alerts (Korean), or None."""
    blocking = TradingAlert.objects.filter(account=account, blocks_entries=True, resolved_at__isnull=True)
    first = blocking.order_by("created_at", "pk").first()
    if first is None:
        return None
    count = blocking.count()
    more = f" (외 {count - 1}건)" if count > 1 else ""
    return (f"해결되지 않은 알림 때문에 신규 진입을 막았습니다: {first.message}{more} "
            f"확인 후 알림을 해결하면 다시 진입합니다.")


def _side_label(side: str) -> str:
    return "매수" if side == OrderSide.BUY else "매도"


def _order_alert(order: Order, kind: str, message: str, details: dict | None = None, *,
                 update: bool = False) -> None:
    """The order's alert (one open per order and kind). With `update`, an open one takes the new
    message and details (the candidates of an unknown order change as the broker's rows do)."""
    text = (f"{order.code} {_side_label(order.side)} {order.quantity:,}주 "
            f"({order.get_reason_display()}, {order.trading_date}): {message}")
    details = {"order": order.pk, "client_order_id": order.client_order_id, **(details or {})}
    alert, created = raise_alert(order.broker_account, kind, text, key=f"order-{order.pk}", details=details)
    if update and not created and (alert.message, alert.details) != (text, _jsonable(details)):
        TradingAlert.objects.filter(pk=alert.pk).update(message=text, details=_jsonable(details))


def _record_trade(order: Order, fill: Fill, *, announce: bool) -> None:
    """The fill's TradeLog row (once: one-to-one with the fill) and, for a new fill, a FILLED alert.
    Called inside `_apply_row`'s transaction."""
    account = order.broker_account
    TradeLog.objects.get_or_create(fill=fill, defaults={
        "user_id": account.owner_id, "symbol": order.code, "side": order.side, "quantity": fill.quantity,
        "price": fill.price, "amount": fill.amount, "commission": fill.commission, "tax": fill.tax,
        "reason": order.reason, "timestamp": fill.filled_at,
    })
    if announce:
        raise_alert(account, AlertKind.FILLED,
                    f"{order.code} {_side_label(order.side)} {fill.quantity:,}주 체결: {fill.price:,}원, "
                    f"금액 {fill.amount:,}원 (누적 {fill.cumulative_quantity:,}/{order.quantity:,}주, "
                    f"{order.get_reason_display()})",
                    key=f"fill-{fill.pk}", details={"order": order.pk, "fill": fill.pk})


def _job_alert(run: WeeklyRun, config: StrategyConfig, status: str, reason: str) -> None:
    """A JOB_FAILED alert for a failed, blocked, waiting or lost (skipped after trying) run; one open
    alert per run, updated as the run's reason changes; never raises (the run is already finished)."""
    verb = {WeeklyRunStatus.FAILED: "실패했습니다", WeeklyRunStatus.WAITING: "아직 끝나지 않았습니다(다시 시도합니다)",
            WeeklyRunStatus.SKIPPED: "이번에는 실행되지 못했습니다",
            WeeklyRunStatus.COMPLETE: "일부 주문만 보내고 끝났습니다"}.get(status, "차단되었습니다")
    try:
        message = f"{config.name}: {run.trading_date} {run.get_job_display()} 작업이 {verb}: {reason}"
        alert, created = raise_alert(config.broker_account, AlertKind.JOB_FAILED, message,
                                     key=f"run-{run.pk}", details={"run": run.pk, "status": status})
        if not created and alert.message != message:
            TradingAlert.objects.filter(pk=alert.pk).update(message=message, details={"run": run.pk, "status": status})
    except Exception:
        logger.exception("could not record the alert of run %s", run.pk)


# ------------------------------------------------------------------------------------------- positions vs broker
@dataclass
class PositionReport:
    """Derived positions compared with the broker's holdings, per code."""

    matched: list[str] = field(default_factory=list)
    in_flight: list[str] = field(default_factory=list)  # differ by no more than open orders explain
    shortfalls: dict[str, dict] = field(default_factory=dict)  # the broker holds less than we recorded
    extras: dict[str, dict] = field(default_factory=dict)  # the broker holds shares we never bought


def _open_quantities(account: BrokerAccount) -> tuple[dict[str, int], dict[str, int]]:
    """Per code, the unfilled quantity of orders that may still fill at the broker (buys, sells)."""
    buys: dict[str, int] = {}
    sells: dict[str, int] = {}
    rows = (Order.objects.filter(broker_account=account)
            .filter(Q(status__in=OPEN_STATUSES) & ~Q(status=OrderStatus.PENDING)
                    | Q(status=OrderStatus.PENDING, send_attempts__gt=0))
            .values_list("code", "side", "quantity", "filled_quantity"))
    for code, side, quantity, filled in rows:
        target = buys if side == OrderSide.BUY else sells
        target[code] = target.get(code, 0) + max(quantity - filled, 0)
    return buys, sells


def _recorded_positions(account: BrokerAccount) -> dict[str, int]:
    return {code: position.quantity for code, position in positions_for(account=account).items()}


def check_positions(account: BrokerAccount, *, broker=None, now: dt.datetime | None = None) -> PositionReport:
    """Compare `positions_for(account=...)` with `broker.get_balance().holdings` and keep the
    POSITION_MISMATCH alerts in step:

    - the broker holds less than we recorded (sold outside, a missed fill): a blocking alert
      (`shortfall:<code>`) — the account's entries stop until it is resolved;
    - the broker holds more (the owner's own shares, an order outside the system): a non-blocking
      alert (`extra:<code>`); the auto-trader never sells more than it recorded;
    - a difference that open orders can explain (fills not read yet) is left alone;
    - an open alert whose code matches again is resolved automatically; a difference a person
      resolved (acknowledged) is not reported again unless it changes.

    Raises the broker's error (after a RECONCILE_FAILED alert) when the balance cannot be read."""
    now = now or timezone.now()
    broker = broker or get_broker(account, now)
    # Our books are read before and after the balance: an order sent or filled meanwhile (a manual order,
    # another job) is then explained by one of the two readings instead of raising a false mismatch.
    ours_before, open_before = _recorded_positions(account), _open_quantities(account)
    try:
        balance = broker.get_balance()
    except (BrokerError, KisError) as error:
        raise_alert(account, AlertKind.RECONCILE_FAILED,
                    f"잔고를 읽지 못해 보유 수량을 확인하지 못했습니다: {user_message_for(error)}", key="balance")
        raise
    ours, (open_buys, open_sells) = _recorded_positions(account), _open_quantities(account)
    theirs: dict[str, int] = {}
    for holding in balance.holdings:
        if holding.quantity:
            theirs[holding.code] = theirs.get(holding.code, 0) + holding.quantity
    report = PositionReport()
    for code in sorted(set(ours) | set(theirs) | set(ours_before)):
        recorded, held = ours.get(code, 0), theirs.get(code, 0)
        difference = held - recorded
        buys_open = max(open_buys.get(code, 0), open_before[0].get(code, 0))
        sells_open = max(open_sells.get(code, 0), open_before[1].get(code, 0))
        readings = {recorded, ours_before.get(code, 0)}
        details = {"code": code, "recorded": recorded, "broker": held, "difference": difference,
                   "open_buy": buys_open, "open_sell": sells_open}
        if difference == 0:
            report.matched.append(code)
        elif any(-sells_open <= held - reading <= buys_open for reading in readings):
            report.in_flight.append(code)
        elif difference < 0:
            report.shortfalls[code] = details
        else:
            report.extras[code] = details
    _sync_position_alerts(account, report)
    return report


def _position_message(details: dict) -> str:
    code, recorded, held, difference = details["code"], details["recorded"], details["broker"], details["difference"]
    if difference < 0:
        return (f"{code}: 자동매매 기록은 {recorded:,}주인데 브로커 잔고는 {held:,}주입니다 ({-difference:,}주 부족). "
                f"직접 매도했거나 체결이 누락됐을 수 있습니다. 확인 후 해결 처리하면 신규 진입이 다시 허용됩니다.")
    if recorded == 0:
        return (f"{code}: 브로커 잔고에 자동매매가 사지 않은 {held:,}주가 있습니다 (직접 매수했거나 시스템 밖의 주문). "
                f"자동매매는 이 주식을 팔지 않습니다. 신규 진입은 막지 않습니다.")
    return (f"{code}: 브로커 잔고 {held:,}주가 자동매매 기록 {recorded:,}주보다 {difference:,}주 많습니다 "
            f"(직접 매수분 등). 자동매매는 기록된 수량까지만 팝니다. 신규 진입은 막지 않습니다.")


def _sync_position_alerts(account: BrokerAccount, report: PositionReport) -> None:
    wanted = {f"shortfall:{code}": (details, True) for code, details in report.shortfalls.items()}
    wanted |= {f"extra:{code}": (details, False) for code, details in report.extras.items()}
    open_alerts = {
        alert.key: alert for alert in TradingAlert.objects.filter(
            account=account, kind=AlertKind.POSITION_MISMATCH, resolved_at__isnull=True)
    }
    for key, alert in open_alerts.items():
        code = key.split(":", 1)[-1]
        if key not in wanted and code not in report.in_flight:
            resolve_alert(alert, user=None, note="자동 해소: 브로커 잔고와 자동매매 기록의 차이가 없어졌습니다.")
    for key, (details, blocking) in wanted.items():
        message = _position_message(details)
        alert = open_alerts.get(key)
        if alert is not None:
            if alert.details != details:  # the numbers moved: keep the one open alert current
                TradingAlert.objects.filter(pk=alert.pk).update(message=message, details=details)
            continue
        acknowledged = (TradingAlert.objects.filter(account=account, kind=AlertKind.POSITION_MISMATCH, key=key,
                                                    resolved_by__isnull=False)
                        .order_by("-resolved_at", "-pk").first())
        if acknowledged is not None and acknowledged.details.get("difference") == details["difference"]:
            continue
        raise_alert(account, AlertKind.POSITION_MISMATCH, message, key=key, details=details,
                    blocks_entries=blocking)


# ------------------------------------------------------------------------------------------- jobs
def _finish(run: WeeklyRun, status: str, reason: str, now: dt.datetime) -> WeeklyRun:
    WeeklyRun.objects.filter(pk=run.pk).update(status=status, reason=reason, finished_at=now)
    run.refresh_from_db()
    return run


RETRY_INTERVAL = dt.timedelta(minutes=5)  # a waiting run is tried again at the next sweep (every 5 minutes)


class WaitRun(Exception):
    """Not now, for a reason that passes: the run waits and is tried again at `retry_at` (or the next
    sweep), within its slot's window (the missed-slot policy)."""

    def __init__(self, reason: str, retry_at: dt.datetime | None = None, *, alert: bool = True) -> None:
        super().__init__(reason)
        self.retry_at = retry_at
        self.alert = alert


def _wait(run: WeeklyRun, config: StrategyConfig, reason: str, retry_at: dt.datetime, now: dt.datetime,
          *, alert: bool) -> WeeklyRun:
    WeeklyRun.objects.filter(pk=run.pk).update(status=WeeklyRunStatus.WAITING, reason=reason, retry_at=retry_at,
                                                finished_at=now)
    run.refresh_from_db()
    if alert:
        _job_alert(run, config, WeeklyRunStatus.WAITING, reason)
    return run


def _send_outcome(run: WeeklyRun, now: dt.datetime) -> None:
    """After the sends: raise WaitRun when orders are still pending (not sent for a reason that
    passes), BlockRun when every planned order was refused before reaching the broker. A run is
    complete only when its orders went out (or there was nothing to send)."""
    orders = list(run.orders.order_by("pk"))
    unsent = [order for order in orders if order.status == OrderStatus.PENDING and order.send_attempts == 0]
    if unsent:
        reason = unsent[0].error_message or "주문을 아직 보내지 못했습니다."
        if _before_open(now, run.trading_date):
            opens = session_open_close(run.trading_date)[0]
            raise WaitRun(f"개장({opens:%H:%M}) 전이라 {len(unsent):,}건의 주문을 개장 후 보냅니다.", opens, alert=False)
        retry_at = now + RETRY_INTERVAL
        raise WaitRun(f"{len(unsent):,}건의 주문을 보내지 못해 {_seoul(retry_at):%H:%M}에 다시 시도합니다: {reason}",
                      retry_at)
    refused = [order for order in orders if order.status == OrderStatus.REJECTED]
    if orders and len(refused) == len(orders):
        raise BlockRun(f"계획한 주문 {len(orders):,}건이 모두 거부되었습니다: {refused[0].error_message}")


def _finish_complete(run: WeeklyRun, config: StrategyConfig, reason: str, now: dt.datetime) -> WeeklyRun:
    run = _finish(run, WeeklyRunStatus.COMPLETE, reason, now)
    for alert in TradingAlert.objects.filter(account=config.broker_account, kind=AlertKind.JOB_FAILED,
                                             key=f"run-{run.pk}", resolved_at__isnull=True):
        resolve_alert(alert, user=None, note="자동 해소: 다시 시도해 작업을 마쳤습니다.")
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
    claimable = Q(status__in=(WeeklyRunStatus.PENDING, WeeklyRunStatus.FAILED, WeeklyRunStatus.BLOCKED)) | Q(
        status=WeeklyRunStatus.WAITING) & (Q(retry_at__isnull=True) | Q(retry_at__lte=now))
    if takeover:
        claimable |= Q(status=WeeklyRunStatus.RUNNING, started_at__lte=now - STALE_AFTER)
    claimed = WeeklyRun.objects.filter(claimable, pk=run.pk).update(
        status=WeeklyRunStatus.RUNNING, started_at=now, attempts=F("attempts") + 1, reason="", finished_at=None,
        retry_at=None)
    if not claimed:  # complete, skipped, waiting for later, or running in another process
        run.refresh_from_db()
        return JobResult(run=run)
    run.refresh_from_db()

    if account is None:
        return JobResult(_finish(run, WeeklyRunStatus.SKIPPED, "브로커 계좌가 지정되지 않았습니다.", now))
    if account.mode != BrokerMode.PAPER and _seoul(now).date() != _seoul(timezone.now()).date():
        return JobResult(_finish(run, WeeklyRunStatus.BLOCKED,
                                 "모의투자/실전 계좌는 오늘 날짜로만 주문할 수 있습니다.", now))
    may_send, why_not = _may_send(job, trading_date, now)
    if may_send and _before_open(now, trading_date):
        # A late open (the year's first session opens at 10:00): plan and send after the open, as the
        # backtest buys at the day's open; the sweep runs the job again then.
        opens = session_open_close(trading_date)[0]
        return JobResult(_wait(run, config, f"개장({opens:%H:%M}) 전이라 개장 후 다시 실행합니다.", opens, now,
                               alert=False))
    broker = get_broker(account, now)
    try:  # the entry compares positions itself below, and fails closed when it cannot
        reconcile_orders(account, trading_date, broker=broker, now=now, positions=job != Job.ENTRY)
    except (BrokerError, KisError) as error:  # alerted by reconcile_orders
        return JobResult(_finish(run, WeeklyRunStatus.BLOCKED,
                                 f"주문 내역을 확인하지 못해 주문을 보내지 않았습니다: {user_message_for(error)}", now))
    if may_send and (not run.planned or run.orders.filter(status=OrderStatus.PENDING).exists()):
        # The kill switch: a run not planned yet plans nothing (it may run again after the resume);
        # orders already planned and still pending are refused by `_send_order`, with the reason.
        halted = halt_reason_for(account)
        if halted and not run.planned:
            return JobResult(_finish(run, WeeklyRunStatus.BLOCKED, halted, now))
        if job == Job.ENTRY and not halted:
            try:
                check_positions(account, broker=broker, now=now)
            except (BrokerError, KisError) as error:  # alerted by check_positions
                return JobResult(_finish(run, WeeklyRunStatus.BLOCKED,
                                         f"잔고를 확인하지 못해 진입 주문을 보내지 않았습니다: {user_message_for(error)}",
                                         now))
            blocked = entry_block_reason(account)
            if blocked:
                return JobResult(_finish(run, WeeklyRunStatus.BLOCKED, blocked, now))
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
            _send_order(order, broker, now, may_send, why_not, patient=True)
        if may_send:
            _send_outcome(run, now)
        else:
            lost = run.orders.filter(status=OrderStatus.CANCELLED, error_message=why_not).count()
            if lost and not run.orders.exclude(status=OrderStatus.CANCELLED).exists():
                raise SkipRun(f"{why_not} 보내지 못한 주문 {lost:,}건은 취소했습니다.")
            if lost:  # some went out before the slot passed: the run is done, the owner is told the rest
                reason = f"{why_not} 보내지 못한 주문 {lost:,}건은 취소했습니다."
                _job_alert(run, config, WeeklyRunStatus.COMPLETE, reason)
                return JobResult(_finish(run, WeeklyRunStatus.COMPLETE, reason, now))
    except SkipRun as skip:
        run = _finish(run, WeeklyRunStatus.SKIPPED, str(skip), now)
        if run.attempts > 1:  # it had tried before: the owner should know the slot was lost
            _job_alert(run, config, WeeklyRunStatus.SKIPPED, str(skip))
        return JobResult(run)
    except WaitRun as wait:
        return JobResult(_wait(run, config, str(wait), wait.retry_at or now + RETRY_INTERVAL, now, alert=wait.alert))
    except BlockRun as block:
        run = _finish(run, WeeklyRunStatus.BLOCKED, str(block), now)
        _job_alert(run, config, WeeklyRunStatus.BLOCKED, str(block))
        return JobResult(run)
    except Exception as error:
        logger.exception("weekly %s job of config %s failed", job, config.pk)
        run = _finish(run, WeeklyRunStatus.FAILED, user_message_for(error), now)
        _job_alert(run, config, WeeklyRunStatus.FAILED, user_message_for(error))
        return JobResult(run)
    reason = "" if may_send else why_not
    rejected = run.orders.filter(status=OrderStatus.REJECTED).count()
    if may_send and rejected:
        reason = f"주문 {run.orders.count():,}건 중 {rejected:,}건이 거부되었습니다 (주문 목록에 이유가 있습니다)."
    return JobResult(_finish_complete(run, config, reason, now))


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


def close_interrupted_manual_orders(now: dt.datetime | None = None) -> dict[str, int]:
    """Manual orders left `pending` longer than STALE_AFTER (the request's process died between
    storing the order and the broker's answer; no run resumes them): one never sent (no send claimed)
    is cancelled — nothing reached the broker; one whose send was claimed becomes `unknown`, so
    reconciliation finds it in the broker's daily orders or closes it after UNKNOWN_GRACE. Never sends."""
    now = now or timezone.now()
    stale = Order.objects.filter(run__isnull=True, reason=OrderReason.MANUAL, status=OrderStatus.PENDING,
                                 intent_at__lte=now - STALE_AFTER)
    cancelled = stale.filter(send_attempts=0).update(
        status=OrderStatus.CANCELLED,
        error_message="주문을 저장한 뒤 보내기 전에 처리가 중단되어 보내지 않았습니다. 다시 주문하세요.")
    unknown = 0
    for order in stale.filter(send_attempts__gt=0).select_related("broker_account"):
        message = "주문을 보내는 중 처리가 중단되었습니다. 증권사 주문 내역과 대조해 결과를 확인합니다."
        if Order.objects.filter(pk=order.pk, status=OrderStatus.PENDING).update(
                status=OrderStatus.UNKNOWN, error_message=message, sent_at=order.sent_at or now):
            unknown += 1
            _order_alert(order, AlertKind.ORDER_UNKNOWN, message)
    return {"cancelled": cancelled, "unknown": unknown}


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


ENTRY_SLOT, CHECK_SLOT, RECONCILE_DELAY = dt.time(9, 5), dt.time(15, 15), dt.timedelta(minutes=5)
ENTRY_TASK, CHECK_TASK = "orders.weekly_entry", "orders.exit_checks"


def scheduled_slot(task: str, default: dt.time) -> dt.time | None:
    """The slot of a weekly job as the beat schedule has it (editable in the admin): the crontab's
    single hour and minute, `default` when the crontab is not that simple, None when the periodic
    task is missing or disabled — then the sweep does not start the job either."""
    from django_celery_beat.models import PeriodicTask

    periodic = PeriodicTask.objects.filter(task=task).select_related("crontab").order_by("pk").first()
    if periodic is None or not periodic.enabled:
        return None
    crontab = periodic.crontab
    if crontab is not None and crontab.hour.isdigit() and crontab.minute.isdigit():
        return dt.time(int(crontab.hour), int(crontab.minute))
    return default


def _run_is_due(config: StrategyConfig, job: str, trading_date: dt.date, now: dt.datetime) -> bool:
    """No run yet, or one the sweep may take again (pending, failed, blocked, or waiting until now)."""
    run = WeeklyRun.objects.filter(config=config, week_start=week_start_of(trading_date), job=job,
                                   trading_date=trading_date).first()
    if run is None:
        return True
    if run.status == WeeklyRunStatus.WAITING:
        return run.retry_at is None or run.retry_at <= now
    return run.status in (WeeklyRunStatus.PENDING, WeeklyRunStatus.FAILED, WeeklyRunStatus.BLOCKED)


def run_due_jobs(now: dt.datetime | None = None) -> list[WeeklyRun]:
    """The safety net under the beat (run by the reconciliation sweep every 5 minutes): a trigger that
    was lost, killed before its run row existed or never delivered costs one sweep interval, not the
    week. Starts every weekly job that is due today and has no run yet, or whose run waits, failed or
    was blocked, within the missed-slot policy:

    - the entry from its slot (or the day's open, if later) until the entry cut-off, on the week's
      first trading day;
    - the check (the exit on the week's last trading day) from its slot until the day's close;
    - any waiting run whose retry time has come, whatever its day (a slot that has passed ends it:
      skipped, its unsent orders cancelled, with the reason).

    The jobs' own claims keep every run single: a run the beat started at the same moment is left alone."""
    now = now or timezone.now()
    local = _seoul(now)
    today = local.date()
    runs: list[WeeklyRun] = []
    waiting = (WeeklyRun.objects.filter(status=WeeklyRunStatus.WAITING, retry_at__lte=now)
               .select_related("config").order_by("pk"))
    for run in waiting:
        if not run.config.is_active:
            runs.append(_drop_waiting_run(run, now))
        else:
            runs.append(_run_job(run.config, run.job, run.trading_date, now).run)
    if not is_trading_day(today):
        return runs
    opens, closes = session_open_close(today)
    entry_slot = scheduled_slot(ENTRY_TASK, ENTRY_SLOT)
    check_slot = scheduled_slot(CHECK_TASK, CHECK_SLOT)
    entry_due = (entry_slot is not None and first_trading_day_of_week(today) == today
                 and max(dt.datetime.combine(today, entry_slot, tzinfo=SEOUL), opens) <= local
                 and local.time() <= entry_cutoff())
    check_due = check_slot is not None and max(dt.datetime.combine(today, check_slot, tzinfo=SEOUL), opens) <= local < closes
    exit_day = last_trading_day_of_week(today) == today
    for config in active_configs():
        try:
            if entry_due and _run_is_due(config, Job.ENTRY, today, now):
                result = place_weekly_buys(config, today, now)
                if result is not None and result.run is not None:
                    runs.append(result.run)
            if check_due and _run_is_due(config, Job.EXIT if exit_day else Job.CHECK, today, now):
                result = run_exit_checks(config, today, now)
                if result is not None and result.run is not None:
                    runs.append(result.run)
        except Exception:  # one config's failure never stops the others
            logger.exception("the sweep could not start the due jobs of config %s", config.pk)
    return runs


def _drop_waiting_run(run: WeeklyRun, now: dt.datetime) -> WeeklyRun:
    """A waiting run of a strategy that was switched off: its unsent orders are cancelled, the run skipped."""
    reason = "전략이 비활성화되어 남은 작업을 건너뜁니다."
    if WeeklyRun.objects.filter(pk=run.pk, status=WeeklyRunStatus.WAITING).update(
            status=WeeklyRunStatus.SKIPPED, reason=reason, finished_at=now, retry_at=None):
        run.orders.filter(status=OrderStatus.PENDING, send_attempts=0).update(
            status=OrderStatus.CANCELLED, error_message="전략이 비활성화되어 보내지 않았습니다.")
    run.refresh_from_db()
    return run


def replay_paper_week(config: StrategyConfig, day: dt.date, *, until: dt.datetime | None = None) -> list[WeeklyRun]:
    """Run the week of `day` for a paper config as the scheduler would have: the entry at 09:05 of
    its first trading day, the check at 15:15 of each trading day (the exit on the last), a
    reconciliation after each, and a waiting run again at its retry time (a late open), as the sweep
    would, on the job clock; only slots before `until` (default now) and on days whose bars are
    stored. The runs' unique keys make a second replay (or the scheduler afterwards) do nothing
    twice. Used by the demo set-up and for trying a strategy on past weeks."""
    account = config.broker_account
    if account is None or account.mode != BrokerMode.PAPER:
        raise ValueError("only a paper account's past weeks can be replayed")
    until = until or timezone.now()
    stored = set(DailyBar.objects.filter(date__in=week_trading_days(day)).values_list("date", flat=True).distinct())
    runs: dict[int, WeeklyRun] = {}  # a run tried again (a late open) is listed once, in its last state
    for trading_date in week_trading_days(day):
        if trading_date not in stored:
            break
        slots = [(ENTRY_SLOT, place_weekly_buys)] if trading_date == first_trading_day_of_week(day) else []
        slots.append((CHECK_SLOT, run_exit_checks))
        for slot, job in slots:
            now = dt.datetime.combine(trading_date, slot, tzinfo=SEOUL)
            while now < until:
                result = job(config, trading_date, now)
                if result is not None and result.run is not None:
                    runs[result.run.pk] = result.run
                reconcile_orders(account, trading_date, now=now + RECONCILE_DELAY)
                run = result.run if result is not None else None
                if run is None or run.status != WeeklyRunStatus.WAITING or not run.retry_at or run.retry_at <= now:
                    break
                now = run.retry_at  # the sweep takes a waiting run again at its retry time
            if now >= until:
                return list(runs.values())
    return list(runs.values())


# ------------------------------------------------------------------------------------------- manual orders
# `POST /trade/{symbol}` and anything else that places one order by hand. Same promises as the
# weekly jobs: the Order row (reason `manual`) is committed before the request leaves, and it goes
# through `_send_order`, so the kill switch, the risk checks and the once-only send apply.
# Manual orders are not deduplicated by intent (buying the same stock twice is a legitimate wish):
# each gets a uuid-based client order id, unless the caller gives an idempotency key; the id is then
# derived from (user, key), so a retried request finds its order and sends nothing new.

MANUAL_MAX_QUANTITY = 10_000_000
MANUAL_MAX_PRICE = 100_000_000
IDEMPOTENCY_KEY_MAX_LENGTH = 200
# A replay of a key whose order is still pending waits (at most MANUAL_REPLAY_WAIT) for the request
# that stored it, which may be at work on it for up to MANUAL_IN_FLIGHT after its intent (a web
# request's whole life); untouched after that, the first request died and the replay sends it.
MANUAL_REPLAY_WAIT = dt.timedelta(seconds=10)
MANUAL_IN_FLIGHT = dt.timedelta(seconds=60)


class ManualOrderError(Exception):
    """The service refused the order before storing anything; `field` names the offending input and
    `status` is the HTTP status the API answers with."""

    status = 400

    def __init__(self, message: str, *, field: str = "detail") -> None:
        super().__init__(message)
        self.message = message
        self.field = field


class ManualOrderAccountNotFound(ManualOrderError):
    status = 404


class ManualOrderNoAccount(ManualOrderError):
    status = 409


class IdempotencyKeyReused(ManualOrderError):
    status = 422


def order_trading_day(now: dt.datetime) -> dt.date:
    """The trading day an order placed at `now` belongs to: today during a trading day until the
    close, else the next trading day (as the paper broker books it)."""
    from market.krx import next_trading_day, session_open_close

    local = _seoul(now)
    if is_trading_day(local.date()) and local < session_open_close(local.date())[1]:
        return local.date()
    return next_trading_day(local.date())


def manual_client_order_id(user, idempotency_key: str | None = None) -> str:
    """`m<user>-<uuid>`; with an idempotency key `m<user>-k<sha256(user:key)[:40]>` (≤ 64 chars)."""
    import hashlib
    import uuid

    if idempotency_key:
        digest = hashlib.sha256(f"{user.pk}:{idempotency_key}".encode()).hexdigest()[:40]
        return f"m{user.pk}-k{digest}"
    return f"m{user.pk}-{uuid.uuid4().hex}"


def _manual_account(user, account) -> BrokerAccount:
    if account is None or account == "":
        found = BrokerAccount.objects.filter(owner=user).order_by("-is_default", "pk").first()
        if found is None:
            raise ManualOrderNoAccount("브로커 계좌가 없습니다. 계정 페이지에서 계좌를 먼저 추가하세요.", field="account")
        return found
    pk = account.pk if isinstance(account, BrokerAccount) else account
    if isinstance(pk, bool) or not isinstance(pk, int | str) or not str(pk).isdigit():
        raise ManualOrderError(f"계좌 번호(id)는 정수여야 합니다: {account!r}", field="account")
    found = BrokerAccount.objects.filter(owner=user, pk=int(pk)).first()
    if found is None:  # another user's account looks exactly like a missing one
        raise ManualOrderAccountNotFound("해당 브로커 계좌를 찾을 수 없습니다.", field="account")
    return found


def _manual_inputs(symbol, side, quantity, price) -> tuple[str, str, int, int | None]:
    code = str(symbol or "").strip().upper()
    if not code or len(code) > 12:
        raise ManualOrderError(f"종목코드가 올바르지 않습니다: {str(symbol)[:20]!r}", field="symbol")
    side = str(side or "").strip().lower()
    if side not in (OrderSide.BUY, OrderSide.SELL):
        raise ManualOrderError(f"매매 구분은 buy(매수) 또는 sell(매도)이어야 합니다: {str(side)[:20]!r}", field="side")
    if isinstance(quantity, bool) or not isinstance(quantity, int) or quantity < 1:
        raise ManualOrderError(f"주문 수량은 1주 이상의 정수여야 합니다: {str(quantity)[:20]!r}", field="quantity")
    if quantity > MANUAL_MAX_QUANTITY:
        raise ManualOrderError(f"주문 수량은 {MANUAL_MAX_QUANTITY:,}주 이하여야 합니다: {quantity:,}", field="quantity")
    if price is not None:
        if isinstance(price, bool) or not isinstance(price, int) or price < 1:
            raise ManualOrderError(f"지정가는 1원 이상의 정수(원)여야 합니다: {str(price)[:20]!r}", field="price")
        if price > MANUAL_MAX_PRICE:
            raise ManualOrderError(f"지정가는 {MANUAL_MAX_PRICE:,}원 이하여야 합니다: {price:,}원", field="price")
    return code, side, quantity, price


def place_manual_order(user, account, symbol: str, *, side: str = OrderSide.BUY, quantity: int = 1,
                       price: int | None = None, now: dt.datetime | None = None,
                       idempotency_key: str | None = None) -> Order:
    """Place one order by hand: market when `price` is None, else limit at `price` (on the KRX tick
    table, inside the ±30% band of the previous close). `account`: a BrokerAccount or its id, the
    user's own only (`ManualOrderAccountNotFound` otherwise); None = the user's default account.

    Returns the Order after its send (submitted, or filled on the paper broker when the day's bar is
    stored; rejected/cancelled with the reason when the broker, the kill switch or a risk check
    refused it). With an `idempotency_key` already used by this user, the existing order is
    returned untouched (`order.idempotent_replay` is True) — unless it was stored but never sent,
    in which case this call sends it; a concurrent request with the same key (a double click) waits
    for the first one's outcome and answers the same order, never an error; different parameters
    under the same key raise `IdempotencyKeyReused`. Raises `ManualOrderError` (nothing stored) on
    bad input."""
    from django.db import IntegrityError, OperationalError

    from market.krx import validate_order

    live = now is None  # a request of now, not a replayed past moment
    now = now or timezone.now()
    account = _manual_account(user, account)
    if account.mode != BrokerMode.PAPER:
        now = timezone.now()  # KIS trades in real time only; the given clock is for the paper broker
    code, side, quantity, price = _manual_inputs(symbol, side, quantity, price)
    if idempotency_key is not None:
        idempotency_key = str(idempotency_key).strip()
        if not idempotency_key or len(idempotency_key) > IDEMPOTENCY_KEY_MAX_LENGTH or not idempotency_key.isprintable():
            raise ManualOrderError(
                f"Idempotency-Key는 1~{IDEMPOTENCY_KEY_MAX_LENGTH}자의 인쇄 가능한 문자열이어야 합니다.",
                field="idempotency_key")
    order_type = OrderType.MARKET if price is None else OrderType.LIMIT
    client_id = manual_client_order_id(user, idempotency_key)

    if idempotency_key:
        existing = Order.objects.filter(client_order_id=client_id).select_related("broker_account").first()
        if existing is not None:
            return _manual_replay(existing, account, code, side, quantity, order_type, price or 0, now, live=live)

    instrument = Instrument.objects.filter(code=code).first()
    if instrument is None:
        raise ManualOrderError(f"알 수 없는 종목코드입니다: {code}", field="symbol")
    if not instrument.is_listed:
        raise ManualOrderError(f"상장폐지된 종목입니다: {code} {instrument.name}", field="symbol")
    trading_date = order_trading_day(now)
    prev_close = (
        DailyBar.objects.filter(instrument=instrument, date__lt=trading_date).order_by("-date")
        .values_list("close", flat=True).first()
    )
    reasons = validate_order(side, order_type, quantity, price, int(prev_close) if prev_close else None,
                             market=instrument.market)
    if reasons:
        raise ManualOrderError(" / ".join(reasons), field="price" if price is not None else "quantity")

    for attempt in range(1, 4):
        try:  # the insert commits in a transaction of its own, before anything is sent
            order, created = Order.objects.get_or_create(
                client_order_id=client_id,
                defaults={
                    "run": None, "config": None, "broker_account": account, "trading_date": trading_date,
                    "code": code, "side": side, "order_type": order_type, "quantity": quantity,
                    "price": price or 0, "reference_price": price or int(prev_close or 0),
                    "reason": OrderReason.MANUAL, "intent_at": now,
                },
            )
            break
        except IntegrityError:
            # The unique client order id: a concurrent request with the same key stored it after this
            # request's look-up (a double click). That is a replay of that order, never an error.
            order = Order.objects.filter(client_order_id=client_id).select_related("broker_account").first()
            if order is None:
                raise
            created = False
            break
        except OperationalError as error:  # a deadlock or lock time-out: nothing was stored
            if attempt == 3 or not _lock_conflict(error):
                raise
            logger.warning("storing manual order %s: %s; trying again", client_id, error)
            time.sleep(0.2 * attempt)
    if not created:  # a concurrent request with the same key won the insert
        return _manual_replay(order, account, code, side, quantity, order_type, price or 0, now, live=live)
    _checkpoint("manual_intent_committed", order)
    _send_manual(order, account, now, live=live)
    if order.status == OrderStatus.PENDING and order.send_attempts == 0 and not idempotency_key:
        # Not sent because a risk input could not be read: without a key nobody can retry this very
        # order, so it is closed (the reason stays) rather than left pending for ever.
        Order.objects.filter(pk=order.pk, status=OrderStatus.PENDING, send_attempts=0).update(
            status=OrderStatus.CANCELLED)
        order.refresh_from_db()
    order.idempotent_replay = False
    return order


def _manual_replay(order: Order, account: BrokerAccount, code: str, side: str, quantity: int, order_type: str,
                   price: int, now: dt.datetime, *, live: bool = False) -> Order:
    same = (order.broker_account_id, order.code, order.side, order.quantity, order.order_type, order.price) == (
        account.pk, code, side, quantity, order_type, price)
    if not same:
        raise IdempotencyKeyReused(
            "같은 Idempotency-Key로 다른 내용의 주문이 이미 있습니다. 새 주문에는 새 키를 쓰세요.",
            field="idempotency_key")
    # A double click: the request that stored the order may be at work on it right now (pending with
    # no reason yet, or its send claimed). Wait for its outcome instead of racing it through the risk
    # checks, so both answers show the same order. Still pending and untouched once that request's
    # time is over: it died before sending, and this call sends the order; pending with a reason: it
    # ended without sending (a risk input or the broker could not be reached), and this call tries again.
    in_flight = (order.intent_at + MANUAL_IN_FLIGHT - now).total_seconds()
    started = time.monotonic()
    while (order.status == OrderStatus.PENDING and (order.send_attempts or not order.error_message)
           and time.monotonic() - started < min(in_flight, MANUAL_REPLAY_WAIT.total_seconds())):
        time.sleep(0.05)
        order.refresh_from_db()
    first_request_over = bool(order.error_message) or time.monotonic() - started >= in_flight
    if order.status == OrderStatus.PENDING and order.send_attempts == 0 and first_request_over:
        _send_manual(order, order.broker_account, now, live=live)
    order.refresh_from_db()
    order.idempotent_replay = True
    return order


def _send_manual(order: Order, account: BrokerAccount, now: dt.datetime, *, live: bool = False) -> None:
    """Send through `_send_order`; on the paper broker, read the fill back at once (reconciliation
    only reads, never sends). `live`: a request of now, so the paper broker books the order at the
    moment it gets it, as a real broker does (concurrent requests arrive in another order than they
    began), not at the request's start."""
    paper_now = live and account.mode == BrokerMode.PAPER
    broker = broker_for(account) if paper_now else get_broker(account, now)
    may_send = order.trading_date == order_trading_day(now)
    why_not = "" if may_send else f"{order.trading_date} 거래일이 지나 주문을 보내지 않았습니다."
    _send_order(order, broker, now, may_send, why_not)
    order.refresh_from_db()
    if account.mode == BrokerMode.PAPER and order.status == OrderStatus.SUBMITTED:
        try:
            reconcile_orders(account, order.trading_date, broker=broker, now=now)
        except (BrokerError, KisError) as error:  # the 5-minute reconciliation picks it up later
            logger.warning("reading back manual order %s failed: %s", order.client_order_id, user_message_for(error))
        order.refresh_from_db()
