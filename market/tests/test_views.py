"""The market pages: 종목 검색 (with the HTMX results partial) and 종목 상세."""

import datetime as dt
import json
import re

import pytest
from django.urls import reverse

from market import indicators
from market.models import Outlier, WeeklyAnalysis
from market.tests.factories import DailyBarFactory, InstrumentFactory, PaperBrokerAccountFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def logged_in(client, user):
    client.force_login(user)
    return client


@pytest.fixture
def samsung():
    return InstrumentFactory(code="005930", name="삼성전자", name_en="Samsung Electronics", sector="전기·전자")


@pytest.fixture
def with_bars(samsung):
    start = dt.date(2026, 1, 5)
    closes = [70_000 + (i * 733) % 5_000 for i in range(40)]
    for i, close in enumerate(closes):
        DailyBarFactory(instrument=samsung, date=start + dt.timedelta(days=i), close=close, volume=1_000 + i)
    return closes


def chart_data(response) -> dict:
    match = re.search(r'<script id="chart-data" type="application/json">(.*?)</script>', response.content.decode())
    assert match, "no chart data"
    return json.loads(match.group(1))


# ------------------------------------------------------------------------------------------------ search
def test_search_page_requires_login(client):
    response = client.get(reverse("market:index"))
    assert response.status_code == 302
    assert "/accounts/login/" in response["Location"]


def test_search_page_has_a_live_search_box(logged_in):
    response = logged_in.get(reverse("market:index"))
    assert response.status_code == 200
    html = response.content.decode()
    assert 'type="search"' in html
    assert f'hx-get="{reverse("market:search")}"' in html
    assert 'hx-trigger="input changed delay:200ms, search"' in html
    assert "js/search.js" in html
    assert "종목 검색" in html  # Korean first


def test_search_partial_with_initial_consonants(logged_in, samsung):
    InstrumentFactory(code="000660", name="SK하이닉스")
    response = logged_in.get(reverse("market:search"), {"q": "ㅅㅅㅈㅈ"}, HTTP_HX_REQUEST="true")
    assert response.status_code == 200
    html = response.content.decode()
    assert "<html" not in html  # a fragment
    assert "삼성전자" in html and "SK하이닉스" not in html
    assert f'href="{reverse("market:detail", args=["005930"])}"' in html
    assert 'role="option"' in html
    assert response["HX-Replace-Url"] == "/market/?q=%E3%85%85%E3%85%85%E3%85%88%E3%85%88"


def test_search_partial_no_match_and_empty(logged_in, samsung):
    html = logged_in.get(reverse("market:search"), {"q": "없는종목"}).content.decode()
    assert "없는종목" in html and 'role="option"' not in html
    html = logged_in.get(reverse("market:search"), {"q": ""}, HTTP_HX_REQUEST="true").content.decode()
    assert 'role="option"' not in html


def test_search_page_with_a_query_renders_the_results(logged_in, samsung):
    html = logged_in.get(reverse("market:index"), {"q": "삼성"}).content.decode()
    assert 'value="삼성"' in html
    assert 'id="search-option-005930"' in html


def test_many_matches_are_capped(logged_in):
    for i in range(25):
        InstrumentFactory(code=f"{200000 + i:06d}", name=f"가나다{i}")
    html = logged_in.get(reverse("market:search"), {"q": "ㄱㄴㄷ"}).content.decode()
    assert html.count('role="option"') == 20
    assert "25" in html


@pytest.mark.parametrize("name", ["market:index", "market:search"])
def test_a_search_longer_than_the_apis_cap_is_refused_in_korean(logged_in, samsung, name):
    response = logged_in.get(reverse(name), {"q": "삼성" * 5_000})
    assert response.status_code == 400
    html = response.content.decode()
    assert "검색어가 너무 깁니다" in html and "50" in html
    assert 'id="search-option-005930"' not in html and "삼성삼성" not in html
    assert logged_in.get(reverse(name), {"q": "삼성" * 25}).status_code == 200  # 50 characters: searched


