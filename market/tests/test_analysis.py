"""market.analysis: weekly statistics and outliers, by hand on tiny frames and against a plain
per-symbol reference on random markets with gaps. No database."""

from __future__ import annotations

import math
from datetime import date

import numpy as np
import pandas as pd
import pytest
import scipy.stats

from market.analysis import (
    HISTORY_BARS_NEEDED,
    OUTLIER_COLUMNS,
    WEEKLY_COLUMNS,
    analyze,
    iso_week_label,
    rows_as_records,
    week_start,
)

SQRT_252 = math.sqrt(252)
MON = date(2026, 11, 16)  # ISO week 2026-W47


def frame(columns: dict[str, list[float | None]], dates: list[str]) -> pd.DataFrame:
    return pd.DataFrame(
        {code: [np.nan if v is None else v for v in values] for code, values in columns.items()},
        index=pd.to_datetime(dates),
        dtype=float,
    )


def week_days(monday: str, weekdays: str = "MTWTF") -> list[str]:
    """Dates of a week's days, e.g. "MT.TF" skips Wednesday (a holiday)."""
    start = pd.Timestamp(monday)
    return [(start + pd.Timedelta(days=i)).date().isoformat() for i, c in enumerate(weekdays) if c != "."]


def row(result, code: str, monday: str) -> dict:
    weekly = result.weekly
    match = weekly[(weekly["code"] == code) & (weekly["week_start"] == pd.Timestamp(monday))]
    assert len(match) == 1, weekly
    return rows_as_records(match)[0]


def volumes_like(close: pd.DataFrame, volume: float = 1_000.0) -> pd.DataFrame:
    return pd.DataFrame(volume, index=close.index, columns=close.columns)


# --- labels -----------------------------------------------------------------------------------


def test_week_start_and_iso_label():
    assert week_start(date(2026, 11, 22)) == MON  # Sunday
    assert week_start("2026-11-16") == MON
    assert iso_week_label(date(2026, 11, 19)) == "2026-W47"
    assert iso_week_label(date(2024, 12, 30)) == "2025-W01"  # ISO year, not calendar year
    assert iso_week_label(date(2021, 1, 1)) == "2020-W53"


# --- weekly statistics by hand ----------------------------------------------------------------


def two_weeks() -> pd.DataFrame:
    return frame(
        {"A": [100, 102, 101, 105, 104, 106, 103, 103, 110, 108]},
        week_days("2026-11-09") + week_days("2026-11-16"),
    )


def test_weekly_close_return_and_trading_days():
    close = two_weeks()
    result = analyze(close, volumes_like(close), find_outliers=False)

    assert list(result.weekly.columns) == WEEKLY_COLUMNS
    first, second = row(result, "A", "2026-11-09"), row(result, "A", "2026-11-16")
    assert first["iso_week"] == "2026-W46" and first["trading_days"] == 5 and first["close"] == 104
    assert first["weekly_return"] is None  # no bar before the first week
    assert second["iso_week"] == "2026-W47" and second["trading_days"] == 5 and second["close"] == 108
    assert second["weekly_return"] == pytest.approx(108 / 104 - 1)


def test_weekly_volatility_skew_kurtosis_by_hand():
    close = two_weeks()
    result = analyze(close, volumes_like(close), find_outliers=False)
    second = row(result, "A", "2026-11-16")

    # Monday's return is over the previous Friday's close 104.
    r = [math.log(106 / 104), math.log(103 / 106), math.log(103 / 103), math.log(110 / 103), math.log(108 / 110)]
    n = 5
    mean = sum(r) / n
    m2, m3, m4 = (sum((x - mean) ** k for x in r) / n for k in (2, 3, 4))
    assert second["volatility"] == pytest.approx(math.sqrt(m2 * n / (n - 1)) * SQRT_252, rel=1e-12)
    assert second["skew"] == pytest.approx(math.sqrt(n * (n - 1)) / (n - 2) * m3 / m2**1.5, rel=1e-10)
    excess = ((n**2 - 1) * m4 / m2**2 - 3 * (n - 1) ** 2) / ((n - 2) * (n - 3))
    assert second["kurtosis"] == pytest.approx(excess, rel=1e-10)
    # The same as scipy's unbiased estimators.
    assert second["skew"] == pytest.approx(scipy.stats.skew(r, bias=False), rel=1e-10)
    assert second["kurtosis"] == pytest.approx(scipy.stats.kurtosis(r, fisher=True, bias=False), rel=1e-10)


