"""Does live trading follow the backtest? One strategy config's week of live orders and fills compared
with the backtest of the same config over the same week and the same stored bars.

The backtest is the strategies app's own (`strategies.backtest.run_backtest` on
`strategies.market_data.load_market_data`, which adds the warm-up bars), with the inputs the live
entry planner used (`orders.planning.plan_entry`, recorded on the week's entry run):

- universe: `universe_for(config, previous trading day of the entry)`, as the planner;
- cash: the entry run's recorded orderable cash (the planner splits min(cash per week, orderable
  cash)), else the config's cash per week; the cap is the config's cash per week;
- max positions: the config's, minus what the entry run found held (positions carried over from
  an earlier week and open buys);
- commission `settings.COMMISSION_RATE` (or the KRX default) and the KRX sell tax tables, as live.

A *trade* is one (code, side, trading date): the backtest's buy at the entry day's open and sell at
a close, the live fills of the config's orders of that day summed. Definitions:

- matched: on both sides; quantity differs when the live filled quantity is not the backtest's;
- missing: the backtest traded, live has no fill (a rejected, unfilled or never placed order, or a
  sale on another day); extra: live filled, the backtest did not. A live sale of a position bought
  before the week is `carried` (a one-week backtest cannot hold it): listed, never counted, and
  left out of the live P&L;
- slippage of a matched trade, in KRW, positive when live did worse: buy = live amount − backtest
  price × q, sell = backtest price × q − live amount, over q = min(live, backtest) shares (the
  live amount taken pro rata); in bp of backtest price × q. The week's slippage is the sum in KRW,
  and in bp the sum over Σ backtest price × q (weighted by traded value);
- P&L: realised over the week's sells. Backtest: Σ pnl of its trades sold in the week (proceeds −
  shares × entry price − both commissions − tax). Live: Σ over the week's sells of (amount −
  commission − tax) − the cost of the shares sold at the position's average cost including the buy
  commission (fills in the broker's order, as `orders.positions`). Gap = live − backtest, in bp of
  the cash invested (the backtest's buy cost with commission; the live one when the backtest
  bought nothing; 0 bp when neither did);
- alert: |gap bp| > `config.drift_alert_bps`, or a missing or extra trade. One TradingAlert per
  (config, week), raised the first time; a recompute never raises it again, and resolves the open
  one when the drift is gone (late fills reconciled).
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass, field

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from market.krx import (
    SEOUL,
    first_trading_day_of_week,
    previous_trading_day,
    session_open_close,
    week_trading_days,
)
from market.models import Instrument
from strategies.backtest import BacktestConfig, run_backtest
from strategies.library import create_strategy
from strategies.market_data import BacktestInputError, load_market_data
from strategies.models import StrategyConfig
from strategies.services import universe_for

from .common import jsonable
from .controls import raise_alert, resolve_alert
from .models import AlertKind, Fill, Job, Order, OrderSide, TradingAlert, WeeklyDrift, WeeklyRun

logger = logging.getLogger(__name__)

BP = 10_000
MATCHED, MISSING, EXTRA, CARRIED = "matched", "missing", "extra", "carried"


class DriftError(Exception):
    """The week cannot be compared (yet): no broker account, no trading day, no bars. Korean message."""


def week_monday(day: dt.date) -> dt.date:
    return day - dt.timedelta(days=day.weekday())


def week_to_compare(now: dt.datetime | None = None) -> dt.date:
    """Monday of the latest week whose last trading day's session has closed at `now`."""
    now = (now or timezone.now()).astimezone(SEOUL)
    monday = week_monday(now.date())
    days = week_trading_days(monday)
    if days and now >= session_open_close(days[-1])[1]:
        return monday
    monday -= dt.timedelta(days=7)
    while not week_trading_days(monday):
        monday -= dt.timedelta(days=7)
    return monday


# ------------------------------------------------------------------------------------------- the backtest's side
@dataclass
class Leg:
    """One trade (code, side, day) on one side of the comparison."""

    quantity: int = 0
    amount: int = 0  # KRW, price × shares summed
    price: int = 0  # the backtest's fill price
    commission: int = 0
    tax: int = 0
    pnl: int | None = None  # realised, sells only
    reasons: set = field(default_factory=set)
    carried: bool = False  # live sell of a position opened before the week


@dataclass
class BacktestWeek:
    legs: dict  # (code, side, date) -> Leg
    pnl: int
    invested: int
    inputs: dict


def _entry_plan(config: StrategyConfig, monday: dt.date) -> dict:
    run = (WeeklyRun.objects.filter(config=config, week_start=monday, job=Job.ENTRY)
           .order_by("-trading_date").first())
    return (run.plan or {}) if run is not None and run.planned else {}


