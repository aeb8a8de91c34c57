"""market.import_service and its commands: CSV folders (good files in, a bad file reported and not written,
re-runs add nothing), KIS daily charts through the fake KIS host, master files, the demo CSV export, the
switch from demo to real bars (CSV and KIS) and the bulk-load benchmark."""

from __future__ import annotations

import io
import json
from datetime import date, datetime

import pytest
from django.core.management import CommandError, call_command
from rest_framework.test import APIClient

from accounts.models import BrokerMode
from accounts.tests.factories import BrokerAccountFactory
from market.analysis_service import analyze_week
from market.demo import DEMO_EPOCH, generate_bars, generate_universe
from market.demo_market import store_demo_market
from market.import_service import (
    SourceResult,
    benchmark_instruments,
    import_csv,
    import_from_kis,
    import_instruments_from_master,
    run_bulk_load_benchmark,
)
from market.importers import read_bars_csv
from market.krx import SEOUL
from market.krx import trading_days as krx_trading_days
from market.models import DailyBar, Instrument, Outlier, WeeklyAnalysis
from market.tests.factories import InstrumentFactory
from market.tests.fake_kis import (
    DAILY_CHART_PATH,
    FAKE_ACCOUNT_NO,
    FAKE_APP_KEY,
    FAKE_APP_SECRET,
    FakeKisServer,
    trading_days,
)
from market.tests.test_importers import kosdaq_line, kospi_line, master_bytes

pytestmark = pytest.mark.django_db

HEADER = "date,open,high,low,close,volume\n"
GOOD_005930 = HEADER + "2024-01-02,78200,79800,78200,79600,17142847\n2024-01-03,78500,78800,77000,77000,21753644\n"
GOOD_000660 = HEADER + "20240102,136000,138000,135000,137500,2500000\n"
BAD_035720 = HEADER + "2024-01-02,55000,56000,54000,55500,100\n2024-01-03,55000,54000,53000,53500,100\n2024-01-04,x,1,1,1,1\n"


def run(*args, **options) -> tuple[str, str]:
    out, err = io.StringIO(), io.StringIO()
    call_command(*args, stdout=out, stderr=err, **options)
    return out.getvalue(), err.getvalue()


@pytest.fixture
def folder(tmp_path):
    (tmp_path / "005930.csv").write_text(GOOD_005930, encoding="utf-8")
    (tmp_path / "000660.csv").write_text(GOOD_000660, encoding="utf-8")
    (tmp_path / "035720.csv").write_text(BAD_035720, encoding="utf-8")
    (tmp_path / "notes.txt").write_text("not a csv", encoding="utf-8")
    return tmp_path


# --------------------------------------------------------------------------------------- CSV


def test_folder_import_good_files_in_bad_file_reported_and_not_written(folder):
    seen: list[SourceResult] = []
    totals: list[int] = []
    report = import_csv(folder, on_total=totals.append, on_source=seen.append)

    assert totals == [3] and [s.source for s in seen] == ["000660.csv", "005930.csv", "035720.csv"]
    assert (report.inserted, report.updated) == (3, 0)
    assert sorted(report.new_instruments) == ["000660", "005930"]
    assert [str(error) for error in report.errors] == [
        "035720.csv:3: high 54000 is below max(open, close) 55000",
        "035720.csv:4: open 'x' is not a whole number of KRW/shares",
    ]
    assert [s.source for s in report.rejected] == ["035720.csv"] and not report.ok
    assert "2 of 3 sources imported: 3 rows" in report.summary() and "035720.csv" in report.summary()
    # nothing of the bad file: neither its good first row nor an instrument
    assert not Instrument.objects.filter(code="035720").exists()
    assert sorted(DailyBar.objects.values_list("instrument__code", "date", "close")) == [
        ("000660", date(2024, 1, 2), 137_500), ("005930", date(2024, 1, 2), 79_600), ("005930", date(2024, 1, 3), 77_000),
    ]


def test_rerun_adds_nothing_and_a_fixed_file_goes_in(folder):
    import_csv(folder)
    (folder / "035720.csv").write_text(BAD_035720.replace("55000,54000", "55000,56000").replace("x,1,1,1,1", "1,1,1,1,1"))
    report = import_csv(folder)
    assert report.ok and report.inserted == 3 and report.updated == 3
    assert [s.inserted for s in report.sources] == [0, 0, 3]
    again = import_csv(folder)
    assert (again.inserted, again.updated, again.new_instruments) == (0, 6, [])
    assert DailyBar.objects.count() == 6


