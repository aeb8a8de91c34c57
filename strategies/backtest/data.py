"""Price matrices for the backtest: ``MarketData`` holds (dates × symbols) open/high/low/close.

Pure numpy/pandas, no Django. NaN means "no bar that day" (suspended, not yet listed, delisted).
A bar counts only when its open and close are positive numbers; otherwise the whole bar is NaN.
Column order is the tie-break of the ranking: ``from_bars``/``from_frame`` sort codes ascending.

Optional matrices (None = not given):

* ``volume``: shares traded per bar, stored as int64 with 0 where there is no bar (a NaN, negative
  or missing volume reads as 0: nothing known to have traded). The participation cap and the
  small-cap spread of ``strategies.backtest.costs`` need it.
* ``universe``: bool, True where the symbol may be a BUY candidate for an entry whose signal day is
  that row (the point-in-time universe, e.g. ``universe.top_n_mask``); held positions are sold by
  the usual rules whatever the mask says. False on a row without a bar is harmless (no bar, no buy).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date
from typing import Any

import numpy as np
import pandas as pd

PRICE_FIELDS = ("open", "high", "low", "close")
DEFAULT_MARKET = "KOSPI"


def to_day(value: Any) -> np.datetime64:
    return np.datetime64(pd.Timestamp(value).date(), "D")


@dataclass(eq=False)
class MarketData:
    dates: np.ndarray  # datetime64[D], strictly increasing (T,)
    codes: tuple[str, ...]  # (N,)
    open: np.ndarray  # float64 (T, N)
    high: np.ndarray
    low: np.ndarray
    close: np.ndarray
    markets: tuple[str, ...] = ()  # KOSPI / KOSDAQ / KONEX per code (for the sell tax)
    volume: np.ndarray | None = field(default=None, repr=False)  # int64 (T, N), 0 without a bar
    universe: np.ndarray | None = field(default=None, repr=False)  # bool (T, N): buy candidates
    valid: np.ndarray = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.dates = np.asarray(self.dates, dtype="datetime64[D]")
        self.codes = tuple(str(c) for c in self.codes)
        t, n = len(self.dates), len(self.codes)
        if t > 1 and np.any(np.diff(self.dates) <= np.timedelta64(0, "D")):
            raise ValueError("dates must be strictly increasing")
        if len(set(self.codes)) != n:
            raise ValueError("codes must be unique")
        arrays = {}
        for name in PRICE_FIELDS:
            arr = np.array(getattr(self, name), dtype=float, copy=True)
            if arr.shape != (t, n):
                raise ValueError(f"{name} must have shape {(t, n)}, got {arr.shape}")
            arrays[name] = arr
        with np.errstate(invalid="ignore"):
            valid = (
                np.isfinite(arrays["open"]) & np.isfinite(arrays["close"]) & (arrays["open"] > 0) & (arrays["close"] > 0)
            )
        if not valid.all():
            for arr in arrays.values():
                arr[~valid] = np.nan
        for name, arr in arrays.items():
            setattr(self, name, arr)
        self.valid = valid
        markets = tuple(str(m).upper() for m in self.markets) if self.markets else (DEFAULT_MARKET,) * n
        if len(markets) != n:
            raise ValueError(f"markets must have one entry per code ({n}), got {len(markets)}")
        self.markets = markets
        if self.volume is not None:
            vol = np.array(self.volume, dtype=float, copy=True)
            if vol.shape != (t, n):
                raise ValueError(f"volume must have shape {(t, n)}, got {vol.shape}")
            vol[~valid | ~np.isfinite(vol) | (vol < 0)] = 0.0
            self.volume = np.floor(vol).astype(np.int64)
        if self.universe is not None:
            mask = np.array(self.universe, dtype=bool, copy=True)
            if mask.shape != (t, n):
                raise ValueError(f"universe must have shape {(t, n)}, got {mask.shape}")
            self.universe = mask

    def _optional(self, rows: Any, cols: Any = slice(None)) -> dict[str, np.ndarray | None]:
        """The optional matrices cut like the prices (``rows``/``cols`` index arrays or slices)."""
        def cut(arr: np.ndarray | None) -> np.ndarray | None:
            if arr is None:
                return None
            return arr[np.ix_(rows, cols)] if not isinstance(rows, slice) else arr[rows][:, cols]
        return {"volume": cut(self.volume), "universe": cut(self.universe)}

    @property
    def shape(self) -> tuple[int, int]:
        return self.close.shape

    @property
    def index(self) -> pd.DatetimeIndex:
        return pd.DatetimeIndex(self.dates.astype("datetime64[ns]"), name="date")

    def frame(self, name: str = "close") -> pd.DataFrame:
        """One field as a DataFrame (date index, one column per code)."""
        return pd.DataFrame(getattr(self, name), index=self.index, columns=list(self.codes))

    def symbol_bars(self, code: str) -> pd.DataFrame:
        """One symbol's own bars (the days it traded only), columns open/high/low/close."""
        j = self.codes.index(code)
        rows = self.valid[:, j]
        return pd.DataFrame({name: getattr(self, name)[rows, j] for name in PRICE_FIELDS}, index=self.index[rows])

    def select(self, codes: Iterable[str]) -> MarketData:
        """The same dates restricted to ``codes`` (in that order); dates no kept symbol traded are dropped."""
        cols = [self.codes.index(c) for c in codes]
        rows = self.valid[:, cols].any(axis=1) if cols else np.zeros(len(self.dates), dtype=bool)
        return MarketData(
            self.dates[rows], tuple(self.codes[j] for j in cols),
            *(getattr(self, name)[np.ix_(rows, cols)] for name in PRICE_FIELDS),
            markets=tuple(self.markets[j] for j in cols), **self._optional(rows, cols),
        )

    def between(self, start: Any = None, end: Any = None) -> MarketData:
        """Rows with start <= date <= end (either may be None)."""
        lo = 0 if start is None else int(np.searchsorted(self.dates, to_day(start), "left"))
        hi = len(self.dates) if end is None else int(np.searchsorted(self.dates, to_day(end), "right"))
        return MarketData(
            self.dates[lo:hi], self.codes, *(getattr(self, name)[lo:hi] for name in PRICE_FIELDS), markets=self.markets,
            **self._optional(slice(lo, hi)),
        )

    def with_universe(self, universe: np.ndarray | None) -> MarketData:
        """The same bars with another buy-candidate mask (None: every symbol)."""
        return MarketData(
            self.dates, self.codes, self.open, self.high, self.low, self.close, markets=self.markets,
            volume=self.volume, universe=universe,
        )

    # --- constructors -----------------------------------------------------------------------------

    @classmethod
    def from_bars(cls, bars: Mapping[str, Any], markets: Mapping[str, str] | None = None) -> MarketData:
        """From ``{code: bars}``: a structured array with date/open/high/low/close fields (``market.demo``),
        or a DataFrame with those columns (or a date index). Dates are the union of all bars' dates;
        codes are sorted ascending."""
        codes = sorted(bars)
        per_code: dict[str, tuple[np.ndarray, dict[str, np.ndarray]]] = {}
        for code in codes:
            b = bars[code]
            if isinstance(b, pd.DataFrame):
                days = b["date"] if "date" in b.columns else b.index
                d = np.asarray(pd.to_datetime(days).values, dtype="datetime64[D]")
                names = [*PRICE_FIELDS, "volume"] if "volume" in b.columns else PRICE_FIELDS
                values = {name: b[name].to_numpy(dtype=float) for name in names}
            else:
                d = np.asarray(b["date"], dtype="datetime64[D]")
                fields = b.dtype.names or ()
                names = [*PRICE_FIELDS, "volume"] if "volume" in fields else PRICE_FIELDS
                values = {name: np.asarray(b[name], dtype=float) for name in names}
            per_code[code] = (d, values)
        # Volume only when every symbol's bars have it (else the cap and the spread cannot be computed).
        fields = (*PRICE_FIELDS, "volume") if per_code and all("volume" in v for _, v in per_code.values()) \
            else PRICE_FIELDS
        all_days = [d for d, _ in per_code.values()]
        dates = np.unique(np.concatenate(all_days)) if all_days else np.array([], dtype="datetime64[D]")
        t, n = len(dates), len(codes)
        mats = {name: np.full((t, n), np.nan) for name in fields}
        for j, code in enumerate(codes):
            d, values = per_code[code]
            rows = np.searchsorted(dates, d)
            for name in fields:
                mats[name][rows, j] = values[name]
        market_of = dict(markets or {})
        return cls(
            dates, tuple(codes), *(mats[name] for name in PRICE_FIELDS),
            markets=tuple(market_of.get(c, DEFAULT_MARKET) for c in codes), volume=mats.get("volume"),
        )

    @classmethod
    def from_frame(cls, frame: pd.DataFrame, markets: Mapping[str, str] | None = None) -> MarketData:
        """From a long DataFrame with columns code, date, open, high, low, close (one row per bar), and
        volume when it has one."""
        missing = {"code", "date", *PRICE_FIELDS} - set(frame.columns)
        if missing:
            raise ValueError(f"frame lacks columns: {sorted(missing)}")
        fields = (*PRICE_FIELDS, "volume") if "volume" in frame.columns else PRICE_FIELDS
        wide = {name: frame.pivot(index="date", columns="code", values=name).sort_index() for name in fields}
        close = wide["close"]
        codes = sorted(close.columns.astype(str))
        dates = np.asarray(pd.to_datetime(close.index).values, dtype="datetime64[D]")
        market_of = dict(markets or {})
        return cls(
            dates, tuple(codes),
            *(wide[name].reindex(columns=codes).to_numpy(dtype=float) for name in PRICE_FIELDS),
            markets=tuple(market_of.get(c, DEFAULT_MARKET) for c in codes),
            volume=wide["volume"].reindex(columns=codes).to_numpy(dtype=float) if "volume" in wide else None,
        )

    @classmethod
    def from_matrices(
        cls, dates: Iterable[date], codes: Iterable[str], *, open: Any, high: Any = None, low: Any = None, close: Any,
        markets: Iterable[str] | None = None, volume: Any = None, universe: Any = None,
    ) -> MarketData:
        """From arrays; ``high``/``low`` default to max/min(open, close)."""
        o, c = np.asarray(open, dtype=float), np.asarray(close, dtype=float)
        h = np.fmax(o, c) if high is None else high
        lo = np.fmin(o, c) if low is None else low
        return cls(
            np.array([to_day(d) for d in dates], dtype="datetime64[D]"), tuple(codes), o, h, lo, c,
            markets=tuple(markets) if markets is not None else (), volume=volume, universe=universe,
        )
