"""Every web request gets a total time budget for its broker calls.

gunicorn kills a worker that has not answered within its time-out (30 s, the default the Dockerfile and
docker-compose use) and the user sees a bare 500, while one KIS read may retry for ~41 s and a token
re-issue may have to wait 61 s for KIS's one-per-minute limit. So each request runs under
``market.kis.deadline.deadline(settings.BROKER_WEB_DEADLINE_SECONDS)`` (20 s by default; 0 switches it
off): the KIS client shortens its time-outs to the time left and stops with ``KisDeadlineExceeded``
(a Korean message) instead of waiting past it. Celery tasks and commands run without a budget, so the
long waits (the token limit) stay there.

The views that call the broker turn the error into their own answer (the HTMX partial shows the message;
the API answers 504 ``{"detail": ...}``); an error that still escapes a view gets the same 504 here rather
than a 500.
"""

from __future__ import annotations

from django.conf import settings
from django.http import HttpResponse, JsonResponse

from market.kis.deadline import deadline
from market.kis.errors import KisDeadlineExceeded


class BrokerDeadlineMiddleware:
    def __init__(self, get_response) -> None:
        self.get_response = get_response

    def __call__(self, request):
        seconds = getattr(settings, "BROKER_WEB_DEADLINE_SECONDS", 0)
        if not seconds:
            return self.get_response(request)
        with deadline(seconds):
            return self.get_response(request)

    def process_exception(self, request, exception):
        if not isinstance(exception, KisDeadlineExceeded):
            return None
        message = exception.user_message
        if request.headers.get("HX-Request") or "text/html" in request.headers.get("Accept", ""):
            # A page or an HTMX swap: the message itself, as plain text.
            return HttpResponse(message, status=504, content_type="text/plain; charset=utf-8")
        return JsonResponse({"detail": message, "code": exception.code}, status=504,
                            json_dumps_params={"ensure_ascii": False})
