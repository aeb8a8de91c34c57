"""Bollinger band reversion.

Middle band = mean of the last ``window`` closes; σ = their POPULATION standard deviation
(ddof = 0, Bollinger's definition); lower/upper = middle ∓ ``num_std`` · σ.
Buy (+1) when the close is below the lower band. Sell (−1) when the close is above the middle
band (``exit_band = "middle"``: the mean has been reached) or above the upper band
(``exit_band = "upper"``). Score: −%b, where %b = (close − lower) / (upper − lower): the deepest
below the band first.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from strategies.library.base import Parameter, Strategy, on_bars, signal_matrix, to_signal_series
from strategies.library.numeric import rolling_mean_var


class BollingerReversion(Strategy):
    key = "bollinger"
    name = "볼린저 밴드 역추세"
    description = (
        "종가가 볼린저 밴드 하단 아래로 내려가면 매수, 중심선(또는 상단) 위로 올라가면 매도합니다. "
        "매수 후보는 %b가 낮은 순서로 고릅니다."
    )
    name_en = "Bollinger band reversal"
    description_en = (
        "Buy when the close falls below the lower Bollinger band, sell when it rises above the middle line (or the "
        "upper band). Buy candidates are taken lowest %b first."
    )
    parameters = (
        Parameter("window", "int", 20, min=2, max=250, label="기간", help="중심선(이동평균)과 표준편차의 거래일 수",
                  label_en="Window", help_en="Trading days of the middle line (moving average) and standard deviation"),
        Parameter("num_std", "float", 2.0, min=0.5, max=5.0, step=0.1, label="밴드 폭(σ)", help="밴드와 중심선 사이의 표준편차 배수",
                  label_en="Band width (σ)", help_en="Standard deviations between a band and the middle line"),
        Parameter(
            "exit_band", "choice", "middle", choices=("middle", "upper"), label="매도 기준선",
            help="middle: 종가가 중심선 위로 오르면 매도, upper: 상단 밴드 위로 오르면 매도",
            label_en="Sell line",
            help_en="middle: sell when the close rises above the middle line, upper: when it rises above the upper band",
        ),
    )

    @property
    def warmup(self) -> int:
        return self.window

    def bands(self, prices: pd.Series) -> pd.DataFrame:
        prices = on_bars(prices)
        middle = prices.rolling(self.window).mean()
        sigma = prices.rolling(self.window).std(ddof=0)
        return pd.DataFrame(
            {"close": prices, "middle": middle, "lower": middle - self.num_std * sigma, "upper": middle + self.num_std * sigma}
        )

    def generate_signals(self, prices: pd.Series, **context: Any) -> pd.Series:
        b = self.bands(prices)
        exit_line = b["middle"] if self.exit_band == "middle" else b["upper"]
        return to_signal_series(b["close"] < b["lower"], b["close"] > exit_line, prices.index)

    def generate_scores(self, prices: pd.Series, **context: Any) -> pd.Series:
        b = self.bands(prices)
        percent_b = (b["close"] - b["lower"]) / (b["upper"] - b["lower"])
        return (-percent_b).reindex(prices.index)

    def indicators(self, close, open, high, low):
        middle, var = rolling_mean_var(close, self.window, ddof=0)
        sigma = np.sqrt(var)
        return {"middle": middle, "lower": middle - self.num_std * sigma, "upper": middle + self.num_std * sigma}

    def signals_from(self, ind, valid):
        close = ind["close"]
        exit_line = ind["middle"] if self.exit_band == "middle" else ind["upper"]
        return signal_matrix(close < ind["lower"], close > exit_line)

    def scores_from(self, ind, valid):
        return -(ind["close"] - ind["lower"]) / (ind["upper"] - ind["lower"])
