"""The compiled mean-reversion kernel gives the numpy form's numbers, bar for bar."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from strategies.library import get_strategy
from strategies.library.kernels import zscore_signals
from strategies.library.numeric import rolling_zscore


def prices(t: int, n: int, seed: int = 11, holes: float = 0.03) -> np.ndarray:
    rng = np.random.default_rng(seed)
    x = np.round(20_000 * np.exp(np.cumsum(rng.normal(0, 0.02, (t, n)), axis=0)))
    x[rng.random((t, n)) < holes] = np.nan
    x[:40, 1] = np.nan  # listed late
    x[-25:, 2] = np.nan  # delisted
    x[60:90, 3] = np.nan  # long suspension
    return x


def own_bar_zscores(x: np.ndarray, window: int) -> np.ndarray:
    """numeric.rolling_zscore on each column's own bars, scattered back to the dates."""
    z = np.full(x.shape, np.nan)
    for j in range(x.shape[1]):
        rows = np.flatnonzero(np.isfinite(x[:, j]))
        if rows.size:
            z[rows, j] = rolling_zscore(x[rows, j][:, None], window)[:, 0]
    return z


@pytest.mark.parametrize("window", [2, 5, 20, 61])
def test_kernel_equals_the_numpy_form_bit_for_bit_on_whole_prices(window):
    x = prices(300, 37)
    with np.errstate(invalid="ignore", divide="ignore"):
        z = own_bar_zscores(x, window)  # 37 columns: blocks of 16 with a ragged last block
    signals, scores = zscore_signals(x, window, 1.5, 1)
    np.testing.assert_array_equal(scores, -z)  # NaN in the same places, equal bits elsewhere
    expected = np.where(z < -1.5, 1, np.where(z > 1.5, -1, 0))
    np.testing.assert_array_equal(signals, expected)
    if window > 2:  # with two bars |z| is always 1/sqrt(2)
        assert (signals == 1).sum() > 20 and (signals == -1).sum() > 20


def test_kernel_on_fractional_prices_matches_pandas():
    """Adjusted (fractional) prices: the window is summed afresh, so no error accumulates."""
    x = prices(400, 5) / 3.0
    _, scores = zscore_signals(x, 20, 2.0, 1)
    for j in range(x.shape[1]):
        bars = pd.Series(x[:, j]).dropna()
        expected = (bars - bars.rolling(20).mean()) / bars.rolling(20).std()
        np.testing.assert_allclose(-scores[bars.index, j], expected.to_numpy(), rtol=1e-9, atol=1e-12)


def test_flat_window_gives_no_signal_and_short_history_none():
    x = np.full((30, 2), 1000.0)
    x[:, 1] = np.nan
    x[25:, 1] = 5000.0  # five bars only
    signals, scores = zscore_signals(x, 20, 2.0, 1)
    assert not signals.any()
    assert np.isnan(scores[:19]).all() and np.isnan(scores[:, 1]).all()
    assert np.isnan(scores[19:, 0]).all()  # 0 / 0: no z on a flat window, as pandas gives


def test_mean_reversion_uses_the_kernel_on_frames_and_arrays():
    x = prices(120, 6)
    s = get_strategy("mean_reversion")(window=10, z_threshold=1.0)
    sig, score = s.signals_and_scores(pd.DataFrame(x))
    kernel_sig, kernel_score = zscore_signals(x, 10, 1.0, 1)
    np.testing.assert_array_equal(sig.to_numpy(), kernel_sig)
    np.testing.assert_array_equal(score.to_numpy(), kernel_score)
