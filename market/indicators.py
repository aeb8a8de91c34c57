"""Chart indicators over a close series: moving average, Bollinger band and rolling z-score.

Pure Python, no Django. Every function takes the closes oldest first and answers one value per
close, aligned with the input: ``None`` where the window is not full yet (the first ``window - 1``
values), so a chart can draw the series against the same dates.

Conventions (one σ for both, so the band and the z-score agree: z = ±k exactly on the band):

* ``moving_average``: the simple mean of the last ``window`` closes, the current one included.
* ``rolling_std``: the population standard deviation (ddof = 0) of the same window, as Bollinger
  defined the band.
* ``bollinger_bands``: mid = MA, upper/lower = MA ± k·σ (default 20 days, k = 2).
* ``z_scores``: (close − MA) / σ; ``None`` also where σ = 0 (a flat window has no z-score).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

Number = int | float
Series = list[float | None]

DEFAULT_WINDOW = 20
DEFAULT_WIDTH = 2.0  # Bollinger band width in σ; also the z-score alert threshold


def _check_window(window: int) -> None:
    if not isinstance(window, int) or isinstance(window, bool) or window < 1:
        raise ValueError(f"window must be a positive integer, got {window!r}")


def moving_average(values: Sequence[Number], window: int = DEFAULT_WINDOW) -> Series:
    """Simple moving average; ``None`` until ``window`` values are available."""
    _check_window(window)
    out: Series = [None] * len(values)
    for i in range(window - 1, len(values)):
        out[i] = math.fsum(values[i - window + 1 : i + 1]) / window
    return out


def rolling_std(values: Sequence[Number], window: int = DEFAULT_WINDOW) -> Series:
    """Population standard deviation (ddof = 0) of each full window; ``None`` before."""
    _check_window(window)
    out: Series = [None] * len(values)
    for i in range(window - 1, len(values)):
        chunk = values[i - window + 1 : i + 1]
        mean = math.fsum(chunk) / window
        out[i] = math.sqrt(math.fsum((v - mean) ** 2 for v in chunk) / window)
    return out


@dataclass(frozen=True)
class Bands:
    middle: Series
    upper: Series
    lower: Series


def bollinger_bands(values: Sequence[Number], window: int = DEFAULT_WINDOW, width: float = DEFAULT_WIDTH) -> Bands:
    """Bollinger band: MA(window) ± width·σ(window)."""
    if width < 0:
        raise ValueError("width must not be negative")
    middle = moving_average(values, window)
    sigma = rolling_std(values, window)
    upper: Series = [None if m is None else m + width * s for m, s in zip(middle, sigma, strict=True)]
    lower: Series = [None if m is None else m - width * s for m, s in zip(middle, sigma, strict=True)]
    return Bands(middle=middle, upper=upper, lower=lower)


def z_scores(values: Sequence[Number], window: int = DEFAULT_WINDOW) -> Series:
    """(value − MA) / σ over the trailing window, the value itself included; ``None`` while the window
    is not full or is flat (σ = 0)."""
    middle = moving_average(values, window)
    sigma = rolling_std(values, window)
    return [
        None if m is None or not s else (v - m) / s
        for v, m, s in zip(values, middle, sigma, strict=True)
    ]


def rounded(series: Series, digits: int) -> Series:
    """The series with every number rounded (smaller JSON for charts); ``None`` stays ``None``."""
    return [None if v is None else round(v, digits) for v in series]


@dataclass(frozen=True)
class Indicators:
    """Everything the price chart draws, computed from one pass of MA and σ."""

    middle: Series
    upper: Series
    lower: Series
    z: Series


def indicators(values: Sequence[Number], window: int = DEFAULT_WINDOW, width: float = DEFAULT_WIDTH) -> Indicators:
    """MA, Bollinger band and z-score together (the same numbers as the separate functions)."""
    if width < 0:
        raise ValueError("width must not be negative")
    middle = moving_average(values, window)
    sigma = rolling_std(values, window)
    upper: Series = []
    lower: Series = []
    z: Series = []
    for v, m, s in zip(values, middle, sigma, strict=True):
        if m is None or s is None:
            upper.append(None)
            lower.append(None)
            z.append(None)
            continue
        upper.append(m + width * s)
        lower.append(m - width * s)
        z.append((v - m) / s if s else None)
    return Indicators(middle=middle, upper=upper, lower=lower, z=z)
