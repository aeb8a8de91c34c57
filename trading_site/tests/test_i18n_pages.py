"""The site in English shows no Korean words of its own, in Korean it shows the catalogue's words, and
amounts are written the language's way: "99,793,436원" in Korean, "KRW 99,793,436" in English.

Korean that is data stays Korean in English too: stock, account and strategy-configuration names, stored
alert messages, the Korean report text, and the language selector's "한국어"; the English check takes
those out of the page before it looks. The strategies' own texts (names, descriptions, parameter labels
and help) are declared in both languages, so they are not data: English pages show the English ones."""

from __future__ import annotations

import datetime as dt
import io
import re
from html import unescape

import pytest
import time_machine
from django.core.management import call_command
from django.template import Context, Template
from django.urls import reverse
from django.utils import translation

from accounts.models import BrokerAccount, User
from accounts.tests.second_factor import step_up
from market.krx import SEOUL
from market.models import Instrument
from orders.models import TradingAlert
from reports.models import WeeklyReport
from strategies.models import StrategyConfig
from trading_site.formatting import format_krw

pytestmark = pytest.mark.django_db

HANGUL = re.compile(r"[\uac00-\ud7a3\u3131-\u318e]+")
MONDAY_MORNING = dt.datetime(2026, 11, 23, 8, 30, tzinfo=SEOUL)
LATER = dt.datetime(2026, 11, 28, 12, 0, tzinfo=SEOUL)  # the Saturday after: the week's report exists


@pytest.mark.parametrize(("language", "value", "text"), [
    ("ko", 99_793_436, "99,793,436원"), ("en", 99_793_436, "KRW 99,793,436"),
    ("ko", -1_234, "-1,234원"), ("en", -1_234, "-KRW 1,234"),
    ("ko", 0, "0원"), ("en", 1234.5, "KRW 1,235"), ("en", "795000", "KRW 795,000"),
    ("ko", None, "–"), ("en", "", "–"), ("en", "abc", "–"),
])
def test_krw_filter_writes_amounts_the_languages_way(language, value, text):
    template = Template("{% load money %}{{ value|krw }}")
    with translation.override(language):
        assert template.render(Context({"value": value})) == text
        assert format_krw(value) == text


def test_signed_krw_puts_the_sign_in_front():
    template = Template("{% load money %}{{ a|signed_krw }} {{ b|signed_krw }} {{ c|signed_krw }}")
    with translation.override("en"):
        assert template.render(Context({"a": 5, "b": -5, "c": 0})) == "+KRW 5 -KRW 5 KRW 0"
    with translation.override("ko"):
        assert template.render(Context({"a": 5, "b": -5, "c": 0})) == "+5원 -5원 0원"


@pytest.fixture
def demo(client):
    """The demo user with a traded paper account, a strategy, orders and the week's plain report."""
    with time_machine.travel(MONDAY_MORNING, tick=False):
        call_command("setup_demo", symbols=6, years=1, stdout=io.StringIO())
    with time_machine.travel(LATER, tick=False):
        call_command("weekly_report", user="demo", no_model=True, week="2026-W48", stdout=io.StringIO())
    user = User.objects.get(username="demo")
    user.is_staff = user.is_superuser = True
    user.save()
    step_up(client, user)  # staff reach the admin with a second factor
    return user


def get(client, language, url):
    client.cookies["django_language"] = language
    with time_machine.travel(LATER, tick=False):
        response = client.get(url)
    assert response.status_code == 200, url
    return response.content.decode()


def visible_text(body: str) -> str:
    """The page's words: text and the attributes a reader meets, without scripts and the report text."""
    body = re.sub(r"<script.*?</script>|<style.*?</style>", " ", body, flags=re.S)
    body = re.sub(r'<article class="report-text".*?</article>', " ", body, flags=re.S)
    body = re.sub(r'<details class="card facts-json">.*?</details>', " ", body, flags=re.S)  # the stored facts
    attributes = re.findall(r'(?:title|aria-label|placeholder|alt|data-label-[\w-]+)="([^"]*)"', body)
    return unescape(re.sub(r"<[^>]+>", "\n", body) + "\n" + "\n".join(attributes))


def data_words() -> list[str]:
    """Korean that is data, longest first so that a name is taken out before its parts."""
    words = {"한국어"}
    words |= set(Instrument.objects.values_list("name", flat=True))
    words |= set(Instrument.objects.values_list("sector", flat=True))
    words |= set(BrokerAccount.objects.values_list("name", flat=True))
    words |= set(StrategyConfig.objects.values_list("name", flat=True))
    words |= set(TradingAlert.objects.values_list("message", flat=True))
    return sorted((w for w in words if w), key=len, reverse=True)


def korean_left(text: str) -> list[str]:
    for word in data_words():
        text = text.replace(word, " ")
    return sorted({line.strip() for line in text.splitlines() if HANGUL.search(line)})


