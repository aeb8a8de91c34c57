"""Walk-forward on stored bars: the service (create, execute, failures stored), manage.py walk_forward,
the page (form → task → detail with the results partial) and the API; other users' runs are 404."""

import datetime as dt
import io
import json
import re

import numpy as np
import pytest
from django.core.management import CommandError, call_command
from django.urls import reverse
from rest_framework.test import APIClient

from market.models import DailyBar
from strategies.library.base import ParameterError
from strategies.models import WalkForwardRun
from strategies.services import BacktestInputError, create_backtest_run, execute_backtest_run
from strategies.walk_forward import create_walk_forward, execute_walk_forward

pytestmark = pytest.mark.django_db

CODES = ["005930", "000660", "035720"]
GRID = {"window": [10, 20], "z_threshold": [1.5, 2.0]}
START, END = dt.date(2024, 6, 3), dt.date(2026, 10, 30)  # 127 ISO weeks: 52 + 26 → windows at 52, 78, 104


@pytest.fixture(autouse=True)
def eager(settings):
    settings.CELERY_TASK_ALWAYS_EAGER = True


@pytest.fixture
def demo_bars():
    call_command("demo_data", symbols=5, years=3, end=END.isoformat(), stdout=io.StringIO())


def options(**overrides) -> dict:
    values = {"strategy_key": "mean_reversion", "grid": GRID, "in_sample_weeks": 52, "out_of_sample_weeks": 26,
              "codes": CODES, "start": START, "end": END}
    return {**values, **overrides}


def finished(owner, **overrides) -> WalkForwardRun:
    run = create_walk_forward(owner, **options(**overrides))
    return execute_walk_forward(run)


# ------------------------------------------------------------------------------------------ service


def test_walk_forward_end_to_end(user, demo_bars):
    run = finished(user)
    run.refresh_from_db()
    assert (run.status, run.progress, run.error) == ("done", 100, "")
    result = run.result
    assert result["sets"] == 4 and result["names"] == ["window", "z_threshold"]
    windows = result["windows"]
    assert len(windows) == 3
    assert [w["in_sample_weeks"] for w in windows] == [52, 52, 52]
    assert [w["out_of_sample_weeks"] for w in windows[:2]] == [26, 26]
    for window in windows:
        assert set(window["params"]) == {"window", "z_threshold"}
        assert window["params"]["window"] in GRID["window"] and window["params"]["z_threshold"] in GRID["z_threshold"]
    # OOS windows follow each other: the stitched curve runs from the first OOS day to the end
    assert result["equity"][0][0] == windows[0]["out_of_sample_start"]
    assert result["equity"][-1][0] == windows[-1]["out_of_sample_end"] == END.isoformat()
    product = np.prod([1 + w["out_of_sample_return"] for w in windows])
    assert result["equity"][-1][1] == pytest.approx(10_000_000 * product, rel=1e-6)
    summary = result["summary"]
    assert summary["total_return"] == pytest.approx(product - 1, rel=1e-6)
    assert summary["windows"] == 3 and 0 <= summary["choice_changes"] <= 2
    if summary["gap"] is not None:
        assert summary["gap"] == pytest.approx(summary["mean_in_sample_objective"] - summary["mean_out_of_sample_objective"])


def test_an_oos_window_is_the_chosen_sets_own_backtest(user, demo_bars):
    """The stitched window return is the chosen parameters' single backtest over the whole period,
    read over the window's days (its continuous run, positions held at the window's start included)."""
    run = finished(user)
    window = run.result["windows"][1]
    single = create_backtest_run(user, strategy_key="mean_reversion", params=window["params"], codes=CODES,
                                 start=START, end=END)
    equity = dict(map(tuple, execute_backtest_run(single).equity))
    days = sorted(equity)
    before = days[days.index(window["out_of_sample_start"]) - 1]
    expected = equity[window["out_of_sample_end"]] / equity[before] - 1
    assert window["out_of_sample_return"] == pytest.approx(expected, rel=1e-9, abs=1e-12)


