"""Text frames of the KIS WebSocket, in and out (fact sheet §6.1, §6.2, §6.4). Pure functions, no I/O.

In: every text frame is one of
* a JSON control answer to a (un)registration: ``{"header": {"tr_id", "tr_key", "encrypt"}, "body": {"rt_cd",
  "msg_cd", "msg1", "output": {"iv", "key"}}}`` -- the AES key/iv of the TR arrive here;
* the JSON keep-alive ``{"header": {"tr_id": "PINGPONG", ...}}``, answered by sending the same text back;
* a data frame ``<enc>|<tr_id>|<count>|<payload>`` (not JSON): ``count`` records of ``^``-separated fields,
  AES-256-CBC encrypted and base64-encoded when ``enc`` is ``1`` (fill notices).

Out: registration messages (``tr_type`` "1" register, "2" unregister) carrying the approval key.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives import padding
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from ..masking import RedactingLogFilter
from .errors import RealtimeError, RealtimeProtocolError, error_for_answer
from .records import (
    FILL_NOTICE_TR,
    ORDER_BOOK_TR,
    TRADE_TR,
    FillNotice,
    OrderBook,
    Tick,
    parse_fill_notices,
    parse_order_books,
    parse_ticks,
)

logger = logging.getLogger("market.kis.realtime")
# Filters on a logger do not see records of its children, so this logger gets its own (see transport.logger).
logger.addFilter(RedactingLogFilter())

PINGPONG = "PINGPONG"
REGISTER = "1"
UNREGISTER = "2"  # the official code sends "2"; some newer docstrings say "0" (§6.1)
NOTICE_TRS = frozenset(FILL_NOTICE_TR.values())
KNOWN_TRS = frozenset({TRADE_TR, ORDER_BOOK_TR}) | NOTICE_TRS


@dataclass(frozen=True, slots=True)
class ControlAnswer:
    """KIS's answer to a registration or unregistration."""

    tr_id: str
    tr_key: str
    encrypted: bool  # header "encrypt": "Y" for the fill-notice TRs
    rt_cd: str
    msg_cd: str
    msg1: str
    key: str | None = None  # AES-256 key (32 chars) for this TR's encrypted frames
    iv: str | None = None  # AES iv (16 chars)

    @property
    def error(self) -> RealtimeError | None:
        return error_for_answer(tr_id=self.tr_id, tr_key=self.tr_key, rt_cd=self.rt_cd, msg_cd=self.msg_cd,
                                msg1=self.msg1)


@dataclass(frozen=True, slots=True)
class PingPong:
    """The keep-alive. ``text`` is the frame exactly as received: the answer is the same text."""

    text: str


@dataclass(frozen=True, slots=True)
class DataFrame:
    encrypted: bool
    tr_id: str
    count: int
    payload: str


Frame = ControlAnswer | PingPong | DataFrame
Record = Tick | OrderBook | FillNotice


def parse_frame(text: str) -> Frame:
    """Classify one text frame. Raises ``RealtimeProtocolError`` for anything that is neither JSON nor a
    well-formed data frame."""
    if text[:1] in ("0", "1"):
        parts = text.split("|", 3)
        if len(parts) != 4 or not parts[2].isdigit():
            raise RealtimeProtocolError("data frame without <enc>|<tr_id>|<count>|<payload>")
        return DataFrame(encrypted=parts[0] == "1", tr_id=parts[1], count=int(parts[2]), payload=parts[3])
    try:
        message = json.loads(text)
    except ValueError:
        raise RealtimeProtocolError("frame is neither JSON nor a data frame") from None
    if not isinstance(message, dict) or not isinstance(message.get("header"), dict):
        raise RealtimeProtocolError("JSON frame without a header")
    header: dict[str, Any] = message["header"]
    tr_id = _text(header.get("tr_id"))
    if tr_id == PINGPONG:
        return PingPong(text)
    body = message.get("body")
    if not isinstance(body, dict):
        raise RealtimeProtocolError("control answer without a body")
    output = body.get("output")
    output = output if isinstance(output, dict) else {}
    return ControlAnswer(
        tr_id=tr_id,
        tr_key=_text(header.get("tr_key")),
        encrypted=_text(header.get("encrypt")).upper() == "Y",
        rt_cd=_text(body.get("rt_cd")),
        msg_cd=_text(body.get("msg_cd")),
        msg1=_text(body.get("msg1")),
        key=_text(output.get("key")) or None,
        iv=_text(output.get("iv")) or None,
    )