def test_first_week_has_one_return_fewer():
    close = two_weeks()
    first = row(analyze(close, volumes_like(close), find_outliers=False), "A", "2026-11-09")
    r = [math.log(102 / 100), math.log(101 / 102), math.log(105 / 101), math.log(104 / 105)]  # 4 returns
    assert first["volatility"] == pytest.approx(float(np.std(r, ddof=1)) * SQRT_252, rel=1e-12)
    assert first["skew"] == pytest.approx(scipy.stats.skew(r, bias=False), rel=1e-10)
    assert first["kurtosis"] == pytest.approx(scipy.stats.kurtosis(r, bias=False), rel=1e-10)


def test_max_drawdown_starts_from_the_previous_close():
    dates = week_days("2026-11-09") + week_days("2026-11-16")
    close = frame(
        {
            "UP": [100, 100, 100, 100, 100, 110, 99, 105, 88, 95],  # peak 110, trough 88
            "DOWN": [100, 100, 100, 100, 100, 95, 97, 96, 98, 99],  # below the previous close all week
            "RISE": [100, 100, 100, 100, 100, 101, 102, 103, 104, 105],
        },
        dates,
    )
    result = analyze(close, volumes_like(close), find_outliers=False)
    assert row(result, "UP", "2026-11-16")["max_drawdown"] == pytest.approx(88 / 110 - 1)
    assert row(result, "DOWN", "2026-11-16")["max_drawdown"] == pytest.approx(95 / 100 - 1)
    assert row(result, "RISE", "2026-11-16")["max_drawdown"] == 0.0
    assert row(result, "UP", "2026-11-09")["max_drawdown"] == 0.0  # flat, first week


def test_z_score_of_the_last_close_over_the_window():
    days = pd.bdate_range("2026-10-19", "2026-11-20")  # 25 weekdays, the last on Friday 2026-11-20
    closes = [100.0 + i for i in range(len(days))]
    closes[-1] = 150.0
    close = pd.DataFrame({"A": closes}, index=days)
    result = analyze(close, volumes_like(close), find_outliers=False)

    window = closes[-20:]
    expected = (150.0 - np.mean(window)) / np.std(window, ddof=1)
    assert row(result, "A", "2026-11-16")["z_score"] == pytest.approx(expected, rel=1e-12)
    # 5 weeks: the first three weeks have fewer than 20 closes by their end (5, 10, 15).
    z = result.weekly.set_index("iso_week")["z_score"]
    assert z.isna().tolist() == [True, True, True, False, False]

    short = analyze(close, volumes_like(close), z_window=3, find_outliers=False)
    expected_short = (150 - np.mean(closes[-3:])) / np.std(closes[-3:], ddof=1)
    assert row(short, "A", "2026-11-16")["z_score"] == pytest.approx(expected_short)


def test_z_score_of_equal_closes_is_none():
    days = pd.bdate_range("2026-10-19", "2026-11-20")
    close = pd.DataFrame({"A": 5_000.0}, index=days)
    result = analyze(close, volumes_like(close), find_outliers=False)
    last = row(result, "A", "2026-11-16")
    assert last["z_score"] is None
    assert last["volatility"] == 0.0 and last["skew"] is None and last["kurtosis"] is None
    assert last["weekly_return"] == 0.0 and last["max_drawdown"] == 0.0


