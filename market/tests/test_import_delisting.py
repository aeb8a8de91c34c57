"""Delisting on the master import (market.import_service.import_instrument_masters and
`manage.py import_instruments`): an instrument a newer full master file no longer lists is marked
delisted (its bars kept), a partial file marks nothing, a code listed again is listed again."""

from __future__ import annotations

import datetime as dt

import pytest

from market.import_service import FULL_MASTER_MIN_RECORDS, import_instrument_masters
from market.krx import SEOUL
from market.models import DailyBar, Instrument
from market.tests.factories import DailyBarFactory, InstrumentFactory
from market.tests.test_import_service import run
from market.tests.test_importers import kosdaq_line, kospi_line, master_bytes

pytestmark = pytest.mark.django_db

FILLER = [f"{500000 + i:06d}" for i in range(FULL_MASTER_MIN_RECORDS)]  # makes a file full by its size


def write_master(path, codes, market="KOSPI"):
    line = kospi_line if market == "KOSPI" else kosdaq_line
    path.write_bytes(master_bytes([line(code, f"KR7{code}000", f"종목{code}") for code in codes]))
    return path


@pytest.fixture
def stored():
    """Three KOSPI instruments with bars up to Friday 2024-05-31, a KOSDAQ one, a demo one."""
    for code in ("005930", "000660", "035720"):
        instrument = InstrumentFactory(code=code, market="KOSPI", source="kis")
        for day in (dt.date(2024, 5, 30), dt.date(2024, 5, 31)):
            DailyBarFactory(instrument=instrument, date=day)
    InstrumentFactory(code="247540", market="KOSDAQ", source="kis")
    InstrumentFactory(code="400001", market="KOSPI", source="demo")


def listed() -> dict[str, tuple[bool, dt.date | None]]:
    return {i.code: (i.is_listed, i.delisted_on) for i in Instrument.objects.filter(code__lt="500000")}


def test_a_full_master_marks_the_missing_delisted_as_of_its_date(stored, tmp_path):
    kospi = write_master(tmp_path / "kospi_code.mst", ["005930", "000660", *FILLER])
    result = import_instrument_masters([kospi], as_of=dt.date(2024, 6, 5))
    assert result.delisted == ["035720"] and result.delisted_markets == ("KOSPI",)
    assert listed() == {
        "005930": (True, None), "000660": (True, None), "035720": (False, dt.date(2024, 6, 5)),
        "247540": (True, None),  # KOSDAQ: no KOSDAQ file was read
        "400001": (True, None),  # the demo market's synthetic instrument is not in any master
    }
    assert DailyBar.objects.filter(instrument__code="035720").count() == 2  # the bars stay
    assert "1 instruments marked delisted (KOSPI" in result.summary()


def test_without_a_date_the_trading_day_after_the_last_bar(stored, tmp_path):
    kospi = write_master(tmp_path / "kospi_code.mst", ["005930", *FILLER])
    kosdaq = write_master(tmp_path / "kosdaq_code.mst", FILLER[:3], market="KOSDAQ")
    result = import_instrument_masters([kospi, kosdaq])
    assert result.delisted == ["000660", "035720"]  # KOSDAQ's file is partial: 247540 stays listed
    assert result.partial == ["kosdaq_code.mst"]
    # Last bar Friday 2024-05-31: delisted on Monday 2024-06-03.
    assert listed()["000660"] == listed()["035720"] == (False, dt.date(2024, 6, 3))
    assert listed()["247540"] == (True, None)


def test_a_partial_file_marks_nothing_and_a_moved_code_is_not_delisted(stored, tmp_path):
    small = write_master(tmp_path / "kospi_code.mst", ["005930"])
    result = import_instrument_masters([small], as_of=dt.date(2024, 6, 5))
    assert result.delisted == [] and result.partial == ["kospi_code.mst"]
    assert "0 instruments marked delisted" in result.summary() and "partial" in result.summary()
    assert all(is_listed for is_listed, _ in listed().values())
    # 035720 moved to KOSDAQ: the KOSDAQ file lists it, so the full KOSPI file does not delist it.
    kospi = write_master(tmp_path / "kospi_code.mst", ["005930", "000660", *FILLER])
    kosdaq = write_master(tmp_path / "kosdaq_code.mst", ["247540", "035720"], market="KOSDAQ")
    result = import_instrument_masters([kosdaq, kospi], as_of=dt.date(2024, 6, 5))
    assert result.delisted == []
    assert Instrument.objects.get(code="035720").market == "KOSDAQ"


def test_a_code_listed_again_is_listed_again(stored, tmp_path):
    InstrumentFactory(code="005380", market="KOSPI", source="kis", is_listed=False, delisted_on=dt.date(2020, 1, 2))
    kospi = write_master(tmp_path / "kospi_code.mst", ["005930", "000660", "035720", "005380"])
    result = import_instrument_masters([kospi], full=False)
    assert result.reports[0].relisted == 1 and "1 re-listed" in result.reports[0].summary()
    assert listed()["005380"] == (True, None)


def test_the_command_says_how_many_were_delisted(stored, tmp_path, time_machine):
    kospi = write_master(tmp_path / "kospi_code.mst", ["005930"])
    out, _ = run("import_instruments", "--master", str(kospi), "--as-of", "2024-06-05")
    assert "0 instruments marked delisted: no full master file (kospi_code.mst taken as partial" in out
    out, _ = run("import_instruments", "--master", str(kospi), "--full")
    assert "2 instruments marked delisted (KOSPI" in out and "delisted: 000660, 035720" in out
    assert listed()["000660"] == (False, dt.date(2024, 6, 3))
    # Listed again by a later file, and marked again with the date it is given.
    kospi = write_master(tmp_path / "kospi_code.mst", ["005930", "000660", "035720"])
    out, _ = run("import_instruments", "--master", str(kospi), "--partial")
    assert "2 re-listed" in out and listed()["035720"] == (True, None)
    time_machine.move_to(dt.datetime(2024, 6, 7, 8, 0, tzinfo=SEOUL), tick=False)
    kospi = write_master(tmp_path / "kospi_code.mst", ["005930", "000660"])
    out, _ = run("import_instruments", "--master", str(kospi), "--full", "--as-of", "2024-06-07")
    assert "1 instruments marked delisted" in out and listed()["035720"] == (False, dt.date(2024, 6, 7))


def test_an_instrument_without_bars_is_delisted_on_the_import_day(tmp_path, time_machine):
    time_machine.move_to(dt.datetime(2024, 6, 7, 8, 0, tzinfo=SEOUL), tick=False)
    InstrumentFactory(code="005930", market="KOSPI", source="csv")
    InstrumentFactory(code="000660", market="KOSPI", source="csv")
    kospi = write_master(tmp_path / "kospi_code.mst", ["005930"])
    import_instrument_masters([kospi], full=True)
    assert listed()["000660"] == (False, dt.date(2024, 6, 7))