def test_anchored_windows_start_at_the_first_week(user, demo_bars):
    rolling = finished(user)
    anchored = finished(user, anchored=True, objective="total_return")
    starts = {w["in_sample_start"] for w in anchored.result["windows"]}
    assert starts == {rolling.result["windows"][0]["in_sample_start"]}
    assert [w["in_sample_weeks"] for w in anchored.result["windows"]] == [52, 78, 104]
    assert [w["out_of_sample_start"] for w in anchored.result["windows"]] == [
        w["out_of_sample_start"] for w in rolling.result["windows"]]
    assert anchored.anchored and anchored.objective == "total_return"


@pytest.mark.parametrize(
    ("overrides", "error", "message", "bars"),
    [
        ({"grid": {"window": [10, 1]}}, ParameterError, "기간", False),
        ({"grid": {}}, BacktestInputError, "그리드", False),
        ({"grid": {"nope": [1]}}, ParameterError, "nope", False),
        ({"codes": ["999999"]}, BacktestInputError, "999999", False),
        ({"in_sample_weeks": 0}, BacktestInputError, "학습 기간", False),
        ({"objective": "sortino"}, BacktestInputError, "목표 지표", False),
        ({"strategy_key": "nope"}, BacktestInputError, "nope", False),
        ({"start": dt.date(2026, 1, 5)}, BacktestInputError, r"기간이 너무 짧습니다: 2026-01-05 ~ 2026-10-30은\(는\) 43주",
         True),
        ({"end": dt.date(2030, 1, 1)}, BacktestInputError, "저장된 일봉 기간 밖입니다", True),
    ],
)
def test_bad_inputs_are_refused_before_anything_is_stored(request, user, overrides, error, message, bars):
    request.getfixturevalue("demo_bars" if bars else "instruments")  # the known codes, with or without bars
    with pytest.raises(error, match=message):
        create_walk_forward(user, **options(**overrides))
    assert not WalkForwardRun.objects.exists()


def test_a_failure_while_running_is_stored_with_its_message(user, demo_bars):
    run = create_walk_forward(user, **options())
    DailyBar.objects.filter(instrument__code__in=CODES).delete()  # the bars went away before the run
    with pytest.raises(BacktestInputError):
        execute_walk_forward(run)
    run.refresh_from_db()
    assert run.status == "failed" and "저장된 일봉이 없습니다" in run.error and run.finished_at is not None
    assert run.result is None


def test_too_few_traded_weeks_fail_with_the_count(user, demo_bars):
    # 6 calendar weeks from a Wednesday: the first week is not traded (trading starts with the first
    # week whose first day is on or after the start), so 5 traded weeks for 4 + 2.
    run = create_walk_forward(user, **options(start=dt.date(2026, 9, 16), end=dt.date(2026, 10, 23),
                                              in_sample_weeks=4, out_of_sample_weeks=2))
    with pytest.raises(ValueError, match="기간이 너무 짧습니다"):
        execute_walk_forward(run)
    run.refresh_from_db()
    assert run.status == "failed" and "거래일이 있는 주가 5주" in run.error and "4주 + 검증 2주" in run.error


# ------------------------------------------------------------------------------------------ command


def test_command_prints_the_windows_the_gap_and_the_summary(demo_bars):
    out = io.StringIO()
    call_command("walk_forward", "--strategy", "mean_reversion", "--grid", "window=10,20", "--grid",
                 "z_threshold=1.5,2.0", "--codes", ",".join(CODES), "--start", START.isoformat(), "--end",
                 END.isoformat(), "--in-sample-weeks", "52", "--out-of-sample-weeks", "26", stdout=out)
    text = out.getvalue()
    for words in ("학습 기간", "검증 기간", "선택한 파라미터", "차이(gap)", "워크포워드 효율", "총수익률", "최대 낙폭"):
        assert words in text
    run = WalkForwardRun.objects.get()
    assert run.status == "done" and run.owner is None
    for window in run.result["windows"]:
        assert f"window={window['params']['window']} z_threshold={window['params']['z_threshold']}" in text


