from django.contrib.auth.decorators import login_required
from django.http import JsonResponse
from django.shortcuts import render
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from orders.selectors import dashboard_for

from .health import health_report


@require_GET
@never_cache
def healthz(request):
    report = health_report()
    return JsonResponse(report.as_dict(), status=200 if report.healthy else 503)


@login_required
def dashboard(request):
    """대시보드: account value, holdings with P&L, this week's plan, the next runs, recent orders, the
    kill switch, open alerts and the equity line — all from stored data (`orders.selectors.dashboard_for`);
    a KIS account's broker balance loads separately over HTMX, so an unreachable broker never fails the page."""
    return render(request, "dashboard.html", dashboard_for(request.user))
