"""Reading market data files, in plain Python (no Django).

* ``read_bars_csv``: daily bars from a CSV file (``date,open,high,low,close,volume`` plus optional
  ``code``, ``traded_value`` and ``source``), every row validated; returns the good rows and one
  ``RowError`` (file name, 1-based line number, message) per malformed row.
* ``write_bars_csv``: the same format back out (used to export the demo market, whose files say
  ``source=demo`` on every row so that importing them keeps them marked as synthetic).
* ``read_master``: the KIS stock master files ``kospi_code.mst`` / ``kosdaq_code.mst`` (CP949,
  fixed-width tail counted from the end of the line, fact sheet §7).

Money is integer KRW; a price with a fraction other than ``.0`` is refused, never rounded.
"""

from __future__ import annotations

import csv
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import IO, NamedTuple

__all__ = [
    "BAR_COLUMNS",
    "BarRow",
    "CsvBars",
    "MasterFile",
    "MasterRecord",
    "RowError",
    "code_from_filename",
    "market_of_master",
    "normalize_code",
    "parse_bar_date",
    "parse_whole_number",
    "read_bars_csv",
    "read_master",
    "read_master_lines",
    "validate_bar",
    "write_bars_csv",
]

BAR_COLUMNS = ("date", "open", "high", "low", "close", "volume")
OPTIONAL_COLUMNS = ("code", "traded_value", "source")
# The ``source`` column: "demo" marks the demo market's synthetic bars (export_demo_csv writes it);
# empty or "csv" is a real bar. A file holds one kind only.
DEMO_SOURCE = "demo"
REAL_SOURCE_VALUES = frozenset({"", "csv"})
# Header aliases (lower-cased, spaces/underscores ignored): Korean exports and common English names.
COLUMN_ALIASES = {
    "date": "date", "day": "date", "날짜": "date", "일자": "date",
    "open": "open", "시가": "open",
    "high": "high", "고가": "high",
    "low": "low", "저가": "low",
    "close": "close", "종가": "close",
    "volume": "volume", "vol": "volume", "거래량": "volume",
    "code": "code", "symbol": "code", "ticker": "code", "종목코드": "code", "단축코드": "code",
    "tradedvalue": "traded_value", "value": "traded_value", "amount": "traded_value", "거래대금": "traded_value",
    "source": "source", "출처": "source",
}

# A KRX short code: 6 characters, a digit then digits and capital letters (e.g. 005930, 0039P0).
CODE_RE = re.compile(r"^[0-9][0-9A-Z]{5}$")
_FILENAME_CODE_RE = re.compile(r"^A?([0-9][0-9A-Z]{5})(?![0-9A-Z])", re.IGNORECASE)
_NUMBER_RE = re.compile(r"^[+-]?\d+(?:\.0*)?$")
_GROUPED_RE = re.compile(r"^[+-]?\d{1,3}(?:,\d{3})+(?:\.0*)?$")


# ---------------------------------------------------------------------------------------------
# Values
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class BarRow:
    """One validated daily bar of one symbol. Prices in integer KRW. ``source`` is ``"demo"`` for a
    synthetic demo bar read from a file that says so, else None (a real bar)."""

    code: str
    date: date
    open: int
    high: int
    low: int
    close: int
    volume: int
    traded_value: int | None = None
    source: str | None = None


@dataclass(frozen=True, slots=True)
class RowError:
    """A malformed row (or a whole-file problem, then ``line`` is the header's line 1)."""

    file: str
    line: int | None
    message: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.message}" if self.line is not None else f"{self.file}: {self.message}"


class CsvBars(NamedTuple):
    rows: list[BarRow]
    errors: list[RowError]


def parse_bar_date(text: str) -> date:
    """``YYYY-MM-DD`` or ``YYYYMMDD``; ValueError with a message otherwise."""
    value = text.strip()
    try:
        if len(value) == 10 and value[4] == "-" and value[7] == "-":
            return date.fromisoformat(value)
        if len(value) == 8 and value.isdigit():
            return datetime.strptime(value, "%Y%m%d").date()
    except ValueError:
        pass
    raise ValueError(f"date {text!r} is not a valid YYYY-MM-DD or YYYYMMDD date")


