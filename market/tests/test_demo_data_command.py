"""manage.py demo_data: synthetic instruments and bars on KRX trading days, idempotent."""

from __future__ import annotations

import io
import re
from datetime import date, datetime

import pytest
from django.core.management import CommandError, call_command

from market.demo import DEFAULT_SEED, DEMO_EPOCH, generate_bars, generate_universe
from market.demo_market import last_complete_session
from market.krx import SEOUL, price_limits, trading_days
from market.management.commands import demo_data
from market.models import DailyBar, Instrument
from market.tests.factories import DailyBarFactory, InstrumentFactory

pytestmark = pytest.mark.django_db

SUMMARY = re.compile(r"instruments: (\d+) new, bars: (\d+) new / (\d+) total, range (\S+)\.\.(\S+)")


def run(**options) -> tuple[int, int, int, str, str]:
    out = io.StringIO()
    call_command("demo_data", stdout=out, **options)
    match = SUMMARY.search(out.getvalue())
    assert match, out.getvalue()
    new_instruments, new_bars, total, first, last = match.groups()
    return int(new_instruments), int(new_bars), int(total), first, last


def test_creates_instruments_and_bars_on_trading_days_only():
    summary = run(symbols=5, years=1, end="2026-11-20")

    days = trading_days(date(2025, 11, 20), date(2026, 11, 20))
    assert summary == (5, 5 * len(days), 5 * len(days), days[0].isoformat(), days[-1].isoformat())
    universe = generate_universe(5)
    assert list(Instrument.objects.values_list("code", "name", "market")) == sorted(
        (s["code"], s["name"], s["market"]) for s in universe
    )
    assert sorted(set(DailyBar.objects.values_list("date", flat=True))) == days
    for instrument in Instrument.objects.all():
        assert instrument.bars.count() == len(days)


def test_stored_bars_are_the_canonical_demo_bars():
    run(symbols=5, years=1, end="2026-11-20")

    universe = generate_universe(5)
    expected = generate_bars(universe, trading_days(DEMO_EPOCH, date(2026, 11, 20)), DEFAULT_SEED)["005930"]
    stored = DailyBar.objects.filter(instrument__code="005930").order_by("date")
    rows = stored.values_list("date", "open", "high", "low", "close", "volume", "traded_value")
    assert list(rows) == expected[-len(rows) :].tolist()


def test_second_run_adds_nothing():
    first = run(symbols=5, years=1, end="2026-11-20")
    count = DailyBar.objects.count()

    again = run(symbols=5, years=1, end="2026-11-20")

    assert again == (0, 0, first[2], first[3], first[4])
    assert DailyBar.objects.count() == count
    assert Instrument.objects.count() == 5


def test_a_later_end_extends_the_history_without_a_seam():
    run(symbols=5, years=1, end="2026-11-20")  # Friday
    new_instruments, new_bars, *_ = run(symbols=5, years=1, end="2026-11-24")  # Tuesday

    assert (new_instruments, new_bars) == (0, 5 * len(trading_days(date(2026, 11, 21), date(2026, 11, 24))))
    for instrument in Instrument.objects.all():
        closes = list(instrument.bars.filter(date__gte=date(2026, 11, 19)).order_by("date").values_list("close", flat=True))
        for prev, close in zip(closes, closes[1:], strict=False):
            lower, upper = price_limits(prev)
            assert lower <= close <= upper


def test_more_symbols_keep_the_first_ones():
    run(symbols=3, years=1, end="2026-11-20")
    new_instruments, new_bars, total, *_ = run(symbols=5, years=1, end="2026-11-20")
    days = len(trading_days(date(2025, 11, 20), date(2026, 11, 20)))
    assert (new_instruments, new_bars, total) == (2, 2 * days, 5 * days)


def test_an_existing_instrument_is_left_alone():
    Instrument.objects.create(code="005930", name="삼성전자(실)", market="KOSPI")
    new_instruments, *_ = run(symbols=2, years=1, end="2026-11-20")
    assert new_instruments == 1
    assert Instrument.objects.get(code="005930").name == "삼성전자(실)"


