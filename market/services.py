"""Actions of the market app that touch a broker: the connection test, token revocation."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from accounts.models import BrokerAccount, BrokerMode
from market.brokers import broker_for
from market.gateway import BrokerError, user_message_for
from market.kis import KisError
from market.kis.models import Holding

logger = logging.getLogger(__name__)


@dataclass
class ConnectionTestResult:
    ok: bool
    mode: str
    cash: int = 0
    total_evaluation: int = 0
    holdings: list[Holding] = field(default_factory=list)
    error: str = ""
    error_code: str = ""


def test_broker_connection(account: BrokerAccount) -> ConnectionTestResult:
    """Issue (or reuse) a token and read the balance: cash and holdings, or the exact broker error."""
    try:
        balance = broker_for(account).get_balance()
    except (KisError, BrokerError) as error:
        code = getattr(error, "msg_cd", None) or getattr(error, "code", "") or ""
        logger.warning("connection test failed for broker account %s: %s", account.pk, code or type(error).__name__)
        return ConnectionTestResult(ok=False, mode=account.mode, error=user_message_for(error), error_code=code)
    return ConnectionTestResult(
        ok=True, mode=account.mode, cash=balance.summary.cash_deposit,
        total_evaluation=balance.summary.total_evaluation, holdings=list(balance.holdings),
    )


def revoke_broker_token(account: BrokerAccount) -> None:
    """Best effort: revoke the KIS token of an account being removed (it would expire in a day anyway)."""
    if account.mode == BrokerMode.PAPER or not account.app_key:
        return
    try:
        broker_for(account).revoke_token()
    except Exception as error:  # removal must not fail because KIS is unreachable
        logger.warning("token revocation failed for broker account %s: %s", account.pk, type(error).__name__)