def test_week_with_a_holiday():
    # Wednesday 2026-11-18 is missing from the index (a market holiday).
    dates = week_days("2026-11-09") + week_days("2026-11-16", "MT.TF")
    close = frame({"A": [100, 100, 100, 100, 100, 101, 103, 99, 100]}, dates)
    result = analyze(close, volumes_like(close), find_outliers=False)
    week = row(result, "A", "2026-11-16")

    assert week["trading_days"] == 4 and week["close"] == 100
    r = [math.log(101 / 100), math.log(103 / 101), math.log(99 / 103), math.log(100 / 99)]
    assert week["volatility"] == pytest.approx(float(np.std(r, ddof=1)) * SQRT_252)
    assert week["kurtosis"] == pytest.approx(scipy.stats.kurtosis(r, bias=False))
    assert week["max_drawdown"] == pytest.approx(99 / 103 - 1)


def test_missing_bar_and_suspended_day():
    dates = week_days("2026-11-09") + week_days("2026-11-16")
    close = frame(
        {
            "GAP": [100, 100, 100, 100, 100, 102, 103, None, 99, 101],  # no bar on Wednesday
            "HALT": [100, 100, 100, 100, 100, 102, 103, 103, 99, 101],  # suspended Wednesday: volume 0
        },
        dates,
    )
    volume = volumes_like(close)
    volume.loc["2026-11-18", "HALT"] = 0
    result = analyze(close, volume, find_outliers=False)

    r = [math.log(102 / 100), math.log(103 / 102), math.log(99 / 103), math.log(101 / 99)]  # Thursday over Tuesday
    for code in ("GAP", "HALT"):
        week = row(result, code, "2026-11-16")
        assert week["trading_days"] == 4
        assert week["weekly_return"] == pytest.approx(101 / 100 - 1)
        assert week["volatility"] == pytest.approx(float(np.std(r, ddof=1)) * SQRT_252)
        assert week["skew"] == pytest.approx(scipy.stats.skew(r, bias=False))
        assert week["max_drawdown"] == pytest.approx(99 / 103 - 1)


def test_suspended_for_a_whole_week_gives_no_row_and_the_next_week_spans_the_gap():
    dates = week_days("2026-11-02") + week_days("2026-11-09") + week_days("2026-11-16")
    close = frame({"A": [100] * 5 + [None] * 5 + [110, 111, 112, 113, 121]}, dates)
    result = analyze(close, volumes_like(close), find_outliers=False)
    assert result.weekly["iso_week"].tolist() == ["2026-W45", "2026-W47"]
    assert row(result, "A", "2026-11-16")["weekly_return"] == pytest.approx(121 / 100 - 1)


def test_symbol_listed_mid_week():
    dates = week_days("2026-11-09") + week_days("2026-11-16")
    close = frame(
        {
            "OLD": [100] * 10,
            "NEW": [None] * 7 + [50, 55, 52],  # first bar on Wednesday 2026-11-18
        },
        dates,
    )
    result = analyze(close, volumes_like(close), find_outliers=False)

    assert result.weekly["code"].tolist() == ["OLD", "OLD", "NEW"]  # no row before listing
    week = row(result, "NEW", "2026-11-16")
    assert week["trading_days"] == 3 and week["close"] == 52
    assert week["weekly_return"] is None
    r = [math.log(55 / 50), math.log(52 / 55)]
    assert week["volatility"] == pytest.approx(float(np.std(r, ddof=1)) * SQRT_252)
    assert week["skew"] is None and week["kurtosis"] is None  # 2 returns: too few
    assert week["max_drawdown"] == pytest.approx(52 / 55 - 1)  # the peak starts at the first close
    assert week["z_score"] is None


def test_a_single_return_has_no_volatility():
    close = frame({"A": [None, None, None, 100, 104]}, week_days("2026-11-16"))
    week = row(analyze(close, volumes_like(close), find_outliers=False), "A", "2026-11-16")
    assert week["trading_days"] == 2 and week["volatility"] is None and week["skew"] is None


