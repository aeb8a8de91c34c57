"""market.analysis_service, manage.py analyze_week, the Celery task and the benchmark command."""

from __future__ import annotations

import io
import json
import re
from datetime import date, timedelta

import numpy as np
import pandas as pd
import pytest
from django.core.management import CommandError, call_command
from django.db import connection
from django.test.utils import CaptureQueriesContext

from market.analysis import HISTORY_BARS_NEEDED, analyze, rows_as_records
from market.analysis_service import (
    HISTORY_CALENDAR_DAYS,
    MalformedWeekError,
    analyze_week,
    latest_complete_week,
    parse_week,
)
from market.demo import MAX_SYMBOLS
from market.krx import trading_days
from market.management.commands.benchmark_analysis import benchmark_universe
from market.models import DailyBar, Outlier, OutlierMethod, WeeklyAnalysis
from market.tasks import analyze_last_week
from market.tests.factories import DailyBarFactory, InstrumentFactory

MON = date(2026, 11, 16)  # 2026-W47
FRI = date(2026, 11, 20)
WEEK_FIELDS = (
    "iso_week", "trading_days", "close", "weekly_return", "volatility", "skew", "kurtosis", "max_drawdown", "z_score",
)


@pytest.fixture
def market(db):
    """Three instruments, ~100 trading days up to Friday 2026-11-20: 005930 calm, 000660 with a
    jump in close and volume on that Friday, 035720 listed on Wednesday 2026-11-18."""
    days = trading_days(date(2026, 6, 20), FRI)
    rng = np.random.default_rng(7)
    specs = {
        "005930": ("삼성전자", 70_000, days),
        "000660": ("SK하이닉스", 180_000, days),
        "035720": ("카카오", 45_000, [d for d in days if d >= date(2026, 11, 18)]),
    }
    bars = []
    for code, (name, start, listed_days) in specs.items():
        instrument = InstrumentFactory(code=code, name=name)
        closes = np.rint(start * np.exp(np.cumsum(rng.normal(0, 0.015, len(listed_days))))).astype(int)
        volumes = rng.integers(800_000, 1_200_000, len(listed_days))
        if code == "000660":
            closes[-1] = int(closes[-2] * 1.25)
            volumes[-1] *= 30
        for day, close, volume in zip(listed_days, closes, volumes, strict=True):
            bars.append(
                DailyBarFactory.build(instrument=instrument, date=day, open=int(close), close=int(close), volume=int(volume))
            )
    DailyBar.objects.bulk_create(bars)
    return days


def stored_weeks() -> list[tuple]:
    return list(
        WeeklyAnalysis.objects.order_by("instrument__code", "week_start").values_list(
            "instrument__code", "week_start", *WEEK_FIELDS, "z_window"
        )
    )


def stored_outliers() -> list[tuple]:
    return list(
        Outlier.objects.order_by("analysis__instrument__code", "date", "series", "method").values_list(
            "analysis__instrument__code", "analysis__week_start", "date", "series", "method", "value", "score"
        )
    )


def expected_from_bars(monday: date):
    rows = list(DailyBar.objects.values_list("instrument__code", "date", "close", "volume"))
    frame = pd.DataFrame(rows, columns=["code", "date", "close", "volume"])
    frame["date"] = pd.to_datetime(frame["date"])
    close = frame.pivot(index="date", columns="code", values="close").astype(float)
    volume = frame.pivot(index="date", columns="code", values="volume").astype(float)
    return analyze(close, volume, weeks=[monday])


# --- weeks ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "monday"),
    [
        ("2026-W47", MON),
        (" 2026-W47 ", MON),
        ("2026-W01", date(2025, 12, 29)),
        ("2026-W53", date(2026, 12, 28)),  # 2026 has 53 ISO weeks
        ("2026-11-19", MON),
        (date(2026, 11, 22), MON),
    ],
)
def test_parse_week(value, monday):
    assert parse_week(value) == monday


@pytest.mark.parametrize("value", ["2026-47", "2026W47", "2026-W7", "2026-W00", "2025-W53", "week 47", "", "2026-13-01"])
def test_malformed_week_is_a_clear_error(value):
    with pytest.raises(MalformedWeekError, match=r"YYYY-Www|ISO week"):
        parse_week(value)


def test_error_for_a_week_past_the_end_of_the_year_names_the_last_week():
    with pytest.raises(MalformedWeekError, match="2025 has weeks W01 to W52"):
        parse_week("2025-W53")


