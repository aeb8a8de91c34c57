"""Strategies API: the registry, strategy configs (validated by the declarations, owner-scoped),
backtests created and read back (inline Celery)."""

import io

import pytest
from django.core.management import call_command
from rest_framework.test import APIClient

from accounts.tests.factories import BrokerAccountFactory
from strategies.models import BacktestRun, StrategyConfig

pytestmark = pytest.mark.django_db

CODES = ["005930", "000660", "035720"]


@pytest.fixture(autouse=True)
def eager(settings):
    settings.CELERY_TASK_ALWAYS_EAGER = True


@pytest.fixture
def api(user):
    client = APIClient()
    client.force_authenticate(user)
    return client


@pytest.fixture
def other_api(other_user):
    client = APIClient()
    client.force_authenticate(other_user)
    return client


@pytest.fixture
def demo_bars():
    call_command("demo_data", symbols=5, years=3, end="2026-10-30", stdout=io.StringIO())


def config_body(**overrides) -> dict:
    body = {"name": "평균회귀 주간", "strategy_key": "mean_reversion", "params": {"window": 30},
            "universe_mode": "codes", "universe_codes": "005930 000660", "max_positions": 5}
    return {**body, **overrides}


def test_requires_authentication():
    client = APIClient()
    for url in ("/api/strategies/", "/api/strategy-configs/", "/api/backtests/"):
        assert client.get(url).status_code == 401


def test_strategy_registry(api):
    response = api.get("/api/strategies/")
    assert response.status_code == 200
    strategies = {item["key"]: item for item in response.json()}
    assert {"mean_reversion", "ma_crossover", "rsi", "bollinger", "momentum_12_1"} <= set(strategies)
    mean_reversion = strategies["mean_reversion"]
    assert mean_reversion["name"] == "평균회귀 (Z-점수)"
    assert mean_reversion["name_en"] == "Mean reversion (z-score)" and mean_reversion["description_en"]
    assert mean_reversion["description"].startswith("종가의 이동평균")
    window = next(p for p in mean_reversion["parameters"] if p["name"] == "window")
    assert window == {**window, "type": "int", "default": 20, "min": 2, "max": 250, "label": "기간", "label_en": "Window"}
    assert window["help"] and window["help_en"]
    assert [p["name"] for p in mean_reversion["parameters"]][-2:] == ["stop_loss", "take_profit"]


def test_create_and_read_a_config(api, user, instruments):
    response = api.post("/api/strategy-configs/", config_body(), format="json")
    assert response.status_code == 201, response.json()
    body = response.json()
    assert body["params"] == {"window": 30, "z_threshold": 2.0, "stop_loss": -0.05, "take_profit": 0.11}
    config = StrategyConfig.objects.get(pk=body["id"])
    assert config.owner == user and config.max_positions == 5
    assert api.get(f"/api/strategy-configs/{config.pk}/").json()["name"] == "평균회귀 주간"
    assert [item["id"] for item in api.get("/api/strategy-configs/").json()["results"]] == [config.pk]


@pytest.mark.parametrize(
    ("body", "field", "message"),
    [
        ({"params": {"window": 1}}, ("params", "window"), "'기간'(window) 값은 2 이상 250 이하이어야 합니다 (입력값: 1)"),
        ({"params": {"z_threshold": "abc"}}, ("params", "z_threshold"), "숫자여야 합니다"),
        ({"params": {"nope": 3}}, ("params", "nope"), "알 수 없는 파라미터입니다: nope"),
        ({"params": [1, 2]}, ("params",), "딕셔너리"),
        ({"strategy_key": "nope"}, ("strategy_key",), "알 수 없는 전략입니다"),
        ({"strategy_key": "ma_crossover", "params": {"short_window": 30, "long_window": 20}},
         ("params",), ""),
        ({"universe_codes": ""}, ("universe_codes",), "종목코드를 하나 이상"),
        ({"max_positions": 0}, ("max_positions",), ""),
    ],
)
def test_config_validation_is_400_per_field(api, instruments, body, field, message):
    response = api.post("/api/strategy-configs/", config_body(**body), format="json")
    assert response.status_code == 400
    errors = response.json()
    for key in field:
        errors = errors[key]
    if isinstance(errors, dict):  # cross-parameter rule: {name: [message]}
        errors = [m for messages in errors.values() for m in messages]
    assert any(message in text for text in errors), errors
    assert not StrategyConfig.objects.exists()


def test_config_update_validates_and_keeps_params(api, user, instruments):
    config_id = api.post("/api/strategy-configs/", config_body(), format="json").json()["id"]
    response = api.patch(f"/api/strategy-configs/{config_id}/", {"max_positions": 3, "is_active": True}, format="json")
    assert response.status_code == 200 and response.json()["params"]["window"] == 30
    response = api.patch(f"/api/strategy-configs/{config_id}/", {"params": {"window": 999}}, format="json")
    assert response.status_code == 400 and "window" in response.json()["params"]
    response = api.patch(f"/api/strategy-configs/{config_id}/", {"strategy_key": "rsi"}, format="json")
    assert response.status_code == 200 and response.json()["params"]["period"] == 14  # new strategy: its defaults
    duplicate = api.post("/api/strategy-configs/", config_body(), format="json")
    assert duplicate.status_code == 400 and "같은 이름의 전략이 이미 있습니다" in duplicate.json()["name"][0]


