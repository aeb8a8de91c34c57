"""Volatility breakout (변동성 돌파, Larry Williams' k-breakout), on daily bars.

Per symbol, on its own bars: range_{t−1} = high_{t−1} − low_{t−1} (the previous bar);
target_t = open_t + k · range_{t−1}. Buy (+1) when the day broke out upwards: close_t > target_t
(and, with ``ma_window`` > 0, close_t above its ``ma_window``-bar moving average: the popular
moving-average filter). Sell (−1) when it broke out downwards: close_t < open_t − k · range_{t−1}.
Score: (close_t − target_t) / open_t, the strongest breakout first. Needs open/high/low.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from strategies.library.base import Parameter, Strategy, signal_matrix, to_signal_series
from strategies.library.numeric import rolling_mean, shift_rows


class VolatilityBreakout(Strategy):
    key = "volatility_breakout"
    name = "변동성 돌파 (래리 윌리엄스)"
    description = (
        "당일 시가에 전일 고가-저가 폭의 k배를 더한 목표가를 종가가 넘으면 매수, 시가에서 같은 폭만큼 뺀 가격 아래로 "
        "마감하면 매도 신호를 냅니다. 이동평균 필터를 켜면 종가가 이동평균 위일 때만 매수합니다."
    )
    name_en = "Volatility breakout (Larry Williams)"
    description_en = (
        "Buy when the close beats the target of the day's open plus k times the previous day's high-low range; "
        "sell when it closes below the open minus the same range. With the moving-average filter on, buy only "
        "when the close is above the moving average."
    )
    needs_ohlc = True
    parameters = (
        Parameter("k", "float", 0.5, min=0.1, max=1.5, step=0.05, label="k 값", help="전일 변동폭(고가-저가)에 곱할 배수",
                  label_en="k", help_en="Multiple of the previous day's range (high - low)"),
        Parameter(
            "ma_window", "int", 0, min=0, max=250, label="이동평균 필터",
            help="0이면 끔; 양수이면 종가가 그 기간의 이동평균보다 높을 때만 매수",
            label_en="Moving-average filter",
            help_en="0: off; otherwise buy only when the close is above the moving average of that many days",
        ),
    )

    @property
    def warmup(self) -> int:
        return max(2, self.ma_window)

    def _frame(self, prices: pd.Series, ohlc: pd.DataFrame | None) -> pd.DataFrame:
        if ohlc is None:
            raise ValueError(f"{self.key} 전략은 시가·고가·저가(ohlc)가 필요합니다")
        bars = ohlc.loc[prices.notna(), ["open", "high", "low"]].astype(float)
        bars["close"] = prices[prices.notna()].astype(float)
        prev_range = (bars["high"] - bars["low"]).shift(1)
        bars["target"] = bars["open"] + self.k * prev_range
        bars["floor"] = bars["open"] - self.k * prev_range
        return bars

    def generate_signals(self, prices: pd.Series, **context: Any) -> pd.Series:
        bars = self._frame(prices, context.get("ohlc"))
        buy = bars["close"] > bars["target"]
        if self.ma_window:
            buy &= bars["close"] > bars["close"].rolling(self.ma_window).mean()
        return to_signal_series(buy, bars["close"] < bars["floor"], prices.index)

    def generate_scores(self, prices: pd.Series, **context: Any) -> pd.Series:
        bars = self._frame(prices, context.get("ohlc"))
        return ((bars["close"] - bars["target"]) / bars["open"]).reindex(prices.index)

    def indicators(self, close, open, high, low):
        prev_range = shift_rows(high - low, 1)
        ind = {"target": open + self.k * prev_range, "floor": open - self.k * prev_range}
        if self.ma_window:
            ind["ma"] = rolling_mean(close, self.ma_window)
        return ind

    def signals_from(self, ind, valid):
        close = ind["close"]
        buy = close > ind["target"]
        if self.ma_window:
            buy &= close > ind["ma"]
        return signal_matrix(buy, close < ind["floor"])

    def scores_from(self, ind, valid):
        return (ind["close"] - ind["target"]) / ind["open"]
