"""A total time budget for everything the KIS client does for one caller.

A web request must answer well inside the web server's worker time-out (gunicorn kills a worker after
30 s and the user sees a bare 500), yet one KIS read may retry with backoff (10 s read time-out × 4
attempts ≈ 41 s) and a token issuance may have to wait out KIS's one-per-minute limit (61 s). So the
caller sets a budget once::

    with deadline(20):
        broker.get_balance()

and the client honours it everywhere: each HTTP time-out is shortened to the time left, and before a
retry, a backoff sleep, a rate-limiter wait, a token-lock wait or the token-limit wait that would pass the
budget it stops with ``KisDeadlineExceeded`` (nothing is in flight at that point, so an order stopped
this way was definitely not sent). Without a budget (Celery tasks, commands) nothing changes.

The budget lives in a ``contextvars.ContextVar``: it follows the request's thread (and asyncio tasks)
without being passed through every call, and a nested ``deadline()`` can only shorten it, never extend it.
Pure Python, no Django.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from contextvars import ContextVar
from dataclasses import dataclass

from .errors import KisDeadlineExceeded


@dataclass(frozen=True)
class Deadline:
    seconds: float  # the budget as it was given, for messages ("… (20초)")
    expires_at: float  # time.monotonic() value

    def remaining(self) -> float:
        return self.expires_at - time.monotonic()

    def exceeded(self, stage: str, detail: str = "") -> KisDeadlineExceeded:
        return KisDeadlineExceeded(detail, seconds=self.seconds, stage=stage)


_current: ContextVar[Deadline | None] = ContextVar("kis_deadline", default=None)


@contextlib.contextmanager
def deadline(seconds: float) -> Iterator[Deadline]:
    """Give everything the KIS client does inside the block at most ``seconds`` in total."""
    if not seconds or seconds <= 0:
        raise ValueError("a deadline needs a positive number of seconds")
    budget = Deadline(float(seconds), time.monotonic() + float(seconds))
    outer = _current.get()
    if outer is not None and outer.expires_at <= budget.expires_at:
        budget = outer  # an inner block never gets more time than its caller has left
    token = _current.set(budget)
    try:
        yield budget
    finally:
        _current.reset(token)


def current_deadline() -> Deadline | None:
    """The budget in force here, or None (no limit: tasks, commands)."""
    return _current.get()


def remaining() -> float | None:
    """Seconds left of the budget in force (may be ≤ 0), or None when there is none."""
    budget = _current.get()
    return None if budget is None else budget.remaining()


def check(stage: str, needed: float = 0.0) -> None:
    """Raise ``KisDeadlineExceeded`` unless more than ``needed`` seconds of the budget are left."""
    budget = _current.get()
    if budget is not None and budget.remaining() <= needed:
        raise budget.exceeded(stage)


def sleep_within(seconds: float, stage: str, sleep=time.sleep) -> None:
    """``sleep(seconds)``, unless the sleep would end at or after the deadline: then raise at once
    (sleeping first would only make the caller wait for an answer it cannot get)."""
    check(stage, needed=max(seconds, 0.0))
    if seconds > 0:
        sleep(seconds)
