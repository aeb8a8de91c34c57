"""market/migrations/0003_data_source: bars stored before sources were recorded are recognised as demo when
they are exactly the demo generator's bars, else marked real (csv); instruments with demo bars become demo."""

from __future__ import annotations

import importlib
from datetime import date
from types import SimpleNamespace

import pytest
from django.apps import apps
from django.db import connection

from market.demo import DEFAULT_SEED, DEMO_EPOCH, generate_bars, generate_universe
from market.krx import trading_days
from market.models import DailyBar, Instrument
from market.tests.factories import DailyBarFactory, InstrumentFactory

pytestmark = pytest.mark.django_db

migration = importlib.import_module("market.migrations.0003_data_source")


def store_legacy(code: str, days: list[date], bars) -> Instrument:
    """Bars as a database from before the migration holds them: no source recorded (the column's default)."""
    instrument = InstrumentFactory(code=code, name=code)
    DailyBar.objects.bulk_create([
        DailyBar(instrument=instrument, date=day, open=o, high=h, low=lo, close=c, volume=v, traded_value=tv)
        for day, o, h, lo, c, v, tv in bars.tolist() if day in days
    ])
    return instrument


def sources(instrument: Instrument) -> dict[str, int]:
    return dict(sorted((source, instrument.bars.filter(source=source).count()) for source in ("demo", "csv")))


def test_demo_bars_are_recognised_and_real_ones_stay_real():
    days = trading_days(date(2026, 10, 1), date(2026, 11, 20))
    generated = generate_bars(generate_universe(3, DEFAULT_SEED), trading_days(DEMO_EPOCH, date(2026, 11, 20)))
    demo = store_legacy("000660", days, generated["000660"])
    # 005930 as the issue found it: real bars imported over a third of the demo dates and beyond them
    mixed = store_legacy("005930", days, generated["005930"])
    overwritten = days[::3]
    mixed.bars.filter(date__in=overwritten).update(close=55_000, open=55_000, high=56_000, low=54_000)
    DailyBarFactory(instrument=mixed, date=date(2026, 9, 30), close=54_000)
    real = InstrumentFactory(code="123450")
    DailyBarFactory(instrument=real, date=date(2026, 11, 20))

    migration.mark_demo_data(apps, SimpleNamespace(connection=connection))

    assert sources(demo) == {"csv": 0, "demo": len(days)}
    assert sources(mixed) == {"csv": len(overwritten) + 1, "demo": len(days) - len(overwritten)}
    assert set(mixed.bars.filter(date__in=overwritten).values_list("source", flat=True)) == {"csv"}
    assert sources(real) == {"csv": 1, "demo": 0}
    assert dict(Instrument.objects.values_list("code", "source")) == {"000660": "demo", "005930": "demo", "123450": "csv"}


def test_an_empty_database_is_left_as_it_is():
    InstrumentFactory(code="005930")
    migration.mark_demo_data(apps, SimpleNamespace(connection=connection))
    assert Instrument.objects.get().source == "csv"