def backtest_week(config: StrategyConfig, days: list[dt.date], carried_codes: set[str]) -> BacktestWeek:
    """The strategies app's backtest of `config` over the trading days `days` (one week), sized as the
    live entry was (see the module docstring)."""
    first, last = days[0], days[-1]
    signal_day = previous_trading_day(first)
    wanted = universe_for(config, signal_day)
    codes = sorted(Instrument.objects.filter(code__in=wanted).values_list("code", flat=True))
    if not codes:
        raise DriftError("유니버스에 알려진 종목이 없어 백테스트할 수 없습니다.")
    try:
        data = load_market_data(codes, first, last)
    except BacktestInputError as error:
        raise DriftError(str(error)) from error
    stored_last = data.dates[-1].astype(object)
    if stored_last < last:
        raise DriftError(f"{last} 종가가 아직 저장되지 않아 비교할 수 없습니다 (마지막 일봉 {stored_last}).")

    plan = _entry_plan(config, week_monday(first))
    cap = int(config.cash_per_week)
    if plan.get("orderable_cash") is not None:
        cash, basis = int(plan["orderable_cash"]), "entry_orderable_cash"
    else:
        cash, basis = cap, "cash_per_week"
    held = plan["held"] if "held" in plan else sorted(carried_codes)
    slots = config.max_positions - len(held)
    if slots <= 0:  # live had no slot for a buy: the backtest buys nothing either
        cash, slots = 0, 1
    bt_config = BacktestConfig(
        initial_cash=max(cash, 0), max_positions=slots, commission=settings.COMMISSION_RATE or None, tax=None,
        start=first, end=last, cash_per_week=cap,
    )
    result = run_backtest(create_strategy(config.strategy_key, config.params), data, bt_config)

    legs: dict[tuple, Leg] = {}
    pnl = invested = 0
    in_week = {day.isoformat() for day in days}
    for trade in result.trade_records():
        if trade["entry_date"] in in_week:
            legs[(trade["code"], OrderSide.BUY, trade["entry_date"])] = Leg(
                quantity=trade["shares"], amount=trade["shares"] * trade["entry_price"], price=trade["entry_price"],
                commission=trade["buy_fee"], reasons={"entry"})
            invested += trade["shares"] * trade["entry_price"] + trade["buy_fee"]
        if trade["exit_date"] in in_week:
            legs[(trade["code"], OrderSide.SELL, trade["exit_date"])] = Leg(
                quantity=trade["shares"], amount=trade["shares"] * trade["exit_price"], price=trade["exit_price"],
                commission=trade["sell_fee"], tax=trade["tax"], pnl=trade["pnl"], reasons={trade["reason"]})
            pnl += trade["pnl"]
    for row in result.open_positions.itertuples(index=False):  # bought, no bar to sell at since
        entry = str(row.entry_date)[:10]
        if entry in in_week:
            shares, price, fee = int(row.shares), int(row.entry_price), int(row.buy_fee)
            legs[(row.code, OrderSide.BUY, entry)] = Leg(quantity=shares, amount=shares * price, price=price,
                                                         commission=fee, reasons={"entry"})
            invested += shares * price + fee
    inputs = {"codes": len(codes), "signal_day": signal_day.isoformat(), "cash_basis": basis,
              **bt_config.as_dict()}
    return BacktestWeek(legs=legs, pnl=pnl, invested=invested, inputs=inputs)


# ------------------------------------------------------------------------------------------- the live side
def live_week(config: StrategyConfig, days: list[dt.date]) -> tuple[dict, set[str]]:
    """The config's fills of the week as legs (code, side, date), with each sell's realised P&L at the
    position's average cost (buy commission included), and the codes held when the week began."""
    first, last = days[0], days[-1]
    fills = (Fill.objects.filter(order__config=config, order__trading_date__lte=last).select_related("order")
             .order_by("order__trading_date", "order__broker_order_no", "cumulative_quantity", "filled_at", "pk"))
    state: dict[str, list] = {}  # code -> [quantity, cost incl. buy commission, opened_on]
    legs: dict[tuple, Leg] = {}
    carried_codes: set[str] = set()
    checked_start = False
    for fill in fills:
        order = fill.order
        if not checked_start and order.trading_date >= first:
            carried_codes = {code for code, (quantity, _, _) in state.items() if quantity > 0}
            checked_start = True
        quantity, cost, opened_on = state.get(order.code, [0, 0, None])
        in_week = order.trading_date >= first
        leg = None
        if in_week:
            leg = legs.setdefault((order.code, order.side, order.trading_date.isoformat()), Leg())
            leg.quantity += fill.quantity
            leg.amount += fill.amount
            leg.commission += fill.commission
            leg.tax += fill.tax
            leg.reasons.add(order.reason)
        if order.side == OrderSide.BUY:
            if quantity == 0:
                opened_on = order.trading_date
            quantity, cost = quantity + fill.quantity, cost + fill.amount + fill.commission
        else:
            sold = min(fill.quantity, quantity)
            basis = cost * sold // quantity if quantity else 0
            if leg is not None:
                leg.pnl = (leg.pnl or 0) + fill.amount - fill.commission - fill.tax - basis
                if opened_on is not None and opened_on < first:
                    leg.carried = True
            cost -= basis
            quantity -= sold
            if quantity == 0:
                cost, opened_on = 0, None
        state[order.code] = [quantity, cost, opened_on]
    if not checked_start:
        carried_codes = {code for code, (quantity, _, _) in state.items() if quantity > 0}
    return legs, carried_codes


