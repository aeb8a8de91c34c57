"""Is the best set of a sweep skill or luck? The deflated Sharpe ratio and the probability of backtest
overfitting, with their plain-Korean explanation. Pure numpy/pandas/scipy, no Django.

Units: weekly returns (fractions, 0.01 = 1 %) are the project's unit, 52 weeks a year, risk-free
rate 0. The statistics below work on the *per-period* (non-annualised) Sharpe ratio, as the papers
do; the annualised figure (× √52) is only for display.

Definitions
-----------
* Sharpe ratio of a return series r_1..r_T: SR = mean(r) / std(r, ddof=1) — the definition of
  ``strategies.backtest.metrics.curve_metrics`` (which applies it to daily equity inside a larger
  function, so there is nothing to import). A flat series (std ≈ 0: a set that never traded) has
  SR = 0: it took no risk and showed no edge.
* Probabilistic Sharpe ratio (Bailey & López de Prado 2012, "The Sharpe Ratio Efficient Frontier",
  J. of Risk 15(2), eq. for PSR; the variance of the estimated SR is Mertens' 2002 non-normal one):

      PSR(SR*) = Φ( (SR^ − SR*) · √(T − 1) / √(1 − γ3·SR^ + (γ4 − 1)/4 · SR^²) )

  with SR^ the observed per-period Sharpe, T the number of returns, γ3 their skewness and γ4 their
  kurtosis (non-excess: 3 for a normal distribution). It is the probability that the true Sharpe
  ratio exceeds SR*.
* Deflated Sharpe ratio (Bailey & López de Prado 2014, "The Deflated Sharpe Ratio: Correcting for
  Selection Bias, Backtest Overfitting and Non-Normality", J. of Portfolio Management 40(5)):
  DSR = PSR(SR0), where SR0 is the expected maximum of N per-period Sharpe ratios whose true value
  is 0 and whose estimates vary across the trials with variance V[{SR_n}]:

      SR0 = √V[{SR_n}] · ( (1 − γ) · Φ⁻¹(1 − 1/N) + γ · Φ⁻¹(1 − 1/(N·e)) ),  γ = 0.5772… (Euler–Mascheroni)

  (the paper's approximation of E[max] of N standard normals; SR0 = 0 for a single trial).
  N should be the number of *independent* trials; the number of sets of a sweep is an upper bound
  (their returns are correlated), which makes the test conservative. DSR ≥ 0.95 is the paper's
  threshold: below it the best result is not distinguishable from the luck of trying N sets.
* Probability of backtest overfitting (Bailey, Borwein, López de Prado & Zhu 2017, "The Probability
  of Backtest Overfitting", J. of Computational Finance 20(4); SSRN 2326253), by combinatorially
  symmetric cross-validation (CSCV): the T × N return matrix (N sets) is cut into S blocks of
  ⌊T/S⌋ consecutive rows (the T mod S oldest rows are left out). For every choice c of S/2 blocks
  as in-sample (IS) — the rest, in time order, is out-of-sample (OOS) — the set n* with the best
  IS metric is chosen; ω_c = rank of its OOS metric among the N OOS metrics / (N + 1) (ranks 1..N
  from worst, ties sharing their mean rank) and λ_c = ln(ω_c / (1 − ω_c)).
  PBO = share of combinations with λ_c ≤ 0: how often the IS winner is at or below the OOS median.
  Performance degradation: the least-squares line OOS metric = a + b · IS metric over the
  combinations (b < 0: the better it looked in-sample, the worse it did afterwards); probability of
  loss: share of combinations in which the IS winner's OOS metric is below 0.
  All C(S, S/2) combinations are used up to ``max_combinations``; above it a seeded random sample
  of combinations together with their complements (so IS and OOS still swap symmetrically).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

WEEKS_PER_YEAR = 52
EULER_GAMMA = float(np.euler_gamma)
DSR_CONFIDENCE = 0.95  # the paper's threshold of significance for DSR
PBO_THRESHOLD = 0.5  # above it the IS winner more often than not lands in the OOS bottom half
DEFAULT_MAX_COMBINATIONS = 20_000  # S = 16 (12,870 combinations, the paper's choice) stays exhaustive
METRICS = ("sharpe", "mean")

# Returns are fractions of capital; a standard deviation below this is rounding noise of a flat series.
_FLAT_STD = 1e-12
# Metrics are compared after rounding to this many decimals, so that two sets with the same returns
# tie whatever their column position (BLAS may round the same sums differently in different columns).
_COMPARE_DECIMALS = 12
# Combinations × sets processed at once: a few arrays of this many floats stay in the CPU cache.
_CHUNK_ELEMENTS = 1 << 18
_CHUNK = 512  # combinations at once for a metric function


# --------------------------------------------------------------------------------------------- input


def _as_returns(returns: Any, name: str = "returns") -> np.ndarray:
    x = np.asarray(returns, dtype=float)
    if x.ndim != 1:
        raise ValueError(f"{name} must be one-dimensional (one return per period), got shape {x.shape}")
    if not np.all(np.isfinite(x)):
        raise ValueError(f"{name} contains NaN or infinite values; a period without a position has return 0")
    return x


def _as_matrix(returns_matrix: Any) -> tuple[np.ndarray, list[Any]]:
    if isinstance(returns_matrix, pd.DataFrame):
        labels = list(returns_matrix.columns)
        m = returns_matrix.to_numpy(dtype=float)
    else:
        m = np.asarray(returns_matrix, dtype=float)
        labels = list(range(m.shape[1])) if m.ndim == 2 else []
    if m.ndim != 2:
        raise ValueError(f"returns_matrix must be two-dimensional (periods × parameter sets), got shape {m.shape}")
    if not np.all(np.isfinite(m)):
        raise ValueError("returns_matrix contains NaN or infinite values; a period without a position has return 0")
    return m, labels


# ------------------------------------------------------------------------------------------- Sharpe


def _sharpe(mean: np.ndarray, std: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(std > _FLAT_STD, mean / std, 0.0)


def sharpe_ratios(returns_matrix: Any) -> np.ndarray:
    """Per-period (non-annualised) Sharpe ratio of each column of a (periods × sets) matrix."""
    m, _ = _as_matrix(returns_matrix)
    if m.shape[0] < 2:
        raise ValueError(f"a Sharpe ratio needs at least 2 returns, got {m.shape[0]}")
    return _sharpe(m.mean(axis=0), m.std(axis=0, ddof=1))


def sharpe_ratio(returns: Any, periods_per_year: float = WEEKS_PER_YEAR) -> float:
    """Sharpe ratio of one return series, annualised by √periods_per_year (1 gives the per-period one)."""
    r = _as_returns(returns)
    if len(r) < 2:
        raise ValueError(f"a Sharpe ratio needs at least 2 returns, got {len(r)}")
    return float(_sharpe(np.array(r.mean()), np.array(r.std(ddof=1)))) * math.sqrt(periods_per_year)


# ------------------------------------------------------------------------------------ PSR and DSR


def probabilistic_sharpe_ratio(
    sr: float, sr_benchmark: float, n_obs: int, skew: float = 0.0, kurtosis: float = 3.0
) -> float:
    """P[true SR > sr_benchmark] given the observed per-period ``sr`` over ``n_obs`` returns with
    that skewness and (non-excess) kurtosis (Bailey & López de Prado 2012)."""
    if n_obs < 2:
        raise ValueError(f"n_obs must be at least 2, got {n_obs}")
    values = {"sr": sr, "sr_benchmark": sr_benchmark, "skew": skew, "kurtosis": kurtosis}
    bad = [k for k, v in values.items() if not math.isfinite(v)]
    if bad:
        raise ValueError(f"{', '.join(bad)} must be finite numbers")
    spread = 1.0 - skew * sr + (kurtosis - 1.0) / 4.0 * sr * sr
    if spread <= 0:
        # Impossible for moments of real data (kurtosis ≥ skew² + 1 keeps it positive).
        raise ValueError(f"skew={skew} and kurtosis={kurtosis} are not moments of any distribution")
    z = (sr - sr_benchmark) * math.sqrt(n_obs - 1) / math.sqrt(spread)
    return float(stats.norm.cdf(z))


def expected_max_sharpe(n_trials: float, trial_sharpe_variance: float) -> float:
    """Expected maximum per-period Sharpe of ``n_trials`` skill-less trials whose estimated Sharpe
    ratios have variance ``trial_sharpe_variance`` (Bailey & López de Prado 2014)."""
    if not n_trials >= 1:
        raise ValueError(f"n_trials must be at least 1, got {n_trials}")
    if not trial_sharpe_variance >= 0 or not math.isfinite(trial_sharpe_variance):
        raise ValueError(f"trial_sharpe_variance must be a finite number ≥ 0, got {trial_sharpe_variance}")
    if n_trials == 1:
        return 0.0  # nothing was selected: the null's expected Sharpe is 0
    n = float(n_trials)
    z = (1.0 - EULER_GAMMA) * stats.norm.ppf(1.0 - 1.0 / n) + EULER_GAMMA * stats.norm.ppf(1.0 - 1.0 / (n * math.e))
    return float(math.sqrt(trial_sharpe_variance) * z)


@dataclass(frozen=True)
class DeflatedSharpe:
    """The deflated Sharpe ratio of the best set; Sharpe ratios per period unless named annualised."""

    dsr: float  # probability that the best set's true Sharpe exceeds what N lucky trials would show
    sharpe: float  # observed per-period Sharpe of the best set
    expected_max_sharpe: float  # SR0: expected best per-period Sharpe of N skill-less trials
    n_trials: float
    trial_sharpe_variance: float
    n_obs: int
    skew: float
    kurtosis: float  # non-excess (normal = 3)
    verdict: str  # "significant" (dsr ≥ confidence) or "likely_luck"
    confidence: float = DSR_CONFIDENCE
    periods_per_year: float = WEEKS_PER_YEAR
    best_set: Any = None  # the column label of the best set, when computed from a matrix

    @property
    def likely_luck(self) -> bool:
        return self.dsr < self.confidence

    @property
    def sharpe_annualised(self) -> float:
        return self.sharpe * math.sqrt(self.periods_per_year)

    @property
    def expected_max_sharpe_annualised(self) -> float:
        return self.expected_max_sharpe * math.sqrt(self.periods_per_year)

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out.update(
            likely_luck=self.likely_luck,
            sharpe_annualised=self.sharpe_annualised,
            expected_max_sharpe_annualised=self.expected_max_sharpe_annualised,
        )
        return out


def deflated_sharpe_ratio_from_stats(
    sharpe: float,
    n_obs: int,
    skew: float,
    kurtosis: float,
    n_trials: float,
    trial_sharpe_variance: float,
    *,
    confidence: float = DSR_CONFIDENCE,
    periods_per_year: float = WEEKS_PER_YEAR,
    best_set: Any = None,
) -> DeflatedSharpe:
    """DSR from the best set's per-period Sharpe, its sample length and moments, and the trials."""
    sr0 = expected_max_sharpe(n_trials, trial_sharpe_variance)
    dsr = probabilistic_sharpe_ratio(sharpe, sr0, n_obs, skew, kurtosis)
    return DeflatedSharpe(
        dsr=dsr,
        sharpe=float(sharpe),
        expected_max_sharpe=sr0,
        n_trials=float(n_trials),
        trial_sharpe_variance=float(trial_sharpe_variance),
        n_obs=int(n_obs),
        skew=float(skew),
        kurtosis=float(kurtosis),
        verdict="significant" if dsr >= confidence else "likely_luck",
        confidence=confidence,
        periods_per_year=periods_per_year,
        best_set=best_set,
    )


