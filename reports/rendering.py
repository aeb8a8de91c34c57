"""Showing a report's text safely, and checking the numbers it quotes against the facts.

The text (the model's or the template's) is untrusted Markdown:
- raw HTML in it is not interpreted but shown as text (Python-Markdown's HTML block and inline
  HTML handlers are removed), and the HTML Markdown produces goes through nh3 (ammonia) with a short
  allow-list: no script, style, iframe, img, event handler or `javascript:` link survives;
- every number of the text (12,345원, 1.23%, 1.2억, 3,400만원, -0.87 …) is compared with the
  numbers of the facts, within the precision the text shows (1.2% matches 1.23; 1,235만 matches
  12,345,678). Dates, ISO weeks, stock codes and list numbers are not numbers to check, and small
  integers (|n| ≤ 10) are too ambiguous to flag. A number that matches nothing is "unverified":
  stored on the report, listed on its page and highlighted in the text.
"""

from __future__ import annotations

import bisect
import html
import math
import re
from dataclasses import dataclass

import markdown
import nh3
from django.utils.safestring import SafeString, mark_safe

ALLOWED_TAGS = {
    "p", "br", "hr", "h1", "h2", "h3", "h4", "h5", "h6", "strong", "em", "b", "i", "del", "code", "pre",
    "blockquote", "ul", "ol", "li", "table", "thead", "tbody", "tr", "th", "td", "a",
}
ALLOWED_ATTRIBUTES = {"a": {"href", "title"}, "th": {"align"}, "td": {"align"}, "ol": {"start"}}
URL_SCHEMES = {"http", "https", "mailto"}
SMALL_INTEGER = 10


def _markdown() -> markdown.Markdown:
    md = markdown.Markdown(extensions=["tables", "sane_lists"], output_format="html")
    md.preprocessors.deregister("html_block")  # raw HTML blocks become text
    md.inlinePatterns.deregister("html")  # and so do inline tags
    return md


def sanitize_html(fragment: str) -> str:
    return nh3.clean(
        fragment, tags=ALLOWED_TAGS, attributes=ALLOWED_ATTRIBUTES, url_schemes=URL_SCHEMES,
        link_rel="noopener noreferrer nofollow", strip_comments=True,
    )


def markdown_to_html(text: str) -> str:
    """Sanitised HTML of untrusted Markdown (a plain str; see `render_report`)."""
    return sanitize_html(_markdown().convert(text or ""))


# ----------------------------------------------------------------------------------------------- numbers
UNITS = {"조": 10**12, "억": 10**8, "천만": 10**7, "백만": 10**6, "십만": 10**5, "만": 10**4, "천": 10**3}
# A number: optional sign, digits with thousands separators, optional decimals; then an optional
# Korean unit (조/억/만/천) and an optional % (or 퍼센트).
NUMBER = re.compile(
    r"(?<![\d.,A-Za-z])(?P<sign>[-−–+]?)(?P<num>\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d+(?:\.\d+)?)"
    r"(?P<unit>\s?(?:조|억|천만|백만|십만|만|천))?(?P<pct>\s?(?:%|퍼센트|％))?"
)
IGNORED = [
    re.compile(r"\d{4}\s*[-./]\s*\d{1,2}\s*[-./]\s*\d{1,2}"),  # 2026-11-24, 2026.11.24
    re.compile(r"\d{4}\s*-?\s*W\d{1,2}", re.IGNORECASE),  # 2026-W48
    re.compile(r"\bW\d{1,2}\b", re.IGNORECASE),
    re.compile(r"\d{4}\s*년|\d{1,2}\s*월|\d{1,2}\s*일(?!간)|\d{1,2}\s*주차|\d{1,2}\s*시|\d{1,2}\s*분"),
    re.compile(r"\d{1,2}/\d{1,2}"),  # 11/24
    re.compile(r"(?m)^\s*(?:#+\s*)?\d+[.)]\s"),  # list numbers, numbered headings
    re.compile(r"(?<!\d)\d{6}(?!\d)"),  # stock codes (checked against the facts' codes below)
    re.compile(r"gpt-[\w.-]+|[A-Za-z]+-?\d+[A-Za-z]*"),  # model names and the like
]


@dataclass(frozen=True)
class QuotedNumber:
    text: str  # as written, e.g. "1.2억"
    value: float  # absolute value in the facts' unit (KRW, percent points, plain)
    tolerance: float
    percent: bool


