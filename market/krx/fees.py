"""Broker commission and securities transaction tax (증권거래세) on KRX stock trades.

Rounding: every amount is integer KRW and every charge is truncated below 1 won
(원 미만 절사), the usual broker practice. The fact sheet marks the tax rounding
as unconfirmed; the tax is computed once on the combined rate (거래세 + 농어촌특별세)
rather than per component. Rates are ``Decimal`` so that no float error reaches
the won amounts.

Dates: the tax rate is fixed by the transfer date (양도일), which for exchange
trades is the settlement date, T+2 trading days. The 2025 cut therefore already
applied to sells executed on 2024-12-27 (settled 2025-01-02), and the 2026
rise to sells executed on 2025-12-29. Use ``sell_tax_for_trade`` when you hold
the trade date; ``sell_tax_for``/``tax_rate_for`` take the settlement date.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from decimal import ROUND_FLOOR, Decimal
from enum import StrEnum

from market.krx.calendar import settlement_date


class Market(StrEnum):
    """KRX stock markets that have their own tax rate."""

    KOSPI = "KOSPI"
    KOSDAQ = "KOSDAQ"
    KONEX = "KONEX"


# KIS BanKIS / non-face-to-face online account rate for KOSPI/KOSDAQ/KONEX stocks,
# exchange and depository fees included (third-party summary, unconfirmed;
# promotions and account types vary, so keep it configurable).
DEFAULT_COMMISSION_RATE = Decimal("0.000140527")


@dataclass(frozen=True, slots=True)
class SellTaxRate:
    """One row of the sell-side tax schedule, in force from ``effective_from``
    (transfer/settlement date) until the next row for the same market."""

    market: Market
    effective_from: date
    transaction_tax: Decimal
    rural_special_tax: Decimal

    @property
    def total(self) -> Decimal:
        return self.transaction_tax + self.rural_special_tax


def _row(
    market: Market, effective_from: date, transaction: str, rural: str = "0"
) -> SellTaxRate:
    return SellTaxRate(market, effective_from, Decimal(transaction), Decimal(rural))


# Rates as fractions (0.0015 = 0.15%). Sources: fact sheet §8 (2025, 2026);
# KRX member-firm notices on the 2025 cut (2024: 0.18% = 0.03% + 0.15% 농특세);
# MOEF 2025-12-01 ("restored to the 2023 level", 2023: 0.20% = 0.05% + 0.15%);
# 2019-06-03 and 2021 cuts as reported by the press. The 2000-01-01 row is the
# 0.30% rate in force since 1996; its start is set to the calendar's lower bound.
SELL_TAX_SCHEDULE: tuple[SellTaxRate, ...] = (
    _row(Market.KOSPI, date(2000, 1, 1), "0.0015", "0.0015"),
    _row(Market.KOSDAQ, date(2000, 1, 1), "0.0030"),
    _row(Market.KONEX, date(2013, 7, 1), "0.0030"),
    _row(Market.KOSPI, date(2019, 6, 3), "0.0010", "0.0015"),
    _row(Market.KOSDAQ, date(2019, 6, 3), "0.0025"),
    _row(Market.KONEX, date(2019, 6, 3), "0.0010"),
    _row(Market.KOSPI, date(2021, 1, 1), "0.0008", "0.0015"),
    _row(Market.KOSDAQ, date(2021, 1, 1), "0.0023"),
    _row(Market.KOSPI, date(2023, 1, 1), "0.0005", "0.0015"),
    _row(Market.KOSDAQ, date(2023, 1, 1), "0.0020"),
    _row(Market.KOSPI, date(2024, 1, 1), "0.0003", "0.0015"),
    _row(Market.KOSDAQ, date(2024, 1, 1), "0.0018"),
    _row(Market.KOSPI, date(2025, 1, 1), "0", "0.0015"),
    _row(Market.KOSDAQ, date(2025, 1, 1), "0.0015"),
    _row(Market.KOSPI, date(2026, 1, 1), "0.0005", "0.0015"),
    _row(Market.KOSDAQ, date(2026, 1, 1), "0.0020"),
)


def parse_market(market: str | Market) -> Market:
    """Normalise a market name ("kospi", "KOSDAQ", Market.KONEX) to ``Market``."""
    try:
        return Market(str(market).strip().upper())
    except ValueError:
        known = ", ".join(m.value for m in Market)
        raise ValueError(
            f"unknown market {market!r}; expected one of {known}"
        ) from None


def _require_amount(amount_krw: int) -> None:
    if isinstance(amount_krw, bool) or not isinstance(amount_krw, int):
        raise TypeError(f"amount_krw must be an int in KRW, got {amount_krw!r}")
    if amount_krw < 0:
        raise ValueError(f"amount_krw must not be negative, got {amount_krw}")


def _floor_won(amount_krw: int, rate: Decimal) -> int:
    return int((Decimal(amount_krw) * rate).to_integral_value(rounding=ROUND_FLOOR))


def sell_tax_row_for(market: str | Market, on: date) -> SellTaxRate:
    """The schedule row in force for ``market`` on transfer (settlement) date ``on``."""
    parsed = parse_market(market)
    in_force = [
        r for r in SELL_TAX_SCHEDULE if r.market is parsed and r.effective_from <= on
    ]
    if not in_force:
        raise ValueError(f"no {parsed} sell tax rate known for {on.isoformat()}")
    return max(in_force, key=lambda r: r.effective_from)


def tax_rate_for(market: str | Market, on: date) -> Decimal:
    """Combined sell-side tax rate (fraction) for a transfer settled on ``on``."""
    return sell_tax_row_for(market, on).total


def sell_tax_for(amount_krw: int, market: str | Market, on: date) -> int:
    """Sell-side tax in KRW on ``amount_krw`` of proceeds settled on ``on``; floored to 1 won."""
    _require_amount(amount_krw)
    return _floor_won(amount_krw, tax_rate_for(market, on))


def sell_tax_for_trade(amount_krw: int, market: str | Market, trade_date: date) -> int:
    """Sell-side tax for a sell executed on ``trade_date`` (settles T+2 trading days later)."""
    return sell_tax_for(amount_krw, market, settlement_date(trade_date))


def commission_for(amount_krw: int, rate: Decimal | str | float | None = None) -> int:
    """Broker commission in KRW on ``amount_krw`` of trade value, both buys and sells.

    ``rate`` is a fraction (0.00015 = 0.015%); ``None`` uses DEFAULT_COMMISSION_RATE.
    Floats are converted through ``str`` so 0.00015 stays exactly 0.00015.
    """
    _require_amount(amount_krw)
    commission_rate = DEFAULT_COMMISSION_RATE if rate is None else Decimal(str(rate))
    if commission_rate < 0:
        raise ValueError(f"commission rate must not be negative, got {rate!r}")
    return _floor_won(amount_krw, commission_rate)
