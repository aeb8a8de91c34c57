"""How credentials are shown back: never in full (pure functions, no Django)."""

from __future__ import annotations


def mask_app_key(value: str) -> str:
    if not value:
        return ""
    return value[:4] + "*" * 8


def mask_secret(value: str) -> str:
    return "********" if value else ""


def mask_account_number(account_number: str, product_code: str = "") -> str:
    if not account_number:
        return ""
    masked = account_number[:4] + "*" * max(len(account_number) - 4, 0)
    return f"{masked}-{product_code}" if product_code else masked