@pytest.mark.parametrize(
    ("today", "monday"),
    [
        (date(2026, 11, 21), MON),  # Saturday: this week is over
        (date(2026, 11, 22), MON),  # Sunday
        (date(2026, 11, 20), date(2026, 11, 9)),  # Friday: its bar may not be final yet
        (date(2026, 11, 23), MON),  # Monday
        (date(2026, 7, 17), date(2026, 7, 13)),  # Friday holiday (Constitution Day): Thursday was the last day
        (date(2026, 9, 24), date(2026, 9, 21)),  # Chuseok: the week ended on Wednesday
    ],
)
def test_latest_complete_week(today, monday):
    assert latest_complete_week(today) == monday


# --- analyze_week -----------------------------------------------------------------------------


def test_stores_the_pure_analysis_of_the_week(market):
    summary = analyze_week("2026-W47")

    expected = rows_as_records(expected_from_bars(MON).weekly)
    assert stored_weeks() == sorted(
        (row["code"], row["week_start"], *(row[f] for f in WEEK_FIELDS), 20) for row in expected
    )
    assert summary.iso_week == "2026-W47" and summary.week_start == MON
    assert summary.symbols == 3
    assert summary.market_days == trading_days(MON, FRI)
    listed = WeeklyAnalysis.objects.get(instrument__code="035720")
    assert listed.trading_days == 3 and listed.weekly_return is None and listed.z_score is None
    assert WeeklyAnalysis.objects.get(instrument__code="005930").trading_days == 5


def test_stores_the_outliers_of_the_week(market):
    summary = analyze_week(MON)

    outliers = stored_outliers()
    expected = rows_as_records(expected_from_bars(MON).outliers)
    assert outliers == sorted(
        (row["code"], row["week_start"], row["date"], row["series"], row["method"], row["value"], row["score"])
        for row in expected
    )
    jumps = {(code, day, series) for code, _, day, series, *_ in outliers if code == "000660"}
    assert {("000660", FRI, "close"), ("000660", FRI, "volume")} <= jumps
    assert {method for *_, method, _, _ in outliers} <= set(OutlierMethod.values)
    assert summary.outliers == len(outliers) and sum(summary.outliers_by_series.values()) == len(outliers)
    # The jump makes 000660's last close the most extreme z-score.
    assert summary.extreme_z[0].code == "000660" and summary.extreme_z[0].name == "SK하이닉스"
    assert summary.extreme_z[0].z_score > 2


def test_rerun_gives_the_same_rows(market):
    analyze_week("2026-W47")
    weeks, outliers = stored_weeks(), stored_outliers()
    assert outliers

    analyze_week("2026-W47")
    assert stored_weeks() == weeks and stored_outliers() == outliers
    assert WeeklyAnalysis.objects.count() == 3


def test_rerun_replaces_stale_rows(market):
    analyze_week("2026-W47")
    DailyBar.objects.filter(instrument__code="035720").delete()  # e.g. bars withdrawn
    DailyBar.objects.filter(instrument__code="005930", date=FRI).update(close=1_000)

    analyze_week("2026-W47")
    assert sorted(WeeklyAnalysis.objects.values_list("instrument__code", flat=True)) == ["000660", "005930"]
    assert WeeklyAnalysis.objects.get(instrument__code="005930").close == 1_000


def test_other_weeks_are_kept(market):
    analyze_week("2026-W46")
    analyze_week("2026-W47")
    assert sorted(set(WeeklyAnalysis.objects.values_list("iso_week", flat=True))) == ["2026-W46", "2026-W47"]
    assert WeeklyAnalysis.objects.filter(iso_week="2026-W46").count() == 2  # 035720 not listed yet


def test_codes_replace_only_their_rows(market):
    analyze_week("2026-W47")
    DailyBar.objects.filter(date=FRI).update(close=1_000)

    summary = analyze_week("2026-W47", codes=["005930"])
    assert summary.symbols == 1
    assert WeeklyAnalysis.objects.get(instrument__code="005930").close == 1_000
    assert WeeklyAnalysis.objects.get(instrument__code="000660").close != 1_000  # not re-analysed


def test_unknown_code_is_an_error(market):
    with pytest.raises(ValueError, match="unknown instrument codes: 999999"):
        analyze_week("2026-W47", codes=["005930", "999999"])


