"""The fake KIS host, the clock and one strategy config on a KIS account: a whole week over real HTTP.
The `kis_week` fixture is registered for the orders tests by conftest.py."""

from __future__ import annotations

import datetime as dt

import pytest
import time_machine
from django.utils import timezone

from accounts.models import BrokerMode
from accounts.tests.factories import BrokerAccountFactory
from market.kis.ratelimit import NoRateLimit
from market.krx import SEOUL, previous_trading_day, trading_days, week_trading_days
from market.models import DailyBar, Instrument
from market.tests.fake_kis import (
    BALANCE_PATH,
    BUYABLE_PATH,
    DAILY_CHART_PATH,
    DAILY_ORDERS_PATH,
    FAKE_ACCOUNT_NO,
    FAKE_APP_KEY,
    FAKE_APP_SECRET,
    ORDER_CASH_PATH,
    QUOTE_PATH,
    FakeKisServer,
)
from orders.reconciliation import reconcile_orders
from orders.weekly import place_weekly_buys, run_exit_checks
from strategies.models import StrategyConfig, UniverseMode

WEEK = dt.date(2026, 11, 23)  # Mon 23 .. Fri 27 November 2026
HOLIDAY_WEEK = dt.date(2026, 10, 5)  # Monday 5 October (대체공휴일) and Friday 9 October (한글날) closed
CODES = ("000660", "005930", "035720")  # the stub ranks by column: 035720 first, then 005930

# KIS_API.md §4.0: current tr_ids, real vs 모의투자.
TR_IDS = {
    "real": {"buy": "TTTC0012U", "sell": "TTTC0011U", DAILY_ORDERS_PATH: "TTTC0081R", BALANCE_PATH: "TTTC8434R",
             BUYABLE_PATH: "TTTC8908R"},
    "paper": {"buy": "VTTC0012U", "sell": "VTTC0011U", DAILY_ORDERS_PATH: "VTTC0081R", BALANCE_PATH: "VTTC8434R",
              BUYABLE_PATH: "VTTC8908R"},
}
QUOTATION_TR_IDS = {QUOTE_PATH: "FHKST01010100", DAILY_CHART_PATH: "FHKST03010100"}


def seoul(day: dt.date, hour: int, minute: int = 0) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(hour, minute), tzinfo=SEOUL)


class KisWeek:
    """The fake KIS host, the clock and one strategy config on a KIS account."""

    def __init__(self, fake: FakeKisServer, traveller, config: StrategyConfig) -> None:
        self.fake, self.traveller, self.config = fake, traveller, config
        self.account = config.broker_account

    def at(self, day: dt.date, hour: int, minute: int = 0) -> dt.datetime:
        self.traveller.move_to(seoul(day, hour, minute))
        self.fake.today = day
        return timezone.now()

    def close_at(self, day: dt.date, closes: dict[str, int]) -> None:
        """The day's price of each code: the quote (and the market-order fill) and the chart's bar."""
        for code, close in closes.items():
            stock = self.fake.stocks[code]
            stock.price = close
            self.fake.set_bar(code, day, open=stock.base_price, close=close)

    def entry(self, day: dt.date):
        result = place_weekly_buys(self.config, day, self.at(day, 9, 5))
        reconcile_orders(self.account, day, now=self.at(day, 9, 10))
        return result

    def check(self, day: dt.date, closes: dict[str, int]):
        self.close_at(day, closes)
        result = run_exit_checks(self.config, day, self.at(day, 15, 15))
        reconcile_orders(self.account, day, now=self.at(day, 15, 20))
        return result

    def order_tr_ids(self) -> list[str]:
        return [r.tr_id for r in self.fake.requests if r.path == ORDER_CASH_PATH and r.method == "POST"]

    def tr_ids(self, path: str) -> set[str]:
        return set(self.fake.tr_ids(path))


def store_history(fake: FakeKisServer, entry_day: dt.date) -> None:
    """Bars up to the trading day before the entry day (the signal day), as the after-close refresh
    would have stored them from the same chart."""
    for code in CODES:
        stock = fake.stocks[code]
        instrument = Instrument.objects.create(code=code, name=stock.name, market="KOSPI")
        days = trading_days(entry_day - dt.timedelta(days=45), previous_trading_day(entry_day))
        DailyBar.objects.bulk_create([
            DailyBar(instrument=instrument, date=day, open=int(row["stck_oprc"]), high=int(row["stck_hgpr"]),
                     low=int(row["stck_lwpr"]), close=int(row["stck_clpr"]), volume=int(row["acml_vol"]),
                     traded_value=int(row["acml_tr_pbmn"]))
            for day in days for row in [fake.bar_for(code, day)]
        ])


@pytest.fixture
def kis_week(request, user, settings, monkeypatch, stub_strategy):
    """Options by indirect parametrisation: `mode` ("paper" = 모의투자 host and a simulated account,
    "real" = real host and a real account with live trading confirmed), `monday`, `cash_per_week`,
    `max_positions`."""
    options = {"mode": "paper", "monday": WEEK, "cash_per_week": 2_000_000, "max_positions": 2}
    options.update(getattr(request, "param", {}))
    mode, monday = options["mode"], options["monday"]
    stub_strategy.stop_loss, stub_strategy.take_profit = -0.05, 5.0
    # One rate limit for this process only (the fake does not enforce one here): no waiting in tests.
    monkeypatch.setattr("market.brokers.kis.rate_limiter_for", lambda kis_mode: NoRateLimit())
    with time_machine.travel(seoul(monday, 8, 50), tick=True) as traveller:
        with FakeKisServer(mode=mode, rate_limit_per_second=None, today=monday) as fake:
            fake.token_min_interval = 0  # time-machine moves the clock, not time.monotonic
            settings.KIS_BASE_URLS = {"real": fake.base_url if mode == "real" else "",
                                      "paper": fake.base_url if mode == "paper" else ""}
            account = BrokerAccountFactory(
                owner=user, mode=BrokerMode.REAL if mode == "real" else BrokerMode.SIMULATED,
                app_key=FAKE_APP_KEY, app_secret=FAKE_APP_SECRET, account_number=FAKE_ACCOUNT_NO,
            )
            if mode == "real":
                account.live_trading_confirmed_at = timezone.now()
                account.save(update_fields=["live_trading_confirmed_at"])
            store_history(fake, week_trading_days(monday)[0])
            config = StrategyConfig.objects.create(
                owner=user, name=f"kis {mode}", strategy_key="ma_crossover", params={},
                universe_mode=UniverseMode.CODES, universe_codes=" ".join(CODES),
                max_positions=options["max_positions"], cash_per_week=options["cash_per_week"], is_active=True,
                broker_account=account,
            )
            yield KisWeek(fake, traveller, config)