def deflated_sharpe_ratio(
    returns: Any,
    trial_sharpes: Any = None,
    *,
    n_trials: float | None = None,
    trial_sharpe_variance: float | None = None,
    confidence: float = DSR_CONFIDENCE,
    periods_per_year: float = WEEKS_PER_YEAR,
    best_set: Any = None,
) -> DeflatedSharpe:
    """DSR of the best set's ``returns`` (one per period).

    The trials are given either as ``trial_sharpes`` (the per-period Sharpe ratios of all sets
    tried, the best included: N = their number, V = their variance) or as ``n_trials`` and
    ``trial_sharpe_variance``; ``n_trials`` given alongside ``trial_sharpes`` overrides N (an
    effective number of independent trials).
    """
    r = _as_returns(returns)
    if len(r) < 2:
        raise ValueError(f"the best set needs at least 2 returns, got {len(r)}")
    if r.std(ddof=1) <= _FLAT_STD:
        raise ValueError("the best set's returns are constant: there is no Sharpe ratio to deflate")
    if trial_sharpes is not None:
        trials = _as_returns(trial_sharpes, "trial_sharpes")
        if trial_sharpe_variance is None:
            if len(trials) < 2:
                raise ValueError("trial_sharpes needs at least 2 values to estimate their variance")
            trial_sharpe_variance = float(trials.var(ddof=1))
        if n_trials is None:
            n_trials = len(trials)
    if n_trials is None or trial_sharpe_variance is None:
        raise ValueError("give trial_sharpes, or both n_trials and trial_sharpe_variance")
    return deflated_sharpe_ratio_from_stats(
        float(r.mean() / r.std(ddof=1)),
        len(r),
        float(stats.skew(r)),
        float(stats.kurtosis(r, fisher=False)),
        n_trials,
        trial_sharpe_variance,
        confidence=confidence,
        periods_per_year=periods_per_year,
        best_set=best_set,
    )


