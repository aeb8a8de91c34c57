"""Authentication against KIS: the REST access token (issue, reuse, renewal, revocation) and the
authenticated call every read goes through. Pure Python, no Django.

Access token (§2.1): one per app key, valid ~24 h; KIS allows one issuance per minute per app key and answers
the same token within 6 hours of the previous issuance. So tokens are shared through a ``TokenStore`` and
issued only under its lock (one issuance per app key even with many threads/processes), reused while more
than ``renew_margin`` is left, renewed once when KIS rejects them (EGW00123/EGW00121), and an issuance
refused by the one-per-minute limit (EGW00133) waits out the minute once -- unless the caller's deadline
cannot hold the wait.

The WebSocket approval key (§2.3, ``/oauth2/Approval``) is the other credential KIS issues per app key; it
belongs in this module, next to the access token, sharing its transport and store (issue 13).
"""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Callable, Mapping
from typing import Any

from . import deadline
from .errors import KisProtocolError, KisTokenExpired, KisTokenIssueThrottled
from .models import AccessToken, parse_int, parse_text
from .token_store import InMemoryTokenStore, TokenStore
from .transport import SEOUL, KisResponse, KisTransport, json_bytes, logger

TOKEN_PATH = "/oauth2/tokenP"
REVOKE_PATH = "/oauth2/revokeP"
APPROVAL_PATH = "/oauth2/Approval"
# KIS says the approval key is valid 24 h and checks it only when a session registers (§2.3); its answer
# carries no expiry, so the validity counts from the issuance.
APPROVAL_KEY_VALIDITY = dt.timedelta(hours=24)

# Process-wide, so that every client of one app key without a store of its own shares one token.
DEFAULT_TOKEN_STORE = InMemoryTokenStore()


