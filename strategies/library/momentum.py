"""12-1 momentum, cross-sectional: buy the top N by the 12-month return skipping the last month.

Per symbol, on its own bars: momentum_t = close_{t−skip} / close_{t−lookback} − 1 (defaults
252 and 21 bars: twelve months back to one month back). Each day the symbols that have a bar and
a momentum value are ranked by momentum, highest first, ties by column order (universe order).
Buy (+1) for ranks 1..``top_n``; sell (−1) for a symbol outside the top N whose momentum is
negative. Score: the momentum.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from strategies.library.base import Parameter, Strategy, on_bars, signal_matrix, to_signal_series
from strategies.library.numeric import rank_rows, shift_rows


def universe_of(prices: pd.Series, universe: pd.DataFrame | None) -> tuple[pd.DataFrame, Any]:
    """The universe close frame and this symbol's column in it (a universe of one if none is given)."""
    if universe is None:
        name = prices.name if prices.name is not None else "_"
        return prices.to_frame(name=name), name
    if prices.name not in universe.columns:
        raise ValueError(f"universe has no column {prices.name!r} for this symbol")
    return universe, prices.name


def ranked(values: pd.DataFrame) -> pd.DataFrame:
    """Rank of each value in its row, 1 = highest, ties by column order; NaN stays NaN."""
    return values.rank(axis=1, method="first", ascending=False)


class Momentum12m1(Strategy):
    key = "momentum_12_1"
    name = "12-1 모멘텀"
    description = (
        "최근 1개월을 뺀 12개월 수익률로 전 종목의 순위를 매겨 상위 N개 종목에 매수 신호를 냅니다. "
        "상위 N에서 벗어나고 모멘텀이 음수가 된 종목은 매도 신호입니다."
    )
    name_en = "12-1 momentum"
    description_en = (
        "Ranks every stock by its 12-month return without the last month and gives the top N a buy signal. "
        "A stock that leaves the top N with a negative momentum gets a sell signal."
    )
    cross_sectional = True
    parameters = (
        Parameter("lookback", "int", 252, min=2, max=756, label="조회 기간", help="수익률을 잴 기간(거래일, 252 ≈ 12개월)",
                  label_en="Lookback", help_en="Period of the return (trading days, 252 ≈ 12 months)"),
        Parameter("skip", "int", 21, min=0, max=126, label="제외 기간", help="최근에서 제외할 기간(거래일, 21 ≈ 1개월)",
                  label_en="Skip", help_en="Most recent period left out (trading days, 21 ≈ 1 month)"),
        Parameter("top_n", "int", 20, min=1, max=1000, label="상위 종목 수", help="매수 신호를 낼 상위 종목 수",
                  label_en="Top N", help_en="Top-ranked stocks given a buy signal"),
    )

    @classmethod
    def check_params(cls, params: dict[str, Any]) -> dict[str, str]:
        if params["skip"] >= params["lookback"]:
            return {"skip": "'제외 기간'(skip)은 '조회 기간'(lookback)보다 짧아야 합니다"}
        return {}

    @property
    def warmup(self) -> int:
        return self.lookback + 1

    def momentum_series(self, prices: pd.Series) -> pd.Series:
        p = on_bars(prices)
        return (p.shift(self.skip) / p.shift(self.lookback) - 1).reindex(prices.index)

    def _momentum_frame(self, universe: pd.DataFrame) -> pd.DataFrame:
        return pd.DataFrame({col: self.momentum_series(universe[col]) for col in universe.columns}, index=universe.index)

    def generate_signals_and_scores(self, prices: pd.Series, **context: Any) -> tuple[pd.Series, pd.Series]:
        universe, column = universe_of(prices, context.get("universe"))
        momentum = self._momentum_frame(universe)
        rank = ranked(momentum)[column].reindex(prices.index)
        mom = momentum[column].reindex(prices.index)
        top = rank <= self.top_n
        signals = to_signal_series(top, ~top & (mom < 0), prices.index)
        return signals, mom

    def generate_signals(self, prices: pd.Series, **context: Any) -> pd.Series:
        return self.generate_signals_and_scores(prices, **context)[0]

    def generate_scores(self, prices: pd.Series, **context: Any) -> pd.Series:
        return self.generate_signals_and_scores(prices, **context)[1]

    def indicators(self, close, open, high, low):
        return {"momentum": shift_rows(close, self.skip) / shift_rows(close, self.lookback) - 1}

    def signals_from(self, ind, valid):
        mom = ind["momentum"]
        eligible = valid & np.isfinite(mom)
        top = eligible & (rank_rows(mom, eligible) < self.top_n)
        return signal_matrix(top, ~top & (mom < 0))

    def scores_from(self, ind, valid):
        return ind["momentum"]
