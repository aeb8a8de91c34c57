from django.contrib.auth.decorators import login_required
from django.http import JsonResponse
from django.shortcuts import redirect, render
from django.templatetags.static import static
from django.views.decorators.cache import cache_control, never_cache
from django.views.decorators.http import require_GET

from orders.dashboard import dashboard_for

from .health import health_report


@require_GET
@never_cache
def healthz(request):
    report = health_report()
    return JsonResponse(report.as_dict(), status=200 if report.healthy else 503)


@require_GET
@cache_control(max_age=86400, public=True)
def favicon(request):
    """/favicon.ico, which browsers and tools ask for on pages without an icon link (the admin, Swagger UI):
    the static icon, under its hashed name when the static files are collected."""
    return redirect(static("favicon.ico"))


@login_required
def dashboard(request):
    """대시보드: account value, holdings with P&L, this week's plan, the next runs, recent orders, the
    kill switch, open alerts and the equity line — all from stored data (`orders.dashboard.dashboard_for`);
    a KIS account's broker balance loads separately over HTMX, so an unreachable broker never fails the page."""
    # The live page refreshes its recent orders and account cards after a fill event (HTMX, target
    # "recent-orders"): that refresh needs no dry run of this week's plan.
    refresh = bool(getattr(request, "htmx", False)) and request.htmx.target == "recent-orders"
    return render(request, "dashboard.html", dashboard_for(request.user, with_plan=not refresh))
