"""REST client for the Korea Investment & Securities (KIS) Open API, domestic stocks, individual customers.

Pure Python (``requests`` + ``tenacity``), no Django. Facts about the API come from
``shared/kis/KIS_API.md``; section numbers in comments refer to it.

Safety rules this client enforces
* The client, never the caller, picks the tr_id for real vs paper (§4.0); one table below.
* Every HTTP call has a timeout and goes through the per-app-key rate limiter.
* Reads and token issuance retry with bounded exponential backoff on time-outs, connection errors, 5xx and
  EGW00201; the number of attempts is capped.
* Orders are never re-sent after an ambiguous failure (see ``_send_order``): KIS orders carry no client
  order id, so a resend after a lost answer can create a second live order.
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
import functools
import hashlib
import json
import logging
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo

import requests
import urllib3.exceptions
from requests.adapters import HTTPAdapter
from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception,
    stop_after_attempt,
    wait_exponential,
)
from urllib3.util import Timeout

from . import deadline
from .errors import (
    DATA_CHANGED_CODE,
    RATE_LIMIT_CODES,
    TOKEN_EXPIRED_CODES,
    TOKEN_ISSUE_THROTTLED_CODE,
    KisApiError,
    KisAuthError,
    KisDataChanged,
    KisDeadlineExceeded,
    KisError,
    KisNetworkError,
    KisNotFound,
    KisOrderOutcomeUnknown,
    KisPaginationError,
    KisProtocolError,
    KisRateLimited,
    KisServerError,
    KisTokenExpired,
    KisTokenIssueThrottled,
)
from .masking import (
    RedactingLogFilter,
    default_redactor,
    mask_account,
    safe_fields,
)
from .models import (
    AccessToken,
    Balance,
    BalanceSummary,
    BuyableAmount,
    DailyBar,
    DailyOrder,
    Holding,
    OrderReceipt,
    Quote,
    lower_keys,
    normalize_branch_no,
    normalize_order_no,
    parse_date,
    parse_decimal,
    parse_int,
    parse_text,
    parse_time,
)
from .ratelimit import RateLimiter, shared_rate_limiter
from .token_store import InMemoryTokenStore, TokenStore

logger = logging.getLogger("market.kis")
# Defence in depth: every record of this logger passes the redactor, so a secret that slips into a message
# (e.g. an account number inside a continuation key) is masked before any handler sees it.
logger.addFilter(RedactingLogFilter())

SEOUL = ZoneInfo("Asia/Seoul")

BASE_URLS = {  # §1
    "real": "https://openapi.koreainvestment.com:9443",
    "paper": "https://openapivts.koreainvestment.com:29443",
}

# operation -> (real tr_id, paper tr_id). Current ("신TR") ids; the portal warns old ids may be cut off (§4.0).
TR_IDS: dict[str, tuple[str, str]] = {
    "order_sell": ("TTTC0011U", "VTTC0011U"),
    "order_buy": ("TTTC0012U", "VTTC0012U"),
    "order_revise_cancel": ("TTTC0013U", "VTTC0013U"),
    "balance": ("TTTC8434R", "VTTC8434R"),
    "daily_orders_recent": ("TTTC0081R", "VTTC0081R"),  # within ~3 months
    "daily_orders_old": ("CTSC9215R", "VTSC9215R"),  # older than ~3 months
    "buyable": ("TTTC8908R", "VTTC8908R"),
    "quote": ("FHKST01010100", "FHKST01010100"),
    "daily_chart": ("FHKST03010100", "FHKST03010100"),
}

TOKEN_PATH = "/oauth2/tokenP"
REVOKE_PATH = "/oauth2/revokeP"
HASHKEY_PATH = "/uapi/hashkey"
ORDER_CASH_PATH = "/uapi/domestic-stock/v1/trading/order-cash"
ORDER_REVISE_CANCEL_PATH = "/uapi/domestic-stock/v1/trading/order-rvsecncl"
BALANCE_PATH = "/uapi/domestic-stock/v1/trading/inquire-balance"
DAILY_ORDERS_PATH = "/uapi/domestic-stock/v1/trading/inquire-daily-ccld"
BUYABLE_PATH = "/uapi/domestic-stock/v1/trading/inquire-psbl-order"
QUOTE_PATH = "/uapi/domestic-stock/v1/quotations/inquire-price"
DAILY_CHART_PATH = "/uapi/domestic-stock/v1/quotations/inquire-daily-itemchartprice"

CHART_ROWS_PER_CALL = 100  # §4.8
MORE_PAGES = frozenset({"F", "M"})  # response tr_cont: F/M more, D/E last (§3.2)

# ORD_DVSN codes that carry no price: ORD_UNPR must be "0" (§4.1).
PRICELESS_ORDER_TYPES = frozenset({"01", "03", "04", "05", "06", "13", "14", "15", "16"})
# ORD_DVSN codes that need a positive limit price.
PRICED_ORDER_TYPES = frozenset({"00", "02", "07", "11", "12", "22"})

_CODE_RE = re.compile(r"^[0-9A-Z]{6}$")  # 6-char codes, incl. new alphanumeric ones such as 0039P0
_SIDE_CODES = {"01": "sell", "02": "buy"}


@dataclass(frozen=True)
class KisResponse:
    status: int
    tr_cont: str
    data: dict[str, Any]


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
        self._app_key = app_key
        self._app_secret = app_secret
        self._account_no = account_no
        self._product_code = product_code
        self._timeout = (float(timeout[0]), float(timeout[1]))
        self._max_retries = max_retries
        self._order_max_retries = order_max_retries
        self._backoff_base = backoff_base
        self._backoff_max = backoff_max
        self._token_renew_margin = token_renew_margin
        self._token_throttle_wait = token_throttle_wait
        # Under a deadline, an order is sent only while this much of it is left: a send must not start
        # with too little time to read its answer (that would turn a "not sent" into an "unknown").
        self._order_time_reserve = order_time_reserve
        self._max_pages = max_pages
        self._use_hashkey = use_hashkey
        self._clock = clock or (lambda: dt.datetime.now(dt.UTC))
        self._sleep = sleep
        # Process-wide, so the log filter (here and in Django's LOGGING) knows every client's secrets.
        self._redactor = default_redactor
        self._redactor.register(app_key)
        self._redactor.register(app_secret)
        self._redactor.register_account(account_no, product_code)

        # Defaults are process-wide so that every client of one app key shares one token and one budget.
        self._token_store: TokenStore = token_store if token_store is not None else _DEFAULT_TOKEN_STORE
        self._rate_limiter: RateLimiter = rate_limiter if rate_limiter is not None else shared_rate_limiter(mode)
        # Opaque ids derived from the app key: usable as store/limiter keys and in logs without revealing it.
        digest = hashlib.sha256(f"{self.base_url}|{app_key}".encode()).hexdigest()
        self._token_key = f"kis-token-{digest[:24]}"
        self._limiter_key = "kis-app-" + hashlib.sha256(app_key.encode()).hexdigest()[:16]
        self._log_id = digest[:8]
        self._token: AccessToken | None = None

        self._session = session or requests.Session()
        # urllib3 must never retry on its own: a transparent retry of a POST would re-send an order.
        self._session.mount(self.base_url, HTTPAdapter(max_retries=0))

    @property
    def token_cache_key(self) -> str:
        """The key this client uses in its TokenStore (derived from base URL + app key, reveals neither)."""
        return self._token_key

    def close(self) -> None:
        """Close the HTTP session's pooled connections."""
        self._session.close()

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
        self._ensure_token()
        assert self._token is not None
        return self._token

    def issue_token(self) -> AccessToken:
        """Call tokenP now (under the store lock) and save the result.

        Normally not needed: every API method goes through ``get_token``. KIS allows one issuance per
        minute per app key and returns the same token within 6 hours of the previous issuance (§2.1).
        """
        with self._token_store.lock(self._token_key):
            return self._issue_token_locked()

    def revoke_token(self) -> bool:
        """Revoke the current token at KIS (revokeP) and forget it. Returns False if there was none."""
        with self._token_store.lock(self._token_key):
            stored = self._token_store.get(self._token_key)
            token = stored[0] if stored else (self._token.token if self._token else None)
            if not token:
                return False
            body = {"appkey": self._app_key, "appsecret": self._app_secret, "token": token}
            try:
                self._with_read_retries(
                    lambda: self._exchange("POST", REVOKE_PATH, tr_id=None, headers=self._oauth_headers(),
                                           payload=_json_bytes(body), expects_rt_cd=False)
                )
            except KisTokenExpired:
                pass  # KIS no longer knows the token (EGW00121): it is unusable either way
            self._token_store.delete(self._token_key)
            self._token = None
        logger.info("KIS token revoked (app=%s)", self._log_id)
        return True

    def _needs_renewal(self, expires_at: dt.datetime) -> bool:
        return expires_at - self._clock() < self._token_renew_margin

    def _adopt(self, token: str, expires_at: dt.datetime) -> AccessToken:
        self._redactor.register(token)
        self._token = AccessToken(token=token, expires_at=expires_at)
        return self._token

    def _ensure_token(self) -> str:
        cached = self._token
        if cached is not None and not self._needs_renewal(cached.expires_at):
            return cached.token
        stored = self._token_store.get(self._token_key)
        if stored is not None and not self._needs_renewal(stored[1]):
            return self._adopt(*stored).token
        with self._token_store.lock(self._token_key):
            # Re-check under the lock: another thread/process may have issued while we waited.
            stored = self._token_store.get(self._token_key)
            if stored is not None and not self._needs_renewal(stored[1]):
                return self._adopt(*stored).token
            return self._issue_token_locked().token

    def _refresh_after_rejection(self, rejected_token: str | None) -> None:
        """KIS rejected ``rejected_token`` (EGW00123/EGW00121): drop it and get a new one, once."""
        self._token = None
        with self._token_store.lock(self._token_key):
            stored = self._token_store.get(self._token_key)
            if stored is not None and stored[0] != rejected_token and not self._needs_renewal(stored[1]):
                # Someone else already replaced it; reuse instead of issuing again (1/min rule).
                self._adopt(*stored)
                return
            self._token_store.delete(self._token_key)
            logger.info("KIS token rejected by KIS; issuing a new one (app=%s)", self._log_id)
            self._issue_token_locked()

    def _issue_token_locked(self) -> AccessToken:
        body = {"grant_type": "client_credentials", "appkey": self._app_key, "appsecret": self._app_secret}

        def attempt() -> KisResponse:
            return self._exchange("POST", TOKEN_PATH, tr_id=None, headers=self._oauth_headers(),
                                  payload=_json_bytes(body), expects_rt_cd=False)

        try:
            response = self._with_read_retries(attempt)
        except KisTokenIssueThrottled:
            # Another client of this app key (outside our store) issued within the last minute.
            # Waiting out the minute once is cheaper than failing the whole job.
            if self._token_throttle_wait <= 0:
                raise
            budget = deadline.current_deadline()
            if budget is not None and budget.remaining() <= self._token_throttle_wait:
                # A web request cannot wait out the minute (its server would kill it first): say so now.
                logger.warning("KIS token issuance throttled (EGW00133); the caller's %gs deadline cannot "
                               "hold the %gs wait (app=%s)", budget.seconds, self._token_throttle_wait,
                               self._log_id)
                raise budget.exceeded("token_limit", "token issuance throttled (EGW00133)") from None
            logger.warning("KIS token issuance throttled (EGW00133); waiting %.1fs once (app=%s)",
                           self._token_throttle_wait, self._log_id)
            self._sleep(self._token_throttle_wait)
            response = self._with_read_retries(attempt)

        data = response.data
        token = parse_text(data.get("access_token"))
        if not token:
            raise KisProtocolError("token response without access_token", http_status=response.status,
                                   path=TOKEN_PATH)
        self._redactor.register(token)
        expires_at = self._parse_token_expiry(data)
        self._token_store.set(self._token_key, token, expires_at)
        logger.info("KIS token issued (app=%s, expires_at=%s)", self._log_id, expires_at.isoformat())
        return self._adopt(token, expires_at)

    def _parse_token_expiry(self, data: Mapping[str, Any]) -> dt.datetime:
        # "access_token_token_expired" is Korea time without a zone (§2.1, pitfall 5); expires_in drifted
        # from reality in MOJITO's experience, so it is only the fallback.
        text = parse_text(data.get("access_token_token_expired"))
        if text:
            try:
                return dt.datetime.strptime(text, "%Y-%m-%d %H:%M:%S").replace(tzinfo=SEOUL)
            except ValueError:
                pass
        seconds = parse_int(data.get("expires_in"), "expires_in")
        if seconds <= 0:
            raise KisProtocolError("token response without a usable expiry", path=TOKEN_PATH)
        return self._clock() + dt.timedelta(seconds=seconds)

    # ------------------------------------------------------------------------------------------ HTTP
    def _tr(self, operation: str) -> str:
        real_id, paper_id = TR_IDS[operation]
        return real_id if self.mode == "real" else paper_id

    def _oauth_headers(self) -> dict[str, str]:
        return {"content-type": "application/json; charset=utf-8", "accept": "application/json"}

    def _api_headers(self, tr_id: str, token: str, tr_cont: str = "") -> dict[str, str]:
        return {
            "content-type": "application/json; charset=utf-8",
            "authorization": f"Bearer {token}",
            "appkey": self._app_key,
            "appsecret": self._app_secret,
            "tr_id": tr_id,
            "custtype": "P",
            "tr_cont": tr_cont,
        }

    def _exchange(
        self,
        method: str,
        path: str,
        *,
        tr_id: str | None,
        headers: dict[str, str],
        params: Mapping[str, str] | None = None,
        payload: bytes | None = None,
        expects_rt_cd: bool = True,
        min_time: float = 0.0,
    ) -> KisResponse:
        """One HTTP request, one answer, classified. No retries here.

        Under a deadline the request is sent only while more than ``min_time`` seconds of it are left
        (else ``KisDeadlineExceeded``, nothing sent), with its time-outs shortened to the time left."""
        self._rate_limiter.acquire(self._limiter_key)
        deadline.check("order_send" if min_time else "request", needed=min_time)
        timeout = self._timeout_within_deadline()
        started = time.monotonic()
        try:
            response = self._session.request(
                method, self.base_url + path, headers=headers, params=params, data=payload,
                timeout=timeout, allow_redirects=False,
            )
        except requests.RequestException as exc:
            possibly_sent = not _request_never_left(exc)
            logger.warning("KIS %s %s tr_id=%s network error %s possibly_sent=%s app=%s",
                           method, path, tr_id, type(exc).__name__, possibly_sent, self._log_id)
            # The requests exception text contains the URL, i.e. CANO: keep only a redacted copy and do
            # not chain the original (tracebacks would print it).
            raise KisNetworkError(self._redactor.redact(f"{type(exc).__name__}: {exc}"),
                                  possibly_sent=possibly_sent, tr_id=tr_id, path=path) from None
        elapsed = time.monotonic() - started
        try:
            result = self._classify(response, tr_id=tr_id, path=path, expects_rt_cd=expects_rt_cd)
        except KisError as exc:
            if isinstance(exc, KisRateLimited):
                self._rate_limiter.on_throttled(self._limiter_key)
            logger.info("KIS %s %s tr_id=%s status=%s msg_cd=%s elapsed=%.3fs error=%s app=%s",
                        method, path, tr_id, response.status_code, exc.msg_cd, elapsed,
                        type(exc).__name__, self._log_id)
            raise
        if logger.isEnabledFor(logging.DEBUG):
            logger.debug("KIS %s %s tr_id=%s status=%s msg_cd=%s tr_cont=%s elapsed=%.3fs params=%s app=%s",
                         method, path, tr_id, result.status, result.data.get("msg_cd", ""), result.tr_cont,
                         elapsed, safe_fields(params), self._log_id)
        return result

    def _timeout_within_deadline(self) -> tuple[float, float] | Timeout:
        """The configured (connect, read) time-outs, shortened to what is left of the caller's deadline."""
        left = deadline.remaining()
        if left is None or left >= self._timeout[0] + self._timeout[1]:
            return self._timeout
        # total: the read time-out gets only what the connection left over.
        return Timeout(connect=min(self._timeout[0], left), read=min(self._timeout[1], left), total=left)

    def _classify(self, response: requests.Response, *, tr_id: str | None, path: str,
                  expects_rt_cd: bool) -> KisResponse:
        status = response.status_code
        context: dict[str, Any] = {"http_status": status, "tr_id": tr_id, "path": path}
        try:
            # errors="replace": EUC-KR bytes in msg1 labelled UTF-8 must not hide a usable rt_cd.
            data = json.loads(response.content.decode("utf-8", errors="replace"))
        except ValueError:
            data = None
        if not isinstance(data, dict):
            if status >= 500:
                raise KisServerError("unparsable error body", **context)
            raise KisProtocolError("unparsable response body", **context)

        if "error_code" in data and "rt_cd" not in data:
            # Token endpoints answer {"error_code", "error_description"} instead of rt_cd/msg_cd/msg1 (§2.1).
            code = parse_text(data.get("error_code"))
            text = self._redactor.redact(parse_text(data.get("error_description")))
            if code == TOKEN_ISSUE_THROTTLED_CODE:
                raise KisTokenIssueThrottled(msg_cd=code, msg1=text, **context)
            if code in TOKEN_EXPIRED_CODES:
                raise KisTokenExpired(msg_cd=code, msg1=text, **context)
            if status >= 500:
                raise KisServerError(msg_cd=code, msg1=text, **context)
            raise KisAuthError(msg_cd=code, msg1=text, **context)

        rt_cd = parse_text(data.get("rt_cd")) if "rt_cd" in data else None
        msg_cd = parse_text(data.get("msg_cd"))
        msg1 = self._redactor.redact(parse_text(data.get("msg1")))
        context.update(rt_cd=rt_cd, msg_cd=msg_cd, msg1=msg1)
        # Classify by msg_cd before the status: KIS sends EGW00201/EGW00123 mostly as 500, sometimes as 200.
        if msg_cd in RATE_LIMIT_CODES or status == 429:
            raise KisRateLimited(**context)
        if msg_cd in TOKEN_EXPIRED_CODES:
            raise KisTokenExpired(**context)
        if status >= 500:
            raise KisServerError(**context)
        if status >= 400:
            if rt_cd is not None:
                raise KisApiError(**context)
            if status in (401, 403):
                raise KisAuthError(**context)
            raise KisProtocolError("HTTP error without a KIS body", **context)
        if status != 200:
            raise KisProtocolError("unexpected HTTP status", **context)
        if expects_rt_cd:
            if rt_cd is None:
                raise KisProtocolError("response without rt_cd", **context)
            if rt_cd != "0":
                if msg_cd == DATA_CHANGED_CODE:
                    raise KisDataChanged(**context)
                raise KisApiError(**context)
        tr_cont = parse_text(response.headers.get("tr_cont")).upper()
        return KisResponse(status=status, tr_cont=tr_cont, data=data)

    def _backoff(self, retry_number: int) -> float:
        return min(self._backoff_max, self._backoff_base * (2 ** max(retry_number - 1, 0)))

    def _with_read_retries(self, attempt: Callable[[], KisResponse]) -> KisResponse:
        """Run an idempotent request with bounded retries: at most ``max_retries + 1`` attempts."""

        def log_retry(state: RetryCallState) -> None:
            exc = state.outcome.exception() if state.outcome else None
            logger.warning("KIS retry %d/%d after %s %s (app=%s)", state.attempt_number, self._max_retries,
                           type(exc).__name__, getattr(exc, "msg_cd", ""), self._log_id)

        retrying = Retrying(
            stop=stop_after_attempt(self._max_retries + 1),
            wait=wait_exponential(multiplier=self._backoff_base, max=self._backoff_max),
            retry=retry_if_exception(_is_transient),
            sleep=functools.partial(deadline.sleep_within, stage="retry", sleep=self._sleep),
            before_sleep=log_retry,
            reraise=True,
        )
        try:
            return retrying(attempt)
        except KisError as exc:
            budget = deadline.current_deadline()
            if budget is not None and _is_transient(exc) and budget.remaining() <= DEADLINE_SLACK:
                # The last attempt ran out of the caller's time (its time-out was cut to what was left).
                raise budget.exceeded("retry", f"last error: {type(exc).__name__}") from exc
            raise

    def _call(self, method: str, path: str, operation: str, *, params: Mapping[str, str] | None = None,
              body: Mapping[str, str] | None = None, tr_cont: str = "") -> KisResponse:
        """An authenticated, idempotent API call (reads, hashkey): retries + one token refresh."""
        tr_id = self._tr(operation)
        payload = _json_bytes(body) if body is not None else None
        refreshed = False
        while True:
            token = self._ensure_token()
            attempt = functools.partial(self._exchange, method, path, tr_id=tr_id,
                                        headers=self._api_headers(tr_id, token, tr_cont),
                                        params=params, payload=payload)
            try:
                return self._with_read_retries(attempt)
            except KisTokenExpired:
                if refreshed:
                    raise
                refreshed = True
                self._refresh_after_rejection(token)

    # ------------------------------------------------------------------------------------------ orders
    def hashkey(self, body: Mapping[str, str]) -> str:
        """HASH of a POST body (§2.4). Optional at KIS today; used for orders when ``use_hashkey`` is on."""
        headers = self._oauth_headers() | {"appkey": self._app_key, "appsecret": self._app_secret}
        response = self._with_read_retries(
            lambda: self._exchange("POST", HASHKEY_PATH, tr_id=None, headers=headers, payload=_json_bytes(body),
                                   expects_rt_cd=False)
        )
        value = parse_text(response.data.get("HASH"))
        if not value:
            raise KisProtocolError("hashkey response without HASH", path=HASHKEY_PATH)
        return value

    def place_order(self, side: str, code: str, quantity: int, price: int = 0, order_type: str = "00",
                    exchange: str = "KRX") -> OrderReceipt:
        """Send a cash order once. ``side`` is "buy" or "sell"; ``order_type`` is KIS ORD_DVSN ("00" limit,
        "01" market, ...). Raises KisApiError on a refusal, KisOrderOutcomeUnknown when the answer was lost."""
        side = side.lower()
        if side not in ("buy", "sell"):
            raise ValueError("side must be 'buy' or 'sell'")
        code = _check_code(code)
        quantity = _check_positive_int(quantity, "quantity")
        unit_price = _check_order_price(order_type, price)
        exchange = self._check_exchange(exchange)
        body = {
            "CANO": self._account_no,
            "ACNT_PRDT_CD": self._product_code,
            "PDNO": code,
            "ORD_DVSN": order_type,
            "ORD_QTY": str(quantity),
            "ORD_UNPR": str(unit_price),
            "EXCG_ID_DVSN_CD": exchange,
        }
        if side == "sell":
            body["SLL_TYPE"] = "01"  # normal sell
        operation = "order_buy" if side == "buy" else "order_sell"
        summary = {"action": "order", "side": side, "code": code, "quantity": quantity, "price": unit_price,
                   "order_type": order_type, "tr_id": self._tr(operation)}
        response = self._send_order(ORDER_CASH_PATH, operation, body, summary)
        return self._order_receipt(response, summary)

    def revise_or_cancel(self, org_no: str, original_order_no: str, action: str, quantity: int | None = None,
                         price: int = 0, order_type: str = "00", exchange: str = "KRX") -> OrderReceipt:
        """Revise ("revise") or cancel ("cancel") a live order; ``quantity=None`` means all remaining.

        ``org_no`` is KRX_FWDG_ORD_ORGNO from the order receipt (or ``branch_no`` of a daily-orders row).
        Same send-once rule as ``place_order``."""
        action = action.lower()
        if action not in ("revise", "cancel"):
            raise ValueError("action must be 'revise' or 'cancel'")
        org_no = str(org_no).strip()
        original_order_no = str(original_order_no).strip()
        if not org_no or not original_order_no:
            raise ValueError("org_no and original_order_no are required")
        if quantity is not None:
            quantity = _check_positive_int(quantity, "quantity")
        unit_price = _check_order_price(order_type, price) if action == "revise" else 0
        exchange = self._check_exchange(exchange)
        body = {
            "CANO": self._account_no,
            "ACNT_PRDT_CD": self._product_code,
            "KRX_FWDG_ORD_ORGNO": org_no,
            "ORGN_ODNO": original_order_no,
            "ORD_DVSN": order_type,
            "RVSE_CNCL_DVSN_CD": "01" if action == "revise" else "02",
            "ORD_QTY": str(quantity) if quantity is not None else "0",
            "ORD_UNPR": str(unit_price),
            "QTY_ALL_ORD_YN": "Y" if quantity is None else "N",
            "EXCG_ID_DVSN_CD": exchange,
        }
        summary = {"action": action, "original_order_no": original_order_no, "quantity": quantity,
                   "price": unit_price, "order_type": order_type, "tr_id": self._tr("order_revise_cancel")}
        response = self._send_order(ORDER_REVISE_CANCEL_PATH, "order_revise_cancel", body, summary)
        return self._order_receipt(response, summary)

    def _send_order(self, path: str, operation: str, body: dict[str, str],
                    summary: dict[str, Any]) -> KisResponse:
        try:
            return self._send_order_attempts(path, operation, body, summary)
        except KisDeadlineExceeded as exc:
            # Only ever raised before a request left (market.kis.deadline): this order was not sent.
            logger.warning("KIS order not sent: the caller's %gs deadline passed at %s: %s (app=%s)",
                           exc.seconds, exc.stage, summary, self._log_id)
            raise exc.for_order() from None

    def _send_order_attempts(self, path: str, operation: str, body: dict[str, str],
                             summary: dict[str, Any]) -> KisResponse:
        """POST an order at most once per definitive refusal, never again after an ambiguous failure.

        Why: the order request has no client order id or idempotency key; the only identity is ODNO in the
        *answer*. If the request may have reached KIS and the answer is lost, KIS may have accepted it, and a
        resend would be a second, independent order. So:
        * read time-out, connection dropped after sending, 5xx other than EGW00201 (including an empty
          msg_cd and gateway time-outs EGW00301/EGW00302), unparsable body, success without ODNO
          -> KisOrderOutcomeUnknown; the caller reconciles through get_daily_orders.
        * retried (at most ``order_max_retries`` times): EGW00201 (the gateway refused the call, it never
          reached the order system) and connection failures before any byte was sent (connect refused or
          connect time-out).
        * EGW00123/EGW00121 (token expired/invalid) are also gateway refusals before processing: the token
          is renewed once and the order resent once, as for every other API call.
        * under a caller's deadline, the POST starts only while ``order_time_reserve`` seconds are left, and
          no retry waits past it: ``KisDeadlineExceeded`` (order not sent). A POST that was sent and whose
          shortened read times out is still KisOrderOutcomeUnknown.
        """
        tr_id = self._tr(operation)
        payload = _json_bytes(body)
        hash_value = self.hashkey(body) if self._use_hashkey else None
        refusals = 0
        token_refreshed = False
        while True:
            token = self._ensure_token()  # a failure here happens before the order is sent
            headers = self._api_headers(tr_id, token)
            if hash_value:
                headers["hashkey"] = hash_value
            sent_at = self._clock()
            summary = summary | {"sent_at": sent_at.isoformat()}
            try:
                return self._exchange("POST", path, tr_id=tr_id, headers=headers, payload=payload,
                                      min_time=self._order_time_reserve)
            except KisNetworkError as exc:
                if exc.possibly_sent:
                    raise self._outcome_unknown(f"network error after sending: {exc.detail}", exc, summary) from None
                refusals += 1
                if refusals > self._order_max_retries:
                    raise
                delay = self._backoff(refusals)
                logger.warning("KIS order not sent (connection failed before sending); retry %d/%d in %.2fs",
                               refusals, self._order_max_retries, delay)
                deadline.sleep_within(delay, "retry", self._sleep)
            except KisRateLimited:
                refusals += 1
                if refusals > self._order_max_retries:
                    raise
                delay = self._backoff(refusals)
                logger.warning("KIS order refused by rate limit (EGW00201); retry %d/%d in %.2fs",
                               refusals, self._order_max_retries, delay)
                deadline.sleep_within(delay, "retry", self._sleep)
            except KisTokenExpired:
                if token_refreshed:
                    raise
                token_refreshed = True
                self._refresh_after_rejection(token)
            except (KisServerError, KisProtocolError) as exc:
                raise self._outcome_unknown(type(exc).__name__, exc, summary) from None

    def _outcome_unknown(self, reason: str, cause: KisError, summary: dict[str, Any]) -> KisOrderOutcomeUnknown:
        logger.error("KIS order outcome UNKNOWN (%s); do not resend, reconcile first: %s (app=%s)",
                     reason, summary, self._log_id)
        return KisOrderOutcomeUnknown(
            reason=reason, order_summary=summary, http_status=cause.http_status, rt_cd=cause.rt_cd,
            msg_cd=cause.msg_cd, msg1=cause.msg1, tr_id=cause.tr_id, path=cause.path,
        )

    def _order_receipt(self, response: KisResponse, summary: dict[str, Any]) -> OrderReceipt:
        output = lower_keys(response.data.get("output"))  # order-cash keys are UPPER, rvsecncl lower (§4.1-4.2)
        order_no = parse_text(output.get("odno"))
        context = {"http_status": response.status, "rt_cd": parse_text(response.data.get("rt_cd")),
                   "msg_cd": parse_text(response.data.get("msg_cd")),
                   "msg1": self._redactor.redact(parse_text(response.data.get("msg1"))),
                   "tr_id": summary.get("tr_id")}
        if not order_no:
            # rt_cd "0" but no order number: probably accepted, but we cannot prove it or refer to it.
            logger.error("KIS order success without ODNO; outcome unknown: %s", summary)
            raise KisOrderOutcomeUnknown(reason="success without order number", order_summary=summary, **context)
        return OrderReceipt(
            order_no=normalize_order_no(order_no),
            org_no=normalize_branch_no(output.get("krx_fwdg_ord_orgno")),
            order_time=parse_time(output.get("ord_tmd")),
            msg_cd=context["msg_cd"],
            msg1=context["msg1"],
        )

    def _check_exchange(self, exchange: str) -> str:
        exchange = exchange.upper()
        if exchange not in ("KRX", "NXT", "SOR"):
            raise ValueError("exchange must be KRX, NXT or SOR")
        if self.mode == "paper" and exchange != "KRX":
            raise ValueError("paper trading accepts KRX only")
        return exchange

    # ------------------------------------------------------------------------------------------ reads
    def get_quote(self, code: str, market: str = "J") -> Quote:
        code = _check_code(code)
        response = self._call("GET", QUOTE_PATH, "quote",
                              params={"FID_COND_MRKT_DIV_CODE": market, "FID_INPUT_ISCD": code})
        out = response.data.get("output")
        if not isinstance(out, dict):
            raise KisProtocolError("quote without output", path=QUOTE_PATH)
        price = parse_int(out.get("stck_prpr"), "stck_prpr")
        if price <= 0:
            raise KisNotFound(f"no price for {code}", msg_cd=parse_text(response.data.get("msg_cd")),
                              path=QUOTE_PATH)
        return Quote(
            code=parse_text(out.get("stck_shrn_iscd")) or code,
            price=price,
            change=parse_int(out.get("prdy_vrss"), "prdy_vrss"),
            change_sign=parse_text(out.get("prdy_vrss_sign")),
            change_rate=parse_decimal(out.get("prdy_ctrt"), "prdy_ctrt"),
            open=parse_int(out.get("stck_oprc"), "stck_oprc"),
            high=parse_int(out.get("stck_hgpr"), "stck_hgpr"),
            low=parse_int(out.get("stck_lwpr"), "stck_lwpr"),
            volume=parse_int(out.get("acml_vol"), "acml_vol"),
            traded_value=parse_int(out.get("acml_tr_pbmn"), "acml_tr_pbmn"),
            base_price=parse_int(out.get("stck_sdpr"), "stck_sdpr"),
            upper_limit=parse_int(out.get("stck_mxpr"), "stck_mxpr"),
            lower_limit=parse_int(out.get("stck_llam"), "stck_llam"),
            tick_size=parse_int(out.get("aspr_unit"), "aspr_unit"),
            lot_size=parse_int(out.get("hts_deal_qty_unit_val"), "hts_deal_qty_unit_val") or 1,
            status_code=parse_text(out.get("iscd_stat_cls_code")),
            temporarily_halted=parse_text(out.get("temp_stop_yn")).upper() == "Y",
            market_warning_code=parse_text(out.get("mrkt_warn_cls_code")),
            vi_code=parse_text(out.get("vi_cls_code")),
            market_name=parse_text(out.get("rprs_mrkt_kor_name")),
            sector_name=parse_text(out.get("bstp_kor_isnm")),
        )

    def get_daily_bars(self, code: str, start: dt.date, end: dt.date, adjusted: bool = True,
                       market: str = "J") -> list[DailyBar]:
        """Daily OHLCV for [start, end], oldest first, any length.

        The chart TR returns at most 100 rows, newest first, without tr_cont; we walk backwards by moving
        the end date to the day before the oldest row returned (§4.8)."""
        code = _check_code(code)
        if start > end:
            raise ValueError("start must not be after end")
        # 100 distinct trading days span at least 100 calendar days, so this many calls always suffice.
        page_cap = (end - start).days // CHART_ROWS_PER_CALL + 3
        bars: dict[dt.date, DailyBar] = {}
        cursor = end
        for _ in range(page_cap):
            response = self._call("GET", DAILY_CHART_PATH, "daily_chart", params={
                "FID_COND_MRKT_DIV_CODE": market,
                "FID_INPUT_ISCD": code,
                "FID_INPUT_DATE_1": start.strftime("%Y%m%d"),
                "FID_INPUT_DATE_2": cursor.strftime("%Y%m%d"),
                "FID_PERIOD_DIV_CODE": "D",
                "FID_ORG_ADJ_PRC": "0" if adjusted else "1",  # here 0 = adjusted (§4.8, pitfall 14)
            })
            rows = response.data.get("output2")
            page = [bar for bar in (_parse_bar(row) for row in (rows if isinstance(rows, list) else []))
                    if bar is not None and start <= bar.date <= cursor]
            if not page:
                break
            for bar in page:
                bars[bar.date] = bar
            oldest = min(bar.date for bar in page)
            if oldest <= start:
                break
            cursor = oldest - dt.timedelta(days=1)
        else:
            raise KisPaginationError(f"daily chart did not finish within {page_cap} calls", path=DAILY_CHART_PATH)
        return [bars[day] for day in sorted(bars)]

    def get_balance(self, include_zero: bool = False) -> Balance:
        """Holdings and the cash summary, following tr_cont continuation to the end.

        Stocks sold out today stay listed with quantity 0 until D+2; they are dropped unless ``include_zero``."""
        params = {
            "CANO": self._account_no,
            "ACNT_PRDT_CD": self._product_code,
            "AFHR_FLPR_YN": "N",
            "OFL_YN": "",
            "INQR_DVSN": "01",  # "02" is refused since 2026-02-10 (pitfall 13)
            "UNPR_DVSN": "01",
            "FUND_STTL_ICLD_YN": "N",
            "FNCG_AMT_AUTO_RDPT_YN": "N",
            "PRCS_DVSN": "00",
        }
        pages = self._paginate(BALANCE_PATH, "balance", params)
        holdings: list[Holding] = []
        seen_codes: set[str] = set()
        for page in pages:
            for row in page.get("output1") or []:
                holding = _parse_holding(row)
                # Duplicated rows across pages would double the held quantity (reliability row 13).
                if holding is None or holding.code in seen_codes:
                    continue
                if holding.quantity == 0 and not include_zero:
                    continue
                seen_codes.add(holding.code)
                holdings.append(holding)
        summary_rows = pages[-1].get("output2")
        summary_row = summary_rows[0] if isinstance(summary_rows, list) and summary_rows else summary_rows
        if not isinstance(summary_row, dict):
            raise KisProtocolError("balance without summary (output2)", path=BALANCE_PATH)
        return Balance(holdings=holdings, summary=_parse_balance_summary(summary_row), pages=len(pages))

    def get_daily_orders(self, start: dt.date, end: dt.date, side: str = "all", code: str = "",
                         order_no: str = "", fill_status: str = "all", exchange: str = "KRX") -> list[DailyOrder]:
        """Orders and fills placed in [start, end] (inquire-daily-ccld), newest first, all pages.

        Uses the recent TR for the last ~3 months and the old-history TR before that (splitting the range
        when it straddles the boundary). ``side``: all/buy/sell; ``fill_status``: all/filled/unfilled."""
        if start > end:
            raise ValueError("start must not be after end")
        side_code = {"all": "00", "sell": "01", "buy": "02"}.get(side)  # must be two digits (pitfall 19)
        fill_code = {"all": "00", "filled": "01", "unfilled": "02"}.get(fill_status)
        if side_code is None or fill_code is None:
            raise ValueError("side must be all/buy/sell and fill_status all/filled/unfilled")
        if code:
            code = _check_code(code)
        exchange = exchange.upper()
        if exchange not in ("KRX", "NXT", "SOR", "ALL") or (self.mode == "paper" and exchange != "KRX"):
            raise ValueError("exchange must be KRX/NXT/SOR/ALL (paper: KRX)")

        cutoff = _recent_orders_cutoff(self._clock().astimezone(SEOUL).date())
        ranges: list[tuple[str, dt.date, dt.date]] = []
        if end >= cutoff:
            ranges.append(("daily_orders_recent", max(start, cutoff), end))
        if start < cutoff:
            ranges.append(("daily_orders_old", start, min(end, cutoff - dt.timedelta(days=1))))

        orders: list[DailyOrder] = []
        seen: set[tuple[dt.date | None, str]] = set()
        for operation, range_start, range_end in ranges:
            params = {
                "CANO": self._account_no,
                "ACNT_PRDT_CD": self._product_code,
                "INQR_STRT_DT": range_start.strftime("%Y%m%d"),
                "INQR_END_DT": range_end.strftime("%Y%m%d"),
                "SLL_BUY_DVSN_CD": side_code,
                "PDNO": code,
                "ORD_GNO_BRNO": "",
                "ODNO": order_no,
                "CCLD_DVSN": fill_code,
                "INQR_DVSN": "00",
                "INQR_DVSN_1": "",
                "INQR_DVSN_3": "00",
                "EXCG_ID_DVSN_CD": exchange,
            }
            for page in self._paginate(DAILY_ORDERS_PATH, operation, params):
                for row in page.get("output1") or []:
                    order = _parse_daily_order(row)
                    if order is None:
                        continue
                    identity = (order.order_date, order.order_no)
                    if identity in seen:  # the same row on two pages must not count twice
                        continue
                    seen.add(identity)
                    orders.append(order)
        return orders

    def get_buyable(self, code: str, price: int | None = None) -> BuyableAmount:
        """Orderable cash and buyable quantity (inquire-psbl-order).

        ``price=None`` asks as for a market order (ORD_DVSN 01), which KIS sizes at the upper-limit price and
        which respects the stock's margin rate (§4.6); a price asks as for a limit order at that price."""
        code = _check_code(code)
        if price is not None:
            price = _check_positive_int(price, "price")
        response = self._call("GET", BUYABLE_PATH, "buyable", params={
            "CANO": self._account_no,
            "ACNT_PRDT_CD": self._product_code,
            "PDNO": code,
            "ORD_UNPR": "" if price is None else str(price),
            "ORD_DVSN": "01" if price is None else "00",
            "CMA_EVLU_AMT_ICLD_YN": "N",
            "OVRS_ICLD_YN": "N",
        })
        out = response.data.get("output")
        if not isinstance(out, dict):
            raise KisProtocolError("buyable amount without output", path=BUYABLE_PATH)
        return BuyableAmount(
            code=code,
            orderable_cash=parse_int(out.get("ord_psbl_cash"), "ord_psbl_cash"),
            price_used=parse_int(out.get("psbl_qty_calc_unpr"), "psbl_qty_calc_unpr"),
            cash_only_amount=parse_int(out.get("nrcvb_buy_amt"), "nrcvb_buy_amt"),
            cash_only_quantity=parse_int(out.get("nrcvb_buy_qty"), "nrcvb_buy_qty"),
            max_amount=parse_int(out.get("max_buy_amt"), "max_buy_amt"),
            max_quantity=parse_int(out.get("max_buy_qty"), "max_buy_qty"),
        )

    # ------------------------------------------------------------------------------------------ paging
    def _paginate(self, path: str, operation: str, params: Mapping[str, str]) -> list[dict[str, Any]]:
        """All pages of a tr_cont-paginated TR; restarts from page 1 on SYDB0050 (at most twice)."""
        restarts = 2
        for restart in range(restarts + 1):
            try:
                return self._collect_pages(path, operation, params)
            except KisDataChanged:
                if restart == restarts:
                    raise
                logger.warning("KIS %s: data changed between pages (SYDB0050); restarting from page 1", path)
                deadline.sleep_within(self._backoff(restart + 1), "retry", self._sleep)
        raise AssertionError("unreachable")

    def _collect_pages(self, path: str, operation: str, params: Mapping[str, str]) -> list[dict[str, Any]]:
        pages: list[dict[str, Any]] = []
        fk = nk = ""
        request_tr_cont = ""
        seen_keys: set[tuple[str, str]] = set()
        for _ in range(self._max_pages):
            page_params = dict(params, CTX_AREA_FK100=fk, CTX_AREA_NK100=nk)
            response = self._call("GET", path, operation, params=page_params, tr_cont=request_tr_cont)
            pages.append(response.data)
            if response.tr_cont not in MORE_PAGES:
                return pages
            # Continuation keys are opaque (padding unknown): echo them back unchanged (§3.3).
            fk = str(response.data.get("ctx_area_fk100") or "")
            nk = str(response.data.get("ctx_area_nk100") or "")
            if not nk.strip():
                return pages  # blank NK key: nothing follows, whatever tr_cont said
            if (fk, nk) in seen_keys:
                raise KisPaginationError("continuation key repeated", tr_id=self._tr(operation), path=path)
            seen_keys.add((fk, nk))
            request_tr_cont = "N"
        raise KisPaginationError(f"more than {self._max_pages} pages", tr_id=self._tr(operation), path=path)


