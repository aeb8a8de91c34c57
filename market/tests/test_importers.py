"""market.importers: the CSV bar reader (every kind of malformed row, with its line) and the KIS stock
master parser on small CP949 files built here. Pure Python: no database."""

from __future__ import annotations

import io
from datetime import date

import pytest

from market.importers import (
    MASTER_TAIL,
    BarRow,
    RowError,
    code_from_filename,
    market_of_master,
    normalize_code,
    parse_bar_date,
    parse_whole_number,
    read_bars_csv,
    read_master,
    read_master_lines,
    write_bars_csv,
)


def write(tmp_path, name: str, text: str, encoding: str = "utf-8"):
    path = tmp_path / name
    path.write_bytes(text.encode(encoding))
    return path


def messages(errors: list[RowError]) -> list[tuple[int | None, str]]:
    return [(error.line, error.message) for error in errors]


# --------------------------------------------------------------------------------------- values


@pytest.mark.parametrize(("text", "expected"), [
    ("2024-01-02", date(2024, 1, 2)), ("20240102", date(2024, 1, 2)), (" 2024-02-29 ", date(2024, 2, 29)),
])
def test_dates(text, expected):
    assert parse_bar_date(text) == expected


@pytest.mark.parametrize("text", ["2023-02-29", "2024/01/02", "240102", "20241301", "", "yesterday"])
def test_bad_dates(text):
    with pytest.raises(ValueError, match="not a valid YYYY-MM-DD or YYYYMMDD date"):
        parse_bar_date(text)


@pytest.mark.parametrize(("text", "expected"), [
    ("70000", 70_000), ("70,000", 70_000), ("1,234,567", 1_234_567), ("70000.0", 70_000), (" 12 ", 12), ("-5", -5),
])
def test_whole_numbers(text, expected):
    assert parse_whole_number(text, "close") == expected


@pytest.mark.parametrize("text", ["70000.5", "7,00,00", "1e5", "abc", "", "12,34"])
def test_not_whole_numbers(text):
    with pytest.raises(ValueError, match="close"):
        parse_whole_number(text, "close")


def test_codes():
    assert normalize_code("005930") == "005930"
    assert normalize_code("5930") == "005930"  # a spreadsheet dropped the zeros
    assert normalize_code("A005930") == "005930"
    assert normalize_code("0039p0") == "0039P0"
    with pytest.raises(ValueError, match="6-character KRX short code"):
        normalize_code("X05930")
    assert code_from_filename("/data/005930.csv") == "005930"
    assert code_from_filename("A000660_daily.csv") == "000660"
    assert code_from_filename("0039P0.csv") == "0039P0"
    assert code_from_filename("prices.csv") is None
    assert code_from_filename("1234567.csv") is None


# --------------------------------------------------------------------------------------- CSV


def test_good_file_code_from_the_file_name(tmp_path):
    path = write(tmp_path, "005930.csv", (
        "\ufeffDate,Open,High,Low,Close,Volume,Traded_Value\n"
        '2024-01-02,"78,200","79,800","78,200","79,600","17,142,847",1361111111111\n'
        "\n"
        "20240103,78500,78800,77000,77000,21753644,\n"
    ))
    rows, errors = read_bars_csv(path)
    assert errors == []
    assert rows == [
        BarRow("005930", date(2024, 1, 2), 78_200, 79_800, 78_200, 79_600, 17_142_847, 1_361_111_111_111),
        BarRow("005930", date(2024, 1, 3), 78_500, 78_800, 77_000, 77_000, 21_753_644, None),
    ]


def test_code_column_any_order_and_korean_headers(tmp_path):
    path = write(tmp_path, "mixed.csv", (
        "종가,날짜,시가,고가,저가,거래량,종목코드\n"
        "1000,2024-01-02,990,1010,980,5,005930\n"
        "2000,2024-01-02,2000,2000,2000,0,A000660\n"
        "3000,2024-01-03,3000,3000,3000,0,5930\n"
    ))
    rows, errors = read_bars_csv(path)
    assert errors == []
    assert [(r.code, r.date.day, r.close) for r in rows] == [("005930", 2, 1000), ("000660", 2, 2000), ("005930", 3, 3000)]