def deflated_sharpe_ratio_of_best(
    returns_matrix: Any,
    *,
    n_trials: float | None = None,
    confidence: float = DSR_CONFIDENCE,
    periods_per_year: float = WEEKS_PER_YEAR,
) -> DeflatedSharpe:
    """DSR of the column with the highest Sharpe in a (periods × sets) sweep matrix, every column a trial."""
    m, labels = _as_matrix(returns_matrix)
    if m.shape[1] < 2:
        raise ValueError(f"a sweep needs at least 2 parameter sets (columns), got {m.shape[1]}")
    srs = sharpe_ratios(m)
    best = int(np.argmax(srs))
    return deflated_sharpe_ratio(
        m[:, best],
        srs,
        n_trials=n_trials,
        confidence=confidence,
        periods_per_year=periods_per_year,
        best_set=labels[best],
    )


# ---------------------------------------------------------------------------------------- PBO


@dataclass(frozen=True, eq=False)
class BacktestOverfitting:
    """CSCV result; metric values in the metric's own unit (per-period Sharpe by default)."""

    pbo: float
    n_sets: int
    n_obs: int  # rows used (a multiple of n_splits)
    n_dropped: int  # oldest rows left out so that the blocks are equal
    n_splits: int
    n_combinations: int
    exhaustive: bool  # every C(S, S/2) combination, or a seeded sample
    metric: str
    logits: np.ndarray = field(repr=False)  # λ_c per combination
    relative_ranks: np.ndarray = field(repr=False)  # ω_c per combination
    is_performance: np.ndarray = field(repr=False)  # IS metric of the IS winner per combination
    oos_performance: np.ndarray = field(repr=False)  # its OOS metric
    degradation_slope: float | None  # b of OOS = a + b · IS (None when IS does not vary)
    degradation_intercept: float | None
    degradation_r2: float | None
    probability_of_loss: float  # share of combinations with OOS metric < 0
    verdict: str  # "likely_overfit" (pbo > threshold) or "acceptable"
    threshold: float = PBO_THRESHOLD

    @property
    def likely_overfit(self) -> bool:
        return self.pbo > self.threshold

    def logit_summary(self) -> dict[str, float]:
        lam = self.logits
        q05, q25, q50, q75, q95 = np.quantile(lam, [0.05, 0.25, 0.5, 0.75, 0.95])
        return {
            "mean": float(lam.mean()),
            "std": float(lam.std()),
            "min": float(lam.min()),
            "q05": float(q05),
            "q25": float(q25),
            "median": float(q50),
            "q75": float(q75),
            "q95": float(q95),
            "max": float(lam.max()),
        }

    def logit_histogram(self, bins: int = 20) -> dict[str, list[float]]:
        """Histogram of λ for the page: ``edges`` (bins + 1) and ``counts`` (bins)."""
        counts, edges = np.histogram(self.logits, bins=bins)
        return {"edges": [float(e) for e in edges], "counts": [int(c) for c in counts]}

    def as_dict(self, arrays: bool = False) -> dict[str, Any]:
        out = {k: v for k, v in asdict(self).items() if not isinstance(v, np.ndarray)}
        out.update(likely_overfit=self.likely_overfit, logit_summary=self.logit_summary())
        if arrays:
            for name in ("logits", "relative_ranks", "is_performance", "oos_performance"):
                out[name] = getattr(self, name).tolist()
        return out


