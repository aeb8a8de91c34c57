"""Walk-forward analysis of a parameter sweep (pure numpy, no Django).

``walk_forward(result, in_sample_weeks, out_of_sample_weeks, anchored=False, objective="sharpe")``
takes a ``SweepResult`` (every set's daily equity over the whole period, ``strategies.research.sweep``)
and asks: had we chosen the parameters on the past only, what would the next weeks have earned?

* **Weeks** are the ISO calendar weeks (Monday to Sunday) that hold at least one of ``result.dates``
  (a week without a trading day does not count), numbered 0, 1, … in date order.
* **Windows**: window *k* has the in-sample (IS) weeks ``[a, a + IS)`` with ``a = k · OOS``
  (anchored: ``[0, a + IS)``, the IS grows and always starts at the first week) and the out-of-sample
  (OOS) weeks ``[a + IS, a + IS + OOS)``; the step is the OOS length, so the OOS windows follow each
  other without gap or overlap. The last OOS window is cut at the last week (it may be shorter); the
  period must hold at least one full IS + OOS.
* **Choice**: in each window the set with the best ``objective`` over the IS days is chosen, computed
  from that set's daily returns ``equity[s, d] / equity[s, d − 1] − 1`` (the sweep's first day against
  the initial cash), by the definitions of ``strategies.backtest.metrics.curve_metrics``. Ties go to
  the lowest set index; an undefined objective (NaN: no variance, no growth) ranks last.
* **OOS**: the chosen set's daily returns over the OOS days — that set's *own continuous backtest* as it
  traded those weeks (positions it held at the window's start included), not a fresh start with the
  chosen parameters on the window's first day. The sweep gives one continuous backtest per set; a
  restart per window would need one backtest per window and set.
* **Stitched curve**: ``initial_cash × cumprod(1 + OOS returns)`` over all OOS days in order.
* **Summary**: the stitched curve's total return, CAGR, Sharpe and max drawdown (``curve_metrics``);
  the mean IS and mean OOS objective of the chosen sets and their gap (IS − OOS: how much the choice
  flattered itself); the walk-forward efficiency = the stitched curve's CAGR / the mean IS CAGR of the
  chosen sets (None when the IS mean is not positive); how often the chosen set changed.

Objectives (``OBJECTIVES``): ``sharpe`` (mean / std of daily returns · √252), ``total_return``,
``cagr`` (years = calendar days first to last date / 365.25), ``calmar`` (CAGR / |max drawdown|; no
drawdown with a positive CAGR ranks first, +inf).
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from strategies.backtest.metrics import TRADING_DAYS_PER_YEAR, curve_metrics
from strategies.research.sweep import SweepResult

OBJECTIVES = ("sharpe", "total_return", "cagr", "calmar")


@dataclass
class WalkForwardWindow:
    """One IS + OOS window: its dates, the chosen set and how it did on either side."""

    index: int
    in_sample_start: str
    in_sample_end: str
    out_of_sample_start: str
    out_of_sample_end: str
    in_sample_weeks: int
    out_of_sample_weeks: int
    set_index: int
    params: dict[str, Any]  # the grid's parameters of the chosen set
    in_sample_objective: float | None
    out_of_sample_objective: float | None
    in_sample_return: float | None
    out_of_sample_return: float | None
    in_sample_cagr: float | None
    out_of_sample_cagr: float | None


@dataclass
class WalkForwardResult:
    objective: str
    in_sample_weeks: int
    out_of_sample_weeks: int
    anchored: bool
    names: tuple[str, ...]
    initial_cash: int
    windows: list[WalkForwardWindow]
    dates: np.ndarray  # datetime64[D]: the OOS days, in order
    equity: np.ndarray  # float64: the stitched OOS equity on those days
    summary: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: {"objective", ..., "windows": [...], "equity": [[date, value], ...], "summary"}."""
        return {
            "objective": self.objective,
            "in_sample_weeks": self.in_sample_weeks,
            "out_of_sample_weeks": self.out_of_sample_weeks,
            "anchored": self.anchored,
            "names": list(self.names),
            "initial_cash": int(self.initial_cash),
            "windows": [_jsonable(vars(window)) for window in self.windows],
            "equity": [[str(day), round(float(value), 2)] for day, value in zip(self.dates, self.equity, strict=True)],
            "summary": _jsonable(self.summary),
        }


def _finite(value: Any) -> Any:
    if isinstance(value, float | np.floating):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, np.integer):
        return int(value)
    return value


def _jsonable(item: dict[str, Any]) -> dict[str, Any]:
    return {key: _jsonable(value) if isinstance(value, dict) else _finite(value) for key, value in item.items()}


