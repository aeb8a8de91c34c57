"""The stored bars as the backtester's matrices: what a backtest, the live planner and the result pages
load. A read with no side effects, shared by the services and the selectors."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd

from market.models import DailyBar, Instrument
from strategies.backtest import MarketData
from strategies.backtest.universe import DEFAULT_LOOKBACK, top_n_mask

# Calendar days of bars loaded before `start` so the signals are warm on the first entry day
# (the longest built-in window, 12-1 momentum, needs ~252 trading days).
WARMUP_CALENDAR_DAYS = 400


class BacktestInputError(ValueError):
    """Inputs a backtest cannot run with; the message says what to fix. `field`: the input at fault
    (a form or serializer field name), when there is one."""

    def __init__(self, message: str, field: str | None = None):
        super().__init__(message)
        self.field = field


def load_market_data(
    codes: list[str], start: dt.date, end: dt.date, universe_top_n: int | None = None,
) -> MarketData:
    """Bars of `codes` from `start` − warm-up to `end`, in one query, as the backtester's matrices,
    with their volume.

    `universe_top_n`: the universe as it was — on each date only the top N of `codes` by traded value
    over the 60 trading rows up to that date are buy candidates (`MarketData.universe`,
    `strategies.backtest.universe.top_n_mask`). Every code's bars count, a delisted instrument's
    (`is_listed` False) included on the days it traded. A bar's traded value is the stored 거래대금
    (`traded_value`), or close × volume where none was stored. None: every code is a candidate."""
    known = dict(Instrument.objects.filter(code__in=codes).values_list("code", "market"))
    unknown = [code for code in codes if code not in known]
    if unknown:
        raise BacktestInputError(f"알 수 없는 종목코드입니다: {', '.join(unknown)}")
    rows = list(
        DailyBar.objects.filter(
            instrument__code__in=codes, date__gte=start - dt.timedelta(days=WARMUP_CALENDAR_DAYS), date__lte=end
        ).values_list("instrument__code", "date", "open", "high", "low", "close", "volume", "traded_value")
    )
    if not rows:
        raise BacktestInputError(f"{start}~{end} 기간에 저장된 일봉이 없습니다. 먼저 시세를 가져오세요.")
    frame = pd.DataFrame(rows, columns=["code", "date", "open", "high", "low", "close", "volume", "traded_value"])
    data = MarketData.from_frame(frame.drop(columns="traded_value"), markets=known)
    if universe_top_n is None:
        return data
    stored = frame.pivot(index="date", columns="code", values="traded_value").sort_index()
    stored = stored.reindex(columns=list(data.codes))
    stored = stored.to_numpy(dtype=float)
    traded = np.where(np.isfinite(stored), stored, data.close * data.volume)
    traded[~data.valid] = np.nan
    return data.with_universe(top_n_mask(traded, int(universe_top_n), DEFAULT_LOOKBACK, valid=data.valid))
