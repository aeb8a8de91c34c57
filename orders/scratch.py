"""Scratch databases for the drills (`crash_drill`, `order_storm`): never the configured database. A
temporary SQLite file, or on MySQL/MariaDB a database next to the configured one named
``test_<name>_<purpose>`` (the prefix that test-database grants cover), dropped afterwards."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import quote

from django.conf import settings
from django.db import connections


class ScratchError(Exception):
    """The configured database engine has no scratch database here."""


def scratch_name(name: str, purpose: str) -> str:
    base = name if name.startswith("test_") else f"test_{name}"
    return f"{base}_{purpose}"[:64]


def mysql_url(db: dict, name: str) -> str:
    """A DATABASE_URL for database `name` on the server and with the credentials of settings `db`."""
    user, password = quote(db.get("USER") or "", safe=""), quote(db.get("PASSWORD") or "", safe="")
    credentials = f"{user}:{password}@" if user else ""
    host = db.get("HOST") or "127.0.0.1"
    port = f":{db['PORT']}" if db.get("PORT") else ""
    return f"mysql://{credentials}{host}{port}/{name}"


@contextmanager
def scratch_database(purpose: str, *, keep: bool = False, database_url: str | None = None
                     ) -> Iterator[tuple[str, Path]]:
    """(a DATABASE_URL for the drill's own database, a scratch folder). With `database_url`, that
    database is used as it is (migrated and written to, never dropped). `keep` keeps both."""
    folder = Path(tempfile.mkdtemp(prefix=f"{purpose}-"))
    db = settings.DATABASES["default"]
    engine = db["ENGINE"]
    try:
        if database_url:
            yield database_url, folder
            return
        if engine.endswith("sqlite3"):
            yield f"sqlite:///{folder / f'{purpose}.sqlite3'}", folder
            return
        if not engine.endswith("mysql"):
            raise ScratchError(f"the {purpose} supports SQLite and MySQL/MariaDB, not {engine}")
        name = scratch_name(db["NAME"], purpose)
        # A connection of its own, without a database: CREATE/DROP DATABASE commit implicitly on MySQL
        # and must not touch the caller's connection (or a test's transaction).
        with connections["default"]._nodb_cursor() as cursor:
            cursor.execute(f"DROP DATABASE IF EXISTS `{name}`")
            cursor.execute(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci")
        try:
            yield mysql_url(db, name), folder
        finally:
            if not keep:
                with connections["default"]._nodb_cursor() as cursor:
                    cursor.execute(f"DROP DATABASE IF EXISTS `{name}`")
    finally:
        if not keep:
            shutil.rmtree(folder, ignore_errors=True)
