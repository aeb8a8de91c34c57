"""The after-close refresh: the demo market grows by the new session; KIS bars come through the gateway."""

import datetime as dt
import io

import pytest
from django.core.management import call_command

from market.krx import SEOUL
from market.models import DailyBar, Instrument
from market.refresh import refresh_recent_bars
from market.tests.fake_kis import FAKE_ACCOUNT_NO, FAKE_APP_KEY, FAKE_APP_SECRET, FakeKisServer

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
