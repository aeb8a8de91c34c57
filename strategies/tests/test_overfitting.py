"""The overfitting statistics (strategies.research.overfitting) against the papers' worked example,
direct formulas, Monte Carlo and a loop-by-loop CSCV written here independently."""

import itertools
import json
import math
import time

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from strategies.research.overfitting import (
    DeflatedSharpe,
    deflated_sharpe_ratio,
    deflated_sharpe_ratio_from_stats,
    deflated_sharpe_ratio_of_best,
    expected_max_sharpe,
    explain_ko,
    probabilistic_sharpe_ratio,
    probability_of_backtest_overfitting,
    sharpe_ratio,
    sharpe_ratios,
    split_combinations,
)

# ------------------------------------------------------------------------------------ Sharpe


def test_sharpe_ratio_is_mean_over_sample_std_annualised_by_root_52():
    r = np.random.default_rng(0).normal(0.002, 0.03, 200)
    per_period = r.mean() / r.std(ddof=1)
    assert sharpe_ratio(r, periods_per_year=1) == pytest.approx(per_period, rel=1e-12)
    assert sharpe_ratio(r) == pytest.approx(per_period * math.sqrt(52), rel=1e-12)
    matrix = np.column_stack([r, -r, np.zeros(200)])
    assert sharpe_ratios(matrix) == pytest.approx([per_period, -per_period, 0.0], rel=1e-12)


def test_sharpe_ratio_of_a_flat_series_is_zero_and_short_input_is_refused():
    assert sharpe_ratio(np.full(10, 0.01)) == 0.0
    with pytest.raises(ValueError, match="at least 2 returns"):
        sharpe_ratio([0.01])
    with pytest.raises(ValueError, match="NaN"):
        sharpe_ratio([0.01, float("nan"), 0.02])


# ---------------------------------------------------------------------------------- PSR, DSR


def test_deflated_sharpe_reproduces_the_papers_numerical_example():
    """Bailey & López de Prado (2014), "The Deflated Sharpe Ratio", section "A numerical example":
    N = 100 trials, V[SR_n] = 1/2 (annualised), T = 1250 daily returns (250 a year), γ3 = −3, γ4 = 10,
    best annualised SR 2.5. The paper finds E[max SR] ≈ 0.1132 (per day) and DSR ≈ 0.9004."""
    days = 250
    variance = 0.5 / days  # an annualised Sharpe is √250 times the daily one, its variance 250 times
    sr0 = expected_max_sharpe(100, variance)
    assert sr0 == pytest.approx(0.1132, abs=5e-5)
    result = deflated_sharpe_ratio_from_stats(
        2.5 / math.sqrt(days), 1250, -3.0, 10.0, 100, variance, periods_per_year=days
    )
    assert result.dsr == pytest.approx(0.9004, abs=5e-5)
    assert result.expected_max_sharpe == sr0
    assert result.expected_max_sharpe_annualised == pytest.approx(sr0 * math.sqrt(days))
    assert result.verdict == "likely_luck" and result.likely_luck  # 0.90 < 0.95: the investor declines


