"""Reads of the weekly reports for the pages and the API: owner-scoped (another user's report is a
404, as if it did not exist), plus the read-side shaping of a report's facts for its page."""

from __future__ import annotations

import re

from django.db.models import QuerySet
from django.http import Http404

from strategies import texts
from strategies.library import all_strategies

from .models import WeeklyReport

WEEK_PATTERN = re.compile(r"^\d{4}-W\d{2}$")


def reports_for(user) -> QuerySet[WeeklyReport]:
    if not user.is_authenticated:
        return WeeklyReport.objects.none()
    return WeeklyReport.objects.filter(user=user).order_by("-week_start")


def report_for(user, week: str) -> WeeklyReport:
    """The user's report of `week` ("YYYY-Www"), or 404 (also for a malformed week)."""
    if not WEEK_PATTERN.match(week or ""):
        raise Http404("no such week")
    report = reports_for(user).filter(iso_week=week).first()
    if report is None:
        raise Http404("no report for this week")
    return report


def summary(report: WeeklyReport) -> dict:
    """The headline numbers of a report, from its facts (missing keys read as None)."""
    facts = report.facts or {}
    portfolio = facts.get("portfolio") or {}
    trades = facts.get("trade_summary") or {}
    return {
        "return_pct": portfolio.get("return_pct"),
        "pnl": portfolio.get("pnl"),
        "equity_start": portfolio.get("equity_start"),
        "equity_end": portfolio.get("equity_end"),
        "benchmark_name": (facts.get("benchmark") or {}).get("name"),
        "benchmark_pct": (facts.get("benchmark") or {}).get("return_pct"),
        "excess_pct": facts.get("excess_return_pct"),
        "trades": trades.get("count", 0),
        "realized_pnl": trades.get("realized_pnl"),
        "failures": (facts.get("failures") or {}).get("count", 0),
        "start": (facts.get("week") or {}).get("start"),
        "end": (facts.get("week") or {}).get("end"),
        "as_of": (facts.get("week") or {}).get("as_of"),
        "complete": (facts.get("week") or {}).get("complete", True),
    }


def report_strategies(report: WeeklyReport) -> list[dict]:
    """The facts' strategies for the page, the strategies' own texts (name, rules, parameter labels) in
    the page's language. The facts store the Korean declarations (the model reads them); a text is
    replaced only where it still equals the current declaration, and the stored facts stay unchanged."""
    by_name = {cls.name: cls for cls in all_strategies().values() if cls.name}
    shown = []
    for item in (report.facts or {}).get("strategies") or []:
        cls = by_name.get(item.get("strategy"))
        if cls is None:
            shown.append(item)
            continue
        specs = {spec.name: spec for spec in cls.parameter_specs()}
        parameters = []
        for p in item.get("parameters") or []:
            spec = specs.get(p.get("name"))
            if spec is not None and p.get("label") == (spec.label or spec.name):
                p = {**p, "label": texts.parameter_label(spec)}
            parameters.append(p)
        rules = item.get("rules")
        shown.append({
            **item, "strategy": texts.strategy_name(cls), "parameters": parameters,
            "rules": texts.strategy_description(cls) if rules == cls.description else rules,
        })
    return shown


def report_rows(user) -> list[tuple[WeeklyReport, dict]]:
    return [(report, summary(report)) for report in reports_for(user)]


def chart_data(report: WeeklyReport) -> dict:
    """The equity (vs the benchmark scaled to the same start) and the traded amounts per day."""
    series = (report.facts or {}).get("series") or []
    return {
        "dates": [point.get("date") for point in series],
        "equity": [point.get("equity") for point in series],
        "benchmark": [point.get("benchmark") for point in series],
        "bought": [point.get("bought", 0) for point in series],
        "sold": [point.get("sold", 0) for point in series],
    }
