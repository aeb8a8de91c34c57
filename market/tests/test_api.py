"""Market data API: /prices/{symbol} and /api/instruments/…"""

import datetime as dt
import io

import pytest
from django.core.management import call_command
from rest_framework.test import APIClient

from market.krx import SEOUL
from market.models import DailyBar, Instrument, Outlier, WeeklyAnalysis
from market.tests.factories import DailyBarFactory, InstrumentFactory, PaperBrokerAccountFactory

pytestmark = pytest.mark.django_db

DAYS = [dt.date(2026, 3, 2) + dt.timedelta(days=i) for i in range(10)]


@pytest.fixture
def api(user):
    client = APIClient()
    client.force_authenticate(user)
    return client


@pytest.fixture
def samsung():
    instrument = InstrumentFactory(code="005930", name="삼성전자", name_en="Samsung Electronics", sector="전기·전자")
    for i, day in enumerate(DAYS):
        DailyBarFactory(
            instrument=instrument, date=day, open=70_000 + i, high=72_000 + i, low=69_000 + i, close=71_000 + i * 100,
            volume=1_000_000 + i, traded_value=70_000_000_000,
        )
    return instrument


# ------------------------------------------------------------------------------------------------ /prices
def test_prices_shape(api, samsung):
    response = api.get("/prices/005930")
    assert response.status_code == 200
    assert response["Content-Type"] == "application/json"
    body = response.json()
    assert list(body) == ["prices", "source"] and body["source"] == "csv"  # the documented shape plus the source
    assert body["prices"][0] == {"date": "2026-03-02", "close": 71_000}
    assert body["prices"][-1] == {"date": "2026-03-11", "close": 71_900}
    assert [p["date"] for p in body["prices"]] == [d.isoformat() for d in DAYS]
    assert all(isinstance(p["close"], int) for p in body["prices"])


def test_prices_start_and_end(api, samsung):
    body = api.get("/prices/005930", {"start": "2026-03-04", "end": "2026-03-06"}).json()
    assert [p["date"] for p in body["prices"]] == ["2026-03-04", "2026-03-05", "2026-03-06"]
    assert api.get("/prices/005930", {"start": "2026-03-11"}).json()["prices"] == [
        {"date": "2026-03-11", "close": 71_900}
    ]
    assert api.get("/prices/005930", {"start": "2027-01-01"}).json() == {"prices": [], "source": "csv"}


def test_prices_unknown_symbol_is_404(api, samsung):
    response = api.get("/prices/999999")
    assert response.status_code == 404
    assert "999999" in response.json()["detail"]


def test_known_symbol_without_bars_is_an_empty_list(api):
    InstrumentFactory(code="123450")
    assert api.get("/prices/123450").json() == {"prices": [], "source": "csv"}


@pytest.mark.parametrize(
    "params",
    [{"start": "2026-13-01"}, {"start": "yesterday"}, {"end": "2026-02-30"}, {"start": "20260301"},
     {"start": "2026-03-01\n"}, {"start": "2026-03-05", "end": "2026-03-04"}],
)
def test_prices_bad_dates_are_400_with_a_message(api, samsung, params):
    response = api.get("/prices/005930", params)
    assert response.status_code == 400
    assert response.json()["detail"]


def test_prices_requires_authentication(samsung):
    response = APIClient().get("/prices/005930")
    assert response.status_code == 401


def test_prices_with_a_jwt(samsung, user, password):
    client = APIClient()
    token = client.post("/token", {"username": user.username, "password": password}).json()["access_token"]
    response = client.get("/prices/005930", HTTP_AUTHORIZATION=f"Bearer {token}")
    assert response.status_code == 200
    assert len(response.json()["prices"]) == 10


def test_prices_is_two_small_queries(api, samsung, django_assert_max_num_queries):
    with django_assert_max_num_queries(2):  # force_authenticate: the instrument (its source), then its bars
        api.get("/prices/005930")


# ------------------------------------------------------------------------------------------------ instruments
def test_instrument_list_is_paginated_by_code(api, samsung):
    InstrumentFactory(code="000660", name="SK하이닉스")
    body = api.get("/api/instruments/").json()
    assert body["count"] == 2
    assert [row["code"] for row in body["results"]] == ["000660", "005930"]
    assert set(body["results"][1]) == {"code", "name", "name_en", "market", "sector", "is_listed", "is_etf", "source"}


def test_instrument_search_with_initial_consonants(api, samsung):
    InstrumentFactory(code="000660", name="SK하이닉스")
    InstrumentFactory(code="207940", name="삼성바이오로직스")
    body = api.get("/api/instruments/", {"q": "ㅅㅅㅈㅈ"}).json()
    assert body["count"] == 1
    assert body["results"][0]["name"] == "삼성전자"
    assert [r["code"] for r in api.get("/api/instruments/", {"q": "삼성"}).json()["results"]] == ["005930", "207940"]
    assert [r["code"] for r in api.get("/api/instruments/", {"q": "0006"}).json()["results"]] == ["000660"]