def parse_whole_number(text: str, field: str) -> int:
    """An integer, optionally with thousands separators (``1,234,500``) or a zero fraction (``70000.0``)."""
    value = text.strip().replace("_", "")
    if not value:
        raise ValueError(f"{field} is empty")
    if not (_NUMBER_RE.match(value) or _GROUPED_RE.match(value)):
        raise ValueError(f"{field} {text!r} is not a whole number of KRW/shares")
    return int(value.replace(",", "").split(".")[0])


def normalize_code(text: str) -> str:
    """A KRX short code from a cell: upper-cased; a leading ``A`` (``A005930``) dropped and leading
    zeros lost by spreadsheets restored (``5930`` -> ``005930``). ValueError when it is not a code."""
    value = text.strip().upper()
    if len(value) == 7 and value.startswith("A"):
        value = value[1:]
    if value.isdigit() and len(value) < 6:
        value = value.zfill(6)
    if not CODE_RE.match(value):
        raise ValueError(f"code {text!r} is not a 6-character KRX short code")
    return value


def code_from_filename(name: str | os.PathLike[str]) -> str | None:
    """The symbol a file name stands for: ``005930.csv``, ``A005930_daily.csv`` -> ``005930``."""
    match = _FILENAME_CODE_RE.match(Path(name).name)
    return match.group(1).upper() if match else None


def validate_bar(open_: int, high: int, low: int, close: int, volume: int, traded_value: int | None) -> list[str]:
    """The problems of one bar's numbers (empty when it is good)."""
    problems = [f"{name} must be a positive price, got {value}"
                for name, value in (("open", open_), ("high", high), ("low", low), ("close", close)) if value <= 0]
    if problems:
        return problems
    if high < max(open_, close):
        problems.append(f"high {high} is below max(open, close) {max(open_, close)}")
    if low > min(open_, close):
        problems.append(f"low {low} is above min(open, close) {min(open_, close)}")
    if volume < 0:
        problems.append(f"volume must be >= 0, got {volume}")
    if traded_value is not None and traded_value < 0:
        problems.append(f"traded_value must be >= 0, got {traded_value}")
    return problems


# ---------------------------------------------------------------------------------------------
# CSV bars
# ---------------------------------------------------------------------------------------------


def _column_key(header: str) -> str:
    key = header.strip().lstrip("\ufeff").lower().replace(" ", "").replace("_", "")
    return COLUMN_ALIASES.get(key, "")


def read_bars_csv(
    source: str | os.PathLike[str] | IO[str], *, name: str | None = None, default_code: str | None = None,
) -> CsvBars:
    """Read and validate a daily-bar CSV file (a path, or an open text file plus ``name``).

    The header is required; columns are ``date,open,high,low,close,volume`` in any order, plus the
    optional ``code``, ``traded_value`` and ``source`` (``demo`` for the demo market's synthetic bars,
    empty or ``csv`` for real ones; one kind per file) (Korean headers such as 날짜/시가/종가 are
    understood; other columns are ignored). Without a ``code`` column the code comes from ``default_code`` or the file
    name (``005930.csv``). Rows with an error are left out of ``rows`` and reported in ``errors``
    with the file name and the 1-based line number; a problem with the whole file (no header, a
    missing column, no code) is one error on line 1 and no rows.
    """
    if isinstance(source, (str, os.PathLike)):
        path = Path(source)
        label = name or path.name
        try:
            # utf-8-sig: Excel writes a BOM; newline="" lets csv handle quoted line breaks.
            with path.open(encoding="utf-8-sig", newline="") as handle:
                return _read_bars(handle, label, default_code or code_from_filename(path))
        except UnicodeDecodeError as error:
            return CsvBars([], [RowError(label, None, f"not UTF-8 text ({error.reason} at byte {error.start}); "
                                                       "save the file as UTF-8 CSV")])
        except OSError as error:
            return CsvBars([], [RowError(label, None, f"cannot read the file: {error.strerror or error}")])
    label = name or getattr(source, "name", "<stream>")
    return _read_bars(source, str(label), default_code or code_from_filename(str(label)))


