"""Dual momentum (듀얼 모멘텀, Antonacci): relative AND absolute momentum.

Per symbol, on its own bars: return_t = close_t / close_{t−lookback} − 1. Relative momentum: each
day the symbols with a value are ranked by it, highest first, ties by column order. Absolute
momentum: the return must beat ``threshold`` (0 = cash). Buy (+1) when in the top ``top_n`` and
above the threshold; sell (−1) when the return is at or below the threshold. Score: the return.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from strategies.library.base import Parameter, Strategy, on_bars, signal_matrix, to_signal_series
from strategies.library.momentum import ranked, universe_of
from strategies.library.numeric import rank_rows, shift_rows


class DualMomentum(Strategy):
    key = "dual_momentum"
    name = "듀얼 모멘텀"
    description = (
        "상대 모멘텀(조회 기간 수익률 상위 N)과 절대 모멘텀(수익률이 기준 이상)을 모두 만족하는 종목에 매수 신호를 내고, "
        "수익률이 기준 이하로 떨어지면 매도 신호를 냅니다."
    )
    name_en = "Dual momentum"
    description_en = (
        "Buy signal for stocks with both relative momentum (top N by return over the lookback) and absolute "
        "momentum (return above the threshold); sell signal when the return falls to the threshold or below."
    )
    cross_sectional = True
    parameters = (
        Parameter("lookback", "int", 252, min=2, max=756, label="조회 기간", help="수익률을 잴 기간(거래일, 252 ≈ 12개월)",
                  label_en="Lookback", help_en="Period of the return (trading days, 252 ≈ 12 months)"),
        Parameter("top_n", "int", 10, min=1, max=1000, label="상위 종목 수", help="상대 모멘텀으로 고를 종목 수",
                  label_en="Top N", help_en="Stocks picked by relative momentum"),
        Parameter(
            "threshold", "float", 0.0, min=-0.5, max=1.0, step=0.01, label="절대 모멘텀 기준",
            help="수익률이 이 값을 넘어야 매수, 이 값 이하이면 매도 (0 = 현금 수익률)",
            label_en="Absolute momentum threshold",
            help_en="Buy only when the return is above this, sell when it is at or below (0 = cash return)",
        ),
    )

    @property
    def warmup(self) -> int:
        return self.lookback + 1

    def return_series(self, prices: pd.Series) -> pd.Series:
        p = on_bars(prices)
        return (p / p.shift(self.lookback) - 1).reindex(prices.index)

    def generate_signals_and_scores(self, prices: pd.Series, **context: Any) -> tuple[pd.Series, pd.Series]:
        universe, column = universe_of(prices, context.get("universe"))
        returns = pd.DataFrame({col: self.return_series(universe[col]) for col in universe.columns}, index=universe.index)
        rank = ranked(returns)[column].reindex(prices.index)
        ret = returns[column].reindex(prices.index)
        buy = (rank <= self.top_n) & (ret > self.threshold)
        return to_signal_series(buy, ret <= self.threshold, prices.index), ret

    def generate_signals(self, prices: pd.Series, **context: Any) -> pd.Series:
        return self.generate_signals_and_scores(prices, **context)[0]

    def generate_scores(self, prices: pd.Series, **context: Any) -> pd.Series:
        return self.generate_signals_and_scores(prices, **context)[1]

    def indicators(self, close, open, high, low):
        return {"ret": close / shift_rows(close, self.lookback) - 1}

    def signals_from(self, ind, valid):
        ret = ind["ret"]
        eligible = valid & np.isfinite(ret)
        buy = eligible & (rank_rows(ret, eligible) < self.top_n) & (ret > self.threshold)
        return signal_matrix(buy, ret <= self.threshold)

    def scores_from(self, ind, valid):
        return ind["ret"]
