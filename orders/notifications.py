"""Tell people about trading alerts: e-mail to the account owner and a Slack-compatible webhook.

The channels are `accounts.notifications`' (shared with the security notices):

- E-mail (`django.core.mail.send_mail`) to the broker account owner's address, when
  `settings.NOTIFY_EMAIL` is true and the owner has an address.
- Webhook: POST `{"text": ...}` as JSON to `settings.NOTIFY_WEBHOOK_URL` when set (Slack incoming
  webhooks and compatible chat tools accept this), with a 5 s time-out.

A notification must never break trading: every failure is logged and swallowed, and `notify_alert`
returns which channels delivered. Secrets never appear in the text (the account number is masked).
"""

from __future__ import annotations

import logging

from django.core.mail import send_mail

from accounts import notifications as channels

logger = logging.getLogger(__name__)

WEBHOOK_TIMEOUT = channels.WEBHOOK_TIMEOUT  # seconds, connect and read
SUBJECT_PREFIX = channels.SUBJECT_PREFIX


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
    if alert.account is None:
        return False
    subject = f"{SUBJECT_PREFIX} {alert.get_kind_display()}"
    return channels.send_email(alert.account.owner.email, subject, text, log=logger, send=send_mail,
                               what=f"alert {alert.pk}")


def send_webhook(text: str, url: str | None = None) -> bool:
    return channels.send_webhook(text, url, timeout=WEBHOOK_TIMEOUT, log=logger)


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
