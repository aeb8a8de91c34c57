"""Costs and the universe as it was, from the database: load_market_data's volume and point-in-time
top-N mask (delisted instruments included), create_backtest_run's checks, execute_backtest_run."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest

from market.krx import trading_days
from market.models import DailyBar
from market.tests.factories import InstrumentFactory
from strategies.market_data import load_market_data
from strategies.services import BacktestInputError, create_backtest_run, execute_backtest_run

pytestmark = pytest.mark.django_db

DAYS = trading_days(dt.date(2024, 1, 2), dt.date(2024, 6, 28))
GONE = dt.date(2024, 3, 15)  # BIG's last bar


@pytest.fixture
def stored():
    """BIG (delisted after GONE) trades far more than MID, MID more than LOW; all three flat."""
    big = InstrumentFactory(code="000010", name="큰종목", is_listed=False, delisted_on=dt.date(2024, 3, 18))
    mid = InstrumentFactory(code="000020", name="중간종목")
    low = InstrumentFactory(code="000030", name="작은종목")
    rows = []
    for day in DAYS:
        for instrument, price, volume in ((big, 10_000, 1_000_000), (mid, 20_000, 10_000), (low, 5_000, 1_000)):
            if instrument is big and day > GONE:
                continue
            # MID's stored 거래대금 is used as is; LOW has none stored: close × volume.
            traded = price * volume * 3 if instrument is mid else (None if instrument is low else price * volume)
            rows.append(DailyBar(instrument=instrument, date=day, open=price, high=price, low=price, close=price,
                                 volume=volume, traded_value=traded))
    DailyBar.objects.bulk_create(rows)
    return ["000010", "000020", "000030"]


def test_volume_is_loaded_and_the_top_n_follows_the_dates(stored):
    data = load_market_data(stored, dt.date(2024, 2, 1), dt.date(2024, 6, 28))
    assert data.universe is None
    assert data.volume[0].tolist() == [1_000_000, 10_000, 1_000]
    assert data.volume[-1, 0] == 0  # no bar after delisting
    data = load_market_data(stored, dt.date(2024, 2, 1), dt.date(2024, 6, 28), universe_top_n=1)
    rows = data.index.date
    assert data.universe[rows <= GONE].argmax(axis=1).tolist() == [0] * int((rows <= GONE).sum())  # the delisted one
    assert (data.universe[rows > GONE].argmax(axis=1) == 1).all()
    assert data.universe.sum(axis=1).tolist() == [1] * len(rows)
    two = load_market_data(stored, dt.date(2024, 2, 1), dt.date(2024, 6, 28), universe_top_n=2)
    assert two.universe[rows > GONE].tolist() == [[False, True, True]] * int((rows > GONE).sum())


def test_bad_cost_inputs_are_clear_korean_errors(stored):
    base = {"strategy_key": "mean_reversion", "params": {}, "codes": stored, "start": dt.date(2024, 3, 4),
            "end": dt.date(2024, 6, 28)}
    for options, field, text in (
        ({"participation_cap": Decimal("0")}, "participation_cap", "거래량 참여 한도"),
        ({"participation_cap": Decimal("1.5")}, "participation_cap", "거래량 참여 한도"),
        ({"participation_cap": Decimal("0.00005")}, "participation_cap", "소수점 넷째 자리"),
        ({"spread_ticks": 21}, "spread_ticks", "소형주 호가 스프레드"),
        ({"small_cap_value": -1}, "small_cap_value", "소형주 기준 거래대금"),
        ({"universe_top_n": 0}, "universe_top_n", "시점별 상위 N"),
    ):
        with pytest.raises(BacktestInputError, match=text) as caught:
            create_backtest_run(None, **base, **options)
        assert caught.value.field == field


def test_the_run_takes_the_costs_and_the_universe(stored, monkeypatch):
    import strategies.services as services

    seen = []
    real = services.run_backtest
    monkeypatch.setattr(services, "run_backtest", lambda strategy, data, config: seen.append((data, config))
                        or real(strategy, data, config))
    base = {"strategy_key": "mean_reversion", "params": {"window": 5, "z_threshold": 0.5}, "codes": stored,
            "start": dt.date(2024, 3, 4), "end": dt.date(2024, 6, 28)}
    run = create_backtest_run(None, **base, participation_cap=Decimal("0.0500"), spread_ticks=2,
                              small_cap_value=2_000_000_000, universe_top_n=2)
    assert (run.participation_cap, run.spread_ticks, run.small_cap_value, run.universe_top_n) == (
        Decimal("0.05"), 2, 2_000_000_000, 2)
    run = execute_backtest_run(run)
    assert run.status == "done", run.error
    data, config = seen[-1]
    assert (config.participation_cap, config.spread_ticks, config.small_cap_value) == (Decimal("0.05"), 2, 2_000_000_000)
    assert data.universe is not None and data.universe.sum(axis=1).max() == 2 and data.volume is not None
    plain = execute_backtest_run(create_backtest_run(None, **base))
    data, config = seen[-1]
    assert plain.status == "done" and data.universe is None
    assert (config.participation_cap, config.spread_ticks, config.small_cap_value) == (None, 0, 1_000_000_000)
