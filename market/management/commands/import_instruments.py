"""Create or update instruments from the KIS stock master files (kospi_code.mst, kosdaq_code.mst)."""

from __future__ import annotations

import tempfile

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from market.import_service import import_instruments_from_master
from market.kis.masters import MasterDownloadError, download_master_files


class Command(BaseCommand):
    help = (
        "Create or update instruments (name, market, ETF flag) from KIS stock master files: kospi_code.mst and "
        "kosdaq_code.mst (unzipped from https://new.real.download.dws.co.kr/common/master/). "
        "A file with a malformed line is reported and not imported."
    )

    def add_arguments(self, parser):
        source = parser.add_mutually_exclusive_group(required=True)
        source.add_argument("--master", metavar="PATH", nargs="+", help="kospi_code.mst / kosdaq_code.mst")
        source.add_argument("--download", action="store_true",
                            help="download both files from KIS_MASTER_BASE_URL (KIS's public download host)")
        parser.add_argument("--market", choices=["KOSPI", "KOSDAQ"],
                            help="the files' market when their names do not say it")

    def handle(self, *args, master: list[str] | None, download: bool, market: str | None, **options):
        if download:
            with tempfile.TemporaryDirectory() as folder:
                try:
                    paths = download_master_files(settings.KIS_MASTER_BASE_URL, folder)
                except MasterDownloadError as error:
                    raise CommandError(str(error)) from error
                self._import([str(path) for path in paths], market)
            return
        self._import(master, market)

    def _import(self, master: list[str], market: str | None) -> None:
        failed = 0
        for path in master:
            report = import_instruments_from_master(path, market)
            self.stdout.write(report.summary())
            for error in report.errors:
                self.stderr.write(f"  {error}")
            failed += not report.ok
        if failed:
            raise CommandError(f"{failed} of {len(master)} master files were not imported")
