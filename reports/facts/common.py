"""What the sections of the facts share: the week, the Korean labels several sections use, number
formatting, and the close and name look-ups."""

from __future__ import annotations

import bisect
import datetime as dt
import logging
import math
from collections import defaultdict
from dataclasses import dataclass

from django.utils import timezone

from market.analysis import iso_week_label
from market.analysis_service import parse_week
from market.krx import previous_trading_day, session_open_close, week_trading_days
from market.models import DailyBar, Instrument
from orders.models import OrderReason

# One logger for the whole package, named as before the split.
logger = logging.getLogger("reports.facts")

SIDE_LABELS = {"buy": "매수", "sell": "매도"}
REASON_LABELS = {
    OrderReason.ENTRY: "주간 진입", OrderReason.STOP_LOSS: "손절", OrderReason.TAKE_PROFIT: "익절",
    OrderReason.SIGNAL: "매도 신호", OrderReason.WEEK_END: "주말 청산", OrderReason.MANUAL: "수동 주문",
}
JOB_LABELS = {"entry": "진입", "check": "점검", "exit": "청산"}
RUN_STATUS_LABELS = {
    "pending": "대기", "running": "실행 중", "complete": "완료", "skipped": "건너뜀", "failed": "실패", "blocked": "차단",
}


def pct(value: float | None) -> float | None:
    """A fraction as a percentage rounded to 2 decimals (0.01234 → 1.23)."""
    if value is None or not math.isfinite(value):
        return None
    return round(value * 100, 2)


def rounded(value: float | None, digits: int = 2) -> float | None:
    if value is None or not math.isfinite(value):
        return None
    return round(float(value), digits)


def finite(value) -> float | None:
    try:
        value = float(value)
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) else None


# ----------------------------------------------------------------------------------------------- the week
@dataclass(frozen=True)
class WeekWindow:
    monday: dt.date
    iso_week: str
    trading_days: list[dt.date]  # the week's KRX sessions
    prev_day: dt.date  # the trading day before the week: the "start" close
    as_of: dt.date | None  # the week's last trading day with stored bars (None: no bar yet)
    complete: bool  # every trading day of the week is over and stored

    @property
    def days(self) -> list[dt.date]:
        """The week's trading days up to `as_of`."""
        return [day for day in self.trading_days if self.as_of is not None and day <= self.as_of]

    @property
    def sunday(self) -> dt.date:
        return self.monday + dt.timedelta(days=6)


def week_window(week: str | dt.date, now: dt.datetime | None = None) -> WeekWindow:
    monday = parse_week(week)
    now = now or timezone.now()
    days = week_trading_days(monday)
    prev_day = previous_trading_day(monday)
    latest_bar = (
        DailyBar.objects.filter(date__gte=monday, date__lte=monday + dt.timedelta(days=6))
        .order_by("-date").values_list("date", flat=True).first()
    )
    as_of = max((day for day in days if latest_bar is not None and day <= latest_bar), default=None)
    complete = bool(days) and as_of == days[-1] and now >= session_open_close(days[-1])[1]
    return WeekWindow(monday, iso_week_label(monday), days, prev_day, as_of, complete)


# ----------------------------------------------------------------------------------------------- prices
class Closes:
    """Closes of some codes up to a day, with "last close on or before" lookups."""

    def __init__(self, codes: set[str], start: dt.date, end: dt.date) -> None:
        self._by_code: dict[str, tuple[list[dt.date], list[int]]] = {}
        rows = (
            DailyBar.objects.filter(instrument__code__in=sorted(codes), date__gte=start, date__lte=end)
            .order_by("instrument__code", "date").values_list("instrument__code", "date", "close")
        )
        grouped: dict[str, tuple[list, list]] = defaultdict(lambda: ([], []))
        for code, day, close in rows:
            grouped[code][0].append(day)
            grouped[code][1].append(int(close))
        self._by_code = dict(grouped)

    def on(self, code: str, day: dt.date) -> int | None:
        days, closes = self._by_code.get(code, ([], []))
        index = bisect.bisect_right(days, day) - 1
        return closes[index] if index >= 0 else None

    def exactly_on(self, code: str, day: dt.date) -> int | None:
        days, closes = self._by_code.get(code, ([], []))
        index = bisect.bisect_left(days, day)
        return closes[index] if index < len(days) and days[index] == day else None


def instrument_names(codes) -> dict[str, str]:
    return dict(Instrument.objects.filter(code__in=sorted(set(codes))).values_list("code", "name"))