def test_every_demo_bar_and_instrument_is_marked_demo():
    run(symbols=3, years=1, end="2026-11-20")
    assert set(DailyBar.objects.values_list("source", flat=True)) == {"demo"}
    assert set(Instrument.objects.values_list("source", flat=True)) == {"demo"}
    assert all(instrument.is_demo for instrument in Instrument.objects.all())


def test_a_code_with_real_bars_is_skipped_and_a_bare_instrument_becomes_demo():
    samsung = InstrumentFactory(code="005930", name="삼성전자")  # imported: one real bar
    DailyBarFactory(instrument=samsung, date=date(2026, 11, 20), close=71_000, source="csv")
    InstrumentFactory(code="000660", name="SK하이닉스", source="kis")  # from the KIS master file, no bars yet
    out = io.StringIO()
    call_command("demo_data", symbols=3, years=1, end="2026-11-20", stdout=out)

    assert "실제 일봉이 있는 종목 1개는 데모 일봉을 만들지 않았습니다" in out.getvalue() and "005930" in out.getvalue()
    assert list(samsung.bars.values_list("date", "close", "source")) == [(date(2026, 11, 20), 71_000, "csv")]
    samsung.refresh_from_db()
    assert samsung.source == "csv"
    days = len(trading_days(date(2025, 11, 20), date(2026, 11, 20)))
    for code in ("000660", "035420"):
        instrument = Instrument.objects.get(code=code)
        assert instrument.source == "demo" and instrument.bars.filter(source="demo").count() == days


def test_today_counts_only_after_the_close(monkeypatch):
    morning = datetime(2026, 11, 20, 10, 0, tzinfo=SEOUL)
    monkeypatch.setattr(demo_data.timezone, "now", lambda: morning)
    *_, last = run(symbols=1, years=1)
    assert last == "2026-11-19"
    assert not DailyBar.objects.filter(date__gt=date(2026, 11, 19)).exists()

    evening = datetime(2026, 11, 20, 15, 45, tzinfo=SEOUL)
    monkeypatch.setattr(demo_data.timezone, "now", lambda: evening)
    *_, last = run(symbols=1, years=1, end="2027-01-15")  # the future is cut back to today
    assert last == "2026-11-20"


@pytest.mark.parametrize(
    ("end", "now", "expected"),
    [
        (date(2026, 11, 20), datetime(2026, 11, 20, 15, 29, tzinfo=SEOUL), date(2026, 11, 19)),
        (date(2026, 11, 20), datetime(2026, 11, 20, 15, 30, tzinfo=SEOUL), date(2026, 11, 20)),
        (date(2026, 11, 20), datetime(2026, 11, 24, 9, 0, tzinfo=SEOUL), date(2026, 11, 20)),
        (date(2026, 11, 22), datetime(2026, 11, 24, 9, 0, tzinfo=SEOUL), date(2026, 11, 20)),  # Sunday
        (date(2026, 12, 31), datetime(2026, 11, 24, 9, 0, tzinfo=SEOUL), date(2026, 11, 23)),
    ],
)
def test_last_complete_session(end, now, expected):
    assert last_complete_session(end, now) == expected


@pytest.mark.parametrize(
    "options",
    [{"symbols": 0}, {"years": 0}, {"end": "2026-13-01"}, {"end": "2011-06-01", "years": 3}],
)
def test_bad_options_are_refused(options):
    with pytest.raises(CommandError):
        call_command("demo_data", stdout=io.StringIO(), **{"symbols": 2, "years": 1, **options})
    assert not DailyBar.objects.exists()


def test_progress_bar_is_off_when_not_a_tty():
    out = io.StringIO()
    call_command("demo_data", symbols=1, years=1, end="2026-11-20", stdout=out)
    assert "%|" not in out.getvalue()
    assert sum(line.startswith("instruments:") for line in out.getvalue().splitlines()) == 1
