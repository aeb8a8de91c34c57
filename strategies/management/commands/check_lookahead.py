"""manage.py check_lookahead: does any registered strategy look ahead?

For each registered strategy (the built-ins and every module dropped into ``strategies/library/``)
or ``--strategy KEY``, the signals computed on the history cut at each tested date must equal those
computed on the full history at that date (``strategies.research.lookahead``). One line per strategy:
``OK: ...`` or ``LOOK-AHEAD: <strategy> at <date> <symbol>: cut=<x> full=<y> (...)``.

Bars: ``--source demo`` (default) reads the stored bars as the backtests do
(``strategies.market_data.load_market_data``) — the demo market's instruments unless ``--codes`` names
others; ``--source real`` reads the CSV files of the real KRX data set (``KRX_DATA_DIR``, default
``../shared/data/krx``) in place, without importing or copying them.

Exit code: 1 when a strategy looks ahead, 2 when none does but a strategy or a strategy module could
not be checked (it raised, or failed to import), 0 otherwise.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.db.models import Max, Min

from market.models import BarSource, DailyBar, Instrument
from strategies.library import all_strategies, get_strategy, import_errors
from strategies.library.base import ParameterError
from strategies.market_data import BacktestInputError, load_market_data
from strategies.research.lookahead import DEFAULT_DATES, PATHS, check_strategy, krx_csv_codes, read_krx_csv

DEFAULT_SYMBOLS = 20
LOOKAHEAD_EXIT = 1
UNCHECKED_EXIT = 2


def krx_data_dir() -> Path:
    """The real KRX data set: ``KRX_DATA_DIR``, else ``../shared/data/krx`` beside the project."""
    return Path(os.environ.get("KRX_DATA_DIR") or Path(settings.BASE_DIR).parent / "shared" / "data" / "krx")


def _codes(values: list[str] | None) -> list[str]:
    return [code.strip() for value in values or [] for code in value.split(",") if code.strip()]


class Command(BaseCommand):
    help = ("Check that every registered strategy (or --strategy) computes the same signal on a date from the "
            "history cut at that date as from the full history, i.e. never looks ahead. Exit code 1 when one does.")

    def add_arguments(self, parser):
        parser.add_argument("--strategy", help="one strategy key (default: every registered strategy)")
        parser.add_argument("--param", action="append", default=[],
                            help="name=value for --strategy (repeatable; default: the strategy's defaults)")
        parser.add_argument("--codes", nargs="+", help="codes to check on (space- or comma-separated); "
                                                        "default: the first --symbols codes of the source")
        parser.add_argument("--symbols", type=int, default=DEFAULT_SYMBOLS,
                            help=f"how many codes when --codes is not given (default {DEFAULT_SYMBOLS})")
        parser.add_argument("--dates", type=int, default=DEFAULT_DATES,
                            help=f"dates to cut at, spread after the warm-up (default {DEFAULT_DATES}; 0 = every date)")
        parser.add_argument("--source", choices=("demo", "real"), default="demo",
                            help="demo: the bars stored in the database (the demo market); "
                                 "real: the CSV files of KRX_DATA_DIR (default ../shared/data/krx)")
        parser.add_argument("--path", dest="paths", action="append", choices=PATHS,
                            help="check only this path (repeatable; default both: vectorised and per_symbol)")
        parser.add_argument("--json", action="store_true", help="print one JSON object for the run")

    def handle(self, *args, **o):
        strategies = self._strategies(o["strategy"], o["param"])
        codes = _codes(o["codes"])
        if o["source"] == "real":
            data, where = self._real(codes, o["symbols"])
        else:
            data, where = self._stored(codes, o["symbols"])
        paths = tuple(o["paths"] or PATHS)
        if len(data.dates) < 2:
            raise CommandError("일봉이 2일 이상 있어야 검사할 수 있습니다.")
        results = [check_strategy(strategy, data, count=o["dates"], paths=paths) for strategy in strategies]
        # Modules that failed to import hold strategies nobody could check.
        broken = import_errors() if not o["strategy"] else {}
        first_day, last_day = (str(d) for d in data.dates[[0, -1]])
        if o["json"]:
            payload = {
                "source": o["source"], "where": where, "codes": list(data.codes), "first": first_day, "last": last_day,
                "dates": o["dates"], "paths": list(paths), "ok": all(r.ok for r in results) and not broken,
                "lookahead": [r.strategy for r in results if r.peeks],
                "strategies": [r.as_dict() for r in results], "import_errors": broken,
            }
            self.stdout.write(json.dumps(payload, ensure_ascii=False))
        else:
            self.stdout.write(f"look-ahead check: {where}, {len(data.codes)} codes, {first_day}..{last_day}, "
                              f"{o['dates'] or 'every'} dates per strategy, paths {' + '.join(paths)}")
            for result in results:
                self.stdout.write(result.line())
            for module, error in broken.items():
                self.stdout.write(f"ERROR: module {module} could not be imported: {error}")
        peeking = [r.strategy for r in results if r.peeks]
        if peeking:
            raise CommandError(f"look-ahead in: {', '.join(peeking)}", returncode=LOOKAHEAD_EXIT)
        unchecked = [r.strategy for r in results if r.error] + list(broken)
        if unchecked:
            raise CommandError(f"could not be checked: {', '.join(unchecked)}", returncode=UNCHECKED_EXIT)

    def _strategies(self, key: str | None, raw_params: list[str]) -> list:
        if key is None:
            if raw_params:
                raise CommandError("--param needs --strategy")
            return [cls() for cls in all_strategies().values()]
        try:
            cls = get_strategy(key)
        except KeyError as error:
            raise CommandError(str(error)) from None
        params = {}
        for item in raw_params:
            name, sep, value = item.partition("=")
            if not sep:
                raise CommandError(f"--param takes name=value, got {item!r}")
            params[name.strip()] = value.strip()
        try:
            return [cls(params)]
        except ParameterError as error:
            raise CommandError(str(error)) from None

    def _real(self, codes: list[str], symbols: int):
        folder = krx_data_dir()
        if not (folder / "bars").is_dir():
            raise CommandError(f"실제 KRX 일봉 폴더가 없습니다: {folder / 'bars'} (KRX_DATA_DIR로 지정하세요)")
        codes = codes or krx_csv_codes(folder, symbols)
        if not codes:
            raise CommandError(f"{folder / 'bars'}에 일봉 파일이 없습니다.")
        try:
            return read_krx_csv(folder / "bars", codes), f"real bars in {folder / 'bars'}"
        except (FileNotFoundError, ValueError) as error:
            raise CommandError(str(error)) from None

    def _stored(self, codes: list[str], symbols: int):
        if not codes:
            codes = list(Instrument.objects.filter(source=BarSource.DEMO).order_by("code")
                         .values_list("code", flat=True)[: max(symbols, 0)])
            if not codes:
                raise CommandError("데모 시장이 없습니다. 먼저 `manage.py demo_data`를 실행하거나 --codes를 지정하세요.")
        span = DailyBar.objects.filter(instrument__code__in=codes).aggregate(first=Min("date"), last=Max("date"))
        if span["first"] is None:
            raise CommandError(f"저장된 일봉이 없습니다: {', '.join(codes)}")
        try:
            # From the first stored bar (the loader reads a warm-up before `start` too) to the last.
            return load_market_data(codes, span["first"], span["last"]), "stored bars (database)"
        except BacktestInputError as error:
            raise CommandError(str(error)) from None
