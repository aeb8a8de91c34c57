"""전략 가이드: docs/strategies_kr.md (written by `manage.py strategy_guide`) rendered as a page.

The Markdown goes through Python-Markdown (tables, heading anchors for the table of contents) and
nh3 with a short allow-list, so even an edited file cannot put a script on the page. The rendered
HTML is cached per file modification time.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import markdown
import nh3
from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.http import Http404
from django.shortcuts import render
from django.utils.safestring import mark_safe
from django.utils.translation import gettext as _
from django.views.decorators.http import require_safe
from markdown.extensions.toc import slugify_unicode

ALLOWED_TAGS = {
    "p", "br", "hr", "h1", "h2", "h3", "h4", "strong", "em", "code", "pre", "blockquote", "ul", "ol", "li",
    "table", "thead", "tbody", "tr", "th", "td", "a",
}
ALLOWED_ATTRIBUTES = {
    "a": {"href", "title"}, "h1": {"id"}, "h2": {"id"}, "h3": {"id"}, "h4": {"id"},
    "th": {"style"}, "td": {"style"},  # column alignment (style attributes are allowed by the CSP)
}


def guide_path() -> Path:
    return Path(settings.BASE_DIR) / "docs" / "strategies_kr.md"


@lru_cache(maxsize=4)
def _rendered(path: str, mtime_ns: int) -> str:
    text = Path(path).read_text(encoding="utf-8")
    md = markdown.Markdown(
        extensions=["tables", "sane_lists", "toc"],
        extension_configs={"toc": {"slugify": slugify_unicode}},
        output_format="html",
    )
    html = nh3.clean(
        md.convert(text), tags=ALLOWED_TAGS, attributes=ALLOWED_ATTRIBUTES, url_schemes={"http", "https"},
        filter_style_properties={"text-align"}, link_rel=None, strip_comments=True,
    )
    # The site's table style, scrollable on small screens.
    return html.replace("<table>", '<div class="table-scroll"><table class="table compact">').replace(
        "</table>", "</table></div>"
    )


def guide_html() -> str:
    path = guide_path()
    try:
        mtime = path.stat().st_mtime_ns
    except FileNotFoundError:
        raise Http404(_("The strategy guide has not been generated (manage.py strategy_guide).")) from None
    return _rendered(str(path), mtime)


@login_required
@require_safe
def guide(request):
    """전략 가이드: every strategy's idea, rules, parameters and demo backtest."""
    return render(request, "strategies/guide.html", {"html": mark_safe(guide_html())})  # noqa: S308 - sanitised
