"""What to buy and what to sell: the backtest's weekly rules (`strategies/backtest/engine.py`) applied
at the live slots, on the bars up to the previous close (no look-ahead). Planning sends nothing."""

from __future__ import annotations

import datetime as dt
import logging
import math
from dataclasses import asdict, dataclass

import numpy as np
from django.utils.translation import gettext as _

from market.gateway import BrokerError, user_message_for
from market.kis.errors import KisError
from market.krx import first_trading_day_of_week, previous_trading_day
from market.models import DailyBar, Instrument
from strategies.library import create_strategy
from strategies.market_data import load_market_data
from strategies.models import StrategyConfig
from strategies.services import universe_for

from .common import commission, commission_rate
from .market_inputs import NO_BAR, EntryOpens, refresh_day_bars
from .market_inputs import orderable_cash as broker_orderable_cash
from .models import OrderReason, OrderSide, OrderType
from .positions import open_order_quantities, positions_for

logger = logging.getLogger(__name__)


class SkipRun(Exception):
    """The job has nothing to do this time (the reason is stored on the run)."""


class BlockRun(Exception):
    """The job must not trade until a person looks (the reason is stored on the run)."""


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


def client_order_id(config_id: int, day: dt.date, code: str, side: str, reason: str) -> str:
    """Deterministic id of an intent: a retry computes the same id and finds the existing row."""
    year, week, _ = day.isocalendar()
    base = f"c{config_id}-{year}W{week:02d}-{code}-{'B' if side == OrderSide.BUY else 'S'}-{reason}"
    return base if reason == OrderReason.ENTRY else f"{base}-{day:%Y%m%d}"


def plan_entry(config: StrategyConfig, trading_date: dt.date, now: dt.datetime, broker) -> tuple[list, dict]:
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
        # In the active language: Korean in the jobs (the stored run reason), English on an English page's plan.
        raise BlockRun(_("The close of %(day)s is not stored (last daily bar %(last)s). Refresh the prices first.")
                       % {"day": signal_day, "last": last})
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
        while shares > 0 and shares * price + commission(shares * price) > per:
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


def day_prices(codes: list[str], trading_date: dt.date, broker) -> dict[str, int]:
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


def sell_signals(config: StrategyConfig, codes: list[str], trading_date: dt.date,
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


def plan_exit(config: StrategyConfig, trading_date: dt.date, now: dt.datetime, broker,
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
    prices = {**(day_prices(rest, trading_date, broker) if rest else {}), **fetched}
    signals = sell_signals(config, codes, trading_date, prices, refresh.bars)
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