def _live_orders(config: StrategyConfig, days: list[dt.date]) -> dict[tuple, Order]:
    """The config's last order per (code, side, date) of the week: why a missing trade is missing."""
    orders = {}
    for order in Order.objects.filter(config=config, trading_date__range=(days[0], days[-1])).order_by("pk"):
        orders[(order.code, order.side, order.trading_date.isoformat())] = order
    return orders


# ------------------------------------------------------------------------------------------- comparing
def _bps(numerator: int | float, denominator: int | float) -> float | None:
    return round(numerator / denominator * BP, 2) if denominator else None


def _compare(backtest: dict, live: dict, orders: dict) -> tuple[list[dict], dict]:
    rows = []
    sums = {"matched": 0, "missing": 0, "extra": 0, "qty_diff": 0, "slippage_krw": 0, "slipped_value": 0}
    for key in sorted(set(backtest) | set(live), key=lambda k: (k[2], k[1] != OrderSide.BUY, k[0])):
        code, side, day = key
        bt, lv = backtest.get(key), live.get(key)
        row = {
            "code": code, "side": side, "date": day,
            "backtest_quantity": bt.quantity if bt else 0, "live_quantity": lv.quantity if lv else 0,
            "backtest_price": bt.price if bt else None,
            "live_price": round(lv.amount / lv.quantity, 2) if lv and lv.quantity else None,
            "backtest_reason": ",".join(sorted(bt.reasons)) if bt else "",
            "live_reason": ",".join(sorted(lv.reasons)) if lv else "",
            "backtest_pnl": bt.pnl if bt else None, "live_pnl": lv.pnl if lv else None,
            "slippage_krw": None, "slippage_bps": None,
        }
        row["quantity_diff"] = row["live_quantity"] - row["backtest_quantity"]
        if bt and lv:
            row["kind"] = MATCHED
            sums["matched"] += 1
            sums["qty_diff"] += row["quantity_diff"] != 0
            shared = min(bt.quantity, lv.quantity)
            live_amount = lv.amount if shared == lv.quantity else round(lv.amount * shared / lv.quantity)
            reference = bt.price * shared
            slip = live_amount - reference if side == OrderSide.BUY else reference - live_amount
            row["slippage_krw"], row["slippage_bps"] = slip, _bps(slip, reference)
            sums["slippage_krw"] += slip
            sums["slipped_value"] += reference
        elif bt:
            row["kind"] = MISSING
            sums["missing"] += 1
            order = orders.get(key)
            if order is not None:
                row["live_order"] = {"status": order.status, "quantity": order.quantity,
                                     "message": order.error_message[:200]}
        elif lv.carried:
            row["kind"] = CARRIED
        else:
            row["kind"] = EXTRA
            sums["extra"] += 1
        rows.append(row)
    return rows, sums


@transaction.atomic
def _store(config: StrategyConfig, monday: dt.date, values: dict) -> WeeklyDrift:
    drift, _ = WeeklyDrift.objects.select_for_update().update_or_create(config=config, week_start=monday,
                                                                       defaults=values)
    return drift


def _alert(drift: WeeklyDrift, config: StrategyConfig, now: dt.datetime) -> None:
    """The week's one alert: raised the first time the drift crosses the line (claimed by a conditional
    UPDATE, so two computations at once raise one); resolved when a recompute finds no drift."""
    if drift.alert:
        if not WeeklyDrift.objects.filter(pk=drift.pk, alerted_at__isnull=True).update(alerted_at=now):
            return
        message = (f"{config.name}: {drift.week_start:%Y-%m-%d} 주의 실거래가 백테스트와 다릅니다 — "
                   + "; ".join(drift.alert_reasons))
        alert, _ = raise_alert(config.broker_account, AlertKind.DRIFT, message,
                               key=f"drift-{config.pk}-{drift.week_start:%Y-%m-%d}",
                               details={"drift": drift.pk, "config": config.pk, "week_start": drift.week_start})
        WeeklyDrift.objects.filter(pk=drift.pk).update(trading_alert=alert)
        drift.refresh_from_db()
        return
    if drift.trading_alert_id:
        open_alert = TradingAlert.objects.filter(pk=drift.trading_alert_id, resolved_at__isnull=True).first()
        if open_alert is not None:
            resolve_alert(open_alert, user=None, note="자동 해소: 다시 비교한 결과 백테스트와의 차이가 기준 안입니다.")