def test_instrument_search_pages(api):
    Instrument.objects.bulk_create([Instrument(code=f"{100000 + i:06d}", name=f"테스트{i}") for i in range(60)])
    first = api.get("/api/instruments/", {"q": "ㅌㅅㅌ"}).json()
    assert first["count"] == 60 and len(first["results"]) == 50 and first["next"]
    second = api.get("/api/instruments/", {"q": "ㅌㅅㅌ", "page": 2}).json()
    assert len(second["results"]) == 10


def test_instrument_search_too_long_is_400(api):
    assert api.get("/api/instruments/", {"q": "가" * 51}).status_code == 400


def test_instrument_detail(api, samsung):
    body = api.get("/api/instruments/005930/").json()
    assert body["name"] == "삼성전자"
    assert body["bar_count"] == 10
    assert body["first_date"] == "2026-03-02"
    assert body["last_date"] == "2026-03-11"
    assert body["last_close"] == 71_900
    assert api.get("/api/instruments/999999/").status_code == 404


def test_bars_default_fields(api, samsung):
    body = api.get("/api/instruments/005930/bars/").json()
    assert body["code"] == "005930"
    assert body["fields"] == ["open", "high", "low", "close", "volume"]
    assert body["bars"][0] == {
        "date": "2026-03-02", "open": 70_000, "high": 72_000, "low": 69_000, "close": 71_000, "volume": 1_000_000,
    }


def test_bars_selected_fields_and_range(api, samsung):
    body = api.get(
        "/api/instruments/005930/bars/", {"fields": "close,volume", "start": "2026-03-10", "end": "2026-03-11"}
    ).json()
    assert body["fields"] == ["close", "volume"]
    assert body["bars"] == [
        {"date": "2026-03-10", "close": 71_800, "volume": 1_000_008},
        {"date": "2026-03-11", "close": 71_900, "volume": 1_000_009},
    ]
    traded = api.get("/api/instruments/005930/bars/", {"fields": "traded_value"}).json()
    assert traded["bars"][0] == {"date": "2026-03-02", "traded_value": 70_000_000_000}


def test_bars_bad_parameters(api, samsung):
    response = api.get("/api/instruments/005930/bars/", {"fields": "close,price"})
    assert response.status_code == 400
    assert "price" in response.json()["detail"]
    assert api.get("/api/instruments/005930/bars/", {"start": "2026-03-05", "end": "2026-03-01"}).status_code == 400
    assert api.get("/api/instruments/999999/bars/").status_code == 404


# ------------------------------------------------------------------------------------------------ source
def test_the_api_says_where_the_prices_come_from(api, samsung):
    demo = InstrumentFactory(code="000660", name="SK하이닉스", source="demo")
    DailyBarFactory(instrument=demo, date=DAYS[0], close=200_000, source="demo")

    listing = api.get("/api/instruments/").json()["results"]
    assert {row["code"]: row["source"] for row in listing} == {"000660": "demo", "005930": "csv"}
    assert [row["source"] for row in api.get("/api/instruments/", {"q": "SK"}).json()["results"]] == ["demo"]
    detail = api.get("/api/instruments/000660/").json()
    assert (detail["source"], detail["bar_sources"]) == ("demo", {"demo": 1})
    assert api.get("/api/instruments/005930/").json()["bar_sources"] == {"csv": 10}
    bars = api.get("/api/instruments/000660/bars/", {"fields": "close,source"}).json()
    assert bars == {"code": "000660", "source": "demo", "fields": ["close", "source"],
                    "bars": [{"date": "2026-03-02", "close": 200_000, "source": "demo"}]}
    assert api.get("/api/instruments/005930/bars/").json()["source"] == "csv"
    assert api.get("/prices/000660").json() == {"prices": [{"date": "2026-03-02", "close": 200_000}], "source": "demo"}


# ------------------------------------------------------------------------------------------------ quote
@pytest.fixture
def demo_api(time_machine):
    """The demo login with its paper account and the demo market (as `setup_demo` makes them), on a
    Wednesday morning in the session for the whole test: the demo market ends "today"."""
    time_machine.move_to(dt.datetime(2026, 11, 25, 10, 30, tzinfo=SEOUL), tick=False)
    call_command("setup_demo", symbols=2, years=1, stdout=io.StringIO())
    from django.contrib.auth import get_user_model

    client = APIClient()
    client.force_authenticate(get_user_model().objects.get(username="demo"))
    return client


def test_quote_through_the_paper_broker(demo_api):
    last = DailyBar.objects.filter(instrument__code="005930").order_by("-date")[:2]
    response = demo_api.get("/api/instruments/005930/quote/")
    assert response.status_code == 200
    body = response.json()
    assert body["code"] == "005930"
    assert body["broker_mode"] == "paper"
    assert body["price"] == last[0].close
    assert body["base_price"] == last[1].close
    assert body["change"] == last[0].close - last[1].close
    assert isinstance(body["change_rate"], str)


def test_quote_broker_error_is_502_with_the_brokers_message(demo_api):
    InstrumentFactory(code="123450", name="시세없음")  # the paper broker has no bar to quote
    response = demo_api.get("/api/instruments/123450/quote/")
    assert response.status_code == 502
    assert response.json()["detail"] == "123450 종목의 시세가 없습니다. 먼저 시세를 가져오세요."
    assert response.json()["code"] == "NO_PRICE"


