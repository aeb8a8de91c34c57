"""The broker gateway: the one interface through which the site reads quotes and balances and sends
orders. Two implementations: `market.brokers.kis.KisBroker` (KIS Open API) and
`market.brokers.paper.PaperBroker` (simulated fills from stored bars, no network).

The value types are the KIS client's plain dataclasses (`market.kis.models`), so both brokers answer
in the same shapes. Pure Python: no Django here.
"""

from __future__ import annotations

import datetime as dt
from typing import Protocol, runtime_checkable

from market.kis.errors import KisError
from market.kis.models import Balance, BuyableAmount, DailyBar, DailyOrder, OrderReceipt, Quote

__all__ = [
    "Balance", "BrokerError", "BrokerGateway", "BuyableAmount", "DailyBar", "DailyOrder", "OrderReceipt",
    "OrderRefused", "Quote",
]


class BrokerError(Exception):
    """A broker answer the user must see, with a clear (Korean) message."""

    def __init__(self, message: str, *, code: str = "") -> None:
        super().__init__(message)
        self.code = code

    @property
    def user_message(self) -> str:
        return str(self)


class OrderRefused(BrokerError):
    """The order was refused before it reached the market (a KRX rule, cash, holdings)."""

    def __init__(self, reasons: list[str], *, code: str = "") -> None:
        super().__init__(" / ".join(reasons), code=code)
        self.reasons = reasons


def user_message_for(error: Exception) -> str:
    """The message a user sees for a broker failure of either implementation."""
    if isinstance(error, (BrokerError, KisError)):
        return error.user_message
    return str(error)


@runtime_checkable
class BrokerGateway(Protocol):
    mode: str  # "paper", "simulated" or "real"

    def get_quote(self, code: str) -> Quote: ...

    def get_daily_bars(self, code: str, start: dt.date, end: dt.date) -> list[DailyBar]: ...

    def place_order(
        self, side: str, code: str, quantity: int, price: int = 0, order_type: str = "00",
        *, client_order_id: str = "",
    ) -> OrderReceipt:
        """Send an order once. Never retried blindly by an implementation: an unclear outcome
        raises `KisOrderOutcomeUnknown`, to be resolved with `get_daily_orders`."""

    def cancel_order(self, order_no: str, org_no: str, quantity: int | None = None) -> OrderReceipt: ...

    def get_balance(self) -> Balance: ...

    def get_daily_orders(self, start: dt.date, end: dt.date) -> list[DailyOrder]: ...

    def get_buyable(self, code: str, price: int | None = None) -> BuyableAmount: ...
