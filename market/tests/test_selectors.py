"""market.selectors: instrument search (code prefix, name, English name, 초성) and the data reads."""

import datetime as dt

import pytest

from market import selectors
from market.models import Instrument, Outlier, WeeklyAnalysis
from market.selectors import initial_consonants, search_instruments
from market.tests.factories import DailyBarFactory, InstrumentFactory

pytestmark = pytest.mark.django_db

UNIVERSE = [
    ("005930", "삼성전자", "Samsung Electronics"),
    ("207940", "삼성바이오로직스", "Samsung Biologics"),
    ("000660", "SK하이닉스", "SK hynix"),
    ("066570", "LG전자", "LG Electronics"),
    ("004170", "신세계", "Shinsegae"),
    ("035720", "카카오", "Kakao"),
]


@pytest.fixture
def universe():
    return {code: InstrumentFactory(code=code, name=name, name_en=name_en) for code, name, name_en in UNIVERSE}


def codes(query, limit=None):
    return [instrument.code for instrument in search_instruments(query, limit)]


def test_initial_consonants():
    assert initial_consonants("삼성전자") == "ㅅㅅㅈㅈ"
    assert initial_consonants("SK하이닉스") == "SKㅎㅇㄴㅅ"
    assert initial_consonants("까치") == "ㄲㅊ"


def test_initial_consonant_search(universe):
    assert codes("ㅅㅅㅈㅈ") == ["005930"]
    # ㅅㅅ: 신세계 (ㅅㅅㄱ), 삼성전자, 삼성바이오로직스 — all start with it; shorter names first
    assert codes("ㅅㅅ") == ["004170", "005930", "207940"]
    assert codes("ㅋㅋㅇ") == ["035720"]
    assert codes("ㅈㅈ") == ["005930", "066570"]  # contains, not only prefix
    assert codes("ㅎㅇㄴㅅ") == ["000660"]


def test_mixed_syllables_and_initials_and_a_half_typed_syllable(universe):
    assert codes("삼ㅅㅈ") == ["005930"]
    assert codes("삼성저") == ["005930"]  # 전 still being composed
    assert codes("sk하ㅇ") == ["000660"]


def test_code_prefix(universe):
    assert codes("0059") == ["005930"]
    assert codes("005930") == ["005930"]
    assert set(codes("00")) == {"005930", "000660", "004170"}


def test_korean_name_substring_and_prefix_ranking(universe):
    assert codes("전자") == ["005930", "066570"]  # same length: by code
    assert codes("삼성") == ["005930", "207940"]  # both prefixes, the shorter name first
    assert codes("삼성 전자") == ["005930"]  # spaces ignored
    assert codes("하이닉스") == ["000660"]


def test_english_name_case_insensitive(universe):
    assert codes("samsung") == ["005930", "207940"]
    assert codes("HYNIX") == ["000660"]
    assert codes("sk") == ["000660"]


def test_exact_name_first(universe):
    InstrumentFactory(code="999990", name="카카오뱅크")
    assert codes("카카오")[:2] == ["035720", "999990"]


def test_no_match_empty_query_and_limit(universe):
    assert codes("없는종목") == []
    assert codes("   ") == []
    assert len(codes("ㅅ", limit=2)) == 2


def test_delisted_instruments_come_last(universe):
    InstrumentFactory(code="999980", name="삼성물산", is_listed=False)
    assert codes("삼성") == ["005930", "207940", "999980"]  # within a rank, listed ones first


def test_index_follows_new_and_renamed_instruments(universe):
    assert codes("ㅎㄷㅊ") == []
    InstrumentFactory(code="005380", name="현대차")
    assert codes("ㅎㄷㅊ") == ["005380"]  # a new row changes the count: rebuilt
    Instrument.objects.filter(code="005380").update(name="현대자동차")
    selectors.invalidate_instrument_index()
    assert codes("ㅎㄷㅈㄷㅊ") == ["005380"]


def test_search_is_fast_enough_for_three_thousand_instruments(django_assert_max_num_queries):
    Instrument.objects.bulk_create(
        [Instrument(code=f"{100000 + i:06d}", name=f"테스트{i}전자") for i in range(3000)]
    )
    search_instruments("ㅌㅅ")  # builds the index
    import time

    started = time.perf_counter()
    with django_assert_max_num_queries(2):  # the aggregate that checks the index, and the rows
        results = search_instruments("ㅌㅅㅌ", limit=20)
    assert len(results) == 20
    assert time.perf_counter() - started < 0.5


@pytest.fixture
def bars():
    instrument = InstrumentFactory(code="005930", name="삼성전자")
    days = [dt.date(2026, 3, 2) + dt.timedelta(days=i) for i in range(5)]
    for i, day in enumerate(reversed(days)):
        DailyBarFactory(instrument=instrument, date=day, open=100 + i, close=200 + i, volume=1000 + i)
    return instrument, days


def test_close_series_is_ordered_and_filtered(bars):
    _, days = bars
    series = selectors.close_series("005930")
    assert [day for day, _ in series] == days
    assert series[0] == (days[0], 204)
    assert [day for day, _ in selectors.close_series("005930", days[1], days[3])] == days[1:4]
    assert selectors.close_series("999999") == []


def test_bars_for_fields(bars):
    _, days = bars
    rows = selectors.bars_for("005930", fields=["close", "volume"])
    assert rows[0] == {"date": days[0], "close": 204, "volume": 1004}
    assert list(selectors.bars_for("005930", days[4], None, "open")[0]) == ["date", "open"]
    assert set(selectors.bars_for("005930")[0]) == {"date", "open", "high", "low", "close", "volume"}
    with pytest.raises(ValueError, match="price"):
        selectors.bars_for("005930", fields="close,price")


def test_weekly_analysis_and_outliers(bars):
    instrument, days = bars
    old = WeeklyAnalysis.objects.create(
        instrument=instrument, week_start=dt.date(2026, 2, 23), iso_week="2026-W09", trading_days=5, close=190,
    )
    new = WeeklyAnalysis.objects.create(
        instrument=instrument, week_start=dt.date(2026, 3, 2), iso_week="2026-W10", trading_days=5, close=200,
    )
    Outlier.objects.create(analysis=new, date=days[2], series="close", method="zscore", value=200, score=2.5)
    Outlier.objects.create(analysis=old, date=dt.date(2026, 2, 24), series="volume", method="iqr", value=9, score=3)
    rows = selectors.weekly_analysis_for("005930", 1)
    assert rows == [new]
    assert [o.date for o in rows[0].outliers.all()] == [days[2]]
    assert [a.iso_week for a in selectors.weekly_analysis_for("005930", None)] == ["2026-W10", "2026-W09"]
    assert [o.series for o in selectors.outliers_for("005930")] == ["volume", "close"]
    assert [o.series for o in selectors.outliers_for("005930", start=days[0])] == ["close"]
