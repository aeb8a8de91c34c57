"""KRX trading calendar, checked against the closures listed in the environment guide."""

from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
import time_machine

from market.krx.calendar import (
    CALENDAR_NAME,
    first_trading_day_of_week,
    is_regular_session,
    is_trading_day,
    krx_calendar,
    last_trading_day_of_week,
    next_trading_day,
    previous_trading_day,
    session_open_close,
    settlement_date,
    trading_days,
    week_trading_days,
)

SEOUL = ZoneInfo("Asia/Seoul")
UTC = ZoneInfo("UTC")

WEEKDAY_CLOSURES_2025 = [
    date(2025, 1, 1),
    date(2025, 1, 27),
    date(2025, 1, 28),
    date(2025, 1, 29),
    date(2025, 1, 30),
    date(2025, 3, 3),
    date(2025, 5, 1),
    date(2025, 5, 5),
    date(2025, 5, 6),
    date(2025, 6, 3),
    date(2025, 6, 6),
    date(2025, 8, 15),
    date(2025, 10, 3),
    date(2025, 10, 6),
    date(2025, 10, 7),
    date(2025, 10, 8),
    date(2025, 10, 9),
    date(2025, 12, 25),
    date(2025, 12, 31),
]

WEEKDAY_CLOSURES_2026 = [
    date(2026, 1, 1),
    date(2026, 2, 16),
    date(2026, 2, 17),
    date(2026, 2, 18),
    date(2026, 3, 2),
    date(2026, 5, 1),
    date(2026, 5, 5),
    date(2026, 5, 25),
    date(2026, 6, 3),  # local elections, added by the patch
    date(2026, 7, 17),  # Constitution Day, added by the patch
    date(2026, 8, 17),
    date(2026, 9, 24),
    date(2026, 9, 25),
    date(2026, 10, 5),
    date(2026, 10, 9),
    date(2026, 12, 25),
    date(2026, 12, 31),
]


@pytest.fixture(scope="session", autouse=True)
def built_calendar():
    """Build the (slow) calendar once for the whole test session."""
    return krx_calendar()


def _weekdays(year):
    day = date(year, 1, 1)
    while day.year == year:
        if day.weekday() < 5:
            yield day
        day += timedelta(days=1)


def test_calendar_is_built_once_under_its_own_name(built_calendar):
    assert krx_calendar() is built_calendar
    assert built_calendar.name == CALENDAR_NAME
    assert built_calendar.first_session.year == 2000


def test_calendar_reaches_31_december_two_years_after_the_build_date_in_seoul():
    """Built on New Year's morning in Seoul (still 31 December in UTC): up to the end of 2029. The
    calendar the session built may come from any test's clock, so this one builds its own."""
    krx_calendar.cache_clear()
    try:
        with time_machine.travel(datetime(2027, 1, 1, 8, 0, tzinfo=SEOUL), tick=False):
            calendar = krx_calendar()
    finally:
        krx_calendar.cache_clear()  # the next caller builds it again, on its own clock
    assert calendar.last_session.date() == date(2029, 12, 28)  # 31 December is the year-end closing day


@pytest.mark.parametrize(
    ("year", "closures", "sessions"),
    [(2025, WEEKDAY_CLOSURES_2025, 242), (2026, WEEKDAY_CLOSURES_2026, 244)],
)
def test_weekday_closures_match_the_guide_exactly(year, closures, sessions):
    closed = [day for day in _weekdays(year) if not is_trading_day(day)]
    assert closed == closures
    assert len(trading_days(date(year, 1, 1), date(year, 12, 31))) == sessions


def test_weekends_are_closed():
    assert not is_trading_day(date(2026, 6, 6))
    assert not is_trading_day(date(2026, 6, 7))


def test_aware_datetimes_are_read_in_seoul_time():
    # 2026-06-02 16:00 UTC is 2026-06-03 01:00 in Seoul, election day.
    assert not is_trading_day(datetime(2026, 6, 2, 16, 0, tzinfo=UTC))
    assert is_trading_day(datetime(2026, 6, 2, 14, 0, tzinfo=UTC))


def test_week_with_a_monday_holiday_starts_on_tuesday():
    assert first_trading_day_of_week(date(2025, 3, 5)) == date(2025, 3, 4)
    assert first_trading_day_of_week(date(2026, 3, 6)) == date(2026, 3, 3)
    assert first_trading_day_of_week(date(2026, 5, 29)) == date(2026, 5, 26)


def test_week_with_a_friday_holiday_ends_on_thursday():
    assert last_trading_day_of_week(date(2025, 8, 11)) == date(2025, 8, 14)
    assert last_trading_day_of_week(date(2026, 7, 13)) == date(2026, 7, 16)
    assert week_trading_days(date(2025, 6, 6)) == [
        date(2025, 6, 2),
        date(2025, 6, 4),
        date(2025, 6, 5),
    ]