def test_every_kind_of_malformed_row_is_reported_with_its_line(tmp_path):
    path = write(tmp_path, "005930.csv", (
        "date,open,high,low,close,volume\n"       # 1
        "2024-01-02,100,110,90,105,10\n"          # 2 good
        "2024-01-03,100,99,90,95,10\n"            # 3 high below open
        "2024-01-04,100,110,101,105,10\n"         # 4 low above open
        "2024-01-05,100,110,90,105,-1\n"          # 5 negative volume
        "2024-01-08,0,110,90,105,10\n"            # 6 zero price
        "2024-01-09,100.5,110,90,105,10\n"        # 7 not a whole number
        "2024-13-01,100,110,90,105,10\n"          # 8 bad date
        "2024-01-10,100,110,90\n"                 # 9 too few fields
        "2024-01-02,100,110,90,105,10\n"          # 10 duplicate of line 2
        "\n"                                       # 11 blank: skipped
        '"2024-01-11",abc,110,90,105,10\n'        # 12 not a number
        "2024-01-12,100,110,90,105,10\n"          # 13 good
    ))
    rows, errors = read_bars_csv(path)
    assert [row.date for row in rows] == [date(2024, 1, 2), date(2024, 1, 12)]
    assert all(error.file == "005930.csv" for error in errors)
    assert messages(errors) == [
        (3, "high 99 is below max(open, close) 100"),
        (4, "low 101 is above min(open, close) 100"),
        (5, "volume must be >= 0, got -1"),
        (6, "open must be a positive price, got 0"),
        (7, "open '100.5' is not a whole number of KRW/shares"),
        (8, "date '2024-13-01' is not a valid YYYY-MM-DD or YYYYMMDD date"),
        (9, "expected at least 6 fields, got 4"),
        (10, "duplicate date 2024-01-02 for 005930 (first on line 2)"),
        (12, "open 'abc' is not a whole number of KRW/shares"),
    ]
    assert str(errors[0]) == "005930.csv:3: high 99 is below max(open, close) 100"


def test_duplicates_are_per_code(tmp_path):
    path = write(tmp_path, "all.csv", (
        "code,date,open,high,low,close,volume\n"
        "005930,2024-01-02,1,1,1,1,0\n"
        "000660,2024-01-02,1,1,1,1,0\n"
        "005930,20240102,1,1,1,1,0\n"
        "X05930,2024-01-03,1,1,1,1,0\n"
        ",2024-01-03,1,1,1,1,0\n"
    ))
    rows, errors = read_bars_csv(path)
    assert len(rows) == 2
    assert messages(errors) == [
        (4, "duplicate date 2024-01-02 for 005930 (first on line 2)"),
        (5, "code 'X05930' is not a 6-character KRX short code"),
        (6, "code is empty"),
    ]


def test_quoted_line_breaks_keep_line_numbers(tmp_path):
    path = write(tmp_path, "005930.csv", (
        "date,open,high,low,close,volume,note\n"
        '2024-01-02,1,1,1,1,0,"two\nlines"\n'
        "2024-01-03,2,1,1,2,0,x\n"
    ))
    rows, errors = read_bars_csv(path)
    assert len(rows) == 1 and messages(errors) == [(4, "high 1 is below max(open, close) 2")]


@pytest.mark.parametrize(("text", "message"), [
    ("", "the file is empty"),
    ("date,open,high,close,volume\n2024-01-02,1,1,1,1\n", "the header lacks low"),
    ("2024-01-02,1,1,1,1,0\n", "the header lacks date, open, high, low, close, volume"),
    ("date,open,high,low,close,volume,Close\n", "column 'close' appears twice"),
])
def test_whole_file_problems(tmp_path, text, message):
    rows, errors = read_bars_csv(write(tmp_path, "005930.csv", text))
    assert rows == [] and len(errors) == 1 and message in errors[0].message