def test_quote_without_a_broker_account_is_409(api, samsung):
    response = api.get("/api/instruments/005930/quote/")
    assert response.status_code == 409
    assert response.json()["detail"]


def test_quote_uses_the_default_account_and_unknown_code_is_404(api, user, samsung):
    PaperBrokerAccountFactory(owner=user, name="모의", is_default=True)
    assert api.get("/api/instruments/005930/quote/").json()["price"] == 71_900
    assert api.get("/api/instruments/999999/quote/").status_code == 404


# ------------------------------------------------------------------------------------------------ analysis
@pytest.fixture
def analyses(samsung):
    rows = []
    for i, week_start in enumerate([dt.date(2026, 2, 23), dt.date(2026, 3, 2), dt.date(2026, 3, 9)]):
        rows.append(
            WeeklyAnalysis.objects.create(
                instrument=samsung, week_start=week_start, iso_week=f"2026-W{9 + i:02d}", trading_days=5,
                close=71_000 + i, weekly_return=0.01 * i, volatility=0.2, skew=0.1, kurtosis=-0.5,
                max_drawdown=-0.02, z_score=1.5 + i, z_window=20,
            )
        )
    Outlier.objects.create(analysis=rows[2], date=dt.date(2026, 3, 10), series="close", method="zscore",
                           value=71_800, score=2.4)
    Outlier.objects.create(analysis=rows[2], date=dt.date(2026, 3, 9), series="volume", method="hampel",
                           value=1_000_007, score=3.6)
    return rows


def test_analysis_rows_with_outliers(api, analyses):
    body = api.get("/api/instruments/005930/analysis/", {"weeks": 2}).json()
    assert body["code"] == "005930"
    assert [w["iso_week"] for w in body["weeks"]] == ["2026-W11", "2026-W10"]
    latest = body["weeks"][0]
    assert latest["z_score"] == 3.5
    assert latest["weekly_return"] == 0.02
    assert latest["outliers"] == [
        {"date": "2026-03-09", "series": "volume", "method": "hampel", "value": 1_000_007.0, "score": 3.6},
        {"date": "2026-03-10", "series": "close", "method": "zscore", "value": 71_800.0, "score": 2.4},
    ]
    assert body["weeks"][1]["outliers"] == []
    assert len(api.get("/api/instruments/005930/analysis/").json()["weeks"]) == 3  # default 12


@pytest.mark.parametrize("weeks", ["0", "-1", "abc", "521", "1.5"])
def test_analysis_bad_weeks_is_400(api, analyses, weeks):
    response = api.get("/api/instruments/005930/analysis/", {"weeks": weeks})
    assert response.status_code == 400
    assert "weeks" in response.json()["detail"]


def test_analysis_unknown_code_and_empty(api):
    assert api.get("/api/instruments/999999/analysis/").status_code == 404
    InstrumentFactory(code="123450")
    assert api.get("/api/instruments/123450/analysis/").json() == {"code": "123450", "weeks": []}


def test_market_endpoints_require_authentication(samsung):
    client = APIClient()
    for url in ("/api/instruments/", "/api/instruments/005930/", "/api/instruments/005930/bars/",
                "/api/instruments/005930/quote/", "/api/instruments/005930/analysis/"):
        assert client.get(url).status_code == 401, url


def test_schema_documents_the_market_endpoints(api):
    schema = api.get("/api/schema/", {"format": "json"}).json()
    paths = schema["paths"]
    for path in ("/prices/{symbol}", "/api/instruments/", "/api/instruments/{code}/",
                 "/api/instruments/{code}/bars/", "/api/instruments/{code}/quote/",
                 "/api/instruments/{code}/analysis/"):
        assert "get" in paths[path], path
    prices = paths["/prices/{symbol}"]["get"]
    assert {p["name"] for p in prices["parameters"]} >= {"symbol", "start", "end"}
    assert set(prices["responses"]) >= {"200", "400", "404"}
    assert {p["name"] for p in paths["/api/instruments/"]["get"]["parameters"]} >= {"q", "page"}
    assert {p["name"] for p in paths["/api/instruments/{code}/bars/"]["get"]["parameters"]} >= {"fields", "start"}
    assert set(paths["/api/instruments/{code}/quote/"]["get"]["responses"]) >= {"200", "404", "409", "502"}
    assert "weeks" in {p["name"] for p in paths["/api/instruments/{code}/analysis/"]["get"]["parameters"]}
    components = schema["components"]["schemas"]
    assert "prices" in components["Prices"]["properties"]
    for component in ("Prices", "Instrument", "InstrumentDetail", "Bars", "Bar"):
        assert "source" in components[component]["properties"], component
    assert "bar_sources" in components["InstrumentDetail"]["properties"]
    assert {"prices", "source"} <= set(components["Prices"]["required"])
    assert [c["enum"] for c in components.values() if set(c.get("enum", ())) == {"demo", "csv", "kis"}]
    assert "outliers" in components["WeeklyAnalysis"]["properties"]
