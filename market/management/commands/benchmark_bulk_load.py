"""Time the bulk bar loader (market.bar_store.upsert_bars) on the configured database."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError
from django.db import connection
from tqdm import tqdm

from market.bar_store import DEFAULT_BATCH_SIZE
from market.import_service import BenchmarkRefused, run_bulk_load_benchmark


class Command(BaseCommand):
    help = (
        "Generate SYMBOLS x YEARS of synthetic daily bars (market.demo; default 2,500 x 10, about 6.2 million rows), "
        "load them with upsert_bars into the configured database and print rows/second. Refuses a database that "
        "holds other data unless --force; removes its 98xxxx benchmark instruments afterwards unless --keep."
    )

    def add_arguments(self, parser):
        parser.add_argument("--symbols", type=int, default=2_500, help="number of symbols (default 2500)")
        parser.add_argument("--years", type=int, default=10, help="years of trading days per symbol (default 10)")
        parser.add_argument("--keep", action="store_true", help="leave the benchmark instruments and bars in place")
        parser.add_argument("--force", action="store_true", help="run even if the database holds other data")
        parser.add_argument("--batch-size", type=int, default=DEFAULT_BATCH_SIZE,
                            help=f"rows per statement (default {DEFAULT_BATCH_SIZE:,})")
        parser.add_argument("--method", choices=["mysql", "mysql-executemany", "sqlite", "orm"],
                            help="force a write path (default: the fastest for the database)")

    def handle(self, *args, symbols, years, keep, force, batch_size, method, **options):
        if method in ("mysql", "mysql-executemany") and connection.vendor != "mysql":
            raise CommandError(f"--method {method} needs MySQL/MariaDB, the database is {connection.vendor}")
        if method == "sqlite" and connection.vendor != "sqlite":
            raise CommandError(f"--method sqlite needs SQLite, the database is {connection.vendor}")
        with tqdm(unit="row", unit_scale=True, disable=not self.stdout.isatty(), file=self.stdout._out) as progress:
            try:
                result = run_bulk_load_benchmark(
                    symbols=symbols, years=years, keep=keep, force=force, batch_size=batch_size, method=method,
                    on_total=lambda total: setattr(progress, "total", total),
                    on_batch=lambda batch: progress.update(batch.total),
                )
            except (BenchmarkRefused, ValueError) as error:
                raise CommandError(str(error)) from error
        if result.removed_leftovers:
            self.stdout.write(f"removed {result.removed_leftovers} benchmark instruments left by an earlier --keep run")
        self.stdout.write(
            f"{result.vendor} ({result.method}, {batch_size:,} rows per statement): {result.symbols:,} symbols x "
            f"{result.days:,} days = {result.rows:,} rows ({result.inserted:,} inserted, {result.updated:,} updated) "
            f"in {result.load_seconds:.1f} s: {result.rows_per_second:,.0f} rows/s "
            f"(generating the bars took {result.generate_seconds:.1f} s more, not counted)"
        )
        self.stdout.write(
            f"re-run of {result.rerun_rows:,} rows: {result.rerun_inserted} inserted in {result.rerun_seconds:.2f} s "
            f"({result.rerun_rows / result.rerun_seconds if result.rerun_seconds else 0:,.0f} rows/s)"
        )
        if result.cleanup_seconds is None:
            self.stdout.write("kept the benchmark instruments (codes 98xxxx, sector 'benchmark'); the next run removes them")
        else:
            self.stdout.write(f"removed the benchmark instruments and bars in {result.cleanup_seconds:.1f} s")