def _read_bars(handle: IO[str], label: str, file_code: str | None) -> CsvBars:
    rows: list[BarRow] = []
    errors: list[RowError] = []
    reader = csv.reader(handle)
    try:
        header = next(reader, None)
        while header is not None and not any(cell.strip() for cell in header):
            header = next(reader, None)  # leading blank lines
    except csv.Error as error:
        return CsvBars([], [RowError(label, reader.line_num, f"unreadable CSV: {error}")])
    if header is None:
        return CsvBars([], [RowError(label, None, "the file is empty; expected a header "
                                                   "date,open,high,low,close,volume")])
    header_line = reader.line_num
    columns: dict[str, int] = {}
    for index, cell in enumerate(header):
        key = _column_key(cell)
        if not key:
            continue
        if key in columns:
            return CsvBars([], [RowError(label, header_line, f"column {key!r} appears twice in the header")])
        columns[key] = index
    missing = [column for column in BAR_COLUMNS if column not in columns]
    if missing:
        found = ",".join(cell.strip() for cell in header)
        return CsvBars([], [RowError(
            label, header_line,
            f"the header lacks {', '.join(missing)} (found: {found!r}; expected date,open,high,low,close,volume"
            "[,code][,traded_value])",
        )])
    code_index = columns.get("code")
    if code_index is None and file_code is None:
        return CsvBars([], [RowError(label, header_line, "no code column and the file name does not start with a "
                                                         "6-character code (name files like 005930.csv)")])
    value_index = columns.get("traded_value")
    source_index = columns.get("source")
    first_source: tuple[str | None, int] | None = None  # (source, line) of the first row
    width = max(columns.values()) + 1
    indices = [columns[column] for column in BAR_COLUMNS]

    seen: dict[tuple[str, date], int] = {}
    line = reader.line_num + 1
    while True:
        try:
            record = next(reader)
        except StopIteration:
            break
        except csv.Error as error:
            errors.append(RowError(label, line, f"unreadable CSV: {error}"))
            break
        start, line = line, reader.line_num + 1
        if not any(cell.strip() for cell in record):
            continue  # blank line
        if len(record) < width:
            errors.append(RowError(label, start, f"expected at least {width} fields, got {len(record)}"))
            continue
        problems: list[str] = []
        code = file_code
        if code_index is not None and record[code_index].strip():
            try:
                code = normalize_code(record[code_index])
            except ValueError as error:
                code = None
                problems.append(str(error))
        elif code is None:
            problems.append("code is empty")
        day: date | None = None
        try:
            day = parse_bar_date(record[indices[0]])
        except ValueError as error:
            problems.append(str(error))
        numbers: list[int] = []
        for column, index in zip(BAR_COLUMNS[1:], indices[1:], strict=True):
            try:
                numbers.append(parse_whole_number(record[index], column))
            except ValueError as error:
                problems.append(str(error))
        traded_value: int | None = None
        if value_index is not None and value_index < len(record) and record[value_index].strip():
            try:
                traded_value = parse_whole_number(record[value_index], "traded_value")
            except ValueError as error:
                problems.append(str(error))
        source: str | None = None
        if source_index is not None and source_index < len(record):
            text = record[source_index].strip().lower()
            if text == DEMO_SOURCE:
                source = DEMO_SOURCE
            if text != DEMO_SOURCE and text not in REAL_SOURCE_VALUES:
                problems.append(f"source {record[source_index].strip()!r} must be demo (synthetic) or csv/empty (real)")
            elif first_source is None:
                first_source = (source, start)
            elif first_source[0] != source:
                problems.append(
                    f"source {'demo' if source else 'real'} differs from line {first_source[1]} "
                    f"({'demo' if first_source[0] else 'real'}); a file holds either demo or real bars"
                )
        if not problems:
            open_, high, low, close, volume = numbers
            problems = validate_bar(open_, high, low, close, volume, traded_value)
        if code is not None and day is not None:
            first = seen.setdefault((code, day), start)
            if first != start:
                problems.append(f"duplicate date {day.isoformat()} for {code} (first on line {first})")
        if problems:
            errors.append(RowError(label, start, "; ".join(problems)))
            continue
        assert code is not None and day is not None
        rows.append(BarRow(code, day, open_, high, low, close, volume, traded_value, source))
    return CsvBars(rows, errors)