class KisAuth:
    """The access token of one app key on one host, and authenticated calls with it."""

    def __init__(
        self,
        transport: KisTransport,
        token_store: TokenStore,
        *,
        renew_margin: dt.timedelta,
        throttle_wait: float,
        clock: Callable[[], dt.datetime],
        sleep: Callable[[float], None],
    ) -> None:
        self._transport = transport
        self._token_store = token_store
        self._renew_margin = renew_margin
        self._throttle_wait = throttle_wait
        self._clock = clock
        self._sleep = sleep
        # Derived from base URL + app key; reveals neither.
        self.token_key = f"kis-token-{transport.app_fingerprint[:24]}"
        self._token: AccessToken | None = None
        self.approval_store_key = f"kis-approval-{transport.app_fingerprint[:24]}"
        self._approval: tuple[str, dt.datetime] | None = None

    # ------------------------------------------------------------------------------------------ access token
    def get_token(self) -> AccessToken:
        """A valid token: the cached one, the stored one, or a newly issued one (only when none is valid)."""
        self.ensure_token()
        assert self._token is not None
        return self._token

    def issue_token(self) -> AccessToken:
        """Call tokenP now (under the store lock) and save the result."""
        with self._token_store.lock(self.token_key):
            return self._issue_token_locked()

    def revoke_token(self) -> bool:
        """Revoke the current token at KIS (revokeP) and forget it. Returns False if there was none."""
        transport = self._transport
        with self._token_store.lock(self.token_key):
            stored = self._token_store.get(self.token_key)
            token = stored[0] if stored else (self._token.token if self._token else None)
            if not token:
                return False
            body = {**transport.app_credentials(), "token": token}
            try:
                transport.with_read_retries(
                    lambda: transport.exchange("POST", REVOKE_PATH, tr_id=None, headers=transport.oauth_headers(),
                                               payload=json_bytes(body), expects_rt_cd=False)
                )
            except KisTokenExpired:
                pass  # KIS no longer knows the token (EGW00121): it is unusable either way
            self._token_store.delete(self.token_key)
            self._token = None
        logger.info("KIS token revoked (app=%s)", transport.log_id)
        return True

    def ensure_token(self) -> str:
        cached = self._token
        if cached is not None and not self._needs_renewal(cached.expires_at):
            return cached.token
        stored = self._token_store.get(self.token_key)
        if stored is not None and not self._needs_renewal(stored[1]):
            return self._adopt(*stored).token
        with self._token_store.lock(self.token_key):
            # Re-check under the lock: another thread/process may have issued while we waited.
            stored = self._token_store.get(self.token_key)
            if stored is not None and not self._needs_renewal(stored[1]):
                return self._adopt(*stored).token
            return self._issue_token_locked().token

    def refresh_after_rejection(self, rejected_token: str | None) -> None:
        """KIS rejected ``rejected_token`` (EGW00123/EGW00121): drop it and get a new one, once."""
        self._token = None
        with self._token_store.lock(self.token_key):
            stored = self._token_store.get(self.token_key)
            if stored is not None and stored[0] != rejected_token and not self._needs_renewal(stored[1]):
                # Someone else already replaced it; reuse instead of issuing again (1/min rule).
                self._adopt(*stored)
                return
            self._token_store.delete(self.token_key)
            logger.info("KIS token rejected by KIS; issuing a new one (app=%s)", self._transport.log_id)
            self._issue_token_locked()

    def _needs_renewal(self, expires_at: dt.datetime) -> bool:
        return expires_at - self._clock() < self._renew_margin

    def _adopt(self, token: str, expires_at: dt.datetime) -> AccessToken:
        self._transport.redactor.register(token)
        self._token = AccessToken(token=token, expires_at=expires_at)
        return self._token

    def _issue_token_locked(self) -> AccessToken:
        transport = self._transport
        body = {"grant_type": "client_credentials", **transport.app_credentials()}

        def attempt() -> KisResponse:
            return transport.exchange("POST", TOKEN_PATH, tr_id=None, headers=transport.oauth_headers(),
                                      payload=json_bytes(body), expects_rt_cd=False)

        try:
            response = transport.with_read_retries(attempt)
        except KisTokenIssueThrottled:
            # Another client of this app key (outside our store) issued within the last minute.
            # Waiting out the minute once is cheaper than failing the whole job.
            if self._throttle_wait <= 0:
                raise
            budget = deadline.current_deadline()
            if budget is not None and budget.remaining() <= self._throttle_wait:
                # A web request cannot wait out the minute (its server would kill it first): say so now.
                logger.warning("KIS token issuance throttled (EGW00133); the caller's %gs deadline cannot "
                               "hold the %gs wait (app=%s)", budget.seconds, self._throttle_wait,
                               transport.log_id)
                raise budget.exceeded("token_limit", "token issuance throttled (EGW00133)") from None
            logger.warning("KIS token issuance throttled (EGW00133); waiting %.1fs once (app=%s)",
                           self._throttle_wait, transport.log_id)
            self._sleep(self._throttle_wait)
            response = transport.with_read_retries(attempt)

        data = response.data
        token = parse_text(data.get("access_token"))
        if not token:
            raise KisProtocolError("token response without access_token", http_status=response.status,
                                   path=TOKEN_PATH)
        transport.redactor.register(token)
        expires_at = self._parse_token_expiry(data)
        self._token_store.set(self.token_key, token, expires_at)
        logger.info("KIS token issued (app=%s, expires_at=%s)", transport.log_id, expires_at.isoformat())
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

    # ------------------------------------------------------------------------------------------ authenticated calls
    def call(self, method: str, path: str, operation: str, *, params: Mapping[str, str] | None = None,
             body: Mapping[str, str] | None = None, tr_cont: str = "") -> KisResponse:
        """An authenticated, idempotent API call (reads): retries + one token refresh.

        Orders do not come here: they are sent once (``orders.KisOrders``)."""
        transport = self._transport
        tr_id = transport.tr(operation)
        payload = json_bytes(body) if body is not None else None
        refreshed = False
        while True:
            token = self.ensure_token()
            attempt = functools.partial(transport.exchange, method, path, tr_id=tr_id,
                                        headers=transport.api_headers(tr_id, token, tr_cont),
                                        params=params, payload=payload)
            try:
                return transport.with_read_retries(attempt)
            except KisTokenExpired:
                if refreshed:
                    raise
                refreshed = True
                self.refresh_after_rejection(token)

    # ------------------------------------------------------------------------------------------ approval key
    def approval_key(self, rejected: str | None = None) -> str:
        """The WebSocket approval key (§2.3): the cached one, the stored one, or a newly issued one.

        Shared like the access token (same store, its own key) and renewed ``renew_margin`` before its 24 h
        end. ``rejected`` is a key KIS just refused (OPSP0011): it is dropped and a fresh one issued -- unless
        another thread or process already stored a different valid key, which is used instead."""
        if rejected is None:
            cached = self._approval
            if cached is not None and not self._needs_renewal(cached[1]):
                return cached[0]
            stored = self._token_store.get(self.approval_store_key)
            if stored is not None and not self._needs_renewal(stored[1]):
                return self._adopt_approval(*stored)
        with self._token_store.lock(self.approval_store_key):
            stored = self._token_store.get(self.approval_store_key)
            if stored is not None and stored[0] != rejected and not self._needs_renewal(stored[1]):
                return self._adopt_approval(*stored)
            if rejected is not None:
                self._approval = None
                self._token_store.delete(self.approval_store_key)
                logger.info("KIS approval key refused by KIS; issuing a new one (app=%s)", self._transport.log_id)
            return self._issue_approval_locked()

    def _adopt_approval(self, key: str, expires_at: dt.datetime) -> str:
        self._transport.redactor.register(key)
        self._approval = (key, expires_at)
        return key

    def _issue_approval_locked(self) -> str:
        transport = self._transport
        credentials = transport.app_credentials()
        # The approval endpoint names the secret "secretkey", unlike tokenP's "appsecret" (pitfall 25).
        body = {"grant_type": "client_credentials", "appkey": credentials["appkey"],
                "secretkey": credentials["appsecret"]}
        response = transport.with_read_retries(
            lambda: transport.exchange("POST", APPROVAL_PATH, tr_id=None, headers=transport.oauth_headers(),
                                       payload=json_bytes(body), expects_rt_cd=False)
        )
        key = parse_text(response.data.get("approval_key"))
        if not key:
            raise KisProtocolError("approval response without approval_key", http_status=response.status,
                                   path=APPROVAL_PATH)
        transport.redactor.register(key)  # before anything could log it
        expires_at = self._clock() + APPROVAL_KEY_VALIDITY
        self._token_store.set(self.approval_store_key, key, expires_at)
        logger.info("KIS approval key issued (app=%s, valid until %s)", transport.log_id, expires_at.isoformat())
        return self._adopt_approval(key, expires_at)