def test_unknown_volume_still_counts_the_bar():
    close = frame({"A": [100, 101, 102, 103, 104]}, week_days("2026-11-16"))
    volume = volumes_like(close)
    volume.iloc[2, 0] = np.nan
    assert row(analyze(close, volume, find_outliers=False), "A", "2026-11-16")["trading_days"] == 5
    assert row(analyze(close, None, find_outliers=False), "A", "2026-11-16")["trading_days"] == 5


def test_input_order_and_integer_prices_do_not_matter():
    close = two_weeks()
    shuffled = close.iloc[::-1].astype(np.int64)
    a = analyze(close, volumes_like(close), find_outliers=False).weekly
    b = analyze(shuffled, volumes_like(close), find_outliers=False).weekly
    pd.testing.assert_frame_equal(a, b)


def test_duplicate_dates_are_refused():
    close = frame({"A": [1, 2]}, ["2026-11-16", "2026-11-16"])
    with pytest.raises(ValueError, match="duplicate dates"):
        analyze(close)


def test_weeks_selects_the_reported_weeks():
    close = two_weeks()
    result = analyze(close, volumes_like(close), weeks=[date(2026, 11, 19)])
    assert result.weekly["iso_week"].tolist() == ["2026-W47"]
    assert analyze(close, volumes_like(close), weeks=[date(2026, 1, 5)]).weekly.empty


def test_empty_input():
    result = analyze(pd.DataFrame(dtype=float))
    assert result.weekly.empty and list(result.weekly.columns) == WEEKLY_COLUMNS
    assert result.outliers.empty and list(result.outliers.columns) == OUTLIER_COLUMNS


# --- outliers by hand -------------------------------------------------------------------------

BASELINE = [0.01, -0.01, 0.02, -0.02, 0.0, 0.01, -0.01, 0.02, -0.02, 0.0]  # mean 0


def spike_market(spike: float = 0.10) -> tuple[pd.DataFrame, pd.DataFrame]:
    """11 weekdays of returns: 10 baseline ones then a spike on Friday 2026-11-20; flat volume."""
    returns = [0.0, *BASELINE, spike]  # the first bar has no return
    days = pd.bdate_range(end="2026-11-20", periods=len(returns))
    close = pd.DataFrame({"A": 10_000 * np.exp(np.cumsum(returns))}, index=days)
    return close, volumes_like(close)


def outliers_of(result) -> dict[tuple[str, str], float]:
    found = result.outliers
    return {(s, m): score for s, m, score in zip(found["series"], found["method"], found["score"], strict=True)}


def test_spike_found_by_every_method_with_hand_computed_scores():
    close, volume = spike_market()
    result = analyze(close, volume, weeks=[MON], outlier_window=10, hampel_window=5)

    assert list(result.outliers.columns) == OUTLIER_COLUMNS
    std = math.sqrt(sum(x * x for x in BASELINE) / 9)  # sample std, mean 0
    # Sorted baseline: -.02 -.02 -.01 -.01 0 0 .01 .01 .02 .02; Q1 at 2.25 -> -0.01, Q3 at 6.75 -> 0.01.
    iqr_score = (0.10 - 0.01) / 0.02
    # Last 5 baseline values: .01 -.01 .02 -.02 0 -> median 0, |deviations| 0 .01 .01 .02 .02 -> MAD 0.01.
    hampel_score = 0.10 / (1.4826 * 0.01)
    assert outliers_of(result) == pytest.approx(
        {("close", "zscore"): 0.10 / std, ("close", "iqr"): iqr_score, ("close", "hampel"): hampel_score}
    )
    hit = rows_as_records(result.outliers)[0]
    assert hit["code"] == "A" and hit["date"] == date(2026, 11, 20) and hit["week_start"] == MON
    assert hit["value"] == pytest.approx(float(close.iloc[-1, 0]))  # the close itself


