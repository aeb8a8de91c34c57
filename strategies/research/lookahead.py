"""The look-ahead check: a strategy's signal on day d must not change when the bars after d are removed.

Pure Python, numpy and pandas; no Django.

The backtest computes every signal once on the whole history (``strategies.backtest.engine``); the
live job computes the signal of day d on the bars up to d's close (``orders.planning``). The two
agree only when the strategy reads nothing after d — the library's rule "the signal on day t uses
bars up to and including day t's close". ``check_strategy`` tests that rule: for each tested date d,
the signals (and the ranking scores, which choose among the buy candidates) computed on the history
cut at d (rows <= d) must equal, at d, those computed on the full history.

Two paths are checked, because a strategy has two implementations of its signals and each one
feeds a consumer:

* ``vectorised``: ``strategy.signals_and_scores(close, open=, high=, low=)`` on the (dates × symbols)
  matrices — what the vectorised backtest (``run_vectorised``) and the live planner
  (``plan_entry``, ``sell_signals``) call. For a strategy without a vectorised form (a user's module
  with ``generate_signals`` only) this runs ``generate_signals_and_scores`` on each column.
* ``per_symbol``: ``strategy.generate_signals_and_scores(prices, ohlc=, universe=)`` on each symbol's
  own bars — what the reference backtest (``run_backtest(engine="reference")``, the independent
  check of the vectorised engine) calls, in the same way (``reference.per_symbol_signals``).

Tested dates: ``count`` dates spread evenly (deterministic) from the strategy's warm-up row to the
second-to-last date (on the last date the cut is the full history). The reported difference is the
first one by date, then by symbol (column order, codes ascending), signal before score; when a
tested date differs, the untested dates since the previous tested date are scanned too, so the
date reported is the first one that differs among the dates from the start of the tested range.
Signals must be equal exactly; scores to 1e-9 relative (an indicator computed over a longer
column may round in the last bit), NaN equal to NaN.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from strategies.backtest.data import MarketData, to_day
from strategies.backtest.reference import symbol_signals_and_scores

PATHS = ("vectorised", "per_symbol")
DEFAULT_DATES = 24
SCORE_RTOL = 1e-9
SCORE_ATOL = 1e-12


@dataclass(frozen=True)
class Difference:
    """The first (date, symbol) where a path's value on the cut history differs from the full history."""

    path: str  # "vectorised" | "per_symbol"
    date: date
    symbol: str
    field: str  # "signal" | "score"
    cut: float
    full: float

    def as_dict(self) -> dict[str, Any]:
        return {"path": self.path, "date": self.date.isoformat(), "symbol": self.symbol, "field": self.field,
                "cut": _json_number(self.cut), "full": _json_number(self.full)}


@dataclass(frozen=True)
class LookaheadResult:
    strategy: str  # key (or class name when the strategy has no key)
    params: dict[str, Any]
    paths: tuple[str, ...]
    dates: tuple[date, ...]  # the tested dates
    symbols: int
    differences: tuple[Difference, ...] = ()  # at most one per path, earliest first
    error: str | None = None  # the strategy raised: the check could not finish
    dates_scanned: int = 0  # tested dates plus the untested dates scanned to find the first difference
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def peeks(self) -> bool:
        return bool(self.differences)

    @property
    def ok(self) -> bool:
        return not self.differences and self.error is None

    @property
    def first(self) -> Difference | None:
        return self.differences[0] if self.differences else None

    @property
    def status(self) -> str:
        return "lookahead" if self.peeks else ("error" if self.error else "ok")

    def line(self) -> str:
        """One line for the command's output."""
        first = self.first
        if first is not None:
            others = [d.path for d in self.differences[1:]]
            also = f"; also {', '.join(others)}" if others else ""
            return (f"LOOK-AHEAD: {self.strategy} at {first.date.isoformat()} {first.symbol}: "
                    f"cut={_text(first.cut)} full={_text(first.full)} ({first.field}, {first.path}{also})")
        if self.error:
            return f"ERROR: {self.strategy}: {self.error}"
        span = f"{self.dates[0].isoformat()}..{self.dates[-1].isoformat()}" if self.dates else "no date"
        return (f"OK: {self.strategy} ({len(self.dates)} dates {span} × {self.symbols} symbols; "
                f"{' + '.join(self.paths)})")

    def as_dict(self) -> dict[str, Any]:
        first = self.first
        return {
            "strategy": self.strategy, "params": self.params, "status": self.status, "paths": list(self.paths),
            "dates": [d.isoformat() for d in self.dates], "symbols": self.symbols,
            "dates_scanned": self.dates_scanned,
            "first": first.as_dict() if first else None,
            "differences": [d.as_dict() for d in self.differences], "error": self.error, **self.extra,
        }


