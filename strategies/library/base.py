"""The strategy interface: declared parameters, per-symbol signals (the design's form), the same
signals vectorised over a (dates × symbols) matrix, and a ranking score for buy candidates.

Pure Python, numpy and pandas; no Django.

Two forms give the same numbers:

* ``generate_signals(prices: pd.Series) -> pd.Series`` — the design's interface: +1 (buy),
  -1 (sell), 0 per date for one symbol, written with plain pandas. ``generate_scores`` is its
  ranking counterpart.
* ``signals(close)`` / ``score(close)`` / ``signals_and_scores(close)`` — the same over a
  (dates × symbols) close matrix (DataFrame in → DataFrame out, ndarray in → ndarray out),
  vectorised with numpy. Strategies that need OHLC (``needs_ohlc``) take ``open=``, ``high=``,
  ``low=`` matrices of the same shape.

Conventions shared by every strategy:

* NaN in a price matrix (or a missing date in a series) means "no bar that day". Windows count
  the symbol's own bars (a suspension pauses them); the signal on a day without a bar is 0 and its
  score is NaN.
* The signal on day t uses bars up to and including day t's close.
* Scores: higher is better. A strategy that ranks "ascending" (mean reversion ranks by z
  ascending) returns the negated value. Ties are broken by column order (the backtest's rule).
* Every strategy also declares ``stop_loss`` and ``take_profit`` (fractions of the entry price),
  used by the backtest's and the live job's exit rules.

A new strategy: subclass ``Strategy`` in a module of ``strategies.library`` with a unique ``key``,
its ``parameters`` and ``generate_signals``. That is enough: the registry finds it, and the
vectorised form falls back to calling ``generate_signals`` per column. Built-in strategies also
implement ``indicators``/``signals_from``/``scores_from`` for speed.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any, ClassVar, Literal

import numpy as np
import pandas as pd

from strategies.library.numeric import as_matrix, compaction_for, prepare_allocator

ParamType = Literal["int", "float", "choice"]
PARAM_TYPES: tuple[str, ...] = ("int", "float", "choice")
# Cells per column block of the vectorised form (about 1.6 MB of float64: stays in the CPU cache).
BLOCK_CELLS = 200_000
_TYPE_NAMES = {"int": "정수", "float": "숫자", "choice": "선택값"}


class ParameterError(ValueError):
    """Invalid strategy parameters. ``errors`` maps a parameter name (or ``__all__``) to a Korean message."""

    def __init__(self, errors: Mapping[str, str]) -> None:
        self.errors = dict(errors)
        super().__init__(" / ".join(self.errors.values()))


def _fmt(value: Any) -> str:
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e15:
        return str(int(value))
    return str(value)


@dataclass(frozen=True, slots=True)
class Parameter:
    """One declared strategy parameter (drives validation and the generated admin/UI form)."""

    name: str
    type: ParamType
    default: Any
    min: float | None = None
    max: float | None = None
    label: str = ""  # Korean label, e.g. "기간"
    help: str = ""  # Korean help text (label_en / help_en below: the English ones)
    choices: tuple[str, ...] = ()
    step: float | None = None  # UI hint only
    # English texts for the English pages (the library has no gettext); empty: the Korean one is shown.
    label_en: str = ""
    help_en: str = ""

    def __post_init__(self) -> None:
        if not self.name.isidentifier():
            raise TypeError(f"parameter name must be an identifier, got {self.name!r}")
        if self.type not in PARAM_TYPES:
            raise TypeError(f"parameter {self.name}: type must be one of {PARAM_TYPES}, got {self.type!r}")
        if self.type == "choice" and not self.choices:
            raise TypeError(f"parameter {self.name}: a choice parameter needs choices")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise TypeError(f"parameter {self.name}: min {self.min} > max {self.max}")
        try:
            self.clean(self.default)
        except ValueError as exc:
            raise TypeError(f"parameter {self.name}: invalid default: {exc}") from None

    @property
    def display(self) -> str:
        return f"'{self.label}'({self.name})" if self.label else self.name

    def clean(self, value: Any) -> Any:
        """The value converted to the declared type and checked against the bounds; ValueError (Korean) if not."""
        if self.type == "choice":
            text = str(value).strip() if value is not None else ""
            if text not in self.choices:
                raise ValueError(
                    f"{self.display} 값은 다음 중 하나여야 합니다: {', '.join(self.choices)} (입력값: {value!r})"
                )
            return text
        converted = self._convert(value)
        low, high = self.min, self.max
        out_of_bounds = (low is not None and converted < low) or (high is not None and converted > high)
        if out_of_bounds:
            if low is not None and high is not None:
                bounds = f"{_fmt(low)} 이상 {_fmt(high)} 이하"
            elif low is not None:
                bounds = f"{_fmt(low)} 이상"
            else:
                bounds = f"{_fmt(high)} 이하"
            raise ValueError(f"{self.display} 값은 {bounds}이어야 합니다 (입력값: {_fmt(converted)})")
        return converted

    def _convert(self, value: Any) -> int | float:
        kind = _TYPE_NAMES[self.type]
        if isinstance(value, bool | np.bool_) or value is None:
            raise ValueError(f"{self.display} 값은 {kind}여야 합니다 (입력값: {value!r})")
        if isinstance(value, str):
            text = value.strip()
            try:
                number: int | float = int(text) if self.type == "int" else float(text)
            except ValueError:
                if self.type == "int":
                    try:
                        number = float(text)
                    except ValueError:
                        raise ValueError(f"{self.display} 값은 {kind}여야 합니다 (입력값: {value!r})") from None
                else:
                    raise ValueError(f"{self.display} 값은 {kind}여야 합니다 (입력값: {value!r})") from None
            value = number
        if isinstance(value, np.integer):
            value = int(value)
        if isinstance(value, np.floating):
            value = float(value)
        if not isinstance(value, int | float):
            raise ValueError(f"{self.display} 값은 {kind}여야 합니다 (입력값: {value!r})")
        if isinstance(value, float) and not math.isfinite(value):
            raise ValueError(f"{self.display} 값은 유한한 숫자여야 합니다 (입력값: {value!r})")
        if self.type == "int":
            if isinstance(value, float):
                if not value.is_integer():
                    raise ValueError(f"{self.display} 값은 정수여야 합니다 (입력값: {_fmt(value)})")
                value = int(value)
            return value
        return float(value)

    def as_dict(self) -> dict[str, Any]:
        """A JSON-friendly description (for forms, the API and the UI)."""
        data = asdict(self)
        data["choices"] = list(self.choices)
        return data


STOP_LOSS = Parameter(
    "stop_loss", "float", -0.05, min=-0.9, max=-0.001, step=0.005,
    label="손절 기준", help="진입가 대비 종가 수익률이 이 값 이하이면 그날 종가에 매도합니다 (-0.05 = -5%).",
    label_en="Stop-loss",
    help_en="Sell at the close when the return on the entry price is at or below this (-0.05 = -5%).",
)
TAKE_PROFIT = Parameter(
    "take_profit", "float", 0.11, min=0.001, max=5.0, step=0.005,
    label="익절 기준", help="진입가 대비 종가 수익률이 이 값 이상이면 그날 종가에 매도합니다 (0.11 = +11%).",
    label_en="Take-profit",
    help_en="Sell at the close when the return on the entry price is at or above this (0.11 = +11%).",
)
EXIT_PARAMETERS: tuple[Parameter, ...] = (STOP_LOSS, TAKE_PROFIT)


class Strategy:
    """Base class of every strategy. Subclasses set ``key`` (unique), ``name``, ``parameters``."""

    key: ClassVar[str] = ""  # registry key, e.g. "mean_reversion"; empty = abstract
    name: ClassVar[str] = ""  # Korean display name
    description: ClassVar[str] = ""  # Korean description
    # English texts for the English pages (the library has no gettext); empty: the Korean one is shown.
    name_en: ClassVar[str] = ""
    description_en: ClassVar[str] = ""
    parameters: ClassVar[tuple[Parameter, ...]] = ()  # own parameters; stop_loss/take_profit are added
    needs_ohlc: ClassVar[bool] = False  # needs open/high/low besides the close
    cross_sectional: ClassVar[bool] = False  # a symbol's signal depends on the other symbols
    # Fast path: also compact columns whose only missing bars are before the listing / after the
    # delisting (needed by recursive indicators that must start at row 0; see numeric).
    compact_edges: ClassVar[bool] = False
    # Sweeps (strategies.research.sweep): the name of a parameter that is only a threshold on one
    # ranking key, so a sweep computes the key once for all its values. Such a strategy implements
    # ``threshold_keys`` with: signal +1 exactly where key > threshold, −1 exactly where −key >
    # threshold, score = key (NaN where there is no signal).
    sweep_threshold: ClassVar[str | None] = None

    def __init__(self, params: Mapping[str, Any] | None = None, **kwargs: Any) -> None:
        merged = {**(dict(params) if params else {}), **kwargs}
        self.params: dict[str, Any] = self.validate_params(merged)

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.params.items())
        return f"{type(self).__name__}({args})"

    def __getattr__(self, item: str) -> Any:
        # Parameters read as attributes: self.window, self.z_threshold, ...
        params = self.__dict__.get("params")
        if params is not None and item in params:
            return params[item]
        raise AttributeError(f"{type(self).__name__!s} has no attribute {item!r}")

    # --- parameters -------------------------------------------------------------------------------

    @classmethod
    def parameter_specs(cls) -> tuple[Parameter, ...]:
        """Every declared parameter: the strategy's own, then stop_loss/take_profit (unless redeclared)."""
        own = tuple(cls.parameters)
        names = {p.name for p in own}
        return own + tuple(p for p in EXIT_PARAMETERS if p.name not in names)

    @classmethod
    def defaults(cls) -> dict[str, Any]:
        return {p.name: p.default for p in cls.parameter_specs()}

    @classmethod
    def validate_params(cls, params: Mapping[str, Any] | None) -> dict[str, Any]:
        """The complete, converted parameters (defaults filled in).

        Raises ``ParameterError`` (Korean messages, one per parameter) for unknown names, values of
        the wrong type, values out of bounds, and combinations the strategy refuses (``check_params``).
        """
        params = dict(params or {})
        specs = {p.name: p for p in cls.parameter_specs()}
        errors: dict[str, str] = {}
        for name in params:
            if name not in specs:
                errors[name] = (
                    f"알 수 없는 파라미터입니다: {name} "
                    f"({cls.key or cls.__name__} 전략의 파라미터: {', '.join(specs)})"
                )
        cleaned: dict[str, Any] = {}
        for name, spec in specs.items():
            try:
                cleaned[name] = spec.clean(params[name]) if name in params else spec.default
            except ValueError as exc:
                errors[name] = str(exc)
        if not errors:
            errors.update(cls.check_params(cleaned))
        if errors:
            raise ParameterError(errors)
        return cleaned

    @classmethod
    def check_params(cls, params: dict[str, Any]) -> dict[str, str]:
        """Cross-parameter checks on cleaned values: {name or '__all__': Korean message}."""
        return {}

    @classmethod
    def describe(cls) -> dict[str, Any]:
        """A JSON-friendly description of the strategy and its parameters (forms, API, UI)."""
        return {
            "key": cls.key,
            "name": cls.name,
            "description": cls.description,
            "name_en": cls.name_en,
            "description_en": cls.description_en,
            "needs_ohlc": cls.needs_ohlc,
            "cross_sectional": cls.cross_sectional,
            "parameters": [p.as_dict() for p in cls.parameter_specs()],
        }

    @property
    def stop_loss(self) -> float:
        return float(self.params["stop_loss"])

    @property
    def take_profit(self) -> float:
        return float(self.params["take_profit"])

    @property
    def warmup(self) -> int:
        """Bars of history a symbol needs before its first signal (0 if unknown)."""
        return 0

    # --- the design's form: one symbol, pandas --------------------------------------------------

    def generate_signals(self, prices: pd.Series, **context: Any) -> pd.Series:
        """+1 / -1 / 0 per date of ``prices`` (one symbol's closes; NaN or a missing date = no bar).

        ``context`` carries ``ohlc`` (a DataFrame with open/high/low/close columns on the same
        index) for strategies that need it and ``universe`` (the closes of every symbol, a
        DataFrame whose column ``prices.name`` is this symbol) for cross-sectional strategies.
        """
        raise NotImplementedError(f"{type(self).__name__} must implement generate_signals")

    def generate_scores(self, prices: pd.Series, **context: Any) -> pd.Series:
        """Ranking score per date (higher = bought first); default 0 everywhere (ties: column order)."""
        return pd.Series(np.where(prices.notna(), 0.0, np.nan), index=prices.index)

    def generate_signals_and_scores(self, prices: pd.Series, **context: Any) -> tuple[pd.Series, pd.Series]:
        """Both per-symbol series; strategies override it to share the work."""
        return self.generate_signals(prices, **context), self.generate_scores(prices, **context)

    def _context_for(self, ohlc: pd.DataFrame | None, universe: pd.DataFrame | None) -> dict[str, Any]:
        context: dict[str, Any] = {}
        if self.needs_ohlc:
            context["ohlc"] = ohlc
        if self.cross_sectional:
            context["universe"] = universe
        return context

    # --- the vectorised form: (dates × symbols) ---------------------------------------------------

    def signals(self, close: Any, open: Any = None, high: Any = None, low: Any = None) -> Any:
        """Signals for every symbol: int8 matrix (DataFrame in → DataFrame out)."""
        return self.signals_and_scores(close, open, high, low)[0]

    def score(self, close: Any, open: Any = None, high: Any = None, low: Any = None) -> Any:
        """Ranking scores for every symbol (higher = bought first; NaN without a bar)."""
        return self.signals_and_scores(close, open, high, low)[1]

    def signals_and_scores(self, close: Any, open: Any = None, high: Any = None, low: Any = None) -> tuple[Any, Any]:
        """(signals int8, scores float) over a (dates × symbols) matrix; same numbers as the per-symbol form.

        Time-series strategies are computed by blocks of columns (a few dozen symbols at a time,
        so the temporaries stay in the CPU cache); cross-sectional ones on the whole matrix.
        """
        c = as_matrix(close)
        others = [None if a is None else as_matrix(a) for a in (open, high, low)]
        if self.needs_ohlc and any(a is None for a in others):
            raise ValueError(f"{self.key} 전략은 시가·고가·저가(open/high/low)가 필요합니다")
        for a in others:
            if a is not None and a.shape != c.shape:
                raise ValueError(f"open/high/low must have the close's shape {c.shape}, got {a.shape}")
        t, n = c.shape
        compiled = self.compiled_signals(c, *others)
        if compiled is not None:
            sig, sc = compiled
        elif type(self).indicators is Strategy.indicators:
            sig, sc = self._signals_by_column(c, *others)
        else:
            prepare_allocator()
            # Touch the outputs in order first: the blocks then write into mapped pages.
            sig = np.zeros((t, n), dtype=np.int8)
            sc = np.empty((t, n))
            sc.fill(np.nan)
            step = n if self.cross_sectional else max(8, BLOCK_CELLS // max(t, 1))
            for j0 in range(0, n, step):
                cols = slice(j0, min(j0 + step, n))
                block = [None if a is None else np.ascontiguousarray(a[:, cols]) for a in (c, *others)]
                sig[:, cols], sc[:, cols] = self._fast_block(*block)
        if isinstance(close, pd.DataFrame):
            return (
                pd.DataFrame(sig, index=close.index, columns=close.columns),
                pd.DataFrame(sc, index=close.index, columns=close.columns),
            )
        return sig, sc

    def _fast_block(self, c: np.ndarray, *others: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
        valid = np.isfinite(c)
        complete = bool(valid.all())
        comp = None if complete else compaction_for(valid, edges=self.compact_edges)
        dense = [None if a is None else (comp.compact(a) if comp is not None else a) for a in (c, *others)]
        with np.errstate(divide="ignore", invalid="ignore"):
            ind = self.indicators(*dense)
            if comp is not None:
                for arr in ind.values():
                    comp.expand(arr)
            ind["close"] = c
            for field, arr in zip(("open", "high", "low"), others, strict=True):
                if arr is not None:
                    ind.setdefault(field, arr)
            sig = np.asarray(self.signals_from(ind, valid))
            sc = np.asarray(self.scores_from(ind, valid), dtype=float)
        if not complete:
            sig = np.where(valid, sig, 0)
            sc = np.where(valid, sc, np.nan)
        return sig.astype(np.int8, copy=False), sc

    def _signals_by_column(self, c: np.ndarray, o: Any, h: Any, lo: Any) -> tuple[np.ndarray, np.ndarray]:
        """Fallback for strategies without ``indicators``: the per-symbol form on each column."""
        t, n = c.shape
        index = pd.RangeIndex(t)
        universe = pd.DataFrame(c, index=index) if self.cross_sectional else None
        sig = np.zeros((t, n), dtype=np.int8)
        sc = np.full((t, n), np.nan)
        for j in range(n):
            prices = pd.Series(c[:, j], index=index, name=j)
            ohlc = None
            if self.needs_ohlc:
                ohlc = pd.DataFrame({"open": o[:, j], "high": h[:, j], "low": lo[:, j], "close": c[:, j]}, index=index)
            s, score = self.generate_signals_and_scores(prices, **self._context_for(ohlc, universe))
            sig[:, j] = s.reindex(index, fill_value=0).to_numpy()
            sc[:, j] = score.reindex(index).to_numpy(dtype=float)
        return sig, sc

    def threshold_keys(
        self, close: np.ndarray, open: np.ndarray | None, high: np.ndarray | None, low: np.ndarray | None
    ) -> np.ndarray:
        """The ranking key of ``sweep_threshold`` (see there), independent of the threshold's value."""
        raise NotImplementedError

    def compiled_signals(
        self, close: np.ndarray, open: np.ndarray | None, high: np.ndarray | None, low: np.ndarray | None
    ) -> tuple[np.ndarray, np.ndarray] | None:
        """The fastest path, for strategies with a compiled kernel (``strategies.library.kernels``):
        (signals int8, scores float) on the whole float64 matrix, or None to use the hooks below."""
        return None

    # Hooks of the fast path. ``indicators`` gets matrices in which every column's bars are
    # contiguous (columns with a gap are compacted: bars moved to the top, NaN below; see
    # strategies.library.numeric) and returns per-symbol indicators computed on the symbol's own
    # bars (causal: row t uses rows <= t; NaN must propagate, so a window reaching before the
    # first bar is NaN); they are scattered back to the dates before ``signals_from`` and
    # ``scores_from`` see them, together with the original "close" (and "open"/"high"/"low" when
    # given) matrices on the dates.

    def indicators(
        self, close: np.ndarray, open: np.ndarray | None, high: np.ndarray | None, low: np.ndarray | None
    ) -> dict[str, np.ndarray]:
        raise NotImplementedError

    def signals_from(self, ind: dict[str, np.ndarray], valid: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def scores_from(self, ind: dict[str, np.ndarray], valid: np.ndarray) -> np.ndarray:
        return np.zeros(valid.shape)


def on_bars(prices: pd.Series) -> pd.Series:
    """The symbol's bars only (drops NaN = no bar), as float."""
    return prices.dropna().astype(float)


def to_signal_series(buy: pd.Series, sell: pd.Series, index: pd.Index) -> pd.Series:
    """+1 where ``buy``, else -1 where ``sell``, else 0; re-indexed onto ``index`` (0 where no bar)."""
    signals = pd.Series(0, index=buy.index, dtype="int8")
    signals[sell.fillna(False).astype(bool)] = -1
    signals[buy.fillna(False).astype(bool)] = 1
    return signals.reindex(index, fill_value=0).astype("int8")


def signal_matrix(buy: np.ndarray, sell: np.ndarray) -> np.ndarray:
    """+1 where ``buy``, else -1 where ``sell``, else 0 (int8)."""
    buy = np.asarray(buy, dtype=bool)
    return buy.view(np.int8) - (np.asarray(sell, dtype=bool) & ~buy).view(np.int8)