def split_combinations(
    n_splits: int, max_combinations: int = DEFAULT_MAX_COMBINATIONS, seed: int = 0
) -> tuple[np.ndarray, bool]:
    """(combinations × n_splits) boolean mask of the in-sample blocks, and whether it is exhaustive."""
    half = n_splits // 2
    total = math.comb(n_splits, half)
    if total <= max_combinations:
        chosen = np.array(list(itertools.combinations(range(n_splits), half)), dtype=np.intp)
        mask = np.zeros((total, n_splits), dtype=bool)
        mask[np.arange(total)[:, None], chosen] = True
        return mask, True
    # A seeded sample of distinct combinations, each with its complement (IS and OOS swapped).
    rng = np.random.default_rng(seed)
    pairs = max(1, max_combinations // 2)
    seen: set[bytes] = set()
    rows: list[np.ndarray] = []
    while len(rows) < pairs:
        chosen = np.argsort(rng.random((pairs, n_splits)), axis=1)[:, :half]
        draw = np.zeros((pairs, n_splits), dtype=bool)
        draw[np.arange(pairs)[:, None], chosen] = True
        for row in draw:
            key, complement = row.tobytes(), (~row).tobytes()
            if key in seen or complement in seen:
                continue
            seen.add(key)
            rows.append(row)
            if len(rows) == pairs:
                break
    sample = np.array(rows)
    return np.concatenate([sample, ~sample]), False


def _select(perf_is: np.ndarray, perf_oos: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For each combination (row): the IS winner's IS metric, OOS metric and relative OOS rank ω.
    Several sets tied for the IS best count each for an equal share, so column order never matters."""
    perf_is = np.round(perf_is, _COMPARE_DECIMALS)
    perf_oos = np.round(perf_oos, _COMPARE_DECIMALS)
    k, n = perf_is.shape
    rows = np.arange(k)
    best = np.argmax(perf_is, axis=1)
    best_is = perf_is[rows, best]
    winner_oos = perf_oos[rows, best]
    below = (perf_oos < winner_oos[:, None]).sum(axis=1)
    equal = (perf_oos == winner_oos[:, None]).sum(axis=1)
    rank = below + (equal + 1) / 2.0  # mean rank of the ties, 1 = worst
    tied = (perf_is == best_is[:, None]).sum(axis=1) > 1
    for r in np.flatnonzero(tied):  # rare: only sets with identical IS metrics
        winners = np.flatnonzero(perf_is[r] == best_is[r])
        oos = perf_oos[r]
        ranks = [(oos < oos[w]).sum() + ((oos == oos[w]).sum() + 1) / 2.0 for w in winners]
        rank[r] = float(np.mean(ranks))
        winner_oos[r] = float(oos[winners].mean())
    return best_is, winner_oos, rank / (n + 1.0)


def _subset_sums(rows: np.ndarray) -> np.ndarray:
    """(2^k × N) sums of every subset of the k rows, subset i holding row j when bit j of i is set."""
    table = np.zeros((1 << len(rows), rows.shape[1]))
    for j, row in enumerate(rows):
        table[1 << j : 2 << j] = table[: 1 << j] + row
    return table


def _performance_from_block_sums(
    m: np.ndarray, n_splits: int, combos: np.ndarray, metric: str
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Every combination's IS and OOS metric from per-block sums, without a pass over the rows per
    combination: the blocks are split into groups of up to 8, the sums of every subset of a group
    are tabulated once (256 rows per group), and a combination's in-sample sum is one table row per
    group added up (S = 16: one addition per set); out-of-sample is the total minus in-sample.
    Plain numpy element-wise work, so no BLAS threads to fight over on a busy machine."""
    t, n = m.shape
    block = t // n_splits
    half_rows = block * (n_splits // 2)
    centre = m.mean(axis=0)
    blocks = (m - centre).reshape(n_splits, block, n)  # centred: the sums of squares keep their precision
    sums = blocks.sum(axis=1)
    squares = (blocks * blocks).sum(axis=1)
    total_sum, total_square = sums.sum(axis=0), squares.sum(axis=0)
    groups = [np.arange(g, min(g + 8, n_splits)) for g in range(0, n_splits, 8)]
    sum_tables = [_subset_sums(sums[g]) for g in groups]
    square_tables = [_subset_sums(squares[g]) for g in groups]
    codes = [combos[:, g].astype(np.int64) @ (1 << np.arange(len(g), dtype=np.int64)) for g in groups]

    def perf(s: np.ndarray, q: np.ndarray) -> np.ndarray:
        mean = centre + s / half_rows
        if metric == "mean":
            return mean
        var = np.maximum(q - s * s / half_rows, 0.0) / (half_rows - 1)
        return _sharpe(mean, np.sqrt(var))

    chunk = max(16, _CHUNK_ELEMENTS // n)
    parts = []
    for start in range(0, len(combos), chunk):
        rows = slice(start, start + chunk)
        s = sum(table[code[rows]] for table, code in zip(sum_tables, codes, strict=True))
        q = sum(table[code[rows]] for table, code in zip(square_tables, codes, strict=True))
        parts.append(_select(perf(s, q), perf(total_sum - s, total_square - q)))
    return tuple(np.concatenate(p) for p in zip(*parts, strict=True))  # type: ignore[return-value]


def _performance_from_callable(
    m: np.ndarray, n_splits: int, combos: np.ndarray, metric: Callable[[np.ndarray], Any]
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    t, n = m.shape
    block_of_row = np.repeat(np.arange(n_splits), t // n_splits)
    parts = []
    for start in range(0, len(combos), _CHUNK):
        chunk = combos[start : start + _CHUNK]
        perf_is = np.empty((len(chunk), n))
        perf_oos = np.empty((len(chunk), n))
        for i, mask in enumerate(chunk):
            in_sample = mask[block_of_row]
            perf_is[i] = np.asarray(metric(m[in_sample]), dtype=float)
            perf_oos[i] = np.asarray(metric(m[~in_sample]), dtype=float)
        if not (np.all(np.isfinite(perf_is)) and np.all(np.isfinite(perf_oos))):
            raise ValueError("metric returned NaN or infinite values")
        parts.append(_select(perf_is, perf_oos))
    return tuple(np.concatenate(p) for p in zip(*parts, strict=True))  # type: ignore[return-value]


def probability_of_backtest_overfitting(
    returns_matrix: Any,
    n_splits: int = 16,
    metric: str | Callable[[np.ndarray], Any] = "sharpe",
    *,
    max_combinations: int = DEFAULT_MAX_COMBINATIONS,
    seed: int = 0,
    threshold: float = PBO_THRESHOLD,
) -> BacktestOverfitting:
    """PBO of a sweep by CSCV (Bailey, Borwein, López de Prado & Zhu 2017).

    ``returns_matrix``: T periods × N parameter sets (numpy array or DataFrame), one return per
    period. ``metric``: "sharpe" (per-period Sharpe ratio), "mean" (mean return), or a function of a
    (rows × N) array returning N values (exact but one pass per combination: slow for large sweeps).
    """
    m, _ = _as_matrix(returns_matrix)
    t, n = m.shape
    if isinstance(n_splits, bool) or not isinstance(n_splits, int | np.integer):
        raise ValueError(f"n_splits must be an integer, got {n_splits!r}")
    if n_splits < 2 or n_splits % 2:
        raise ValueError(f"n_splits must be an even number ≥ 2 (half the blocks in-sample, half out), got {n_splits}")
    if n < 2:
        raise ValueError(f"PBO compares parameter sets: returns_matrix needs at least 2 columns, got {n}")
    if t // n_splits < 2:
        raise ValueError(
            f"returns_matrix has {t} rows (periods) but n_splits={n_splits} needs at least {2 * n_splits} "
            f"(2 per block); use fewer splits or a longer history"
        )
    if max_combinations < 2:
        raise ValueError(f"max_combinations must be at least 2, got {max_combinations}")
    if not callable(metric) and metric not in METRICS:
        raise ValueError(f"metric must be one of {METRICS} or a function, got {metric!r}")

    dropped = t % n_splits
    m = m[dropped:]
    combos, exhaustive = split_combinations(n_splits, max_combinations, seed)
    if callable(metric):
        best_is, best_oos, omega = _performance_from_callable(m, n_splits, combos, metric)
        metric_name = getattr(metric, "__name__", "custom")
    else:
        best_is, best_oos, omega = _performance_from_block_sums(m, n_splits, combos, metric)
        metric_name = metric
    logits = np.log(omega / (1.0 - omega))
    pbo = float(np.mean(logits <= 0.0))

    slope = intercept = r2 = None
    is_var = float(np.var(best_is))
    if is_var > 0:
        cov = float(np.mean((best_is - best_is.mean()) * (best_oos - best_oos.mean())))
        slope = cov / is_var
        intercept = float(best_oos.mean() - slope * best_is.mean())
        oos_var = float(np.var(best_oos))
        r2 = cov * cov / (is_var * oos_var) if oos_var > 0 else None

    return BacktestOverfitting(
        pbo=pbo,
        n_sets=n,
        n_obs=t - dropped,
        n_dropped=dropped,
        n_splits=n_splits,
        n_combinations=len(combos),
        exhaustive=exhaustive,
        metric=metric_name,
        logits=logits,
        relative_ranks=omega,
        is_performance=best_is,
        oos_performance=best_oos,
        degradation_slope=slope,
        degradation_intercept=intercept,
        degradation_r2=r2,
        probability_of_loss=float(np.mean(best_oos < 0.0)),
        verdict="likely_overfit" if pbo > threshold else "acceptable",
        threshold=threshold,
    )


# ------------------------------------------------------------------------------------ in Korean


def explain_ko(dsr_result: DeflatedSharpe | None, pbo_result: BacktestOverfitting | None) -> list[str]:
    """Short plain-Korean sentences for the sweep page: what each number means, and a warning when
    the best result is likely luck (DSR below its confidence, PBO above its threshold)."""
    lines: list[str] = []
    if dsr_result is not None:
        d = dsr_result
        lines.append(
            f"가장 좋았던 파라미터의 샤프 지수는 연 {d.sharpe_annualised:.2f}입니다(주간 수익률 {d.n_obs}개 기준)."
        )
        lines.append(
            f"파라미터 조합 {d.n_trials:,.0f}개를 시험하면, 실력이 전혀 없어도 운만으로 "
            f"가장 좋은 조합의 샤프 지수가 연 {d.expected_max_sharpe_annualised:.2f} 정도는 나옵니다."
        )
        lines.append(
            f"디플레이티드 샤프 비율(DSR)은 {d.dsr:.0%}입니다. 시험 횟수와 수익률 분포의 치우침을 감안할 때, "
            f"이 성과가 운이 아니라 실제 실력일 확률입니다."
        )
        if d.likely_luck:
            lines.append(
                f"주의: DSR이 기준({d.confidence:.0%})에 못 미칩니다. 최고 성과는 여러 조합을 시험한 데서 온 "
                f"운일 가능성이 큽니다."
            )
        else:
            lines.append(f"DSR이 기준({d.confidence:.0%})을 넘어, 시험 횟수를 감안해도 운만으로 설명하기 어렵습니다.")
    if pbo_result is not None:
        p = pbo_result
        lines.append(
            f"과최적화 확률(PBO)은 {p.pbo:.0%}입니다. 기간을 {p.n_splits}조각으로 나눠 {p.n_combinations:,}가지로 "
            f"검증했을 때, 앞선 구간에서 1등인 조합이 나머지 구간에서 중간 이하로 떨어진 비율입니다."
        )
        # A negative Sharpe or mean return is a loss; another metric below 0 need not be.
        outcome = "손실을 낸" if p.metric in METRICS else "지표가 0 미만이었던"
        lines.append(f"앞선 구간의 1등 조합이 검증 구간에서 {outcome} 비율은 {p.probability_of_loss:.0%}입니다.")
        if p.degradation_slope is not None and p.degradation_slope < 0:
            lines.append("학습 구간 성과가 좋을수록 검증 구간 성과가 오히려 나빠지는 경향이 있습니다.")
        if p.likely_overfit:
            lines.append(
                f"주의: PBO가 {p.threshold:.0%}를 넘습니다. 과거 데이터에 맞춰진 조합일 가능성이 크니, "
                f"이 파라미터를 그대로 실전에 쓰지 마세요."
            )
    if (dsr_result is not None and dsr_result.likely_luck) or (pbo_result is not None and pbo_result.likely_overfit):
        lines.append("워크포워드 검증으로 표본 밖 성과를 먼저 확인하고, 시험하는 조합 수를 줄여 보세요.")
    elif lines:
        lines.append("통계적으로는 믿을 만한 결과지만, 과거 성과가 미래 수익을 보장하지는 않습니다.")
    return lines
