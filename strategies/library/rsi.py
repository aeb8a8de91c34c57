"""RSI reversion with Wilder's smoothing.

Changes d_t = close_t − close_{t−1} (own bars); gain = max(d, 0), loss = max(−d, 0).
Wilder's averages: the first, at the ``period``-th change, is the simple mean of the first
``period`` gains (losses); then avg_t = (avg_{t−1} · (period − 1) + gain_t) / period.
RSI = 100 · avg_gain / (avg_gain + avg_loss) (= 100 − 100 / (1 + RS)); 50 when both are 0.
Buy (+1) when RSI < ``oversold``, sell (−1) when RSI > ``overbought``. Score: −RSI (the most
oversold first).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from strategies.library.base import Parameter, Strategy, on_bars, signal_matrix, to_signal_series
from strategies.library.numeric import shift_rows, wilder_average


def wilder_series(values: np.ndarray, period: int) -> np.ndarray:
    """Wilder's average of one symbol's gains (or losses); ``values[0]`` has no change (unused)."""
    out = np.full(len(values), np.nan)
    if len(values) <= period:
        return out
    total = 0.0
    for value in values[1 : period + 1]:
        total = total + value
    avg = total / period
    out[period] = avg
    for i in range(period + 1, len(values)):
        avg = (avg * (period - 1) + values[i]) / period
        out[i] = avg
    return out


def _rsi(avg_gain, avg_loss):
    both = avg_gain + avg_loss
    return np.where(both == 0, 50.0, 100.0 * avg_gain / np.where(both == 0, 1.0, both))


class RSIReversion(Strategy):
    key = "rsi"
    name = "RSI 역추세"
    description = (
        "와일더(Wilder) 방식으로 평활한 RSI가 과매도 기준보다 낮으면 매수, 과매수 기준보다 높으면 매도합니다. "
        "매수 후보는 RSI가 낮은 순서로 고릅니다."
    )
    name_en = "RSI reversal"
    description_en = (
        "Buy when the RSI, smoothed Wilder's way, is below the oversold level, sell when it is above the "
        "overbought level. Buy candidates are taken lowest RSI first."
    )
    parameters = (
        Parameter("period", "int", 14, min=2, max=100, label="RSI 기간", help="와일더 평활에 쓰는 거래일 수",
                  label_en="RSI period", help_en="Trading days of Wilder's smoothing"),
        Parameter("oversold", "float", 30.0, min=1.0, max=50.0, step=1, label="과매도 기준", help="RSI가 이 값 미만이면 매수",
                  label_en="Oversold", help_en="Buy when the RSI is below this"),
        Parameter("overbought", "float", 70.0, min=50.0, max=99.0, step=1, label="과매수 기준", help="RSI가 이 값 초과이면 매도",
                  label_en="Overbought", help_en="Sell when the RSI is above this"),
    )

    compact_edges = True  # Wilder's recursion starts at each symbol's first bar

    @classmethod
    def check_params(cls, params: dict[str, Any]) -> dict[str, str]:
        if params["oversold"] >= params["overbought"]:
            return {"oversold": "'과매도 기준'(oversold)은 '과매수 기준'(overbought)보다 작아야 합니다"}
        return {}

    @property
    def warmup(self) -> int:
        return self.period + 1

    def rsi_series(self, prices: pd.Series) -> pd.Series:
        prices = on_bars(prices)
        delta = prices.diff()
        gain = delta.clip(lower=0).to_numpy()
        loss = (-delta).clip(lower=0).to_numpy()
        avg_gain = wilder_series(gain, self.period)
        avg_loss = wilder_series(loss, self.period)
        with np.errstate(invalid="ignore"):
            return pd.Series(_rsi(avg_gain, avg_loss), index=prices.index)

    def generate_signals(self, prices: pd.Series, **context: Any) -> pd.Series:
        rsi = self.rsi_series(prices)
        return to_signal_series(rsi < self.oversold, rsi > self.overbought, prices.index)

    def generate_scores(self, prices: pd.Series, **context: Any) -> pd.Series:
        return (-self.rsi_series(prices)).reindex(prices.index)

    def indicators(self, close, open, high, low):
        delta = close - shift_rows(close, 1)
        gain = np.maximum(delta, 0.0)
        loss = np.maximum(-delta, 0.0)
        # np.maximum propagates NaN: row 0 and the padding of compacted columns stay NaN.
        return {"rsi": _rsi(wilder_average(gain, self.period), wilder_average(loss, self.period))}

    def signals_from(self, ind, valid):
        rsi = ind["rsi"]
        return signal_matrix(rsi < self.oversold, rsi > self.overbought)

    def scores_from(self, ind, valid):
        return -ind["rsi"]
