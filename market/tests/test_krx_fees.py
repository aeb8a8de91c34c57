"""Commission and sell-side tax, hand-computed from the fact sheet's rates."""

from datetime import date
from decimal import Decimal

import pytest

from market.krx.fees import (
    DEFAULT_COMMISSION_RATE,
    SELL_TAX_SCHEDULE,
    Market,
    commission_for,
    parse_market,
    sell_tax_for,
    sell_tax_for_trade,
    sell_tax_row_for,
    tax_rate_for,
)


@pytest.mark.parametrize(
    ("market", "on", "rate"),
    [
        (Market.KOSPI, date(2023, 6, 1), "0.0020"),
        (Market.KOSPI, date(2024, 12, 31), "0.0018"),
        (Market.KOSPI, date(2025, 1, 1), "0.0015"),
        (Market.KOSPI, date(2025, 12, 31), "0.0015"),
        (Market.KOSPI, date(2026, 1, 1), "0.0020"),
        (Market.KOSDAQ, date(2023, 6, 1), "0.0020"),
        (Market.KOSDAQ, date(2024, 6, 1), "0.0018"),
        (Market.KOSDAQ, date(2025, 6, 1), "0.0015"),
        (Market.KOSDAQ, date(2026, 6, 1), "0.0020"),
        (Market.KONEX, date(2025, 6, 1), "0.0010"),
        (Market.KONEX, date(2026, 6, 1), "0.0010"),
        (Market.KOSPI, date(2019, 6, 2), "0.0030"),
        (Market.KOSPI, date(2019, 6, 3), "0.0025"),
        (Market.KOSDAQ, date(2022, 6, 1), "0.0023"),
    ],
)
def test_tax_rate_by_market_and_settlement_date(market, on, rate):
    assert tax_rate_for(market, on) == Decimal(rate)


def test_kospi_2025_is_all_rural_special_tax_and_2026_adds_transaction_tax():
    row_2025 = sell_tax_row_for("KOSPI", date(2025, 7, 1))
    row_2026 = sell_tax_row_for("KOSPI", date(2026, 7, 1))
    assert (row_2025.transaction_tax, row_2025.rural_special_tax) == (
        Decimal(0),
        Decimal("0.0015"),
    )
    assert (row_2026.transaction_tax, row_2026.rural_special_tax) == (
        Decimal("0.0005"),
        Decimal("0.0015"),
    )


def test_sell_tax_on_a_2025_vs_2026_sell():
    assert sell_tax_for(10_000_000, "KOSPI", date(2025, 7, 1)) == 15_000
    assert sell_tax_for(10_000_000, "KOSPI", date(2026, 7, 1)) == 20_000
    # 1,234,567 x 0.15% = 1,851.85 -> 1,851; x 0.20% = 2,469.134 -> 2,469
    assert sell_tax_for(1_234_567, "KOSDAQ", date(2025, 7, 1)) == 1_851
    assert sell_tax_for(1_234_567, "KOSDAQ", date(2026, 7, 1)) == 2_469
    # KONEX 0.10%: 1,234.567 -> 1,234
    assert sell_tax_for(1_234_567, "KONEX", date(2026, 7, 1)) == 1_234
    assert sell_tax_for(0, "KOSPI", date(2026, 7, 1)) == 0
    assert sell_tax_for(666, "KOSPI", date(2026, 7, 1)) == 1  # 1.332 -> 1


def test_sell_tax_for_trade_uses_the_t_plus_2_settlement_date():
    # Executed 2024-12-27, settled 2025-01-02: already the 2025 rate.
    assert sell_tax_for_trade(10_000_000, "KOSPI", date(2024, 12, 27)) == 15_000
    # Executed 2024-12-26, settled 2024-12-30: still the 2024 rate.
    assert sell_tax_for_trade(10_000_000, "KOSPI", date(2024, 12, 26)) == 18_000
    # Executed 2025-12-29, settled 2026-01-02: the 2026 rate.
    assert sell_tax_for_trade(10_000_000, "KOSDAQ", date(2025, 12, 29)) == 20_000
    # Executed 2025-12-26, settled 2025-12-30: the 2025 rate.
    assert sell_tax_for_trade(10_000_000, "KOSDAQ", date(2025, 12, 26)) == 15_000


def test_market_names_are_case_insensitive_and_unknown_ones_fail():
    assert parse_market(" kosdaq ") is Market.KOSDAQ
    assert tax_rate_for("kospi", date(2026, 7, 1)) == Decimal("0.0020")
    with pytest.raises(ValueError):
        tax_rate_for("NYSE", date(2026, 7, 1))


def test_dates_before_the_schedule_fail():
    with pytest.raises(ValueError):
        tax_rate_for("KOSPI", date(1999, 12, 31))
    with pytest.raises(ValueError):
        tax_rate_for("KONEX", date(2013, 6, 30))


def test_amounts_must_be_non_negative_ints():
    with pytest.raises(ValueError):
        sell_tax_for(-1, "KOSPI", date(2026, 7, 1))
    with pytest.raises(TypeError):
        sell_tax_for(1_000.0, "KOSPI", date(2026, 7, 1))
    with pytest.raises(TypeError):
        commission_for(1_000.0)


def test_schedule_has_one_row_per_market_and_date():
    keys = [(row.market, row.effective_from) for row in SELL_TAX_SCHEDULE]
    assert len(keys) == len(set(keys))


def test_commission_default_online_rate_truncates_below_one_won():
    assert DEFAULT_COMMISSION_RATE == Decimal("0.000140527")
    assert commission_for(1_000_000) == 140  # 140.527
    assert commission_for(10_000_000) == 1_405  # 1,405.27
    assert commission_for(7_000) == 0  # 0.98
    assert commission_for(0) == 0


def test_commission_with_a_configured_rate():
    assert commission_for(10_000_000, rate=0.00015) == 1_500
    assert commission_for(1_234_567, rate=Decimal("0.00015")) == 185  # 185.185
    assert commission_for(1_234_567, rate="0.0001") == 123
    with pytest.raises(ValueError):
        commission_for(1_000, rate=-0.001)
