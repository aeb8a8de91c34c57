"""Property tests (hypothesis) for the KRX price grid and the daily price limits, per price and on arrays."""

import math

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from market.krx import (
    TICK_TABLE,
    is_on_tick,
    price_limits,
    price_limits_array,
    round_to_tick,
    round_to_tick_array,
    shift_ticks,
    tick_size_for,
    tick_sizes,
    validate_order,
)

prices = st.integers(min_value=1, max_value=5_000_000)
on_tick_prices = prices.map(lambda p: round_to_tick(p, "down"))


@given(prices)
def test_rounding_lands_on_the_grid_next_to_the_price(price):
    down, up, nearest = round_to_tick(price, "down"), round_to_tick(price, "up"), round_to_tick(price, "nearest")
    assert is_on_tick(down) and is_on_tick(up) and is_on_tick(nearest)
    assert down <= price <= up
    assert nearest in (down, up)
    assert up - down in (0, tick_size_for(price))
    # nothing on the grid lies strictly between down and up
    assert all(not is_on_tick(p) for p in range(down + 1, up))


@given(on_tick_prices)
def test_rounding_a_valid_price_changes_nothing(price):
    assert round_to_tick(price, "down") == round_to_tick(price, "up") == round_to_tick(price, "nearest") == price


@given(prices)
def test_tick_size_is_the_one_of_the_price_band(price):
    band_ticks = [tick for start, tick in TICK_TABLE if start <= price]
    assert tick_size_for(price) == band_ticks[-1]


@given(on_tick_prices, st.integers(min_value=-50, max_value=50))
def test_shifting_by_ticks_stays_on_the_grid_and_is_reversible(price, n):
    try:
        shifted = shift_ticks(price, n)
    except ValueError:
        assert n < 0 and price <= -n  # only a shift below 1 KRW is refused (1-won ticks there)
        return
    assert is_on_tick(shifted)
    assert (shifted > price) == (n > 0) or n == 0
    assert shift_ticks(shifted, -n) == price


@given(st.integers(min_value=100, max_value=3_000_000))
def test_limits_are_on_the_grid_and_within_thirty_percent(prev_close):
    lower, upper = price_limits(prev_close)
    assert is_on_tick(lower) and is_on_tick(upper)
    assert lower <= prev_close <= upper
    assert upper <= prev_close * 1.3 and lower >= prev_close * 0.7
    # the limits are the widest grid prices inside the band
    assert shift_ticks(upper, 1) > prev_close * 1.3
    assert shift_ticks(lower, -1) < prev_close * 0.7


@given(st.integers(min_value=100, max_value=3_000_000), st.integers(min_value=1, max_value=10_000_000))
def test_validate_order_accepts_exactly_the_on_grid_prices_inside_the_limits(prev_close, price):
    lower, upper = price_limits(prev_close)
    reasons = validate_order("buy", "00", 1, price, prev_close)
    assert (reasons == []) == (is_on_tick(price) and lower <= price <= upper)


# --- the vectorised grid (numpy, for the demo market and the backtester) equals the scalar one ---------

price_arrays = st.lists(prices, min_size=1, max_size=50).map(lambda values: np.array(values, dtype=np.int64))
float_prices = st.floats(min_value=1, max_value=5_000_000, allow_nan=False, allow_infinity=False)


@given(price_arrays)
def test_tick_sizes_equal_tick_size_for(array):
    assert tick_sizes(array).tolist() == [tick_size_for(int(p)) for p in array]


@given(price_arrays, st.sampled_from(["down", "up", "nearest"]))
def test_round_to_tick_array_equals_round_to_tick(array, direction):
    rounded = round_to_tick_array(array, direction)
    assert rounded.dtype == np.int64
    assert rounded.tolist() == [round_to_tick(int(p), direction) for p in array]


@given(price_arrays)
def test_price_limits_array_equals_price_limits(array):
    lower, upper = price_limits_array(array)
    assert list(zip(lower.tolist(), upper.tolist(), strict=True)) == [price_limits(int(p)) for p in array]


@given(float_prices)
def test_round_to_tick_array_on_a_float_is_the_grid_price_next_to_it(price):
    down, up = round_to_tick_array(np.array([price]), "down")[0], round_to_tick_array(np.array([price]), "up")[0]
    # grid prices are whole won: the neighbours of a float are those of its floor and its ceiling
    assert down == round_to_tick(math.floor(price), "down")
    assert up == round_to_tick(math.ceil(price), "up")
    assert down <= price <= up
