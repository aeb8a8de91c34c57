"""The site as an ASGI application: what scripts/run (uvicorn), scripts/serve and the Docker image (gunicorn
with uvicorn workers) serve. ASGI so that the live streams (market.streaming.sse, Server-Sent Events) wait on
the bus in the event loop instead of holding a worker each; the pages are the same Django views.

Static files: whitenoise's middleware serves them under ASGI as under WSGI — from the finders in DEBUG
(WHITENOISE_USE_FINDERS, the sources as `runserver` served them), from STATIC_ROOT under their hashed names
otherwise.
"""

import asyncio
import logging
import os

from django.core.asgi import get_asgi_application

logger = logging.getLogger(__name__)

# A request must start its answer within this many seconds, as gunicorn's sync workers (--timeout 30) made
# sure before; BROKER_WEB_DEADLINE_SECONDS (20) keeps the broker calls inside it.
RESPONSE_START_SECONDS = 30
TOO_SLOW = "서버가 30초 안에 응답하지 못했습니다. 잠시 후 다시 시도하세요.".encode()


class ResponseStartDeadline:
    """An answer that has not started after ``seconds`` is replaced by a 503: the request is cancelled (a
    sync view's thread finishes on its own; its result is dropped). A response that has started — a live
    stream, a download — runs as long as it needs."""

    def __init__(self, app, seconds: float) -> None:
        self.app, self.seconds = app, seconds

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        started = False

        async def watched_send(message):
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        task = asyncio.ensure_future(self.app(scope, receive, watched_send))
        try:
            done, _ = await asyncio.wait({task}, timeout=self.seconds)
            if done or started:
                return await task
        except asyncio.CancelledError:
            task.cancel()
            raise
        task.cancel()
        try:
            await task
        except asyncio.CancelledError:
            pass
        logger.warning("%s %s: no answer within %s s, answered 503", scope.get("method"), scope.get("path"),
                       self.seconds)
        await send({"type": "http.response.start", "status": 503,
                    "headers": [(b"content-type", b"text/plain; charset=utf-8"), (b"retry-after", b"5")]})
        await send({"type": "http.response.body", "body": TOO_SLOW})


os.environ.setdefault("DJANGO_SETTINGS_MODULE", "trading_site.settings")
application = ResponseStartDeadline(get_asgi_application(), RESPONSE_START_SECONDS)

# As in wsgi.py: without collected static files every page would answer 500, so refuse to start.
from trading_site.static_check import ensure_static_files_collected  # noqa: E402

ensure_static_files_collected()

# The KRX calendar takes seconds to build (more on a busy machine): build it while the server starts, not
# inside the first request that needs it (which has a broker budget and a worker time-out to keep).
from market.krx import krx_calendar  # noqa: E402

krx_calendar()

from uvicorn_worker import UvicornWorker as _UvicornWorker  # noqa: E402


class UvicornWorker(_UvicornWorker):
    """gunicorn's worker for this app (`-k trading_site.asgi.UvicornWorker`), uvicorn's with three changes:
    - no proxy headers: Django decides what to trust (TRUSTED_PROXY_COUNT, SECURE_PROXY_SSL_HEADER); uvicorn's
      own rewriting would take X-Forwarded-For from any client on 127.0.0.1 as its address;
    - no lifespan protocol (Django has none to offer);
    - a graceful shutdown that ends: live streams never finish by themselves, so after
      graceful_timeout − 5 s (20 s with --graceful-timeout 25, as long as a request's broker budget)
      the remaining ones are cancelled, each closing cleanly (its stream slot and watch are given back),
      and the browsers reconnect to the new workers.
    gunicorn's --timeout stays a watchdog: the worker notifies the arbiter from its event loop every
    timeout/2 s whatever its requests do, so a stream open for hours never trips it; a loop blocked for
    longer does (the worker is restarted)."""

    CONFIG_KWARGS = {**_UvicornWorker.CONFIG_KWARGS, "proxy_headers": False, "lifespan": "off"}

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.config.timeout_graceful_shutdown = max(1, int(self.cfg.graceful_timeout) - 5)