def test_a_negative_spike_scores_negative():
    close, volume = spike_market(-0.10)
    scores = outliers_of(analyze(close, volume, weeks=[MON], outlier_window=10, hampel_window=5))
    assert scores[("close", "iqr")] == pytest.approx((-0.10 + 0.01) / 0.02)
    assert scores[("close", "zscore")] < -3 and scores[("close", "hampel")] < -3


def test_thresholds_are_strict_and_methods_differ():
    # 0.045: z = 0.045 / 0.0149 = 3.02 > 3; IQR score (0.045 - 0.01) / 0.02 = 1.75 > 1.5;
    # Hampel 0.045 / 0.014826 = 3.04 > 3. 0.039: z 2.62, IQR 1.45, Hampel 2.63: none.
    close, volume = spike_market(0.045)
    assert set(outliers_of(analyze(close, volume, weeks=[MON], outlier_window=10, hampel_window=5))) == {
        ("close", "zscore"), ("close", "iqr"), ("close", "hampel")
    }
    close, volume = spike_market(0.039)
    assert outliers_of(analyze(close, volume, weeks=[MON], outlier_window=10, hampel_window=5)) == {}


def test_volume_spike_in_log_volume():
    close, volume = spike_market(0.0)
    log_volume = [math.log(1000) + x for x in [0.0, *BASELINE]] + [math.log(1000) + 0.10]
    volume["A"] = np.exp(log_volume)
    scores = outliers_of(analyze(close, volume, weeks=[MON], outlier_window=10, hampel_window=5))
    std = math.sqrt(sum(x * x for x in BASELINE) / 9)
    assert scores[("volume", "zscore")] == pytest.approx(0.10 / std)
    assert scores[("volume", "iqr")] == pytest.approx((0.10 - 0.01) / 0.02)
    assert scores[("volume", "hampel")] == pytest.approx(0.10 / (1.4826 * 0.01))


def test_no_test_against_a_flat_baseline_or_an_incomplete_one():
    close, volume = spike_market()
    volume.iloc[-1, 0] = 50_000  # a volume spike against a perfectly flat volume: zero spread
    result = analyze(close, volume, weeks=[MON], outlier_window=11, hampel_window=5)
    # An 11-value baseline would need the first bar's return, which does not exist: no z/IQR test.
    assert set(outliers_of(result)) == {("close", "hampel")}


def test_only_outliers_of_the_reported_week():
    close, volume = spike_market()
    # Append a calm week after the spike: its analysis reports nothing from the spike's week.
    later = pd.bdate_range("2026-11-23", periods=5)
    calm = pd.DataFrame({"A": float(close.iloc[-1, 0])}, index=later)
    close2 = pd.concat([close, calm])
    volume2 = volumes_like(close2)
    assert analyze(close2, volume2, weeks=[date(2026, 11, 23)], outlier_window=10, hampel_window=5).outliers.empty
    every_week = analyze(close2, volume2, outlier_window=10, hampel_window=5).outliers
    assert set(every_week["date"]) == {pd.Timestamp("2026-11-20")}


# --- a plain per-symbol reference on random markets -------------------------------------------


