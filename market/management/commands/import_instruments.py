"""Create or update instruments from the KIS stock master files (kospi_code.mst, kosdaq_code.mst), and mark
delisted the instruments a full master file no longer lists."""

from __future__ import annotations

import datetime as dt
import tempfile

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from market.import_service import FULL_MASTER_MIN_RECORDS, import_instrument_masters
from market.kis.masters import MasterDownloadError, download_master_files


class Command(BaseCommand):
    help = (
        "Create or update instruments (name, market, ETF flag) from KIS stock master files: kospi_code.mst and "
        "kosdaq_code.mst (unzipped from https://new.real.download.dws.co.kr/common/master/). "
        "A file with a malformed line is reported and not imported. Instruments of a market whose full "
        f"master file (at least {FULL_MASTER_MIN_RECORDS:,} records, or --full) no longer lists them are marked "
        "delisted (their bars are kept); a code listed again is listed again."
    )

    def add_arguments(self, parser):
        source = parser.add_mutually_exclusive_group(required=True)
        source.add_argument("--master", metavar="PATH", nargs="+", help="kospi_code.mst / kosdaq_code.mst")
        source.add_argument("--download", action="store_true",
                            help="download both files from KIS_MASTER_BASE_URL (KIS's public download host)")
        parser.add_argument("--market", choices=["KOSPI", "KOSDAQ"],
                            help="the files' market when their names do not say it")
        parser.add_argument("--as-of", type=dt.date.fromisoformat, metavar="YYYY-MM-DD",
                            help="the master files' date: the delisting date of instruments they no longer list "
                                 "(default: today with --download; else the trading day after each one's last bar)")
        scope = parser.add_mutually_exclusive_group()
        scope.add_argument("--full", action="store_true", default=None,
                           help="take every file as the market's full list, however short (marks the rest delisted)")
        scope.add_argument("--partial", dest="full", action="store_false", default=None,
                           help="mark nothing delisted, however long the files")

    def handle(self, *args, master: list[str] | None, download: bool, market: str | None,
               as_of: dt.date | None, full: bool | None, **options):
        if download:
            as_of = as_of or timezone.localdate()  # KIS publishes the files daily: they are today's lists
            with tempfile.TemporaryDirectory() as folder:
                try:
                    paths = download_master_files(settings.KIS_MASTER_BASE_URL, folder)
                except MasterDownloadError as error:
                    raise CommandError(str(error)) from error
                self._import([str(path) for path in paths], market, as_of, full)
            return
        self._import(master, market, as_of, full)

    def _import(self, master: list[str], market: str | None, as_of: dt.date | None, full: bool | None) -> None:
        run = import_instrument_masters(master, market, as_of=as_of, full=full)
        for report in run.reports:
            self.stdout.write(report.summary())
            for error in report.errors:
                self.stderr.write(f"  {error}")
        self.stdout.write(run.summary())
        if run.delisted:
            shown = ", ".join(run.delisted[:20]) + (f" … (+{len(run.delisted) - 20})" if len(run.delisted) > 20 else "")
            self.stdout.write(f"  delisted: {shown}")
        if run.failed:
            raise CommandError(f"{run.failed} of {len(master)} master files were not imported")
