"""Tell people about trading alerts: e-mail to the account owner and a Slack-compatible webhook.

- E-mail (`django.core.mail.send_mail`) to the broker account owner's address, when
  `settings.NOTIFY_EMAIL` is true and the owner has an address.
- Webhook: POST `{"text": ...}` as JSON to `settings.NOTIFY_WEBHOOK_URL` when set (Slack incoming
  webhooks and compatible chat tools accept this), with a 5 s time-out.

A notification must never break trading: every failure is logged and swallowed, and `notify_alert`
returns which channels delivered. Secrets never appear in the text (the account number is masked).
"""

from __future__ import annotations

import logging

import requests
from django.conf import settings
from django.core.mail import send_mail

logger = logging.getLogger(__name__)

WEBHOOK_TIMEOUT = 5.0  # seconds, connect and read
SUBJECT_PREFIX = "[KIS 자동매매]"


def alert_text(alert) -> str:
    """One or two lines a person can act on: the account (masked), the kind and the message."""
    parts = [SUBJECT_PREFIX]
    account = alert.account
    if account is not None:
        parts.append(f"{account.name} ({account.masked_account_number or account.get_mode_display()})")
    parts.append(f"{alert.get_kind_display()}:")
    text = " ".join(parts) + f"\n{alert.message}"
    if alert.blocks_entries:
        text += "\n이 알림을 해결할 때까지 이 계좌의 신규 진입(매수)이 막힙니다."
    return text


def send_email(alert, text: str) -> bool:
    if not getattr(settings, "NOTIFY_EMAIL", False) or alert.account is None:
        return False
    address = (alert.account.owner.email or "").strip()
    if not address:
        return False
    subject = f"{SUBJECT_PREFIX} {alert.get_kind_display()}"
    try:
        send_mail(subject, text, settings.DEFAULT_FROM_EMAIL, [address], fail_silently=False)
    except Exception as error:  # SMTP down, bad address, ...: log and go on trading
        logger.warning("alert %s: e-mail notification failed: %s", alert.pk, error)
        return False
    return True


def send_webhook(text: str, url: str | None = None) -> bool:
    url = url if url is not None else getattr(settings, "NOTIFY_WEBHOOK_URL", "")
    if not url:
        return False
    try:
        response = requests.post(url, json={"text": text}, timeout=WEBHOOK_TIMEOUT)
    except Exception as error:  # refused, time-out, DNS, bad URL: log and go on trading
        logger.warning("webhook notification failed: %s", type(error).__name__)
        return False
    if response.status_code >= 400:
        logger.warning("webhook notification refused: HTTP %s", response.status_code)
        return False
    return True


def notify_alert(alert) -> list[str]:
    """Send the alert on every configured channel; the names of the channels that delivered.
    Never raises."""
    try:
        text = alert_text(alert)
    except Exception:
        logger.exception("alert %s: could not build the notification text", getattr(alert, "pk", None))
        return []
    delivered = []
    if send_email(alert, text):
        delivered.append("email")
    if send_webhook(text):
        delivered.append("webhook")
    return delivered
