"""`manage.py compare_live_backtest [--config ID] [--week YYYY-MM-DD] [--json]`: a week of live orders and
fills against the backtest of the same config over the same bars (`orders.drift`), stored and alerted as
the weekly task does. Exits 1 when a config could not be compared."""

from __future__ import annotations

import datetime as dt
import json

from django.core.management.base import BaseCommand, CommandError

from orders import common, drift
from orders.models import WeeklyDrift
from strategies.models import StrategyConfig


class Command(BaseCommand):
    help = "Compare a week of live trading with the backtest of the same strategy config."

    def add_arguments(self, parser):
        parser.add_argument("--config", type=int, default=None,
                            help="one strategy config (default: every active config with a broker account)")
        parser.add_argument("--week", type=dt.date.fromisoformat, default=None,
                            help="any day of the week (default: the latest week whose last session has closed)")
        parser.add_argument("--json", action="store_true", help="print the comparisons as JSON")

    def handle(self, *args, config, week, json: bool = False, **options):
        if isinstance(week, str):
            week = dt.date.fromisoformat(week)
        monday = drift.week_monday(week) if week else drift.week_to_compare()
        if config is not None:
            configs = list(StrategyConfig.objects.filter(pk=config, broker_account__isnull=False))
            if not configs:
                raise CommandError(f"strategy config {config} does not exist or has no broker account")
        else:
            configs = list(common.active_configs())
        results = drift.compare_configs(configs, monday)
        failed = {pk: result for pk, result in results.items() if not isinstance(result, WeeklyDrift)}
        if json:
            self.stdout.write(_dumps({
                "week_start": monday.isoformat(),
                "drifts": [drift.drift_as_dict(r) for r in results.values() if isinstance(r, WeeklyDrift)],
                "errors": {str(pk): message for pk, message in failed.items()},
            }))
        else:
            self._print(monday, results)
        if failed:
            raise CommandError(f"{len(failed)} of {len(results)} configs could not be compared")

    def _print(self, monday: dt.date, results: dict) -> None:
        self.stdout.write(f"live vs backtest, week of {monday}:")
        if not results:
            self.stdout.write("  no active strategy config with a broker account")
        for pk, result in results.items():
            if not isinstance(result, WeeklyDrift):
                self.stdout.write(f"  config {pk}: not compared: {result}")
                continue
            slippage = "-" if result.slippage_bps is None else f"{result.slippage_bps:+.1f}bp"
            self.stdout.write(
                f"  config {pk} {result.config.name}: gap {result.pnl_gap_krw:+,} KRW ({result.gap_bps:+.1f}bp; "
                f"live {result.live_pnl:+,}, backtest {result.backtest_pnl:+,}), slippage {result.slippage_krw:+,} "
                f"KRW ({slippage}), matched {result.matched_count}, missing {result.missing_count}, "
                f"extra {result.extra_count}, quantity differs {result.qty_diff_count}"
                + (" — ALERT: " + "; ".join(result.alert_reasons) if result.alert else ""))
            for row in result.trades:
                if row["kind"] != "matched" or row["quantity_diff"] or row["slippage_krw"]:
                    self.stdout.write(
                        f"    {row['date']} {row['code']} {row['side']}: {row['kind']}, backtest "
                        f"{row['backtest_quantity']}@{row['backtest_price'] or '-'}, live "
                        f"{row['live_quantity']}@{row['live_price'] or '-'}")


def _dumps(value) -> str:
    return json.dumps(value, ensure_ascii=False, indent=2)
