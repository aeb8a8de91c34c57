"""Exceptions raised by the KIS client.

Every error carries what KIS said (``http_status``, ``rt_cd``, ``msg_cd``, ``msg1`` — the Korean text is kept
as sent, after secrets are masked by the client) and a ``user_message`` in plain Korean for the UI.
No error ever holds the app secret, an access token or the full account number: the client redacts texts
before building errors, and errors never keep request headers, bodies or URLs.
"""

from __future__ import annotations

from typing import Any

RATE_LIMIT_CODES = frozenset({"EGW00201", "EGW00215"})  # per-app-key limit; ledger-wide (balance) limit
TOKEN_EXPIRED_CODES = frozenset({"EGW00123", "EGW00121"})  # expired; invalid/revoked -> reissue
TOKEN_ISSUE_THROTTLED_CODE = "EGW00133"  # tokenP called again within one minute
DATA_CHANGED_CODE = "SYDB0050"  # data changed between pages -> restart pagination


class KisError(Exception):
    """Base class: any failure talking to KIS."""

    default_user_message = "한국투자증권 API 요청이 실패했습니다."

    def __init__(
        self,
        message: str = "",
        *,
        http_status: int | None = None,
        rt_cd: str | None = None,
        msg_cd: str | None = None,
        msg1: str | None = None,
        tr_id: str | None = None,
        path: str | None = None,
    ) -> None:
        self.http_status = http_status
        self.rt_cd = rt_cd
        self.msg_cd = msg_cd or ""
        # KIS pads msg1 with trailing spaces; the text itself is kept in Korean as sent.
        self.msg1 = (msg1 or "").strip()
        self.tr_id = tr_id
        self.path = path
        self.detail = message
        super().__init__(self._describe())

    # Flags, so callers can branch without importing every subclass.
    @property
    def is_rate_limited(self) -> bool:
        return self.msg_cd in RATE_LIMIT_CODES

    @property
    def is_token_expired(self) -> bool:
        return self.msg_cd in TOKEN_EXPIRED_CODES

    @property
    def is_token_issue_throttled(self) -> bool:
        return self.msg_cd == TOKEN_ISSUE_THROTTLED_CODE

    @property
    def order_outcome_unknown(self) -> bool:
        return False

    @property
    def user_message(self) -> str:
        if self.msg1:
            code = f" ({self.msg_cd})" if self.msg_cd else ""
            return f"{self.default_user_message} 증권사 메시지: {self.msg1}{code}"
        return self.default_user_message

    def _describe(self) -> str:
        parts: list[str] = []
        if self.detail:
            parts.append(self.detail)
        if self.msg_cd or self.msg1:
            parts.append(f"[{self.msg_cd}] {self.msg1}".strip())
        context = []
        if self.http_status is not None:
            context.append(f"HTTP {self.http_status}")
        if self.rt_cd is not None:
            context.append(f"rt_cd={self.rt_cd}")
        if self.tr_id:
            context.append(f"tr_id={self.tr_id}")
        if self.path:
            context.append(f"path={self.path}")
        if context:
            parts.append("(" + ", ".join(context) + ")")
        return " ".join(parts) or self.__class__.__name__

    def __repr__(self) -> str:
        return (
            f"{self.__class__.__name__}(http_status={self.http_status!r}, rt_cd={self.rt_cd!r}, "
            f"msg_cd={self.msg_cd!r}, msg1={self.msg1!r}, tr_id={self.tr_id!r}, path={self.path!r})"
        )


class KisApiError(KisError):
    """KIS answered and refused the request (``rt_cd != "0"``): a business/validation rejection.

    For orders this is a definitive "not accepted" (e.g. APBK0919 not enough cash)."""

    default_user_message = "한국투자증권이 요청을 거절했습니다."


class KisDataChanged(KisApiError):
    """SYDB0050: the data changed between pages; pagination must restart from page 1."""

    default_user_message = "조회 중 자료가 변경되었습니다. 다시 조회하세요."


class KisNotFound(KisApiError):
    """The symbol is unknown to KIS (quote price "0", empty chart)."""

    default_user_message = "종목을 찾을 수 없습니다."


class KisRateLimited(KisError):
    """EGW00201 (per app key, ~20/s real, 2/s paper) or EGW00215 (ledger-wide): the call was refused, not run."""

    default_user_message = "한국투자증권 API 초당 호출 한도를 초과했습니다. 잠시 후 다시 시도하세요."


class KisTokenExpired(KisError):
    """EGW00123 (expired) or EGW00121 (invalid, e.g. after KIS maintenance): a new token is needed."""

    default_user_message = "한국투자증권 접근토큰이 만료되었거나 유효하지 않습니다. 잠시 후 다시 시도하세요."


class KisAuthError(KisError):
    """The token endpoint refused the credentials; body shape ``{"error_code", "error_description"}``.

    ``msg_cd``/``msg1`` hold ``error_code``/``error_description`` so all errors read the same way."""

    default_user_message = "한국투자증권 인증에 실패했습니다. 앱키와 앱시크릿, 실전/모의 구분을 확인하세요."