def random_market(seed: int, n_symbols: int = 9, n_dates: int = 320) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Integer prices (some cheap, so ties and zero returns), fat tails, listings, delistings,
    missing bars, suspended days, unknown volumes, flat stretches and holidays."""
    rng = np.random.default_rng(seed)
    days = pd.bdate_range("2025-01-01", periods=n_dates + 30)
    days = days[np.sort(rng.choice(len(days), n_dates, replace=False))]  # some weekdays are holidays
    steps = rng.standard_t(3, (n_dates, n_symbols)) * 0.02
    start = rng.choice([40.0, 900.0, 70_000.0], n_symbols)
    close = np.rint(start * np.exp(np.cumsum(steps, axis=0)))
    volume = np.rint(np.exp(rng.normal(9, 0.6, (n_dates, n_symbols))))
    close[rng.random(close.shape) < 0.03] = np.nan
    volume[rng.random(volume.shape) < 0.01] = 0
    volume[rng.random(volume.shape) < 0.01] = np.nan
    close[: rng.integers(0, 120), 1] = np.nan  # listed later
    close[rng.integers(200, n_dates) :, 2] = np.nan  # delisted
    close[100:140, 3] = close[99, 3]  # flat for 40 days
    volume[150:230, 4] = 5_000  # flat volume
    volume[:, 5] = np.where(rng.random(n_dates) < 0.02, volume[:, 5] * 20, volume[:, 5])  # volume bursts
    codes = [f"{i:06d}" for i in range(n_symbols)]
    return pd.DataFrame(close, index=days, columns=codes), pd.DataFrame(volume, index=days, columns=codes)


def reference(close: pd.DataFrame, volume: pd.DataFrame, z_window=20, window=60, hampel=21):
    """The module docstring's definitions, symbol by symbol and week by week."""
    weekly, outliers = [], []
    for code in close.columns:
        c, v = close[code], volume[code]
        is_bar = c.notna() & (c > 0) & ~(v <= 0)
        c, v = c[is_bar], v[is_bar]
        returns = np.log(c / c.shift(1))
        log_volume = np.log(v.where(v > 0))
        mondays = c.index - pd.to_timedelta(c.index.day_of_week, unit="D")
        for monday in sorted(set(mondays)):
            in_week = np.flatnonzero(mondays == monday)
            first, last = in_week[0], in_week[-1]
            previous = c.iloc[first - 1] if first > 0 else np.nan
            r = returns.iloc[in_week].dropna().to_numpy()
            n = len(r)
            equal = n > 0 and r.max() == r.min()
            peak, drawdown = previous, 0.0
            for price in c.iloc[in_week]:
                peak = price if np.isnan(peak) else max(peak, price)
                drawdown = min(drawdown, price / peak - 1)
            z = np.nan
            if last >= z_window - 1:
                closes = c.iloc[last - z_window + 1 : last + 1].to_numpy()
                if closes.max() > closes.min():
                    z = (closes[-1] - closes.mean()) / closes.std(ddof=1)
            weekly.append(
                {
                    "code": code, "week_start": monday, "trading_days": len(in_week), "close": c.iloc[last],
                    "weekly_return": c.iloc[last] / previous - 1,
                    "volatility": np.std(r, ddof=1) * SQRT_252 if n >= 2 else np.nan,
                    "skew": scipy.stats.skew(r, bias=False) if n >= 3 and not equal else np.nan,
                    "kurtosis": scipy.stats.kurtosis(r, bias=False) if n >= 4 and not equal else np.nan,
                    "max_drawdown": drawdown, "z_score": z,
                }
            )
        for series, values, raw in (("close", returns, c), ("volume", log_volume, v)):
            x = values.to_numpy()
            for i in range(len(x)):
                if np.isnan(x[i]):
                    continue
                found = {}
                base = x[i - window : i] if i >= window else np.array([np.nan])
                if not np.isnan(base).any() and base.max() > base.min():
                    found["zscore"] = ((x[i] - base.mean()) / base.std(ddof=1), 3.0)
                if not np.isnan(base).any():
                    q1, q3 = np.quantile(base, [0.25, 0.75])
                    if q3 > q1:
                        beyond = x[i] - q3 if x[i] > q3 else x[i] - q1 if x[i] < q1 else 0.0
                        found["iqr"] = (beyond / (q3 - q1), 1.5)
                base = x[i - hampel : i] if i >= hampel else np.array([np.nan])
                if not np.isnan(base).any():
                    median = np.median(base)
                    mad = np.median(np.abs(base - median))
                    if mad > 0:
                        found["hampel"] = ((x[i] - median) / (1.4826 * mad), 3.0)
                for method, (score, threshold) in found.items():
                    if abs(score) > threshold:
                        day = values.index[i]
                        outliers.append(
                            {"code": code, "week_start": day - pd.Timedelta(days=day.day_of_week), "date": day,
                             "series": series, "method": method, "value": raw.iloc[i], "score": score}
                        )
    return pd.DataFrame(weekly), pd.DataFrame(outliers)


