"""The 전략 and 백테스트 pages: configs (generated form, bounds errors, HTMX parameter fields,
activate/deactivate, delete), backtests run from the page (inline Celery), the run page, comparison,
parameter sweeps; other users' objects are 404."""

import datetime as dt
import io
import json
import re

import pytest
from django.core.management import call_command
from django.urls import reverse
from django.utils import timezone

from market.models import DailyBar
from strategies import selectors
from strategies.models import BacktestRun, BacktestSweep, StrategyConfig
from strategies.services import create_backtest_run

pytestmark = pytest.mark.django_db

CODES = "005930, 000660, 035720"
START, END = "2025-01-01", "2026-10-30"


@pytest.fixture(autouse=True)
def eager(settings):
    settings.CELERY_TASK_ALWAYS_EAGER = True


@pytest.fixture
def demo_bars():
    call_command("demo_data", symbols=5, years=3, end=END, stdout=io.StringIO())


@pytest.fixture
def logged_in(client, user):
    client.force_login(user)
    return client


def config_data(**overrides) -> dict:
    data = {
        "name": "주간 평균회귀", "strategy_key": "mean_reversion", "param_window": "20", "param_z_threshold": "2.0",
        "param_stop_loss": "-0.05", "param_take_profit": "0.11", "universe_mode": "codes",
        "universe_codes": "005930 000660", "universe_top_n": "200", "max_positions": "5",
        "cash_per_week": "10000000", "broker_account": "",
    }
    return {**data, **overrides}


def backtest_data(**overrides) -> dict:
    data = {
        "strategy_key": "mean_reversion", "param_window": "15", "param_z_threshold": "1.5",
        "param_stop_loss": "-0.05", "param_take_profit": "0.11", "codes": CODES, "config": "", "start": START,
        "end": END, "initial_cash": "10000000", "max_positions": "10", "commission": "", "tax": "",
        "slippage_ticks": "0",
    }
    return {**data, **overrides}


def make_config(owner, **fields) -> StrategyConfig:
    values = {"name": "내 전략", "strategy_key": "mean_reversion", "params": {"window": 20}, "universe_mode": "codes",
              "universe_codes": "005930,000660"}
    return StrategyConfig.objects.create(owner=owner, **{**values, **fields})


def finished_run(owner, **options) -> BacktestRun:
    values = {"strategy_key": "mean_reversion", "params": {"window": 15, "z_threshold": 1.5},
              "codes": CODES.replace(" ", "").split(","), "start": dt.date(2025, 1, 1), "end": dt.date(2026, 10, 30)}
    run = create_backtest_run(owner, **{**values, **options})
    from strategies.tasks import start_backtest

    start_backtest(run)
    run.refresh_from_db()
    return run


def json_script(response, element_id: str) -> dict:
    match = re.search(rf'<script id="{element_id}" type="application/json">(.*?)</script>', response.content.decode())
    assert match, f"no {element_id}"
    return json.loads(match.group(1))


# ------------------------------------------------------------------------------------------- 전략


def test_strategies_page_requires_login(client):
    response = client.get(reverse("strategies:index"))
    assert response.status_code == 302 and "/accounts/login/" in response["Location"]


def test_empty_strategy_list_is_korean(logged_in):
    response = logged_in.get(reverse("strategies:index"))
    assert response.status_code == 200
    assert "아직 전략이 없습니다" in response.content.decode()


def test_create_a_strategy_with_the_generated_form(logged_in, user, instruments):
    page = logged_in.get(reverse("strategies:config_create")).content.decode()
    assert 'name="param_window"' in page and 'name="param_z_threshold"' in page
    assert 'hx-get="/strategies/params/?form=config"' in page  # the select reloads the parameter fields
    assert '<option value="mean_reversion" selected>' in page  # the strategy whose fields are shown

    response = logged_in.post(reverse("strategies:config_create"), config_data(param_window="30"))
    assert response.status_code == 302 and response["Location"] == reverse("strategies:index")
    config = StrategyConfig.objects.get(owner=user)
    assert config.params == {"window": 30, "z_threshold": 2.0, "stop_loss": -0.05, "take_profit": 0.11}
    assert config.code_list == ["005930", "000660"]

    listing = logged_in.get(reverse("strategies:index")).content.decode()
    assert "주간 평균회귀" in listing and "평균회귀 (Z-점수)" in listing and "비활성" in listing
    assert "2종목: 005930, 000660" in listing


