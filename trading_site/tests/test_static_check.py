"""With DEBUG off the pages need the manifest `collectstatic` writes: without it (or with one older than the
sources) the web server refuses to start and `check --deploy` says so, instead of every page answering 500."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography.fernet import Fernet
from django.core.exceptions import ImproperlyConfigured

from trading_site.static_check import (
    _source_paths,
    check_static_files_collected,
    ensure_static_files_collected,
    static_files_problem,
)

ROOT = Path(__file__).resolve().parents[2]
MANIFEST_STORAGE = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"},
}


def write_manifest(static_root: Path, paths) -> None:
    """The manifest `collectstatic` writes, naming each file as itself (no need to hash for the check)."""
    content = {"version": "1.1", "paths": {path: path for path in paths}, "hash": ""}
    (static_root / "staticfiles.json").write_text(json.dumps(content), encoding="utf-8")


@pytest.fixture
def production_storage(settings, tmp_path):
    settings.STORAGES = MANIFEST_STORAGE
    settings.STATIC_ROOT = tmp_path
    return tmp_path


def test_nothing_to_check_with_the_debug_storage(settings):
    settings.STORAGES = {**MANIFEST_STORAGE, "staticfiles": {
        "BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"}}
    assert static_files_problem() is None


def test_not_collected_names_the_command(production_storage):
    problem = static_files_problem()
    assert "not collected" in problem and str(production_storage) in problem
    assert "manage.py collectstatic --noinput" in problem
    with pytest.raises(ImproperlyConfigured, match="collectstatic"):
        ensure_static_files_collected()
    [error] = check_static_files_collected()
    assert error.id == "trading_site.E001" and "collectstatic" in error.msg


def test_a_complete_manifest_passes(production_storage):
    sources = set(_source_paths())
    assert {"css/site.css", "favicon.ico", "vendor/htmx/htmx.min.js", "admin/css/base.css"} <= sources
    write_manifest(production_storage, sources)
    assert static_files_problem() is None
    assert check_static_files_collected() == []


def test_a_manifest_older_than_the_sources_is_caught(production_storage):
    write_manifest(production_storage, set(_source_paths()) - {"favicon.svg"})
    problem = static_files_problem()
    assert "1 static file(s) are newer than the collected set" in problem and "favicon.svg" in problem


def test_an_unreadable_manifest_is_caught(production_storage):
    (production_storage / "staticfiles.json").write_text("{not json", encoding="utf-8")
    assert "unreadable" in static_files_problem()


def test_the_wsgi_server_refuses_to_start_before_collectstatic(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "SECRET_KEY", "FIELD_ENC", "DEBUG"))}
    env.update({
        "ENV_FILE": "/nonexistent/.env", "DEBUG": "False", "SECRET_KEY": "s" * 60,
        "FIELD_ENCRYPTION_KEYS": Fernet.generate_key().decode(), "STATIC_ROOT": str(tmp_path),
    })
    result = subprocess.run([sys.executable, "-c", "import trading_site.wsgi"], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode != 0
    assert "ImproperlyConfigured: The static files are not collected" in result.stderr
    assert "manage.py collectstatic --noinput" in result.stderr