def comparable(frame: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    frame = frame.copy()
    for column in ("code", "iso_week", "series", "method"):
        if column in frame:
            frame[column] = frame[column].astype(str)
    for column in ("week_start", "date"):
        if column in frame:
            frame[column] = pd.to_datetime(frame[column]).astype("datetime64[s]")
    return frame.sort_values(keys).reset_index(drop=True)


@pytest.mark.parametrize(
    ("seed", "windows"),
    [
        (1, {}),
        (2, {}),
        (3, {}),
        (7, {"z_window": 5, "outlier_window": 9, "hampel_window": 4}),  # even Hampel window
        (8, {"z_window": 2, "outlier_window": 3, "hampel_window": 2}),  # windows shorter than a run
        (9, {"outlier_window": 30, "hampel_window": 11}),
    ],
)
def test_matches_the_reference_on_random_markets(seed, windows):
    close, volume = random_market(seed)
    result = analyze(close, volume, **windows)
    expected_weekly, expected_outliers = reference(
        close, volume, **{{"outlier_window": "window", "hampel_window": "hampel"}.get(k, k): v for k, v in windows.items()}
    )

    got = comparable(result.weekly, ["week_start", "code"])
    expected = comparable(expected_weekly, ["week_start", "code"])
    pd.testing.assert_frame_equal(
        got[["code", "week_start", "trading_days", "close"]],
        expected[["code", "week_start", "trading_days"]].assign(close=expected["close"].astype(np.int64)),
        check_dtype=False,
    )
    for column in ("weekly_return", "volatility", "skew", "kurtosis", "max_drawdown", "z_score"):
        np.testing.assert_allclose(got[column], expected[column], rtol=1e-9, atol=1e-12, err_msg=column)
    assert got["iso_week"].tolist() == [iso_week_label(d) for d in expected["week_start"]]

    keys = ["week_start", "code", "date", "series", "method"]
    got_outliers = comparable(result.outliers, keys)
    expected_outliers = comparable(expected_outliers, keys)
    assert len(expected_outliers) > 50  # every method finds something
    assert set(expected_outliers["method"]) == {"zscore", "iqr", "hampel"}
    pd.testing.assert_frame_equal(got_outliers[keys], expected_outliers[keys])
    np.testing.assert_allclose(got_outliers["score"], expected_outliers["score"], rtol=1e-9)
    np.testing.assert_allclose(got_outliers["value"], expected_outliers["value"])


@pytest.mark.parametrize("seed", [4, 5])
def test_one_week_with_history_equals_the_same_week_of_the_full_run(seed):
    close, volume = random_market(seed)
    full = analyze(close, volume)
    monday = pd.Timestamp(week_start(close.index[-1]))
    history = close.index[close.index < monday][-HISTORY_BARS_NEEDED - 30 :][0]
    part = analyze(close.loc[history:], volume.loc[history:], weeks=[monday])

    def of_week(frame):
        return frame[frame["week_start"] == monday].reset_index(drop=True)

    pd.testing.assert_frame_equal(of_week(full.weekly), part.weekly, check_categorical=False)
    pd.testing.assert_frame_equal(of_week(full.outliers), part.outliers, check_categorical=False)


def test_threads_do_not_change_the_result():
    close, volume = random_market(6)
    one, two = analyze(close, volume, threads=1), analyze(close, volume, threads=3)
    pd.testing.assert_frame_equal(one.weekly, two.weekly)
    pd.testing.assert_frame_equal(one.outliers, two.outliers)


def test_rows_as_records_gives_plain_values():
    close = two_weeks()
    records = rows_as_records(analyze(close, volumes_like(close), find_outliers=False).weekly)
    first = records[0]
    assert first["code"] == "A" and first["week_start"] == date(2026, 11, 9)
    assert type(first["trading_days"]) is int and type(first["close"]) is int
    assert first["weekly_return"] is None and type(records[1]["weekly_return"]) is float
