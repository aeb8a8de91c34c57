"""Number formatting for the market pages."""

from __future__ import annotations

from django import template

register = template.Library()


@register.filter
def percent(value, digits: int = 2) -> str:
    """A fraction as a percentage: 0.01234 → "1.23%"; None → "–"."""
    if value is None or value == "":
        return "–"
    try:
        return f"{float(value) * 100:.{int(digits)}f}%"
    except (TypeError, ValueError):
        return "–"


@register.filter
def signed_percent(value, digits: int = 2) -> str:
    """Like `percent` with an explicit sign: 0.0123 → "+1.23%"."""
    if value is None or value == "":
        return "–"
    try:
        return f"{float(value) * 100:+.{int(digits)}f}%"
    except (TypeError, ValueError):
        return "–"


@register.filter
def number(value, digits: int = 2) -> str:
    """A float with fixed decimals; None → "–"."""
    if value is None or value == "":
        return "–"
    try:
        return f"{float(value):.{int(digits)}f}"
    except (TypeError, ValueError):
        return "–"
