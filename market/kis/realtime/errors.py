"""Typed errors of the KIS real-time WebSocket (fact sheet §5.1, §6.1).

KIS answers every registration with a JSON control message; its ``msg_cd`` says what went wrong (``OPSP0008``
over the 40 registrations of a session, ``OPSP8996`` the app key already has a session, ``OPSP0011`` invalid
approval key). Each becomes one error class here. Like every ``KisError`` they keep what KIS said
(``msg_cd``/``msg1``) and give a Korean ``user_message`` that ends with the code, so a user can quote it.
"""

from __future__ import annotations

from typing import Any

from ..errors import KisError

MAX_REGISTRATIONS = 40  # per session: KIS refuses the 41st with OPSP0008 (§5.1)

SUBSCRIBE_OK_CODES = frozenset({"OPSP0000", "OPSP0002"})  # subscribed; already subscribed (harmless)
UNSUBSCRIBE_OK_CODES = frozenset({"OPSP0001", "OPSP0003"})  # unsubscribed; was not subscribed (harmless)
OVER_CAP_CODE = "OPSP0008"  # MAX SUBSCRIBE OVER
APP_KEY_IN_USE_CODE = "OPSP8996"  # ALREADY IN USE appkey
INVALID_APPROVAL_CODES = frozenset({"OPSP0011"})  # invalid approval : NOT FOUND

# The fill-notice TRs are keyed by the HTS login id, which is not shown to users in messages.
_NOTICE_TRS = frozenset({"H0STCNI0", "H0STCNI9"})


class RealtimeError(KisError):
    """Base of every real-time failure. ``code`` is KIS's ``msg_cd`` when KIS sent one, else ours."""

    default_user_message = "한국투자증권 실시간 연결에 문제가 생겼습니다."
    default_code = "RT_ERROR"

    def __init__(self, message: str = "", *, tr_key: str | None = None, **kwargs: Any) -> None:
        self.tr_key = tr_key
        super().__init__(message, **kwargs)

    @property
    def code(self) -> str:
        return self.msg_cd or self.default_code

    @property
    def subject(self) -> str:
        """What the registration was for, as a user reads it: the stock code, or "체결통보"."""
        if self.tr_id in _NOTICE_TRS:
            return "체결통보"
        return self.tr_key or ""

    @property
    def user_message(self) -> str:
        return f"{self.default_user_message} ({self.code})"


class RealtimeProtocolError(RealtimeError):
    """A frame or record did not have the shape of the fact sheet (bad framing, field count, numbers)."""

    default_user_message = "한국투자증권 실시간 데이터를 해석하지 못했습니다."
    default_code = "RT_PROTOCOL"


class SubscriptionLimitError(RealtimeError):
    """The registration would pass the cap of one session (KIS: 40; the 41st answers OPSP0008).

    Raised by the subscription manager before asking KIS (``msg_cd`` empty) or built from KIS's OPSP0008."""

    default_user_message = "실시간 등록 한도를 넘었습니다."
    default_code = "RT_LIMIT"

    def __init__(self, message: str = "", *, cap: int = MAX_REGISTRATIONS, **kwargs: Any) -> None:
        self.cap = cap
        super().__init__(message or f"registration over the cap of {cap}", **kwargs)

    @property
    def user_message(self) -> str:
        subject = self.subject
        if subject == "체결통보":
            what = "체결통보를"
        elif subject:
            what = f"{subject} 종목을"
        else:
            what = "종목을"
        return (f"한국투자증권 실시간 등록은 한 연결에 최대 {self.cap}개까지라서 {what} 더 등록할 수 없습니다. "
                f"보지 않는 종목 화면을 닫은 뒤 다시 시도하세요. ({self.code})")


class AppKeyInUseError(RealtimeError):
    """OPSP8996: KIS allows one WebSocket session per app key and another one is open."""

    default_user_message = (
        "이 앱키로 이미 다른 실시간 연결이 열려 있습니다. 한국투자증권은 앱키 하나에 실시간 연결 하나만 허용하므로, "
        "같은 앱키를 쓰는 다른 프로그램의 실시간 연결을 종료한 뒤 다시 시도하세요."
    )
    default_code = APP_KEY_IN_USE_CODE


class InvalidApprovalError(RealtimeError):
    """OPSP0011 (or another approval refusal): KIS does not know the approval key."""

    default_user_message = (
        "한국투자증권이 실시간 접속키(approval key)를 거절했습니다. 앱키·앱시크릿과 실전/모의 구분을 확인하세요."
    )
    default_code = "OPSP0011"


def error_for_answer(*, tr_id: str, tr_key: str, rt_cd: str, msg_cd: str, msg1: str) -> RealtimeError | None:
    """The error a control answer stands for, or None when it is a success (or a harmless repeat)."""
    if rt_cd == "0" or msg_cd in SUBSCRIBE_OK_CODES or msg_cd in UNSUBSCRIBE_OK_CODES:
        return None
    context: dict[str, Any] = {"rt_cd": rt_cd, "msg_cd": msg_cd, "msg1": msg1,
                               "tr_id": tr_id if tr_id and tr_id != "(null)" else None, "tr_key": tr_key or None}
    if msg_cd == OVER_CAP_CODE:
        return SubscriptionLimitError(**context)
    if msg_cd == APP_KEY_IN_USE_CODE:
        return AppKeyInUseError(**context)
    if msg_cd in INVALID_APPROVAL_CODES or "approval" in msg1.lower():
        return InvalidApprovalError(**context)
    return RealtimeError("registration refused", **context)