# One demo set-up per language (it replays the demo's weeks): each test checks several pages.
def test_the_site_in_english(client, demo):
    report = WeeklyReport.objects.get(user=demo)
    account = BrokerAccount.objects.get(owner=demo)
    config = StrategyConfig.objects.get(owner=demo)
    pages = [
        reverse("strategies:config_edit", args=[config.pk]), reverse("strategies:backtests"),
        reverse("admin:strategies_strategyconfig_change", args=[config.pk]),
        reverse("dashboard"), reverse("orders:index"), reverse("strategies:index"), reverse("reports:index"),
        reverse("reports:detail", args=[report.iso_week]), reverse("accounts:broker_account_list"),
        reverse("admin:index"), reverse("admin:orders_order_changelist"), reverse("admin:market_paperorder_changelist"),
        reverse("admin:accounts_brokeraccount_change", args=[account.pk]),
    ]
    bodies = {url: get(client, "en", url) for url in pages}
    assert {url: korean_left(visible_text(body)) for url, body in bodies.items()} == {url: [] for url in pages}

    # the strategies' own texts in English: name, description, parameter labels and help
    body = bodies[reverse("strategies:index")]
    assert "Mean reversion (z-score)" in body and "평균회귀 (Z-점수)" not in body
    body = bodies[reverse("strategies:config_edit", args=[config.pk])]
    for text in ("Computes the z-score of the close", "Z threshold", "Stop-loss", "Take-profit",
                 "Buy when z is below -threshold", "Mean reversion (z-score) (mean_reversion)"):
        assert text in body, text

    # the report: the status reason and the benchmark in English; its strategy section in English too
    body = bodies[reverse("reports:detail", args=[report.iso_week])]
    signals = re.search(r'<section class="card" aria-labelledby="signals-title">.*?</section>', body, re.S)[0]
    assert "Mean reversion (z-score)" in signals and "Z threshold" in signals
    report.refresh_from_db()  # the stored facts (the model reads them) keep the Korean declarations
    assert {s["strategy"] for s in report.facts["strategies"]} == {"평균회귀 (Z-점수)"}
    assert "The plain report was written because writing without the model was requested." in body
    metrics = re.search(r'<div class="metric-cards" id="report-metrics">.*?</section>', body, re.S)[0]
    assert re.search(r"Strategy universe, equal weight|All stocks, equal weight", metrics)

    # the dashboard: "KRW 1,234" and capitalised column headers
    body = bodies[reverse("dashboard")]
    value = re.search(rf'id="account-value-{account.pk}"[^>]*>([^<]*)<', body)[1]
    assert re.fullmatch(r"KRW [\d,]+", value), value
    assert re.search(r"<th[^>]*>Code</th>", body) and re.search(r"<th[^>]*>Market value</th>", body)
    for url in (reverse("dashboard"), reverse("orders:index"), reverse("strategies:index")):
        assert not re.search(r"<th[^>]*>[a-z]", bodies[url]), url  # column headers start with a capital

    # the admin: two sections no longer share a name; third-party and our model names in English
    captions = admin_captions(bodies[reverse("admin:index")])
    assert len(captions) == len(set(captions)) and {"Accounts", "Users and broker accounts"} <= set(captions)
    assert "Clocked" in bodies[reverse("admin:index")] and "Paper orders" in bodies[reverse("admin:index")]
    # a paper account has no account number: no "Stored: ." note
    assert not account.account_number
    assert "Stored: ." not in bodies[reverse("admin:accounts_brokeraccount_change", args=[account.pk])]


def test_the_site_in_korean(client, demo):
    report = WeeklyReport.objects.get(user=demo)
    account = BrokerAccount.objects.get(owner=demo)
    body = get(client, "ko", reverse("reports:detail", args=[report.iso_week]))
    assert "모델 없이 작성하도록 요청되어 기본 리포트를 만들었습니다." in body
    metrics = re.search(r'<div class="metric-cards" id="report-metrics">.*?</section>', body, re.S)[0]
    assert re.search(r"전략 유니버스 동일가중|전 종목 동일가중", metrics)

    signals = re.search(r'<section class="card" aria-labelledby="signals-title">.*?</section>', body, re.S)[0]
    assert "평균회귀 (Z-점수)" in signals and "Z 임계값" in signals and "Mean reversion" not in signals

    # the strategies' own texts stay the Korean declarations
    config = StrategyConfig.objects.get(owner=demo)
    body = get(client, "ko", reverse("strategies:index"))
    assert "평균회귀 (Z-점수)" in body and "Mean reversion" not in body
    body = get(client, "ko", reverse("strategies:config_edit", args=[config.pk]))
    for text in ("평균회귀 (Z-점수) (mean_reversion)", "종가의 이동평균과 표본표준편차로 Z-점수를 구해", "Z 임계값",
                 "Z가 -임계값 미만이면 매수", "손절 기준", "익절 기준"):
        assert text in body, text
    assert "Z threshold" not in body and "Stop-loss" not in body

    body = get(client, "ko", reverse("dashboard"))
    value = re.search(rf'id="account-value-{account.pk}"[^>]*>([^<]*)<', body)[1]
    assert re.fullmatch(r"[\d,]+원", value), value
    assert re.search(r"<th[^>]*>평가금액</th>", body) and not re.search(r"<th[^>]*>값</th>", body)
    assert re.search(r"<th[^>]*>종목코드</th>", body) or re.search(r"<th[^>]*>코드</th>", body)

    body = get(client, "ko", reverse("admin:index"))
    captions = admin_captions(body)
    assert len(captions) == len(set(captions)) and {"계정", "사용자와 증권 계좌", "주기 작업"} <= set(captions)
    for english in ("Clocked", "Periodic tasks", "Paper orders", "Crontabs", "Outstanding Tokens"):
        assert english not in body
    assert "지정 시각" in body and "페이퍼 주문" in body
    body = get(client, "ko", reverse("admin:accounts_brokeraccount_change", args=[account.pk]))
    assert "저장된 값: ." not in body


def admin_captions(body: str) -> list[str]:
    return [re.sub(r"<[^>]+>", "", c).strip() for c in re.findall(r"<caption>(.*?)</caption>", body, re.S)]
