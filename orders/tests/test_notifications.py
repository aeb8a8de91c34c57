"""Notifications: alerts reach a Slack-compatible webhook over real HTTP and the owner's e-mail; a
failing webhook or mail server never breaks trading or reconciliation."""

from __future__ import annotations

import json
import logging
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from django.core import mail
from django.db.models import F

from accounts.tests.factories import BrokerAccountFactory
from market.models import PaperPosition
from orders import notifications
from orders.controls import raise_alert
from orders.models import AlertKind, Order, OrderStatus, TradingAlert, WeeklyRunStatus
from orders.reconciliation import reconcile_open_orders, reconcile_orders
from orders.weekly import place_weekly_buys

from .conftest import MONDAY, at

pytestmark = pytest.mark.django_db


class WebhookServer:
    """A tiny chat-webhook stand-in on 127.0.0.1: records each POST; answers `status` after `delay` s."""

    def __init__(self, status: int = 200, delay: float = 0.0) -> None:
        self.status, self.delay = status, delay
        self.received: list[dict] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 (http.server's naming)
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                server.received.append({"path": self.path, "content_type": self.headers.get("Content-Type"),
                                        "json": json.loads(body)})
                time.sleep(server.delay)
                self.send_response(server.status)
                self.send_header("Content-Type", "text/plain")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True)

    @property
    def url(self) -> str:
        host, port = self.httpd.server_address[:2]
        return f"http://{host}:{port}/services/T000/B000/hook"

    def __enter__(self) -> WebhookServer:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=5)


def closed_port_url() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/hook"  # nothing listens there any more: connection refused


def run_entry(config, capture):
    with capture(execute=True):  # notifications go out when the transaction commits
        result = place_weekly_buys(config, MONDAY, at(MONDAY, 9, 5))
        reconcile_orders(config.broker_account, MONDAY, now=at(MONDAY, 9, 10))
    return result


def test_fills_and_a_position_mismatch_reach_the_webhook_as_text(config, settings,
                                                                 django_capture_on_commit_callbacks):
    with WebhookServer() as hook:
        settings.NOTIFY_WEBHOOK_URL = hook.url
        run_entry(config, django_capture_on_commit_callbacks)
        filled = list(Order.objects.filter(status=OrderStatus.FILLED).order_by("pk"))
        assert len(filled) == 3 and len(hook.received) == 3
        for request, order in zip(hook.received, filled, strict=True):
            assert request["path"] == "/services/T000/B000/hook"
            assert request["content_type"] == "application/json"
            assert set(request["json"]) == {"text"}
            assert order.code in request["json"]["text"] and "체결" in request["json"]["text"]
        assert not TradingAlert.objects.filter(kind=AlertKind.FILLED, notified_at__isnull=True).exists()

        code = filled[0].code
        PaperPosition.objects.filter(code=code).update(quantity=F("quantity") - 1)  # sold outside the system
        with django_capture_on_commit_callbacks(execute=True):
            reconcile_open_orders(now=at(MONDAY, 10, 0))
            reconcile_open_orders(now=at(MONDAY, 10, 5))
        assert len(hook.received) == 4  # one mismatch alert, notified once
        text = hook.received[-1]["json"]["text"]
        assert code in text and "부족" in text and "신규 진입" in text


@pytest.mark.parametrize("failure", ["http_500", "connection_refused", "time_out"])
def test_a_failing_webhook_does_not_break_trading_or_reconciliation(config, settings, monkeypatch, caplog, failure,
                                                                    django_capture_on_commit_callbacks):
    monkeypatch.setattr(notifications, "WEBHOOK_TIMEOUT", 0.3)
    hook = WebhookServer(status=500) if failure == "http_500" else WebhookServer(delay=2.0)
    with hook, caplog.at_level(logging.WARNING, logger="orders.notifications"):
        settings.NOTIFY_WEBHOOK_URL = closed_port_url() if failure == "connection_refused" else hook.url
        started = time.monotonic()
        result = run_entry(config, django_capture_on_commit_callbacks)
        elapsed = time.monotonic() - started
    assert result.run.status == WeeklyRunStatus.COMPLETE
    assert Order.objects.filter(status=OrderStatus.FILLED).count() == 3  # every fill recorded
    alerts = TradingAlert.objects.filter(kind=AlertKind.FILLED)
    assert alerts.count() == 3 and not alerts.filter(notified_at__isnull=False).exists()
    assert "webhook notification" in caplog.text
    assert settings.NOTIFY_WEBHOOK_URL not in caplog.text  # a webhook URL is a secret
    assert elapsed < 3 * 0.3 + 5  # each attempt gives up at the time-out


def test_email_goes_to_the_account_owner_when_switched_on(config, user, settings, django_capture_on_commit_callbacks):
    settings.NOTIFY_EMAIL = True
    run_entry(config, django_capture_on_commit_callbacks)
    assert len(mail.outbox) == 3
    codes = set(Order.objects.values_list("code", flat=True))
    for message in mail.outbox:
        assert message.to == [user.email]
        assert message.subject.startswith("[KIS 자동매매]")
        assert any(code in message.body for code in codes) and "체결" in message.body


def test_no_email_when_switched_off_or_the_owner_has_no_address(paper_account, user, settings,
                                                                django_capture_on_commit_callbacks):
    settings.NOTIFY_EMAIL = False
    with django_capture_on_commit_callbacks(execute=True):
        raise_alert(paper_account, AlertKind.JOB_FAILED, "실패", key="a")
    assert mail.outbox == []
    settings.NOTIFY_EMAIL = True
    user.email = ""
    user.save(update_fields=["email"])
    with django_capture_on_commit_callbacks(execute=True):
        alert, _ = raise_alert(paper_account, AlertKind.JOB_FAILED, "실패", key="b")
    assert mail.outbox == []
    alert.refresh_from_db()
    assert alert.notified_at is None  # nothing delivered


def test_a_failing_mail_server_does_not_break_trading(config, settings, monkeypatch,
                                                      django_capture_on_commit_callbacks):
    def smtp_down(*args, **kwargs):
        raise ConnectionRefusedError("smtp down")

    settings.NOTIFY_EMAIL = True
    monkeypatch.setattr(notifications, "send_mail", smtp_down)
    result = run_entry(config, django_capture_on_commit_callbacks)
    assert result.run.status == WeeklyRunStatus.COMPLETE
    assert Order.objects.filter(status=OrderStatus.FILLED).count() == 3


def test_the_text_shows_the_account_number_masked_only(user, settings, django_capture_on_commit_callbacks):
    account = BrokerAccountFactory(owner=user, account_number="50001234")
    with WebhookServer() as hook:
        settings.NOTIFY_WEBHOOK_URL = hook.url
        with django_capture_on_commit_callbacks(execute=True):
            raise_alert(account, AlertKind.ORDER_REJECTED, "거부되었습니다", key="order-1")
    [request] = hook.received
    text = request["json"]["text"]
    assert "50001234" not in text and account.masked_account_number in text and "거부되었습니다" in text


def test_a_web_process_can_queue_a_notification_by_the_tasks_name():
    """A fresh process that only set Django up (a web server) knows the notify task: `controls` queues it
    by name, and a process where it is unknown would send every notification inline, in the request."""
    import os
    import subprocess
    import sys

    from django.conf import settings

    code = ("import django; django.setup(); from celery import current_app; from orders import controls; "
            "print(controls.NOTIFY_TASK in current_app.tasks)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=settings.BASE_DIR,
                            env={**os.environ, "DJANGO_SETTINGS_MODULE": "trading_site.settings"}, timeout=120)
    assert result.stdout.strip() == "True", result.stderr[-2000:]
