"""Sweeps from the page, the API and the service: one shared pass, progress, every set's metrics equal
to its own backtest, the heat map of any two parameters, and the skill-or-luck statistics."""

from __future__ import annotations

import datetime as dt
import io

import pytest
from django.core.management import call_command
from django.urls import reverse
from rest_framework.test import APIClient

from strategies.models import BacktestRun, BacktestSweep
from strategies.services import BacktestInputError, create_backtest_run, execute_backtest_run
from strategies.sweeps import backtest_from_sweep, create_sweep, execute_sweep

pytestmark = pytest.mark.django_db

CODES = ["005930", "000660", "035420", "035720", "005380"]
START, END = dt.date(2025, 1, 1), dt.date(2026, 10, 30)
GRID = {"window": [10, 20], "z_threshold": [1.0, 1.5, 2.0], "stop_loss": [-0.05, -0.1]}


@pytest.fixture(autouse=True)
def eager(settings):
    settings.CELERY_TASK_ALWAYS_EAGER = True


@pytest.fixture
def demo_bars():
    call_command("demo_data", symbols=5, years=3, end=str(END), stdout=io.StringIO())


@pytest.fixture
def logged_in(client, user):
    client.force_login(user)
    return client


@pytest.fixture
def api(user):
    client = APIClient()
    client.force_authenticate(user)
    return client


def finished_sweep(owner, grid=GRID, **options) -> BacktestSweep:
    sweep = create_sweep(owner, strategy_key="mean_reversion", grid=grid, codes=CODES, start=START, end=END,
                         **options)
    return execute_sweep(sweep)


def test_every_set_has_the_metrics_of_its_own_backtest(user, demo_bars):
    sweep = finished_sweep(user, slippage_ticks=1, cash_per_week=3_000_000)
    assert sweep.status == "done" and sweep.progress == 100 and sweep.seconds is not None
    assert len(sweep.results) == 12
    assert sweep.results[0]["params"] == {"stop_loss": -0.05, "window": 10, "z_threshold": 1.0}
    for item in (sweep.results[0], sweep.results[7]):
        run = create_backtest_run(user, strategy_key="mean_reversion", params=item["params"], codes=CODES,
                                  start=START, end=END, slippage_ticks=1, cash_per_week=3_000_000)
        execute_backtest_run(run)
        for key in ("total_return", "sharpe", "max_drawdown", "n_trades", "fees", "tax", "final"):
            assert item["metrics"][key] == pytest.approx(run.metrics[key], rel=1e-12), key
    stats = sweep.statistics
    assert stats["n_sets"] == 12 and 0 <= stats["pbo"]["pbo"] <= 1 and 0 <= stats["deflated_sharpe"]["dsr"] <= 1
    assert stats["explanation"] and isinstance(stats["best_index"], int)


def test_one_set_becomes_a_full_backtest_with_the_sweeps_settings(user, demo_bars):
    sweep = finished_sweep(user, initial_cash=5_000_000, max_positions=3)
    run = backtest_from_sweep(sweep, 4, user)
    assert run.sweep == sweep and run.initial_cash == 5_000_000 and run.max_positions == 3
    assert run.params["window"] == sweep.results[4]["params"]["window"]
    execute_backtest_run(run)
    assert run.metrics["total_return"] == pytest.approx(sweep.results[4]["metrics"]["total_return"], rel=1e-12)
    with pytest.raises(BacktestInputError, match="13번째 조합이 없습니다"):
        backtest_from_sweep(sweep, 12, user)


@pytest.mark.parametrize(
    ("grid", "options", "field", "message"),
    [
        ({"window": [1, 20]}, {}, "grid", "2 이상 250 이하"),
        ({"windowz": [10]}, {}, "grid", "없는 파라미터"),
        ({"window": [10]}, {"start": END, "end": START}, "end", "앞서야 합니다"),
        ({"window": [10]}, {"slippage_ticks": 99}, "slippage_ticks", "슬리피지"),
    ],
)
def test_bad_input_is_refused_with_the_field_and_nothing_is_stored(user, demo_bars, grid, options, field, message):
    values = {"codes": CODES, "start": START, "end": END, **options}
    with pytest.raises(BacktestInputError, match=message) as caught:
        create_sweep(user, strategy_key="mean_reversion", grid=grid, **values)
    assert caught.value.field == field
    assert not BacktestSweep.objects.exists()


def test_a_failure_while_running_is_stored_with_its_message(user, demo_bars):
    sweep = create_sweep(user, strategy_key="mean_reversion", grid={"window": [10]}, codes=CODES, start=START,
                         end=END)
    sweep.settings["codes"] = ["999999"]  # the instrument vanished after the sweep was recorded
    sweep.save()
    with pytest.raises(BacktestInputError):
        execute_sweep(sweep)
    sweep.refresh_from_db()
    assert sweep.status == "failed" and "999999" in sweep.error


# ---------------------------------------------------------------------------------------------- page


def form_data(**overrides) -> dict:
    data = {
        "strategy_key": "mean_reversion", "param_window": "10, 20", "param_z_threshold": "1.0, 1.5, 2.0",
        "param_stop_loss": "-0.05, -0.1", "param_take_profit": "", "codes": ", ".join(CODES), "config": "",
        "start": str(START), "end": str(END), "initial_cash": "10000000", "max_positions": "10", "commission": "",
        "tax": "", "slippage_ticks": "0",
    }
    return {**data, **overrides}


