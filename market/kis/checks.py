"""Checks of a caller's input, before anything is sent to KIS (a bad value raises ValueError here
rather than a KIS refusal later). Shared by the API areas (orders, quotations, account)."""

from __future__ import annotations

import re

_CODE_RE = re.compile(r"^[0-9A-Z]{6}$")  # 6-char codes, incl. new alphanumeric ones such as 0039P0


def check_code(code: str) -> str:
    if not isinstance(code, str) or not _CODE_RE.match(code):
        raise ValueError("stock code must be 6 characters, digits or upper-case letters (e.g. '005930')")
    return code


def check_positive_int(value: int, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ValueError(f"{name} must be a positive int")
    return value