def _json_number(value: float) -> float | int | str | None:
    """JSON has no NaN or infinity: NaN (no value) is null, an infinity its text."""
    value = float(value)
    if np.isnan(value):
        return None
    if np.isinf(value):
        return str(value)
    return int(value) if value.is_integer() and abs(value) < 2**53 else value


def _text(value: float) -> str:
    value = float(value)
    if value.is_integer() and abs(value) < 2**53:
        return str(int(value))
    return f"{value:.6g}"


# --- inputs ---------------------------------------------------------------------------------------


def as_market_data(prices: MarketData | pd.DataFrame) -> MarketData:
    """``MarketData`` as is; a (dates × codes) close DataFrame as bars whose open/high/low are the close."""
    if isinstance(prices, MarketData):
        return prices
    if isinstance(prices, pd.DataFrame):
        close = prices.to_numpy(dtype=float)
        return MarketData.from_matrices(list(pd.to_datetime(prices.index)), [str(c) for c in prices.columns],
                                        open=close, high=close, low=close, close=close)
    raise TypeError(f"prices must be MarketData or a DataFrame of closes, got {type(prices).__name__}")


def spread_dates(dates: np.ndarray, warmup: int = 0, count: int = DEFAULT_DATES) -> list[date]:
    """``count`` dates spread evenly from row ``warmup`` to the second-to-last row (every date when
    ``count`` <= 0); from row 0 when the history is shorter than the warm-up."""
    t = len(dates)
    if t < 2:
        return []
    last = t - 2
    lo = warmup if 0 <= warmup <= last else 0
    if count <= 0 or count >= last - lo + 1:
        rows = np.arange(lo, last + 1)
    else:
        rows = np.unique(np.linspace(lo, last, count).round().astype(np.int64))
    return [pd.Timestamp(d).date() for d in np.asarray(dates, dtype="datetime64[D]")[rows]]


def read_krx_csv(folder: str | Path, codes: Sequence[str]) -> MarketData:
    """The bars of ``codes`` from ``folder/CODE.csv`` (header ``date,open,high,low,close,volume``,
    the format of ``shared/data/krx/bars``) as ``MarketData``. Reads only."""
    folder = Path(folder)
    bars = {}
    for code in codes:
        path = folder / f"{code}.csv"
        if not path.is_file():
            raise FileNotFoundError(f"no bars file {path}")
        frame = pd.read_csv(path, usecols=["date", "open", "high", "low", "close"], dtype={"date": str})
        bars[code] = frame
    return MarketData.from_bars(bars)


def krx_csv_codes(folder: str | Path, count: int, groups: Sequence[str] = ("main", "kospi100_2026")) -> list[str]:
    """Up to ``count`` codes of a KRX data folder (``bars/`` plus ``universe.csv``): those of
    ``groups`` in that order (codes ascending within a group), then the other files by code."""
    folder = Path(folder)
    files = sorted(p.stem for p in (folder / "bars").glob("*.csv"))
    ordered: list[str] = []
    universe = folder / "universe.csv"
    if universe.is_file():
        listing = pd.read_csv(universe, dtype=str)
        for group in groups:
            ordered += sorted(listing.loc[listing["group"] == group, "code"])
    available = set(files)
    seen: set[str] = set()
    result = []
    for code in [*ordered, *files]:
        if code in available and code not in seen:
            seen.add(code)
            result.append(code)
    return result[: max(count, 0)]


# --- the two paths ----------------------------------------------------------------------------------


def vectorised_signals(strategy: Any, data: MarketData) -> tuple[np.ndarray, np.ndarray]:
    """(signals, scores) as ``run_vectorised`` and ``orders.planning`` compute them."""
    extra = {"open": data.open, "high": data.high, "low": data.low} if strategy.needs_ohlc else {}
    signals, scores = strategy.signals_and_scores(data.close, **extra)
    return np.asarray(signals), np.asarray(scores, dtype=float)


def per_symbol_signals(strategy: Any, data: MarketData) -> tuple[np.ndarray, np.ndarray]:
    """(signals, scores) on the dates from the per-symbol form, called as the reference backtest
    calls it (``strategies.backtest.reference.per_symbol_signals``): each symbol's own bars, its
    OHLC frame, the universe's closes for a cross-sectional strategy. 0 / NaN where no bar."""
    t, n = data.shape
    signals = np.zeros((t, n), dtype=np.int64)
    scores = np.full((t, n), np.nan)
    universe = data.frame("close") if strategy.cross_sectional else None
    for j, code in enumerate(data.codes):
        rows = np.flatnonzero(data.valid[:, j])
        if rows.size == 0:
            continue  # not listed yet in a cut history: no bar, nothing to signal
        prices, sig, score = symbol_signals_and_scores(strategy, data, code, universe)
        signals[rows, j] = sig.reindex(prices.index, fill_value=0).to_numpy(dtype=np.int64)
        scores[rows, j] = pd.Series(score).reindex(prices.index).to_numpy(dtype=float)
    return signals, scores