def test_existing_instruments_keep_their_names(tmp_path):
    InstrumentFactory(code="005930", name="삼성전자")
    (tmp_path / "005930.csv").write_text(GOOD_005930)
    report = import_csv(tmp_path / "005930.csv")
    assert report.new_instruments == [] and Instrument.objects.get(code="005930").name == "삼성전자"


def test_file_with_a_code_column_and_an_empty_file(tmp_path):
    (tmp_path / "all.csv").write_text("code,date,open,high,low,close,volume,traded_value\n"
                                      "005930,2024-01-02,1,2,1,2,3,6\n000660,2024-01-02,5,5,5,5,0,\n")
    (tmp_path / "000270.csv").write_text(HEADER)
    report = import_csv(tmp_path)
    assert report.ok and report.inserted == 2
    assert [(s.source, s.note) for s in report.sources] == [("000270.csv", "no rows"), ("all.csv", "")]


def test_nothing_to_import(tmp_path):
    with pytest.raises(ValueError, match="no .csv files"):
        import_csv(tmp_path)
    with pytest.raises(ValueError, match="no such file or folder"):
        import_csv(tmp_path / "missing")


def test_import_prices_command_lists_bad_rows_and_fails(folder):
    with pytest.raises(CommandError, match="2 malformed rows in 1 of 3 sources") as failure:
        call_command("import_prices", csv=str(folder), stdout=io.StringIO(), stderr=(err := io.StringIO()))
    assert "035720.csv:3: high 54000 is below max(open, close) 55000" in err.getvalue()
    assert "035720.csv:4:" in err.getvalue()
    assert failure.value.returncode == 1
    assert DailyBar.objects.count() == 3

    (folder / "035720.csv").unlink()
    out, err = run("import_prices", "--csv", str(folder))
    assert "005930.csv: 2 rows, 0 new, 2 already stored" in out
    assert "2 of 2 sources imported: 3 rows, 0 new, 3 already stored" in out and err == ""


def test_import_prices_command_argument_errors(folder):
    with pytest.raises(CommandError, match="go with --kis"):
        run("import_prices", "--csv", str(folder), "--start", "2024-01-01")
    with pytest.raises(CommandError, match="no such file"):
        run("import_prices", "--csv", str(folder / "nope"))
    with pytest.raises(CommandError, match="--kis needs --start"):
        run("import_prices", "--kis", "005930")


# --------------------------------------------------------------------------------------- KIS


@pytest.fixture
def fake_real(settings):
    with FakeKisServer(mode="real", rate_limit_per_second=None) as server:
        settings.KIS_BASE_URLS = {"real": server.base_url, "paper": ""}
        yield server


@pytest.fixture
def fake_vts(settings):
    with FakeKisServer(mode="paper", rate_limit_per_second=None) as server:
        settings.KIS_BASE_URLS = {"real": "", "paper": server.base_url}
        yield server


def kis_account(user, mode):
    return BrokerAccountFactory(owner=user, mode=mode, app_key=FAKE_APP_KEY, app_secret=FAKE_APP_SECRET,
                                account_number=FAKE_ACCOUNT_NO)


def expected_bars(server: FakeKisServer, code: str, start: date, end: date) -> list[tuple]:
    rows = []
    for day in trading_days(start, end):
        bar = server.bar_for(code, day)
        rows.append((day, int(bar["stck_oprc"]), int(bar["stck_hgpr"]), int(bar["stck_lwpr"]), int(bar["stck_clpr"]),
                     int(bar["acml_vol"]), int(bar["acml_tr_pbmn"])))
    return rows


def stored(code: str) -> list[tuple]:
    return list(DailyBar.objects.filter(instrument__code=code).order_by("date").values_list(
        "date", "open", "high", "low", "close", "volume", "traded_value"))


def test_kis_import_pages_through_the_chart_and_is_idempotent(fake_real, user):
    account = kis_account(user, BrokerMode.REAL)
    start, end = date(2025, 3, 4), date(2025, 10, 31)  # ~160 trading days: two chart pages each
    report = import_from_kis(account, ["005930", "000660", "999999"], start, end)

    assert report.ok, report.errors
    days = len(trading_days(start, end))
    assert days > 100 and report.inserted == 2 * days
    assert stored("005930") == expected_bars(fake_real, "005930", start, end)
    assert stored("000660") == expected_bars(fake_real, "000660", start, end)
    assert fake_real.count(DAILY_CHART_PATH) == 5  # 2 + 2 pages, one for the unknown code
    assert [s.note for s in report.sources][2].startswith("KIS returned no bars")
    assert not Instrument.objects.filter(code="999999").exists()

    again = import_from_kis(account, ["005930"], start, end)
    assert (again.inserted, again.updated) == (0, days)


