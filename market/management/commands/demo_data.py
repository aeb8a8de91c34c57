"""Store the synthetic demo market (market.demo): instruments and daily bars, marked as demo data.
Idempotent; codes that have real bars are left alone."""

from __future__ import annotations

from datetime import date

from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone
from tqdm import tqdm

from market.demo import DEFAULT_SEED, MAX_SYMBOLS
from market.demo_market import store_demo_market


class Command(BaseCommand):
    help = (
        "Create the deterministic synthetic demo market: instruments and daily bars on KRX trading days. "
        "Every bar is marked as demo (synthetic) data. Re-running adds only what is missing; a code that has real "
        "bars (import_prices) is skipped."
    )

    def add_arguments(self, parser):
        parser.add_argument("--symbols", type=int, default=40, help="number of instruments (default 40)")
        parser.add_argument("--years", type=int, default=3, help="years of history up to --end (default 3)")
        parser.add_argument(
            "--end",
            type=date.fromisoformat,
            default=None,
            help="last date YYYY-MM-DD (default today in Asia/Seoul; today counts after 15:30 KST)",
        )
        parser.add_argument("--seed", type=int, default=DEFAULT_SEED, help=f"random seed (default {DEFAULT_SEED})")

    def handle(self, *args, symbols: int, years: int, end: date | str | None, seed: int, **options):
        if not 1 <= symbols <= MAX_SYMBOLS:
            raise CommandError(f"--symbols must be between 1 and {MAX_SYMBOLS}")
        if years < 1:
            raise CommandError("--years must be at least 1")
        if isinstance(end, str):  # call_command(end="2026-11-20") skips the parser's type
            try:
                end = date.fromisoformat(end)
            except ValueError as exc:
                raise CommandError(f"--end must be YYYY-MM-DD, got {end!r}") from exc
        with tqdm(unit="bar", disable=not self.stdout.isatty(), file=self.stdout._out) as progress:
            try:
                summary = store_demo_market(
                    symbols=symbols, years=years, end=end, seed=seed, now=timezone.now(),
                    on_total=lambda total: setattr(progress, "total", total), on_batch=progress.update,
                )
            except ValueError as error:
                raise CommandError(str(error)) from error
        self.stdout.write(
            f"instruments: {summary.new_instruments} new, bars: {summary.new_bars} new / {summary.total_bars} total, "
            f"range {summary.first.isoformat()}..{summary.last.isoformat()}"
        )
        if summary.skipped_real:
            self.stdout.write(summary.skipped_note)
