"""Issue 6: "A paper run over 52 past weeks of stored bars reproduces the backtest's trades exactly."

The live jobs run on the job clock for 52 consecutive past weeks on the paper broker (entry at
09:05 on the week's first trading day, checks at 15:15 on every trading day, reconciliation after
each), with the real mean-reversion strategy on demo bars; the backtest runs on the same bars with
the same parameters, commission and tax. The fills (code, entry date and price, exit date and
price, shares, fees, tax, reason) must be the same list, and the paper account's cash must end at
the backtest's final equity.
"""

from __future__ import annotations

import datetime as dt

import pytest
from django.conf import settings
from django.core.management import call_command

from accounts.models import BrokerMode
from accounts.tests.factories import BrokerAccountFactory
from market.krx import SEOUL, week_trading_days
from market.models import Instrument, PaperAccount, PaperPosition
from orders.models import Fill, OrderSide, WeeklyRunStatus
from orders.positions import positions_for
from orders.reconciliation import reconcile_orders
from orders.weekly import place_weekly_buys, run_exit_checks
from strategies.backtest import BacktestConfig, run_backtest
from strategies.library import create_strategy, get_strategy
from strategies.market_data import load_market_data
from strategies.models import StrategyConfig, UniverseMode

pytestmark = pytest.mark.django_db

FIRST_MONDAY = dt.date(2024, 12, 2)
WEEKS = 52
LAST_FRIDAY = FIRST_MONDAY + dt.timedelta(weeks=WEEKS - 1, days=4)  # 2025-11-28
SYMBOLS = 40
INITIAL_CASH = 10_000_000
MAX_POSITIONS = 5


def at(day: dt.date, hour: int, minute: int = 0) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(hour, minute), tzinfo=SEOUL)


@pytest.fixture(scope="module")
def demo_market(django_db_setup, django_db_blocker):
    """~2 years of demo bars (the weeks plus a year of warm-up), stored once for the module."""
    with django_db_blocker.unblock():
        call_command("demo_data", symbols=SYMBOLS, years=2, end=LAST_FRIDAY.isoformat())
        codes = sorted(Instrument.objects.values_list("code", flat=True))
    yield codes
    with django_db_blocker.unblock():
        Instrument.objects.all().delete()


def replay_live(user, codes: list[str], cash_per_week: int) -> tuple[StrategyConfig, list[dict]]:
    account = BrokerAccountFactory(owner=user, mode=BrokerMode.PAPER, app_key="", app_secret="", account_number="")
    PaperAccount.objects.create(broker_account=account, initial_cash=INITIAL_CASH, cash=INITIAL_CASH)
    config = StrategyConfig.objects.create(
        owner=user, name="replay", strategy_key="mean_reversion", params=get_strategy("mean_reversion").defaults(),
        universe_mode=UniverseMode.CODES, universe_codes=" ".join(codes), max_positions=MAX_POSITIONS,
        cash_per_week=cash_per_week, is_active=True, broker_account=account,
    )
    for week in range(WEEKS):
        days = week_trading_days(FIRST_MONDAY + dt.timedelta(weeks=week))
        entry = place_weekly_buys(config, days[0], at(days[0], 9, 5))
        assert entry.run.status == WeeklyRunStatus.COMPLETE, (days[0], entry.run.reason)
        reconcile_orders(account, days[0], now=at(days[0], 9, 10))
        for day in days:
            check = run_exit_checks(config, day, at(day, 15, 15))
            assert check.run.status == WeeklyRunStatus.COMPLETE, (day, check.run.reason)
            reconcile_orders(account, day, now=at(day, 15, 20))
    return config, live_trades(config)


def live_trades(config: StrategyConfig) -> list[dict]:
    """Round trips from the config's fills, in the backtest's trade order."""
    held: dict[str, Fill] = {}
    trades = []
    for fill in Fill.objects.filter(order__config=config).select_related("order").order_by("filled_at", "pk"):
        order = fill.order
        assert fill.quantity == order.quantity  # one fill per order on the paper broker
        if order.side == OrderSide.BUY:
            assert order.code not in held
            held[order.code] = fill
            continue
        buy = held.pop(order.code)
        assert fill.quantity == buy.quantity  # a position is always sold whole
        trades.append({
            "code": order.code, "entry_date": buy.order.trading_date, "entry_price": buy.price,
            "exit_date": order.trading_date, "exit_price": fill.price, "shares": fill.quantity,
            "buy_fee": buy.commission, "sell_fee": fill.commission, "tax": fill.tax, "reason": order.reason,
        })
    return sorted(trades, key=lambda t: (t["exit_date"], t["entry_date"], t["code"]))


def backtest_trades(codes: list[str], cash_per_week: int | None, engine: str = "vectorised"):
    data = load_market_data(codes, FIRST_MONDAY, LAST_FRIDAY)
    config = BacktestConfig(
        initial_cash=INITIAL_CASH, max_positions=MAX_POSITIONS, commission=settings.COMMISSION_RATE or None,
        tax=None, start=FIRST_MONDAY, end=LAST_FRIDAY, cash_per_week=cash_per_week,
    )
    result = run_backtest(create_strategy("mean_reversion", get_strategy("mean_reversion").defaults()), data, config,
                          engine=engine)
    trades = [
        {"code": t["code"], "entry_date": dt.date.fromisoformat(t["entry_date"]), "entry_price": t["entry_price"],
         "exit_date": dt.date.fromisoformat(t["exit_date"]), "exit_price": t["exit_price"], "shares": t["shares"],
         "buy_fee": t["buy_fee"], "sell_fee": t["sell_fee"], "tax": t["tax"], "reason": t["reason"]}
        for t in result.trade_records()
    ]
    return result, sorted(trades, key=lambda t: (t["exit_date"], t["entry_date"], t["code"]))


@pytest.mark.parametrize("cash_per_week", [
    pytest.param(None, id="all-cash"),  # cash_per_week above any balance: the account's cash is split
    pytest.param(7_000_000, id="capped"),  # the cap binds while the account holds more than 7M
])
def test_paper_replay_of_52_weeks_reproduces_the_backtest(demo_market, user, cash_per_week, record_property):
    codes = demo_market
    config, live = replay_live(user, codes, cash_per_week or 10**12)
    result, expected = backtest_trades(codes, cash_per_week)

    assert len(live) > 20, f"only {len(live)} trades in 52 weeks: not a meaningful comparison"
    assert live == expected
    # Nothing left open (or the same left open), and the paper account's cash is the backtest's equity.
    open_live = {code: p.quantity for code, p in positions_for(config).items()}
    assert open_live == dict(zip(result.open_positions["code"], result.open_positions["shares"].astype(int),
                                 strict=True))
    if not open_live:
        assert not PaperPosition.objects.filter(account__broker_account=config.broker_account).exists()
        assert PaperAccount.objects.get(broker_account=config.broker_account).cash == int(result.equity.iloc[-1])
    # The reference engine (plain per-symbol Python) agrees with the vectorised one.
    assert backtest_trades(codes, cash_per_week, engine="reference")[1] == expected
    reasons = sorted({t["reason"] for t in live})
    record_property("trades_compared", len(live))
    print(f"\npaper replay ({cash_per_week or 'all cash'}): {len(live)} trades compared over {WEEKS} weeks, "
          f"reasons {reasons}")
