"""The live jobs follow the backtest on real KRX bars and on the calendar's odd days.

Real daily bars of 2023 and 2024 (`../shared/data/krx`, Naver's KRX prices; never copied into the
repository) go in through the CSV import, as a user's would. Then every week is replayed through the
live jobs on the paper broker (`replay_paper_week`: the entry at 09:05 of the week's first trading
day — again after the open when the day opens late —, the 15:15 checks, the exit on the last day,
reconciliation after each), and the backtest runs on the same bars with the same settings. The trades
must be the same list, and the paper account's cash the backtest's final equity.

The years hold what broke the promise before: 2023-01-02 and 2024-01-02 open at 10:00 (both entry
days: a Monday, and a Tuesday after the New Year holiday), holiday Mondays (2023-01-23, 2023-05-29,
2024-02-12...), the CSAT days' late open and close (2023-11-16, 2024-11-14), the year-end closures
(2023-12-29, 2024-12-31), a suspension (009830 in 2023, 012450 in 2024) and listings during the
period (459580 in 2023, 443060 in 2024).
"""

from __future__ import annotations

import datetime as dt
import os
import shutil
from pathlib import Path

import pytest
from django.conf import settings
from django.core.management import call_command

from accounts.models import BrokerMode
from accounts.tests.factories import BrokerAccountFactory
from market.krx import SEOUL, trading_days, week_trading_days
from market.models import Instrument, PaperAccount, PaperPosition
from orders.models import Fill, OrderSide, WeeklyRun, WeeklyRunStatus
from orders.positions import positions_for
from orders.replay import replay_paper_week
from strategies.backtest import BacktestConfig, run_backtest
from strategies.library import create_strategy, get_strategy
from strategies.market_data import load_market_data
from strategies.models import StrategyConfig, UniverseMode

pytestmark = pytest.mark.django_db

KRX_DATA = Path(os.environ.get("KRX_DATA_DIR") or Path(settings.BASE_DIR).parent / "shared" / "data" / "krx")
FIVE = ["000660", "005380", "005930", "035420", "051910"]  # the data set's "main" group
# Thirty codes: the five, the suspensions and the listings of the period, and the first (by code) other
# codes of the data set's 2026 KOSPI-100 group listed before 2022.
THIRTY = FIVE + ["009830", "012450", "443060", "459580",
                 "000150", "000270", "000810", "000880", "003230", "003490", "003670", "005385", "005387",
                 "005490", "005830", "005935", "005940", "006260", "006400", "006800", "009150", "009540", "010120",
                 "010130", "010950"]
INITIAL_CASH = 10_000_000
MAX_POSITIONS = 5


def at(day: dt.date, hour: int, minute: int = 0) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(hour, minute), tzinfo=SEOUL)


@pytest.fixture
def real_bars(tmp_path):
    """Import the codes' real bars through `import_prices --csv` (a user's path)."""
    if not (KRX_DATA / "bars").is_dir():
        if os.environ.get("REQUIRE_KRX_DATA"):
            pytest.fail(f"real KRX bars are required but {KRX_DATA} is missing")
        pytest.skip(f"no real KRX bars at {KRX_DATA} (set KRX_DATA_DIR)")

    def load(codes: list[str]) -> list[str]:
        folder = tmp_path / "bars"
        folder.mkdir(exist_ok=True)
        for code in codes:
            shutil.copy(KRX_DATA / "bars" / f"{code}.csv", folder / f"{code}.csv")
        call_command("import_prices", csv=str(folder))
        assert set(Instrument.objects.values_list("code", flat=True)) >= set(codes)
        return codes

    return load


def replay(user, codes: list[str], first: dt.date, last: dt.date) -> StrategyConfig:
    account = BrokerAccountFactory(owner=user, mode=BrokerMode.PAPER, app_key="", app_secret="", account_number="")
    PaperAccount.objects.create(broker_account=account, initial_cash=INITIAL_CASH, cash=INITIAL_CASH)
    config = StrategyConfig.objects.create(
        owner=user, name="real bars", strategy_key="mean_reversion",
        params=get_strategy("mean_reversion").defaults(), universe_mode=UniverseMode.CODES,
        universe_codes=" ".join(codes), max_positions=MAX_POSITIONS, cash_per_week=10**12, is_active=True,
        broker_account=account,
    )
    mondays = sorted({day - dt.timedelta(days=day.weekday()) for day in trading_days(first, last)})
    for monday in mondays:
        replay_paper_week(config, monday, until=at(last + dt.timedelta(days=1), 0, 0))
    return config


