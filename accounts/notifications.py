"""Tell people: e-mail to a user's address and a Slack-compatible webhook.

The channels (used by the trading alerts, `orders.notifications`, and by the security notices here):

- E-mail (`django.core.mail.send_mail`) to the user's address, when `settings.NOTIFY_EMAIL` is true and
  the user has an address.
- Webhook: POST `{"text": ...}` as JSON to `settings.NOTIFY_WEBHOOK_URL` when set (Slack incoming
  webhooks and compatible chat tools accept this), with a 5 s time-out.

A notification never breaks what it reports on: every failure is logged and swallowed, and the senders
return whether they delivered. Secrets never appear in a text (account numbers masked) nor in the log
(the webhook URL is one).

Security notices (`notify_security_event`): real-money trading switched on, a broker account added or
its keys changed, a login from a new device — sent by `accounts.audit` once the action's transaction
commits.
"""

from __future__ import annotations

import logging

import requests
from django.conf import settings
from django.core.mail import send_mail
from django.utils import timezone, translation

from .models import SecurityEvent, SecurityEventKind

logger = logging.getLogger(__name__)

WEBHOOK_TIMEOUT = 5.0  # seconds, connect and read
SUBJECT_PREFIX = "[KIS 자동매매]"


def send_email(address: str, subject: str, text: str, *, log: logging.Logger | None = None, send=None,
               what: str = "notification") -> bool:
    """Mail `text` to `address` when NOTIFY_EMAIL is on and there is an address; never raises."""
    log = log or logger
    if not getattr(settings, "NOTIFY_EMAIL", False):
        return False
    address = (address or "").strip()
    if not address:
        return False
    try:
        (send or send_mail)(subject, text, settings.DEFAULT_FROM_EMAIL, [address], fail_silently=False)
    except Exception as error:  # SMTP down, bad address, ...: log and go on
        log.warning("%s: e-mail notification failed: %s", what, error)
        return False
    return True


def send_webhook(text: str, url: str | None = None, *, timeout: float | None = None,
                 log: logging.Logger | None = None) -> bool:
    """POST `{"text": text}` to `url` (default NOTIFY_WEBHOOK_URL); never raises, never logs the URL."""
    log = log or logger
    url = url if url is not None else getattr(settings, "NOTIFY_WEBHOOK_URL", "")
    if not url:
        return False
    try:
        response = requests.post(url, json={"text": text}, timeout=timeout if timeout is not None else WEBHOOK_TIMEOUT)
    except Exception as error:  # refused, time-out, DNS, bad URL: log and go on
        log.warning("webhook notification failed: %s", type(error).__name__)
        return False
    if response.status_code >= 400:
        log.warning("webhook notification refused: HTTP %s", response.status_code)
        return False
    return True


# --- security notices ------------------------------------------------------------------------------
FIELD_NAMES = {"app_key": "앱 키", "app_secret": "앱 시크릿", "account_number": "계좌번호", "product_code": "상품코드"}
NOT_YOU = "본인이 한 일이 아니라면 즉시 비밀번호를 바꾸고, 대시보드의 킬 스위치로 매매를 멈추세요."


def kind_label(kind: str) -> str:
    """The event's name in Korean (the notices are Korean, whatever language the request had)."""
    with translation.override("ko"):
        return str(SecurityEventKind(kind).label)


def security_event_text(event: SecurityEvent) -> str:
    """What happened, to whom, when and from where — Korean, the account number masked."""
    who = f"{event.username}님" if event.username else "사용자"
    account = event.broker_account_label or "-"
    detail = event.detail or {}
    if event.kind == SecurityEventKind.REAL_MONEY_ON:
        what = f"{who}의 브로커 계좌 {account}에서 실전 매매(실제 돈)가 켜졌습니다."
    elif event.kind == SecurityEventKind.BROKER_ACCOUNT_ADDED:
        what = f"{who}의 브로커 계좌가 추가되었습니다: {account}."
    elif event.kind == SecurityEventKind.BROKER_KEYS_CHANGED:
        fields = ", ".join(FIELD_NAMES.get(name, name) for name in detail.get("changed", [])) or "키"
        what = f"{who}의 브로커 계좌 {account}의 {fields}이(가) 바뀌었습니다."
    elif event.kind == SecurityEventKind.NEW_DEVICE:
        what = f"{who}의 계정에 새 기기에서 로그인했습니다: {detail.get('device') or '?'}."
    else:
        what = f"{who}: {kind_label(event.kind)}."
    when = timezone.localtime(event.created_at).strftime("%Y-%m-%d %H:%M")
    where = event.ip_address or "알 수 없음"
    lines = [f"{SUBJECT_PREFIX} {what}", f"시각 {when} (한국 시간), 접속 주소 {where}"]
    if event.actor_username and event.actor_username != event.username:
        lines.append(f"처리한 사람: {event.actor_username}")
    lines.append(NOT_YOU)
    return "\n".join(lines)


def notify_security_event(event: SecurityEvent) -> list[str]:
    """Send a security notice on every configured channel; the names of the channels that delivered.
    Never raises (called after the commit: the action is done whatever happens here)."""
    try:
        text = security_event_text(event)
        subject = f"{SUBJECT_PREFIX} 보안 알림: {kind_label(event.kind)}"
        address = event.user.email if event.user_id else ""
    except Exception:
        logger.exception("security event %s: could not build the notification", getattr(event, "pk", None))
        return []
    delivered = []
    if send_email(address, subject, text, what=f"security event {event.pk}"):
        delivered.append("email")
    if send_webhook(text):
        delivered.append("webhook")
    return delivered
