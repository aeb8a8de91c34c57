"""The rules for a strategy's settings and a backtest's sizing, defined once.

`StrategyConfig`'s field validators and `clean()` use them (so the 전략 page's form and the admin,
both model forms), the API's serializers call the same functions, and the backtest's forms, API and
service take their bounds from here: a value one of them accepts, the others accept too.
"""

from __future__ import annotations

from collections.abc import Iterable
from decimal import Decimal

from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator
from django.utils.translation import gettext_lazy as _

from market.models import Instrument

# Counts: the backtest's bounds (forms, API and `create_backtest_run`).
MAX_POSITIONS = 200
MAX_UNIVERSE_CODES = 3000  # codes in a backtest or a listed universe, and the largest top N
# Amounts in KRW: no account holds a trillion won; the cap keeps a typo out of the jobs and the pages.
MAX_CASH_KRW = 1_000_000_000_000
MIN_INITIAL_CASH_KRW = 100_000
MAX_SLIPPAGE_TICKS = 50
# Unknown codes named in one message (the rest are counted).
UNKNOWN_CODES_SHOWN = 20

MAX_POSITIONS_VALIDATORS = [MinValueValidator(1), MaxValueValidator(MAX_POSITIONS)]
UNIVERSE_TOP_N_VALIDATORS = [MinValueValidator(1), MaxValueValidator(MAX_UNIVERSE_CODES)]
CASH_VALIDATORS = [MinValueValidator(0), MaxValueValidator(MAX_CASH_KRW)]
# Live versus backtest: an alert threshold above 100% of the cash invested would never fire.
MAX_DRIFT_ALERT_BPS = 10_000
DRIFT_ALERT_VALIDATORS = [MinValueValidator(1), MaxValueValidator(MAX_DRIFT_ALERT_BPS)]
# A buy takes at most this fraction of the day's volume (1 = the whole day's volume).
PARTICIPATION_VALIDATORS = [MinValueValidator(Decimal("0.0001")), MaxValueValidator(Decimal(1))]
MAX_SPREAD_TICKS = 20


def split_codes(text: str | None) -> list[str]:
    """The tokens of a code list as typed: separated by commas and/or whitespace."""
    return (text or "").replace(",", " ").split()


def normalise_code(token) -> str:
    code = str(token).strip().upper()
    return code.zfill(6) if code.isdigit() else code


def normalise_codes(codes: Iterable) -> list[str]:
    """Upper-case, digits padded to 6 (`5930` → `005930`), duplicates removed, order kept."""
    cleaned = (normalise_code(code) for code in codes)
    return list(dict.fromkeys(code for code in cleaned if code))


def unknown_codes(codes: Iterable[str]) -> list[str]:
    """The (normalised) codes that are not an instrument of the market data."""
    codes = list(codes)
    known = set(Instrument.objects.filter(code__in=codes).values_list("code", flat=True))
    return [code for code in codes if code not in known]


def unknown_codes_message(names: list[str]) -> str:
    shown = ", ".join(name[:20] for name in names[:UNKNOWN_CODES_SHOWN])
    if len(names) > UNKNOWN_CODES_SHOWN:
        shown += f" … (+{len(names) - UNKNOWN_CODES_SHOWN})"
    return _("Unknown codes: %(codes)s") % {"codes": shown}


def clean_codes(tokens: Iterable, *, required: bool = False, required_message=None) -> list[str]:
    """The normalised, de-duplicated codes of `tokens`, each a known instrument; a ValidationError in
    Korean naming the unknown ones as they were typed, or for too many or (when `required`) none."""
    typed: dict[str, str] = {}
    for token in tokens:
        code = normalise_code(token)
        if code:
            typed.setdefault(code, str(token).strip())
    codes = list(typed)
    if required and not codes:
        raise ValidationError(required_message or _("List at least one code."), code="required")
    if len(codes) > MAX_UNIVERSE_CODES:
        raise ValidationError(
            _("At most %(max)s codes (got %(count)s)."),
            code="too_many", params={"max": f"{MAX_UNIVERSE_CODES:,}", "count": f"{len(codes):,}"},
        )
    unknown = unknown_codes(codes)
    if unknown:
        raise ValidationError(unknown_codes_message([typed[code] for code in unknown]), code="unknown_codes")
    return codes


def clean_universe_codes(text: str | None, *, required: bool) -> str:
    """A strategy's `universe_codes` as stored: known codes, de-duplicated, `, `-separated.
    `required`: the universe is the listed codes, so at least one."""
    codes = clean_codes(
        split_codes(text), required=required,
        required_message=_("List at least one code, or choose the top-N universe."),
    )
    return ", ".join(codes)
