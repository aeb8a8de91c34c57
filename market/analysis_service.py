"""The weekly analysis stored in the database: WeeklyAnalysis and Outlier rows of one ISO week.

``analyze_week`` loads the week's bars plus enough history for the windows (one query on the
instruments, one on the bars), runs the pure ``market.analysis.analyze`` on the whole universe at
once, and replaces the week's rows in one transaction. Re-running it gives the same rows.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from datetime import date, datetime, timedelta

import numpy as np
import pandas as pd
from django.db import transaction

from market.analysis import Z_WINDOW, analyze, iso_week_label, rows_as_records, week_start
from market.krx import SEOUL, week_trading_days
from market.models import DailyBar, Instrument, Outlier, WeeklyAnalysis

# Calendar days of bars loaded before the week: about 100 KRX trading days, comfortably more than
# the market.analysis.HISTORY_BARS_NEEDED (61) bars the windows need, so that some suspended days
# do not leave a window incomplete (the result then equals that of an analysis of the whole history).
HISTORY_CALENDAR_DAYS = 150
EXTREME_Z_COUNT = 5
BATCH_SIZE = 1_000
WEEK_PATTERN = re.compile(r"(\d{4})-W(\d{2})")
DATE_PATTERN = re.compile(r"\d{4}-\d{2}-\d{2}")


class MalformedWeekError(ValueError):
    """A week that is neither "YYYY-Www" (an existing ISO week) nor a date."""


@dataclass(frozen=True)
class ExtremeZ:
    code: str
    name: str
    z_score: float


@dataclass(frozen=True)
class WeekSummary:
    week_start: date
    iso_week: str
    market_days: list[date]  # the KRX trading days of the week
    symbols: int  # instruments analysed (those with at least one bar in the week)
    outliers: int
    outliers_by_series: dict[str, int] = field(default_factory=dict)
    extreme_z: list[ExtremeZ] = field(default_factory=list)  # largest |z| first

    def as_dict(self) -> dict:
        """JSON-friendly (dates as ISO strings), e.g. for a Celery result."""
        data = asdict(self)
        data["week_start"] = self.week_start.isoformat()
        data["market_days"] = [day.isoformat() for day in self.market_days]
        return data


def today_in_seoul() -> date:
    return datetime.now(SEOUL).date()


def parse_week(value: str | date | datetime) -> date:
    """Monday of the week given as "YYYY-Www" (ISO year and week, e.g. "2026-W47"), as a date, or
    as "YYYY-MM-DD" (any day of the week). Raises MalformedWeekError for anything else."""
    if isinstance(value, datetime):
        return week_start(value.astimezone(SEOUL) if value.tzinfo else value)
    if isinstance(value, date):
        return week_start(value)
    if not isinstance(value, str):
        raise MalformedWeekError(f"week must be a string like 2026-W47 or a date, got {value!r}")
    text = value.strip()
    match = WEEK_PATTERN.fullmatch(text)
    if match:
        year, week = int(match[1]), int(match[2])
        try:
            return date.fromisocalendar(year, week, 1)
        except ValueError:
            raise MalformedWeekError(f"{text} is not an ISO week: {year} has weeks W01 to W{_weeks_in(year):02d}") from None
    try:
        if not DATE_PATTERN.fullmatch(text):
            raise ValueError(text)
        return week_start(date.fromisoformat(text))
    except ValueError:
        raise MalformedWeekError(f"week must be YYYY-Www (e.g. 2026-W47) or a date YYYY-MM-DD, got {value!r}") from None


def _weeks_in(year: int) -> int:
    return date(year, 12, 28).isocalendar()[1]  # 28 December is always in the year's last ISO week


def latest_complete_week(today: date | None = None) -> date:
    """Monday of the latest ISO week whose KRX trading days all lie before ``today`` (default:
    today in Seoul). On Saturday that is the current week; on Friday the previous one (unless
    Friday is a holiday and Thursday the week's last trading day). Weeks without a trading day
    are skipped."""
    today = today or today_in_seoul()
    monday = week_start(today)
    days = week_trading_days(monday)
    if not days or days[-1] >= today:
        monday -= timedelta(days=7)
        while not week_trading_days(monday):
            monday -= timedelta(days=7)
    return monday


def _load_matrices(
    first_day: date, last_day: date, instrument_ids: list[int] | None, code_of: dict[int, str]
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Close and volume matrices (index: dates, columns: codes) of the bars in the range: one query."""
    bars = DailyBar.objects.filter(date__gte=first_day, date__lte=last_day)
    if instrument_ids is not None:
        bars = bars.filter(instrument_id__in=instrument_ids)
    rows = list(bars.values_list("instrument_id", "date", "close", "volume"))
    if not rows:
        empty = pd.DataFrame(index=pd.DatetimeIndex([]), dtype=float)
        return empty, empty
    ids, days, closes, volumes = zip(*rows, strict=True)
    long = pd.DataFrame(
        {
            "code": pd.Series(ids).map(code_of),
            "date": pd.to_datetime(np.array(days, dtype="datetime64[D]")),
            "close": np.array(closes, dtype=np.float64),
            "volume": np.array(volumes, dtype=np.float64),
        }
    ).dropna(subset=["code"])  # an instrument created since the instruments were read
    close = long.pivot(index="date", columns="code", values="close")
    volume = long.pivot(index="date", columns="code", values="volume")
    return close, volume


def analyze_week(week: str | date | datetime, codes: Iterable[str] | None = None) -> WeekSummary:
    """Analyse one ISO week ("YYYY-Www" or any day in it) and replace its stored rows.

    ``codes``: only these instruments (their rows of that week are replaced, the others kept);
    default every instrument with bars in the week (and every row of the week is replaced).
    Raises MalformedWeekError for a malformed week, ValueError for unknown codes."""
    monday = parse_week(week)
    sunday = monday + timedelta(days=6)

    instruments = Instrument.objects.all()
    wanted = None if codes is None else sorted(set(codes))
    if wanted is not None:
        instruments = instruments.filter(code__in=wanted)
    known = list(instruments.values_list("id", "code", "name"))
    if wanted is not None:
        unknown = sorted(set(wanted) - {code for _, code, _ in known})
        if unknown:
            raise ValueError(f"unknown instrument codes: {', '.join(unknown)}")
    code_of = {pk: code for pk, code, _ in known}
    id_of = {code: pk for pk, code, _ in known}
    name_of = {code: name for _, code, name in known}

    close, volume = _load_matrices(
        monday - timedelta(days=HISTORY_CALENDAR_DAYS), sunday, None if wanted is None else list(code_of), code_of
    )
    result = analyze(close, volume, weeks=[monday])
    weekly = rows_as_records(result.weekly)
    outliers = rows_as_records(result.outliers)

    with transaction.atomic():
        stale = WeeklyAnalysis.objects.filter(week_start=monday)
        if wanted is not None:
            stale = stale.filter(instrument_id__in=list(code_of))
        stale.delete()  # and their outliers (cascade)
        WeeklyAnalysis.objects.bulk_create(
            [
                WeeklyAnalysis(
                    instrument_id=id_of[row["code"]],
                    week_start=monday,
                    iso_week=row["iso_week"],
                    trading_days=row["trading_days"],
                    close=row["close"],
                    weekly_return=row["weekly_return"],
                    volatility=row["volatility"],
                    skew=row["skew"],
                    kurtosis=row["kurtosis"],
                    max_drawdown=row["max_drawdown"],
                    z_score=row["z_score"],
                    z_window=Z_WINDOW,
                )
                for row in weekly
            ],
            batch_size=BATCH_SIZE,
        )
        if outliers:
            # Primary keys are not returned by bulk_create on every database (MySQL): read them back.
            analysis_id = dict(
                WeeklyAnalysis.objects.filter(
                    week_start=monday, instrument_id__in=[id_of[row["code"]] for row in weekly]
                ).values_list("instrument_id", "id")
            )
            Outlier.objects.bulk_create(
                [
                    Outlier(
                        analysis_id=analysis_id[id_of[row["code"]]],
                        date=row["date"],
                        series=row["series"],
                        method=row["method"],
                        value=row["value"],
                        score=row["score"],
                    )
                    for row in outliers
                ],
                batch_size=BATCH_SIZE,
            )

    by_series: dict[str, int] = {}
    for row in outliers:
        by_series[row["series"]] = by_series.get(row["series"], 0) + 1
    scored = sorted((row for row in weekly if row["z_score"] is not None), key=lambda row: -abs(row["z_score"]))
    return WeekSummary(
        week_start=monday,
        iso_week=iso_week_label(monday),
        market_days=week_trading_days(monday),
        symbols=len(weekly),
        outliers=len(outliers),
        outliers_by_series=by_series,
        extreme_z=[ExtremeZ(row["code"], name_of[row["code"]], row["z_score"]) for row in scored[:EXTREME_Z_COUNT]],
    )
