"""The KIS WebSocket as a source of the streamer (source ``"kis"``): one ``RealtimeSession`` per KIS broker
account (모의투자 or 실전), its registrations shared through a ``SubscriptionManager``.

* The fill-notice registration (``FILL_NOTICE_TR[environment]`` on the account's HTS ID) is always on,
  held by the watcher ``"notices"``, whether or not a page is open.
* The streamer states which codes (체결가) and books (호가) it wants from this account (``set_wanted``); they
  are held by the watcher ``"pages"``. What would pass KIS's 40 registrations is refused and reported.
* A session KIS refuses for good (app key already in use elsewhere, approval key or app key refused) is
  reported as "closed" with KIS's reason and tried again later (``REFUSED_RETRY_SECONDS``, doubling).
* The session's callbacks run on the streamer's event loop; the approval key is fetched in a worker thread
  (it may do HTTP and touch the database's token store).

A ``BrokerAccount`` becomes a source in ``manage.py stream_market`` (``kis_source_for_account``): the KIS
client comes from ``market.brokers``, which imports this package (the paper broker's fill notices), so this
package does not import it back.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Iterable
from typing import Any

from market.kis.errors import KisError
from market.kis.realtime.errors import SubscriptionLimitError
from market.kis.realtime.records import FILL_NOTICE_TR, ORDER_BOOK_TR, TRADE_TR, FillNotice, OrderBook, Tick
from market.kis.realtime.session import RealtimeSession, SessionStatus
from market.kis.realtime.subscriptions import SubscriptionManager

logger = logging.getLogger(__name__)

REFUSED_RETRY_SECONDS = 30.0
REFUSED_RETRY_MAX_SECONDS = 600.0
NOTICES = "notices"
PAGES = "pages"


class KisSource:
    """One KIS account's real-time session. ``on_status(SessionStatus)`` gets the session's states (and
    "closed" with the reason when KIS refuses it); ``refused`` holds the Korean messages of the codes that
    did not fit under the cap, for the streamer to report."""

    source = "kis"

    def __init__(self, account_id: int, *, url: str, environment: str, approval_key: Callable[[], str],
                 hts_id: str = "", on_tick: Callable[[Tick, float], Any], on_book: Callable[[OrderBook, float], Any],
                 on_notice: Callable[[FillNotice], Any], on_status: Callable[[SessionStatus], Any],
                 renew_approval_key: Callable[[str], str] | None = None, stale_after: float = 150.0,
                 backoff_min: float = 0.5, backoff_max: float = 30.0,
                 refused_retry: float = REFUSED_RETRY_SECONDS) -> None:
        self.account = account_id
        self.environment = environment
        self.hts_id = hts_id
        self.on_status = on_status
        self.refused_retry = refused_retry
        self.session = RealtimeSession(
            url, approval_key, environment=environment, on_tick=on_tick, on_book=on_book, on_notice=on_notice,
            on_status=on_status, stale_after=stale_after, backoff_min=backoff_min, backoff_max=backoff_max,
            renew_approval_key=renew_approval_key,
        )
        self.manager = SubscriptionManager(self.session)
        self.codes: frozenset[str] = frozenset()
        self.books: frozenset[str] = frozenset()
        self.refused: dict[str, str] = {}  # code -> the user's message
        self._closing = False
        self._wake = asyncio.Event()

    @property
    def notice_key(self) -> tuple[str, str] | None:
        return (FILL_NOTICE_TR[self.environment], self.hts_id) if self.hts_id else None

    async def set_wanted(self, codes: Iterable[str], books: Iterable[str] = ()) -> list[str]:
        """Hold exactly these codes' trades and these books (first ones first when the cap is reached).
        Returns the codes refused; ``refused`` keeps their messages."""
        codes, books = list(dict.fromkeys(codes)), list(dict.fromkeys(books))
        self.codes, self.books = frozenset(codes), frozenset(books)
        wanted = [(TRADE_TR, code) for code in codes] + [(ORDER_BOOK_TR, code) for code in books]
        try:
            refused_keys = await self.manager.set_watch(PAGES, wanted)
        except KisError as error:  # KIS refused a registration for another reason (e.g. an unknown code)
            logger.warning("KIS source #%s: registration refused: %s", self.account, error)
            return []
        self.refused = {}
        for key in refused_keys:
            error = self.manager.refusals.get(key)
            self.refused[key[1]] = error.user_message if error else "실시간 등록 한도를 넘었습니다."
        return sorted(self.refused)

    async def _register_notices(self) -> None:
        if self.notice_key is None:
            return
        try:
            await self.manager.set_watch(NOTICES, [self.notice_key])
        except (SubscriptionLimitError, KisError) as error:
            logger.warning("KIS source #%s: fill notices not registered: %s", self.account, error)

    async def run(self) -> None:
        """Run the session until ``close()``; a refused session is retried after a growing pause."""
        await self._register_notices()
        delay = self.refused_retry
        while not self._closing:
            try:
                await self.session.run()
                return  # closed on request
            except KisError as error:  # refused for good this time (in use, approval, app key)
                if self._closing:
                    return
                logger.warning("KIS source #%s: session refused (%s); retrying in %.0f s", self.account,
                               error.user_message, delay)
                self.on_status(SessionStatus("closed", None, None,
                                             f"{error.user_message} {delay:.0f}초 뒤 다시 시도합니다."))
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._wake.wait(), delay)
            delay = min(delay * 2, REFUSED_RETRY_MAX_SECONDS)

    async def close(self) -> None:
        self._closing = True
        self._wake.set()
        await self.session.close()
