"""The Korean catalogue is complete and compiled: every message the code and templates mark for
translation is in locale/ko with a Korean text that is neither empty nor fuzzy, and the committed .mo
is the compilation of the .po. Fix a failure with:

    manage.py makemessages -l ko -i '.venv/*' -i 'node_modules/*' -i 'static/vendor/*'
    (translate the new, empty and fuzzy entries in locale/ko/LC_MESSAGES/django.po)
    msgfmt --check-format -o locale/ko/LC_MESSAGES/django.mo locale/ko/LC_MESSAGES/django.po
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import polib
import pytest
from django.conf import settings
from django.core.management import call_command

PO = Path(settings.BASE_DIR) / "locale" / "ko" / "LC_MESSAGES" / "django.po"
MO = PO.with_suffix(".mo")
# What makemessages should not read: the project's own locale (the copy is merged instead), installed
# packages, npm's files, vendored and collected static files, run-time data.
NOT_SOURCES = {"locale", ".venv", "node_modules", "staticfiles", "var", ".git", ".ci", "static", "docs"}

pytestmark = pytest.mark.skipif(shutil.which("xgettext") is None, reason="GNU gettext is not installed")


def entries(po: polib.POFile) -> dict[tuple[str | None, str], polib.POEntry]:
    return {(entry.msgctxt, entry.msgid): entry for entry in po if not entry.obsolete and entry.msgid}


def label(key: tuple[str | None, str]) -> str:
    context, msgid = key
    return f"[{context}] {msgid!r}" if context else repr(msgid)


@pytest.fixture(scope="module")
def extracted(tmp_path_factory) -> polib.POFile:
    """makemessages over a tree of links to the project's sources, merged into a copy of the catalogue:
    the catalogue as it would be after running makemessages now (the real one is left alone)."""
    root = tmp_path_factory.mktemp("i18n")
    tree = root / "tree"
    tree.mkdir()
    base = Path(settings.BASE_DIR)
    for path in base.iterdir():
        if path.name not in NOT_SOURCES and (path.is_dir() or path.suffix in {".py", ".html", ".txt"}):
            (tree / path.name).symlink_to(path)
    locale = root / "locale"
    (locale / "ko" / "LC_MESSAGES").mkdir(parents=True)
    shutil.copy(PO, locale / "ko" / "LC_MESSAGES" / "django.po")
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(tree)  # makemessages reads the current directory
        patch.setattr(settings, "LOCALE_PATHS", [str(locale)])
        call_command("makemessages", locale=["ko"], symlinks=True, no_location=True, verbosity=0,
                     ignore_patterns=["static/vendor/*"])
    return polib.pofile(str(locale / "ko" / "LC_MESSAGES" / "django.po"))


def test_every_marked_message_is_in_the_catalogue(extracted):
    committed = entries(polib.pofile(str(PO)))
    missing = [label(key) for key in entries(extracted) if key not in committed]
    assert not missing, "not in locale/ko (run makemessages and translate):\n" + "\n".join(missing)


def test_every_message_has_a_korean_translation(extracted):
    untranslated = [label(key) for key, entry in entries(extracted).items() if not entry.translated()]
    fuzzy = [label(key) for key, entry in entries(extracted).items() if entry.fuzzy]
    assert not untranslated, "no Korean text:\n" + "\n".join(untranslated)
    assert not fuzzy, "fuzzy (a guessed translation; check it and drop the flag):\n" + "\n".join(fuzzy)


def test_the_committed_catalogue_has_no_untranslated_or_fuzzy_entry():
    po = polib.pofile(str(PO))
    bad = [label(key) for key, entry in entries(po).items() if entry.fuzzy or not entry.translated()]
    assert not bad, "untranslated or fuzzy in django.po:\n" + "\n".join(bad)


def test_the_committed_mo_is_the_compiled_po(tmp_path):
    compiled = tmp_path / "django.mo"
    subprocess.run(["msgfmt", "--check-format", "-o", str(compiled), str(PO)], check=True)

    def messages(path: Path) -> dict:
        return {(e.msgctxt, e.msgid): e.msgstr for e in polib.mofile(str(path)) if e.msgid}

    stale = sorted(set(messages(compiled).items()) ^ set(messages(MO).items()))
    assert not stale, "django.mo is not the compiled django.po (run msgfmt):\n" + "\n".join(map(str, stale[:20]))
