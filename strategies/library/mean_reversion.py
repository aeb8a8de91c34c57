"""Mean reversion on the rolling z-score of the close (the design's strategy).

z = (close − rolling mean) / rolling SAMPLE std (ddof = 1) over ``window`` closes (the current one
included); buy (+1) when z < −z_threshold, sell (−1) when z > z_threshold. Buy candidates are
ranked by z ascending (the most oversold first): the score is −z.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from strategies.library.base import Parameter, Strategy, on_bars
from strategies.library.kernels import zscore_signals


class MeanReversion(Strategy):
    key = "mean_reversion"
    name = "평균회귀 (Z-점수)"
    description = (
        "종가의 이동평균과 표본표준편차로 Z-점수를 구해, Z가 -임계값보다 낮으면 매수, "
        "+임계값보다 높으면 매도 신호를 냅니다. 매수 후보는 Z가 낮은 순서로 고릅니다."
    )
    name_en = "Mean reversion (z-score)"
    description_en = (
        "Computes the z-score of the close from its moving average and sample standard deviation: buy when z is "
        "below -threshold, sell when it is above +threshold. Buy candidates are taken lowest z first."
    )
    parameters = (
        Parameter("window", "int", 20, min=2, max=250, label="기간", help="이동평균·표준편차를 계산할 거래일 수",
                  label_en="Window", help_en="Trading days of the moving average and standard deviation"),
        Parameter(
            "z_threshold", "float", 2.0, min=0.1, max=10.0, step=0.1,
            label="Z 임계값", help="Z가 -임계값 미만이면 매수, +임계값 초과이면 매도",
            label_en="Z threshold", help_en="Buy when z is below -threshold, sell when it is above +threshold",
        ),
        Parameter(
            "stop_loss", "float", -0.05, min=-0.9, max=-0.001, step=0.005,
            label="손절 기준", help="진입가 대비 종가 수익률이 이 값 이하이면 매도 (-0.05 = -5%)",
            label_en="Stop-loss", help_en="Sell when the return on the entry price is at or below this (-0.05 = -5%)",
        ),
        Parameter(
            "take_profit", "float", 0.11, min=0.001, max=5.0, step=0.005,
            label="익절 기준", help="진입가 대비 종가 수익률이 이 값 이상이면 매도 (0.11 = +11%)",
            label_en="Take-profit", help_en="Sell when the return on the entry price is at or above this (0.11 = +11%)",
        ),
    )

    @property
    def warmup(self) -> int:
        return self.window

    # --- the design's form ------------------------------------------------------------------------

    def z_scores(self, prices: pd.Series) -> pd.Series:
        prices = on_bars(prices)
        rolling_mean = prices.rolling(window=self.window).mean()
        rolling_std = prices.rolling(window=self.window).std()  # sample std, ddof=1
        return (prices - rolling_mean) / rolling_std

    def generate_signals(self, prices: pd.Series, **context: Any) -> pd.Series:
        return self.generate_signals_and_scores(prices)[0]

    def generate_scores(self, prices: pd.Series, **context: Any) -> pd.Series:
        return self.generate_signals_and_scores(prices)[1]

    def generate_signals_and_scores(self, prices: pd.Series, **context: Any) -> tuple[pd.Series, pd.Series]:
        z_score = self.z_scores(prices)
        signals = pd.Series(0, index=z_score.index, dtype="int8")
        signals[z_score < -self.z_threshold] = 1
        signals[z_score > self.z_threshold] = -1
        return signals.reindex(prices.index, fill_value=0), (-z_score).reindex(prices.index)

    # --- sweeps: the z-score of one window serves every threshold ---------------------------------

    sweep_threshold = "z_threshold"

    def threshold_keys(self, close, open, high, low):
        return zscore_signals(close, self.window, self.z_threshold)[1]  # −z: buy where −z > threshold

    # --- vectorised: one compiled pass (strategies.library.kernels) ------------------------------

    def compiled_signals(self, close, open, high, low):
        return zscore_signals(close, self.window, self.z_threshold)
