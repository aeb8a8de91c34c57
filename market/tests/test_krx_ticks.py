"""KRX price grid and daily limits, hand-computed from the 2023 unified tick table; the vectorised grid
against the scalar one."""

import numpy as np
import pytest

from market.krx.ticks import (
    TICK_TABLE,
    is_on_tick,
    price_limits,
    price_limits_array,
    round_to_tick,
    round_to_tick_array,
    shift_ticks,
    tick_size_for,
    tick_sizes,
)


@pytest.mark.parametrize(
    ("price", "tick"),
    [
        (1, 1),
        (1_999, 1),
        (2_000, 5),
        (4_999, 5),
        (5_000, 10),
        (19_999, 10),
        (20_000, 50),
        (49_999, 50),
        (50_000, 100),
        (199_999, 100),
        (200_000, 500),
        (499_999, 500),
        (500_000, 1_000),
        (3_000_000, 1_000),
    ],
)
def test_tick_size_on_both_sides_of_every_band_boundary(price, tick):
    assert tick_size_for(price) == tick


@pytest.mark.parametrize("price", [0, -100])
def test_tick_size_rejects_non_positive_prices(price):
    with pytest.raises(ValueError):
        tick_size_for(price)


@pytest.mark.parametrize("price", [70_000.0, "70000", True])
def test_tick_size_rejects_non_int_prices(price):
    with pytest.raises(TypeError):
        tick_size_for(price)


@pytest.mark.parametrize(
    ("price", "expected"),
    [
        (1_999, True),
        (2_000, True),
        (2_003, False),
        (2_005, True),
        (19_990, True),
        (19_995, False),
        (20_050, True),
        (20_010, False),
        (70_050, False),
        (70_100, True),
        (499_500, True),
        (499_999, False),
        (500_500, False),
        (501_000, True),
        (0, False),
        (-5, False),
        (70_000.0, False),
    ],
)
def test_is_on_tick(price, expected):
    assert is_on_tick(price) is expected


@pytest.mark.parametrize(
    ("price", "down", "up", "nearest"),
    [
        (70_050, 70_000, 70_100, 70_100),  # tie goes up
        (70_049, 70_000, 70_100, 70_000),
        (70_051, 70_000, 70_100, 70_100),
        (2_003, 2_000, 2_005, 2_005),
        (2_002, 2_000, 2_005, 2_000),
        (4_999, 4_995, 5_000, 5_000),  # rounding up lands on the next band's start
        (499_999, 499_500, 500_000, 500_000),
        (500_400, 500_000, 501_000, 500_000),
        (1_234, 1_234, 1_234, 1_234),
        (70_000, 70_000, 70_000, 70_000),
    ],
)
def test_round_to_tick(price, down, up, nearest):
    assert round_to_tick(price) == down
    assert round_to_tick(price, "down") == down
    assert round_to_tick(price, "up") == up
    assert round_to_tick(price, "nearest") == nearest
    for result in (down, up, nearest):
        assert is_on_tick(result)


def test_round_to_tick_rejects_unknown_direction():
    with pytest.raises(ValueError):
        round_to_tick(70_050, "sideways")


@pytest.mark.parametrize(
    ("prev_close", "lower", "upper"),
    [
        (10_000, 7_000, 13_000),
        (71_000, 49_700, 92_300),
        # 15,470 x 1.3 = 20,111 -> 20,100 (50-won band); x 0.7 = 10,829 -> 10,830 (10-won band)
        (15_470, 10_830, 20_100),
        # 1,550 x 1.3 = 2,015 (5-won band, on grid); x 0.7 = 1,085
        (1_550, 1_085, 2_015),
        # 385,000 x 1.3 = 500,500 -> 500,000 (1,000-won band); x 0.7 = 269,500
        (385_000, 269_500, 500_000),
        # 3,333 x 1.3 = 4,332.9 -> 4,330; x 0.7 = 2,333.1 -> 2,335
        (3_333, 2_335, 4_330),
        (1, 1, 1),
    ],
)
def test_price_limits_are_30_percent_rounded_inward(prev_close, lower, upper):
    assert price_limits(prev_close) == (lower, upper)


