"""Number formatting of the report pages and the plain (fallback) report text."""

from __future__ import annotations

from django import template

from reports.labels import fact_label as label_of_fact

register = template.Library()

DASH = "–"


@register.filter
def won(value) -> str:
    """Integer KRW with thousands separators: 1234567 → "1,234,567"; None → "–"."""
    if value is None or value == "":
        return DASH
    try:
        return f"{int(value):,}"
    except (TypeError, ValueError):
        return DASH


@register.filter
def signed_won(value) -> str:
    """Like `won` with an explicit sign: "+1,234" / "-1,234"."""
    if value is None or value == "":
        return DASH
    try:
        return f"{int(value):+,}"
    except (TypeError, ValueError):
        return DASH


@register.filter
def pct(value) -> str:
    """A percentage value (already ×100) with sign and 2 decimals: 1.2 → "+1.20%"; None → "–"."""
    if value is None or value == "":
        return DASH
    try:
        return f"{float(value):+.2f}%"
    except (TypeError, ValueError):
        return DASH


@register.filter
def plain_pct(value) -> str:
    """A percentage value without sign: 12.5 → "12.50%"."""
    if value is None or value == "":
        return DASH
    try:
        return f"{float(value):.2f}%"
    except (TypeError, ValueError):
        return DASH


@register.filter
def tone(value) -> str:
    """CSS class for a signed number: "up" (red, Korean convention), "down" (blue) or ""."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        return ""
    return "up" if number > 0 else "down" if number < 0 else ""


@register.filter
def fact_label(value):
    """A Korean label of the report's facts (side, reason, status, benchmark, …) in the page's language."""
    return label_of_fact(value)
