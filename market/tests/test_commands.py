"""kis_check, kis_quote and kis_benchmark against the fake KIS host named by KIS_URL_BASE (.env)."""

import io

import pytest
from django.core.management import CommandError, call_command

from market.tests.fake_kis import FAKE_ACCOUNT_NO, FAKE_APP_KEY, FAKE_APP_SECRET, FakeKisServer

pytestmark = pytest.mark.django_db


@pytest.fixture
def fake_from_env(settings):
    """The .env route of the issue: KIS_URL_BASE points at a fake 모의투자 host."""
    with FakeKisServer(mode="paper") as server:
        settings.KIS_APP_KEY, settings.KIS_APP_SECRET = FAKE_APP_KEY, FAKE_APP_SECRET
        settings.KIS_ACCOUNT, settings.KIS_MODE = FAKE_ACCOUNT_NO, "simulated"
        settings.KIS_BASE_URLS = {"real": "", "paper": server.base_url}
        yield server


def run(*args):
    out = io.StringIO()
    call_command(*args, stdout=out, stderr=out)
    return out.getvalue()


def test_kis_check_prints_balance_and_holdings(fake_from_env):
    fake_from_env.set_holdings({"000660": (3, 180_000)})
    output = run("kis_check")
    assert "connected" in output and "10,000,000" in output
    assert "000660" in output and FAKE_ACCOUNT_NO not in output


def test_kis_check_with_a_wrong_secret_fails_with_the_kis_message(fake_from_env, settings):
    settings.KIS_APP_SECRET = "wrong"
    with pytest.raises(CommandError, match="connection failed"):
        run("kis_check")


def test_kis_check_without_any_account_names_the_variables(settings):
    settings.KIS_APP_KEY = ""
    with pytest.raises(CommandError, match="KIS_APP_KEY"):
        run("kis_check")


def test_kis_quote(fake_from_env):
    output = run("kis_quote", "005930")
    assert "005930 72,900 KRW" in output


def test_kis_quote_unknown_code(fake_from_env):
    with pytest.raises(CommandError):
        run("kis_quote", "999999")


def test_kis_benchmark_burst_stays_under_the_limit(fake_from_env):
    output = run("kis_benchmark", "--requests", "6", "--threads", "3")
    assert "6 requests in" in output and "configured limit 1.82/s" in output
    assert "rate-limit answers: 0" in output and "failed requests: 0" in output
    assert fake_from_env.rate_limited == 0
