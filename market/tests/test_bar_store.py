"""market.bar_store on the configured database (SQLite locally, MariaDB in CI): exact inserted/updated
counts, idempotence, batches, and ensure_instruments."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from django.db import transaction
from django.db.models import Count

from market.bar_store import MixedSourceError, UnknownInstrumentError, UpsertResult, ensure_instruments, upsert_bars
from market.importers import BarRow
from market.models import DailyBar, Instrument
from market.tests.factories import DailyBarFactory, InstrumentFactory

pytestmark = pytest.mark.django_db

DAY = date(2024, 1, 2)


def bars(code: str, days: int, start: date = DAY, close: int = 1_000, volume: int = 10) -> list[BarRow]:
    return [BarRow(code, start + timedelta(days=i), close, close + 10, close - 10, close, volume + i, close * volume)
            for i in range(days)]


def stored(code: str) -> list[tuple]:
    return list(DailyBar.objects.filter(instrument__code=code).order_by("date").values_list(
        "date", "open", "high", "low", "close", "volume", "traded_value"))


def test_inserts_then_updates_then_changes_nothing():
    InstrumentFactory(code="005930")
    assert upsert_bars(bars("005930", 30), source="csv") == UpsertResult(inserted=30, updated=0)
    first = stored("005930")
    assert first[0] == (DAY, 1_000, 1_010, 990, 1_000, 10, 10_000) and len(first) == 30

    assert upsert_bars(bars("005930", 30), source="csv") == UpsertResult(inserted=0, updated=30)  # idempotent
    assert stored("005930") == first

    changed = bars("005930", 40, close=2_000)  # 30 corrected + 10 new days
    assert upsert_bars(changed, source="csv", batch_size=7) == UpsertResult(inserted=10, updated=30)
    assert DailyBar.objects.count() == 40
    assert {row[4] for row in stored("005930")} == {2_000}


def test_counts_across_instruments_and_batches_with_other_rows_in_the_range():
    InstrumentFactory(code="005930")
    InstrumentFactory(code="000660")
    upsert_bars(bars("005930", 10)[::2], source="csv")  # every other day stored already
    rows = bars("005930", 10) + bars("000660", 10)
    result = upsert_bars(rows, source="csv", batch_size=6)
    assert result == UpsertResult(inserted=15, updated=5) and result.total == 20
    assert DailyBar.objects.count() == 20


def test_existing_rows_of_other_instruments_are_untouched():
    other = DailyBarFactory(date=DAY, close=71_000)
    InstrumentFactory(code="005930")
    upsert_bars(bars("005930", 3), source="csv")
    other.refresh_from_db()
    assert other.close == 71_000 and DailyBar.objects.count() == 4


def test_tuples_and_duplicates_in_one_call():
    instrument = InstrumentFactory(code="005930")
    rows = [
        (instrument.pk, DAY, 100, 110, 90, 105, 5, None),
        (instrument.pk, DAY, 100, 120, 90, 115, 6, 700),  # the later row of a day wins
        (instrument.pk, DAY + timedelta(days=1), 115, 120, 110, 118, 7, None),
    ]
    assert upsert_bars(rows, source="csv").inserted == 2
    assert stored("005930") == [(DAY, 100, 120, 90, 115, 6, 700), (DAY + timedelta(days=1), 115, 120, 110, 118, 7, None)]


def test_null_traded_value_can_be_set_and_cleared():
    InstrumentFactory(code="005930")
    row = bars("005930", 1)[0]
    upsert_bars([row], source="csv")
    without = BarRow(row.code, row.date, row.open, row.high, row.low, row.close, row.volume, None)
    assert upsert_bars([without], source="csv") == UpsertResult(0, 1)
    assert stored("005930")[0][-1] is None


def test_unknown_code_is_refused_before_writing():
    InstrumentFactory(code="005930")
    with pytest.raises(UnknownInstrumentError, match="999990"):
        upsert_bars(bars("005930", 2) + bars("999990", 2), source="csv")
    assert DailyBar.objects.count() == 0


def test_a_callers_transaction_makes_it_all_or_nothing():
    InstrumentFactory(code="005930")
    with pytest.raises(RuntimeError), transaction.atomic():
        upsert_bars(bars("005930", 10), source="csv", batch_size=3)
        raise RuntimeError("a later step failed")
    assert DailyBar.objects.count() == 0


def test_progress_callback_sees_every_batch():
    InstrumentFactory(code="005930")
    seen: list[UpsertResult] = []
    upsert_bars(bars("005930", 10), source="csv", batch_size=4, on_batch=seen.append)
    assert [r.inserted for r in seen] == [4, 4, 2]


def test_orm_path_gives_the_same_counts():
    InstrumentFactory(code="005930")
    assert upsert_bars(bars("005930", 5), source="csv", method="orm") == UpsertResult(5, 0)
    assert upsert_bars(bars("005930", 8, close=3_000), source="csv", method="orm") == UpsertResult(3, 5)
    assert {row[4] for row in stored("005930")} == {3_000}


def test_empty_input_and_bad_batch_size():
    assert upsert_bars([], source="csv") == UpsertResult()
    with pytest.raises(ValueError):
        upsert_bars([], source="csv", batch_size=0)


def test_demo_and_real_bars_never_share_an_instrument():
    demo = InstrumentFactory(code="005930", source="demo")
    real = InstrumentFactory(code="000660")
    upsert_bars(bars("005930", 3), source="demo")
    upsert_bars(bars("000660", 3), source="kis")
    with pytest.raises(MixedSourceError, match="005930: 데모.*import_prices"):
        upsert_bars(bars("005930", 4, close=2_000), source="csv")
    with pytest.raises(MixedSourceError, match="000660: 실제 일봉이 있는 종목에는"):
        upsert_bars(bars("000660", 4, close=2_000), source="demo")
    assert dict(DailyBar.objects.values_list("instrument__code").annotate(n=Count("id"))) == {"005930": 3, "000660": 3}
    assert set(demo.bars.values_list("source", "close")) == {("demo", 1_000)}
    assert set(real.bars.values_list("source", "close")) == {("kis", 1_000)}
    with pytest.raises(ValueError, match="unknown bar source"):
        upsert_bars(bars("000660", 1), source="real")


def test_a_bar_written_again_takes_the_new_source():
    InstrumentFactory(code="005930")
    upsert_bars(bars("005930", 2), source="csv")
    assert upsert_bars(bars("005930", 3), source="kis") == UpsertResult(inserted=1, updated=2)
    assert set(DailyBar.objects.values_list("source", flat=True)) == {"kis"}


def test_ensure_instruments_from_codes_and_records():
    InstrumentFactory(code="005930", name="삼성전자", market="KOSPI")
    sync = ensure_instruments(["005930", "000660", "000660"], source="kis")
    assert sync.created == ["000660"] and sync.updated == [] and sync.unchanged == 1
    assert Instrument.objects.get(code="000660").source == "kis"  # the source of the instruments it creates
    assert set(sync.ids) == {"005930", "000660"}
    placeholder = Instrument.objects.get(code="000660")
    assert (placeholder.name, placeholder.market) == ("000660", "KOSPI")
    assert Instrument.objects.get(code="005930").name == "삼성전자"  # a bare code changes nothing

    sync = ensure_instruments([
        {"code": "000660", "name": "SK하이닉스", "market": "KOSPI"},
        {"code": "247540", "name": "에코프로비엠", "market": "KOSDAQ", "is_etf": False},
        {"code": "005930", "name": "삼성전자", "market": "KOSPI"},
    ], source="csv")
    assert (sync.created, sync.updated, sync.unchanged) == (["247540"], ["000660"], 1)
    assert Instrument.objects.get(code="000660").name == "SK하이닉스"
    assert Instrument.objects.get(code="247540").market == "KOSDAQ"
    assert sync.ids == dict(Instrument.objects.values_list("code", "id"))

    kept = ensure_instruments([{"code": "000660", "name": "other"}], source="csv", update=False)
    assert kept.updated == [] and Instrument.objects.get(code="000660").name == "SK하이닉스"


def test_ensure_instruments_refuses_bad_records():
    with pytest.raises(ValueError, match="longer than 6"):
        ensure_instruments(["F70101781"], source="csv")
    with pytest.raises(ValueError, match="without a code"):
        ensure_instruments([{"name": "x"}], source="csv")
    assert ensure_instruments([], source="csv").ids == {}
