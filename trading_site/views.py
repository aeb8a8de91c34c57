from django.contrib.auth.decorators import login_required
from django.http import JsonResponse
from django.shortcuts import render
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from accounts.selectors import broker_accounts_for

from .health import health_report


@require_GET
@never_cache
def healthz(request):
    report = health_report()
    return JsonResponse(report.as_dict(), status=200 if report.healthy else 503)


@login_required
def dashboard(request):
    return render(request, "dashboard.html", {"broker_accounts": broker_accounts_for(request.user)})