def test_bounds_errors_are_shown_on_the_form(logged_in, user):
    response = logged_in.post(
        reverse("strategies:config_create"), config_data(param_window="1", param_z_threshold="11")
    )
    assert response.status_code == 200
    page = response.content.decode()
    assert "&#x27;기간&#x27;(window) 값은 2 이상 250 이하이어야 합니다 (입력값: 1)" in page
    assert "Z 임계값" in page and "0.1 이상 10 이하" in page
    assert not StrategyConfig.objects.exists()


def test_cross_parameter_rule_and_duplicate_name_are_form_errors(logged_in, user):
    make_config(user, name="중복")
    data = {
        **config_data(name="중복", strategy_key="ma_crossover", param_short_window="30", param_long_window="20",
                      param_mode="cross"),
    }
    del data["param_window"], data["param_z_threshold"]
    page = logged_in.post(reverse("strategies:config_create"), data).content.decode()
    assert "같은 이름의 전략이 이미 있습니다" in page
    assert StrategyConfig.objects.count() == 1


def test_edit_keeps_the_stored_parameters_and_saves_changes(logged_in, user, instruments):
    config = make_config(user, params={"window": 25, "z_threshold": 1.8})
    page = logged_in.get(reverse("strategies:config_edit", args=[config.pk])).content.decode()
    assert 'name="param_window" value="25"' in page
    response = logged_in.post(
        reverse("strategies:config_edit", args=[config.pk]), config_data(name="내 전략", param_window="40")
    )
    assert response.status_code == 302
    config.refresh_from_db()
    assert config.params["window"] == 40 and config.max_positions == 5


def test_parameter_fields_partial_follows_the_chosen_strategy(logged_in, user):
    config = make_config(user, params={"window": 25})
    url = reverse("strategies:param_fields")
    rsi = logged_in.get(url, {"form": "config", "strategy_key": "rsi"}).content.decode()
    assert 'name="param_period"' in rsi and 'name="param_window"' not in rsi and "RSI 기간" in rsi
    own = logged_in.get(url, {"form": "config", "strategy_key": "mean_reversion", "config": config.pk}).content.decode()
    assert 'name="param_window" value="25"' in own
    sweep = logged_in.get(url, {"form": "sweep", "strategy_key": "bollinger"}).content.decode()
    assert 'name="param_num_std"' in sweep and "쉼표로 구분한 값" in sweep


def test_activate_and_deactivate_with_htmx(logged_in, user):
    config = make_config(user)
    url = reverse("strategies:config_active", args=[config.pk])
    row = logged_in.post(url, {"active": "1"}, HTTP_HX_REQUEST="true").content.decode()
    assert row.startswith(f'<tr id="config-{config.pk}"') and "badge-active" in row and "비활성화" in row
    config.refresh_from_db()
    assert config.is_active
    logged_in.post(url, {"active": "0"}, HTTP_HX_REQUEST="true")
    config.refresh_from_db()
    assert not config.is_active
    assert logged_in.get(url).status_code == 405


def test_delete_a_strategy(logged_in, user):
    config = make_config(user)
    response = logged_in.post(reverse("strategies:config_delete", args=[config.pk]), HTTP_HX_REQUEST="true")
    assert response.status_code == 200 and response.content == b""
    assert not StrategyConfig.objects.filter(pk=config.pk).exists()


