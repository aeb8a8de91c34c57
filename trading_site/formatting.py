"""Amounts of money as the active language writes them: "99,793,436원" in Korean, "KRW 99,793,436" in
English. One helper for templates (the `krw` filter in `money`) and for Python-made UI text, so every
page writes amounts the same way; the words come from the message catalogue (locale/ko)."""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal, InvalidOperation

from django.utils.translation import pgettext

DASH = "–"


def _whole_won(value) -> int | None:
    """An amount as whole won (half rounds away from zero), or None when it is not a number."""
    if value is None or value == "" or isinstance(value, bool):
        return None
    try:
        return int(Decimal(str(value)).quantize(Decimal(1), rounding=ROUND_HALF_UP))
    except (InvalidOperation, ValueError, TypeError):
        return None


def format_krw(value, signed: bool = False) -> str:
    """`value` won with thousands separators and the currency the language's way; None → "–".

    The sign goes in front of everything ("-1,234원", "-KRW 1,234"); `signed` adds "+" to gains."""
    amount = _whole_won(value)
    if amount is None:
        return DASH
    sign = "-" if amount < 0 else "+" if signed and amount > 0 else ""
    # Translators: an amount of Korean won; Korean writes "%(amount)s원".
    return sign + pgettext("money", "KRW %(amount)s") % {"amount": f"{abs(amount):,}"}


def format_krw_pattern() -> str:
    """The language's amount pattern with an `{amount}` slot: "KRW {amount}" / "{amount}원"."""
    return pgettext("money", "KRW %(amount)s") % {"amount": "{amount}"}
