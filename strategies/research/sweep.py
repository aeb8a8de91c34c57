"""Parameter sweeps in one shared pass (pure numpy + numba, no Django).

``run_sweep(strategy_key, grid, data, config)`` backtests every combination of the grid's values by
the weekly rules of ``strategies.backtest.engine`` and returns each set's daily equity and metrics —
the same numbers as ``run_backtest`` of that set (the tests hold the two equal), without one full
backtest per set:

* Sets are grouped by their *signal parameters*; the exit parameters (``stop_loss``,
  ``take_profit``) never change the signals, so every exit variant of a group shares them.
* A strategy with a sweep form (``Strategy.sweep_signal_params``: mean reversion's threshold) shares
  more: the rolling z-score of one window serves every threshold, since "z < −threshold" picks a
  prefix of the candidates ranked by z, and "z > threshold" is the exit signal.
* Per group, the candidates of every week are ranked once (the best ``max_positions`` of them), and
  one compiled kernel (``sweep_kernels.sweep_group``) runs the weekly loop of all the group's sets
  in parallel on all cores.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from itertools import product
from typing import Any

import numpy as np

from strategies.backtest.costs import fill_price_matrices
from strategies.backtest.data import MarketData
from strategies.backtest.metrics import TRADING_DAYS_PER_YEAR, curve_metrics
from strategies.backtest.result import BacktestConfig, trading_rows, week_starts
from strategies.library import EXIT_PARAMETERS, get_strategy
from strategies.research.overfitting import (
    deflated_sharpe_ratio_of_best,
    explain_ko,
    probability_of_backtest_overfitting,
)
from strategies.research.sweep_kernels import STAT_NAMES, rank_candidates, sweep_group


@dataclass
class SweepResult:
    """Every set's outcome, in grid order (``itertools.product`` over the grid's names, sorted)."""

    strategy_key: str
    names: tuple[str, ...]  # the grid's parameter names, sorted
    param_sets: list[dict[str, Any]]  # the full validated parameters of each set
    dates: np.ndarray  # datetime64[D] (rows,): the traded days, first traded week to the end
    equity: np.ndarray  # float64 (sets, rows): each set's equity at each close
    initial_cash: int
    metrics: list[dict[str, Any]] = field(default_factory=list)  # curve + trade metrics per set
    seconds: float = 0.0

    week_ends: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))  # rows of each week's last day

    @property
    def n_sets(self) -> int:
        return len(self.param_sets)

    def weekly_returns(self) -> np.ndarray:
        """(weeks × sets): each set's return over each traded week, close of the week's last day to
        the next (the first week against the initial cash) — the return matrix of the overfitting
        statistics (``strategies.research.overfitting``)."""
        if not len(self.week_ends):
            return np.zeros((0, self.n_sets))
        closes = self.equity[:, self.week_ends].T
        previous = np.vstack([np.full((1, self.n_sets), float(self.initial_cash)), closes[:-1]])
        return closes / previous - 1.0

    def best_index(self, metric: str = "sharpe") -> int:
        """The set with the highest ``metric`` (undefined values last, ties: the first in grid order)."""
        values = [self.metrics[i].get(metric) for i in range(self.n_sets)]
        scores = [-math.inf if v is None else v for v in values]
        return int(np.argmax(scores)) if scores else -1


ProgressCallback = Callable[[int], object]
MAX_SETS = 5_000


class SweepError(ValueError):
    """A sweep that cannot run (Korean message): an empty grid, too many sets, an invalid value."""


def clean_grid(strategy_key: str, grid: Mapping[str, Sequence[Any]], base_params: Mapping[str, Any] | None = None,
               max_sets: int = MAX_SETS) -> dict[str, list]:
    """The grid as the engine and the pages use it: names sorted, every value through the strategy's
    validation (converted — "10" → 10 —, duplicates dropped, the given order kept), at most
    ``max_sets`` combinations, each combination checked against the rules across parameters.
    SweepError (Korean) for an empty grid or too many sets, ParameterError for a bad value."""
    strategy_class = get_strategy(strategy_key)
    if not isinstance(grid, Mapping) or not grid or any(
        isinstance(values, str) or not isinstance(values, Sequence) or len(values) == 0 for values in grid.values()
    ):
        raise SweepError("그리드의 각 파라미터에 값을 하나 이상 지정하세요.")
    base = dict(base_params or {})
    cleaned: dict[str, list] = {}
    for name in sorted(grid):
        values: list = []
        for value in grid[name]:
            value = strategy_class.validate_params({**base, name: value})[name]
            if value not in values:
                values.append(value)
        cleaned[name] = values
    total = math.prod(len(values) for values in cleaned.values())
    if total > max_sets:
        raise SweepError(f"조합은 {max_sets:,}개까지입니다 (입력: {total:,}개).")
    for values in product(*cleaned.values()):  # rules across parameters (e.g. short window < long window)
        strategy_class.validate_params({**base, **dict(zip(cleaned, values, strict=True))})
    return cleaned


def grid_sets(strategy_key: str, grid: Mapping[str, Sequence[Any]],
              base_params: Mapping[str, Any] | None = None) -> tuple[tuple[str, ...], list[dict[str, Any]]]:
    """The grid's parameter names (sorted) and every combination's validated parameters, in
    ``itertools.product`` order over ``clean_grid``; SweepError or ParameterError (Korean)."""
    strategy_class = get_strategy(strategy_key)
    if isinstance(grid, Mapping):
        declared = {p.name for p in strategy_class.parameter_specs()}
        unknown = sorted(set(grid) - declared)
        if unknown:
            raise SweepError(f"{strategy_class.name}에 없는 파라미터입니다: {', '.join(unknown)}")
    cleaned = clean_grid(strategy_key, grid, base_params)
    names = tuple(cleaned)
    sets = [
        strategy_class.validate_params({**(base_params or {}), **dict(zip(names, values, strict=True))})
        for values in product(*cleaned.values())
    ]
    return names, sets


def run_sweep(
    strategy_key: str, grid: Mapping[str, Sequence[Any]], data: MarketData, config: BacktestConfig | None = None,
    base_params: Mapping[str, Any] | None = None, on_progress: ProgressCallback | None = None,
) -> SweepResult:
    """Backtest every set of ``grid`` on ``data`` by the weekly rules, sharing work between sets
    (module docstring). ``config``'s stop_loss/take_profit, when set, override every set's."""
    started = time.perf_counter()
    config = config or BacktestConfig()
    names, sets = grid_sets(strategy_key, grid, base_params)
    strategy_class = get_strategy(strategy_key)
    _, last = trading_rows(data.dates, config)
    if last < len(data.dates) - 1:
        data = data.between(end=data.dates[last])
    first, last = trading_rows(data.dates, config)
    rows = max(last - first + 1, 0)
    fees = config.fee_model
    c_num, c_den = fees.commission_rate.as_integer_ratio()
    tax_num, tax_den, market_of = fees.tax_table(data.dates[first : last + 1], data.markets)
    starts = week_starts(data.dates[: last + 1])
    starts = starts[starts >= first]
    ends = np.concatenate((starts[1:] - 1, [last])).astype(np.int64) if len(starts) else np.zeros(0, dtype=np.int64)
    plan = fill_price_matrices(data, config)  # fill prices with slippage and spread, the participation cap
    has_cap = plan.buy_cap is not None
    buy_cap = plan.buy_cap if has_cap else np.zeros((1, 1), dtype=np.int64)
    universe = getattr(data, "universe", None)
    has_universe = universe is not None
    universe = np.asarray(universe, dtype=np.bool_) if has_universe else np.zeros((1, 1), dtype=np.bool_)
    cap = -1 if config.cash_per_week is None else int(config.cash_per_week)
    extra = {"open": data.open, "high": data.high, "low": data.low} if strategy_class.needs_ohlc else {}
    threshold_name = strategy_class.sweep_threshold

    # Groups: sets with the same signal parameters (all but the exits, and the threshold when the
    # strategy has a sweep form).
    shared_out = {p.name for p in EXIT_PARAMETERS} | ({threshold_name} if threshold_name else set())
    groups: dict[tuple, list[int]] = {}
    for index, params in enumerate(sets):
        signature = tuple((name, params[name]) for name in sorted(params) if name not in shared_out)
        groups.setdefault(signature, []).append(index)

    equity = np.zeros((len(sets), rows))
    stats = np.zeros((len(sets), len(STAT_NAMES)))
    stop_loss = np.array([params["stop_loss"] if config.stop_loss is None else config.stop_loss for params in sets],
                         dtype=float)
    take_profit = np.array(
        [params["take_profit"] if config.take_profit is None else config.take_profit for params in sets], dtype=float
    )
    for done, members in enumerate(groups.values(), start=1):
        strategy = strategy_class(sets[members[0]])
        if threshold_name:
            key = np.ascontiguousarray(strategy.threshold_keys(data.close, data.open, data.high, data.low),
                                       dtype=np.float64)
            exit_value = key  # sold on the signal where −key > threshold
            thresholds = np.array([sets[i][threshold_name] for i in members], dtype=float)
            buy_threshold, exit_threshold = thresholds, thresholds
        else:
            signals, scores = strategy.signals_and_scores(data.close, **extra)
            signals, scores = np.asarray(signals), np.asarray(scores, dtype=float)
            # Candidates: signal +1, ranked by score (NaN and −inf last, as the engine ranks them).
            ranked = np.where(np.isnan(scores) | (scores == -np.inf), -np.finfo(float).max, scores)
            key = np.where(signals == 1, ranked, np.nan)
            exit_value = signals.astype(np.float64)  # sold where −signal > 0.5, i.e. signal −1
            buy_threshold = np.full(len(members), -np.inf)
            exit_threshold = np.full(len(members), 0.5)
        cand_col, cand_key, n_cand = rank_candidates(key, data.valid, universe, has_universe, starts,
                                                     config.max_positions)
        ok, group_equity, group_stats = sweep_group(
            data.close, data.valid, plan.buy, plan.sell, buy_cap, has_cap, exit_value, cand_col, cand_key, n_cand,
            starts, ends, tax_num, tax_den, market_of, first, last, c_num, c_den, float(fees.commission_rate),
            config.max_positions, int(config.initial_cash), cap, buy_threshold, exit_threshold,
            stop_loss[members], take_profit[members],
        )
        if not ok.all():
            raise SweepError("금액이 너무 커서 정수 계산 범위를 넘습니다: 초기 자금이나 가격을 확인하세요.")
        equity[members] = group_equity
        stats[members] = group_stats
        if on_progress:
            on_progress(int(100 * done / len(groups)))
    dates = data.dates[first : last + 1]
    metrics = sweep_metrics(dates, equity, stats, float(config.initial_cash))
    return SweepResult(
        strategy_key=strategy_key, names=names, param_sets=sets, dates=dates, equity=equity,
        initial_cash=int(config.initial_cash), metrics=metrics, seconds=time.perf_counter() - started,
        week_ends=(ends - first).astype(np.int64),
    )


def sweep_metrics(dates: np.ndarray, equity: np.ndarray, stats: np.ndarray, initial: float) -> list[dict[str, Any]]:
    """``BacktestResult.metrics`` of every set (the definitions of ``strategies.backtest.metrics``),
    computed over the whole (sets × days) matrix at once: a thousand sets of 5,000 days in well under
    a second, where ``curve_metrics`` per set would spend seconds formatting dates."""
    n_sets, n = equity.shape
    if n == 0:
        return [{**curve_metrics(dates, equity[i], initial), **_trade_metrics(stats[i], dates, equity[i])}
                for i in range(n_sets)]
    day = np.datetime_as_string(dates, unit="D")
    final = equity[:, -1]
    previous = np.hstack([np.full((n_sets, 1), initial), equity[:, :-1]])
    with np.errstate(divide="ignore", invalid="ignore"):
        daily = equity / previous - 1.0
        growth = final / initial if initial else np.full(n_sets, np.nan)
    years = (dates[-1] - dates[0]).astype("timedelta64[D]").astype(int) / 365.25
    sd = np.std(daily, axis=1, ddof=1) if n > 1 else np.full(n_sets, np.nan)
    mean = np.mean(daily, axis=1)
    downside = np.sqrt(np.mean(np.minimum(daily, 0.0) ** 2, axis=1))
    root = math.sqrt(TRADING_DAYS_PER_YEAR)
    curve = np.hstack([np.full((n_sets, 1), initial), equity])
    peaks = np.maximum.accumulate(curve, axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        drawdown = curve / peaks - 1.0
    troughs = np.argmin(drawdown, axis=1)
    out = []
    for i in range(n_sets):
        trough = int(troughs[i])
        deepest = float(drawdown[i, trough])
        peak = int(np.flatnonzero(curve[i, : trough + 1] == peaks[i, trough])[-1]) if trough else 0
        g = float(growth[i])
        cagr = g ** (1 / years) - 1 if years > 0 and g > 0 else None
        s, m, down = float(sd[i]), float(mean[i]), float(downside[i])
        metrics = {
            "start": str(day[0]), "end": str(day[-1]), "days": n, "initial": float(initial), "final": float(final[i]),
            "total_return": _finite(g - 1), "cagr": _finite(cagr) if cagr is not None else None,
            "volatility": _finite(s * root), "sharpe": _finite(m / s * root) if s > 0 else None,
            "sortino": _finite(m / down * root) if down > 0 else None, "max_drawdown": _finite(deepest),
            "max_drawdown_peak": str(day[max(peak - 1, 0)]) if deepest < 0 else None,
            "max_drawdown_trough": str(day[trough - 1]) if deepest < 0 else None,
        }
        metrics.update(_trade_metrics(stats[i], dates, equity[i]))
        out.append(metrics)
    return out


def _finite(x: float) -> float | None:
    return None if x is None or not math.isfinite(x) else float(x)


def _trade_metrics(stats: np.ndarray, dates: np.ndarray, equity: np.ndarray) -> dict[str, Any]:
    """``metrics.trade_metrics`` from the kernel's per-set statistics."""
    s = dict(zip(STAT_NAMES, stats.tolist(), strict=True))
    n = int(s["n_trades"])
    years = (dates[-1] - dates[0]).astype("timedelta64[D]").astype(int) / 365.25 if len(dates) else 0
    mean_equity = float(np.mean(equity)) if len(equity) else 0.0
    reasons = {name: int(s[name]) for name in ("signal", "stop_loss", "take_profit", "week_end") if s[name]}
    return {
        "n_trades": n,
        "win_rate": _finite(s["n_wins"] / n) if n else None,
        "avg_win": _finite(s["sum_win_return"] / s["n_wins"]) if s["n_wins"] else None,
        "avg_loss": _finite(s["sum_loss_return"] / s["n_losses"]) if s["n_losses"] else None,
        "total_pnl": float(s["total_pnl"]),
        "fees": int(s["fees"]),
        "tax": int(s["tax"]),
        "bought_value": float(s["bought_value"]),
        "turnover": _finite(s["bought_value"] / mean_equity / years) if years > 0 and mean_equity > 0 else None,
        "exposure": _finite(s["held_days"] / len(equity)) if len(equity) else None,
        "reasons": dict(sorted(reasons.items())),
    }