def week_numbers(dates: np.ndarray) -> np.ndarray:
    """0, 1, … per row: the rank of the row's ISO week (Monday-based) among the weeks with a date."""
    days = np.asarray(dates, dtype="datetime64[D]").astype(np.int64)
    monday = days - (days + 3) % 7  # 1970-01-01 was a Thursday
    return np.unique(monday, return_inverse=True)[1].reshape(-1)


def daily_returns(result: SweepResult) -> np.ndarray:
    """(sets, rows): each set's close-to-close returns, the first day against the initial cash."""
    equity = np.asarray(result.equity, dtype=float)
    previous = np.concatenate((np.full((equity.shape[0], 1), float(result.initial_cash)), equity[:, :-1]), axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        return equity / previous - 1.0


def objective_values(returns: np.ndarray, dates: np.ndarray, objective: str) -> np.ndarray:
    """The objective of each row of ``returns`` (sets, days) over ``dates`` (days,): NaN when undefined.
    The same definitions as ``curve_metrics`` (a test holds them equal)."""
    returns = np.atleast_2d(np.asarray(returns, dtype=float))
    n_sets, n_days = returns.shape
    nan = np.full(n_sets, np.nan)
    if n_days == 0:
        return nan
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        if objective == "sharpe":
            if n_days < 2:
                return nan
            sd = np.std(returns, axis=1, ddof=1)
            value = np.mean(returns, axis=1) / sd * math.sqrt(TRADING_DAYS_PER_YEAR)
            return np.where(sd > 0, value, np.nan)
        curve = np.cumprod(1.0 + returns, axis=1)
        growth = curve[:, -1]
        if objective == "total_return":
            return growth - 1.0
        years = int((dates[-1] - dates[0]).astype("timedelta64[D]").astype(np.int64)) / 365.25
        if years <= 0:
            return nan
        cagr = np.where(growth > 0, np.power(np.maximum(growth, 0.0), 1.0 / years) - 1.0, np.nan)
        if objective == "cagr":
            return cagr
        if objective == "calmar":
            with_start = np.concatenate((np.ones((n_sets, 1)), curve), axis=1)
            drawdown = np.min(with_start / np.maximum.accumulate(with_start, axis=1) - 1.0, axis=1)
            calmar = cagr / np.abs(drawdown)
            return np.where(drawdown < 0, calmar, np.where(cagr > 0, np.inf, np.nan))
    raise ValueError(f"objective must be one of {', '.join(OBJECTIVES)}, got {objective!r}")


def best_set(values: np.ndarray) -> int:
    """The index of the largest value; ties → the lowest index; NaN ranks last (all NaN → 0)."""
    values = np.asarray(values, dtype=float)
    defined = ~np.isnan(values)
    if not defined.any():
        return 0
    return int(np.flatnonzero(defined & (values == values[defined].max()))[0])


def window_bounds(n_weeks: int, in_sample_weeks: int, out_of_sample_weeks: int, anchored: bool) -> list[tuple]:
    """[(is_first_week, is_end_week, oos_end_week), ...] (ends exclusive): the IS weeks
    [is_first, is_end), the OOS weeks [is_end, oos_end)."""
    bounds = []
    a = 0
    while a + in_sample_weeks < n_weeks:
        is_first = 0 if anchored else a
        is_end = a + in_sample_weeks
        bounds.append((is_first, is_end, min(is_end + out_of_sample_weeks, n_weeks)))
        a += out_of_sample_weeks
    return bounds


def _check_weeks(label: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 1:
        raise ValueError(f"{label}은(는) 1 이상의 정수(주)여야 합니다 (입력값: {value!r}).")
    return int(value)


def _figure(returns: np.ndarray, dates: np.ndarray, objective: str) -> float | None:
    """One set's objective over some days (None when undefined)."""
    return _finite(float(objective_values(returns[None, :], dates, objective)[0]))


def _mean(values: list[float | None]) -> float | None:
    finite = [v for v in values if v is not None and math.isfinite(v)]
    return float(np.mean(finite)) if finite else None


def walk_forward(
    result: SweepResult, in_sample_weeks: int, out_of_sample_weeks: int, anchored: bool = False,
    objective: str = "sharpe",
) -> WalkForwardResult:
    """Choose on each IS window, trade the next OOS window, stitch the OOS days (see the module docstring).
    ValueError (Korean) for an unknown objective, bad week counts or a period shorter than one IS + OOS."""
    if objective not in OBJECTIVES:
        raise ValueError(f"목표 지표는 {', '.join(OBJECTIVES)} 중 하나여야 합니다 (입력값: {objective!r}).")
    in_sample_weeks = _check_weeks("학습(in-sample) 기간", in_sample_weeks)
    out_of_sample_weeks = _check_weeks("검증(out-of-sample) 기간", out_of_sample_weeks)
    dates = np.asarray(result.dates, dtype="datetime64[D]")
    equity = np.asarray(result.equity, dtype=float)
    if equity.ndim != 2 or equity.shape[1] != len(dates) or equity.shape[0] == 0:
        raise ValueError("스윕 결과의 자산 곡선 모양이 날짜와 맞지 않습니다.")
    weeks = week_numbers(dates)
    n_weeks = int(weeks[-1]) + 1 if len(weeks) else 0
    needed = in_sample_weeks + out_of_sample_weeks
    if n_weeks < needed:
        period = f"{dates[0]} ~ {dates[-1]}, " if len(dates) else ""
        raise ValueError(
            f"기간이 너무 짧습니다: 거래일이 있는 주가 {n_weeks}주({period}주 단위)뿐인데, 학습 {in_sample_weeks}주 + "
            f"검증 {out_of_sample_weeks}주 = {needed}주가 필요합니다. 기간을 늘리거나 학습·검증 기간을 줄이세요."
        )
    returns = daily_returns(result)
    # rows of each week: weeks are consecutive runs of rows since the dates are sorted
    week_starts = np.searchsorted(weeks, np.arange(n_weeks + 1))
    windows: list[WalkForwardWindow] = []
    oos_rows: list[np.ndarray] = []
    oos_returns: list[np.ndarray] = []
    is_cagrs: list[float | None] = []
    for k, (is_first, is_end, oos_end) in enumerate(
        window_bounds(n_weeks, in_sample_weeks, out_of_sample_weeks, anchored)
    ):
        is_rows = np.arange(week_starts[is_first], week_starts[is_end])
        rows = np.arange(week_starts[is_end], week_starts[oos_end])
        chosen = best_set(objective_values(returns[:, is_rows], dates[is_rows], objective))
        is_r, oos_r = returns[chosen, is_rows], returns[chosen, rows]

        is_cagr = _figure(is_r, dates[is_rows], "cagr")
        is_cagrs.append(is_cagr)
        windows.append(WalkForwardWindow(
            index=k,
            in_sample_start=str(dates[is_rows[0]]), in_sample_end=str(dates[is_rows[-1]]),
            out_of_sample_start=str(dates[rows[0]]), out_of_sample_end=str(dates[rows[-1]]),
            in_sample_weeks=is_end - is_first, out_of_sample_weeks=oos_end - is_end,
            set_index=chosen,
            params={name: result.param_sets[chosen].get(name) for name in result.names},
            in_sample_objective=_figure(is_r, dates[is_rows], objective),
            out_of_sample_objective=_figure(oos_r, dates[rows], objective),
            in_sample_return=_figure(is_r, dates[is_rows], "total_return"),
            out_of_sample_return=_figure(oos_r, dates[rows], "total_return"),
            in_sample_cagr=is_cagr,
            out_of_sample_cagr=_figure(oos_r, dates[rows], "cagr"),
        ))
        oos_rows.append(rows)
        oos_returns.append(oos_r)
    stitched_rows = np.concatenate(oos_rows)
    stitched = float(result.initial_cash) * np.cumprod(1.0 + np.concatenate(oos_returns))
    stitched_dates = dates[stitched_rows]
    curve = curve_metrics(stitched_dates, stitched, float(result.initial_cash))
    mean_is = _mean([w.in_sample_objective for w in windows])
    mean_oos = _mean([w.out_of_sample_objective for w in windows])
    mean_is_cagr = _mean(is_cagrs)
    changes = sum(1 for before, after in itertools.pairwise(windows) if before.set_index != after.set_index)
    summary = {
        "windows": len(windows),
        "start": curve["start"],
        "end": curve["end"],
        "days": curve["days"],
        "final": curve["final"],
        "total_return": curve["total_return"],
        "cagr": curve["cagr"],
        "sharpe": curve["sharpe"],
        "max_drawdown": curve["max_drawdown"],
        "mean_in_sample_objective": mean_is,
        "mean_out_of_sample_objective": mean_oos,
        "gap": mean_is - mean_oos if mean_is is not None and mean_oos is not None else None,
        "mean_in_sample_cagr": mean_is_cagr,
        "efficiency": (
            curve["cagr"] / mean_is_cagr if curve["cagr"] is not None and mean_is_cagr and mean_is_cagr > 0 else None
        ),
        "choice_changes": changes,
        "choice_change_rate": changes / (len(windows) - 1) if len(windows) > 1 else None,
        "distinct_sets": len({w.set_index for w in windows}),
    }
    return WalkForwardResult(
        objective=objective, in_sample_weeks=in_sample_weeks, out_of_sample_weeks=out_of_sample_weeks,
        anchored=bool(anchored), names=tuple(result.names), initial_cash=int(result.initial_cash),
        windows=windows, dates=stitched_dates, equity=stitched, summary=summary,
    )