def _quoted_numbers(text: str) -> list[QuotedNumber]:
    masked = text
    for pattern in IGNORED:
        masked = pattern.sub(lambda m: " " * len(m.group(0)), masked)
    found: list[QuotedNumber] = []
    matches = list(NUMBER.finditer(masked))
    index = 0
    while index < len(matches):
        match = matches[index]
        digits = match["num"].replace(",", "")
        decimals = len(digits.split(".")[1]) if "." in digits else 0
        unit = (match["unit"] or "").strip()
        value = float(digits) * UNITS.get(unit, 1)
        step = 10**-decimals * UNITS.get(unit, 1)
        end = match.end()
        # A compound Korean amount: "1억 2,345만원" is one number.
        while unit and index + 1 < len(matches):
            following = matches[index + 1]
            next_unit = (following["unit"] or "").strip()
            gap = masked[end:following.start()]
            if gap.strip() or (next_unit and UNITS[next_unit] >= UNITS[unit]) or following["sign"]:
                break
            next_digits = following["num"].replace(",", "")
            next_decimals = len(next_digits.split(".")[1]) if "." in next_digits else 0
            value += float(next_digits) * UNITS.get(next_unit, 1)
            step = 10**-next_decimals * UNITS.get(next_unit, 1)
            unit, end, index = next_unit, following.end(), index + 1
            if not next_unit:
                break
        percent = bool(match["pct"]) or bool(matches[index]["pct"])
        found.append(QuotedNumber(text[match.start():end].strip(), abs(value), step, percent))
        index += 1
    return found


def _fact_numbers(facts) -> tuple[list[float], set[str], set[str]]:
    """Every number of the facts (absolute values), parameters also as percentages; stock codes;
    names (stock and strategy names may contain digits: "데모푸드 30" is not a number to check)."""
    numbers: list[float] = []
    codes: set[str] = set()
    names: set[str] = set()

    def walk(value, key: str = "", in_params: bool = False) -> None:
        if isinstance(value, bool) or value is None:
            return
        if isinstance(value, int | float):
            if isinstance(value, float) and not math.isfinite(value):
                return
            numbers.append(abs(float(value)))
            if in_params and isinstance(value, float) and abs(value) <= 1:
                numbers.append(abs(value) * 100)
            return
        if isinstance(value, str):
            if key == "code" and value.isdigit():
                codes.add(value)
            elif key in ("name", "strategy", "label") and any(ch.isdigit() for ch in value):
                names.add(value)
            return
        if isinstance(value, dict):
            for child_key, child in value.items():
                walk(child, child_key, in_params or child_key == "parameters")
        elif isinstance(value, list | tuple):
            for child in value:
                walk(child, key, in_params)

    walk(facts)
    # Numbers the model may fairly derive by reading: counts of the lists.
    for key in ("trades", "positions_before", "positions_after", "strategies"):
        if isinstance(facts.get(key), list):
            numbers.append(float(len(facts[key])))
    return sorted(set(numbers)), codes, names


def _matches(quoted: QuotedNumber, numbers: list[float]) -> bool:
    # Accept rounding and truncation to the shown precision, plus a hair for float noise.
    tolerance = quoted.tolerance + 1e-9
    low, high = quoted.value - tolerance, quoted.value + tolerance
    position = bisect.bisect_left(numbers, low)
    return position < len(numbers) and numbers[position] <= high


def check_numbers(text: str, facts: dict) -> list[dict]:
    """The numbers of `text` that match no number of `facts`: [{"text": "12.3%", "value": 12.3}, ...],
    in the order they appear, each distinct text once."""
    numbers, codes, names = _fact_numbers(facts)
    text = text or ""
    for name in sorted(names, key=len, reverse=True):
        text = text.replace(name, " " * len(name))
    unverified: list[dict] = []
    seen: set[str] = set()
    for code in re.findall(r"(?<!\d)\d{6}(?!\d)", text):
        if code not in codes and code not in seen and not _matches(QuotedNumber(code, float(code), 1, False), numbers):
            seen.add(code)
            unverified.append({"text": code, "value": float(code)})
    for quoted in _quoted_numbers(text):
        if not quoted.percent and quoted.tolerance >= 1 and quoted.value <= SMALL_INTEGER:
            continue
        if _matches(quoted, numbers) or quoted.text in seen:
            continue
        seen.add(quoted.text)
        unverified.append({"text": quoted.text, "value": quoted.value})
    return unverified


def _highlight(fragment: str, unverified: list[dict]) -> str:
    """Wrap the unverified numbers in <mark>, in text nodes only (never inside a tag)."""
    if not unverified:
        return fragment
    texts = sorted({html.escape(item["text"], quote=False) for item in unverified}, key=len, reverse=True)
    pattern = re.compile(r"(?<![\d.,])(?:" + "|".join(re.escape(t) for t in texts) + r")(?![\d.,]*\d)")
    title = html.escape("사실 자료에서 확인되지 않은 숫자입니다", quote=True)
    parts = re.split(r"(<[^>]*>)", fragment)
    for i, part in enumerate(parts):
        if part.startswith("<"):
            continue
        parts[i] = pattern.sub(lambda m: f'<mark class="number-unverified" title="{title}">{m.group(0)}</mark>', part)
    return "".join(parts)


def render_report(text: str, unverified: list[dict] | None = None) -> SafeString:
    """The report's HTML for a page or an e-mail: sanitised, unverified numbers highlighted."""
    return mark_safe(_highlight(markdown_to_html(text), unverified or []))  # noqa: S308 - sanitised above