def test_kis_import_with_a_simulated_account(fake_vts, user):
    report = import_from_kis(kis_account(user, BrokerMode.SIMULATED), ["035720"], date(2025, 11, 3), date(2025, 11, 7))
    assert report.ok and report.inserted == 5
    assert stored("035720") == expected_bars(fake_vts, "035720", date(2025, 11, 3), date(2025, 11, 7))


def test_kis_error_for_one_symbol_is_reported_the_others_go_in(fake_real, user):
    fake_real.add_fault(DAILY_CHART_PATH, "raw", times=1, status=200, body=json.dumps(
        {"rt_cd": "1", "msg_cd": "OPSQ0002", "msg1": "없는 서비스 코드 입니다"}, ensure_ascii=False))
    report = import_from_kis(kis_account(user, BrokerMode.REAL), ["005930", "000660"], date(2025, 11, 3),
                             date(2025, 11, 7))
    assert [s.source for s in report.rejected] == ["KIS 005930"]
    assert "OPSQ0002" in str(report.errors[0]) or "없는 서비스" in str(report.errors[0])
    assert not stored("005930") and len(stored("000660")) == 5


def test_kis_import_refuses_paper_accounts_and_bad_input(user):
    paper = BrokerAccountFactory(owner=user, mode=BrokerMode.PAPER, app_key="", app_secret="", account_number="")
    with pytest.raises(ValueError, match="paper account"):
        import_from_kis(paper, ["005930"], date(2025, 1, 2), date(2025, 1, 3))
    account = kis_account(user, BrokerMode.REAL)
    with pytest.raises(ValueError, match="after end"):
        import_from_kis(account, ["005930"], date(2025, 1, 3), date(2025, 1, 2))
    with pytest.raises(ValueError, match="6-character"):
        import_from_kis(account, ["5930X"], date(2025, 1, 2), date(2025, 1, 3))


def test_no_trade_days_without_open_are_stored_flat(fake_real, user, monkeypatch):
    original = fake_real.bar_for

    def halted(code, day):
        bar = original(code, day)
        if day == date(2025, 11, 4):
            bar.update(stck_oprc="0", stck_hgpr="0", stck_lwpr="0", acml_vol="0", acml_tr_pbmn="0", mod_yn="Y")
        return bar

    monkeypatch.setattr(fake_real, "bar_for", halted)
    report = import_from_kis(kis_account(user, BrokerMode.REAL), ["005930"], date(2025, 11, 3), date(2025, 11, 5))
    assert report.ok, report.errors
    close = int(original("005930", date(2025, 11, 4))["stck_clpr"])
    assert stored("005930")[1] == (date(2025, 11, 4), close, close, close, close, 0, 0)


@pytest.fixture
def fake_from_env(settings):
    with FakeKisServer(mode="paper", rate_limit_per_second=None) as server:
        settings.KIS_APP_KEY, settings.KIS_APP_SECRET = FAKE_APP_KEY, FAKE_APP_SECRET
        settings.KIS_ACCOUNT, settings.KIS_MODE = FAKE_ACCOUNT_NO, "simulated"
        settings.KIS_BASE_URLS = {"real": "", "paper": server.base_url}
        yield server


def test_import_prices_command_from_kis(fake_from_env):
    out, _ = run("import_prices", "--kis", "005930", "000660", "--start", "2025-11-03", "--end", "2025-11-07")
    assert "KIS 005930: 5 rows, 5 new, 0 already stored" in out
    assert "2 of 2 sources imported: 10 rows, 10 new" in out
    with pytest.raises(CommandError, match="--start must be YYYY-MM-DD"):
        run("import_prices", "--kis", "005930", "--start", "03/11/2025")


# --------------------------------------------------------------------------------------- demo -> real

DEMO_END = date(2026, 11, 20)  # a Friday
ANALYSED_WEEKS = ("2026-W46", "2026-W47")


@pytest.fixture
def demo_market():
    """The demo market as ./scripts/run leaves it (3 symbols, a year up to DEMO_END) with two weeks analysed."""
    store_demo_market(symbols=3, years=1, end=DEMO_END, now=datetime(2026, 11, 20, 18, 0, tzinfo=SEOUL))
    for week in ANALYSED_WEEKS:
        analyze_week(week)
    assert set(DailyBar.objects.values_list("source", flat=True)) == {"demo"}
    assert set(Instrument.objects.values_list("source", flat=True)) == {"demo"}
    return DailyBar.objects.filter(instrument__code="005930").count()