def test_a_strategy_with_orders_on_record_is_kept(logged_in, user):
    from accounts.tests.factories import BrokerAccountFactory

    config = make_config(user)
    config.orders.create(
        broker_account=BrokerAccountFactory(owner=user), client_order_id="c-test-1", trading_date=dt.date(2026, 11, 2),
        code="005930", side="buy", quantity=1, reason="entry", intent_at=timezone.now(),
    )
    response = logged_in.post(reverse("strategies:config_delete", args=[config.pk]), HTTP_HX_REQUEST="true")
    assert response.status_code == 200 and response["HX-Redirect"] == reverse("strategies:index")
    assert StrategyConfig.objects.filter(pk=config.pk).exists()
    page = logged_in.get(reverse("strategies:index")).content.decode()
    assert "주문 기록이 있어" in page


def test_other_users_objects_are_404(logged_in, other_user, demo_bars):
    config = make_config(other_user)
    run = finished_run(other_user)
    sweep = BacktestSweep.objects.create(owner=other_user, strategy_key="mean_reversion", grid={"window": [10]})
    for method, name, args in [
        ("get", "config_edit", [config.pk]), ("post", "config_edit", [config.pk]),
        ("post", "config_active", [config.pk]), ("post", "config_delete", [config.pk]),
        ("get", "run_detail", [run.pk]), ("get", "run_status", [run.pk]),
        ("get", "sweep_detail", [sweep.pk]), ("get", "sweep_results", [sweep.pk]),
    ]:
        response = getattr(logged_in, method)(reverse(f"strategies:{name}", args=args))
        assert response.status_code == 404, name
    assert logged_in.get(reverse("strategies:compare"), {"run": [run.pk, run.pk]}).status_code == 404
    assert logged_in.get(reverse("strategies:param_fields"), {"config": config.pk}).status_code == 404
    assert logged_in.get(reverse("strategies:backtests"), {"config": config.pk}).status_code == 404
    config.refresh_from_db()
    assert not config.is_active


# ---------------------------------------------------------------------------------------- 백테스트


def test_backtests_page_empty_states(logged_in):
    page = logged_in.get(reverse("strategies:backtests")).content.decode()
    assert "아직 백테스트가 없습니다" in page and "아직 파라미터 스윕이 없습니다" in page
    assert 'name="param_window"' in page and 'name="codes"' in page


def test_run_a_backtest_from_the_page(logged_in, user, demo_bars):
    response = logged_in.post(reverse("strategies:backtests"), backtest_data())
    run = BacktestRun.objects.get(owner=user)
    assert response.status_code == 302 and response["Location"] == reverse("strategies:run_detail", args=[run.pk])
    assert run.status == "done" and run.params["window"] == 15 and run.codes == ["005930", "000660", "035720"]
    assert run.trades, "a 1.5σ threshold over two years trades"

    response = logged_in.get(response["Location"])
    page = response.content.decode()
    assert 'id="metric-cards"' in page
    for label in ("총수익률", "연평균 수익률(CAGR)", "변동성", "샤프 지수", "소르티노 지수", "최대 낙폭", "승률",
                  "평균 수익", "평균 손실", "회전율", "시장 노출도", "매수 후 보유"):
        assert label in page, label
    assert f"{run.metrics['total_return'] * 100:+.2f}%" in page
    assert f"{run.benchmark['total_return'] * 100:+.2f}%" in page
    assert run.metrics["max_drawdown_peak"] in page and run.metrics["max_drawdown_trough"] in page
    assert 'id="trades-table" data-sortable' in page
    assert page.count('<td data-value="' + run.trades[0]["code"]) >= 1
    assert 'id="monthly-returns"' in page
    assert "hx-trigger=\"every 1s\"" not in page

    chart = json_script(response, "run-chart-data")
    assert chart["dates"] == [day for day, _value in run.equity]
    assert chart["equity"][0] == 10_000_000
    assert chart["benchmark"][-1] == pytest.approx(run.benchmark["final"], rel=1e-9)  # buy-and-hold, same dates
    assert min(chart["drawdown"]) == pytest.approx(run.metrics["max_drawdown"], abs=1e-6)