def test_configs_are_owner_scoped(api, other_api, other_user):
    theirs = StrategyConfig.objects.create(owner=other_user, name="남의 전략", strategy_key="rsi", params={})
    assert api.get("/api/strategy-configs/").json()["results"] == []
    assert api.get(f"/api/strategy-configs/{theirs.pk}/").status_code == 404
    assert api.patch(f"/api/strategy-configs/{theirs.pk}/", {"name": "x"}, format="json").status_code == 404
    assert api.delete(f"/api/strategy-configs/{theirs.pk}/").status_code == 404
    assert StrategyConfig.objects.get(pk=theirs.pk).name == "남의 전략"
    foreign_account = BrokerAccountFactory(owner=other_user)
    response = api.post("/api/strategy-configs/", config_body(broker_account=foreign_account.pk), format="json")
    assert response.status_code == 400 and "broker_account" in response.json()


def test_delete_a_config(api, instruments):
    config_id = api.post("/api/strategy-configs/", config_body(), format="json").json()["id"]
    assert api.delete(f"/api/strategy-configs/{config_id}/").status_code == 204
    assert not StrategyConfig.objects.exists()


def test_create_and_read_a_backtest(api, user, demo_bars):
    body = {"strategy_key": "mean_reversion", "params": {"window": 15, "z_threshold": 1.5}, "codes": CODES,
            "start": "2025-01-01", "end": "2026-10-30", "commission": "0.00015"}
    response = api.post("/api/backtests/", body, format="json")
    assert response.status_code == 201, response.json()
    run_id = response.json()["id"]
    assert response["Location"] == f"/api/backtests/{run_id}/"
    run = BacktestRun.objects.get(pk=run_id)
    assert run.owner == user and run.params["window"] == 15 and str(run.commission) == "0.00015000"

    detail = api.get(f"/api/backtests/{run_id}/").json()
    assert detail["status"] == "done" and detail["progress"] == 100
    assert {"total_return", "cagr", "sharpe", "max_drawdown", "win_rate"} <= set(detail["metrics"])
    assert detail["trades"] and {"code", "entry_date", "entry_price", "exit_date", "exit_price", "shares", "fees",
                                 "tax", "reason", "return"} <= set(detail["trades"][0])
    assert detail["equity"][0] == [detail["metrics"]["start"], 10_000_000]
    assert detail["benchmark"]["total_return"] is not None

    listing = api.get("/api/backtests/").json()["results"]
    assert [item["id"] for item in listing] == [run_id] and "trades" not in listing[0]


def test_backtest_on_a_configs_universe(api, user, demo_bars):
    config = StrategyConfig.objects.create(owner=user, name="c", strategy_key="mean_reversion",
                                           universe_mode="codes", universe_codes="035720")
    response = api.post("/api/backtests/", {"config": config.pk, "start": "2025-01-01", "end": "2026-10-30"},
                        format="json")
    assert response.status_code == 201 and response.json()["codes"] == ["035720"]


@pytest.mark.parametrize(
    ("overrides", "field", "message"),
    [
        ({"params": {"window": 1}}, "params", "2 이상 250 이하"),
        ({"codes": ["005930", "999999"]}, "codes", "알 수 없는 종목코드입니다: 999999"),
        ({"codes": []}, "codes", "종목코드를 하나 이상"),
        ({"start": "2026-10-30", "end": "2025-01-01"}, "end", "종료일은 시작일보다 뒤여야 합니다"),
        ({"strategy_key": "nope"}, "strategy_key", "알 수 없는 전략입니다"),
        ({"max_positions": 0}, "max_positions", ""),
        ({"commission": "0.5"}, "commission", ""),
    ],
)
def test_backtest_validation_is_400(api, demo_bars, overrides, field, message):
    body = {"strategy_key": "mean_reversion", "codes": CODES, "start": "2025-01-01", "end": "2026-10-30", **overrides}
    response = api.post("/api/backtests/", body, format="json")
    assert response.status_code == 400
    errors = response.json()[field]
    text = " ".join(m for v in (errors.values() if isinstance(errors, dict) else [errors]) for m in v)
    assert message in text
    assert not BacktestRun.objects.exists()


def test_backtests_are_owner_scoped(api, other_api, user, demo_bars):
    run_id = api.post("/api/backtests/", {"codes": CODES, "start": "2025-01-01", "end": "2026-10-30"},
                      format="json").json()["id"]
    assert other_api.get(f"/api/backtests/{run_id}/").status_code == 404
    assert other_api.get("/api/backtests/").json()["results"] == []
    theirs = StrategyConfig.objects.create(owner=user, name="mine", strategy_key="rsi")
    response = other_api.post("/api/backtests/", {"config": theirs.pk, "start": "2025-01-01", "end": "2026-10-30"},
                              format="json")
    assert response.status_code == 400 and "config" in response.json()