def write_real_csv(path, start: date, end: date) -> list[tuple]:
    """Real-looking bars of 005930 on the KRX trading days in [start, end] (none equals a demo bar)."""
    expected, lines = [], [HEADER]
    for i, day in enumerate(krx_trading_days(start, end)):
        close = 55_000 + 100 * (i % 37)
        open_, high, low, volume = close - 100, close + 300, close - 400, 9_000_000 + i
        expected.append((day, open_, high, low, close, volume, None))
        lines.append(f"{day.isoformat()},{open_},{high},{low},{close},{volume}\n")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(lines), encoding="utf-8")
    return expected


def week_closes(bars: list[tuple]) -> list[int]:
    """The close of the last bar of each analysed week (Friday 13 and 20 November 2026)."""
    by_day = {row[0]: row[4] for row in bars}
    return [by_day[max(day for day in by_day if day <= friday)] for friday in (date(2026, 11, 13), DEMO_END)]


def other_codes_state() -> tuple:
    return (
        {code: stored(code) for code in ("000660", "035420")},
        sorted(WeeklyAnalysis.objects.exclude(instrument__code="005930").values_list("id", "close", "z_score")),
    )


def test_real_csv_replaces_every_demo_bar_of_its_code(tmp_path, demo_market, user):
    others = other_codes_state()
    # Real bars from half a year before the demo history to its end: they overlap the demo dates and go beyond.
    expected = write_real_csv(tmp_path / "005930.csv", date(2025, 6, 2), DEMO_END)

    out, _ = run("import_prices", "--csv", str(tmp_path / "005930.csv"))

    assert f"005930: 데모 일봉 {demo_market:,}개를 지우고 실제 일봉으로 바꿨습니다" in out
    assert f"005930.csv: {len(expected):,} rows, {len(expected):,} new, 0 already stored" in out
    assert "005930: 주간 분석 2주를 실제 일봉으로 다시 계산했습니다" in out
    assert stored("005930") == expected  # the CSV's series, not one demo bar left
    assert set(DailyBar.objects.filter(instrument__code="005930").values_list("source", flat=True)) == {"csv"}
    assert Instrument.objects.get(code="005930").source == "csv"
    api = APIClient()
    api.force_authenticate(user)
    assert api.get("/prices/005930").json() == {
        "prices": [{"date": day.isoformat(), "close": close} for day, _o, _h, _l, close, _v, _t in expected],
        "source": "csv",
    }
    # the weekly analysis of 005930 is that of the real bars; the other codes keep their demo bars and rows
    analyses = WeeklyAnalysis.objects.filter(instrument__code="005930").order_by("week_start")
    assert [row.iso_week for row in analyses] == list(ANALYSED_WEEKS)
    assert [row.close for row in analyses] == week_closes(expected)
    assert not Outlier.objects.filter(analysis__instrument__code="005930").exclude(analysis__in=analyses).exists()
    assert other_codes_state() == others

    again = import_csv(tmp_path / "005930.csv")  # a re-run: nothing left to replace
    assert (again.inserted, again.updated, again.demo_replaced) == (0, len(expected), {})


def test_kis_import_replaces_every_demo_bar_of_its_code(fake_real, user, demo_market):
    others = other_codes_state()
    start = date(2026, 8, 3)
    report = import_from_kis(kis_account(user, BrokerMode.REAL), ["005930"], start, DEMO_END)

    assert report.ok, report.errors
    expected = expected_bars(fake_real, "005930", start, DEMO_END)
    assert report.demo_replaced == {"005930": demo_market}
    assert report.sources[0].replacement_notes == [f"005930: 데모 일봉 {demo_market:,}개를 지우고 실제 일봉으로 바꿨습니다"]
    assert (report.inserted, report.updated) == (len(expected), 0)
    assert stored("005930") == expected
    assert set(DailyBar.objects.filter(instrument__code="005930").values_list("source", flat=True)) == {"kis"}
    assert Instrument.objects.get(code="005930").source == "kis"
    analyses = WeeklyAnalysis.objects.filter(instrument__code="005930").order_by("week_start")
    assert [row.close for row in analyses] == week_closes(expected)
    assert report.analysis_recomputed == {"005930": 2}
    assert other_codes_state() == others


