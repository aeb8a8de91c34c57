"""Create or update instruments from the KIS stock master files (kospi_code.mst, kosdaq_code.mst)."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from market.import_service import import_instruments_from_master


class Command(BaseCommand):
    help = (
        "Create or update instruments (name, market, ETF flag) from KIS stock master files: kospi_code.mst and "
        "kosdaq_code.mst (unzipped from https://new.real.download.dws.co.kr/common/master/). "
        "A file with a malformed line is reported and not imported."
    )

    def add_arguments(self, parser):
        parser.add_argument("--master", metavar="PATH", nargs="+", required=True, help="kospi_code.mst / kosdaq_code.mst")
        parser.add_argument("--market", choices=["KOSPI", "KOSDAQ"],
                            help="the files' market when their names do not say it")

    def handle(self, *args, master: list[str], market: str | None, **options):
        failed = 0
        for path in master:
            report = import_instruments_from_master(path, market)
            self.stdout.write(report.summary())
            for error in report.errors:
                self.stderr.write(f"  {error}")
            failed += not report.ok
        if failed:
            raise CommandError(f"{failed} of {len(master)} master files were not imported")
