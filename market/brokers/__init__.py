"""The two gateway implementations and the one place that picks between them."""

from __future__ import annotations

from accounts.models import BrokerAccount, BrokerMode
from market.gateway import BrokerGateway


def broker_for(account: BrokerAccount, **options) -> BrokerGateway:
    """The gateway for a broker account: the paper broker, or KIS (real or 모의투자 host)."""
    if account.mode == BrokerMode.PAPER:
        from .paper import PaperBroker

        return PaperBroker(account, **options)
    from .kis import KisBroker

    return KisBroker(account, **options)