def write_bars_csv(
    handle: IO[str], rows: Iterable[BarRow | tuple], *, with_code: bool = False, source: str | None = None,
) -> int:
    """Write bars as CSV with the header ``[code,]date,open,high,low,close,volume,traded_value[,source]``.

    Each row is a ``BarRow`` or a tuple in the column order (starting with the code when
    ``with_code``). With ``source`` (``"demo"`` for the demo market) every row carries it in a
    ``source`` column. Returns the number of rows written."""
    writer = csv.writer(handle, lineterminator="\n")
    tail: tuple[str, ...] = () if source is None else (source,)
    writer.writerow((("code",) if with_code else ()) + BAR_COLUMNS + ("traded_value",) + (("source",) if tail else ()))
    count = 0
    for row in rows:
        if isinstance(row, BarRow):
            code: tuple = (row.code,) if with_code else ()
            day, numbers = row.date, (row.open, row.high, row.low, row.close, row.volume, row.traded_value)
        else:
            code, rest = (tuple(row[:1]), tuple(row[1:])) if with_code else ((), tuple(row))
            day, numbers = rest[0], rest[1:]
        text_day = day.isoformat() if isinstance(day, date) else str(day)
        writer.writerow(code + (text_day,) + tuple("" if value is None else int(value) for value in numbers) + tail)
        count += 1
    return count


# ---------------------------------------------------------------------------------------------
# KIS stock master files (fact sheet §7)
# ---------------------------------------------------------------------------------------------

# Tail length without the newline (the fact sheet counts 228 / 222 with it).
MASTER_TAIL = {"KOSPI": 227, "KOSDAQ": 221}
# Offsets in the tail: (offset, width).
_TAIL_FIELDS = {
    "KOSPI": {
        "group": (0, 2), "cap_size": (2, 1), "sector_large": (3, 4), "sector_medium": (7, 4),
        "sector_small": (11, 4), "etp": (22, 1), "spac": (29, 1), "base_price": (41, 9), "lot_size": (50, 5),
        "halted": (60, 1), "liquidation": (61, 1), "administrative": (62, 1), "warning": (63, 2),
        "listed_on": (105, 8), "shares": (113, 15), "preferred": (158, 1), "market_cap": (212, 9),
    },
    "KOSDAQ": {
        "group": (0, 2), "cap_size": (2, 1), "sector_large": (3, 4), "sector_medium": (7, 4),
        "sector_small": (11, 4), "etp": (18, 1), "spac": (24, 1), "base_price": (36, 9), "lot_size": (45, 5),
        "halted": (55, 1), "liquidation": (56, 1), "administrative": (57, 1), "warning": (58, 2),
        "listed_on": (100, 8), "shares": (108, 15), "preferred": (153, 1), "market_cap": (206, 9),
    },
}
ETF_GROUPS = frozenset({"EF", "FE", "EN"})  # ETF, 해외ETF, ETN (the ETN code is unconfirmed, §7)
ETP_FUND_KINDS = frozenset({"1", "2", "3", "4"})  # 투자회사형, 수익증권형, ETN, 손실제한ETN


@dataclass(frozen=True, slots=True)
class MasterRecord:
    """One line of a KIS stock master file."""

    code: str  # short code, e.g. 005930 (may be 9 characters for some securities)
    isin: str  # standard code, e.g. KR7005930003
    name: str  # Korean name
    market: str  # KOSPI / KOSDAQ
    group: str  # 증권그룹구분: ST 주권, EF ETF, RT 리츠, ...
    is_etf: bool  # ETF or ETN
    etp: str  # 0 none, 1 투자회사형, 2 수익증권형, 3 ETN, 4 손실제한ETN, 5 상장형수익증권
    is_spac: bool
    is_preferred: bool
    halted: bool  # 거래정지
    administrative: bool  # 관리종목
    liquidation: bool  # 정리매매
    warning: str  # 시장경고: 00 none, 01 투자주의, 02 투자경고, 03 투자위험
    cap_size: str
    sector_large: str
    sector_medium: str
    sector_small: str
    base_price: int | None  # 기준가, KRW
    lot_size: int | None  # 매매수량단위
    listed_on: date | None
    shares: int | None  # 상장주수
    market_cap: int | None  # 시가총액, 억원 (previous day)

    @property
    def is_common_stock(self) -> bool:
        return self.group == "ST" and len(self.code) == 6 and self.code.isdigit() and not self.is_preferred


class MasterFile(NamedTuple):
    records: list[MasterRecord]
    errors: list[RowError]


def _flag(value: str) -> bool:
    return value.strip().upper() in ("Y", "1")


def _int_or_none(value: str) -> int | None:
    text = value.strip()
    if not text:
        return None
    try:
        return int(text)
    except ValueError:
        return None


def _date_or_none(value: str) -> date | None:
    text = value.strip()
    if len(text) != 8 or not text.isdigit() or text == "00000000":
        return None
    try:
        return datetime.strptime(text, "%Y%m%d").date()
    except ValueError:
        return None


