"""A deterministic synthetic KRX-like market for the demo (the demo never uses real data).

Pure Python and numpy, no Django: ``generate_universe`` makes the listed companies and
``generate_bars`` their daily OHLCV bars. The ``demo_data`` management command stores them.

Price model, per symbol, in log price ``x = y + o``:

* ``y`` follows a GBM-like walk: beta times a common market factor (with rare market shocks),
  idiosyncratic noise and occasional news jumps, about the symbol's ``daily_vol`` (1.5-3.5 %) in
  total. A weak pull (half-life about a year) towards a fundamental value keeps prices plausible
  over any horizon: it equals ``base_price`` on ``DEMO_BASE_DATE`` and grows by ``annual_drift``.
  In "range-bound" regimes (entered now and then, lasting weeks) the pull towards the level at
  which the regime began is strong, so the price oscillates around it.
* ``o`` is an overreaction: now and then a 5-12 % dislocation that decays by 20 % a day.

Both give a z-score (mean-reversion) strategy something to trade. Each day's close is the model
price rounded to the KRX tick grid and clamped to ±30 % of the previous close (the daily limit);
open/high/low are built around it on the grid and inside the same limits.

Determinism and extension: every random number comes from a stream keyed by ``seed`` and by the
symbol's code (or the market), drawn as one ``(days, k)`` block per stream, so

* the same inputs always give the same bars;
* a symbol's bars do not depend on which other symbols are generated;
* bars for ``days[:n]`` are the first ``n`` bars of a longer ``days``: always start the days at
  ``DEMO_EPOCH`` and a later run (a later end date) extends the history without a seam.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date

import numpy as np

from market.krx.ticks import price_limits_array, round_to_tick_array

DEFAULT_SEED = 20261124
# First day of the canonical demo history; simulate from here so every run agrees on every date.
DEMO_EPOCH = date(2010, 1, 4)
# The date on which a symbol's fundamental value is its ``base_price``.
DEMO_BASE_DATE = date(2025, 1, 2)

# ---------------------------------------------------------------------------------------------
# Universe
# ---------------------------------------------------------------------------------------------

# Famous names for recognisable screens; everything about their bars is synthetic.
# (code, name, name_en, market, sector, base price, daily vol, beta, average traded value KRW)
FAMOUS: tuple[tuple[str, str, str, str, str, int, float, float, float], ...] = (
    ("005930", "삼성전자", "Samsung Electronics", "KOSPI", "전기·전자", 70_000, 0.016, 1.00, 1.0e12),
    ("000660", "SK하이닉스", "SK hynix", "KOSPI", "전기·전자", 180_000, 0.026, 1.30, 6.0e11),
    ("035420", "NAVER", "NAVER", "KOSPI", "서비스업", 200_000, 0.022, 0.90, 1.5e11),
    ("035720", "카카오", "Kakao", "KOSPI", "서비스업", 45_000, 0.025, 1.00, 1.5e11),
    ("005380", "현대차", "Hyundai Motor", "KOSPI", "운수장비", 220_000, 0.019, 0.90, 2.0e11),
    ("051910", "LG화학", "LG Chem", "KOSPI", "화학", 350_000, 0.024, 1.10, 1.5e11),
    ("068270", "셀트리온", "Celltrion", "KOSPI", "의약품", 180_000, 0.022, 0.80, 1.5e11),
    ("207940", "삼성바이오로직스", "Samsung Biologics", "KOSPI", "의약품", 800_000, 0.020, 0.70, 8.0e10),
    ("247540", "에코프로비엠", "EcoPro BM", "KOSDAQ", "전기·전자", 150_000, 0.033, 1.30, 2.0e11),
    ("196170", "알테오젠", "Alteogen", "KOSDAQ", "제약", 250_000, 0.032, 0.90, 1.5e11),
)

# (sector, Korean name stem, English name stem)
SYNTHETIC_SECTORS: tuple[tuple[str, str, str], ...] = (
    ("전기·전자", "전자", "Electronics"),
    ("화학", "케미칼", "Chemical"),
    ("의약품", "바이오", "Bio"),
    ("운수장비", "모터스", "Motors"),
    ("서비스업", "소프트", "Soft"),
    ("금융업", "금융지주", "Financial"),
    ("유통업", "리테일", "Retail"),
    ("철강·금속", "스틸", "Steel"),
    ("건설업", "건설", "E&C"),
    ("음식료품", "푸드", "Foods"),
    ("통신업", "텔레콤", "Telecom"),
    ("기계", "기계", "Machinery"),
    ("섬유·의복", "패션", "Fashion"),
    ("보험", "생명", "Life"),
)

MAX_SYMBOLS = len(FAMOUS) + 999  # synthetic codes are 99NNN0 with NNN up to 999


def _synthetic_code(number: int) -> str:
    # No listed KRX stock uses a 99xxxx short code, so these never shadow a real one.
    return f"99{number:03d}0"


def generate_universe(n_symbols: int = 40, seed: int = DEFAULT_SEED) -> list[dict]:
    """``n_symbols`` demo companies: the famous ones first, then synthetic ones ("데모전자 07").

    Each dict has ``code``, ``name``, ``name_en``, ``market`` (KOSPI/KOSDAQ), ``sector`` and the
    model parameters ``base_price`` (fundamental value on ``DEMO_BASE_DATE``, an int on the grid),
    ``daily_vol``, ``beta``, ``annual_drift`` and ``avg_value`` (typical KRW traded per day).
    Symbol i depends only on (seed, i), so ``generate_universe(k, s) == generate_universe(n, s)[:k]``.
    """
    if not 0 <= n_symbols <= MAX_SYMBOLS:
        raise ValueError(f"n_symbols must be between 0 and {MAX_SYMBOLS}, got {n_symbols}")
    universe: list[dict] = []
    for i in range(n_symbols):
        rng = np.random.default_rng([seed, 7, i])
        drift = float(round(rng.uniform(-0.04, 0.10), 4))
        if i < len(FAMOUS):
            code, name, name_en, market, sector, price, vol, beta, value = FAMOUS[i]
        else:
            number = i - len(FAMOUS) + 1
            sector, stem, stem_en = SYNTHETIC_SECTORS[int(rng.integers(len(SYNTHETIC_SECTORS)))]
            market = "KOSDAQ" if rng.random() < 0.4 else "KOSPI"
            code = _synthetic_code(number)
            name = f"데모{stem} {number:02d}"
            name_en = f"Demo {stem_en} {number:02d}"
            raw_price = float(np.exp(rng.uniform(np.log(2_000), np.log(300_000))))
            price = int(round_to_tick_array(np.array([raw_price]), "nearest")[0])
            low_vol, high_vol = (0.020, 0.035) if market == "KOSDAQ" else (0.015, 0.028)
            vol = float(round(rng.uniform(low_vol, high_vol), 4))
            beta = float(round(rng.uniform(0.6, 1.4), 2))
            value = float(np.exp(rng.uniform(np.log(3e9), np.log(1.5e11))))
        universe.append(
            {
                "code": code,
                "name": name,
                "name_en": name_en,
                "market": market,
                "sector": sector,
                "base_price": int(price),
                "daily_vol": float(vol),
                "beta": float(beta),
                "annual_drift": drift,
                "avg_value": float(round(value, -6)),
            }
        )
    return universe


# ---------------------------------------------------------------------------------------------
# Bars
# ---------------------------------------------------------------------------------------------

BAR_DTYPE = np.dtype(
    [
        ("date", "datetime64[D]"),
        ("open", np.int64),
        ("high", np.int64),
        ("low", np.int64),
        ("close", np.int64),
        ("volume", np.int64),
        ("traded_value", np.int64),
    ]
)

TRADING_DAYS_PER_YEAR = 248
MARKET_VOL = 0.010
MARKET_SHOCK_PROB = 0.003
MARKET_SHOCK_VOL = 0.035
JUMP_PROB = 0.006
JUMP_VOL = 0.06
FUNDAMENTAL_PULL = 0.003  # per day: half-life about 230 trading days
DISLOCATION_PROB = 1 / 90
DISLOCATION_SIZE = (0.05, 0.12)
DISLOCATION_DECAY = 0.8
RANGE_ENTER_PROB = 1 / 250
RANGE_EXIT_PROB = 1 / 60
RANGE_PULL = 0.10
GAP_SHARE = 0.35  # share of the day's move that shows at the open
VOLUME_NOISE = 0.35


def _stream(seed: int, key: int, kind: int, shape: tuple[int, int], normal: bool) -> np.ndarray:
    """One random block keyed by (seed, key, kind); its first rows do not depend on ``shape[0]``."""
    rng = np.random.default_rng([seed, key, kind])
    return rng.standard_normal(shape) if normal else rng.random(shape)


def generate_bars(universe: Sequence[dict], days: Sequence[date], seed: int = DEFAULT_SEED) -> dict[str, np.ndarray]:
    """Daily bars of every symbol on ``days``: ``{code: structured array of BAR_DTYPE}``.

    Fields: date, open, high, low, close, volume, traded_value (int64; prices on the KRX grid,
    each day within ±30 % of the previous close; the walk starts at the fundamental value of
    ``days[0]``). Vectorised over symbols, one loop step per day. Bar ``k`` depends only on
    ``seed``, the symbol and ``days[:k + 1]``, so start ``days`` at ``DEMO_EPOCH`` for the
    canonical history.
    """
    n_days, n_symbols = len(days), len(universe)
    dates = np.array(list(days), dtype="datetime64[D]")
    if n_days > 1 and np.any(np.diff(dates) <= np.timedelta64(0, "D")):
        raise ValueError("days must be strictly increasing")
    if n_days == 0 or n_symbols == 0:
        return {sym["code"]: np.zeros(0, dtype=BAR_DTYPE) for sym in universe}

    base = np.array([sym["base_price"] for sym in universe], dtype=float)
    sigma = np.array([sym["daily_vol"] for sym in universe], dtype=float)
    beta = np.array([sym["beta"] for sym in universe], dtype=float)
    annual_drift = np.array([sym["annual_drift"] for sym in universe], dtype=float)
    avg_value = np.array([sym["avg_value"] for sym in universe], dtype=float)
    # Jumps and dislocations add variance of their own; the diffusion gets what is left.
    extra_var = JUMP_PROB * JUMP_VOL**2 + DISLOCATION_PROB * np.mean(np.square(DISLOCATION_SIZE))
    idio_sigma = np.sqrt(np.maximum(sigma**2 - (beta * MARKET_VOL) ** 2 - extra_var, (0.3 * sigma) ** 2))
    years_from_base = (dates - np.datetime64(DEMO_BASE_DATE, "D")).astype(float) / 365.25
    fundamental = np.log(base)[None, :] + years_from_base[:, None] * annual_drift[None, :]
    start = round_to_tick_array(np.maximum(np.exp(fundamental[0]), 1.0), "nearest")

    # Random blocks: market (T, k) and per symbol stacked to (T, N, k).
    market_z = _stream(seed, 0, 1, (n_days, 2), normal=True)
    market_u = _stream(seed, 0, 2, (n_days, 1), normal=False)
    keys = [int(sym["code"]) + 1 for sym in universe]  # + 1: never the market's key 0
    sym_z = np.stack([_stream(seed, key, 1, (n_days, 6), normal=True) for key in keys], axis=1)
    sym_u = np.stack([_stream(seed, key, 2, (n_days, 4), normal=False) for key in keys], axis=1)

    market = MARKET_VOL * market_z[:, 0] + np.where(
        market_u[:, 0] < MARKET_SHOCK_PROB, MARKET_SHOCK_VOL * market_z[:, 1], 0.0
    )
    shocks = (
        beta * market[:, None]
        + idio_sigma * sym_z[:, :, 0]
        + np.where(sym_u[:, :, 0] < JUMP_PROB, JUMP_VOL * sym_z[:, :, 1], 0.0)
        + annual_drift / TRADING_DAYS_PER_YEAR
    )
    lo, hi = DISLOCATION_SIZE
    dislocation = np.where(
        sym_u[:, :, 1] < DISLOCATION_PROB,
        np.sign(sym_u[:, :, 2] - 0.5) * (lo + (hi - lo) * (sym_u[:, :, 2] * 2 % 1.0)),
        0.0,
    )
    regime_u = sym_u[:, :, 3]

    opens = np.empty((n_days, n_symbols), dtype=np.int64)
    highs = np.empty_like(opens)
    lows = np.empty_like(opens)
    closes = np.empty_like(opens)

    y = fundamental[0].copy()  # efficient log price
    overreaction = np.zeros(n_symbols)
    in_range = np.zeros(n_symbols, dtype=bool)
    anchor = y.copy()
    prev_close = start
    for t in range(n_days):
        entering = ~in_range & (regime_u[t] < RANGE_ENTER_PROB)
        leaving = in_range & (regime_u[t] < RANGE_EXIT_PROB)
        anchor = np.where(entering, y, anchor)
        in_range = (in_range | entering) & ~leaving
        pull = np.where(in_range, RANGE_PULL * (y - anchor), FUNDAMENTAL_PULL * (y - fundamental[t]))
        y = y + shocks[t] - pull
        overreaction = DISLOCATION_DECAY * overreaction + dislocation[t]
        target = np.exp(y + overreaction)

        lower, upper = price_limits_array(prev_close)
        close = np.clip(round_to_tick_array(np.maximum(target, 1.0), "nearest"), lower, upper)
        log_move = np.log(close / prev_close)
        open_target = prev_close * np.exp(GAP_SHARE * log_move + 0.25 * sigma * sym_z[t, :, 2])
        open_ = np.clip(round_to_tick_array(np.maximum(open_target, 1.0), "nearest"), lower, upper)
        top = np.maximum(open_, close) * np.exp(0.5 * sigma * np.abs(sym_z[t, :, 3]))
        bottom = np.minimum(open_, close) * np.exp(-0.5 * sigma * np.abs(sym_z[t, :, 4]))
        high = np.minimum(round_to_tick_array(top, "up"), upper)
        low = np.maximum(round_to_tick_array(np.maximum(bottom, 1.0), "down"), lower)

        opens[t], highs[t], lows[t], closes[t] = open_, high, low, close
        prev_close = close

    # Volume: the symbol's typical traded value at today's price, busier on big moves.
    prev = np.vstack([start[None, :], closes[:-1]])
    abs_move = np.abs(np.log(closes / prev))
    activity = np.exp(VOLUME_NOISE * sym_z[:, :, 5] - 0.5 * VOLUME_NOISE**2) * (0.7 + 0.6 * abs_move / sigma)
    volume = np.maximum(np.rint(avg_value * activity / closes), 1).astype(np.int64)
    typical = (opens + highs + lows + closes) / 4.0
    traded_value = np.rint(typical * volume).astype(np.int64)

    bars: dict[str, np.ndarray] = {}
    for j, sym in enumerate(universe):
        arr = np.empty(n_days, dtype=BAR_DTYPE)
        arr["date"] = dates
        arr["open"], arr["high"], arr["low"], arr["close"] = opens[:, j], highs[:, j], lows[:, j], closes[:, j]
        arr["volume"], arr["traded_value"] = volume[:, j], traded_value[:, j]
        bars[sym["code"]] = arr
    return bars