def test_backtest_form_errors(logged_in, user, demo_bars):
    url = reverse("strategies:backtests")
    page = logged_in.post(url, backtest_data(param_window="1")).content.decode()
    assert "값은 2 이상 250 이하이어야 합니다" in page
    page = logged_in.post(url, backtest_data(codes="005930, 999999")).content.decode()
    assert "알 수 없는 종목코드입니다: 999999" in page
    page = logged_in.post(url, backtest_data(codes="")).content.decode()
    assert "종목코드를 하나 이상 입력하거나 전략의 유니버스를 선택하세요" in page
    page = logged_in.post(url, backtest_data(start=END, end=START)).content.decode()
    assert "종료일은 시작일보다 뒤여야 합니다" in page
    assert not BacktestRun.objects.exists()


def test_backtest_on_a_configs_universe(logged_in, user, demo_bars):
    config = make_config(user, universe_codes="005930 035720", max_positions=3, params={"window": 12})
    page = logged_in.get(reverse("strategies:backtests"), {"config": config.pk}).content.decode()
    assert 'name="param_window" value="12"' in page and f'<option value="{config.pk}" selected>' in page
    response = logged_in.post(reverse("strategies:backtests"), backtest_data(codes="", config=str(config.pk)))
    assert response.status_code == 302
    run = BacktestRun.objects.get()
    assert run.codes == ["005930", "035720"] and run.config == config


def test_commission_and_tax_overrides_reach_the_run(logged_in, user, demo_bars):
    logged_in.post(reverse("strategies:backtests"), backtest_data(commission="0.00015", tax="0.002", slippage_ticks="1"))
    run = BacktestRun.objects.get()
    assert str(run.commission) == "0.00015000" and str(run.tax) == "0.00200000" and run.slippage_ticks == 1
    assert run.status == "done"
    assert all(trade["tax"] == pytest.approx(trade["exit_price"] * trade["shares"] * 0.002, abs=1) for trade in run.trades)


def test_pending_run_polls_and_reloads_when_done(logged_in, user, demo_bars):
    run = create_backtest_run(user, strategy_key="mean_reversion", params={}, codes=["005930"],
                              start=dt.date(2025, 1, 1), end=dt.date(2026, 10, 30))
    BacktestRun.objects.filter(pk=run.pk).update(status="running", progress=40)
    page = logged_in.get(reverse("strategies:run_detail", args=[run.pk])).content.decode()
    assert 'hx-trigger="every 1s"' in page and 'aria-valuenow="40"' in page and "width: 40%" in page
    status_url = reverse("strategies:run_status", args=[run.pk])
    partial = logged_in.get(status_url, HTTP_HX_REQUEST="true")
    assert 'hx-trigger="every 1s"' in partial.content.decode() and "HX-Refresh" not in partial
    BacktestRun.objects.filter(pk=run.pk).update(status="done", progress=100)
    assert logged_in.get(status_url, HTTP_HX_REQUEST="true")["HX-Refresh"] == "true"


def test_failed_run_shows_its_error(logged_in, user, demo_bars):
    run = create_backtest_run(user, strategy_key="mean_reversion", params={}, codes=["005930"],
                              start=dt.date(2025, 1, 1), end=dt.date(2026, 10, 30))
    DailyBar.objects.filter(instrument__code="005930").delete()  # the bars went away before the run
    from strategies.tasks import start_backtest

    start_backtest(run)
    run.refresh_from_db()
    assert run.status == "failed"
    page = logged_in.get(reverse("strategies:run_detail", args=[run.pk])).content.decode()
    assert "백테스트가 실패했습니다" in page and "저장된 일봉이 없습니다" in page
    assert 'id="metric-cards"' not in page


