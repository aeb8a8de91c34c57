"""trading_site/asgi.py: an answer that has not started within the time limit becomes a 503 (as gunicorn's
sync worker time-out used to cut it), while a response that has started — a live stream — runs on."""

from __future__ import annotations

import asyncio

from trading_site.asgi import ResponseStartDeadline, UvicornWorker


def run(app, seconds: float) -> list[dict]:
    sent: list[dict] = []

    async def receive():
        await asyncio.sleep(3600)

    async def send(message):
        sent.append(message)

    asyncio.run(ResponseStartDeadline(app, seconds)({"type": "http", "method": "GET", "path": "/slow"}, receive, send))
    return sent


def test_an_answer_that_does_not_start_in_time_is_a_503():
    cancelled = []

    async def slow(scope, receive, send):
        try:
            await asyncio.sleep(5)
        except asyncio.CancelledError:
            cancelled.append(True)
            raise

    sent = run(slow, 0.05)
    assert cancelled == [True]
    assert sent[0]["status"] == 503
    assert "30초".encode() in sent[1]["body"]


def test_a_started_response_runs_past_the_limit():
    async def stream(scope, receive, send):
        await send({"type": "http.response.start", "status": 200, "headers": []})
        for part in (b"a", b"b", b"c"):
            await asyncio.sleep(0.04)
            await send({"type": "http.response.body", "body": part, "more_body": True})
        await send({"type": "http.response.body", "body": b""})

    sent = run(stream, 0.05)
    assert [m.get("status") for m in sent][:1] == [200]
    assert b"".join(m.get("body", b"") for m in sent) == b"abc"


def test_the_gunicorn_worker_leaves_proxies_to_django_and_ends_its_shutdown():
    assert UvicornWorker.CONFIG_KWARGS["proxy_headers"] is False
    assert UvicornWorker.CONFIG_KWARGS["lifespan"] == "off"