_COMPUTE = {"vectorised": vectorised_signals, "per_symbol": per_symbol_signals}


def _first_difference(
    path: str, day: date, codes: Sequence[str], cut: tuple[np.ndarray, np.ndarray], full: tuple[np.ndarray, np.ndarray],
) -> Difference | None:
    cut_sig, cut_score = (np.asarray(a, dtype=float) for a in cut)
    full_sig, full_score = (np.asarray(a, dtype=float) for a in full)
    sig_differs = ~((cut_sig == full_sig) | (np.isnan(cut_sig) & np.isnan(full_sig)))
    with np.errstate(invalid="ignore"):
        score_differs = ~np.isclose(cut_score, full_score, rtol=SCORE_RTOL, atol=SCORE_ATOL, equal_nan=True)
    differs = sig_differs | score_differs
    if not differs.any():
        return None
    j = int(np.argmax(differs))
    if sig_differs[j]:
        return Difference(path, day, codes[j], "signal", float(cut_sig[j]), float(full_sig[j]))
    return Difference(path, day, codes[j], "score", float(cut_score[j]), float(full_score[j]))


def _row_of(data: MarketData, day: date) -> int:
    row = int(np.searchsorted(data.dates, to_day(day)))
    if row >= len(data.dates) or data.dates[row] != to_day(day):
        raise ValueError(f"{day} is not a date of the data")
    return row


def check_strategy(
    strategy: Any, prices: MarketData | pd.DataFrame, test_dates: Iterable[date] | None = None, *,
    count: int = DEFAULT_DATES, paths: Sequence[str] = PATHS,
) -> LookaheadResult:
    """Check that ``strategy`` (a ``strategies.library`` Strategy instance) does not look ahead on
    ``prices`` (``MarketData``, or a close DataFrame for a strategy that needs no OHLC).

    ``test_dates``: the dates to cut at (dates of the data); default ``spread_dates`` of ``count``
    dates after the strategy's warm-up. A strategy that raises gives a result with ``error`` set.
    """
    unknown = [p for p in paths if p not in _COMPUTE]
    if unknown:
        raise ValueError(f"paths must be among {PATHS}, got {unknown}")
    data = as_market_data(prices)
    key = getattr(strategy, "key", "") or type(strategy).__name__
    params = dict(getattr(strategy, "params", {}) or {})
    warmup = int(getattr(strategy, "warmup", 0) or 0)
    if test_dates is None:
        days = spread_dates(data.dates, warmup, count)
    else:
        days = sorted({pd.Timestamp(d).date() for d in test_dates})
    rows = [_row_of(data, d) for d in days]
    base = {"strategy": key, "params": params, "paths": tuple(paths), "dates": tuple(days), "symbols": len(data.codes)}

    differences: list[Difference] = []
    scanned = 0
    for path in paths:
        compute = _COMPUTE[path]
        try:
            full = compute(strategy, data)
        except Exception as error:  # a user's strategy may fail on these bars: say so, check the others
            return LookaheadResult(**base, differences=tuple(differences), error=_describe(error, path, None))

        def differs_at(row: int, path=path, compute=compute, full=full) -> Difference | None:
            cut_sig, cut_score = compute(strategy, data.between(end=data.dates[row]))
            day = pd.Timestamp(data.dates[row]).date()
            return _first_difference(path, day, data.codes, (cut_sig[-1], cut_score[-1]), (full[0][row], full[1][row]))

        previous = rows[0] - 1 if rows else 0
        current = previous
        try:
            for row in rows:
                scanned += 1
                current = row
                found = differs_at(row)
                if found is not None:
                    # The dates since the previous tested one were not tested: the first may be there.
                    for current in range(previous + 1, row):
                        scanned += 1
                        before = differs_at(current)
                        if before is not None:
                            found = before
                            break
                    differences.append(found)
                    break
                previous = row
        except Exception as error:
            return LookaheadResult(**base, differences=tuple(differences),
                                   error=_describe(error, path, pd.Timestamp(data.dates[current]).date()))
    order = {p: i for i, p in enumerate(PATHS)}
    differences.sort(key=lambda d: (d.date, order.get(d.path, 0)))
    return LookaheadResult(**base, differences=tuple(differences), dates_scanned=scanned)


def _describe(error: Exception, path: str, day: date | None) -> str:
    where = f" (cut at {day.isoformat()})" if day else ""
    return f"{path}{where}: {type(error).__name__}: {error}"
