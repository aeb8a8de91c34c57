"""A logging filter that masks broker secrets wherever they appear in a log line."""

from __future__ import annotations

import logging
import re

# KIS app secrets and JWT/KIS access tokens are long base64-ish runs; account numbers are 8 digits
# followed by a 2-digit product code. Masking by shape catches them even in third-party log lines.
_PATTERNS = [
    (re.compile(r"(?i)(appsecret|app_secret|secret|authorization|access_token|token|password)(['\"]?\s*[:=]\s*['\"]?(?:Bearer\s+)?)([^'\"\s,&}]+)"), r"\1\2***"),
    (re.compile(r"\b(\d{4})\d{4}(-?\d{2})\b"), r"\1****\2"),
]


def mask_secrets(text: str) -> str:
    for pattern, replacement in _PATTERNS:
        text = pattern.sub(replacement, text)
    return text


class MaskSecretsFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a malformed record is logged as is rather than dropped
            return True
        masked = mask_secrets(message)
        if masked != message:
            record.msg, record.args = masked, None
        return True