def subscription_message(approval_key: str, tr_id: str, tr_key: str, *, register: bool = True) -> str:
    """The JSON text that registers (``tr_type`` "1") or unregisters ("2") one (TR, key) pair (§6.1)."""
    return json.dumps({
        "header": {"approval_key": approval_key, "custtype": "P", "tr_type": REGISTER if register else UNREGISTER,
                   "content-type": "utf-8"},
        "body": {"input": {"tr_id": tr_id, "tr_key": tr_key}},
    }, separators=(",", ":"))


def register_message(approval_key: str, tr_id: str, tr_key: str) -> str:
    return subscription_message(approval_key, tr_id, tr_key, register=True)


def unregister_message(approval_key: str, tr_id: str, tr_key: str) -> str:
    return subscription_message(approval_key, tr_id, tr_key, register=False)


def decrypt_payload(payload: str, key: str, iv: str) -> str:
    """base64 → AES-256-CBC (key/iv from the TR's subscribe answer, UTF-8 bytes) → PKCS#7 unpad → UTF-8 (§6.4)."""
    try:
        ciphertext = base64.b64decode(payload, validate=True)
        decryptor = Cipher(algorithms.AES(key.encode("utf-8")), modes.CBC(iv.encode("utf-8"))).decryptor()
        padded = decryptor.update(ciphertext) + decryptor.finalize()
        unpadder = padding.PKCS7(algorithms.AES.block_size).unpadder()
        return (unpadder.update(padded) + unpadder.finalize()).decode("utf-8")
    except (binascii.Error, ValueError) as exc:  # bad base64, wrong key/iv length, bad padding, not UTF-8
        raise RealtimeProtocolError(f"cannot decrypt the payload ({type(exc).__name__})") from None


def encrypt_payload(plaintext: str, key: str, iv: str) -> str:
    """The inverse of :func:`decrypt_payload` (what KIS does; used by the fake server and tests)."""
    padder = padding.PKCS7(algorithms.AES.block_size).padder()
    padded = padder.update(plaintext.encode("utf-8")) + padder.finalize()
    encryptor = Cipher(algorithms.AES(key.encode("utf-8")), modes.CBC(iv.encode("utf-8"))).encryptor()
    return base64.b64encode(encryptor.update(padded) + encryptor.finalize()).decode("ascii")


_unknown_trs_logged: set[str] = set()


def decode_records(frame: DataFrame, aes: tuple[str, str] | None = None) -> list[Record]:
    """The typed records of one data frame. ``aes`` is the (key, iv) of the frame's TR, needed when the
    frame is encrypted. A TR this client does not know is logged (once per TR) and skipped: ``[]``."""
    payload = frame.payload
    if frame.encrypted:
        if aes is None:
            raise RealtimeProtocolError("encrypted frame before its TR's AES key arrived", tr_id=frame.tr_id)
        payload = decrypt_payload(payload, *aes)
    if frame.tr_id == TRADE_TR:
        return list(parse_ticks(payload, frame.count))
    if frame.tr_id == ORDER_BOOK_TR:
        return list(parse_order_books(payload, frame.count))
    if frame.tr_id in NOTICE_TRS:
        return list(parse_fill_notices(payload, frame.count))
    if frame.tr_id not in _unknown_trs_logged:
        _unknown_trs_logged.add(frame.tr_id)
        logger.warning("KIS real-time frame of an unknown TR %r skipped (logged once per TR)", frame.tr_id)
    return []


def _text(value: Any) -> str:
    return str(value).strip() if value is not None else ""
