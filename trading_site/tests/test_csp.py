"""The Content-Security-Policy header on every page, and templates without inline code it would block.
(test_browser_csp.py drives the pages in Chromium under it.)"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from django.conf import settings

pytestmark = pytest.mark.django_db


def directives(response) -> dict[str, list[str]]:
    header = response.headers["Content-Security-Policy"]
    return {name: values for name, *values in (part.split() for part in header.split(";") if part.strip())}


def test_the_policy_on_a_page(client):
    policy = directives(client.get("/accounts/login/"))
    assert policy["default-src"] == ["'self'"]
    assert policy["script-src"] == ["'self'"]  # no nonce unless a template asks for one; no eval, no inline
    assert policy["style-src"] == ["'self'"]
    assert policy["style-src-attr"] == ["'unsafe-inline'"]  # style attributes only, see settings
    assert policy["img-src"] == ["'self'", "data:"]
    assert policy["object-src"] == ["'none'"]
    assert policy["base-uri"] == ["'self'"]
    assert policy["frame-ancestors"] == ["'none'"]
    assert policy["form-action"] == ["'self'", "https://kauth.kakao.com", "https://accounts.kakao.com"]


def test_the_policy_on_the_404_page_and_the_api(client, user):
    response = client.get("/no-such-page/")
    assert response.status_code == 404 and directives(response)["script-src"] == ["'self'"]
    client.force_login(user)
    for path in ("/", "/api/me/", "/api/docs/"):
        response = client.get(path)
        assert response.status_code == 200, path
        assert directives(response)["default-src"] == ["'self'"], path


TEMPLATE_DIRS = [Path(settings.BASE_DIR) / "templates"] + [
    Path(settings.BASE_DIR) / app / "templates" for app in ("accounts", "market", "strategies", "orders", "reports")
]
COMMENTS = re.compile(r"\{#.*?#\}|\{% comment %\}.*?\{% endcomment %\}", re.S)
EMAIL_TEMPLATES = {"email_body.html"}  # read in a mail client, not under the site's policy
INLINE_CODE = [
    (re.compile(r"<script\b(?![^>]*\bsrc=)(?![^>]*\bnonce=)(?![^>]*application/json)[^>]*>", re.I), "inline <script>"),
    (re.compile(r"<style\b(?![^>]*\bnonce=)[^>]*>", re.I), "inline <style>"),
    (re.compile(r"\son[a-z]+\s*=\s*[\"']", re.I), "event handler attribute"),
    (re.compile(r"javascript:", re.I), "javascript: URL"),
    (re.compile(r"\bhx-on\b|hx-on:|hx-vals=[\"']js:|hx-vars=", re.I), "HTMX attribute that needs eval"),
]


def test_templates_hold_no_inline_code_the_policy_blocks():
    templates = [path for folder in TEMPLATE_DIRS for path in folder.rglob("*.html") if path.name not in EMAIL_TEMPLATES]
    assert len(templates) > 30
    found = [
        f"{path.relative_to(settings.BASE_DIR)}: {what}: {match.group(0)!r}"
        for path in templates
        for pattern, what in INLINE_CODE
        for match in pattern.finditer(COMMENTS.sub("", path.read_text(encoding="utf-8")))
    ]
    assert found == []
