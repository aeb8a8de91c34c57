"""Shared fixtures: demo bars, a paper account, a config and a deterministic stub strategy."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pytest
from django.core.management import call_command

from accounts.models import BrokerMode
from accounts.tests.factories import BrokerAccountFactory
from market.krx import SEOUL
from market.models import Instrument
from strategies.models import StrategyConfig, UniverseMode

from .kis_week import kis_week  # noqa: F401 - the fixture, for every orders test

MONDAY = dt.date(2025, 11, 24)  # a normal KRX week: Mon 24 .. Fri 28 November 2025
FRIDAY = dt.date(2025, 11, 28)


def at(day: dt.date, hour: int, minute: int = 0) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(hour, minute), tzinfo=SEOUL)


class StubStrategy:
    """Buy signal for every code on every day, score = column index (so the last codes rank first);
    sell signal only for the codes in `sell_codes`."""

    needs_ohlc = False
    params: dict = {}

    def __init__(self, codes=(), stop_loss=-0.05, take_profit=0.11, sell_codes=()):
        self.codes, self.stop_loss, self.take_profit, self.sell_codes = codes, stop_loss, take_profit, sell_codes

    def signals_and_scores(self, close, **_):
        close = np.asarray(close)
        signals = np.ones(close.shape, dtype=np.int8)
        scores = np.tile(np.arange(close.shape[1], dtype=float), (close.shape[0], 1))
        return signals, scores


class SellAllStrategy(StubStrategy):
    def signals_and_scores(self, close, **_):
        signals, scores = super().signals_and_scores(close)
        return -signals, scores


@pytest.fixture
def demo_bars(db):
    call_command("demo_data", symbols=5, years=1, end=FRIDAY.isoformat())
    return sorted(Instrument.objects.values_list("code", flat=True))


@pytest.fixture
def stub_strategy(monkeypatch):
    strategy = StubStrategy(stop_loss=-0.5, take_profit=5.0)  # no stop-loss/take-profit unless a test says so
    monkeypatch.setattr("orders.planning.create_strategy", lambda key, params: strategy)
    return strategy


@pytest.fixture
def paper_account(user):
    return BrokerAccountFactory(owner=user, mode=BrokerMode.PAPER, app_key="", app_secret="", account_number="")


@pytest.fixture
def config(user, paper_account, demo_bars, stub_strategy):
    return StrategyConfig.objects.create(
        owner=user, name="weekly", strategy_key="ma_crossover", params={}, universe_mode=UniverseMode.CODES,
        universe_codes=" ".join(demo_bars), max_positions=3, cash_per_week=3_000_000, is_active=True,
        broker_account=paper_account,
    )


@pytest.fixture(autouse=True)
def eager_celery(settings):
    """Alert notifications go through a Celery task (orders.notify_alert): run it inline in tests."""
    settings.CELERY_TASK_ALWAYS_EAGER = True