@pytest.mark.parametrize("n_trials", [10, 100, 1000])
def test_expected_max_sharpe_matches_monte_carlo_of_the_best_of_n_skill_less_trials(n_trials):
    variance = 0.003
    rng = np.random.default_rng(n_trials)
    draws = max(2000, 200_000 // n_trials)
    simulated = (rng.standard_normal((draws, n_trials)) * math.sqrt(variance)).max(axis=1).mean()
    # The paper's closed form approximates E[max of N normals]: within 2.5 % at N = 10, closer beyond.
    assert expected_max_sharpe(n_trials, variance) == pytest.approx(simulated, rel=0.035)


def test_expected_max_sharpe_is_zero_for_one_trial_and_grows_with_the_trials():
    assert expected_max_sharpe(1, 0.01) == 0.0
    values = [expected_max_sharpe(n, 0.01) for n in (2, 10, 100, 1000)]
    assert values == sorted(values) and values[0] > 0
    assert expected_max_sharpe(100, 0.04) == pytest.approx(2 * expected_max_sharpe(100, 0.01))
    with pytest.raises(ValueError, match="n_trials"):
        expected_max_sharpe(0, 0.01)
    with pytest.raises(ValueError, match="trial_sharpe_variance"):
        expected_max_sharpe(10, -0.01)


def test_probabilistic_sharpe_ratio_is_the_direct_formula():
    sr, benchmark, n, skew, kurtosis = 0.15, 0.05, 300, -0.8, 6.0
    z = (sr - benchmark) * math.sqrt(n - 1) / math.sqrt(1 - skew * sr + (kurtosis - 1) / 4 * sr**2)
    assert probabilistic_sharpe_ratio(sr, benchmark, n, skew, kurtosis) == pytest.approx(stats.norm.cdf(z), rel=1e-12)
    assert probabilistic_sharpe_ratio(0.1, 0.1, 50) == pytest.approx(0.5)
    with pytest.raises(ValueError, match="n_obs"):
        probabilistic_sharpe_ratio(0.1, 0.0, 1)
    with pytest.raises(ValueError, match="not moments"):
        probabilistic_sharpe_ratio(1.0, 0.0, 50, skew=5.0, kurtosis=1.0)


@pytest.mark.parametrize(("skew_sign", "skew", "kurtosis"), [(1, 2.0, 9.0), (-1, -2.0, 9.0)])
def test_probabilistic_sharpe_ratio_matches_the_sampling_distribution_of_skewed_returns(skew_sign, skew, kurtosis):
    """Returns σ·(±(Exp(1) − 1) + SR*) have Sharpe SR*, skewness ±2 and kurtosis 9: the share of
    samples whose estimated Sharpe falls below x is PSR(x) against SR* (the normal formula misses it by up to 0.07)."""
    rng = np.random.default_rng(11)
    n, samples, true_sr = 260, 20_000, 0.3
    returns = 0.02 * (skew_sign * (rng.exponential(size=(samples, n)) - 1.0) + true_sr)
    estimated = returns.mean(axis=1) / returns.std(axis=1, ddof=1)
    spread = math.sqrt((1 - skew * true_sr + (kurtosis - 1) / 4 * true_sr**2) / (n - 1))
    for q in (-1.5, -0.5, 0.5, 1.5):
        x = true_sr + q * spread
        assert probabilistic_sharpe_ratio(x, true_sr, n, skew, kurtosis) == pytest.approx(
            np.mean(estimated < x), abs=0.02
        )


def test_deflated_sharpe_ratio_of_returns_uses_their_sharpe_and_population_moments():
    rng = np.random.default_rng(3)
    best = rng.standard_t(5, 400) * 0.02 + 0.004
    trials = rng.normal(0.0, 0.05, 49).tolist() + [best.mean() / best.std(ddof=1)]
    result = deflated_sharpe_ratio(best, trials)
    expected = deflated_sharpe_ratio_from_stats(
        best.mean() / best.std(ddof=1),
        400,
        stats.skew(best),
        stats.kurtosis(best, fisher=False),
        50,
        np.var(trials, ddof=1),
    )
    assert result == expected
    assert isinstance(result, DeflatedSharpe)
    # n_trials overrides the count (an effective number of independent trials): fewer trials, less deflation.
    assert deflated_sharpe_ratio(best, trials, n_trials=10).dsr > result.dsr


def test_deflated_sharpe_ratio_input_errors_say_what_is_missing():
    r = np.random.default_rng(0).normal(0, 0.02, 100)
    with pytest.raises(ValueError, match="trial_sharpes, or both n_trials and trial_sharpe_variance"):
        deflated_sharpe_ratio(r, n_trials=10)
    with pytest.raises(ValueError, match="constant"):
        deflated_sharpe_ratio(np.full(100, 0.01), n_trials=10, trial_sharpe_variance=0.01)
    with pytest.raises(ValueError, match="trial_sharpes contains NaN"):
        deflated_sharpe_ratio(r, [0.1, float("nan")])
    with pytest.raises(ValueError, match="one-dimensional"):
        deflated_sharpe_ratio(np.zeros((10, 2)), n_trials=2, trial_sharpe_variance=0.1)


def test_deflated_sharpe_flags_the_best_of_noise_that_a_plain_psr_would_accept():
    """Sweeps of 50 skill-less sets: the best one's plain PSR against 0 passes 95 % in most sweeps,
    its DSR almost never."""
    rng = np.random.default_rng(5)
    sweeps, dsr_passes, psr_passes = 200, 0, 0
    for _ in range(sweeps):
        result = deflated_sharpe_ratio_of_best(rng.normal(0.0, 0.02, (260, 50)))
        dsr_passes += result.dsr >= 0.95
        psr_passes += probabilistic_sharpe_ratio(result.sharpe, 0.0, result.n_obs, result.skew, result.kurtosis) >= 0.95
    assert dsr_passes / sweeps <= 0.05
    assert psr_passes / sweeps >= 0.5


def test_deflated_sharpe_accepts_a_real_edge_and_names_the_best_column():
    rng = np.random.default_rng(8)
    sweep = pd.DataFrame(rng.normal(0.0, 0.02, (520, 100)), columns=[f"set{i}" for i in range(100)])
    sweep["set42"] += 0.006  # weekly Sharpe 0.3: annualised about 2.2
    result = deflated_sharpe_ratio_of_best(sweep)
    assert result.best_set == "set42"
    assert result.n_trials == 100 and result.n_obs == 520
    assert result.dsr > 0.95 and result.verdict == "significant" and not result.likely_luck
    assert result.sharpe > result.expected_max_sharpe
    json.dumps(result.as_dict())  # the API can send it as it is


# ----------------------------------------------------------------------------------------- PBO


def _naive_cscv(matrix, n_splits):
    """CSCV exactly as the paper lists it, one combination at a time."""
    t, n = matrix.shape
    rows = t // n_splits * n_splits
    blocks = np.split(matrix[t - rows :], n_splits)
    logits = []
    for chosen in itertools.combinations(range(n_splits), n_splits // 2):
        in_sample = np.vstack([blocks[i] for i in chosen])
        out_sample = np.vstack([blocks[i] for i in range(n_splits) if i not in chosen])
        sr_in = in_sample.mean(axis=0) / in_sample.std(axis=0, ddof=1)
        sr_out = out_sample.mean(axis=0) / out_sample.std(axis=0, ddof=1)
        omega = stats.rankdata(sr_out)[np.argmax(sr_in)] / (n + 1)
        logits.append(math.log(omega / (1 - omega)))
    logits = np.array(logits)
    return float(np.mean(logits <= 0)), logits


def test_pbo_equals_the_one_combination_at_a_time_cscv():
    matrix = np.random.default_rng(21).normal(0.0005, 0.02, (134, 30))  # 134 = 8 × 16 + 6 left out
    matrix = np.column_stack([matrix, matrix[:, :3]])  # duplicated sets: their OOS ties share a mean rank
    expected_pbo, expected_logits = _naive_cscv(matrix, 8)
    result = probability_of_backtest_overfitting(matrix, n_splits=8)
    assert result.n_combinations == math.comb(8, 4) == len(expected_logits) and result.exhaustive
    assert result.n_obs == 128 and result.n_dropped == 6
    assert result.logits == pytest.approx(expected_logits, abs=1e-12)
    assert result.pbo == expected_pbo

    # The same through the slow path of a metric function.
    def sharpe(rows):
        return rows.mean(axis=0) / rows.std(axis=0, ddof=1)

    by_function = probability_of_backtest_overfitting(matrix, n_splits=8, metric=sharpe)
    assert by_function.logits == pytest.approx(expected_logits, abs=1e-12) and by_function.metric == "sharpe"


def test_pbo_of_pure_noise_is_about_one_half():
    pbos = [
        probability_of_backtest_overfitting(np.random.default_rng(seed).normal(0.0, 0.02, (256, 50))).pbo
        for seed in range(8)
    ]
    # One noise matrix gives anything from about 0.3 to 0.7 (its combinations share the data); the mean of 8 is tight.
    assert 0.35 <= float(np.mean(pbos)) <= 0.65
    assert all(0.1 <= p <= 0.9 for p in pbos)


def test_pbo_of_a_set_with_a_true_edge_every_period_is_near_zero():
    matrix = np.random.default_rng(2).normal(0.0, 0.02, (520, 200))
    matrix[:, 17] += 0.01  # weekly Sharpe 0.5 in every block
    result = probability_of_backtest_overfitting(matrix)
    assert result.pbo <= 0.02 and result.verdict == "acceptable" and not result.likely_overfit
    assert result.logit_summary()["median"] == pytest.approx(math.log(200))  # the winner is first out-of-sample too
    assert result.probability_of_loss == 0.0


def test_pbo_of_sets_built_to_overfit_is_high_and_degrades_out_of_sample():
    """Each set earns in one half of the blocks (its own random half) and loses as much in the other:
    the in-sample winner is the set whose good half fell in-sample, so out-of-sample it loses."""
    rng = np.random.default_rng(4)
    n_splits, block, n_sets = 16, 16, 60
    good = np.array([rng.permutation(n_splits) < n_splits // 2 for _ in range(n_sets)]).T  # blocks × sets
    drift = np.repeat(np.where(good, 0.01, -0.01), block, axis=0)
    matrix = drift + rng.normal(0.0, 0.02, drift.shape)
    result = probability_of_backtest_overfitting(matrix, n_splits=n_splits)
    assert result.pbo >= 0.9 and result.verdict == "likely_overfit" and result.likely_overfit
    assert result.degradation_slope < 0
    assert result.probability_of_loss >= 0.9


def _block_with_sharpe(sharpe):
    """Two returns whose per-period Sharpe is exactly ``sharpe`` (std 0.01)."""
    return [0.01 * sharpe - 0.01 / math.sqrt(2), 0.01 * sharpe + 0.01 / math.sqrt(2)]


def test_pbo_counts_a_winner_exactly_at_the_out_of_sample_median_as_overfit():
    # Two blocks of two weeks, three sets with block Sharpe ratios A (3, 2), B (2, 3), C (1, 1): the
    # in-sample winner (A, then B) is second of three out-of-sample, ω = 2/4, λ = 0 both times.
    columns = [(3, 2), (2, 3), (1, 1)]
    matrix = np.array([_block_with_sharpe(a) + _block_with_sharpe(b) for a, b in columns]).T
    result = probability_of_backtest_overfitting(matrix, n_splits=2)
    assert result.n_combinations == 2
    assert result.relative_ranks == pytest.approx([0.5, 0.5])
    assert result.logits == pytest.approx([0.0, 0.0], abs=1e-12)
    assert result.pbo == 1.0  # PBO counts λ ≤ 0
    assert result.is_performance == pytest.approx([3, 3]) and result.oos_performance == pytest.approx([2, 2])


def test_pbo_shares_an_in_sample_tie_between_the_tied_sets():
    # Sets 0 and 1 are the same except in the last block; set 0 then loses, set 1 wins. Whenever the
    # last block is out-of-sample they tie in-sample, and ω is the mean of their two OOS ranks.
    rng = np.random.default_rng(10)
    matrix = rng.normal(0.0, 0.02, (80, 6))
    matrix[:, 0] += 0.02
    matrix[:, 1] = matrix[:, 0]
    matrix[-20:, 0] -= 0.05
    matrix[-20:, 1] += 0.05
    result = probability_of_backtest_overfitting(matrix, n_splits=4)
    combos, _ = split_combinations(4)
    for mask, omega in zip(combos, result.relative_ranks, strict=True):
        rows = np.repeat(mask, 20)
        sr_in, sr_out = (part.mean(axis=0) / part.std(axis=0, ddof=1) for part in (matrix[rows], matrix[~rows]))
        winners = [0, 1] if not mask[3] else [int(np.argmax(sr_in))]  # last block out-of-sample: a tie
        assert omega == pytest.approx(np.mean(stats.rankdata(sr_out)[winners]) / 7)
    swapped = probability_of_backtest_overfitting(matrix[:, [1, 0, 2, 3, 4, 5]], n_splits=4)
    assert np.array_equal(swapped.relative_ranks, result.relative_ranks)


def test_pbo_does_not_depend_on_column_order_even_with_tied_sets():
    rng = np.random.default_rng(9)
    matrix = rng.normal(0.0, 0.02, (160, 40))
    matrix = np.column_stack([matrix, matrix[:, :5]])  # five duplicated sets: ties in- and out-of-sample
    matrix[:, 0] += 0.004  # the in-sample winner more often among the duplicated sets
    base = probability_of_backtest_overfitting(matrix, n_splits=10)
    for seed in range(3):
        order = np.random.default_rng(seed).permutation(matrix.shape[1])
        shuffled = probability_of_backtest_overfitting(matrix[:, order], n_splits=10)
        assert np.array_equal(shuffled.logits, base.logits) and shuffled.pbo == base.pbo


def test_pbo_accepts_a_dataframe_and_reports_a_serialisable_summary():
    frame = pd.DataFrame(np.random.default_rng(6).normal(0, 0.02, (64, 12)), columns=[f"w{i}" for i in range(12)])
    result = probability_of_backtest_overfitting(frame, n_splits=4)
    assert result.n_sets == 12 and result.n_combinations == 6
    histogram = result.logit_histogram(bins=5)
    assert sum(histogram["counts"]) == 6 and len(histogram["edges"]) == 6
    payload = json.loads(json.dumps(result.as_dict(arrays=True)))
    assert payload["pbo"] == result.pbo and len(payload["logits"]) == 6
    assert set(payload["logit_summary"]) >= {"mean", "median", "q05", "q95"}


def test_split_combinations_sample_is_seeded_symmetric_and_distinct():
    full, exhaustive = split_combinations(16)
    assert exhaustive and full.shape == (12870, 16) and (full.sum(axis=1) == 8).all()
    assert len({row.tobytes() for row in full}) == 12870
    sample, exhaustive = split_combinations(20, max_combinations=400, seed=1)
    assert not exhaustive and sample.shape == (400, 20) and (sample.sum(axis=1) == 10).all()
    keys = {row.tobytes() for row in sample}
    assert len(keys) == 400 and all((~row).tobytes() in keys for row in sample)
    assert np.array_equal(sample, split_combinations(20, max_combinations=400, seed=1)[0])
    assert not np.array_equal(sample, split_combinations(20, max_combinations=400, seed=2)[0])


def test_pbo_samples_combinations_above_the_cap():
    matrix = np.random.default_rng(1).normal(0, 0.02, (200, 20))
    result = probability_of_backtest_overfitting(matrix, n_splits=20, max_combinations=1000, seed=3)
    assert result.n_combinations == 1000 and not result.exhaustive
    again = probability_of_backtest_overfitting(matrix, n_splits=20, max_combinations=1000, seed=3)
    assert np.array_equal(result.logits, again.logits)


@pytest.mark.parametrize(
    ("shape", "kwargs", "message"),
    [
        ((20, 5), {"n_splits": 16}, r"has 20 rows .* n_splits=16 needs at least 32"),
        ((100, 5), {"n_splits": 15}, "even number"),
        ((100, 5), {"n_splits": 0}, "even number"),
        ((100, 5), {"n_splits": 4.0}, "integer"),
        ((100, 1), {"n_splits": 4}, "at least 2 columns"),
        ((100, 5), {"n_splits": 4, "metric": "sortino"}, "metric must be one of"),
        ((100, 5), {"n_splits": 4, "max_combinations": 1}, "max_combinations"),
    ],
)
def test_pbo_input_errors_are_clear(shape, kwargs, message):
    with pytest.raises(ValueError, match=message):
        probability_of_backtest_overfitting(np.zeros(shape) + np.arange(shape[1]) * 1e-3, **kwargs)


def test_pbo_refuses_missing_returns_and_one_dimensional_input():
    matrix = np.random.default_rng(0).normal(0, 0.02, (64, 4))
    matrix[3, 2] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        probability_of_backtest_overfitting(matrix, n_splits=4)
    with pytest.raises(ValueError, match="two-dimensional"):
        probability_of_backtest_overfitting(np.zeros(64), n_splits=4)


def test_pbo_of_a_thousand_sets_over_ten_years_of_weeks_is_fast():
    matrix = np.random.default_rng(0).normal(0.0005, 0.02, (520, 1000))
    started = time.perf_counter()
    result = probability_of_backtest_overfitting(matrix)  # 16 blocks: all 12,870 combinations
    elapsed = time.perf_counter() - started
    assert result.n_combinations == 12870
    assert elapsed < 5.0, f"{elapsed:.2f} s"  # about 0.8 s on the 2-core CI machine


# ------------------------------------------------------------------------------------- Korean


def test_explain_ko_warns_when_the_best_result_is_likely_luck():
    rng = np.random.default_rng(12)
    noise = rng.normal(0.0, 0.02, (256, 50))
    built = np.repeat(np.where(np.array([rng.permutation(16) < 8 for _ in range(50)]).T, 0.01, -0.01), 16, axis=0)
    luck, overfit = deflated_sharpe_ratio_of_best(noise), probability_of_backtest_overfitting(built + noise)
    assert luck.likely_luck and overfit.likely_overfit
    lines = explain_ko(luck, overfit)
    warnings = [line for line in lines if line.startswith("주의")]
    assert len(warnings) == 2
    assert any("DSR" in w for w in warnings) and any("PBO" in w for w in warnings)
    assert any(f"{luck.dsr:.0%}" in line for line in lines) and any(f"{overfit.pbo:.0%}" in line for line in lines)
    assert any("50개" in line for line in lines)  # the number of sets tried
    assert any("워크포워드" in line for line in lines)


def test_explain_ko_has_no_warning_for_a_real_edge():
    matrix = np.random.default_rng(13).normal(0.0, 0.02, (520, 100))
    matrix[:, 0] += 0.008
    good_dsr, good_pbo = deflated_sharpe_ratio_of_best(matrix), probability_of_backtest_overfitting(matrix)
    lines = explain_ko(good_dsr, good_pbo)
    assert lines and not any(line.startswith("주의") for line in lines)
    assert any("보장하지는 않습니다" in line for line in lines)
    assert explain_ko(good_dsr, None) and not any("PBO" in line for line in explain_ko(good_dsr, None))
    assert explain_ko(None, None) == []