def test_runs_list_and_compare_two_runs(logged_in, user, demo_bars):
    first = finished_run(user)
    second = finished_run(user, params={"window": 30, "z_threshold": 2.0})
    listing = logged_in.get(reverse("strategies:backtests")).content.decode()
    assert f'name="run" value="{first.pk}"' in listing and f'name="run" value="{second.pk}"' in listing
    assert 'id="compare-form"' in listing

    response = logged_in.get(reverse("strategies:compare"), {"run": [first.pk, second.pk]})
    page = response.content.decode()
    assert response.status_code == 200 and 'id="compare-table"' in page
    assert f"{first.metrics['total_return'] * 100:+.2f}%" in page
    assert f"{second.metrics['total_return'] * 100:+.2f}%" in page
    chart = json_script(response, "compare-chart-data")
    assert [series["label"] for series in chart["series"]] == [f"#{first.pk} 평균회귀 (Z-점수)",
                                                                f"#{second.pk} 평균회귀 (Z-점수)"]
    assert chart["series"][0]["values"][-1] == first.metrics["final"]
    assert chart["series"][1]["values"][-1] == second.metrics["final"]

    only_one = logged_in.get(reverse("strategies:compare"), {"run": [first.pk]}).content.decode()
    assert "비교할 백테스트를 두 개 선택하세요" in only_one


def test_compare_page_without_runs(logged_in):
    page = logged_in.get(reverse("strategies:compare")).content.decode()
    assert "완료된 백테스트가 아직 없습니다" in page


# --------------------------------------------------------------------------------------------- sweeps


# (the sweep pages: strategies/tests/test_sweeps.py)


# ------------------------------------------------------------------ one set of rules for the settings


def test_unknown_codes_are_named_in_korean_and_nothing_is_stored(logged_in, user, instruments):
    response = logged_in.post(
        reverse("strategies:config_create"), config_data(universe_codes="005930 999999 AAAAAA 12 <script>x</script>")
    )
    assert response.status_code == 200
    assert response.context["form"].errors["universe_codes"] == [
        "알 수 없는 종목코드입니다: 999999, AAAAAA, 12, <script>x</script>"]
    assert "&lt;script&gt;x&lt;/script&gt;" in response.content.decode()
    assert not StrategyConfig.objects.exists()


def test_duplicate_codes_count_once(logged_in, user, instruments):
    response = logged_in.post(reverse("strategies:config_create"), config_data(universe_codes="005930 005930,000660"))
    assert response.status_code == 302
    assert StrategyConfig.objects.get().universe_codes == "005930, 000660"
    assert "2종목: 005930, 000660" in logged_in.get(reverse("strategies:index")).content.decode()


@pytest.mark.parametrize(("field", "value"), [
    ("cash_per_week", "-5"), ("max_positions", "999999999999"), ("universe_top_n", str(2**63 - 1)),
    ("max_positions", "0"),
])
def test_amounts_and_counts_outside_the_bounds_are_form_errors(logged_in, user, instruments, field, value):
    response = logged_in.post(reverse("strategies:config_create"), config_data(**{field: value}))
    assert response.status_code == 200
    assert list(response.context["form"].errors) == [field]
    assert not StrategyConfig.objects.exists()


def test_editing_to_a_bad_value_changes_nothing(logged_in, user, instruments):
    config = make_config(user, cash_per_week=5_000_000)
    response = logged_in.post(
        reverse("strategies:config_edit", args=[config.pk]),
        config_data(name=config.name, cash_per_week="-5", universe_codes="005930 999999"),
    )
    assert set(response.context["form"].errors) == {"cash_per_week", "universe_codes"}
    config.refresh_from_db()
    assert config.cash_per_week == 5_000_000 and config.universe_codes == "005930,000660"