def test_price_limits_are_on_grid_and_inside_the_band():
    for prev_close in range(1, 1_200_000, 97):
        lower, upper = price_limits(prev_close)
        assert is_on_tick(lower) and is_on_tick(upper)
        assert lower * 100 >= prev_close * 70
        assert upper * 100 <= prev_close * 130
        assert lower <= prev_close <= upper


def test_price_limits_reject_non_positive_base():
    with pytest.raises(ValueError):
        price_limits(0)


@pytest.mark.parametrize(
    ("price", "n", "expected"),
    [
        (1_999, 1, 2_000),
        (2_000, 1, 2_005),
        (2_000, -1, 1_999),
        (2_005, -1, 2_000),
        (70_000, 2, 70_200),
        (70_000, -3, 69_700),
        (50_000, -1, 49_950),
        (49_950, 1, 50_000),
        (499_500, 1, 500_000),
        (500_000, -1, 499_500),
        (4_990, 3, 5_010),  # 4,995 -> 5,000 -> 5,010
        (12_340, 0, 12_340),
    ],
)
def test_shift_ticks(price, n, expected):
    assert shift_ticks(price, n) == expected


def test_shift_ticks_rejects_off_grid_price_and_going_below_one_won():
    with pytest.raises(ValueError):
        shift_ticks(70_050, 1)
    with pytest.raises(ValueError):
        shift_ticks(2, -2)


def sample_prices() -> np.ndarray:
    """Every price within 300 won of each band boundary, small prices, and a log-uniform spread."""
    near_bounds = [np.arange(max(start - 300, 1), start + 300) for start, _ in TICK_TABLE]
    rng = np.random.default_rng(1)
    spread = np.exp(rng.uniform(0, np.log(5_000_000), 20_000)).astype(np.int64)
    return np.unique(np.concatenate([*near_bounds, np.arange(1, 3_000), spread, [1, 2_000_000, 4_999_999]]))


PRICES = sample_prices()


# --- vectorised grid --------------------------------------------------------------------------


def test_tick_sizes_match_tick_size_for():
    expected = np.array([tick_size_for(int(p)) for p in PRICES])
    np.testing.assert_array_equal(tick_sizes(PRICES), expected)


@pytest.mark.parametrize("direction", ["down", "up", "nearest"])
def test_round_to_tick_array_matches_round_to_tick(direction):
    expected = np.array([round_to_tick(int(p), direction) for p in PRICES])
    got = round_to_tick_array(PRICES, direction)
    assert got.dtype == np.int64
    np.testing.assert_array_equal(got, expected)


def test_round_to_tick_array_on_floats_brackets_the_price():
    rng = np.random.default_rng(2)
    prices = np.exp(rng.uniform(0, np.log(3_000_000), 20_000))
    down, up, nearest = (round_to_tick_array(prices, d) for d in ("down", "up", "nearest"))
    assert all(is_on_tick(int(p)) for p in np.concatenate([down, up]))
    assert np.all(down <= prices) and np.all(prices <= up)
    assert np.all(up - down <= tick_sizes(prices))
    assert np.all((nearest == down) | (nearest == up))
    closer = np.where(prices - down < up - prices, down, up)
    np.testing.assert_array_equal(nearest, closer)


def test_round_to_tick_array_float_examples():
    got = round_to_tick_array(np.array([1999.7, 2002.4, 2002.5, 70_049.9, 70_050.0, 1.2]), "nearest")
    assert got.tolist() == [2_000, 2_000, 2_005, 70_000, 70_100, 1]


def test_price_limits_array_matches_price_limits():
    lower, upper = price_limits_array(PRICES)
    expected = np.array([price_limits(int(p)) for p in PRICES])
    np.testing.assert_array_equal(lower, expected[:, 0])
    np.testing.assert_array_equal(upper, expected[:, 1])


@pytest.mark.parametrize("bad", [np.array([0]), np.array([-5, 100]), np.array([np.nan])])
def test_grid_functions_reject_prices_below_one(bad):
    with pytest.raises(ValueError):
        tick_sizes(bad)
    with pytest.raises(ValueError):
        round_to_tick_array(bad)


def test_round_to_tick_array_rejects_unknown_direction():
    with pytest.raises(ValueError):
        round_to_tick_array(np.array([1000]), "sideways")
