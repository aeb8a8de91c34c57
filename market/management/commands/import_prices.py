"""Import daily bars from CSV files or from KIS's daily chart. Malformed rows are listed and make the
command fail; their files (or symbols) are not written, the others are. Real bars for a code that has
demo (synthetic) bars replace those entirely; the output names each such code."""

from __future__ import annotations

from datetime import date

from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone
from tqdm import tqdm

from market.import_service import ImportReport, SourceResult, import_csv, import_from_kis
from market.models import BarSource

from ._account import add_account_argument, resolve_account


def _date(text: str | date, option: str) -> date:
    if isinstance(text, date):
        return text
    try:
        return date.fromisoformat(text)
    except ValueError as exc:
        raise CommandError(f"{option} must be YYYY-MM-DD, got {text!r}") from exc


class Command(BaseCommand):
    help = (
        "Import daily bars: --csv FILE_OR_FOLDER (columns date,open,high,low,close,volume[,code][,traded_value]"
        "[,source]; "
        "the code comes from the code column or the file name, e.g. 005930.csv), or --kis CODE... --start --end "
        "through a KIS account. Re-running is safe: stored bars are updated, nothing is duplicated. Real bars for a "
        "code with demo (synthetic) bars replace all of its demo bars; files from export_demo_csv (source=demo) "
        "stay demo bars and are refused for a code with real bars."
    )

    def add_arguments(self, parser):
        source = parser.add_mutually_exclusive_group(required=True)
        source.add_argument("--csv", metavar="PATH", help="a CSV file or a folder of *.csv files")
        source.add_argument("--kis", metavar="CODE", nargs="+", help="6-character codes to fetch from KIS")
        parser.add_argument("--start", help="first date YYYY-MM-DD (with --kis)")
        parser.add_argument("--end", help="last date YYYY-MM-DD (with --kis, default today)")
        add_account_argument(parser)

    def handle(self, *args, csv: str | None, kis: list[str] | None, start, end, account, **options):
        with tqdm(disable=not self.stdout.isatty(), file=self.stdout._out) as progress:
            def on_total(total: int) -> None:
                progress.total = total
                progress.refresh()

            def on_source(result: SourceResult) -> None:
                progress.set_postfix_str(result.source, refresh=False)
                progress.update(1)

            try:
                if csv is not None:
                    if start or end or account is not None:
                        raise CommandError("--start, --end and --account go with --kis, not --csv")
                    progress.unit = "file"
                    report = import_csv(csv, on_total=on_total, on_source=on_source)
                else:
                    if not start:
                        raise CommandError("--kis needs --start YYYY-MM-DD")
                    first = _date(start, "--start")
                    last = _date(end, "--end") if end else timezone.localdate()
                    broker_account = resolve_account(account)
                    progress.unit = "symbol"
                    report = import_from_kis(broker_account, kis, first, last, on_total=on_total, on_source=on_source)
            except ValueError as error:
                raise CommandError(str(error)) from error
        self._print(report)

    def _print(self, report: ImportReport) -> None:
        for result in report.sources:
            if result.written:
                line = f"{result.source}: {result.rows:,} rows, {result.inserted:,} new, {result.updated:,} already stored"
                if result.bar_source == BarSource.DEMO:
                    line += " (데모 데이터: 합성 시세로 저장)"
                self.stdout.write(line + (f" ({result.note})" if result.note else ""))
                for note in result.replacement_notes:
                    self.stdout.write(note)
            elif result.note:
                self.stdout.write(f"{result.source}: {result.note}")
        if report.new_instruments:
            shown = ", ".join(report.new_instruments[:20]) + (" …" if len(report.new_instruments) > 20 else "")
            self.stdout.write(f"new instruments (named by their code until import_instruments runs): {shown}")
        for note in report.analysis_notes:
            self.stdout.write(note)
        if report.errors:
            self.stderr.write("malformed rows and refusals (their files were not imported):")
            for error in report.errors:
                self.stderr.write(f"  {error}")
        self.stdout.write(report.summary())
        if not report.ok:
            raise CommandError(
                f"{len(report.errors):,} malformed rows in {len(report.rejected)} of {len(report.sources)} sources; "
                "fix them and run the command again (re-importing the stored ones is safe: they add nothing)"
            )
