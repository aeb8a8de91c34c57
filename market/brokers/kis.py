"""KisBroker: the gateway over the KIS Open API (real or 모의투자 host), through market.kis.KisClient.

The client chooses tr_ids, retries reads, never re-sends orders and masks secrets; this adapter only
wires it to the site: the account's credentials, the shared token store and the shared rate limit."""

from __future__ import annotations

import datetime as dt

from django.conf import settings
from django.utils import timezone

from accounts.models import BrokerAccount, BrokerMode
from market.gateway import Balance, BuyableAmount, DailyBar, DailyOrder, OrderReceipt, OrderRefused, Quote
from market.kis import KisClient
from market.krx import validate_order

from .shared_state import DatabaseTokenStore, rate_limiter_for

# Our account modes → the KIS client's host names.
KIS_MODE = {BrokerMode.REAL: "real", BrokerMode.SIMULATED: "paper"}


def kis_client_for(account: BrokerAccount, **overrides) -> KisClient:
    kis_mode = KIS_MODE[account.mode]
    options = {
        "app_key": account.app_key,
        "app_secret": account.app_secret,
        "account_no": account.account_number,
        "product_code": account.product_code,
        "mode": kis_mode,
        "base_url": settings.KIS_BASE_URLS.get(kis_mode) or None,
        "hts_id": account.hts_id,
        "token_store": DatabaseTokenStore(),
        "rate_limiter": rate_limiter_for(kis_mode),
    }
    options.update(overrides)
    return KisClient(**options)


class KisBroker:
    def __init__(self, account: BrokerAccount, client: KisClient | None = None) -> None:
        if account.mode not in KIS_MODE:
            raise ValueError(f"broker account {account.pk} is a {account.mode} account, not a KIS account")
        self.account = account
        self.mode = account.mode
        self.client = client or kis_client_for(account)

    def get_quote(self, code: str) -> Quote:
        return self.client.get_quote(code)

    def get_daily_bars(self, code: str, start: dt.date, end: dt.date) -> list[DailyBar]:
        return self.client.get_daily_bars(code, start, end)

    def _require_live_trading_confirmed(self) -> None:
        if self.account.mode == BrokerMode.REAL and not self.account.live_trading_allowed:
            raise OrderRefused(
                ["실전투자 주문이 아직 허용되지 않았습니다. 계정 페이지에서 실전 거래를 확인해 주세요."],
                code="LIVE_TRADING_NOT_CONFIRMED",
            )

    def place_order(self, side, code, quantity, price=0, order_type="00", *, client_order_id="") -> OrderReceipt:
        # KIS takes no client order id; the caller stores it with the order before this call.
        self._require_live_trading_confirmed()
        # KRX rules that need no quote (quantity, tick, session) are checked here so a bad order never
        # leaves; the ±30% band needs the previous close, which the caller checks when it has one.
        reasons = validate_order(side, order_type, quantity, price or None, None, now=timezone.now())
        if reasons:
            raise OrderRefused(reasons, code="KRX_RULE")
        return self.client.place_order(side, code, quantity, price, order_type)

    def cancel_order(self, order_no: str, org_no: str, quantity: int | None = None) -> OrderReceipt:
        self._require_live_trading_confirmed()
        return self.client.revise_or_cancel(org_no, order_no, "cancel", quantity)

    def get_balance(self) -> Balance:
        return self.client.get_balance()

    def get_daily_orders(self, start: dt.date, end: dt.date) -> list[DailyOrder]:
        return self.client.get_daily_orders(start, end)

    def get_buyable(self, code: str, price: int | None = None) -> BuyableAmount:
        return self.client.get_buyable(code, price)

    def revoke_token(self) -> bool:
        return self.client.revoke_token()

    def close(self) -> None:
        """Close the client's pooled HTTP connections (an account's task closes its shared gateway)."""
        self.client.close()
