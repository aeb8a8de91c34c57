"""`{{ value|krw }}` → "99,793,436원" / "KRW 99,793,436" by the active language; `signed_krw` adds "+"."""

from __future__ import annotations

from django import template

from trading_site.formatting import format_krw, format_krw_pattern

register = template.Library()


@register.filter
def krw(value) -> str:
    return format_krw(value)


@register.filter
def signed_krw(value) -> str:
    return format_krw(value, signed=True)


@register.simple_tag
def krw_pattern() -> str:
    """The amount pattern with an `{amount}` slot ("KRW {amount}" / "{amount}원"), for scripts that
    format live numbers in the page's language."""
    return format_krw_pattern()
