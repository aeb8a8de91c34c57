"""Are the static files collected for the configured storage?

With DEBUG off the pages name their CSS and scripts through the manifest that `collectstatic` writes
(hashed names, served by whitenoise). Without that manifest, or with one older than the sources,
every HTML page — the 404 page included — fails on its first `{% static %}` tag and answers 500.
The web server refuses to start instead (`trading_site.wsgi`), and `check --deploy` reports it, with
the command that fixes it.
"""

from __future__ import annotations

import os

from django.apps import apps
from django.conf import settings
from django.contrib.staticfiles.finders import get_finders
from django.contrib.staticfiles.storage import ManifestFilesMixin
from django.core.checks import Error, Tags, register
from django.core.exceptions import ImproperlyConfigured
from django.core.files.storage import storages

FIX = "run `python manage.py collectstatic --noinput` (scripts/serve does it on every start)"


def static_files_problem() -> str | None:
    """Why the pages cannot name their static files, or None when they can (or no manifest is used)."""
    try:
        storage = storages["staticfiles"]  # a manifest storage reads its manifest when it is created
        if not isinstance(storage, ManifestFilesMixin):
            return None  # DEBUG: plain names, files served from the sources
        manifest, _ = storage.load_manifest()
    except ValueError as error:
        return f"The static files manifest in STATIC_ROOT ({settings.STATIC_ROOT}) is unreadable ({error}): {FIX}."
    if not manifest:
        return f"The static files are not collected in STATIC_ROOT ({settings.STATIC_ROOT}): {FIX}."
    missing = sorted(set(_source_paths()) - set(manifest))
    if missing:
        example = ", ".join(missing[:3]) + (" …" if len(missing) > 3 else "")
        return (
            f"{len(missing)} static file(s) are newer than the collected set in STATIC_ROOT "
            f"({settings.STATIC_ROOT}), e.g. {example}: {FIX}."
        )
    return None


def _source_paths():
    """The names `collectstatic` would collect, as the manifest spells them (prefixes included)."""
    ignore_patterns = apps.get_app_config("staticfiles").ignore_patterns
    for finder in get_finders():
        for path, source_storage in finder.list(ignore_patterns):
            prefix = getattr(source_storage, "prefix", None)
            yield (os.path.join(prefix, path) if prefix else path).replace(os.sep, "/")


def ensure_static_files_collected() -> None:
    """Stop the web server's start with the reason, rather than answer 500 on every page."""
    problem = static_files_problem()
    if problem:
        raise ImproperlyConfigured(problem)


@register(Tags.staticfiles, deploy=True)
def check_static_files_collected(app_configs=None, **kwargs):
    problem = static_files_problem()
    return [Error(problem, id="trading_site.E001")] if problem else []
