"""Who watches what on one KIS session, within its 40 registrations (fact sheet §5.1).

KIS allows one WebSocket session per app key and 40 registrations per session, so every page and job that
wants a symbol of one account shares that account's session. A *watcher* (a page, a job, the fill-notice
registration "notices") states the full set of (TR, key) pairs it wants with ``set_watch``; the manager keeps
reference counts, registers a pair when its first watcher arrives and unregisters it when the last one
leaves. A pair that would be the 41st registration is refused with ``SubscriptionLimitError`` (a Korean
message naming the cap and the symbol); so is one KIS itself refuses (OPSP0008), whatever the local count.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import Protocol

from .errors import MAX_REGISTRATIONS, RealtimeError, SubscriptionLimitError

Key = tuple[str, str]  # (tr_id, tr_key)


class _Session(Protocol):
    async def register(self, tr_id: str, tr_key: str) -> None: ...

    async def unregister(self, tr_id: str, tr_key: str) -> None: ...


class SubscriptionManager:
    """Reference-counted registrations of one session. All methods are coroutines of the session's event
    loop and are serialised by an ``asyncio.Lock``, so concurrent watchers (tasks) never race past the cap;
    other threads hand their calls to that loop (``asyncio.run_coroutine_threadsafe``)."""

    def __init__(self, session: _Session, cap: int = MAX_REGISTRATIONS) -> None:
        if not 1 <= cap <= MAX_REGISTRATIONS:
            raise ValueError(f"cap must be between 1 and {MAX_REGISTRATIONS}")
        self._session = session
        self.cap = cap
        self._watching: dict[str, set[Key]] = {}  # watcher -> what it holds
        self._watchers: dict[Key, set[str]] = {}  # registered key -> who holds it
        self._lock = asyncio.Lock()
        # The latest refusal per key (its ``user_message`` is for the user); cleared once the key is registered.
        self.refusals: dict[Key, RealtimeError] = {}

    @property
    def registrations(self) -> frozenset[Key]:
        return frozenset(self._watchers)

    @property
    def watchers(self) -> frozenset[str]:
        return frozenset(self._watching)

    def watchers_of(self, key: Key) -> frozenset[str]:
        return frozenset(self._watchers.get(key, ()))

    def watched_by(self, watcher: str) -> frozenset[Key]:
        return frozenset(self._watching.get(watcher, ()))

    async def set_watch(self, watcher: str, wanted: Iterable[Key]) -> list[Key]:
        """Make ``watcher`` hold exactly ``wanted`` (in that order of preference). Returns what was refused --
        over the cap (``SubscriptionLimitError``) or by KIS for another reason (e.g. a code it does not know);
        those are not held, and ``refusals`` has the error for each."""
        wanted_keys = list(dict.fromkeys((str(tr_id), str(tr_key)) for tr_id, tr_key in wanted))
        async with self._lock:
            held = self._watching.get(watcher, set())
            wanted_set = set(wanted_keys)
            # Release first, so a watcher that swaps symbols at the cap is not refused its new ones.
            for key in sorted(held - wanted_set):
                await self._release(watcher, key)
            refused: list[Key] = []
            for key in wanted_keys:
                if key in held:
                    continue
                try:
                    await self._hold(watcher, key)
                except RealtimeError as exc:
                    self.refusals[key] = exc
                    refused.append(key)
            if not self._watching.get(watcher):
                self._watching.pop(watcher, None)
            return refused

    async def add(self, watcher: str, tr_id: str, tr_key: str) -> None:
        """Add one pair to what ``watcher`` holds; raises ``SubscriptionLimitError`` over the cap (or the
        ``RealtimeError`` of another refusal)."""
        key = (tr_id, tr_key)
        async with self._lock:
            if key in self._watching.get(watcher, set()):
                return
            try:
                await self._hold(watcher, key)
            except RealtimeError as exc:
                self.refusals[key] = exc
                if not self._watching.get(watcher):
                    self._watching.pop(watcher, None)
                raise

    async def remove(self, watcher: str, tr_id: str, tr_key: str) -> None:
        async with self._lock:
            if (tr_id, tr_key) in self._watching.get(watcher, set()):
                await self._release(watcher, (tr_id, tr_key))

    async def drop_watcher(self, watcher: str) -> None:
        """``watcher`` is gone: what nobody else watches is unregistered."""
        async with self._lock:
            for key in sorted(self._watching.get(watcher, set())):
                await self._release(watcher, key)
            self._watching.pop(watcher, None)

    # ------------------------------------------------------------------------------------------ internals
    async def _hold(self, watcher: str, key: Key) -> None:
        if key not in self._watchers:
            if len(self._watchers) >= self.cap:
                raise SubscriptionLimitError(cap=self.cap, tr_id=key[0], tr_key=key[1])
            try:
                await self._session.register(*key)
            except SubscriptionLimitError as exc:
                # KIS's own count (OPSP0008) wins over ours, e.g. another registration we do not track.
                raise SubscriptionLimitError(cap=self.cap, tr_id=key[0], tr_key=key[1], rt_cd=exc.rt_cd,
                                             msg_cd=exc.msg_cd, msg1=exc.msg1) from exc
            self._watchers[key] = set()
        self._watchers[key].add(watcher)
        self._watching.setdefault(watcher, set()).add(key)
        self.refusals.pop(key, None)

    async def _release(self, watcher: str, key: Key) -> None:
        self._watching.get(watcher, set()).discard(key)
        holders = self._watchers.get(key)
        if holders is None:
            return
        holders.discard(watcher)
        if not holders:
            del self._watchers[key]
            await self._session.unregister(*key)
