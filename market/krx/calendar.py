"""KRX trading calendar: trading days, weeks and session times in Asia/Seoul.

Built on ``exchange_calendars`` (XKRX), which computes the lunar holidays and
substitute days by rule but needs ad-hoc closures (elections, temporary
holidays) added by hand. Release 4.13.2 misses two 2026 closures, so we use a
subclass that adds them, registered under its own name so the stock XKRX stays
untouched. Remove an entry once a release carries it.

The one-hour late open (and close) on CSAT days is missing from 2021 on in
4.13.2 (2024-11-14, 2025-11-13 showed 09:00-15:30 instead of 10:00-16:30); the
subclass adds those days (EXTRA_CSAT_DAYS) with the library's own CSAT offset.
The late open on the first trading day of each year is right.

Building the calendar takes seconds (the guide measured 6 s), so it is built
once per process.
"""

from __future__ import annotations

import warnings
from datetime import date, datetime, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo

import exchange_calendars as xcals
import pandas as pd
from exchange_calendars import ExchangeCalendar
from exchange_calendars.exchange_calendar_xkrx import XKRXExchangeCalendar

SEOUL = ZoneInfo("Asia/Seoul")
CALENDAR_NAME = "XKRX-PATCHED"
CALENDAR_FIRST_DAY = date(2000, 1, 1)
# The upper bound is 31 December this many years after the build date.
CALENDAR_YEARS_AHEAD = 2
SETTLEMENT_LAG_TRADING_DAYS = 2

# Closures missing from exchange_calendars 4.13.2:
# 2026-06-03 local elections (upstream #574, merged after the release);
# 2026-07-17 Constitution Day, a holiday again from 2026 (upstream #583, open).
EXTRA_CLOSURES: tuple[str, ...] = ("2026-06-03", "2026-07-17")
# CSAT (수능) days from 2021, when KRX opens and closes an hour late (10:00-16:30); 4.13.2 lists them only
# to 2020 (upstream #574 adds them after the release). Add each year's day when KRX announces it.
EXTRA_CSAT_DAYS: tuple[str, ...] = (
    "2021-11-18", "2022-11-17", "2023-11-16", "2024-11-14", "2025-11-13", "2026-11-19",
)


class PatchedXKRXExchangeCalendar(XKRXExchangeCalendar):
    """XKRX plus the closures listed in EXTRA_CLOSURES and the CSAT late opens in EXTRA_CSAT_DAYS."""

    name = CALENDAR_NAME

    @property
    def adhoc_holidays(self) -> list[pd.Timestamp]:
        return list(super().adhoc_holidays) + [pd.Timestamp(d) for d in EXTRA_CLOSURES]

    @property
    def special_offsets_adhoc(self):
        known = super().special_offsets_adhoc
        hour = pd.Timedelta(1, unit="h")
        extra = pd.DatetimeIndex([d for d in EXTRA_CSAT_DAYS if not any(pd.Timestamp(d) in days for *_, days in known)])
        return list(known) + ([(hour, hour, hour, hour, extra)] if len(extra) else [])


@lru_cache(maxsize=1)
def krx_calendar() -> ExchangeCalendar:
    """The shared patched XKRX calendar, built on first use (1-6 s, so only once)."""
    xcals.register_calendar_type(CALENDAR_NAME, PatchedXKRXExchangeCalendar, force=True)
    today = datetime.now(SEOUL).date()
    last_day = date(today.year + CALENDAR_YEARS_AHEAD, 12, 31)
    with warnings.catch_warnings():
        # exchange_calendars 4.13.2 reads ``Series.values`` on tz-aware data, which
        # pandas 3.1 deprecates; the warning is about the library's code, not ours.
        warnings.filterwarnings("ignore", message="Series.values returning an ndarray")
        return xcals.get_calendar(
            CALENDAR_NAME,
            start=CALENDAR_FIRST_DAY.isoformat(),
            end=last_day.isoformat(),
        )


def _as_date(day: date | datetime) -> date:
    """A date; an aware datetime is first converted to Seoul time."""
    if isinstance(day, datetime):
        if day.tzinfo is not None:
            return day.astimezone(SEOUL).date()
        return day.date()
    return day


def _timestamp(day: date | datetime) -> pd.Timestamp:
    return pd.Timestamp(_as_date(day))


def is_trading_day(day: date | datetime) -> bool:
    """True if KRX holds a regular session on ``day``."""
    return bool(krx_calendar().is_session(_timestamp(day)))


def trading_days(start: date | datetime, end: date | datetime) -> list[date]:
    """Trading days from ``start`` to ``end``, both inclusive."""
    sessions = krx_calendar().sessions_in_range(_timestamp(start), _timestamp(end))
    return [session.date() for session in sessions]


def previous_trading_day(day: date | datetime) -> date:
    """The last trading day strictly before ``day``."""
    session = krx_calendar().date_to_session(
        _timestamp(day) - pd.Timedelta(days=1), "previous"
    )
    return session.date()


def next_trading_day(day: date | datetime) -> date:
    """The first trading day strictly after ``day``."""
    session = krx_calendar().date_to_session(
        _timestamp(day) + pd.Timedelta(days=1), "next"
    )
    return session.date()


def week_trading_days(day: date | datetime) -> list[date]:
    """Trading days of the ISO week (Monday to Sunday) that contains ``day``."""
    monday = _as_date(day) - timedelta(days=_as_date(day).weekday())
    return trading_days(monday, monday + timedelta(days=6))


def first_trading_day_of_week(day: date | datetime) -> date | None:
    """First trading day of ``day``'s ISO week, or None if the whole week is closed."""
    days = week_trading_days(day)
    return days[0] if days else None


def last_trading_day_of_week(day: date | datetime) -> date | None:
    """Last trading day of ``day``'s ISO week, or None if the whole week is closed."""
    days = week_trading_days(day)
    return days[-1] if days else None


def session_open_close(day: date | datetime) -> tuple[datetime, datetime]:
    """Regular-session open and close of ``day`` as aware Asia/Seoul datetimes.

    Late opens the library knows (10:00 on the first trading day of the year)
    are included. Raises ValueError if ``day`` is not a trading day.
    """
    session = _timestamp(day)
    calendar = krx_calendar()
    if not calendar.is_session(session):
        raise ValueError(f"{_as_date(day).isoformat()} is not a KRX trading day")
    opens_at = calendar.session_open(session).to_pydatetime().astimezone(SEOUL)
    closes_at = calendar.session_close(session).to_pydatetime().astimezone(SEOUL)
    return opens_at, closes_at


def is_regular_session(now: datetime) -> bool:
    """True if aware ``now`` falls in a regular session (open <= now < close)."""
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    if not is_trading_day(now):
        return False
    opens_at, closes_at = session_open_close(now)
    return opens_at <= now < closes_at


def settlement_date(trade_date: date | datetime) -> date:
    """Settlement (transfer) date of a trade executed on ``trade_date``: T+2 trading days."""
    session = _timestamp(trade_date)
    calendar = krx_calendar()
    if not calendar.is_session(session):
        raise ValueError(f"{_as_date(trade_date).isoformat()} is not a KRX trading day")
    return calendar.session_offset(session, SETTLEMENT_LAG_TRADING_DAYS).date()