# ------------------------------------------------------------------ one set of rules for the settings


@pytest.mark.parametrize(("body", "field", "words"), [
    ({"universe_codes": "005930 999999 AAAAAA 12 <script>"}, "universe_codes",
     "알 수 없는 종목코드입니다: 999999, AAAAAA, 12, <script>"),
    ({"universe_mode": "top_traded", "universe_codes": "999999"}, "universe_codes", "알 수 없는 종목코드입니다: 999999"),
    ({"cash_per_week": -5}, "cash_per_week", "0"),
    ({"cash_per_week": 10**13}, "cash_per_week", "1000000000000"),
    ({"max_positions": 999_999_999_999}, "max_positions", "200"),
    ({"universe_top_n": 2**63 - 1}, "universe_top_n", "3000"),
])
def test_config_settings_outside_the_rules_are_400_and_store_nothing(api, instruments, body, field, words):
    response = api.post("/api/strategy-configs/", config_body(**body), format="json")
    assert response.status_code == 400
    assert list(response.json()) == [field]
    assert any(words in message for message in response.json()[field]), response.json()
    assert not StrategyConfig.objects.exists()


def test_config_codes_are_stored_normalised_and_a_bad_patch_changes_nothing(api, instruments):
    response = api.post("/api/strategy-configs/", config_body(universe_codes="005930 005930, 660"), format="json")
    assert response.status_code == 201 and response.json()["universe_codes"] == "005930, 000660"
    config_id = response.json()["id"]
    for change in ({"universe_codes": "AAAAAA"}, {"max_positions": 201}):
        response = api.patch(f"/api/strategy-configs/{config_id}/", change, format="json")
        assert response.status_code == 400 and set(response.json()) == set(change)
    stored = StrategyConfig.objects.get()
    assert (stored.universe_codes, stored.max_positions) == ("005930, 000660", 5)
    response = api.patch(f"/api/strategy-configs/{config_id}/", {"universe_mode": "top_traded", "universe_codes": ""},
                         format="json")
    assert response.status_code == 200


@pytest.mark.parametrize(("start", "end", "field"), [
    ("1900-01-01", "1900-06-30", "start"), ("2030-01-01", "2030-06-30", "start"), ("2025-01-01", "2030-06-30", "end"),
])
def test_backtest_period_outside_the_stored_bars_is_400_with_their_range(api, user, demo_bars, start, end, field):
    from strategies.selectors import bar_period

    first, last = bar_period()
    top_n = StrategyConfig.objects.create(owner=user, name="top", strategy_key="mean_reversion",
                                          universe_mode="top_traded", universe_top_n=3)
    for body in ({"codes": CODES}, {"config": top_n.pk}):
        response = api.post("/api/backtests/", {**body, "start": start, "end": end}, format="json")
        assert response.status_code == 400
        [message] = response.json()[field]
        assert "저장된 일봉 기간" in message and f"{first} ~ {last}" in message
    assert not BacktestRun.objects.exists()


def test_backtest_of_a_config_takes_every_setting_of_the_config(api, user, demo_bars):
    config = StrategyConfig.objects.create(
        owner=user, name="rsi", strategy_key="rsi", params={"period": 10}, universe_mode="codes",
        universe_codes="005930, 035720", max_positions=3, cash_per_week=2_000_000,
    )
    period = {"start": "2025-01-01", "end": "2026-10-30"}
    response = api.post("/api/backtests/", {"config": config.pk, **period}, format="json")
    assert response.status_code == 201, response.json()
    body = response.json()
    assert (body["strategy_key"], body["params"]["period"], body["codes"]) == ("rsi", 10, ["005930", "035720"])
    assert (body["max_positions"], body["cash_per_week"]) == (3, 2_000_000)
    override = api.post("/api/backtests/", {"config": config.pk, **period, "cash_per_week": None, "max_positions": 5},
                        format="json").json()
    assert (override["cash_per_week"], override["max_positions"]) == (None, 5)
    plain = api.post("/api/backtests/", {"codes": CODES, **period, "cash_per_week": 3_000_000}, format="json").json()
    assert (plain["strategy_key"], plain["cash_per_week"]) == ("mean_reversion", 3_000_000)
    assert BacktestRun.objects.get(pk=plain["id"]).cash_per_week == 3_000_000
    assert api.post("/api/backtests/", {"codes": CODES, **period, "cash_per_week": -5},
                    format="json").status_code == 400


def test_schema_documents_the_strategy_endpoints(api):
    schema = api.get("/api/schema/", {"format": "json"}).json()
    paths = schema["paths"]
    assert {"/api/strategies/", "/api/strategy-configs/", "/api/strategy-configs/{id}/", "/api/backtests/",
            "/api/backtests/{id}/"} <= set(paths)
    assert "post" in paths["/api/backtests/"] and "201" in paths["/api/backtests/"]["post"]["responses"]
    components = schema["components"]["schemas"]
    assert {"Strategy", "ParameterSpec", "StrategyConfig", "BacktestCreateRequest", "BacktestRun", "Trade"} <= set(components)
