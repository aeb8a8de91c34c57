"""Which real-time stream a page shows for a broker account.

KIS accounts (모의투자 or 실전) get the KIS WebSocket's ticks (``"kis"``, keyed by the account: one KIS
session per account), the paper broker and visitors without an account the simulated stream from the
demo market (``"sim"``, shared by everyone)."""

from __future__ import annotations

from accounts.models import BrokerAccount, BrokerMode


def stream_source_for(account: BrokerAccount | None) -> tuple[str, int | None]:
    """``("sim", None)`` for the paper broker or no account, ``("kis", account.pk)`` for a KIS account."""
    if account is None or account.mode == BrokerMode.PAPER:
        return "sim", None
    return "kis", account.pk
