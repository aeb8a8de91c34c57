"""The week's market analysis: volatility, rises and falls, outliers and the most extreme z-scores --
stored rows of `market.WeeklyAnalysis`, else computed in memory by `market.analysis.analyze` (no write).
The same for every user of the week."""

from __future__ import annotations

import datetime as dt
import statistics
from collections import defaultdict

import pandas as pd

from market.analysis import analyze
from market.models import DailyBar, Outlier, WeeklyAnalysis

from .common import WeekWindow, finite, instrument_names, pct, rounded

TOP_OUTLIERS = 10
EXTREME_Z = 5
HISTORY_CALENDAR_DAYS = 150  # bars loaded before the week for an in-memory analysis (as market does)
SERIES_LABELS = {"close": "종가", "volume": "거래량"}
METHOD_LABELS = {"zscore": "z-점수", "iqr": "IQR", "hampel": "Hampel"}


def _analysis_rows(window: WeekWindow) -> tuple[str, list[dict], list[dict]]:
    """The week's per-stock statistics and outliers: stored rows, else computed in memory (no write)."""
    stored = list(
        WeeklyAnalysis.objects.filter(week_start=window.monday).values("instrument__code", "instrument__name", "volatility", "weekly_return", "z_score")
    )
    if stored:
        weekly = [
            {"code": r["instrument__code"], "name": r["instrument__name"], "volatility": r["volatility"],
             "weekly_return": r["weekly_return"], "z_score": r["z_score"]}
            for r in stored
        ]
        outliers = [
            {"code": code, "name": name, "date": day, "series": series, "method": method, "score": score}
            for code, name, day, series, method, score in Outlier.objects.filter(analysis__week_start=window.monday)
            .values_list("analysis__instrument__code", "analysis__instrument__name", "date", "series", "method", "score")
        ]
        return "stored", weekly, outliers
    if window.as_of is None:
        return "none", [], []
    rows = list(
        DailyBar.objects.filter(date__gte=window.monday - dt.timedelta(days=HISTORY_CALENDAR_DAYS), date__lte=window.as_of)
        .values_list("instrument__code", "date", "close", "volume")
    )
    if not rows:
        return "none", [], []
    frame = pd.DataFrame(rows, columns=["code", "date", "close", "volume"])
    frame["date"] = pd.to_datetime(frame["date"])
    close = frame.pivot(index="date", columns="code", values="close").astype(float)
    volume = frame.pivot(index="date", columns="code", values="volume").astype(float)
    result = analyze(close, volume, weeks=[window.monday])
    names = instrument_names(close.columns)
    weekly = [
        {"code": str(r.code), "name": names.get(str(r.code), ""), "volatility": finite(r.volatility),
         "weekly_return": finite(r.weekly_return), "z_score": finite(r.z_score)}
        for r in result.weekly.itertuples()
    ]
    outliers = [
        {"code": str(r.code), "name": names.get(str(r.code), ""), "date": pd.Timestamp(r.date).date(),
         "series": str(r.series), "method": str(r.method), "score": float(r.score)}
        for r in result.outliers.itertuples()
    ]
    return "computed", weekly, outliers


def market_facts(window: WeekWindow) -> dict:
    """The market part of the facts (the same for every user of the week)."""
    source, weekly, outliers = _analysis_rows(window)
    volatilities = [row["volatility"] for row in weekly if row["volatility"] is not None]
    returns = [row["weekly_return"] for row in weekly if row["weekly_return"] is not None]
    scored = sorted((row for row in weekly if row["z_score"] is not None), key=lambda row: -abs(row["z_score"]))
    by_series: dict[str, int] = defaultdict(int)
    by_method: dict[str, int] = defaultdict(int)
    for row in outliers:
        by_series[SERIES_LABELS.get(row["series"], row["series"])] += 1
        by_method[METHOD_LABELS.get(row["method"], row["method"])] += 1
    top = sorted(outliers, key=lambda row: (-abs(row["score"]), row["code"], row["date"]))[:TOP_OUTLIERS]
    most_volatile = sorted((r for r in weekly if r["volatility"] is not None), key=lambda r: -r["volatility"])[:3]
    return {
        "source": source,  # stored | computed | none
        "symbols": len(weekly),
        "average_volatility_pct": pct(statistics.fmean(volatilities)) if volatilities else None,
        "median_volatility_pct": pct(statistics.median(volatilities)) if volatilities else None,
        "average_weekly_return_pct": pct(statistics.fmean(returns)) if returns else None,
        "rising": sum(1 for r in returns if r > 0),
        "falling": sum(1 for r in returns if r < 0),
        "most_volatile": [
            {"code": r["code"], "name": r["name"], "volatility_pct": pct(r["volatility"])} for r in most_volatile
        ],
        "outliers": len(outliers),
        "outliers_by_series": dict(sorted(by_series.items())),
        "outliers_by_method": dict(sorted(by_method.items())),
        "top_outliers": [
            {"code": r["code"], "name": r["name"], "date": r["date"].isoformat(),
             "series": SERIES_LABELS.get(r["series"], r["series"]), "method": METHOD_LABELS.get(r["method"], r["method"]),
             "score": rounded(r["score"])}
            for r in top
        ],
        "extreme_z": [
            {"code": r["code"], "name": r["name"], "z_score": rounded(r["z_score"]),
             "weekly_return_pct": pct(r["weekly_return"])}
            for r in scored[:EXTREME_Z]
        ],
    }