def test_one_query_per_table_to_load(market):
    with CaptureQueriesContext(connection) as queries:
        analyze_week("2026-W47")
    selects = [q["sql"] for q in queries.captured_queries if q["sql"].lstrip().upper().startswith("SELECT")]

    def reads(table: str) -> int:
        return sum(1 for sql in selects if re.search(rf"FROM [`\"]?{table}[`\"]?", sql))

    assert reads("market_dailybar") == 1
    assert reads("market_instrument") == 1


def test_week_without_bars(db):
    InstrumentFactory(code="005930")
    summary = analyze_week("2026-W47")
    assert summary.symbols == 0 and summary.outliers == 0 and summary.extreme_z == []
    assert not WeeklyAnalysis.objects.exists()


def test_malformed_week_in_the_service(db):
    with pytest.raises(MalformedWeekError):
        analyze_week("2026-W99")


# --- command and task -------------------------------------------------------------------------


def run_command(*args) -> str:
    out = io.StringIO()
    call_command("analyze_week", *args, stdout=out)
    return out.getvalue()


def test_command_prints_a_summary(market):
    output = run_command("--week", "2026-W47")
    assert "2026-W47 (2026-11-16..2026-11-20, 5 trading days)" in output
    outliers = Outlier.objects.count()
    assert f"symbols analysed: 3, outliers found: {outliers}" in output
    assert re.search(r"000660 SK하이닉스\s+\+\d+\.\d\d", output)
    assert output.index("000660") < output.index("005930")  # the largest |z| first
    assert WeeklyAnalysis.objects.count() == 3


def test_command_defaults_to_the_last_complete_week(market, monkeypatch):
    monkeypatch.setattr("market.analysis_service.today_in_seoul", lambda: date(2026, 11, 22))
    assert "2026-W47" in run_command()
    assert set(WeeklyAnalysis.objects.values_list("week_start", flat=True)) == {MON}


def test_command_rejects_a_malformed_week(db):
    with pytest.raises(CommandError, match=r"week must be YYYY-Www \(e.g. 2026-W47\)"):
        run_command("--week", "47")
    with pytest.raises(CommandError, match="2025 has weeks W01 to W52"):
        run_command("--week", "2025-W53")


def test_command_on_a_week_without_bars(db):
    assert "nothing analysed" in run_command("--week", "2026-W47")


def test_task_analyzes_the_last_complete_week(market, monkeypatch):
    monkeypatch.setattr("market.analysis_service.today_in_seoul", lambda: date(2026, 11, 21))
    result = analyze_last_week.apply().get()

    assert result["iso_week"] == "2026-W47" and result["week_start"] == "2026-11-16" and result["symbols"] == 3
    assert json.loads(json.dumps(result)) == result
    assert analyze_last_week.name == "market.analyze_last_week"


# --- benchmark --------------------------------------------------------------------------------


def test_benchmark_universe_beyond_the_demo_limit_has_unique_codes():
    universe = benchmark_universe(MAX_SYMBOLS + 5)
    codes = [sym["code"] for sym in universe]
    assert len(codes) == len(set(codes)) == MAX_SYMBOLS + 5
    assert codes[MAX_SYMBOLS] == "100000" and all(len(code) == 6 for code in codes)


def test_benchmark_command_runs_without_a_database():
    out = io.StringIO()
    call_command("benchmark_analysis", "--symbols", "20", "--years", "1", "--end", "2026-11-20", "--missing", "0.01",
                 stdout=out)
    output = out.getvalue()
    assert "data: 20 symbols x" in output
    assert re.search(r"weekly table, all \d+ weeks x 20 symbols: \d+\.\d\d s", output)
    assert "weekly table + outliers, all weeks" in output and "latest week only (2026-W47" in output
    assert "target < 5 s" in output  # and no database: this test has no access to one


def test_benchmark_command_rejects_bad_options():
    with pytest.raises(CommandError):
        call_command("benchmark_analysis", "--symbols", "0", stdout=io.StringIO())
    with pytest.raises(CommandError):
        call_command("benchmark_analysis", "--missing", "0.9", stdout=io.StringIO())


@pytest.mark.parametrize("monday", [MON, date(2026, 10, 12), date(2026, 2, 23)])  # after Chuseok, Seollal
def test_loaded_history_covers_the_windows_with_room_to_spare(monday):
    loaded = trading_days(monday - timedelta(days=HISTORY_CALENDAR_DAYS), monday - timedelta(days=1))
    assert len(loaded) >= HISTORY_BARS_NEEDED + 25
