"""The strategy library (strategies.library): parameters, hand-computed signals of every strategy,
the vectorised form against the per-symbol pandas form, missing bars. No database, no Django."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from strategies.library import Parameter, ParameterError, Strategy, all_strategies, get_strategy
from strategies.library.numeric import (
    compaction_for,
    rank_rows,
    rolling_mean,
    rolling_mean_var,
    rolling_zscore,
    wilder_average,
    window_sums,
)

ROOT = Path(__file__).resolve().parents[2]
BUILT_IN = {"mean_reversion", "ma_crossover", "rsi", "bollinger", "momentum_12_1", "dual_momentum", "volatility_breakout"}


def series(values, name="A") -> pd.Series:
    return pd.Series([float(v) for v in values], index=pd.date_range("2024-01-01", periods=len(values), freq="B"), name=name)


def both_forms(strategy: Strategy, prices: pd.Series, ohlc: pd.DataFrame | None = None):
    """(per-symbol signals, per-symbol scores, matrix signals, matrix scores) for one symbol."""
    context = {"ohlc": ohlc} if strategy.needs_ohlc else {}
    sig, score = strategy.generate_signals_and_scores(prices, **context)
    extra = {k: ohlc[[k]].to_numpy() for k in ("open", "high", "low")} if strategy.needs_ohlc else {}
    msig, mscore = strategy.signals_and_scores(prices.to_frame().to_numpy(), **extra)
    return sig.to_numpy(), score.to_numpy(), msig[:, 0], mscore[:, 0]


# --- parameters ---------------------------------------------------------------------------------


def test_defaults_of_mean_reversion_are_the_design():
    s = get_strategy("mean_reversion")()
    assert s.params == {"window": 20, "z_threshold": 2.0, "stop_loss": -0.05, "take_profit": 0.11}
    assert (s.window, s.z_threshold, s.stop_loss, s.take_profit) == (20, 2.0, -0.05, 0.11)


def test_every_strategy_declares_exit_parameters_with_korean_labels():
    assert BUILT_IN <= set(all_strategies())
    for key, cls in all_strategies().items():
        specs = {p.name: p for p in cls.parameter_specs()}
        assert {"stop_loss", "take_profit"} <= set(specs), key
        for spec in specs.values():
            assert spec.label and spec.help, (key, spec.name)
            assert any("\uac00" <= ch <= "\ud7a3" for ch in spec.label + spec.help), (key, spec.name)
        json.dumps(cls.describe(), ensure_ascii=False)  # JSON-friendly for forms and the API
        assert cls.name and cls.description


def test_validate_params_fills_defaults_and_converts():
    cls = get_strategy("mean_reversion")
    assert cls.validate_params({"window": "30", "z_threshold": 1}) == {
        "window": 30, "z_threshold": 1.0, "stop_loss": -0.05, "take_profit": 0.11,
    }
    assert cls.validate_params({"window": 25.0})["window"] == 25
    assert isinstance(cls.validate_params({"window": np.int64(21)})["window"], int)
    assert get_strategy("ma_crossover").validate_params({"mode": "trend"})["mode"] == "trend"


@pytest.mark.parametrize(
    ("params", "name", "fragment"),
    [
        ({"windw": 20}, "windw", "알 수 없는 파라미터입니다: windw"),
        ({"window": "abc"}, "window", "정수여야 합니다"),
        ({"window": 20.5}, "window", "정수여야 합니다"),
        ({"window": True}, "window", "정수여야 합니다"),
        ({"window": None}, "window", "정수여야 합니다"),
        ({"window": 1}, "window", "2 이상 250 이하이어야 합니다 (입력값: 1)"),
        ({"window": 251}, "window", "2 이상 250 이하"),
        ({"z_threshold": "high"}, "z_threshold", "숫자여야 합니다"),
        ({"z_threshold": float("nan")}, "z_threshold", "유한한 숫자"),
        ({"z_threshold": 0}, "z_threshold", "0.1 이상 10 이하"),
        ({"stop_loss": 0.05}, "stop_loss", "'손절 기준'(stop_loss) 값은 -0.9 이상 -0.001 이하"),
        ({"take_profit": -0.1}, "take_profit", "'익절 기준'(take_profit)"),
    ],
)
def test_validate_params_rejects_with_korean_messages(params, name, fragment):
    with pytest.raises(ParameterError) as err:
        get_strategy("mean_reversion").validate_params(params)
    assert name in err.value.errors
    assert fragment in err.value.errors[name]
    assert fragment in str(err.value)


def test_validate_params_reports_every_bad_parameter_and_choices():
    with pytest.raises(ParameterError) as err:
        get_strategy("ma_crossover").validate_params({"short_window": 0, "mode": "fast", "extra": 1})
    assert set(err.value.errors) == {"short_window", "mode", "extra"}
    assert "cross, trend" in err.value.errors["mode"]


@pytest.mark.parametrize(
    ("key", "params", "name"),
    [
        ("ma_crossover", {"short_window": 20, "long_window": 20}, "short_window"),
        ("rsi", {"oversold": 50, "overbought": 50}, "oversold"),
        ("momentum_12_1", {"lookback": 30, "skip": 30}, "skip"),
    ],
)
def test_cross_parameter_checks(key, params, name):
    with pytest.raises(ParameterError) as err:
        get_strategy(key)(params)
    assert name in err.value.errors


def test_parameter_declaration_errors_are_caught_early():
    with pytest.raises(TypeError):
        Parameter("x", "int", 5, min=10, max=20, label="엑스")  # default out of bounds
    with pytest.raises(TypeError):
        Parameter("x", "choice", "a", label="엑스")  # no choices
    with pytest.raises(TypeError):
        Parameter("x", "str", "a", label="엑스")  # unknown type
    assert Parameter("x", "choice", "a", choices=("a", "b")).as_dict()["choices"] == ["a", "b"]


# --- hand-computed signals ----------------------------------------------------------------------
# Each case: the per-symbol pandas form and the matrix form must both give these numbers.


def test_mean_reversion_by_hand():
    # window 3, sample std. t2: [10,12,14] mean 12, std 2 → z = 1; t3: [12,14,11] mean 37/3,
    # std √(14/3 / 2) = 1.5275 → z = −0.8729; t4: [14,11,8] mean 11, std 3 → z = −1;
    # t5: [11,8,20] mean 13, std √39 → z = 7/√39 = 1.1209. Threshold 0.9.
    s = get_strategy("mean_reversion")(window=3, z_threshold=0.9)
    prices = series([10, 12, 14, 11, 8, 20])
    z = [math.nan, math.nan, 1.0, (11 - 37 / 3) / math.sqrt((14 / 3) / 2), -1.0, 7 / math.sqrt(39)]
    sig, score, msig, mscore = both_forms(s, prices)
    np.testing.assert_array_equal(sig, [0, 0, -1, 0, 1, -1])
    np.testing.assert_array_equal(msig, sig)
    np.testing.assert_allclose(score, -np.array(z), rtol=1e-12)
    np.testing.assert_allclose(mscore, -np.array(z), rtol=1e-12)
    np.testing.assert_allclose(s.z_scores(prices).to_numpy(), z, rtol=1e-12)


def test_mean_reversion_flat_window_has_no_signal():
    s = get_strategy("mean_reversion")(window=3, z_threshold=0.5)
    sig, score, msig, mscore = both_forms(s, series([5, 5, 5, 5, 6]))
    np.testing.assert_array_equal(sig, [0, 0, 0, 0, -1])  # 0/0 on the flat windows
    np.testing.assert_array_equal(msig, sig)
    assert np.isnan(mscore[2]) and np.isnan(score[2])


def test_ma_crossover_by_hand():
    # short(2): 9.5, 8.5, 8.5, 10, 10.5, 9 (t1..t6); long(3): 9, 8.667, 9.333, 10, 9.667 (t2..t6)
    # short − long: t2 −0.5, t3 −0.167, t4 +0.667 (golden cross), t5 +0.5, t6 −0.667 (dead cross)
    prices = series([10, 9, 8, 9, 11, 10, 8])
    cross = get_strategy("ma_crossover")(short_window=2, long_window=3)
    sig, score, msig, mscore = both_forms(cross, prices)
    np.testing.assert_array_equal(sig, [0, 0, 0, 0, 1, 0, -1])
    np.testing.assert_array_equal(msig, sig)
    assert score[4] == pytest.approx((10 - 28 / 3) / (28 / 3)) and mscore[4] == pytest.approx(score[4])
    trend = get_strategy("ma_crossover")(short_window=2, long_window=3, mode="trend")
    sig, _, msig, _ = both_forms(trend, prices)
    np.testing.assert_array_equal(sig, [0, 0, -1, -1, 1, 1, -1])
    np.testing.assert_array_equal(msig, sig)


def test_rsi_wilder_by_hand():
    # changes +1 +1 −1 −1 −1 +3. Period 3: first averages (t3) gain 2/3, loss 1/3 → RSI 66.67;
    # t4: gain (2/3·2 + 0)/3 = 4/9, loss (1/3·2 + 1)/3 = 5/9 → 44.44; t5: gain 8/27, loss 19/27
    # → 29.63 (< 30: buy); t6: gain (16/27 + 3)/3 = 97/81, loss 38/81 → 71.86 (> 70: sell).
    s = get_strategy("rsi")(period=3)
    prices = series([10, 11, 12, 11, 10, 9, 12])
    expected = [math.nan] * 3 + [200 / 3, 400 / 9, 800 / 27, 100 * 97 / 135]
    np.testing.assert_allclose(s.rsi_series(prices).to_numpy(), expected, rtol=1e-12)
    sig, score, msig, mscore = both_forms(s, prices)
    np.testing.assert_array_equal(sig, [0, 0, 0, 0, 0, 1, -1])
    np.testing.assert_array_equal(msig, sig)
    np.testing.assert_allclose(mscore, -np.array(expected), rtol=1e-12)
    np.testing.assert_array_equal(mscore, score)


def test_rsi_without_losses_is_100_and_flat_is_50():
    s = get_strategy("rsi")(period=2)
    np.testing.assert_allclose(s.rsi_series(series([1, 2, 3, 4])).to_numpy()[2:], [100, 100])
    np.testing.assert_allclose(s.rsi_series(series([3, 3, 3])).to_numpy()[2:], [50])


def test_bollinger_by_hand():
    # window 3, population std, 1σ. t2: mean 12, σ √(8/3) → close 14 > middle: sell.
    # t3: mean 37/3, σ √(14/9) = 1.247 → lower 11.086 > close 11: buy. t4: mean 11, σ √6 →
    # lower 8.551 > 8: buy. t5: mean 13, σ √26 → upper 18.10 < 20: sell with either exit band.
    prices = series([10, 12, 14, 11, 8, 20])
    s = get_strategy("bollinger")(window=3, num_std=1.0)
    sig, score, msig, mscore = both_forms(s, prices)
    np.testing.assert_array_equal(sig, [0, 0, -1, 1, 1, -1])
    np.testing.assert_array_equal(msig, sig)
    lower = 37 / 3 - math.sqrt(14 / 9)
    assert score[3] == pytest.approx(-(11 - lower) / (2 * math.sqrt(14 / 9)), rel=1e-12)
    assert mscore[3] == pytest.approx(score[3], rel=1e-12)
    # Exit band: [14, 12, 14] has middle 13.33 and upper 13.33 + 0.943 = 14.28: a close of 14 is
    # above the middle (sell) but below the upper band (hold).
    between = series([10, 14, 12, 14])
    for exit_band, expected in (("middle", [0, 0, 0, -1]), ("upper", [0, 0, 0, 0])):
        strategy = get_strategy("bollinger")(window=3, num_std=1.0, exit_band=exit_band)
        sig, _, msig, _ = both_forms(strategy, between)
        np.testing.assert_array_equal(sig, expected)
        np.testing.assert_array_equal(msig, expected)


UNIVERSE = pd.DataFrame(
    {"A": [10, 11, 12, 13, 14], "B": [10, 10, 10, 9, 8], "C": [10, 12, 15, 16, 13]},
    index=pd.date_range("2024-01-01", periods=5, freq="B"), dtype=float,
)


def per_symbol_matrix(strategy: Strategy, universe: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    sigs, scores = [], []
    for col in universe.columns:
        sig, score = strategy.generate_signals_and_scores(universe[col], universe=universe)
        sigs.append(sig.to_numpy())
        scores.append(score.to_numpy())
    return np.column_stack(sigs), np.column_stack(scores)


def test_momentum_12_1_by_hand():
    # lookback 3, skip 1: mom_t = close[t−1] / close[t−3] − 1.
    # t3: A 12/10−1 = 0.2, B 0, C 0.5 → top 1 = C. t4: A 13/11−1, B 9/10−1 = −0.1 (sell), C 16/12−1.
    s = get_strategy("momentum_12_1")(lookback=3, skip=1, top_n=1)
    expected = np.array([[0, 0, 0], [0, 0, 0], [0, 0, 0], [0, 0, 1], [0, -1, 1]])
    sig, score = per_symbol_matrix(s, UNIVERSE)
    msig, mscore = s.signals_and_scores(UNIVERSE)
    np.testing.assert_array_equal(sig, expected)
    np.testing.assert_array_equal(msig.to_numpy(), expected)
    np.testing.assert_allclose(score[4], [13 / 11 - 1, -0.1, 16 / 12 - 1], rtol=1e-12)
    np.testing.assert_allclose(mscore.to_numpy(), score, rtol=1e-12)


def test_momentum_ties_go_to_the_first_column():
    universe = UNIVERSE.assign(D=UNIVERSE["C"])[["A", "B", "D", "C"]]  # D and C identical, D first
    s = get_strategy("momentum_12_1")(lookback=3, skip=1, top_n=1)
    msig = s.signals(universe)
    assert msig["D"].iloc[4] == 1 and msig["C"].iloc[4] == 0
    sig, _ = per_symbol_matrix(s, universe)
    np.testing.assert_array_equal(sig, msig.to_numpy())


def test_dual_momentum_by_hand():
    # lookback 2: ret_t = close[t]/close[t−2] − 1. t2: A 0.2, B 0 (≤ 0: sell), C 0.5 → top 2 C, A.
    # t4: A 14/12−1, B −0.2, C 13/15−1 < 0: C is in the top 2 but fails the absolute filter (sell).
    s = get_strategy("dual_momentum")(lookback=2, top_n=2)
    expected = np.array([[0, 0, 0], [0, 0, 0], [1, -1, 1], [1, -1, 1], [1, -1, -1]])
    sig, score = per_symbol_matrix(s, UNIVERSE)
    msig, mscore = s.signals_and_scores(UNIVERSE.to_numpy())
    np.testing.assert_array_equal(sig, expected)
    np.testing.assert_array_equal(msig, expected)
    np.testing.assert_allclose(mscore, score, rtol=1e-12)


def test_volatility_breakout_by_hand():
    ohlc = pd.DataFrame(
        {"open": [100, 104, 115, 105], "high": [110, 120, 118, 106], "low": [90, 100, 100, 104],
         "close": [105, 116, 104, 105]},
        index=pd.date_range("2024-01-01", periods=4, freq="B"), dtype=float,
    )
    # t1: target 104 + 0.5·20 = 114 < 116: buy, score (116−114)/104. t2: floor 115 − 0.5·20 = 105
    # > 104: sell. t3: range 18 → target 114, floor 96: nothing.
    s = get_strategy("volatility_breakout")(k=0.5)
    sig, score, msig, mscore = both_forms(s, ohlc["close"], ohlc)
    np.testing.assert_array_equal(sig, [0, 1, -1, 0])
    np.testing.assert_array_equal(msig, sig)
    assert score[1] == pytest.approx(2 / 104) and mscore[1] == pytest.approx(2 / 104)
    # The moving-average filter: 116 is above the 2-bar mean (105 + 116)/2.
    filtered = get_strategy("volatility_breakout")(k=0.5, ma_window=2)
    assert list(both_forms(filtered, ohlc["close"], ohlc)[2]) == [0, 1, -1, 0]
    with pytest.raises(ValueError, match="시가"):
        s.signals(ohlc[["close"]].to_numpy())


# --- missing bars -------------------------------------------------------------------------------


def test_windows_count_the_symbols_own_bars():
    """A suspension pauses the window: the signals on the traded days equal those without the gap."""
    rng = np.random.default_rng(3)
    values = np.round(10_000 * np.exp(np.cumsum(rng.normal(0, 0.03, 80))))
    full = series(values)
    gapped = full.copy()
    gapped.iloc[30:35] = np.nan  # suspended 5 days
    gapped = pd.concat([pd.Series(np.nan, index=pd.date_range("2023-06-01", periods=10, freq="B")), gapped])
    gapped.name = "A"
    s = get_strategy("mean_reversion")(window=10, z_threshold=1.0)
    own_bars = s.generate_signals(gapped.dropna())
    sig, _, msig, mscore = both_forms(s, gapped)
    traded = gapped.notna().to_numpy()
    np.testing.assert_array_equal(sig[traded], own_bars.to_numpy())
    np.testing.assert_array_equal(msig, sig)
    assert not msig[~traded].any() and np.isnan(mscore[~traded]).all()
    assert (own_bars != 0).sum() > 5


def demo_frames(n_symbols=24, n_days=420, holes=0.02, seed=5):
    from market.demo import generate_bars, generate_universe

    days = pd.bdate_range("2022-01-03", periods=n_days)
    universe = generate_universe(n_symbols)
    bars = generate_bars(universe, [d.date() for d in days])
    frames = {
        field: pd.DataFrame({s["code"]: bars[s["code"]][field] for s in universe}, index=days).astype(float)
        for field in ("open", "high", "low", "close")
    }
    rng = np.random.default_rng(seed)
    mask = rng.random(frames["close"].shape) < holes
    mask[:150, 2] = True  # listed late
    mask[-60:, 4] = True  # delisted
    mask[100:130, 6] = True  # long suspension
    return {k: v.mask(mask) for k, v in frames.items()}


@pytest.fixture(scope="module")
def frames():
    return demo_frames()


def small_params(key: str) -> dict:
    return {"momentum_12_1": {"lookback": 60, "skip": 5, "top_n": 5}, "dual_momentum": {"lookback": 60, "top_n": 5},
            "volatility_breakout": {"ma_window": 5}}.get(key, {})


@pytest.mark.parametrize("key", sorted(BUILT_IN))
def test_vectorised_form_gives_the_same_numbers_as_the_per_symbol_form(key, frames):
    s = get_strategy(key)(small_params(key))
    extra = {k: frames[k] for k in ("open", "high", "low")} if s.needs_ohlc else {}
    msig, mscore = s.signals_and_scores(frames["close"], **extra)
    assert isinstance(msig, pd.DataFrame) and msig.dtypes.iloc[0] == np.int8
    n_signals = 0
    for code in frames["close"].columns:
        context = {}
        if s.needs_ohlc:
            context["ohlc"] = pd.DataFrame({k: frames[k][code] for k in ("open", "high", "low", "close")})
        if s.cross_sectional:
            context["universe"] = frames["close"]
        sig = s.generate_signals(frames["close"][code], **context)
        score = s.generate_scores(frames["close"][code], **context)
        np.testing.assert_array_equal(sig.to_numpy(), msig[code].to_numpy(), err_msg=f"{key} {code}")
        np.testing.assert_allclose(score.to_numpy(), mscore[code].to_numpy(), rtol=1e-9, atol=1e-12)
        n_signals += int((sig != 0).sum())
    assert n_signals > 50
    no_bar = frames["close"].isna().to_numpy()
    assert not msig.to_numpy()[no_bar].any() and np.isnan(mscore.to_numpy()[no_bar]).all()


def test_vectorised_form_in_blocks_equals_one_block(frames, monkeypatch):
    import strategies.library.base as base

    s = get_strategy("bollinger")(window=10)  # a strategy on the numpy hooks (mean reversion is compiled)
    whole = s.signals_and_scores(frames["close"].to_numpy())
    monkeypatch.setattr(base, "BLOCK_CELLS", 1)  # blocks of 8 columns
    blocked = s.signals_and_scores(frames["close"].to_numpy())
    np.testing.assert_array_equal(whole[0], blocked[0])
    np.testing.assert_array_equal(whole[1], blocked[1])


# --- numeric helpers ----------------------------------------------------------------------------


def test_window_sums_match_a_naive_sum():
    rng = np.random.default_rng(1)
    x = rng.integers(1, 1_000_000, (300, 7)).astype(float)
    x[50, 3] = np.nan
    for window in (1, 2, 3, 7, 20, 33, 64, 250):
        got = window_sums(x, window)
        want = np.array([x[i : i + window].sum(axis=0) for i in range(len(x) - window + 1)])
        np.testing.assert_array_equal(got, want)  # whole numbers: exact


def test_rolling_helpers_match_pandas():
    rng = np.random.default_rng(2)
    x = np.round(np.exp(rng.normal(10, 1, (400, 5))))
    frame = pd.DataFrame(x)
    mean, var = rolling_mean_var(x, 20)
    np.testing.assert_allclose(mean, frame.rolling(20).mean(), rtol=1e-13)
    np.testing.assert_allclose(var, frame.rolling(20).var(), rtol=1e-9)
    np.testing.assert_allclose(rolling_mean_var(x, 20, ddof=0)[1], frame.rolling(20).var(ddof=0), rtol=1e-9)
    np.testing.assert_allclose(rolling_mean(x, 5), frame.rolling(5).mean(), rtol=1e-13)
    z = (frame - frame.rolling(20).mean()) / frame.rolling(20).std()
    np.testing.assert_allclose(rolling_zscore(x, 20), z, rtol=1e-8)
    # The exact path: mean and variance of whole numbers are one rounding of the exact value.
    window = x[:20, 0]
    assert mean[19, 0] == math.fsum(window) / 20
    from fractions import Fraction

    exact = (20 * sum(Fraction(int(v)) ** 2 for v in window) - sum(Fraction(int(v)) for v in window) ** 2) / 380
    assert var[19, 0] == float(exact)


def test_compaction_roundtrip_and_edges():
    x = np.arange(24, dtype=float).reshape(8, 3)
    x[[2, 3], 0] = np.nan  # gap: compacted
    x[:3, 1] = np.nan  # listed late: contiguous, left alone unless edges
    comp = compaction_for(np.isfinite(x))
    assert comp.holed_cols.tolist() == [0]
    dense = comp.compact(x)
    assert dense[:, 0].tolist()[:6] == [0, 3, 12, 15, 18, 21] and np.isnan(dense[6:, 0]).all()
    np.testing.assert_array_equal(comp.expand(dense.copy()), x)
    assert compaction_for(np.isfinite(x), edges=True).holed_cols.tolist() == [0, 1]
    assert compaction_for(np.ones((3, 2), dtype=bool)) is None


def test_wilder_average_and_rank_rows():
    values = np.array([[np.nan], [1.0], [1.0], [0.0], [3.0]])
    np.testing.assert_allclose(wilder_average(values, 3)[:, 0], [np.nan, np.nan, np.nan, 2 / 3, (4 / 3 + 3) / 3])
    keys = np.array([[1.0, 3.0, 3.0, np.nan]])
    ranks = rank_rows(keys, np.isfinite(keys))
    assert ranks.tolist() == [[2, 0, 1, 4]]


# --- purity ---------------------------------------------------------------------------------------


def test_library_and_backtest_import_no_django():
    code = (
        "import sys; import strategies.library, strategies.library.registry as r, strategies.backtest, "
        "strategies.backtest.synthetic; r.all_strategies(); "
        "bad = [m for m in sys.modules if m == 'django' or m.startswith('django.')]; "
        "assert not bad, bad; print('ok')"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"
    for folder in ("strategies/library", "strategies/backtest"):
        for path in (ROOT / folder).glob("*.py"):
            text = path.read_text(encoding="utf-8")
            assert "import django" not in text and "from django" not in text, path