# ---------------------------------------------------------------------------------------------- helpers
_DEFAULT_TOKEN_STORE = InMemoryTokenStore()
# A read whose last attempt ended this close to the deadline ran out of the caller's time.
DEADLINE_SLACK = 0.05


def _json_bytes(body: Mapping[str, Any]) -> bytes:
    # The exact bytes are sent, so a hashkey computed over them matches what KIS receives.
    return json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def _is_transient(exc: BaseException) -> bool:
    """Worth retrying for an idempotent request."""
    return isinstance(exc, (KisRateLimited, KisServerError, KisNetworkError))


_NEVER_SENT_EXCEPTIONS = (
    requests.exceptions.ConnectTimeout,
    requests.exceptions.InvalidURL,
    requests.exceptions.InvalidSchema,
    requests.exceptions.MissingSchema,
    requests.exceptions.InvalidHeader,
)


def _request_never_left(exc: requests.RequestException) -> bool:
    """True only when no byte of the request can have reached the server (connection never established)."""
    if isinstance(exc, _NEVER_SENT_EXCEPTIONS):
        return True
    if isinstance(exc, (requests.exceptions.SSLError, requests.exceptions.ProxyError)):
        return False  # could happen mid-stream; treat as possibly sent
    if isinstance(exc, requests.exceptions.ConnectionError):
        reason: Any = exc.args[0] if exc.args else None
        if isinstance(reason, urllib3.exceptions.MaxRetryError):
            reason = reason.reason
        # NewConnectionError covers refused connections and DNS failures; a ProtocolError (connection
        # dropped while sending or reading) means the request may have been delivered.
        return isinstance(reason, urllib3.exceptions.NewConnectionError)
    return False


