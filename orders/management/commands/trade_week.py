"""Run a weekly job by hand: `manage.py trade_week entry|check|exit [--config ID] [--date YYYY-MM-DD] [--dry-run]`.

Without --date the job runs for today at the current time. With a past --date (paper accounts only;
KIS accounts refuse other dates) the job runs on that date's slot time: entry 09:05, check/exit 15:15."""

from __future__ import annotations

import datetime as dt

from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from market.krx import SEOUL
from orders.common import active_configs
from orders.weekly import place_weekly_buys, run_exit_checks
from strategies.models import StrategyConfig

SLOT_TIMES = {"entry": dt.time(9, 5), "check": dt.time(15, 15), "exit": dt.time(15, 15)}


class Command(BaseCommand):
    help = "Run the weekly entry, check or exit job for active strategy configs (or one config)."

    def add_arguments(self, parser):
        parser.add_argument("job", choices=["entry", "check", "exit"])
        parser.add_argument("--config", type=int, default=None, help="StrategyConfig id (default: all active)")
        parser.add_argument("--date", type=dt.date.fromisoformat, default=None, help="trading date YYYY-MM-DD")
        parser.add_argument("--dry-run", action="store_true", help="print the orders without sending or storing")

    def handle(self, *args, job: str, config: int | None, date, dry_run: bool, **options):
        if isinstance(date, str):
            date = dt.date.fromisoformat(date)
        now = timezone.now().astimezone(SEOUL)
        if date is None or date == now.date():
            date = now.date()
        else:
            now = dt.datetime.combine(date, SLOT_TIMES[job], tzinfo=SEOUL)
        if config is not None:
            configs = list(StrategyConfig.objects.filter(pk=config))
            if not configs:
                raise CommandError(f"StrategyConfig {config} does not exist")
        else:
            configs = list(active_configs())
        for cfg in configs:
            if job == "entry":
                result = place_weekly_buys(cfg, date, now, dry_run=dry_run)
            else:
                result = run_exit_checks(cfg, date, now, dry_run=dry_run, liquidate=True if job == "exit" else None)
            if result is None:
                self.stdout.write(f"config {cfg.pk}: {date} is not a day for the {job} job")
                continue
            if dry_run:
                self.stdout.write(f"config {cfg.pk}: {len(result.planned)} order(s) would be sent on {date}")
                for item in result.planned:
                    self.stdout.write(f"  {item.side} {item.code} x{item.quantity} ({item.reason}, "
                                      f"ref {item.reference_price:,}원) {item.client_order_id}")
                continue
            run = result.run
            orders = run.orders.order_by("pk")
            self.stdout.write(f"config {cfg.pk}: run {run.pk} {run.job} {run.trading_date} {run.status}"
                              + (f" — {run.reason}" if run.reason else ""))
            for order in orders:
                self.stdout.write(f"  {order.side} {order.code} x{order.quantity} {order.status} "
                                  f"{order.broker_order_no} {order.error_message}".rstrip())
