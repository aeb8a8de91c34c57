"""Write the synthetic demo market's bars as one CSV file per symbol (<code>.csv), ready for
`import_prices --csv FOLDER`. Every row says source=demo, so the imported bars stay marked as synthetic."""

from __future__ import annotations

from datetime import date

from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from market.demo import DEFAULT_SEED, MAX_SYMBOLS
from market.import_service import export_demo_csv


class Command(BaseCommand):
    help = (
        "Write the demo market's daily bars (the same bars demo_data stores) as <code>.csv files "
        "(date,open,high,low,close,volume,traded_value,source=demo) into a folder, to try "
        "`import_prices --csv FOLDER`; the imported bars stay marked as demo (synthetic) data."
    )

    def add_arguments(self, parser):
        parser.add_argument("folder", help="output folder (created when missing; files are replaced)")
        parser.add_argument("--symbols", type=int, default=40, help="number of instruments (default 40)")
        parser.add_argument("--years", type=int, default=3, help="years of history up to --end (default 3)")
        parser.add_argument("--end", help="last date YYYY-MM-DD (default today in Asia/Seoul)")
        parser.add_argument("--seed", type=int, default=DEFAULT_SEED, help=f"random seed (default {DEFAULT_SEED})")

    def handle(self, *args, folder: str, symbols: int, years: int, end: str | date | None, seed: int, **options):
        if not 1 <= symbols <= MAX_SYMBOLS:
            raise CommandError(f"--symbols must be between 1 and {MAX_SYMBOLS}")
        if years < 1:
            raise CommandError("--years must be at least 1")
        if isinstance(end, str):
            try:
                end = date.fromisoformat(end)
            except ValueError as exc:
                raise CommandError(f"--end must be YYYY-MM-DD, got {end!r}") from exc
        try:
            export = export_demo_csv(folder, symbols=symbols, years=years, end=end, now=timezone.now(), seed=seed)
        except (ValueError, OSError) as error:
            raise CommandError(str(error)) from error
        self.stdout.write(
            f"wrote {export.files} files, {export.rows:,} bars ({export.first.isoformat()}..{export.last.isoformat()}) "
            f"to {export.folder}\nimport them with: manage.py import_prices --csv {export.folder}"
        )
