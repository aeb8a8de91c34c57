"""Security notices: real money switched on, a broker account added or its keys changed, a login from a
new device reach the user's e-mail and the webhook (a real local HTTP server) once, after the commit;
nothing for a rolled-back action or another kind; a failing channel never breaks the action."""

from __future__ import annotations

import json
import logging
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from django.core import mail
from django.db import transaction

from accounts import audit, notifications, services
from accounts.models import BrokerMode
from accounts.models import SecurityEventKind as Kind
from accounts.tests.factories import BrokerAccountFactory

pytestmark = pytest.mark.django_db


class Hook:
    """A chat-webhook stand-in on 127.0.0.1 recording each POSTed JSON body; answers `status`."""

    def __init__(self, status: int = 200) -> None:
        self.status, self.received = status, []
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 (http.server's naming)
                hook.received.append(json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0))))
                self.send_response(hook.status)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True)

    @property
    def url(self) -> str:
        host, port = self.httpd.server_address[:2]
        return f"http://{host}:{port}/services/T0/B0/secret-part"

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=5)


@pytest.fixture
def channels_on(settings):
    settings.NOTIFY_EMAIL = True
    with Hook() as hook:
        settings.NOTIFY_WEBHOOK_URL = hook.url
        yield hook


def test_real_money_on_is_notified_once_after_the_commit(user, channels_on, django_capture_on_commit_callbacks):
    account = BrokerAccountFactory(owner=user, mode=BrokerMode.REAL, account_number="50001234")
    mail.outbox.clear()
    channels_on.received.clear()
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        services.save_broker_account(account, confirm_live_trading=True)
        assert mail.outbox == [] and channels_on.received == []  # nothing before the commit
    assert len(callbacks) == 1
    [message] = mail.outbox
    [posted] = channels_on.received
    assert message.to == [user.email] and "실전 매매" in message.subject
    for text in (message.body, posted["text"]):
        assert "실전 매매(실제 돈)가 켜졌습니다" in text and "5000****-01" in text and "50001234" not in text
        assert user.username in text and "킬 스위치" in text

    with django_capture_on_commit_callbacks(execute=True):
        services.save_broker_account(account, confirm_live_trading=False)  # switched off: recorded, not notified
    assert len(mail.outbox) == 1 and len(channels_on.received) == 1


def test_an_account_added_and_its_keys_changed_are_notified(user, channels_on, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        account = services.create_broker_account(user, name="KIS", mode=BrokerMode.SIMULATED,
                                                 app_key="PSkeyAAAAbbbbcccc", app_secret="x" * 40,
                                                 account_number="50001234")
    with django_capture_on_commit_callbacks(execute=True):
        services.save_broker_account(account, app_secret="y" * 40)
    added, changed = (posted["text"] for posted in channels_on.received)
    assert "계좌가 추가되었습니다: KIS (5000****-01)" in added
    assert "앱 시크릿이(가) 바뀌었습니다" in changed
    assert len(mail.outbox) == 2
    everything = added + changed + "".join(m.body + m.subject for m in mail.outbox)
    for secret in ("PSkeyAAAAbbbbcccc", "x" * 40, "y" * 40, "50001234"):
        assert secret not in everything


def test_other_kinds_are_recorded_but_not_notified(user, channels_on, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        for kind in (Kind.LOGIN_SUCCEEDED, Kind.LOGIN_FAILED, Kind.MFA_ADDED, Kind.KILL_SWITCH_ON, Kind.MANUAL_ORDER,
                     Kind.REAL_MONEY_OFF, Kind.STEP_UP):
            audit.record_event(kind, user=user)
    assert callbacks == [] and mail.outbox == [] and channels_on.received == []


def test_a_rolled_back_action_is_never_notified(user, channels_on, django_capture_on_commit_callbacks):
    account = BrokerAccountFactory(owner=user, mode=BrokerMode.REAL)
    mail.outbox.clear()
    channels_on.received.clear()
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        with pytest.raises(RuntimeError), transaction.atomic():
            services.save_broker_account(account, confirm_live_trading=True)
            raise RuntimeError("the caller failed after the service")
    assert callbacks == [] and mail.outbox == [] and channels_on.received == []


def test_failing_channels_do_not_break_the_action(user, settings, monkeypatch, caplog,
                                                   django_capture_on_commit_callbacks):
    def smtp_down(*args, **kwargs):
        raise ConnectionRefusedError("smtp down")

    settings.NOTIFY_EMAIL = True
    monkeypatch.setattr(notifications, "send_mail", smtp_down)
    with Hook(status=500) as hook, caplog.at_level(logging.WARNING, logger="accounts.notifications"):
        settings.NOTIFY_WEBHOOK_URL = hook.url
        with django_capture_on_commit_callbacks(execute=True):
            account = BrokerAccountFactory(owner=user, mode=BrokerMode.REAL)
            services.save_broker_account(account, confirm_live_trading=True)
    account.refresh_from_db()
    assert account.live_trading_allowed  # the action stands
    assert len(hook.received) == 2  # tried: the account added, real money on
    assert "e-mail notification failed" in caplog.text and "webhook notification refused: HTTP 500" in caplog.text
    assert "secret-part" not in caplog.text  # the webhook URL is a secret


def test_the_generic_senders_say_whether_they_delivered(settings):
    settings.NOTIFY_EMAIL = False
    assert notifications.send_email("a@example.com", "s", "t") is False
    settings.NOTIFY_EMAIL = True
    assert notifications.send_email("  ", "s", "t") is False
    assert notifications.send_email("a@example.com", "s", "t") is True and mail.outbox[0].to == ["a@example.com"]
    settings.NOTIFY_WEBHOOK_URL = ""
    assert notifications.send_webhook("t") is False
    with Hook() as hook:
        assert notifications.send_webhook("안녕", hook.url) is True and hook.received == [{"text": "안녕"}]