def test_no_code_anywhere(tmp_path):
    rows, errors = read_bars_csv(write(tmp_path, "prices.csv", "date,open,high,low,close,volume\n2024-01-02,1,1,1,1,0\n"))
    assert rows == [] and messages(errors) == [(1, errors[0].message)]
    assert "no code column" in errors[0].message and "005930.csv" in errors[0].message


def test_not_utf8(tmp_path):
    path = write(tmp_path, "005930.csv", "날짜,open,high,low,close,volume\n", encoding="cp949")
    rows, errors = read_bars_csv(path)
    assert rows == [] and "not UTF-8" in errors[0].message and str(errors[0]).startswith("005930.csv: ")


def test_missing_file(tmp_path):
    rows, errors = read_bars_csv(tmp_path / "005930.csv")
    assert rows == [] and "cannot read the file" in errors[0].message


def test_stream_with_a_name():
    rows, errors = read_bars_csv(io.StringIO("date,open,high,low,close,volume\n2024-01-02,1,2,1,2,3\n"), name="000660.csv")
    assert errors == [] and rows[0].code == "000660"


def test_write_and_read_back(tmp_path):
    rows = [BarRow("005930", date(2024, 1, 2), 100, 110, 90, 105, 10, None),
            BarRow("005930", date(2024, 1, 3), 105, 120, 100, 115, 20, 2_300)]
    with (tmp_path / "005930.csv").open("w", encoding="utf-8", newline="") as handle:
        assert write_bars_csv(handle, rows) == 2
    assert read_bars_csv(tmp_path / "005930.csv") == (rows, [])
    buffer = io.StringIO()
    write_bars_csv(buffer, [("000660", date(2024, 1, 2), 1, 2, 1, 2, 3, 4)], with_code=True)
    assert buffer.getvalue() == "code,date,open,high,low,close,volume,traded_value\n000660,2024-01-02,1,2,1,2,3,4\n"


def test_a_source_column_marks_demo_bars_and_a_file_holds_one_kind(tmp_path):
    buffer = io.StringIO()
    write_bars_csv(buffer, [(date(2024, 1, 2), 1, 2, 1, 2, 3, 4)], source="demo")
    assert buffer.getvalue() == "date,open,high,low,close,volume,traded_value,source\n2024-01-02,1,2,1,2,3,4,demo\n"
    demo, errors = read_bars_csv(write(tmp_path, "005930.csv", buffer.getvalue()))
    assert errors == [] and demo[0].source == "demo"
    real, errors = read_bars_csv(write(tmp_path, "000660.csv", "date,open,high,low,close,volume,출처\n"
                                                                  "2024-01-02,1,2,1,2,3,csv\n2024-01-03,1,2,1,2,3,\n"))
    assert errors == [] and [row.source for row in real] == [None, None]

    mixed = write(tmp_path, "035720.csv", "date,open,high,low,close,volume,source\n2024-01-02,1,2,1,2,3,demo\n"
                                          "2024-01-03,1,2,1,2,3,\n2024-01-04,1,2,1,2,3,kis\n")
    rows, errors = read_bars_csv(mixed)
    assert [row.date for row in rows] == [date(2024, 1, 2)]
    assert messages(errors) == [
        (3, "source real differs from line 2 (demo); a file holds either demo or real bars"),
        (4, "source 'kis' must be demo (synthetic) or csv/empty (real)"),
    ]


# --------------------------------------------------------------------------------------- master files


def tail(market: str, **fields: tuple[int, str]) -> str:
    """A tail of the market's width, spaces everywhere except ``fields`` {name: (offset, text)}."""
    chars = list(" " * MASTER_TAIL[market])
    for offset, text in fields.values():
        chars[offset : offset + len(text)] = text
    return "".join(chars)


def kospi_line(code, isin, name, group="ST", etp="0", preferred="0", listed="19750611", halted="N", cap="0000004"):
    return f"{code:<9}{isin:<12}{name}" + tail(
        "KOSPI", group=(0, group), size=(2, "1"), large=(3, "0001"), etp=(22, etp), price=(41, "000071000"),
        lot=(50, "00001"), halted=(60, halted), admin=(62, "N"), warning=(63, "00"), listed=(105, listed),
        shares=(113, "000005919637922"), preferred=(158, preferred), cap=(212, f"{cap:>9}"),
    )


