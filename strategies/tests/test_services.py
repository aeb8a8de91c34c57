"""Backtests on stored bars: the command, the service, failures stored with their message, sweeps."""

import datetime as dt
import io
import json

import pytest
from django.core.management import CommandError, call_command

from market.models import DailyBar
from strategies.models import BacktestRun
from strategies.services import BacktestInputError, create_backtest_run, execute_backtest_run

pytestmark = pytest.mark.django_db

CODES = "005930,000660,035720"


@pytest.fixture
def demo_bars():
    call_command("demo_data", symbols=5, years=3, end="2026-10-30", stdout=io.StringIO())


def test_backtest_command_prints_metrics(demo_bars):
    out = io.StringIO()
    call_command("backtest", codes=CODES, start="2024-06-01", end="2026-10-30", stdout=out)
    text = out.getvalue()
    assert "total_return" in text and "max_drawdown" in text and "sharpe" in text
    assert BacktestRun.objects.get().status == "done"


def test_backtest_command_json_has_trades_and_equity(demo_bars):
    out = io.StringIO()
    call_command("backtest", codes=CODES, start="2024-06-01", end="2026-10-30", json=True,
                 param=["window=15", "z_threshold=1.5"], commission="0.00015", tax="0.002", stdout=out)
    payload = json.loads(out.getvalue())
    assert set(payload) >= {"metrics", "trades", "equity"}
    assert payload["trades"], "a 1.5σ threshold over two years trades"
    trade = payload["trades"][0]
    assert {"code", "entry_date", "entry_price", "exit_date", "exit_price", "shares", "fees", "tax", "reason"} <= set(trade)
    assert trade["reason"] in {"stop_loss", "take_profit", "signal", "week_end"}
    assert payload["equity"][0][1] == 10_000_000


def test_backtest_command_takes_the_participation_cap_and_the_weekly_universe(demo_bars):
    def shares(*extra) -> list[int]:
        out = io.StringIO()
        call_command("backtest", "--codes", CODES, "--start", "2024-06-01", "--end", "2026-10-30", "--json",
                     "--param", "z_threshold=1.5", *extra, stdout=out)
        return [trade["shares"] for trade in json.loads(out.getvalue())["trades"]]

    free, capped = shares(), shares("--participation-cap", "0.0001")
    assert free and len(capped) == len(free) and sum(capped) < sum(free)
    assert BacktestRun.objects.filter(participation_cap__isnull=False).count() == 1
    shares("--top-n", "1")
    assert BacktestRun.objects.filter(universe_top_n=1).count() == 1


@pytest.mark.parametrize(
    ("options", "message"),
    [({"param": ["window=1"]}, "기간"), ({"codes": "999999"}, "알 수 없는 종목코드"),
     ({"start": "2026-10-30", "end": "2024-01-01"}, "시작일"), ({"strategy": "nope"}, "nope"),
     ({"start": "1900-01-01", "end": "1900-06-30"}, "저장된 일봉 기간 밖입니다: 2023-"),
     ({"end": "2030-06-30"}, r"종료일 2030-06-30이\(가\) 저장된 일봉 기간 밖입니다: .* ~ 2026-10-30"),
     ({"max_positions": 999}, "최대 보유 종목 수"), ({"cash_per_week": -5}, "주간 투자금"),
     ({"cash": 10**13}, "초기 자금")],
)
def test_bad_inputs_are_clear_errors(demo_bars, options, message):
    args = {"codes": CODES, "start": "2024-06-01", "end": "2026-10-30", **options}
    with pytest.raises(CommandError, match=message):
        call_command("backtest", stdout=io.StringIO(), **args)


def test_backtest_command_takes_the_cash_per_week(demo_bars):
    def weekly_spending(cash_per_week):
        out = io.StringIO()
        options = {"cash_per_week": cash_per_week} if cash_per_week is not None else {}
        call_command("backtest", codes=CODES, start="2024-06-01", end="2026-10-30", json=True, cash=50_000_000,
                     param=["window=15", "z_threshold=1.5"], stdout=out, **options)
        spent: dict[str, int] = {}
        for trade in json.loads(out.getvalue())["trades"]:
            spent[trade["entry_date"]] = spent.get(trade["entry_date"], 0) + trade["entry_price"] * trade["shares"]
        return spent

    assert max(weekly_spending(None).values()) > 2_000_000
    assert 0 < max(weekly_spending(2_000_000).values()) <= 2_000_000
    assert [run.cash_per_week for run in BacktestRun.objects.order_by("pk")] == [None, 2_000_000]


def test_a_failed_run_keeps_its_message(user, demo_bars):
    run = create_backtest_run(user, strategy_key="mean_reversion", params={}, codes=["005930"],
                              start=dt.date(2024, 1, 1), end=dt.date(2024, 6, 1))
    DailyBar.objects.filter(instrument__code="005930").delete()  # the bars went away before the run
    with pytest.raises(BacktestInputError):
        execute_backtest_run(run)
    run.refresh_from_db()
    assert run.status == "failed" and "저장된 일봉이 없습니다" in run.error


