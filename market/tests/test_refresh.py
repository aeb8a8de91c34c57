"""The after-close refresh: the demo market grows by the new session; KIS bars come through the gateway;
neither touches the other kind of code (demo codes vs codes with real bars)."""

import datetime as dt
import io

import pytest
import time_machine
from django.core.management import call_command

from market.krx import SEOUL
from market.models import DailyBar, Instrument
from market.refresh import refresh_recent_bars
from market.tests.fake_kis import DAILY_CHART_PATH, FAKE_ACCOUNT_NO, FAKE_APP_KEY, FAKE_APP_SECRET, FakeKisServer

pytestmark = pytest.mark.django_db


def at(*args):
    return dt.datetime(*args, tzinfo=SEOUL)


def test_demo_market_gets_the_new_session():
    call_command("demo_data", symbols=3, years=1, end="2026-11-20", stdout=io.StringIO())
    summary = refresh_recent_bars(now=at(2026, 11, 23, 16, 5))  # Monday after the close
    assert summary.source == "demo" and summary.new_bars == 3
    assert DailyBar.objects.filter(date=dt.date(2026, 11, 23)).count() == 3


def test_holiday_is_skipped():
    summary = refresh_recent_bars(now=at(2026, 12, 25, 16, 5))
    assert summary.source == "skipped" and "not a KRX trading day" in summary.detail


def test_kis_bars_refresh_through_the_gateway(settings):
    Instrument.objects.create(code="005930", name="삼성전자")
    DailyBar.objects.create(instrument=Instrument.objects.get(), date=dt.date(2026, 11, 2), open=1, high=1, low=1,
                            close=1, volume=1)
    with FakeKisServer(mode="paper", rate_limit_per_second=None, today=dt.date(2026, 11, 24)) as fake:
        settings.BROKER_BACKEND = "kis"
        settings.KIS_APP_KEY, settings.KIS_APP_SECRET = FAKE_APP_KEY, FAKE_APP_SECRET
        settings.KIS_ACCOUNT, settings.KIS_MODE = FAKE_ACCOUNT_NO, "simulated"
        settings.KIS_BASE_URLS = {"real": "", "paper": fake.base_url}
        summary = refresh_recent_bars(now=at(2026, 11, 24, 16, 5))
    assert summary.source == "kis" and summary.new_bars > 0
    assert DailyBar.objects.filter(date__gte=dt.date(2026, 11, 17)).count() == summary.new_bars  # 7 days back


def bars_of(code):
    return list(DailyBar.objects.filter(instrument__code=code).order_by("date").values_list("date", "close", "source"))


def test_demo_refresh_leaves_codes_with_real_bars_alone(tmp_path):
    call_command("demo_data", symbols=3, years=1, end="2026-11-20", stdout=io.StringIO())
    (tmp_path / "005930.csv").write_text(
        "date,open,high,low,close,volume\n2026-11-19,70000,70500,69500,70100,100\n2026-11-20,70100,70600,69800,70200,90\n"
    )
    call_command("import_prices", csv=str(tmp_path / "005930.csv"), stdout=io.StringIO())
    real = bars_of("005930")

    summary = refresh_recent_bars(now=at(2026, 11, 23, 16, 5))  # Monday after the close

    assert summary.source == "demo" and summary.new_bars == 2  # 000660 and 035420 only
    assert "1 codes with real bars left alone" in summary.detail
    assert bars_of("005930") == real == [(dt.date(2026, 11, 19), 70_100, "csv"), (dt.date(2026, 11, 20), 70_200, "csv")]
    assert DailyBar.objects.filter(date=dt.date(2026, 11, 23), source="demo").count() == 2


def test_kis_refresh_leaves_demo_codes_alone(settings):
    call_command("demo_data", symbols=2, years=1, end="2026-11-20", stdout=io.StringIO())  # 005930, 000660
    demo = {code: bars_of(code) for code in ("005930", "000660")}
    kakao = Instrument.objects.create(code="035720", name="카카오", source="kis")
    DailyBar.objects.create(instrument=kakao, date=dt.date(2026, 11, 2), open=1, high=1, low=1, close=1, volume=1,
                            source="kis")
    with FakeKisServer(mode="paper", rate_limit_per_second=None, today=dt.date(2026, 11, 24)) as fake:
        settings.BROKER_BACKEND = "kis"
        settings.KIS_APP_KEY, settings.KIS_APP_SECRET = FAKE_APP_KEY, FAKE_APP_SECRET
        settings.KIS_ACCOUNT, settings.KIS_MODE = FAKE_ACCOUNT_NO, "simulated"
        settings.KIS_BASE_URLS = {"real": "", "paper": fake.base_url}
        summary = refresh_recent_bars(now=at(2026, 11, 24, 16, 5))
        charts = fake.count(DAILY_CHART_PATH)

    assert summary.source == "kis" and summary.new_bars > 0 and charts == 1  # 035720 only
    assert summary.detail.startswith("1 symbols, 0 failed, 2 demo codes left alone")
    assert {code: bars_of(code) for code in demo} == demo
    assert set(DailyBar.objects.filter(instrument=kakao).values_list("source", flat=True)) == {"kis"}


def test_a_late_closing_day_is_refreshed_only_once_its_bar_is_final(monkeypatch):
    """CSAT day 2026-11-19 closes at 16:30: at the schedule's 16:05 the day's bar is not final, so the
    refresh stops at the day before and the task runs again after the close."""
    from market.tasks import refresh_bars_after_close

    call_command("demo_data", symbols=2, years=1, end="2026-11-17", stdout=io.StringIO())
    csat = dt.date(2026, 11, 19)
    summary = refresh_recent_bars(now=at(2026, 11, 19, 16, 5))
    assert summary.source == "demo" and not DailyBar.objects.filter(date=csat).exists()
    assert DailyBar.objects.filter(date=dt.date(2026, 11, 18)).count() == 2

    sent = []
    monkeypatch.setattr(refresh_bars_after_close, "apply_async", lambda **kwargs: sent.append(kwargs))
    with time_machine.travel(at(2026, 11, 19, 16, 5), tick=False):
        assert refresh_bars_after_close.run() == {"deferred_seconds": 30 * 60}
    assert sent == [{"countdown": 30 * 60.0}]  # the task comes back after the close

    refresh_recent_bars(now=at(2026, 11, 19, 16, 35))
    assert DailyBar.objects.filter(date=csat).count() == 2
