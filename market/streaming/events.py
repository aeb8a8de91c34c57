"""Channels and messages on the real-time bus. Every message is a JSON object with a ``type``.

Channels
- ``rt:tick:<source>:<code>``  trade ticks of one symbol, batched: ``{"type": "ticks", "source", "code",
  "ticks": [tick_message...], "received": <epoch s of the batch's first frame>, "sent": <epoch s>}``.
  ``source`` is ``"kis"`` (KIS WebSocket) or ``"sim"`` (the paper broker's simulated stream from the demo
  market): real and simulated prices never share a channel.
- ``rt:book:<source>:<code>``  the latest 호가: ``book_message``.
- ``rt:user:<user id>``  one user's order events: ``{"type": "fill" | "order", ...}`` (``order_event``).
- ``rt:status``  the streamer's state per source/account: ``{"type": "status", "source", "account",
  "state": "connected" | "reconnecting" | "gap" | "closed" | "market_closed", "since", "until", "message"}``
  (a gap is reported with its start and end, never hidden).
- ``rt:control``  what the pages want watched, renewed while they are open: ``{"type": "watch", "client",
  "user", "account", "source", "codes": [...], "books": [...], "ttl": seconds}``; a symbol nobody renews
  within its ttl is dropped by the streamer.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from typing import Any

from market.kis.realtime.records import OrderBook, Tick

SOURCES = ("kis", "sim")
STATUS_CHANNEL = "rt:status"
CONTROL_CHANNEL = "rt:control"
WATCH_TTL_SECONDS = 30


def tick_channel(source: str, code: str) -> str:
    return f"rt:tick:{source}:{code}"


def book_channel(source: str, code: str) -> str:
    return f"rt:book:{source}:{code}"


def user_channel(user_id: int) -> str:
    return f"rt:user:{user_id}"


def _moment(day: dt.date | None, time: dt.time, tz: dt.tzinfo) -> str:
    day = day or dt.datetime.now(tz).date()
    return dt.datetime.combine(day, time, tzinfo=tz).isoformat()


def tick_message(tick: Tick, tz: dt.tzinfo) -> dict[str, Any]:
    """One tick, compact (it is the bulk of the traffic)."""
    return {"t": _moment(tick.business_date, tick.time, tz), "p": tick.price, "v": tick.volume,
            "cv": tick.cumulative_volume, "chg": tick.change, "rate": tick.change_rate,
            "o": tick.open, "h": tick.high, "l": tick.low, "vi": tick.vi_reference_price,
            "halted": tick.halted}


def ticks_message(source: str, code: str, ticks: Iterable[dict[str, Any]], *, received: float,
                  sent: float) -> dict[str, Any]:
    return {"type": "ticks", "source": source, "code": code, "ticks": list(ticks), "received": received,
            "sent": sent}


def book_message(source: str, book: OrderBook, tz: dt.tzinfo, day: dt.date | None = None) -> dict[str, Any]:
    return {"type": "book", "source": source, "code": book.code, "t": _moment(day, book.time, tz),
            "asks": list(book.asks), "bids": list(book.bids), "ask_sizes": list(book.ask_sizes),
            "bid_sizes": list(book.bid_sizes), "total_ask": book.total_ask_size,
            "total_bid": book.total_bid_size}


def order_event(kind: str, *, order_id: int, code: str, side: str, status: str, quantity: int,
                filled_quantity: int, price: int | None, fill_quantity: int = 0,
                message: str = "") -> dict[str, Any]:
    """``kind`` "fill" (a new fill was recorded) or "order" (the order's status changed)."""
    return {"type": kind, "order_id": order_id, "code": code, "side": side, "status": status,
            "quantity": quantity, "filled_quantity": filled_quantity, "price": price,
            "fill_quantity": fill_quantity, "message": message}


def status_message(source: str, state: str, *, account: int | None = None, since: str | None = None,
                   until: str | None = None, message: str = "") -> dict[str, Any]:
    return {"type": "status", "source": source, "account": account, "state": state, "since": since,
            "until": until, "message": message}


def watch_message(*, client: str, user: int, account: int | None, source: str, codes: Iterable[str],
                  books: Iterable[str] = (), ttl: int = WATCH_TTL_SECONDS) -> dict[str, Any]:
    return {"type": "watch", "client": client, "user": user, "account": account, "source": source,
            "codes": sorted(set(codes)), "books": sorted(set(books)), "ttl": ttl}
