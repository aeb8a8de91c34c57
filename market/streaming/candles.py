"""1-minute candles from trade ticks (pure Python, no Django).

A candle covers one Seoul minute ``[minute, minute + 1 min)``: open is the minute's first trade, close its
last, high/low its extremes, volume the sum of each trade's own volume (KIS ``CNTG_VOL``, never the
cumulative volume). A minute is finished when a tick of a later minute arrives for the same symbol, or when
the clock passes its end (``close_until``: a quiet symbol's last minute still gets stored).

A tick for a minute that is already finished (out of order, or after ``close_until``) reopens nothing: it
is counted in ``late`` and left out, so a stored candle is never rewritten with a partial one.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from zoneinfo import ZoneInfo

SEOUL = ZoneInfo("Asia/Seoul")
MINUTE = dt.timedelta(minutes=1)


@dataclass(slots=True)
class Candle:
    code: str
    minute: dt.datetime  # aware, Asia/Seoul, start of the minute
    open: int
    high: int
    low: int
    close: int
    volume: int

    def as_dict(self) -> dict:
        return {"code": self.code, "minute": self.minute.isoformat(), "open": self.open, "high": self.high,
                "low": self.low, "close": self.close, "volume": self.volume}


def minute_of(moment: dt.datetime) -> dt.datetime:
    """The start of ``moment``'s minute in Seoul (``moment`` must be aware)."""
    if moment.tzinfo is None:
        raise ValueError("moment must be timezone-aware")
    return moment.astimezone(SEOUL).replace(second=0, microsecond=0)


class CandleBuilder:
    """The open candle of each symbol, and the finished ones not yet collected (``take_finished``)."""

    def __init__(self) -> None:
        self._open: dict[str, Candle] = {}
        self._finished: list[Candle] = []
        self._last_closed: dict[str, dt.datetime] = {}  # per code: the latest finished minute
        self.late = 0

    def add(self, code: str, moment: dt.datetime, price: int, volume: int) -> None:
        minute = minute_of(moment)
        candle = self._open.get(code)
        if candle is not None and candle.minute == minute:
            if price > candle.high:
                candle.high = price
            elif price < candle.low:
                candle.low = price
            candle.close = price
            candle.volume += volume
            return
        if (candle is not None and minute < candle.minute) or minute <= self._last_closed.get(code, _NEVER):
            self.late += 1
            return
        if candle is not None:
            self._finish(candle)
        self._open[code] = Candle(code, minute, price, price, price, price, volume)

    def _finish(self, candle: Candle) -> None:
        self._finished.append(candle)
        self._last_closed[candle.code] = candle.minute

    def close_until(self, now: dt.datetime) -> None:
        """Finish every open candle whose minute ended at or before ``now``."""
        current = minute_of(now)
        for code, candle in list(self._open.items()):
            if candle.minute < current:
                del self._open[code]
                self._finish(candle)

    def take_finished(self) -> list[Candle]:
        finished, self._finished = self._finished, []
        return finished

    def current(self, code: str) -> Candle | None:
        """The symbol's open (unfinished) candle."""
        return self._open.get(code)

    def open_candles(self) -> list[Candle]:
        """Copies of the open candles (to store the minute so far)."""
        return [Candle(c.code, c.minute, c.open, c.high, c.low, c.close, c.volume) for c in self._open.values()]


_NEVER = dt.datetime(1970, 1, 1, tzinfo=SEOUL)