def test_command_json_and_anchored(demo_bars):
    out = io.StringIO()
    call_command("walk_forward", grid=["window=10,20"], codes=",".join(CODES), start=START.isoformat(),
                 end=END.isoformat(), in_sample_weeks=52, out_of_sample_weeks=26, anchored=True,
                 objective="calmar", json=True, stdout=out)
    payload = json.loads(out.getvalue())
    assert payload["anchored"] is True and payload["objective"] == "calmar"
    assert len(payload["windows"]) == 3 and payload["equity"]


@pytest.mark.parametrize(
    ("args", "message"),
    [(["--grid", "window=10,20", "--in-sample-weeks", "104", "--out-of-sample-weeks", "52"], "기간이 너무 짧습니다"),
     (["--grid", "window=1"], "기간"), (["--grid", "window"], "--grid takes"), ([], "--grid")],
)
def test_command_errors_are_clear(demo_bars, args, message):
    with pytest.raises(CommandError, match=message):
        call_command("walk_forward", *args, "--codes", ",".join(CODES), "--start", START.isoformat(),
                     "--end", END.isoformat(), stdout=io.StringIO())


# --------------------------------------------------------------------------------------------- page


def form_data(**overrides) -> dict:
    data = {
        "strategy_key": "mean_reversion", "param_window": "10, 20", "param_z_threshold": "1.5, 2.0",
        "param_stop_loss": "", "param_take_profit": "", "codes": ", ".join(CODES), "config": "",
        "start": START.isoformat(), "end": END.isoformat(), "initial_cash": "10000000", "max_positions": "10",
        "commission": "", "tax": "", "slippage_ticks": "0", "in_sample_weeks": "52", "out_of_sample_weeks": "26",
        "objective": "sharpe",
    }
    return {**data, **overrides}


def test_page_runs_a_walk_forward_and_shows_the_results(client, user, other_user, demo_bars):
    client.force_login(user)
    page = client.get(reverse("strategies:walk_forward_create"))
    assert page.status_code == 200 and 'name="in_sample_weeks"' in page.content.decode()
    assert reverse("strategies:walk_forward_create") in client.get(reverse("strategies:backtests")).content.decode()
    response = client.post(reverse("strategies:walk_forward_create"), form_data(anchored="on"))
    run = WalkForwardRun.objects.get()
    assert response.status_code == 302 and response["Location"] == reverse("strategies:walk_forward_detail",
                                                                            args=[run.pk])
    assert run.owner == user and run.anchored and run.status == "done"  # the task ran inline
    detail = client.get(response["Location"])
    html = detail.content.decode()
    assert 'id="walk-forward-windows"' in html and 'id="walk-forward-gap"' in html
    assert f"워크포워드 #{run.pk}" in html and "차이가 뜻하는 것" in html and "누적(앵커드)" in html  # Korean first
    assert "walk_forward.js" in html
    chart = json.loads(re.search(r'<script id="walk-forward-chart-data" type="application/json">(.*?)</script>',
                                 html).group(1))
    assert chart["dates"] == [day for day, _ in run.result["equity"]]
    assert chart["equity"][-1] == run.result["equity"][-1][1]
    assert html.count('<tr data-set="') == len(run.result["windows"])
    partial = client.get(reverse("strategies:walk_forward_results", args=[run.pk]), HTTP_HX_REQUEST="true")
    assert partial.status_code == 200 and "hx-trigger" not in partial.content.decode()  # finished: no polling
    assert f"#{run.pk}" in client.get(reverse("strategies:walk_forward_create")).content.decode()
    # another user's run is a 404, on the page and the partial
    client.force_login(other_user)
    assert client.get(reverse("strategies:walk_forward_detail", args=[run.pk])).status_code == 404
    assert client.get(reverse("strategies:walk_forward_results", args=[run.pk])).status_code == 404


def test_page_shows_progress_while_running_and_the_error_when_failed(client, user, demo_bars):
    client.force_login(user)
    run = create_walk_forward(user, **options())
    partial = client.get(reverse("strategies:walk_forward_results", args=[run.pk])).content.decode()
    assert 'hx-trigger="every 1s"' in partial and 'role="progressbar"' in partial
    WalkForwardRun.objects.filter(pk=run.pk).update(status="failed", error="기간이 너무 짧습니다: 테스트")
    page = client.get(reverse("strategies:walk_forward_detail", args=[run.pk])).content.decode()
    assert 'id="walk-forward-error"' in page and "기간이 너무 짧습니다: 테스트" in page