@pytest.mark.parametrize(("start", "end", "field"), [
    ("1900-01-01", "1900-06-30", "start"), ("2030-01-01", "2030-06-30", "start"), ("1900-01-01", END, "start"),
    (START, "2030-06-30", "end"),
])
def test_a_period_outside_the_stored_bars_is_refused_with_their_range(logged_in, user, demo_bars, start, end, field):
    first, last = selectors.bar_period()
    top_n = make_config(user, universe_mode="top_traded", universe_codes="", universe_top_n=3)
    for data in (backtest_data(start=start, end=end), backtest_data(start=start, end=end, codes="", config=top_n.pk)):
        response = logged_in.post(reverse("strategies:backtests"), data)
        assert response.status_code == 200
        [message] = response.context["form"].errors[field]
        assert "저장된 일봉 기간" in message and f"{first} ~ {last}" in message
    assert not BacktestRun.objects.exists()


def test_the_form_defaults_to_a_period_with_bars(logged_in, demo_bars):
    form = logged_in.get(reverse("strategies:backtests")).context["form"]
    first, last = selectors.bar_period()
    assert form["end"].initial == last and first <= form["start"].initial < last


def _weekly_spending(run) -> dict:
    spent: dict[str, int] = {}
    for trade in run.trades:
        spent[trade["entry_date"]] = spent.get(trade["entry_date"], 0) + trade["entry_price"] * trade["shares"]
    return spent


def test_backtest_this_config_uses_every_setting_of_the_config(logged_in, user, demo_bars):
    config = make_config(user, params={"window": 12, "z_threshold": 1.5}, universe_codes="005930 000660 035720",
                         max_positions=3, cash_per_week=2_000_000)
    page = logged_in.get(reverse("strategies:backtests"), {"config": config.pk}).content.decode()
    assert 'name="param_window" value="12"' in page and 'name="param_z_threshold" value="1.5"' in page
    assert 'name="max_positions" value="3"' in page and 'name="cash_per_week" value="2000000"' in page
    settings = {"codes": "", "config": str(config.pk), "param_window": "12", "param_z_threshold": "1.5",
                "max_positions": "3", "initial_cash": "50000000"}
    logged_in.post(reverse("strategies:backtests"), backtest_data(**settings, cash_per_week="2000000"))
    logged_in.post(reverse("strategies:backtests"), backtest_data(**settings, cash_per_week=""))
    capped, uncapped = BacktestRun.objects.order_by("pk")
    assert (capped.cash_per_week, capped.max_positions, capped.config) == (2_000_000, 3, config)
    assert uncapped.cash_per_week is None and capped.status == uncapped.status == "done"
    assert capped.trades and max(_weekly_spending(capped).values()) <= 2_000_000
    assert max(_weekly_spending(uncapped).values()) > 2_000_000  # 50,000,000 of cash, all of it spent
    page = logged_in.get(reverse("strategies:run_detail", args=[capped.pk])).content.decode()
    assert "주간 투자금" in page and "2,000,000" in page


# ------------------------------------------------------------------------------------- selectors


def test_monthly_returns_and_drawdown():
    equity = [["2025-01-30", 110.0], ["2025-01-31", 105.0], ["2025-02-28", 94.5], ["2026-01-30", 99.225]]
    rows = selectors.monthly_returns(equity, 100.0)
    assert [row["year"] for row in rows] == [2025, 2026]
    assert rows[0]["months"][0]["value"] == pytest.approx(0.05)
    assert rows[0]["months"][1]["value"] == pytest.approx(-0.10)
    assert rows[0]["months"][2]["value"] is None
    assert rows[0]["total"]["value"] == pytest.approx(-0.055)
    assert rows[1]["months"][0]["value"] == pytest.approx(0.05) and rows[1]["total"]["value"] == pytest.approx(0.05)
    assert "217, 45, 32" in rows[0]["months"][0]["style"] and "31, 94, 255" in rows[0]["months"][1]["style"]
    assert selectors.drawdown([100.0, 110.0, 99.0], 100.0) == [0.0, 0.0, pytest.approx(-0.1)]
