"""Where KIS access tokens are kept between calls, threads and processes.

KIS allows one token issuance per minute per app key (EGW00133) and sends the account owner a KakaoTalk
notice for each real-account issuance, so a token is issued once and shared. ``lock(key)`` makes
"check the store, issue if needed, save" atomic: the first caller issues while the others wait on the lock
and then find the fresh token in the store.

Keys are opaque strings chosen by the client (a hash of base URL + app key); stores must not try to
interpret them. Values are bearer credentials: a persistent store should encrypt them at rest.

Under a caller's deadline (``market.kis.deadline``) ``lock`` waits at most the time left and then raises
``KisDeadlineExceeded``: another process may hold the lock for a minute while it waits out KIS's
one-per-minute issuance limit, which a web request cannot afford.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import tempfile
import threading
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Protocol, runtime_checkable

from . import deadline


@runtime_checkable
class TokenStore(Protocol):
    def get(self, key: str) -> tuple[str, datetime] | None:
        """Return ``(access_token, expires_at)`` (aware datetime) or None."""

    def set(self, key: str, token: str, expires_at: datetime) -> None:
        """Save a token; ``expires_at`` is timezone-aware."""

    def delete(self, key: str) -> None:
        """Forget the token (after revocation or a rejection by KIS)."""

    def lock(self, key: str) -> contextlib.AbstractContextManager[None]:
        """Exclusive lock for issuing a token for ``key``; held across get/issue/set."""


class InMemoryTokenStore:
    """Process-local store; the lock only coordinates threads of this process."""

    def __init__(self) -> None:
        self._tokens: dict[str, tuple[str, datetime]] = {}
        self._guard = threading.Lock()
        self._key_locks: dict[str, threading.Lock] = {}

    def get(self, key: str) -> tuple[str, datetime] | None:
        with self._guard:
            return self._tokens.get(key)

    def set(self, key: str, token: str, expires_at: datetime) -> None:
        _require_aware(expires_at)
        with self._guard:
            self._tokens[key] = (token, expires_at)

    def delete(self, key: str) -> None:
        with self._guard:
            self._tokens.pop(key, None)

    @contextlib.contextmanager
    def lock(self, key: str) -> Iterator[None]:
        with self._guard:
            key_lock = self._key_locks.setdefault(key, threading.Lock())
        budget = deadline.current_deadline()
        if budget is None:
            key_lock.acquire()
        else:
            left = budget.remaining()
            if not (key_lock.acquire(timeout=left) if left > 0 else key_lock.acquire(blocking=False)):
                raise budget.exceeded("token_lock")
        try:
            yield
        finally:
            key_lock.release()

    def __repr__(self) -> str:  # never list tokens
        return f"InMemoryTokenStore(keys={len(self._tokens)})"


class FileTokenStore:
    """Tokens in JSON files under ``directory``, locked with ``flock`` so several processes share one token.

    ``flock`` locks belong to the open file description, so every ``lock()`` opens its own descriptor: two
    threads of one process exclude each other exactly like two processes do. A process that dies while
    holding the lock releases it (the kernel closes its descriptors). Files are created 0600 in a 0700
    directory because they contain bearer tokens.
    """

    def __init__(self, directory: str | os.PathLike[str], lock_timeout: float = 180.0,
                 poll_interval: float = 0.02) -> None:
        self._directory = Path(directory)
        self._directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        self._lock_timeout = lock_timeout
        self._poll_interval = poll_interval

    def _token_path(self, key: str) -> Path:
        return self._directory / f"{_safe_filename(key)}.json"

    def _lock_path(self, key: str) -> Path:
        return self._directory / f"{_safe_filename(key)}.lock"

    def get(self, key: str) -> tuple[str, datetime] | None:
        try:
            raw = self._token_path(key).read_text(encoding="utf-8")
        except FileNotFoundError:
            return None
        try:
            data = json.loads(raw)
            expires_at = datetime.fromisoformat(data["expires_at"])
            token = str(data["access_token"])
        except (ValueError, KeyError, TypeError):
            # A damaged file is treated as "no token": the caller issues a new one and overwrites it.
            return None
        if expires_at.tzinfo is None or not token:
            return None
        return token, expires_at

    def set(self, key: str, token: str, expires_at: datetime) -> None:
        _require_aware(expires_at)
        payload = json.dumps({"access_token": token, "expires_at": expires_at.isoformat()})
        # Write to a temp file and rename, so a reader never sees half a token.
        fd, tmp_name = tempfile.mkstemp(dir=self._directory, prefix=".tok-", suffix=".tmp")
        try:
            os.fchmod(fd, 0o600)
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                handle.write(payload)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp_name, self._token_path(key))
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp_name)
            raise

    def delete(self, key: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            self._token_path(key).unlink()

    @contextlib.contextmanager
    def lock(self, key: str) -> Iterator[None]:
        fd = os.open(self._lock_path(key), os.O_RDWR | os.O_CREAT, 0o600)
        budget = deadline.current_deadline()
        try:
            give_up_at = time.monotonic() + self._lock_timeout
            if budget is not None and budget.expires_at < give_up_at:
                give_up_at = budget.expires_at
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except OSError as exc:
                    if exc.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                        raise
                    # Bounded wait: a stuck holder must not hang every worker forever.
                    if time.monotonic() >= give_up_at:
                        if budget is not None and give_up_at == budget.expires_at:
                            raise budget.exceeded("token_lock") from None
                        raise TimeoutError(f"token lock not acquired within {self._lock_timeout}s") from None
                    time.sleep(self._poll_interval)
            try:
                yield
            finally:
                fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            os.close(fd)

    def __repr__(self) -> str:
        return f"FileTokenStore(directory={str(self._directory)!r})"


def _safe_filename(key: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "-_" else "_" for ch in key)[:120] or "default"


def _require_aware(value: datetime) -> None:
    if value.tzinfo is None:
        raise ValueError("expires_at must be timezone-aware (KIS expiry is Asia/Seoul time)")