def test_demo_csv_stays_demo_and_never_goes_over_real_bars(tmp_path):
    run("export_demo_csv", str(tmp_path / "demo"), "--symbols", "2", "--years", "1", "--end", "2026-11-20")
    report = import_csv(tmp_path / "demo")
    assert report.ok and report.demo_replaced == {}
    assert set(DailyBar.objects.values_list("source", flat=True)) == {"demo"}
    assert set(Instrument.objects.values_list("source", flat=True)) == {"demo"}

    demo_bars = len(stored("005930"))
    expected = write_real_csv(tmp_path / "real" / "005930.csv", date(2026, 1, 5), DEMO_END)
    assert import_csv(tmp_path / "real").demo_replaced == {"005930": demo_bars}

    refused = import_csv(tmp_path / "demo")  # the demo files again: 005930 now has real bars
    assert [source.source for source in refused.rejected] == ["005930.csv"]
    assert "005930: 실제 일봉이 있는 종목에는 데모(합성) 일봉을 넣지 않습니다" in str(refused.errors[0])
    assert stored("005930") == expected
    assert Instrument.objects.get(code="005930").source == "csv"


def test_demo_bars_of_one_code_are_replaced_by_a_multi_code_file(tmp_path, demo_market):
    (tmp_path / "all.csv").write_text(
        "code,date,open,high,low,close,volume\n"
        "000660,2026-11-19,200000,201000,199000,200500,10\n005930,2026-11-20,70000,70100,69900,70000,5\n"
    )
    report = import_csv(tmp_path / "all.csv")
    assert report.ok
    assert sorted(report.demo_replaced) == ["000660", "005930"]
    assert sorted(DailyBar.objects.exclude(source="demo").values_list("instrument__code", "date")) == [
        ("000660", date(2026, 11, 19)), ("005930", date(2026, 11, 20))]
    assert DailyBar.objects.filter(instrument__code__in=["000660", "005930"]).count() == 2
    assert DailyBar.objects.filter(instrument__code="035420", source="demo").count() == demo_market


# --------------------------------------------------------------------------------------- master files


def test_master_import_creates_then_updates_instruments(tmp_path):
    InstrumentFactory(code="005930", name="005930")  # a placeholder left by a CSV import
    kospi = tmp_path / "kospi_code.mst"
    kospi.write_bytes(master_bytes([
        kospi_line("005930", "KR7005930003", "삼성전자"),
        kospi_line("069500", "KR7069500007", "KODEX 200", group="EF", etp="2"),
        kospi_line("F70101781", "KRF701017810", "워런트", group="SW"),
    ]))
    report = import_instruments_from_master(kospi)
    assert (report.market, report.records, report.created, report.updated, report.skipped) == ("KOSPI", 3, 1, 1, 1)
    assert Instrument.objects.get(code="005930").name == "삼성전자"
    assert Instrument.objects.get(code="069500").is_etf

    again = import_instruments_from_master(kospi)
    assert (again.created, again.updated, again.unchanged) == (0, 0, 2)


def test_master_with_a_malformed_line_is_not_written(tmp_path):
    kosdaq = tmp_path / "kosdaq_code.mst"
    kosdaq.write_bytes(master_bytes([kosdaq_line("247540", "KR7247540008", "에코프로비엠"), "too short"]))
    report = import_instruments_from_master(kosdaq)
    assert not report.ok and report.errors[0].line == 2 and "NOT imported" in report.summary()
    assert not Instrument.objects.exists()


def test_import_instruments_command(tmp_path):
    (tmp_path / "kospi_code.mst").write_bytes(master_bytes([kospi_line("005930", "KR7005930003", "삼성전자")]))
    (tmp_path / "kosdaq_code.mst").write_bytes(master_bytes([kosdaq_line("247540", "KR7247540008", "에코프로비엠")]))
    out, _ = run("import_instruments", "--master", str(tmp_path / "kospi_code.mst"), str(tmp_path / "kosdaq_code.mst"))
    assert "kospi_code.mst (KOSPI): 1 records, 1 new" in out and "kosdaq_code.mst (KOSDAQ): 1 records, 1 new" in out
    assert dict(Instrument.objects.values_list("code", "market")) == {"005930": "KOSPI", "247540": "KOSDAQ"}

    (tmp_path / "bad.mst").write_bytes(b"nonsense\n")
    with pytest.raises(CommandError, match="1 of 1 master files were not imported"):
        run("import_instruments", "--master", str(tmp_path / "bad.mst"), "--market", "KOSPI")


