"""REST client for the Korea Investment & Securities (KIS) Open API, domestic stocks, individual customers.

Pure Python (``requests`` + ``tenacity``), no Django. Facts about the API come from
``shared/kis/KIS_API.md``; section numbers in comments refer to it.

``KisClient`` composes one object per concern, all sharing one transport:

* ``transport.KisTransport``: session, headers, rate limit, deadline, error classification, read retries,
  hashkey, and the one tr_id table;
* ``auth.KisAuth``: the access token (issue, reuse, renewal, revocation) and authenticated reads;
* ``orders.KisOrders``: place, revise and cancel, sent once;
* ``quotations.KisQuotations``: quote and daily bars;
* ``account.KisAccount``: balance, daily orders and fills, buyable amount, with their pagination.

Safety rules this client enforces
* The client, never the caller, picks the tr_id for real vs paper (§4.0); one table (``TR_IDS``).
* Every HTTP call has a timeout and goes through the per-app-key rate limiter.
* Reads and token issuance retry with bounded exponential backoff on time-outs, connection errors, 5xx and
  EGW00201; the number of attempts is capped.
* Orders are never re-sent after an ambiguous failure (see ``orders.KisOrders._send_attempts``): KIS orders
  carry no client order id, so a resend after a lost answer can create a second live order.
* The caller's total time budget (``market.kis.deadline``, e.g. a web request's) is honoured: HTTP time-outs
  are shortened to the time left, and a retry, backoff, rate-limit, token-lock or token-limit wait that would
  pass it raises ``KisDeadlineExceeded`` instead — always before anything is sent, so an order stopped that
  way was definitely not sent.
* Tokens are shared through a ``TokenStore`` and issued under its lock: one issuance per app key even with
  many threads/processes, renewal when less than ``token_renew_margin`` remains.
* Secrets (app key/secret, tokens, the full account number) never reach logs or exception texts.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable, Mapping

import requests

from .account import KisAccount
from .auth import DEFAULT_TOKEN_STORE, KisAuth
from .masking import default_redactor, mask_account
from .models import AccessToken, Balance, BuyableAmount, DailyBar, DailyOrder, OrderReceipt, Quote
from .orders import KisOrders
from .quotations import KisQuotations
from .ratelimit import RateLimiter, shared_rate_limiter
from .token_store import TokenStore
from .transport import BASE_URLS, SEOUL, TR_IDS, KisTransport

__all__ = ["BASE_URLS", "SEOUL", "TR_IDS", "KisClient"]


class KisClient:
    """One KIS account (app key + account number) in one environment ("real" or "paper")."""

    def __init__(
        self,
        app_key: str,
        app_secret: str,
        account_no: str,
        product_code: str,
        mode: str = "real",
        base_url: str | None = None,
        hts_id: str = "",
        token_store: TokenStore | None = None,
        rate_limiter: RateLimiter | None = None,
        timeout: tuple[float, float] = (3.05, 10),
        session: requests.Session | None = None,
        *,
        max_retries: int = 3,
        order_max_retries: int = 2,
        backoff_base: float = 0.5,
        backoff_max: float = 8.0,
        token_renew_margin: dt.timedelta = dt.timedelta(minutes=10),
        token_throttle_wait: float = 61.0,
        order_time_reserve: float = 2.0,
        max_pages: int = 50,
        use_hashkey: bool = False,
        clock: Callable[[], dt.datetime] | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if mode not in BASE_URLS:
            raise ValueError("mode must be 'real' or 'paper'")
        if not app_key or not app_secret:
            raise ValueError("app_key and app_secret are required")
        account_no = str(account_no).strip()
        product_code = str(product_code).strip()
        if not (len(account_no) == 8 and account_no.isdigit()):
            raise ValueError("account_no must be the first 8 digits of the account number")
        if not (len(product_code) == 2 and product_code.isdigit()):
            raise ValueError("product_code must be the 2-digit account product code (e.g. '01')")
        if timeout is None or any(t is None or t <= 0 for t in timeout):
            raise ValueError("timeout must be a (connect, read) pair of positive seconds")
        if max_retries < 0 or order_max_retries < 0 or max_pages < 1:
            raise ValueError("retry counts must be >= 0 and max_pages >= 1")

        self.mode = mode
        self.base_url = (base_url or BASE_URLS[mode]).rstrip("/")
        self.hts_id = hts_id  # tr_key of the WebSocket fill-notice TR (§6.4); unused by REST calls
        self._account_no = account_no
        self._product_code = product_code
        clock = clock or (lambda: dt.datetime.now(dt.UTC))
        # Process-wide, so the log filter (here and in Django's LOGGING) knows every client's secrets.
        redactor = default_redactor
        redactor.register(app_key)
        redactor.register(app_secret)
        redactor.register_account(account_no, product_code)

        # Defaults are process-wide so that every client of one app key shares one token and one budget.
        self._transport = KisTransport(
            mode=mode, base_url=self.base_url, app_key=app_key, app_secret=app_secret,
            rate_limiter=rate_limiter if rate_limiter is not None else shared_rate_limiter(mode),
            timeout=(float(timeout[0]), float(timeout[1])), session=session, max_retries=max_retries,
            backoff_base=backoff_base, backoff_max=backoff_max, sleep=sleep, redactor=redactor,
        )
        self._auth = KisAuth(
            self._transport, token_store if token_store is not None else DEFAULT_TOKEN_STORE,
            renew_margin=token_renew_margin, throttle_wait=token_throttle_wait, clock=clock, sleep=sleep,
        )
        self._orders = KisOrders(
            self._transport, self._auth, account_no, product_code, max_retries=order_max_retries,
            time_reserve=order_time_reserve, use_hashkey=use_hashkey, clock=clock, sleep=sleep,
        )
        self._quotations = KisQuotations(self._auth)
        self._account = KisAccount(
            self._transport, self._auth, account_no, product_code, max_pages=max_pages, clock=clock, sleep=sleep,
        )
        # The key of this app key's budget in the rate limiter (reveals nothing of the key).
        self._limiter_key = self._transport.limiter_key

    @property
    def token_cache_key(self) -> str:
        """The key this client uses in its TokenStore (derived from base URL + app key, reveals neither)."""
        return self._auth.token_key

    def close(self) -> None:
        """Close the HTTP session's pooled connections."""
        self._transport.close()

    def __enter__(self) -> KisClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return (f"KisClient(mode={self.mode!r}, account={mask_account(self._account_no)}-{self._product_code}, "
                f"base_url={self.base_url!r})")

    # ------------------------------------------------------------------------------------------ tokens
    def get_token(self) -> AccessToken:
        """A valid token: the cached one, the stored one, or a newly issued one (only when none is valid)."""
        return self._auth.get_token()

    def issue_token(self) -> AccessToken:
        """Call tokenP now (under the store lock) and save the result.

        Normally not needed: every API method goes through ``get_token``. KIS allows one issuance per
        minute per app key and returns the same token within 6 hours of the previous issuance (§2.1).
        """
        return self._auth.issue_token()

    def revoke_token(self) -> bool:
        """Revoke the current token at KIS (revokeP) and forget it. Returns False if there was none."""
        return self._auth.revoke_token()

    def approval_key(self, rejected: str | None = None) -> str:
        """The WebSocket approval key (§2.3), cached and shared like the token; pass a key KIS refused
        (OPSP0011) as ``rejected`` to get a fresh one."""
        return self._auth.approval_key(rejected)

    # ------------------------------------------------------------------------------------------ orders
    def hashkey(self, body: Mapping[str, str]) -> str:
        """HASH of a POST body (§2.4). Optional at KIS today; used for orders when ``use_hashkey`` is on."""
        return self._transport.hashkey(body)

    def place_order(self, side: str, code: str, quantity: int, price: int = 0, order_type: str = "00",
                    exchange: str = "KRX") -> OrderReceipt:
        """Send a cash order once. ``side`` is "buy" or "sell"; ``order_type`` is KIS ORD_DVSN ("00" limit,
        "01" market, ...). Raises KisApiError on a refusal, KisOrderOutcomeUnknown when the answer was lost."""
        return self._orders.place_order(side, code, quantity, price, order_type, exchange)

    def revise_or_cancel(self, org_no: str, original_order_no: str, action: str, quantity: int | None = None,
                         price: int = 0, order_type: str = "00", exchange: str = "KRX") -> OrderReceipt:
        """Revise ("revise") or cancel ("cancel") a live order; ``quantity=None`` means all remaining.

        ``org_no`` is KRX_FWDG_ORD_ORGNO from the order receipt (or ``branch_no`` of a daily-orders row).
        Same send-once rule as ``place_order``."""
        return self._orders.revise_or_cancel(org_no, original_order_no, action, quantity, price, order_type,
                                             exchange)

    # ------------------------------------------------------------------------------------------ quotations
    def get_quote(self, code: str, market: str = "J") -> Quote:
        return self._quotations.get_quote(code, market)

    def get_daily_bars(self, code: str, start: dt.date, end: dt.date, adjusted: bool = True,
                       market: str = "J") -> list[DailyBar]:
        """Daily OHLCV for [start, end], oldest first, any length (the chart TR walked backwards, §4.8)."""
        return self._quotations.get_daily_bars(code, start, end, adjusted, market)

    # ------------------------------------------------------------------------------------------ account
    def get_balance(self, include_zero: bool = False) -> Balance:
        """Holdings and the cash summary, all pages; sold-out rows (quantity 0) only with ``include_zero``."""
        return self._account.get_balance(include_zero)

    def get_daily_orders(self, start: dt.date, end: dt.date, side: str = "all", code: str = "",
                         order_no: str = "", fill_status: str = "all", exchange: str = "KRX") -> list[DailyOrder]:
        """Orders and fills placed in [start, end] (inquire-daily-ccld), newest first, all pages.
        ``side``: all/buy/sell; ``fill_status``: all/filled/unfilled."""
        return self._account.get_daily_orders(start, end, side, code, order_no, fill_status, exchange)

    def get_buyable(self, code: str, price: int | None = None) -> BuyableAmount:
        """Orderable cash and buyable quantity (inquire-psbl-order); ``price=None`` asks as for a market order."""
        return self._account.get_buyable(code, price)