def compare_week(config: StrategyConfig, week_start: dt.date, *, now: dt.datetime | None = None) -> WeeklyDrift:
    """Compare the live week of `config` (the week of `week_start`) with its backtest, store it
    (update on recompute) and raise the week's alert when it drifted. Raises DriftError."""
    now = now or timezone.now()
    if config.broker_account_id is None:
        raise DriftError("브로커 계좌가 없는 전략은 실거래가 없습니다.")
    monday = week_monday(week_start)
    days = week_trading_days(monday)
    if not days or first_trading_day_of_week(monday) is None:
        raise DriftError(f"{monday} 주에는 거래일이 없습니다.")
    live, carried_codes = live_week(config, days)
    backtest = backtest_week(config, days, carried_codes)
    rows, sums = _compare(backtest.legs, live, _live_orders(config, days))

    live_pnl = sum(leg.pnl or 0 for leg in live.values() if leg.quantity and not leg.carried)
    invested = backtest.invested or sum(leg.amount + leg.commission for (_, side, _), leg in live.items()
                                        if side == OrderSide.BUY)
    gap = live_pnl - backtest.pnl
    gap_bps = _bps(gap, invested) or 0.0
    reasons = []
    if abs(gap_bps) > config.drift_alert_bps:
        reasons.append(f"손익 차이 {gap:+,}원 ({gap_bps:+.1f}bp, 기준 {config.drift_alert_bps}bp)")
    if sums["missing"]:
        reasons.append(f"백테스트에만 있는 거래 {sums['missing']}건")
    if sums["extra"]:
        reasons.append(f"실거래에만 있는 거래 {sums['extra']}건")
    values = {
        "week_end": days[-1], "trades": jsonable(rows), "matched_count": sums["matched"],
        "missing_count": sums["missing"], "extra_count": sums["extra"], "qty_diff_count": sums["qty_diff"],
        "live_pnl": live_pnl, "backtest_pnl": backtest.pnl, "pnl_gap_krw": gap, "invested_krw": invested,
        "gap_bps": gap_bps, "slippage_krw": sums["slippage_krw"],
        "slippage_bps": _bps(sums["slippage_krw"], sums["slipped_value"]),
        "alert": bool(reasons), "alert_reasons": reasons,
        "details": jsonable({"backtest": backtest.inputs, "threshold_bps": config.drift_alert_bps,
                             "carried_codes": sorted(carried_codes)}),
        "computed_at": now,
    }
    drift = _store(config, monday, values)
    try:
        _alert(drift, config, now)
    except Exception:  # the comparison is stored; a failed alert must not lose it
        logger.exception("could not record the drift alert of config %s, week %s", config.pk, monday)
    return drift


def drift_as_dict(drift: WeeklyDrift) -> dict:
    """The command's --json and the task's summary."""
    return {
        "id": drift.pk, "config": drift.config_id, "config_name": drift.config.name,
        "week_start": drift.week_start.isoformat(), "week_end": drift.week_end.isoformat(),
        "matched": drift.matched_count, "missing": drift.missing_count, "extra": drift.extra_count,
        "qty_diff": drift.qty_diff_count, "live_pnl": drift.live_pnl, "backtest_pnl": drift.backtest_pnl,
        "pnl_gap_krw": drift.pnl_gap_krw, "invested_krw": drift.invested_krw, "gap_bps": drift.gap_bps,
        "slippage_krw": drift.slippage_krw, "slippage_bps": drift.slippage_bps, "alert": drift.alert,
        "alert_reasons": drift.alert_reasons, "trades": drift.trades,
    }


def compare_configs(configs, week_start: dt.date, *, now: dt.datetime | None = None) -> dict:
    """compare_week for each config; one config's failure never stops the others.
    {config pk: WeeklyDrift | error message}."""
    results: dict = {}
    for config in configs:
        try:
            results[config.pk] = compare_week(config, week_start, now=now)
        except DriftError as error:
            results[config.pk] = str(error)
        except Exception as error:
            logger.exception("drift of config %s for week %s failed", config.pk, week_start)
            results[config.pk] = f"{type(error).__name__}: {error}"
    return results
