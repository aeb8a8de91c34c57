"""Masking of KIS secrets for logs, error messages and reprs.

What counts as secret here: the app key and app secret (they identify and authorise the customer),
access tokens (bearer credentials valid for ~24 h), and the full account number (only the first four
digits may be shown). KIS itself sometimes echoes request values back in ``msg1``, and urllib3 logs full
URLs (which carry ``CANO=<account>`` on every trading GET) at DEBUG level, so masking has to work on
arbitrary text as well as on values we know.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Iterable, Mapping

MASK = "****"

# Header names whose values are credentials (compared lower-case; HTTP header names are case-insensitive).
SENSITIVE_HEADER_NAMES = frozenset(
    {
        "authorization",
        "appkey",
        "appsecret",
        "secretkey",
        "approval_key",
        "hashkey",
        "personalseckey",
        "cookie",
        "set-cookie",
    }
)

# Body / query keys that carry account numbers or credentials (compared upper-case).
SENSITIVE_FIELD_NAMES = frozenset({"CANO", "APPKEY", "APPSECRET", "SECRETKEY", "TOKEN", "ACCESS_TOKEN"})

# Patterns for secrets we may not know by value (e.g. a token issued by another process).
_BEARER_RE = re.compile(r"(?i)(bearer\s+)[A-Za-z0-9\-._~+/]+=*")
_JWT_RE = re.compile(r"eyJ[A-Za-z0-9_\-]{4,}\.[A-Za-z0-9_\-]{4,}\.[A-Za-z0-9_\-]*")
# CANO in a query string (CANO=50123456), a JSON body ("CANO": "50123456") or a repr ('CANO': '50123456').
_CANO_RE = re.compile(r"""(?i)(\bCANO["']?\s*[=:]\s*["']?)(\d{4})\d{4}""")
_SECRET_FIELD_RE = re.compile(
    r"""(?i)(\b(?:appsecret|secretkey|access_token|appkey)["']?\s*[=:]\s*["']?)[^"'&\s,}]+"""
)


def mask_account(account_no: str) -> str:
    """``"12345678"`` -> ``"1234****"``; ``"12345678-01"`` -> ``"1234****-01"`` (product code is not secret)."""
    value = (account_no or "").strip()
    if not value:
        return ""
    head, sep, product = value.partition("-")
    if len(head) <= 4:
        return MASK + (sep + product if sep else "")
    return head[:4] + "*" * (len(head) - 4) + (sep + product if sep else "")


def mask_secret(value: str | None, visible: int = 4) -> str:
    """Show at most the first ``visible`` characters of a long secret, never of a short one.

    A prefix of a 36-char app key or a 180-char secret is enough to tell two configured keys apart in a log,
    and is useless to an attacker; short values are masked completely.
    """
    if not value:
        return ""
    if len(value) < 16:
        return MASK
    return value[:visible] + MASK


def safe_headers(headers: Mapping[str, str] | None) -> dict[str, str]:
    """A copy of ``headers`` that can be logged: credential headers are masked, others kept as they are."""
    if not headers:
        return {}
    safe: dict[str, str] = {}
    for name, value in headers.items():
        lowered = name.lower()
        if lowered in SENSITIVE_HEADER_NAMES:
            if lowered == "authorization" and str(value).lower().startswith("bearer "):
                safe[name] = "Bearer " + MASK
            else:
                safe[name] = mask_secret(str(value))
        else:
            safe[name] = str(value)
    return safe


def safe_fields(fields: Mapping[str, object] | None) -> dict[str, object]:
    """A loggable copy of a query/body dict: the account number is masked, credentials removed."""
    if not fields:
        return {}
    safe: dict[str, object] = {}
    for name, value in fields.items():
        upper = name.upper()
        if upper == "CANO":
            safe[name] = mask_account(str(value))
        elif upper in SENSITIVE_FIELD_NAMES:
            safe[name] = mask_secret(str(value))
        else:
            safe[name] = value
    return safe


class SecretRedactor:
    """Replaces known secret values, and secret-looking patterns, in free text.

    KIS clients register their own app key, secret, account number and every token they see; the redactor
    is then applied to ``msg1`` texts, exception messages and (through :class:`RedactingLogFilter`) to log
    records. Known values are replaced first (exact, no false negatives), patterns second.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._replacements: dict[str, str] = {}

    def register(self, value: str | None, replacement: str | None = None) -> None:
        # Very short values would turn ordinary words into "****"; nothing we register is that short
        # except by misconfiguration, and masking it would not protect anything.
        if not value or len(value) < 6:
            return
        with self._lock:
            self._replacements[value] = replacement if replacement is not None else mask_secret(value)

    def register_account(self, account_no: str, product_code: str = "") -> None:
        self.register(account_no, mask_account(account_no))
        if product_code:
            self.register(account_no + product_code, mask_account(account_no) + product_code)
            self.register(f"{account_no}-{product_code}", mask_account(f"{account_no}-{product_code}"))

    def register_many(self, values: Iterable[str | None]) -> None:
        for value in values:
            self.register(value)

    def redact(self, text: object) -> str:
        if text is None:
            return ""
        result = str(text)
        if not result:
            return result
        with self._lock:
            # Longest first so a token that contains the app key (or an account inside a longer string)
            # is replaced as a whole.
            items = sorted(self._replacements.items(), key=lambda kv: len(kv[0]), reverse=True)
        for secret, replacement in items:
            if secret in result:
                result = result.replace(secret, replacement)
        result = _BEARER_RE.sub(lambda m: m.group(1) + MASK, result)
        result = _JWT_RE.sub(MASK, result)
        result = _CANO_RE.sub(lambda m: m.group(1) + m.group(2) + MASK, result)
        result = _SECRET_FIELD_RE.sub(lambda m: m.group(1) + MASK, result)
        return result


# One process-wide redactor: every KisClient registers its secrets here, so a log filter installed once
# (e.g. in Django's LOGGING) masks them in records from any logger, including urllib3's URL logging.
default_redactor = SecretRedactor()


class RedactingLogFilter(logging.Filter):
    """Logging filter that rewrites each record's message (and formatted traceback) through a redactor.

    Attach it to *handlers* (a filter on a logger does not see records propagated from child loggers such
    as ``urllib3.connectionpool``).
    """

    def __init__(self, redactor: SecretRedactor | None = None, name: str = "") -> None:
        super().__init__(name)
        self._redactor = redactor or default_redactor

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except (TypeError, ValueError, KeyError):  # a broken format string must not drop the record
            message = str(record.msg)
        record.msg = self._redactor.redact(message)
        record.args = None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = self._redactor.redact(record.exc_text)
        if record.stack_info:
            record.stack_info = self._redactor.redact(record.stack_info)
        return True
