"""The synthetic demo market (market.demo): OHLC on the KRX grid and within the limits, determinism.
No database. The vectorised grid itself is tested in test_krx_ticks.py."""

from __future__ import annotations

from datetime import date

import numpy as np
import pytest

from market.demo import (
    DEFAULT_SEED,
    DEMO_EPOCH,
    FAMOUS,
    generate_bars,
    generate_universe,
)
from market.krx import is_on_tick, price_limits_array, tick_sizes, trading_days

PRICE_FIELDS = ("open", "high", "low", "close")


# --- universe ---------------------------------------------------------------------------------


def test_universe_shape_and_famous_names_first():
    universe = generate_universe(40)
    assert len(universe) == 40
    codes = [sym["code"] for sym in universe]
    assert len(set(codes)) == 40
    assert all(len(code) == 6 and code.isdigit() for code in codes)
    assert [(s["code"], s["name"]) for s in universe[:3]] == [("005930", "삼성전자"), ("000660", "SK하이닉스"), ("035420", "NAVER")]
    assert {s["code"] for s in universe} >= {f[0] for f in FAMOUS}
    synthetic = universe[len(FAMOUS) :]
    assert all(s["name"].startswith("데모") for s in synthetic)
    assert {s["market"] for s in universe} <= {"KOSPI", "KOSDAQ", "KONEX"}
    assert {s["market"] for s in synthetic} == {"KOSPI", "KOSDAQ"}
    assert all(s["sector"] for s in universe)
    assert all(is_on_tick(s["base_price"]) for s in universe)
    assert all(0.015 <= s["daily_vol"] <= 0.035 for s in universe)


def test_universe_is_deterministic_and_prefix_stable():
    assert generate_universe(40, seed=5) == generate_universe(40, seed=5)
    assert generate_universe(12, seed=5) == generate_universe(40, seed=5)[:12]
    assert generate_universe(20, seed=5)[10:] != generate_universe(20, seed=6)[10:]


def test_universe_rejects_bad_sizes():
    with pytest.raises(ValueError):
        generate_universe(-1)
    with pytest.raises(ValueError):
        generate_universe(100_000)


# --- bars -------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def days() -> list[date]:
    return trading_days(DEMO_EPOCH, date(2026, 11, 20))


@pytest.fixture(scope="module")
def universe() -> list[dict]:
    return generate_universe(40)


@pytest.fixture(scope="module")
def bars(universe, days) -> dict[str, np.ndarray]:
    return generate_bars(universe, days, DEFAULT_SEED)


def assert_same_bars(a: dict[str, np.ndarray], b: dict[str, np.ndarray]) -> None:
    assert a.keys() == b.keys()
    for code in a:
        np.testing.assert_array_equal(a[code], b[code])


def test_bars_cover_every_day_of_every_symbol(universe, days, bars):
    assert list(bars) == [s["code"] for s in universe]
    for arr in bars.values():
        assert arr["date"].tolist() == days
        for field in (*PRICE_FIELDS, "volume", "traded_value"):
            assert arr[field].dtype == np.int64


def test_bars_are_deterministic(universe, days, bars):
    assert_same_bars(generate_bars(universe, days, DEFAULT_SEED), bars)
    other = generate_bars(universe, days, DEFAULT_SEED + 1)
    assert not np.array_equal(other["005930"]["close"], bars["005930"]["close"])


def test_bars_extend_without_a_seam_and_ignore_other_symbols(universe, days, bars):
    shorter = generate_bars(universe, days[:700], DEFAULT_SEED)
    assert_same_bars(shorter, {code: arr[:700] for code, arr in bars.items()})
    subset = generate_bars(universe[5:9], days, DEFAULT_SEED)
    assert_same_bars(subset, {s["code"]: bars[s["code"]] for s in universe[5:9]})


def test_prices_are_positive_and_on_the_tick_grid(bars):
    for arr in bars.values():
        for field in PRICE_FIELDS:
            prices = arr[field]
            assert prices.min() >= 1
            assert np.all(prices % tick_sizes(prices) == 0)


def test_ohlc_is_consistent_and_volume_positive(bars):
    for arr in bars.values():
        assert np.all(arr["high"] >= np.maximum(arr["open"], arr["close"]))
        assert np.all(arr["low"] <= np.minimum(arr["open"], arr["close"]))
        assert np.all(arr["volume"] > 0)
        assert np.all(arr["low"] * arr["volume"] <= arr["traded_value"])
        assert np.all(arr["traded_value"] <= arr["high"] * arr["volume"])


def assert_within_daily_limits(arr: np.ndarray) -> None:
    lower, upper = price_limits_array(arr["close"][:-1])
    for field in PRICE_FIELDS:
        today = arr[field][1:]
        assert np.all((lower <= today) & (today <= upper)), field


def test_every_move_stays_within_the_daily_limit(bars):
    for arr in bars.values():
        assert_within_daily_limits(arr)


def test_wild_symbols_are_clamped_at_the_limit(days):
    wild = [dict(s, daily_vol=0.30) for s in generate_universe(3)]
    bars = generate_bars(wild, days[:400], DEFAULT_SEED)
    hits = 0
    for arr in bars.values():
        assert_within_daily_limits(arr)
        lower, upper = price_limits_array(arr["close"][:-1])
        hits += int(np.sum((arr["close"][1:] == upper) | (arr["close"][1:] == lower)))
    assert hits > 10


def test_daily_returns_look_like_stocks(universe, bars):
    realised = np.array([np.diff(np.log(bars[s["code"]]["close"][-740:])).std() for s in universe])
    assert np.all((realised > 0.010) & (realised < 0.050))
    assert 0.015 <= np.median(realised) <= 0.035
    # A common market factor: returns of different symbols are positively correlated on average.
    returns = np.array([np.diff(np.log(bars[s["code"]]["close"])) for s in universe])
    corr = np.corrcoef(returns)
    assert 0.05 < corr[np.triu_indices(len(universe), 1)].mean() < 0.6


def test_prices_stay_plausible_around_the_base_price(universe, bars):
    for sym in universe:
        close = bars[sym["code"]]["close"][-740:]
        assert sym["base_price"] / 8 < np.median(close) < sym["base_price"] * 8


def test_mean_reverting_episodes_give_z_score_signals(universe, bars):
    window = 20
    for sym in universe:
        close = bars[sym["code"]]["close"][-740:].astype(float)
        rolling = np.lib.stride_tricks.sliding_window_view(close, window)
        z = (close[window - 1 :] - rolling.mean(axis=1)) / rolling.std(axis=1)
        assert np.sum(z < -2) >= 3 and np.sum(z > 2) >= 3, sym["code"]
    # Overreactions revert: a move of over 3 sigma is mostly followed by a move the other way.
    reversed_, big = 0, 0
    for sym in universe:
        returns = np.diff(np.log(bars[sym["code"]]["close"]))
        large = np.abs(returns[:-1]) > 3 * sym["daily_vol"]
        big += int(large.sum())
        reversed_ += int(np.sum(np.sign(returns[1:][large]) == -np.sign(returns[:-1][large])))
    assert reversed_ / big > 0.65


def test_no_days_or_no_symbols(universe):
    empty = generate_bars(universe[:2], [], DEFAULT_SEED)
    assert [len(arr) for arr in empty.values()] == [0, 0]
    assert generate_bars([], [date(2026, 11, 20)], DEFAULT_SEED) == {}


def test_days_must_increase(universe):
    with pytest.raises(ValueError):
        generate_bars(universe[:1], [date(2026, 11, 20), date(2026, 11, 19)], DEFAULT_SEED)
