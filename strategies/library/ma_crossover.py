"""Moving-average crossover (골든크로스 / 데드크로스).

short = mean of the last ``short_window`` closes, long = mean of the last ``long_window``.
``mode = "cross"``: buy (+1) on the day the short average crosses above the long one
(short > long today, short <= long on the previous bar), sell (−1) on the day it crosses below
(short < long today, short >= long before). ``mode = "trend"``: +1 while short > long, −1 while
short < long. Score: (short − long) / long, the stronger trend first.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from strategies.library.base import Parameter, Strategy, on_bars, signal_matrix, to_signal_series
from strategies.library.numeric import rolling_mean, shift_rows


class MovingAverageCrossover(Strategy):
    key = "ma_crossover"
    name = "이동평균 교차"
    description = (
        "단기 이동평균이 장기 이동평균을 위로 뚫으면(골든크로스) 매수, 아래로 뚫으면(데드크로스) 매도합니다. "
        "추세 모드에서는 단기선이 장기선 위에 있는 동안 매수 신호를 냅니다."
    )
    name_en = "Moving-average crossover"
    description_en = (
        "Buy when the short moving average crosses above the long one (golden cross), sell when it crosses below "
        "(dead cross). In trend mode, buy signals last as long as the short line stays above the long one."
    )
    parameters = (
        Parameter("short_window", "int", 5, min=2, max=120, label="단기 기간", help="단기 이동평균의 거래일 수",
                  label_en="Short window", help_en="Trading days of the short moving average"),
        Parameter("long_window", "int", 20, min=3, max=250, label="장기 기간", help="장기 이동평균의 거래일 수",
                  label_en="Long window", help_en="Trading days of the long moving average"),
        Parameter(
            "mode", "choice", "cross", choices=("cross", "trend"), label="신호 방식",
            help="cross: 교차한 날에만 신호, trend: 단기선이 장기선 위(아래)에 있는 동안 매수(매도) 신호",
            label_en="Signal mode",
            help_en="cross: a signal on the day of the cross only, trend: buy (sell) while the short line is above "
            "(below) the long one",
        ),
    )

    @classmethod
    def check_params(cls, params: dict[str, Any]) -> dict[str, str]:
        if params["short_window"] >= params["long_window"]:
            return {"short_window": "'단기 기간'(short_window)은 '장기 기간'(long_window)보다 짧아야 합니다"}
        return {}

    @property
    def warmup(self) -> int:
        return self.long_window + 1

    def _averages(self, prices: pd.Series) -> tuple[pd.Series, pd.Series]:
        prices = on_bars(prices)
        return prices.rolling(self.short_window).mean(), prices.rolling(self.long_window).mean()

    def generate_signals(self, prices: pd.Series, **context: Any) -> pd.Series:
        short, long = self._averages(prices)
        if self.mode == "trend":
            return to_signal_series(short > long, short < long, prices.index)
        prev_short, prev_long = short.shift(1), long.shift(1)
        golden = (short > long) & (prev_short <= prev_long)
        dead = (short < long) & (prev_short >= prev_long)
        return to_signal_series(golden, dead, prices.index)

    def generate_scores(self, prices: pd.Series, **context: Any) -> pd.Series:
        short, long = self._averages(prices)
        return ((short - long) / long).reindex(prices.index)

    def indicators(self, close, open, high, low):
        short = rolling_mean(close, self.short_window)
        long = rolling_mean(close, self.long_window)
        return {"short": short, "long": long, "prev_short": shift_rows(short, 1), "prev_long": shift_rows(long, 1)}

    def signals_from(self, ind, valid):
        short, long = ind["short"], ind["long"]
        if self.mode == "trend":
            return signal_matrix(short > long, short < long)
        golden = (short > long) & (ind["prev_short"] <= ind["prev_long"])
        dead = (short < long) & (ind["prev_short"] >= ind["prev_long"])
        return signal_matrix(golden, dead)

    def scores_from(self, ind, valid):
        return (ind["short"] - ind["long"]) / ind["long"]
