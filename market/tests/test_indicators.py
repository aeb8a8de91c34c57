"""market.indicators against hand-computed numbers (pure Python, no database)."""

import math

import pytest

from market.indicators import (
    bollinger_bands,
    indicators,
    moving_average,
    rolling_std,
    rounded,
    z_scores,
)

CLOSES = [10, 12, 11, 13, 14]


def approx_series(actual, expected):
    assert len(actual) == len(expected)
    for a, e in zip(actual, expected, strict=True):
        if e is None:
            assert a is None
        else:
            assert a == pytest.approx(e, abs=1e-12)


def test_moving_average_by_hand():
    # (10+12+11)/3 = 11, (12+11+13)/3 = 12, (11+13+14)/3 = 38/3
    approx_series(moving_average(CLOSES, 3), [None, None, 11.0, 12.0, 38 / 3])


def test_rolling_std_is_the_population_std():
    # window 10,12,11: deviations -1,1,0 → var 2/3; 12,11,13: 0,-1,1 → 2/3;
    # 11,13,14: mean 38/3, deviations -5/3, 1/3, 4/3 → (25+1+16)/9/3 = 42/27
    approx_series(rolling_std(CLOSES, 3), [None, None, math.sqrt(2 / 3), math.sqrt(2 / 3), math.sqrt(42 / 27)])


def test_bollinger_band_is_ma_plus_minus_two_sigma():
    bands = bollinger_bands(CLOSES, 3, 2.0)
    s = math.sqrt(2 / 3)
    approx_series(bands.middle, [None, None, 11.0, 12.0, 38 / 3])
    approx_series(bands.upper[:4], [None, None, 11 + 2 * s, 12 + 2 * s])
    approx_series(bands.lower[:4], [None, None, 11 - 2 * s, 12 - 2 * s])
    assert bands.upper[4] == pytest.approx(38 / 3 + 2 * math.sqrt(42 / 27))


def test_z_score_by_hand():
    # day 3: (11 − 11)/σ = 0; day 4: (13 − 12)/sqrt(2/3) = 1.2247…; day 5: (14 − 38/3)/sqrt(42/27)
    z = z_scores(CLOSES, 3)
    approx_series(z, [None, None, 0.0, 1 / math.sqrt(2 / 3), (14 - 38 / 3) / math.sqrt(42 / 27)])
    assert z[3] == pytest.approx(1.224744871, abs=1e-9)


def test_z_equals_two_exactly_on_the_upper_band():
    values = [100.0] * 19 + [120.0]
    bands = bollinger_bands(values, 20, 2.0)
    z = z_scores(values, 20)
    sigma = (bands.upper[-1] - bands.middle[-1]) / 2
    assert (values[-1] - bands.middle[-1]) / sigma == pytest.approx(z[-1])
    # mean 101, σ = sqrt((19·1 + 19²)/20) = sqrt(19); z = 19/sqrt(19) = sqrt(19)
    assert bands.middle[-1] == pytest.approx(101.0)
    assert z[-1] == pytest.approx(math.sqrt(19))


def test_flat_window_has_no_z_score():
    assert z_scores([5, 5, 5, 6], 3) == [None, None, None, pytest.approx((6 - 16 / 3) / math.sqrt(2 / 9))]


def test_twenty_day_window_needs_twenty_values():
    values = list(range(1, 20))
    assert moving_average(values) == [None] * 19
    assert moving_average([*values, 20])[-1] == pytest.approx(10.5)
    # 1..20: population variance (n² − 1)/12 = 399/12
    assert rolling_std([*values, 20])[-1] == pytest.approx(math.sqrt(399 / 12))


def test_combined_indicators_match_the_separate_functions():
    values = [70_000 + (i * 37) % 900 - 400 for i in range(60)]
    combined = indicators(values, 20, 2.0)
    bands = bollinger_bands(values, 20, 2.0)
    approx_series(combined.middle, bands.middle)
    approx_series(combined.upper, bands.upper)
    approx_series(combined.lower, bands.lower)
    approx_series(combined.z, z_scores(values, 20))


def test_short_and_empty_input():
    assert moving_average([], 20) == []
    assert indicators([1, 2], 20).z == [None, None]


@pytest.mark.parametrize("window", [0, -1, 2.5, True])
def test_bad_window_is_refused(window):
    with pytest.raises(ValueError):
        moving_average(CLOSES, window)


def test_rounded_keeps_none():
    assert rounded([None, 1.23456], 2) == [None, 1.23]