# ------------------------------------------------------------------------------------------------ detail
def test_detail_renders_chart_zscore_panel_and_analysis(logged_in, samsung, with_bars):
    week = WeeklyAnalysis.objects.create(
        instrument=samsung, week_start=dt.date(2026, 2, 9), iso_week="2026-W07", trading_days=5, close=71_234,
        weekly_return=0.0123, volatility=0.25, skew=0.5, kurtosis=1.25, max_drawdown=-0.031, z_score=2.345,
    )
    Outlier.objects.create(analysis=week, date=dt.date(2026, 2, 10), series="close", method="zscore",
                           value=74_000, score=2.6)
    response = logged_in.get(reverse("market:detail", args=["005930"]))
    assert response.status_code == 200
    html = response.content.decode()
    assert 'id="price-chart"' in html
    assert 'id="zscore-panel"' in html  # the z-score is the chart's bottom pane, explained below it
    # the candle chart: Lightweight Charts from npm (static vendor), the shared component, the page's glue
    assert "vendor/lightweight-charts/lightweight-charts.standalone.production.js" in html
    assert "js/price_chart.js" in html and "js/market_chart.js" in html
    assert 'href="https://www.tradingview.com/"' in html  # the licence's attribution
    # the weekly analysis table
    assert "2026-W07" in html and "71,234" in html and "+1.23%" in html and "2.35" in html
    assert "outlier-chip" in html
    # the quote box loads through HTMX
    assert f'hx-get="{reverse("market:quote", args=["005930"])}"' in html

    data = chart_data(response)
    assert data["close"] == with_bars
    assert len(data["dates"]) == 40 and data["dates"][0] == "2026-01-05"
    assert data["volume"][0] == 1_000
    # the candles: each day's open, high and low next to its close (the factory's bars: open 70,000)
    assert data["open"] == [70_000] * 40
    assert data["high"] == [max(70_000, close) + 1_000 for close in with_bars]
    assert data["low"] == [min(70_000, close) - 1_000 for close in with_bars]
    assert data["labels"]["ma"] == "이평 20" and data["labels"]["open"] == "시가"
    expected = indicators.indicators(with_bars, 20, 2.0)
    assert data["ma"][:19] == [None] * 19
    assert data["ma"][19] == pytest.approx(expected.middle[19], abs=0.05)
    assert data["upper"][-1] == pytest.approx(expected.upper[-1], abs=0.05)
    assert data["lower"][-1] == pytest.approx(expected.lower[-1], abs=0.05)
    assert data["z"][-1] == pytest.approx(expected.z[-1], abs=0.001)
    assert data["threshold"] == 2.0
    assert data["outliers"]["2026-02-10"][0]["series"] == "close"


def test_detail_without_bars_or_analysis_shows_empty_states(logged_in, samsung):
    response = logged_in.get(reverse("market:detail", args=["005930"]))
    assert response.status_code == 200
    html = response.content.decode()
    assert 'id="no-bars"' in html and 'id="no-analysis"' in html
    assert 'id="price-chart"' not in html and 'id="chart-data"' not in html
    assert "삼성전자" in html


def test_detail_with_bars_but_no_analysis(logged_in, with_bars):
    html = logged_in.get(reverse("market:detail", args=["005930"])).content.decode()
    assert 'id="price-chart"' in html and 'id="no-analysis"' in html


def test_unknown_code_is_404(logged_in):
    assert logged_in.get("/market/999999/").status_code == 404
    assert logged_in.get("/market/999999/quote/").status_code == 404


# ------------------------------------------------------------------------------------------------ quote box
def test_quote_box_polls_only_during_the_session(logged_in, user, with_bars, monkeypatch):
    PaperBrokerAccountFactory(owner=user, name="모의", is_default=True)
    url = reverse("market:quote", args=["005930"])

    monkeypatch.setattr("market.views.is_regular_session", lambda now: True)
    html = logged_in.get(url, HTTP_HX_REQUEST="true").content.decode()
    assert 'hx-trigger="every 30s"' in html
    assert f"{with_bars[-1]:,}" in html  # the paper broker quotes the last stored close

    monkeypatch.setattr("market.views.is_regular_session", lambda now: False)
    html = logged_in.get(url, HTTP_HX_REQUEST="true").content.decode()
    assert "every 30s" not in html
    assert 'id="quote-closed-note"' in html
    assert f"{with_bars[-1]:,}" in html


def test_quote_box_without_account_and_with_a_broker_error(logged_in, user, samsung, monkeypatch):
    monkeypatch.setattr("market.views.is_regular_session", lambda now: False)
    url = reverse("market:quote", args=["005930"])
    html = logged_in.get(url).content.decode()
    assert reverse("accounts:broker_account_list") in html
    PaperBrokerAccountFactory(owner=user, name="모의", is_default=True)
    html = logged_in.get(url).content.decode()  # no bars: the paper broker's own message
    assert "005930 종목의 시세가 없습니다" in html


# ------------------------------------------------------------------------------------------------ demo data
def test_demo_data_is_marked_on_the_detail_page_and_in_search_results(logged_in):
    demo = InstrumentFactory(code="005930", name="삼성전자", source="demo")
    DailyBarFactory(instrument=demo, date=dt.date(2026, 1, 5), source="demo")
    real = InstrumentFactory(code="000660", name="SK하이닉스", source="kis")
    DailyBarFactory(instrument=real, date=dt.date(2026, 1, 5), source="kis")
    badge = ">데모 데이터 (합성 시세)</span>"

    page = logged_in.get(reverse("market:detail", args=["005930"])).content.decode()
    assert 'id="demo-badge"' in page and badge in page
    assert 'id="demo-note"' in page and "실제 시세가 아닙니다" in page
    real_page = logged_in.get(reverse("market:detail", args=["000660"])).content.decode()
    assert "demo-badge" not in real_page and "데모 데이터" not in real_page
    assert "시세 출처: KIS" in real_page

    results = logged_in.get(reverse("market:search"), {"q": "삼성"}).content.decode()
    assert badge in results
    assert badge not in logged_in.get(reverse("market:search"), {"q": "SK"}).content.decode()
    assert badge in logged_in.get(reverse("market:index"), {"q": "005930"}).content.decode()