def test_page_runs_the_sweep_and_shows_statistics_heat_map_and_table(logged_in, user, demo_bars):
    response = logged_in.post(reverse("strategies:sweep_create"), form_data())
    sweep = BacktestSweep.objects.get(owner=user)
    assert response.status_code == 302 and response["Location"] == reverse("strategies:sweep_detail", args=[sweep.pk])
    assert sweep.status == "done" and not BacktestRun.objects.exists()  # one pass, not one run per set

    page = logged_in.get(response["Location"]).content.decode()
    assert 'id="sweep-statistics"' in page and "디플레이티드 샤프" in page and "과최적화 확률" in page
    assert f'{sweep.statistics["pbo"]["pbo"] * 100:.0f}%' in page
    assert 'id="sweep-heatmap"' in page and 'hx-trigger="every 1s"' not in page
    # Default axes: the first two swept parameters; the third is held at the best set's value.
    assert 'data-x="window" data-y="stop_loss"' in page and "최고 조합의 값으로 고정" in page
    assert page.count('<td class="num heat') == 2 * 2
    best = sweep.results[sweep.statistics["best_index"]]
    assert f'{best["metrics"]["total_return"] * 100:+.2f}%' in page
    assert page.count("전체 백테스트") >= 12

    other_axes = logged_in.get(reverse("strategies:sweep_results", args=[sweep.pk]),
                               {"x": "z_threshold", "y": "window", "metric": "sharpe"}).content.decode()
    assert 'data-x="z_threshold" data-y="window" data-metric="sharpe"' in other_axes
    assert other_axes.count('<td class="num heat') == 2 * 3


def test_page_polls_while_the_sweep_runs(logged_in, user, demo_bars):
    sweep = create_sweep(user, strategy_key="mean_reversion", grid=GRID, codes=CODES, start=START, end=END)
    BacktestSweep.objects.filter(pk=sweep.pk).update(status="running", progress=40)
    page = logged_in.get(reverse("strategies:sweep_results", args=[sweep.pk])).content.decode()
    assert 'hx-trigger="every 1s"' in page and "40%" in page and 'id="sweep-table"' not in page


def test_full_backtest_button_opens_the_run(logged_in, user, demo_bars):
    sweep = finished_sweep(user)
    response = logged_in.post(reverse("strategies:sweep_set_backtest", args=[sweep.pk, 3]))
    run = BacktestRun.objects.get(sweep=sweep)
    assert response["Location"] == reverse("strategies:run_detail", args=[run.pk]) and run.status == "done"


def test_another_users_sweep_is_not_found(client, other_user, user, demo_bars):
    sweep = finished_sweep(user)
    client.force_login(other_user)
    assert client.get(reverse("strategies:sweep_detail", args=[sweep.pk])).status_code == 404
    assert client.post(reverse("strategies:sweep_set_backtest", args=[sweep.pk, 0])).status_code == 404


def test_page_form_names_a_bad_value(logged_in, user, demo_bars):
    page = logged_in.post(reverse("strategies:sweep_create"), form_data(param_window="1, 20")).content.decode()
    assert "값은 2 이상 250 이하이어야 합니다 (입력값: 1)" in page
    assert not BacktestSweep.objects.exists()


# ----------------------------------------------------------------------------------------------- API


def test_api_creates_runs_and_reads_a_sweep(api, user, demo_bars):
    payload = {"strategy_key": "mean_reversion", "grid": GRID, "codes": CODES, "start": str(START), "end": str(END)}
    response = api.post("/api/sweeps/", payload, format="json")
    assert response.status_code == 201, response.json()
    body = response.json()
    assert body["status"] == "done" and len(body["results"]) == 12 and "pbo" in body["statistics"]
    assert response["Location"].endswith(f"/api/sweeps/{body['id']}/")

    listing = api.get("/api/sweeps/").json()
    rows = listing["results"] if isinstance(listing, dict) else listing
    assert rows[0]["id"] == body["id"] and "results" not in rows[0]

    heatmap = api.get(f"/api/sweeps/{body['id']}/heatmap/", {"x": "z_threshold", "y": "stop_loss",
                                                             "metric": "sharpe"}).json()
    assert heatmap["x"] == "z_threshold" and heatmap["y"] == "stop_loss" and len(heatmap["rows"]) == 2
    assert len(heatmap["rows"][0]["cells"]) == 3 and heatmap["fixed"][0]["value"] in (10, 20)


def test_api_refuses_a_bad_grid_with_a_korean_message(api, demo_bars):
    payload = {"strategy_key": "mean_reversion", "grid": {"window": [1]}, "codes": CODES, "start": str(START),
               "end": str(END)}
    response = api.post("/api/sweeps/", payload, format="json")
    assert response.status_code == 400 and "2 이상 250 이하" in response.json()["grid"][0]
    assert not BacktestSweep.objects.exists()


def test_api_scopes_sweeps_to_their_owner(api, other_user, demo_bars):
    other = create_sweep(other_user, strategy_key="mean_reversion", grid={"window": [10]}, codes=CODES,
                         start=START, end=END)
    assert api.get(f"/api/sweeps/{other.pk}/").status_code == 404
    assert api.get(f"/api/sweeps/{other.pk}/heatmap/").status_code == 404


def test_grid_values_are_stored_as_the_engine_reads_them(api, demo_bars):
    """Strings and repeats from an API client are converted and dropped, so the heat map finds every cell."""
    payload = {"strategy_key": "mean_reversion", "grid": {"window": ["10", 20, "20"], "z_threshold": ["1.5", 2]},
               "codes": CODES, "start": str(START), "end": str(END)}
    body = api.post("/api/sweeps/", payload, format="json").json()
    assert body["grid"] == {"window": [10, 20], "z_threshold": [1.5, 2.0]} and len(body["results"]) == 4
    heatmap = api.get(f"/api/sweeps/{body['id']}/heatmap/").json()
    assert all(cell["value"] is not None for row in heatmap["rows"] for cell in row["cells"])