def sweep_statistics(result: SweepResult, max_splits: int = 16) -> dict[str, Any]:
    """Skill or luck, on the sweep's weekly return matrix (``strategies.research.overfitting``): the
    deflated Sharpe ratio of the set with the best weekly Sharpe given the number of sets tried, the
    probability of backtest overfitting by CSCV (the largest even number of blocks up to
    ``max_splits`` with at least two weeks each), and their plain-Korean explanation. A statistic
    that cannot be computed (one set, too few weeks, a best set that never traded) is None, and
    ``notes`` says why."""
    returns = result.weekly_returns()
    weeks, n_sets = returns.shape
    notes: list[str] = []
    dsr = pbo = None
    if n_sets < 2:
        notes.append("조합이 하나뿐이라 과최적화 통계를 계산하지 않았습니다. 두 개 이상의 값을 시험하세요.")
    elif weeks < 8:
        notes.append(f"거래한 주가 {weeks}주뿐이라 과최적화 통계를 계산하지 않았습니다 (8주 이상 필요).")
    else:
        try:
            dsr = deflated_sharpe_ratio_of_best(returns)
        except ValueError:
            notes.append("최고 조합의 주간 수익률이 변하지 않아(거래 없음) 디플레이티드 샤프 비율을 계산하지 않았습니다.")
        splits = min(max_splits, (weeks // 2) // 2 * 2)
        pbo = probability_of_backtest_overfitting(returns, n_splits=splits)
    return _plain({
        "n_sets": n_sets, "weeks": weeks,
        "deflated_sharpe": dsr.as_dict() if dsr else None,
        "pbo": pbo.as_dict() if pbo else None,
        "dsr_best_index": int(dsr.best_set) if dsr is not None and dsr.best_set is not None else None,
        "likely_luck": bool((dsr is not None and dsr.likely_luck) or (pbo is not None and pbo.likely_overfit)),
        "explanation": explain_ko(dsr, pbo),
        "notes": notes,
    })


def _plain(value: Any) -> Any:
    """JSON-ready: numpy scalars to Python numbers, non-finite floats to None."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, np.bool_ | bool):
        return bool(value)
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.floating | float):
        return float(value) if math.isfinite(value) else None
    return value