def test_page_errors_stay_on_the_form(client, user, demo_bars):
    client.force_login(user)
    response = client.post(reverse("strategies:walk_forward_create"),
                           form_data(start="2026-01-05", in_sample_weeks="52", out_of_sample_weeks="26"))
    assert response.status_code == 200 and "기간이 너무 짧습니다" in response.content.decode()
    response = client.post(reverse("strategies:walk_forward_create"), form_data(param_window="1"))
    assert response.status_code == 200 and "기간" in response.content.decode()
    assert not WalkForwardRun.objects.exists()


def test_pages_require_login(client):
    response = client.get(reverse("strategies:walk_forward_create"))
    assert response.status_code == 302 and "/accounts/login/" in response["Location"]


# ---------------------------------------------------------------------------------------------- API


@pytest.fixture
def api(user):
    client = APIClient()
    client.force_authenticate(user)
    return client


def api_body(**overrides) -> dict:
    body = {"strategy_key": "mean_reversion", "grid": GRID, "codes": CODES, "start": START.isoformat(),
            "end": END.isoformat(), "in_sample_weeks": 52, "out_of_sample_weeks": 26, "objective": "cagr"}
    return {**body, **overrides}


def test_api_creates_runs_lists_and_shows_owner_scoped(api, user, other_user, demo_bars):
    response = api.post("/api/walk-forward/", api_body(), format="json")
    assert response.status_code == 201, response.json()
    body = response.json()
    assert response["Location"] == f"/api/walk-forward/{body['id']}/"
    assert body["status"] == "done" and body["objective"] == "cagr"  # inline Celery in the test
    assert len(body["result"]["windows"]) == 3 and set(body["result"]["summary"]) >= {"gap", "efficiency", "sharpe"}
    listing = api.get("/api/walk-forward/").json()
    rows = listing["results"] if isinstance(listing, dict) else listing
    assert [row["id"] for row in rows] == [body["id"]] and "result" not in rows[0]
    detail = api.get(f"/api/walk-forward/{body['id']}/").json()
    assert detail["result"]["equity"] == WalkForwardRun.objects.get().result["equity"]
    other = APIClient()
    other.force_authenticate(other_user)
    assert other.get(f"/api/walk-forward/{body['id']}/").status_code == 404
    other_listing = other.get("/api/walk-forward/").json()
    assert (other_listing["results"] if isinstance(other_listing, dict) else other_listing) == []
    assert APIClient().get("/api/walk-forward/").status_code == 401


@pytest.mark.parametrize(
    ("overrides", "field", "message", "bars"),
    [({"grid": {"window": [1]}}, "grid", "기간", False), ({"codes": ["999999"]}, "codes", "999999", False),
     ({"objective": "sortino"}, "objective", "", False), ({"in_sample_weeks": 0}, "in_sample_weeks", "", False),
     ({"grid": {}}, "grid", "그리드", False), ({"start": "2026-01-05"}, "start", "기간이 너무 짧습니다", True)],
)
def test_api_refuses_bad_inputs_with_the_field(request, api, overrides, field, message, bars):
    request.getfixturevalue("demo_bars" if bars else "instruments")
    response = api.post("/api/walk-forward/", api_body(**overrides), format="json")
    assert response.status_code == 400
    assert field in response.json() and message in json.dumps(response.json(), ensure_ascii=False)
    assert not WalkForwardRun.objects.exists()


def test_api_is_in_the_schema(api):
    schema = api.get("/api/schema/", {"format": "json"}).json()
    assert {"/api/walk-forward/", "/api/walk-forward/{id}/"} <= set(schema["paths"])
    assert "201" in schema["paths"]["/api/walk-forward/"]["post"]["responses"]
    assert {"WalkForwardCreateRequest", "WalkForwardRun", "WalkForwardWindow", "WalkForwardSummary"} <= set(
        schema["components"]["schemas"])
