"""The HTTP exchange with one KIS host for one app key: session, headers, rate limit, deadline, error
classification, read retries with backoff, and the hashkey.

Pure Python (``requests`` + ``tenacity``), no Django. Everything above this layer (``auth``, ``orders``,
``quotations``, ``account``) sends through :class:`KisTransport`, so these rules hold for every call:

* every request passes the per-app-key rate limiter and has a time-out;
* under a caller's deadline (``market.kis.deadline``) a request is sent only while time is left, with its
  time-outs shortened to what is left; a retry or backoff that would pass the deadline raises
  ``KisDeadlineExceeded`` before anything is sent;
* one answer is classified into exactly one outcome (``_classify``): success, or one ``KisError`` subclass,
  by ``msg_cd`` before the HTTP status (KIS sends EGW00201/EGW00123 mostly as 500, sometimes as 200);
* ``with_read_retries`` retries idempotent requests only, a bounded number of times; an order never goes
  through it (see ``orders``);
* urllib3 never retries on its own, and no secret reaches a log line or an exception text;
* the environment's proxy and CA-bundle variables are read once, when the transport's session is made
  (``trust_env`` off: requests would otherwise look them up, and ~/.netrc, on every call).
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import os
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
    KisError,
    KisNetworkError,
    KisProtocolError,
    KisRateLimited,
    KisServerError,
    KisTokenExpired,
    KisTokenIssueThrottled,
)
from .masking import RedactingLogFilter, SecretRedactor, safe_fields
from .models import parse_text
from .ratelimit import RateLimiter

# One logger for the whole client (every module of this package logs through it).
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
# One table for every API area, so the client -- never a caller -- picks the real or the paper id.
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

HASHKEY_PATH = "/uapi/hashkey"

# A read whose last attempt ended this close to the deadline ran out of the caller's time.
DEADLINE_SLACK = 0.05


@dataclass(frozen=True)
class KisResponse:
    status: int
    tr_cont: str
    data: dict[str, Any]


class KisTransport:
    """HTTP to one KIS host with one app key: the layer every API area sends through."""

    def __init__(
        self,
        *,
        mode: str,
        base_url: str,
        app_key: str,
        app_secret: str,
        rate_limiter: RateLimiter,
        timeout: tuple[float, float],
        session: requests.Session | None,
        max_retries: int,
        backoff_base: float,
        backoff_max: float,
        sleep: Callable[[float], None],
        redactor: SecretRedactor,
    ) -> None:
        self.mode = mode
        self.base_url = base_url
        self._app_key = app_key
        self._app_secret = app_secret
        self._rate_limiter = rate_limiter
        self._timeout = timeout
        self._max_retries = max_retries
        self._backoff_base = backoff_base
        self._backoff_max = backoff_max
        self._sleep = sleep
        self.redactor = redactor
        # Opaque ids derived from the app key: usable as store/limiter keys and in logs without revealing it.
        self.app_fingerprint = hashlib.sha256(f"{self.base_url}|{app_key}".encode()).hexdigest()
        self.limiter_key = "kis-app-" + hashlib.sha256(app_key.encode()).hexdigest()[:16]
        self.log_id = self.app_fingerprint[:8]

        if session is None:
            session = requests.Session()
            # The environment is read once here, not on every call (requests looks up the proxy variables
            # and ~/.netrc per request when trust_env is on): HTTPS_PROXY/NO_PROXY and REQUESTS_CA_BUNDLE
            # (or CURL_CA_BUNDLE) as the process had them when the client was made still apply.
            session.trust_env = False
            session.proxies.update(requests.utils.get_environ_proxies(self.base_url))
            session.verify = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE") or True
        self._session = session
        # urllib3 must never retry on its own: a transparent retry of a POST would re-send an order.
        self._session.mount(self.base_url, HTTPAdapter(max_retries=0))

    def close(self) -> None:
        self._session.close()

    # ------------------------------------------------------------------------------------------ headers
    def tr(self, operation: str) -> str:
        real_id, paper_id = TR_IDS[operation]
        return real_id if self.mode == "real" else paper_id

    def app_credentials(self) -> dict[str, str]:
        """The app key and secret as the OAuth and hashkey endpoints take them."""
        return {"appkey": self._app_key, "appsecret": self._app_secret}

    def oauth_headers(self) -> dict[str, str]:
        return {"content-type": "application/json; charset=utf-8", "accept": "application/json"}

    def api_headers(self, tr_id: str, token: str, tr_cont: str = "") -> dict[str, str]:
        return {
            "content-type": "application/json; charset=utf-8",
            "authorization": f"Bearer {token}",
            "appkey": self._app_key,
            "appsecret": self._app_secret,
            "tr_id": tr_id,
            "custtype": "P",
            "tr_cont": tr_cont,
        }

    # ------------------------------------------------------------------------------------------ one exchange
    def exchange(
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
        self._rate_limiter.acquire(self.limiter_key)
        deadline.check("order_send" if min_time else "request", needed=min_time)
        timeout = self._timeout_within_deadline()
        started = time.monotonic()
        try:
            response = self._session.request(
                method, self.base_url + path, headers=headers, params=params, data=payload,
                timeout=timeout, allow_redirects=False,
            )
        except requests.RequestException as exc:
            possibly_sent = not request_never_left(exc)
            logger.warning("KIS %s %s tr_id=%s network error %s possibly_sent=%s app=%s",
                           method, path, tr_id, type(exc).__name__, possibly_sent, self.log_id)
            # The requests exception text contains the URL, i.e. CANO: keep only a redacted copy and do
            # not chain the original (tracebacks would print it).
            raise KisNetworkError(self.redactor.redact(f"{type(exc).__name__}: {exc}"),
                                  possibly_sent=possibly_sent, tr_id=tr_id, path=path) from None
        elapsed = time.monotonic() - started
        try:
            result = self._classify(response, tr_id=tr_id, path=path, expects_rt_cd=expects_rt_cd)
        except KisError as exc:
            if isinstance(exc, KisRateLimited):
                self._rate_limiter.on_throttled(self.limiter_key)
            logger.info("KIS %s %s tr_id=%s status=%s msg_cd=%s elapsed=%.3fs error=%s app=%s",
                        method, path, tr_id, response.status_code, exc.msg_cd, elapsed,
                        type(exc).__name__, self.log_id)
            raise
        if logger.isEnabledFor(logging.DEBUG):
            logger.debug("KIS %s %s tr_id=%s status=%s msg_cd=%s tr_cont=%s elapsed=%.3fs params=%s app=%s",
                         method, path, tr_id, result.status, result.data.get("msg_cd", ""), result.tr_cont,
                         elapsed, safe_fields(params), self.log_id)
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
            text = self.redactor.redact(parse_text(data.get("error_description")))
            if code == TOKEN_ISSUE_THROTTLED_CODE:
                raise KisTokenIssueThrottled(msg_cd=code, msg1=text, **context)
            if code in TOKEN_EXPIRED_CODES:
                raise KisTokenExpired(msg_cd=code, msg1=text, **context)
            if status >= 500:
                raise KisServerError(msg_cd=code, msg1=text, **context)
            raise KisAuthError(msg_cd=code, msg1=text, **context)

        rt_cd = parse_text(data.get("rt_cd")) if "rt_cd" in data else None
        msg_cd = parse_text(data.get("msg_cd"))
        msg1 = self.redactor.redact(parse_text(data.get("msg1")))
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

    # ------------------------------------------------------------------------------------------ retries
    def backoff(self, retry_number: int) -> float:
        return min(self._backoff_max, self._backoff_base * (2 ** max(retry_number - 1, 0)))

    def with_read_retries(self, attempt: Callable[[], KisResponse]) -> KisResponse:
        """Run an idempotent request with bounded retries: at most ``max_retries + 1`` attempts."""

        def log_retry(state: RetryCallState) -> None:
            exc = state.outcome.exception() if state.outcome else None
            logger.warning("KIS retry %d/%d after %s %s (app=%s)", state.attempt_number, self._max_retries,
                           type(exc).__name__, getattr(exc, "msg_cd", ""), self.log_id)

        retrying = Retrying(
            stop=stop_after_attempt(self._max_retries + 1),
            wait=wait_exponential(multiplier=self._backoff_base, max=self._backoff_max),
            retry=retry_if_exception(is_transient),
            sleep=functools.partial(deadline.sleep_within, stage="retry", sleep=self._sleep),
            before_sleep=log_retry,
            reraise=True,
        )
        try:
            return retrying(attempt)
        except KisError as exc:
            budget = deadline.current_deadline()
            if budget is not None and is_transient(exc) and budget.remaining() <= DEADLINE_SLACK:
                # The last attempt ran out of the caller's time (its time-out was cut to what was left).
                raise budget.exceeded("retry", f"last error: {type(exc).__name__}") from exc
            raise

    # ------------------------------------------------------------------------------------------ hashkey
    def hashkey(self, body: Mapping[str, str]) -> str:
        """HASH of a POST body (§2.4). Optional at KIS today; used for orders when ``use_hashkey`` is on."""
        headers = self.oauth_headers() | self.app_credentials()
        response = self.with_read_retries(
            lambda: self.exchange("POST", HASHKEY_PATH, tr_id=None, headers=headers, payload=json_bytes(body),
                                  expects_rt_cd=False)
        )
        value = parse_text(response.data.get("HASH"))
        if not value:
            raise KisProtocolError("hashkey response without HASH", path=HASHKEY_PATH)
        return value


# ---------------------------------------------------------------------------------------------- helpers
def json_bytes(body: Mapping[str, Any]) -> bytes:
    # The exact bytes are sent, so a hashkey computed over them matches what KIS receives.
    return json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def is_transient(exc: BaseException) -> bool:
    """Worth retrying for an idempotent request."""
    return isinstance(exc, (KisRateLimited, KisServerError, KisNetworkError))


_NEVER_SENT_EXCEPTIONS = (
    requests.exceptions.ConnectTimeout,
    requests.exceptions.InvalidURL,
    requests.exceptions.InvalidSchema,
    requests.exceptions.MissingSchema,
    requests.exceptions.InvalidHeader,
)


def request_never_left(exc: requests.RequestException) -> bool:
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
