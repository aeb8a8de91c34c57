"""Shared fixtures of the reports tests: a traded week on the paper broker (real orders services,
a deterministic stub strategy) and the fake OpenAI-compatible server with the settings that point
the real `openai` client at it."""

from __future__ import annotations

import datetime as dt
import io

import numpy as np
import pytest
from django.core.management import call_command

from accounts.models import BrokerMode
from accounts.tests.factories import BrokerAccountFactory
from market.brokers.paper import PaperBroker
from market.krx import SEOUL
from market.models import Instrument
from orders.models import AlertKind, Order, OrderReason, OrderStatus, TradingAlert
from orders.reconciliation import reconcile_orders
from orders.weekly import place_weekly_buys, run_exit_checks
from strategies.models import StrategyConfig, UniverseMode

from .fake_openai import FakeOpenAI

MONDAY = dt.date(2025, 11, 24)  # 2025-W48: a normal KRX week, Mon 24 .. Fri 28 November 2025
WEDNESDAY = dt.date(2025, 11, 26)
FRIDAY = dt.date(2025, 11, 28)
PREVIOUS_THURSDAY = dt.date(2025, 11, 20)
WEEK = "2025-W48"
API_KEY = "sk-test-SENTINEL-0123456789abcdefghijklmnop"


def at(day: dt.date, hour: int, minute: int = 0) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(hour, minute), tzinfo=SEOUL)


AFTER_THE_WEEK = at(FRIDAY, 18, 0)


class StubStrategy:
    """Buy signal for every code on every day, score = column index (the last codes rank first)."""

    needs_ohlc = False
    cross_sectional = False
    params: dict = {}
    stop_loss = -0.5
    take_profit = 5.0

    def signals_and_scores(self, close, **_):
        close = np.asarray(close)
        signals = np.ones(close.shape, dtype=np.int8)
        scores = np.tile(np.arange(close.shape[1], dtype=float), (close.shape[0], 1))
        return signals, scores


@pytest.fixture
def demo_codes(db):
    call_command("demo_data", symbols=5, years=1, end=FRIDAY.isoformat(), stdout=io.StringIO())
    return sorted(Instrument.objects.values_list("code", flat=True))


@pytest.fixture
def paper_account(user):
    return BrokerAccountFactory(owner=user, mode=BrokerMode.PAPER, app_key="", app_secret="", account_number="")


@pytest.fixture
def config(user, paper_account, demo_codes, monkeypatch):
    monkeypatch.setattr("orders.planning.create_strategy", lambda key, params: StubStrategy())
    return StrategyConfig.objects.create(
        owner=user, name="주간 평균회귀", strategy_key="mean_reversion", params={}, universe_mode=UniverseMode.CODES,
        universe_codes=" ".join(demo_codes), max_positions=2, cash_per_week=3_000_000, is_active=True,
        broker_account=paper_account,
    )


@pytest.fixture
def traded_week(user, paper_account, config, demo_codes):
    """2025-W48 of `user`: a position bought by hand the week before (kept), the strategy's Monday
    entry (two buys) and Friday exit (two sells, week end), a rejected order and an alert."""
    held_code = demo_codes[0]
    PaperBroker(paper_account, clock=lambda: at(PREVIOUS_THURSDAY, 9, 5)).place_order("buy", held_code, 7, order_type="01")
    entry = place_weekly_buys(config, MONDAY, at(MONDAY, 9, 5)).run
    reconcile_orders(paper_account, MONDAY, now=at(MONDAY, 9, 10))
    exit_ = run_exit_checks(config, FRIDAY, at(FRIDAY, 15, 15), liquidate=True).run
    reconcile_orders(paper_account, FRIDAY, now=at(FRIDAY, 15, 40))
    assert (entry.status, exit_.status) == ("complete", "complete"), (entry.reason, exit_.reason)
    Order.objects.create(
        config=config, broker_account=paper_account, client_order_id="manual-rejected-1", trading_date=WEDNESDAY,
        code=demo_codes[1], side="buy", quantity=5, reason=OrderReason.MANUAL, status=OrderStatus.REJECTED,
        error_message="주문가능금액을 초과했습니다", intent_at=at(WEDNESDAY, 10, 0),
    )
    alert = TradingAlert.objects.create(account=paper_account, kind=AlertKind.POSITION_MISMATCH,
                                        message="브로커 잔고와 기록된 체결이 다릅니다", blocks_entries=True)
    TradingAlert.objects.filter(pk=alert.pk).update(created_at=at(WEDNESDAY, 16, 0))
    return {"held_code": held_code, "bought": demo_codes[-2:], "codes": demo_codes}


@pytest.fixture
def fake_openai():
    server = FakeOpenAI().start()
    yield server
    server.stop()


@pytest.fixture
def model_settings(settings, fake_openai):
    """The real openai client pointed at the fake server; short time-out, fast retries."""
    settings.OPENAI_API_KEY = API_KEY
    settings.OPENAI_BASE_URL = fake_openai.base_url
    settings.OPENAI_MODEL = "gpt-4o-mini"
    settings.OPENAI_TIMEOUT = 0.5
    settings.OPENAI_MAX_RETRIES = 2
    settings.OPENAI_RETRY_BACKOFF = 0.01
    settings.REPORTS_EMAIL = False
    return settings


@pytest.fixture
def no_model(settings):
    settings.OPENAI_API_KEY = ""
    settings.REPORTS_EMAIL = False
    return settings