def live_trades(config: StrategyConfig) -> list[dict]:
    held: dict[str, Fill] = {}
    trades = []
    for fill in Fill.objects.filter(order__config=config).select_related("order").order_by("filled_at", "pk"):
        order = fill.order
        if order.side == OrderSide.BUY:
            assert order.code not in held
            held[order.code] = fill
            continue
        buy = held.pop(order.code)
        assert fill.quantity == buy.quantity
        trades.append({
            "code": order.code, "entry_date": buy.order.trading_date, "entry_price": buy.price,
            "exit_date": order.trading_date, "exit_price": fill.price, "shares": fill.quantity,
            "buy_fee": buy.commission, "sell_fee": fill.commission, "tax": fill.tax, "reason": order.reason,
        })
    return sorted(trades, key=lambda t: (t["exit_date"], t["entry_date"], t["code"]))


def backtest(codes: list[str], first: dt.date, last: dt.date):
    data = load_market_data(codes, first, last)
    config = BacktestConfig(initial_cash=INITIAL_CASH, max_positions=MAX_POSITIONS,
                            commission=settings.COMMISSION_RATE or None, tax=None, start=first, end=last)
    result = run_backtest(create_strategy("mean_reversion", get_strategy("mean_reversion").defaults()), data, config)
    trades = [
        {"code": t["code"], "entry_date": dt.date.fromisoformat(t["entry_date"]), "entry_price": t["entry_price"],
         "exit_date": dt.date.fromisoformat(t["exit_date"]), "exit_price": t["exit_price"], "shares": t["shares"],
         "buy_fee": t["buy_fee"], "sell_fee": t["sell_fee"], "tax": t["tax"], "reason": t["reason"]}
        for t in result.trade_records()
    ]
    return result, sorted(trades, key=lambda t: (t["exit_date"], t["entry_date"], t["code"]))


@pytest.mark.parametrize(("codes", "first", "last", "minimum"), [
    pytest.param(FIVE, dt.date(2023, 1, 2), dt.date(2023, 12, 28), 8, id="five-2023"),
    pytest.param(THIRTY, dt.date(2023, 1, 2), dt.date(2024, 12, 30), 100, id="thirty-2023-2024"),
])
def test_live_jobs_on_real_bars_trade_exactly_as_the_backtest(real_bars, user, codes, first, last, minimum,
                                                             record_property):
    assert len(codes) == len(set(codes))
    real_bars(codes)
    config = replay(user, codes, first, last)
    live = live_trades(config)
    result, expected = backtest(codes, first, last)

    assert len(expected) >= minimum, f"only {len(expected)} trades: not a meaningful comparison"
    assert live == expected
    open_live = {code: p.quantity for code, p in positions_for(config).items()}
    assert open_live == dict(zip(result.open_positions["code"], result.open_positions["shares"].astype(int),
                                 strict=True))
    if not open_live:
        assert not PaperPosition.objects.filter(account__broker_account=config.broker_account).exists()
        assert PaperAccount.objects.get(broker_account=config.broker_account).cash == int(result.equity.iloc[-1])

    # The late-open entry days went out after the open, not refused at 09:05, and no run was lost.
    for late in (dt.date(2023, 1, 2), dt.date(2024, 1, 2)):
        if first <= late <= last:
            entry = WeeklyRun.objects.get(config=config, job="entry", trading_date=late)
            assert (entry.status, entry.attempts) == (WeeklyRunStatus.COMPLETE, 2), entry.reason
            assert {o.intent_at for o in entry.orders.all()} <= {at(late, 10, 0)}
    assert not WeeklyRun.objects.filter(config=config).exclude(status=WeeklyRunStatus.COMPLETE).exists()
    weeks = {week_trading_days(day)[0] for day in trading_days(first, last)}
    assert WeeklyRun.objects.filter(config=config, job="entry").count() == len(weeks)
    record_property("trades_compared", len(live))
    print(f"\nreal bars {len(codes)} codes {first}..{last}: {len(live)} trades equal to the backtest")
