"""The stored bars as the backtester's matrices: what a backtest, the live planner and the result pages
load. A read with no side effects, shared by the services and the selectors."""

from __future__ import annotations

import datetime as dt

import pandas as pd

from market.models import DailyBar, Instrument
from strategies.backtest import MarketData

# Calendar days of bars loaded before `start` so the signals are warm on the first entry day
# (the longest built-in window, 12-1 momentum, needs ~252 trading days).
WARMUP_CALENDAR_DAYS = 400


class BacktestInputError(ValueError):
    """Inputs a backtest cannot run with; the message says what to fix. `field`: the input at fault
    (a form or serializer field name), when there is one."""

    def __init__(self, message: str, field: str | None = None):
        super().__init__(message)
        self.field = field


def load_market_data(codes: list[str], start: dt.date, end: dt.date) -> MarketData:
    """Bars of `codes` from `start` − warm-up to `end`, in one query, as the backtester's matrices."""
    known = dict(Instrument.objects.filter(code__in=codes).values_list("code", "market"))
    unknown = [code for code in codes if code not in known]
    if unknown:
        raise BacktestInputError(f"알 수 없는 종목코드입니다: {', '.join(unknown)}")
    rows = list(
        DailyBar.objects.filter(
            instrument__code__in=codes, date__gte=start - dt.timedelta(days=WARMUP_CALENDAR_DAYS), date__lte=end
        ).values_list("instrument__code", "date", "open", "high", "low", "close")
    )
    if not rows:
        raise BacktestInputError(f"{start}~{end} 기간에 저장된 일봉이 없습니다. 먼저 시세를 가져오세요.")
    frame = pd.DataFrame(rows, columns=["code", "date", "open", "high", "low", "close"])
    return MarketData.from_frame(frame, markets=known)