class _TailReader:
    def __init__(self, tail: str, fields: dict[str, tuple[int, int]]) -> None:
        self.tail, self.fields = tail, fields

    def __call__(self, key: str) -> str:
        offset, width = self.fields[key]
        return self.tail[offset : offset + width]


def market_of_master(name: str) -> str | None:
    """KOSPI / KOSDAQ from a master file's name (``kospi_code.mst``), else None."""
    lowered = Path(name).name.lower()
    if lowered.startswith("kosdaq"):
        return "KOSDAQ"
    if lowered.startswith("kospi"):
        return "KOSPI"
    return None


def read_master_lines(lines: Iterable[str], market: str, *, file: str = "<master>") -> MasterFile:
    """Parse decoded master lines of one market (``KOSPI`` or ``KOSDAQ``)."""
    market = market.upper()
    if market not in MASTER_TAIL:
        raise ValueError(f"unknown master market {market!r}: expected KOSPI or KOSDAQ")
    tail_width, fields = MASTER_TAIL[market], _TAIL_FIELDS[market]
    records: list[MasterRecord] = []
    errors: list[RowError] = []
    for number, raw in enumerate(lines, start=1):
        line = raw.rstrip("\r\n")
        if not line.strip():
            continue
        if len(line) < tail_width + 21:
            errors.append(RowError(file, number, f"line is {len(line)} characters long, shorter than a {market} "
                                                 f"record (21 + name + {tail_width}); is this the {market} file?"))
            continue
        head, tail = line[:-tail_width], line[-tail_width:]
        field = _TailReader(tail, fields)
        code = head[0:9].strip()
        group = field("group").strip()
        if not code or not group.isalpha():
            errors.append(RowError(file, number, f"no short code or group code where the {market} layout has them "
                                                 f"(code {code!r}, group {group!r})"))
            continue
        etp = field("etp").strip() or "0"
        records.append(MasterRecord(
            code=code, isin=head[9:21].strip(), name=head[21:].strip(), market=market, group=group,
            is_etf=group in ETF_GROUPS or etp in ETP_FUND_KINDS, etp=etp, is_spac=_flag(field("spac")),
            is_preferred=field("preferred").strip() not in ("", "0"), halted=_flag(field("halted")),
            administrative=_flag(field("administrative")), liquidation=_flag(field("liquidation")),
            warning=field("warning").strip(), cap_size=field("cap_size").strip(),
            sector_large=field("sector_large").strip(), sector_medium=field("sector_medium").strip(),
            sector_small=field("sector_small").strip(), base_price=_int_or_none(field("base_price")),
            lot_size=_int_or_none(field("lot_size")), listed_on=_date_or_none(field("listed_on")),
            shares=_int_or_none(field("shares")), market_cap=_int_or_none(field("market_cap")),
        ))
    return MasterFile(records, errors)


def read_master(source: str | os.PathLike[str] | bytes, market: str | None = None, *, name: str | None = None) -> MasterFile:
    """Parse ``kospi_code.mst`` or ``kosdaq_code.mst`` (a path, or the file's bytes with ``name``).

    The market comes from ``market`` or the file name. Lines are decoded as CP949 and sliced from
    the end (the Korean name has a variable width), as the fact sheet prescribes."""
    if isinstance(source, bytes):
        label, data = name or "<master>", source
    else:
        path = Path(source)
        label = name or path.name
        try:
            data = path.read_bytes()
        except OSError as error:
            return MasterFile([], [RowError(label, None, f"cannot read the file: {error.strerror or error}")])
    market = market or market_of_master(label)
    if market is None:
        return MasterFile([], [RowError(label, None, "cannot tell the market from the file name; expected "
                                                     "kospi_code.mst or kosdaq_code.mst (or give the market)")])
    lines: list[str] = []
    bad: list[RowError] = []
    for number, raw in enumerate(data.split(b"\n"), start=1):
        try:
            lines.append(raw.decode("cp949"))
        except UnicodeDecodeError as error:
            lines.append("")  # keeps the line numbers; reported below
            bad.append(RowError(label, number, f"not CP949 text at byte {error.start}: {error.reason}"))
    parsed = read_master_lines(lines, market, file=label)
    return MasterFile(parsed.records, sorted(bad + parsed.errors, key=lambda e: e.line or 0))