def test_seollal_2026_week():
    week = week_trading_days(date(2026, 2, 16))
    assert week == [date(2026, 2, 19), date(2026, 2, 20)]
    assert first_trading_day_of_week(date(2026, 2, 22)) == date(2026, 2, 19)
    assert last_trading_day_of_week(date(2026, 2, 16)) == date(2026, 2, 20)


def test_seollal_2025_week_has_only_friday():
    assert week_trading_days(date(2025, 1, 27)) == [date(2025, 1, 31)]


def test_election_week_2026():
    assert not is_trading_day(date(2026, 6, 3))
    assert week_trading_days(date(2026, 6, 3)) == [
        date(2026, 6, 1),
        date(2026, 6, 2),
        date(2026, 6, 4),
        date(2026, 6, 5),
    ]


def test_previous_and_next_trading_day_skip_closures():
    assert previous_trading_day(date(2026, 6, 4)) == date(2026, 6, 2)
    assert next_trading_day(date(2026, 6, 2)) == date(2026, 6, 4)
    assert previous_trading_day(date(2026, 1, 2)) == date(2025, 12, 30)
    assert next_trading_day(date(2025, 12, 30)) == date(2026, 1, 2)
    assert previous_trading_day(date(2026, 2, 22)) == date(2026, 2, 20)
    assert next_trading_day(date(2026, 2, 13)) == date(2026, 2, 19)
    assert previous_trading_day(date(2026, 6, 3)) == date(2026, 6, 2)


def test_trading_days_range_is_inclusive():
    assert trading_days(date(2026, 2, 13), date(2026, 2, 19)) == [
        date(2026, 2, 13),
        date(2026, 2, 19),
    ]


def test_regular_session_times_are_aware_seoul_datetimes():
    opens_at, closes_at = session_open_close(date(2026, 6, 2))
    assert opens_at == datetime(2026, 6, 2, 9, 0, tzinfo=SEOUL)
    assert closes_at == datetime(2026, 6, 2, 15, 30, tzinfo=SEOUL)
    assert opens_at.utcoffset() == timedelta(hours=9)
    assert str(opens_at.tzinfo) == "Asia/Seoul"


@pytest.mark.parametrize("first_day", [date(2025, 1, 2), date(2026, 1, 2)])
def test_first_trading_day_of_the_year_opens_at_ten(first_day):
    opens_at, closes_at = session_open_close(first_day)
    assert (opens_at.hour, opens_at.minute) == (10, 0)
    assert (closes_at.hour, closes_at.minute) == (15, 30)


def test_session_times_of_a_closed_day_fail():
    with pytest.raises(ValueError):
        session_open_close(date(2026, 6, 3))


def test_is_regular_session():
    assert is_regular_session(datetime(2026, 6, 2, 9, 0, tzinfo=SEOUL))
    assert not is_regular_session(datetime(2026, 6, 2, 8, 59, 59, tzinfo=SEOUL))
    assert is_regular_session(datetime(2026, 6, 2, 15, 29, 59, tzinfo=SEOUL))
    assert not is_regular_session(datetime(2026, 6, 2, 15, 30, tzinfo=SEOUL))
    assert is_regular_session(datetime(2026, 6, 2, 0, 30, tzinfo=UTC))  # 09:30 KST
    assert not is_regular_session(datetime(2026, 1, 2, 9, 30, tzinfo=SEOUL))
    assert not is_regular_session(datetime(2026, 6, 3, 10, 0, tzinfo=SEOUL))
    with pytest.raises(ValueError):
        is_regular_session(datetime(2026, 6, 2, 10, 0))


def test_settlement_is_two_trading_days_later():
    assert settlement_date(date(2024, 12, 27)) == date(2025, 1, 2)
    assert settlement_date(date(2025, 12, 29)) == date(2026, 1, 2)
    assert settlement_date(date(2026, 6, 2)) == date(2026, 6, 5)
    with pytest.raises(ValueError):
        settlement_date(date(2026, 6, 3))


@pytest.mark.parametrize("csat_day", [date(2023, 11, 16), date(2024, 11, 14), date(2025, 11, 13), date(2026, 11, 19)])
def test_csat_days_open_and_close_an_hour_late(csat_day):
    """수능 day: 10:00-16:30 (exchange_calendars 4.13.2 lists the days only to 2020; the patch adds them)."""
    opens_at, closes_at = session_open_close(csat_day)
    assert (opens_at.time(), closes_at.time()) == (datetime(1, 1, 1, 10).time(), datetime(1, 1, 1, 16, 30).time())
    assert not is_regular_session(datetime.combine(csat_day, datetime(1, 1, 1, 9, 30).time(), tzinfo=SEOUL))
    day_before = previous_trading_day(csat_day)
    assert session_open_close(day_before)[0].hour == 9  # only that day