class KisTokenIssueThrottled(KisAuthError):
    """EGW00133: tokenP may be called once per minute per app key."""

    default_user_message = "한국투자증권 접근토큰 발급은 1분에 한 번만 가능합니다. 1분 뒤 다시 시도하세요."


class KisServerError(KisError):
    """5xx without a specific KIS code, or a body we could not parse. For reads it is retried."""

    default_user_message = "한국투자증권 서버 오류로 요청을 처리하지 못했습니다. 잠시 후 다시 시도하세요."


class KisProtocolError(KisError):
    """The answer did not have the expected shape (unparsable JSON, missing fields, non-numeric numbers)."""

    default_user_message = "한국투자증권 응답을 해석하지 못했습니다."


class KisNetworkError(KisError):
    """Timeout or connection failure. ``possibly_sent`` tells whether the request may have reached KIS
    (read time-out, connection dropped after sending) or certainly did not (connect refused/timed out)."""

    default_user_message = "한국투자증권 서버에 연결하지 못했습니다. 네트워크 상태를 확인한 뒤 다시 시도하세요."

    def __init__(self, message: str = "", *, possibly_sent: bool, **kwargs: Any) -> None:
        self.possibly_sent = possibly_sent
        super().__init__(message, **kwargs)


class KisPaginationError(KisError):
    """Continuation did not end: a repeated continuation key, or more pages than the configured cap."""

    default_user_message = "한국투자증권 조회 결과가 비정상적으로 계속 이어져 조회를 중단했습니다."


class KisOrderOutcomeUnknown(KisError):
    """An order (or revise/cancel) may have been sent and the answer was lost.

    Raised on a read time-out after sending, a connection dropped after sending, a 5xx other than the
    EGW00201 rate-limit refusal (including an empty ``msg_cd``), an unparsable body, or a success without an
    order number. The order must NOT be sent again: KIS orders carry no client order id, so a resend can
    create a second live order. Reconcile with ``KisClient.get_daily_orders`` first.
    """

    default_user_message = (
        "주문 전송 결과를 확인하지 못했습니다. 주문이 접수되었을 수 있으니 다시 주문하지 말고 "
        "주문·체결 내역을 먼저 확인하세요."
    )

    def __init__(self, message: str = "", *, reason: str, order_summary: dict[str, Any] | None = None,
                 **kwargs: Any) -> None:
        self.reason = reason
        # side, code, quantity, price, order type, tr_id and the send time: what reconciliation needs.
        # Never the account number.
        self.order_summary = dict(order_summary or {})
        super().__init__(message or f"order outcome unknown: {reason}", **kwargs)

    @property
    def order_outcome_unknown(self) -> bool:
        return True

    @property
    def user_message(self) -> str:
        return self.default_user_message


class KisDeadlineExceeded(KisError):
    """The caller's total time budget (``market.kis.deadline``) would pass before the work is done.

    Raised only where nothing is in flight: before a request is sent, before a retry or backoff sleep,
    before a wait for the rate limiter, the token lock or the one-per-minute token limit. An order is
    therefore definitely NOT sent when this is raised (``order_not_sent``); an order that was sent and
    whose (shortened) read timed out stays ``KisOrderOutcomeUnknown``.

    ``stage`` says what the budget could not hold: "rate_limit", "token_lock", "token_limit" (the
    one-per-minute issuance limit), "retry", "request" or "order_send"."""

    code = "KIS_DEADLINE"  # what views report as the error code (no KIS msg_cd: KIS never answered this)
    default_user_message = "증권사 응답이 늦어 요청을 중단했습니다. 잠시 후 다시 시도하세요."

    def __init__(self, message: str = "", *, seconds: float, stage: str, order_not_sent: bool = False,
                 **kwargs: Any) -> None:
        self.seconds = seconds
        self.stage = stage
        self.order_not_sent = order_not_sent
        super().__init__(message or f"deadline of {seconds:g}s exceeded at {stage}", **kwargs)

    def for_order(self) -> KisDeadlineExceeded:
        """The same error, saying the order it stopped was never sent."""
        return KisDeadlineExceeded(self.detail, seconds=self.seconds, stage=self.stage, order_not_sent=True,
                                   tr_id=self.tr_id, path=self.path)

    @property
    def user_message(self) -> str:
        not_sent = " 주문은 전송되지 않았습니다." if self.order_not_sent else ""
        if self.stage == "token_limit":
            return (f"한국투자증권 접근토큰 발급 제한(1분에 1회) 때문에 지금은 처리할 수 없습니다.{not_sent} "
                    "잠시 후 다시 시도하세요.")
        return f"증권사 응답이 늦어 요청을 중단했습니다 ({self.seconds:g}초).{not_sent} 잠시 후 다시 시도하세요."
