"""manage.py backtest: the weekly backtest on stored bars, printing the metrics (or JSON)."""

from __future__ import annotations

import json

from django.core.management.base import BaseCommand, CommandError

from strategies.library import get_strategy
from strategies.library.base import ParameterError
from strategies.management.commands._run_options import add_run_arguments, owner_option, params_option, run_settings
from strategies.services import BacktestInputError, create_backtest_run, execute_backtest_run


class Command(BaseCommand):
    help = "Backtest a strategy by the weekly rules on stored daily bars and print the metrics."

    def add_arguments(self, parser):
        parser.add_argument("--strategy", default="mean_reversion")
        add_run_arguments(parser)
        parser.add_argument("--json", action="store_true", help="print one JSON object: metrics, trades, equity")

    def handle(self, *args, **o):
        try:
            get_strategy(o["strategy"])
        except KeyError as error:
            raise CommandError(str(error.args[0] if error.args else error)) from None
        owner = owner_option(o["user"])
        try:
            run = create_backtest_run(owner, strategy_key=o["strategy"], params=params_option(o["param"]),
                                      **run_settings(o))
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