def kosdaq_line(code, isin, name, group="ST", etp="0", listed="20010214"):
    return f"{code:<9}{isin:<12}{name}" + tail(
        "KOSDAQ", group=(0, group), etp=(18, etp), price=(36, "000150000"), lot=(45, "00001"), halted=(55, "Y"),
        admin=(57, "N"), listed=(100, listed), shares=(108, "000000097801344"), cap=(206, "    12345"),
    )


def master_bytes(lines: list[str]) -> bytes:
    return "".join(line + "\n" for line in lines).encode("cp949")


def test_kospi_master(tmp_path):
    path = tmp_path / "kospi_code.mst"
    path.write_bytes(master_bytes([
        kospi_line("005930", "KR7005930003", "삼성전자"),
        kospi_line("005935", "KR7005931001", "삼성전자우", preferred="1"),
        kospi_line("069500", "KR7069500007", "KODEX 200", group="EF", etp="2"),
        kospi_line("F70101781", "KRF701017810", "긴이름의증권상품", group="EW"),
    ]))
    records, errors = read_master(path)
    assert errors == []
    samsung, preferred, etf, elw = records
    assert (samsung.code, samsung.isin, samsung.name, samsung.market, samsung.group) == (
        "005930", "KR7005930003", "삼성전자", "KOSPI", "ST")
    assert not samsung.is_etf and samsung.is_common_stock and not samsung.halted
    assert samsung.listed_on == date(1975, 6, 11) and samsung.base_price == 71_000 and samsung.lot_size == 1
    assert samsung.shares == 5_919_637_922 and samsung.market_cap == 4 and samsung.sector_large == "0001"
    assert preferred.is_preferred and not preferred.is_common_stock
    assert etf.is_etf and etf.name == "KODEX 200" and etf.etp == "2"
    assert elw.code == "F70101781" and elw.group == "EW"


def test_kosdaq_master_uses_its_own_tail():
    records, errors = read_master(master_bytes([
        kosdaq_line("247540", "KR7247540008", "에코프로비엠"),
        kosdaq_line("580011", "KRG580000114", "신한 인버스 ETN", group="EN", etp="3"),
    ]), name="kosdaq_code.mst")
    assert errors == []
    ecopro, etn = records
    assert (ecopro.code, ecopro.name, ecopro.market, ecopro.group) == ("247540", "에코프로비엠", "KOSDAQ", "ST")
    assert ecopro.halted and ecopro.listed_on == date(2001, 2, 14) and ecopro.base_price == 150_000
    assert ecopro.shares == 97_801_344 and ecopro.market_cap == 12_345
    assert etn.is_etf


def test_master_errors_have_line_numbers():
    data = master_bytes([kospi_line("005930", "KR7005930003", "삼성전자"), "005380   KR7005380001현대차 too short"])
    data += "000660   KR7000660001".encode("ascii") + b"\xff\xfe" + b"x" * 230 + b"\n"
    records, errors = read_master(data, name="kospi_code.mst")
    assert [r.code for r in records] == ["005930"]
    assert [(e.line, e.message.split(" ")[0]) for e in errors] == [(2, "line"), (3, "not")]
    assert "shorter than a KOSPI record" in errors[0].message and "CP949" in errors[1].message


def test_master_market_from_the_name():
    assert market_of_master("/tmp/kospi_code.mst") == "KOSPI"
    assert market_of_master("KOSDAQ_CODE.MST") == "KOSDAQ"
    assert market_of_master("stocks.mst") is None
    records, errors = read_master(master_bytes([]), name="stocks.mst")
    assert records == [] and "cannot tell the market" in errors[0].message
    with pytest.raises(ValueError, match="KOSPI or KOSDAQ"):
        read_master_lines([], "KONEX")


def test_reading_the_kosdaq_file_as_kospi_fails_clearly():
    line = kosdaq_line("247540", "KR7247540008", "에")
    records, errors = read_master_lines([line[:len(line) - 10]], "KOSPI")
    assert records == [] and "shorter than a KOSPI record" in errors[0].message