@pytest.fixture
def master_host(tmp_path, settings):
    """KIS's download host, played by a local HTTP server serving the zipped master files."""
    import functools
    import threading
    import zipfile
    from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

    served = tmp_path / "served"
    served.mkdir()
    for name, line in (("kospi_code.mst", kospi_line("005930", "KR7005930003", "삼성전자")),
                       ("kosdaq_code.mst", kosdaq_line("247540", "KR7247540008", "에코프로비엠"))):
        with zipfile.ZipFile(served / f"{name}.zip", "w") as archive:
            archive.writestr(name, master_bytes([line]))
    handler = functools.partial(SimpleHTTPRequestHandler, directory=str(served))
    handler.log_message = lambda *args: None
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    settings.KIS_MASTER_BASE_URL = f"http://127.0.0.1:{server.server_address[1]}/"
    yield served
    server.shutdown()
    server.server_close()


def test_import_instruments_download(master_host):
    out, _ = run("import_instruments", "--download")
    assert "kospi_code.mst (KOSPI): 1 records, 1 new" in out and "kosdaq_code.mst (KOSDAQ): 1 records, 1 new" in out
    assert dict(Instrument.objects.values_list("code", "name")) == {"005930": "삼성전자", "247540": "에코프로비엠"}


def test_import_instruments_download_failure_is_clear(master_host):
    (master_host / "kosdaq_code.mst.zip").write_bytes(b"not a zip")
    with pytest.raises(CommandError, match="could not download .*kosdaq_code.mst.zip"):
        run("import_instruments", "--download")


# --------------------------------------------------------------------------------------- demo export


def test_export_demo_csv_then_import_it(tmp_path):
    out, _ = run("export_demo_csv", str(tmp_path / "demo"), "--symbols", "3", "--years", "1", "--end", "2026-11-20")
    files = sorted(p.name for p in (tmp_path / "demo").iterdir())
    assert files == ["000660.csv", "005930.csv", "035420.csv"]
    rows, errors = read_bars_csv(tmp_path / "demo" / "005930.csv")
    assert errors == [] and rows[-1].date == date(2026, 11, 20) and rows[0].traded_value
    assert f"wrote 3 files, {3 * len(rows):,} bars" in out

    out, _ = run("import_prices", "--csv", str(tmp_path / "demo"))
    assert f"3 of 3 sources imported: {3 * len(rows):,} rows, {3 * len(rows):,} new" in out
    assert f"005930.csv: {len(rows):,} rows, {len(rows):,} new, 0 already stored (데모 데이터: 합성 시세로 저장)" in out
    assert set(DailyBar.objects.values_list("source", flat=True)) == {"demo"}  # still marked as synthetic
    # the same bars as the demo market stores (demo_data)
    expected = generate_bars(generate_universe(3), krx_trading_days(DEMO_EPOCH, date(2026, 11, 20)))["005930"]
    assert stored("005930") == expected[-len(rows):].tolist()


def test_export_demo_csv_refuses_too_many_years(tmp_path):
    with pytest.raises(CommandError, match="the demo history starts"):
        run("export_demo_csv", str(tmp_path), "--years", "40")


# --------------------------------------------------------------------------------------- benchmark


def test_benchmark_small_run_cleans_up():
    out, _ = run("benchmark_bulk_load", "--symbols", "3", "--years", "1", "--batch-size", "500")
    assert "3 symbols x 252 days = 756 rows (756 inserted, 0 updated)" in out and "rows/s" in out
    assert "re-run of 756 rows: 0 inserted" in out
    assert not Instrument.objects.exists() and not DailyBar.objects.exists()


def test_benchmark_keep_then_rerun_replaces_its_leftovers():
    result = run_bulk_load_benchmark(symbols=2, years=1, keep=True)
    assert result.inserted == 2 * result.days and benchmark_instruments().count() == 2
    out, _ = run("benchmark_bulk_load", "--symbols", "2", "--years", "1")
    assert "removed 2 benchmark instruments left by an earlier --keep run" in out
    assert not benchmark_instruments().exists()


def test_benchmark_refuses_a_database_with_other_data_unless_forced(user):
    instrument = InstrumentFactory(code="005930")
    with pytest.raises(CommandError, match="already holds data that is not benchmark data .1 instruments, 1 users."):
        run("benchmark_bulk_load", "--symbols", "2", "--years", "1")
    out, _ = run("benchmark_bulk_load", "--symbols", "2", "--years", "1", "--force")
    assert "rows/s" in out
    assert list(Instrument.objects.all()) == [instrument]
