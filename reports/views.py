"""리포트 pages: the user's weekly reports by week, one report with its facts and charts, and the
owner's regenerate button. Views stay thin: `selectors` read (owner-scoped), `tasks` act."""

from __future__ import annotations

import json

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.shortcuts import redirect, render
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST, require_safe

from . import selectors
from .rendering import render_report
from .tasks import start_regenerate


@login_required
@require_safe
def index(request):
    """리포트: the user's reports, newest week first."""
    return render(request, "reports/index.html", {"rows": selectors.report_rows(request.user)})


@login_required
@require_safe
def detail(request, week: str):
    report = selectors.report_for(request.user, week)
    chart = selectors.chart_data(report)
    chart["labels"] = {
        "equity": _("Portfolio"), "benchmark": _("Benchmark (equal weight)"),
        "bought": _("Bought"), "sold": _("Sold"),
    }
    return render(request, "reports/detail.html", {
        "report": report,
        "facts": report.facts,
        "summary": selectors.summary(report),
        "strategies": selectors.report_strategies(report),
        "html": render_report(report.text, report.unverified_numbers),
        "chart": chart,
        "facts_json": json.dumps(report.facts, ensure_ascii=False, indent=2),
    })


@login_required
@require_POST
def regenerate(request, week: str):
    """Rewrite the report with the model (on the workers; inline when Celery runs eagerly)."""
    report = selectors.report_for(request.user, week)
    start_regenerate(report)
    messages.success(request, _("The report is being rewritten. Reload the page in a moment to see it."))
    return redirect("reports:detail", week=report.iso_week)