def _check_code(code: str) -> str:
    if not isinstance(code, str) or not _CODE_RE.match(code):
        raise ValueError("stock code must be 6 characters, digits or upper-case letters (e.g. '005930')")
    return code


def _check_positive_int(value: int, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ValueError(f"{name} must be a positive int")
    return value


def _check_order_price(order_type: str, price: int) -> int:
    if not (isinstance(order_type, str) and len(order_type) == 2 and order_type.isdigit()):
        raise ValueError("order_type must be a 2-digit ORD_DVSN code such as '00' or '01'")
    if isinstance(price, bool) or not isinstance(price, int) or price < 0:
        raise ValueError("price must be a non-negative int (KRW)")
    if order_type in PRICELESS_ORDER_TYPES:
        return 0  # KIS wants "0" for price-less types
    if order_type in PRICED_ORDER_TYPES and price <= 0:
        raise ValueError(f"order type {order_type} needs a positive price")
    return price


def _recent_orders_cutoff(today: dt.date) -> dt.date:
    """First day covered by the recent daily-orders TR: the 1st of the month three months back (§4.5)."""
    month_index = today.year * 12 + (today.month - 1) - 3
    return dt.date(month_index // 12, month_index % 12 + 1, 1)


def _parse_bar(row: Any) -> DailyBar | None:
    if not isinstance(row, dict) or not row:
        return None  # the real server pads output2 with {} (§4.8)
    day = parse_date(row.get("stck_bsop_date"))
    if day is None:
        return None
    return DailyBar(
        date=day,
        open=parse_int(row.get("stck_oprc"), "stck_oprc"),
        high=parse_int(row.get("stck_hgpr"), "stck_hgpr"),
        low=parse_int(row.get("stck_lwpr"), "stck_lwpr"),
        close=parse_int(row.get("stck_clpr"), "stck_clpr"),
        volume=parse_int(row.get("acml_vol"), "acml_vol"),
        traded_value=parse_int(row.get("acml_tr_pbmn"), "acml_tr_pbmn"),
        ex_rights_code=parse_text(row.get("flng_cls_code")),
        split_ratio=parse_decimal(row.get("prtt_rate"), "prtt_rate"),
        no_trade=parse_text(row.get("mod_yn")).upper() == "Y",
    )


def _parse_holding(row: Any) -> Holding | None:
    if not isinstance(row, dict) or not parse_text(row.get("pdno")):
        return None
    return Holding(
        code=parse_text(row.get("pdno")),
        name=parse_text(row.get("prdt_name")),
        quantity=parse_int(row.get("hldg_qty"), "hldg_qty"),
        sellable_quantity=parse_int(row.get("ord_psbl_qty"), "ord_psbl_qty"),
        average_price=parse_decimal(row.get("pchs_avg_pric"), "pchs_avg_pric"),
        purchase_amount=parse_int(row.get("pchs_amt"), "pchs_amt"),
        current_price=parse_int(row.get("prpr"), "prpr"),
        evaluation_amount=parse_int(row.get("evlu_amt"), "evlu_amt"),
        profit_amount=parse_int(row.get("evlu_pfls_amt"), "evlu_pfls_amt"),
        profit_rate=parse_decimal(row.get("evlu_pfls_rt"), "evlu_pfls_rt"),
        today_bought=parse_int(row.get("thdt_buyqty"), "thdt_buyqty"),
        today_sold=parse_int(row.get("thdt_sll_qty"), "thdt_sll_qty"),
    )


def _parse_balance_summary(row: dict[str, Any]) -> BalanceSummary:
    return BalanceSummary(
        cash_deposit=parse_int(row.get("dnca_tot_amt"), "dnca_tot_amt"),
        cash_d1=parse_int(row.get("nxdy_excc_amt"), "nxdy_excc_amt"),
        cash_d2=parse_int(row.get("prvs_rcdl_excc_amt"), "prvs_rcdl_excc_amt"),
        securities_evaluation=parse_int(row.get("scts_evlu_amt"), "scts_evlu_amt"),
        total_evaluation=parse_int(row.get("tot_evlu_amt"), "tot_evlu_amt"),
        net_assets=parse_int(row.get("nass_amt"), "nass_amt"),
        purchase_total=parse_int(row.get("pchs_amt_smtl_amt"), "pchs_amt_smtl_amt"),
        evaluation_total=parse_int(row.get("evlu_amt_smtl_amt"), "evlu_amt_smtl_amt"),
        profit_total=parse_int(row.get("evlu_pfls_smtl_amt"), "evlu_pfls_smtl_amt"),
        today_fees_and_tax=parse_int(row.get("thdt_tlex_amt"), "thdt_tlex_amt"),
    )


def _parse_daily_order(row: Any) -> DailyOrder | None:
    fields = lower_keys(row)  # "excg_id_dvsn_Cd" casing is unconfirmed (§4.5)
    if not fields or not parse_text(fields.get("odno")):
        return None
    return DailyOrder(
        order_date=parse_date(fields.get("ord_dt")),
        order_no=normalize_order_no(fields.get("odno")),
        original_order_no=normalize_order_no(fields.get("orgn_odno")),
        branch_no=normalize_branch_no(fields.get("ord_gno_brno")),
        side=_SIDE_CODES.get(parse_text(fields.get("sll_buy_dvsn_cd")), ""),
        code=parse_text(fields.get("pdno")),
        name=parse_text(fields.get("prdt_name")),
        quantity=parse_int(fields.get("ord_qty"), "ord_qty"),
        price=parse_int(fields.get("ord_unpr"), "ord_unpr"),
        order_time=parse_time(fields.get("ord_tmd")),
        filled_quantity=parse_int(fields.get("tot_ccld_qty"), "tot_ccld_qty"),
        average_fill_price=parse_decimal(fields.get("avg_prvs"), "avg_prvs"),
        filled_amount=parse_int(fields.get("tot_ccld_amt"), "tot_ccld_amt"),
        cancelled=parse_text(fields.get("cncl_yn")).upper() == "Y",
        cancel_confirmed_quantity=parse_int(fields.get("cnc_cfrm_qty"), "cnc_cfrm_qty"),
        remaining_quantity=parse_int(fields.get("rmn_qty"), "rmn_qty"),
        rejected_quantity=parse_int(fields.get("rjct_qty"), "rjct_qty"),
        order_type=parse_text(fields.get("ord_dvsn_cd")),
        order_type_name=parse_text(fields.get("ord_dvsn_name")),
        exchange=parse_text(fields.get("excg_id_dvsn_cd")),
    )
