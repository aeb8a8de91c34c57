"""The options `backtest` and `walk_forward` share: stocks, period, sizing, costs, owner, parameters —
parsed once into the keyword arguments of ``services.validated_run_settings``."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal, InvalidOperation

from django.contrib.auth import get_user_model
from django.core.management.base import CommandError


def add_run_arguments(parser, param_help: str = "name=value (repeatable)") -> None:
    parser.add_argument("--codes", required=True, help="comma-separated 6-digit codes")
    parser.add_argument("--start", required=True)
    parser.add_argument("--end", required=True)
    parser.add_argument("--param", action="append", default=[], help=param_help)
    parser.add_argument("--cash", type=int, default=10_000_000)
    parser.add_argument("--max-positions", type=int, default=10)
    parser.add_argument("--cash-per-week", type=int, default=None,
                        help="cap on each week's buys in KRW, as a live strategy config's cash per week "
                             "(default: every week spends all the cash)")
    parser.add_argument("--commission", help="commission rate per side, overrides the table (e.g. 0.00015)")
    parser.add_argument("--tax", help="sell tax rate, overrides the dated table (e.g. 0.002)")
    parser.add_argument("--slippage-ticks", type=int, default=0)
    parser.add_argument("--participation-cap", help="a buy takes at most this fraction of the day's volume (0.05)")
    parser.add_argument("--spread-ticks", type=int, default=0, help="extra ticks each way for small caps")
    parser.add_argument("--small-cap-value", type=int, default=1_000_000_000,
                        help="KRW: average daily traded value (20 days) below which a stock is a small cap")
    parser.add_argument("--top-n", type=int, default=None,
                        help="the universe as it was: the N codes with the largest traded value as of each week")
    parser.add_argument("--user", help="store the run under this user (default: not owned)")


def date_option(value: str) -> dt.date:
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        raise CommandError(f"not a date (YYYY-MM-DD): {value!r}") from None


def rate_option(value: str | None, name: str) -> Decimal | None:
    if value is None:
        return None
    try:
        rate = Decimal(value)
    except InvalidOperation:
        raise CommandError(f"--{name} must be a number such as 0.00015, got {value!r}") from None
    if not Decimal(0) <= rate < Decimal(1):
        raise CommandError(f"--{name} must be a fraction between 0 and 1, got {value}")
    return rate


def _number(value: str, name: str) -> Decimal:
    try:
        return Decimal(value)
    except InvalidOperation:
        raise CommandError(f"--{name} must be a number such as 0.05, got {value!r}") from None


def params_option(items: list[str]) -> dict[str, str]:
    params = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep:
            raise CommandError(f"--param takes name=value, got {item!r}")
        params[name.strip()] = value.strip()
    return params


def owner_option(username: str | None):
    if not username:
        return None
    owner = get_user_model().objects.filter(username=username).first()
    if owner is None:
        raise CommandError(f"no user {username!r}")
    return owner


def run_settings(o: dict) -> dict:
    """The run settings of the parsed options (validated again by the service)."""
    cap = o["participation_cap"]
    return {
        "codes": o["codes"].split(","), "start": date_option(o["start"]), "end": date_option(o["end"]),
        "initial_cash": o["cash"], "max_positions": o["max_positions"], "cash_per_week": o["cash_per_week"],
        "commission": rate_option(o["commission"], "commission"), "tax": rate_option(o["tax"], "tax"),
        "slippage_ticks": o["slippage_ticks"],
        "participation_cap": None if cap is None else _number(cap, "participation-cap"),  # bounds: the service
        "spread_ticks": o["spread_ticks"], "small_cap_value": o["small_cap_value"], "universe_top_n": o["top_n"],
    }
