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


# ------------------------------------------------------------------------------------------- several app keys
FLEET_DAY = dt.date(2026, 11, 24)
REAL_CODES = ("000660", "005930", "035720")  # consecutive chunks: 000660 + 005930, then 035720


@pytest.fixture
def two_keys(settings, monkeypatch):
    """Two KIS app keys for market data — a superuser's and a staff member's real accounts — served by
    one fake KIS host (as KIS serves every key), and three codes with real bars."""
    from accounts.models import BrokerMode
    from accounts.tests.factories import BrokerAccountFactory, UserFactory
    from market.kis.ratelimit import NoRateLimit
    from market.tests.fake_kis import FakeKisFleet

    admin = UserFactory(is_superuser=True, is_staff=True)
    staff = UserFactory(is_staff=True)
    accounts = [BrokerAccountFactory(owner=admin, mode=BrokerMode.REAL),
                BrokerAccountFactory(owner=staff, mode=BrokerMode.REAL)]
    for code in REAL_CODES:
        instrument = Instrument.objects.create(code=code, name=code, source="kis")
        DailyBar.objects.create(instrument=instrument, date=dt.date(2026, 11, 2), open=1, high=1, low=1, close=1,
                                volume=1, source="kis")
    monkeypatch.setattr("market.brokers.kis.rate_limiter_for", lambda kis_mode: NoRateLimit())
    settings.BROKER_BACKEND = "kis"
    settings.KIS_APP_KEY = settings.KIS_APP_SECRET = settings.KIS_ACCOUNT = ""  # no .env account
    with time_machine.travel(at(2026, 11, 24, 16, 10), tick=True), \
            FakeKisFleet(mode="real", latency=None, today=FLEET_DAY) as fleet:
        for account in accounts:
            fleet.add_account(account.app_key, account.app_secret, account.account_number)
        settings.KIS_BASE_URLS = {"real": fleet.base_url, "paper": ""}
        yield fleet, accounts


def charted(fleet, account) -> list[str]:
    return [r.query["FID_INPUT_ISCD"] for r in fleet.accounts[account.app_key].requests if r.path == DAILY_CHART_PATH]


def recent_bars(code) -> int:
    return DailyBar.objects.filter(instrument__code=code, date__gte=dt.date(2026, 11, 17)).count()


def test_the_data_accounts_are_one_per_app_key_env_first_then_superusers_then_staff(settings):
    from accounts.models import BrokerMode
    from accounts.tests.factories import BrokerAccountFactory, UserFactory
    from market.refresh import kis_data_account, kis_data_accounts

    admin, staff, trader = UserFactory(is_superuser=True), UserFactory(is_staff=True), UserFactory()
    staff_account = BrokerAccountFactory(owner=staff, mode=BrokerMode.REAL)
    admin_account = BrokerAccountFactory(owner=admin, mode=BrokerMode.SIMULATED)
    BrokerAccountFactory(owner=trader, mode=BrokerMode.REAL)  # an ordinary user's keys are never borrowed
    BrokerAccountFactory(owner=admin, mode=BrokerMode.PAPER, app_key="", app_secret="", account_number="")
    BrokerAccountFactory(owner=staff, mode=BrokerMode.REAL, app_key=admin_account.app_key)  # the same key again
    assert [a.pk for a in kis_data_accounts()] == [admin_account.pk, staff_account.pk]

    settings.KIS_APP_KEY, settings.KIS_APP_SECRET, settings.KIS_ACCOUNT = admin_account.app_key, "s" * 40, "12345678"
    accounts = kis_data_accounts()  # create_admin copies .env's key to the superuser: one key, the .env account
    assert [a.pk for a in accounts] == [None, staff_account.pk]
    assert kis_data_account().pk is None


def test_several_app_keys_split_the_codes_one_task_each_through_their_own_key(two_keys, monkeypatch):
    from celery import current_app

    from market import tasks

    fleet, (first, second) = two_keys
    sent = []
    monkeypatch.setattr(tasks.refresh_bars_chunk, "delay", lambda *args: sent.append(args))
    summary = tasks.refresh_bars_after_close.run()
    assert summary["source"] == "kis" and "3 symbols in 2 chunks" in summary["detail"]
    assert sent == [(str(first.pk), ["000660", "005930"], "2026-11-17", "2026-11-24"),
                    (str(second.pk), ["035720"], "2026-11-17", "2026-11-24")]
    assert current_app.amqp.router.route({}, "market.refresh_bars_chunk")["queue"].name == "trading"

    results = [tasks.refresh_bars_chunk.run(*args) for args in sent]  # what the workers do with them
    assert [(r["codes"], r["failed"], r["error"]) for r in results] == [(2, [], ""), (1, [], "")]
    assert sorted(charted(fleet, first)) == ["000660", "005930"] and charted(fleet, second) == ["035720"]
    assert all(recent_bars(code) == 6 for code in REAL_CODES)  # 17..24 November: six sessions
    assert sum(r["new_bars"] for r in results) == 18


def test_a_failing_chunk_keeps_the_others_bars_and_is_reported(two_keys, caplog):
    fleet, (first, second) = two_keys
    fleet.accounts[second.app_key].add_fault(
        DAILY_CHART_PATH, "reject", times=None, body='{"rt_cd": "1", "msg_cd": "EGW00105", "msg1": "유효하지 않은 AppSecret입니다."}')
    summary = refresh_recent_bars(now=at(2026, 11, 24, 16, 10))  # no task queue: the chunks run here
    assert summary.source == "kis" and summary.new_bars == 12
    assert summary.detail.startswith("3 symbols, 1 failed, 2 KIS app keys")
    assert recent_bars("000660") == recent_bars("005930") == 6 and recent_bars("035720") == 0
    assert "1 of 1 symbols of account" in caplog.text


def test_a_chunk_whose_account_is_gone_is_reported_and_the_others_are_stored(two_keys, caplog):
    from market.refresh import RefreshChunk, refresh_chunk

    fleet, (first, second) = two_keys
    chunks = [RefreshChunk(str(first.pk), ["000660", "005930"], dt.date(2026, 11, 17), FLEET_DAY),
              RefreshChunk(str(second.pk), ["035720"], dt.date(2026, 11, 17), FLEET_DAY)]
    second.delete()  # between the dispatch and the chunk's task
    results = [refresh_chunk(chunk) for chunk in chunks]
    assert results[0].error == "" and results[0].new_bars == 12
    assert results[1].failed == ["035720"] and "no longer a data account" in results[1].error
    assert recent_bars("035720") == 0 and "the chunk of account" in caplog.text
