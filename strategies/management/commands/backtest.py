"""manage.py backtest: the weekly backtest on stored bars, printing the metrics (or JSON)."""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal, InvalidOperation

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from strategies.library import get_strategy
from strategies.library.base import ParameterError
from strategies.services import BacktestInputError, create_backtest_run, execute_backtest_run


def _date(value: str) -> dt.date:
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        raise CommandError(f"not a date (YYYY-MM-DD): {value!r}") from None


def _rate(value: str | None, name: str) -> Decimal | None:
    if value is None:
        return None
    try:
        rate = Decimal(value)
    except InvalidOperation:
        raise CommandError(f"--{name} must be a number such as 0.00015, got {value!r}") from None
    if not Decimal(0) <= rate < Decimal(1):
        raise CommandError(f"--{name} must be a fraction between 0 and 1, got {value}")
    return rate


class Command(BaseCommand):
    help = "Backtest a strategy by the weekly rules on stored daily bars and print the metrics."

    def add_arguments(self, parser):
        parser.add_argument("--strategy", default="mean_reversion")
        parser.add_argument("--codes", required=True, help="comma-separated 6-digit codes")
        parser.add_argument("--start", required=True)
        parser.add_argument("--end", required=True)
        parser.add_argument("--param", action="append", default=[], help="name=value (repeatable)")
        parser.add_argument("--cash", type=int, default=10_000_000)
        parser.add_argument("--max-positions", type=int, default=10)
        parser.add_argument("--cash-per-week", type=int, default=None,
                            help="cap on each week's buys in KRW, as a live strategy config's cash per week "
                                 "(default: every week spends all the cash)")
        parser.add_argument("--commission", help="commission rate per side, overrides the table (e.g. 0.00015)")
        parser.add_argument("--tax", help="sell tax rate, overrides the dated table (e.g. 0.002)")
        parser.add_argument("--slippage-ticks", type=int, default=0)
        parser.add_argument("--user", help="store the run under this user (default: not owned)")
        parser.add_argument("--json", action="store_true", help="print one JSON object: metrics, trades, equity")

    def handle(self, *args, **o):
        try:
            get_strategy(o["strategy"])
        except KeyError as error:
            raise CommandError(str(error.args[0] if error.args else error)) from None
        params = {}
        for item in o["param"]:
            name, sep, value = item.partition("=")
            if not sep:
                raise CommandError(f"--param takes name=value, got {item!r}")
            params[name.strip()] = value.strip()
        owner = None
        if o["user"]:
            owner = get_user_model().objects.filter(username=o["user"]).first()
            if owner is None:
                raise CommandError(f"no user {o['user']!r}")
        try:
            run = create_backtest_run(
                owner, strategy_key=o["strategy"], params=params, codes=o["codes"].split(","),
                start=_date(o["start"]), end=_date(o["end"]), initial_cash=o["cash"],
                max_positions=o["max_positions"], cash_per_week=o["cash_per_week"],
                commission=_rate(o["commission"], "commission"),
                tax=_rate(o["tax"], "tax"), slippage_ticks=o["slippage_ticks"],
            )
            execute_backtest_run(run)
        except (ParameterError, BacktestInputError, ValueError) as error:
            raise CommandError(str(error)) from None
        if o["json"]:
            payload = {"run": run.pk, "metrics": run.metrics, "benchmark": run.benchmark,
                       "trades": run.trades, "equity": run.equity}
            self.stdout.write(json.dumps(payload, ensure_ascii=False, default=str))
            return
        self.stdout.write(f"backtest #{run.pk}: {run.strategy_key} {run.params} on {len(run.codes)} codes, "
                          f"{run.start}..{run.end}")
        for name, value in (run.metrics or {}).items():
            benchmark = (run.benchmark or {}).get(name)
            suffix = f"   (buy & hold: {benchmark})" if benchmark is not None and not isinstance(benchmark, dict) else ""
            self.stdout.write(f"  {name}: {value}{suffix}")
        self.stdout.write(f"  trades: {len(run.trades or [])}")
