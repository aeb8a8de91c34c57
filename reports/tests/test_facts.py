"""The facts of a week are computed in code from the stored trading data, consistently."""

from __future__ import annotations

import datetime as dt
import json
import statistics

import pytest

from accounts.models import BrokerMode
from accounts.tests.factories import BrokerAccountFactory, UserFactory
from market.analysis_service import analyze_week
from market.brokers.paper import PaperBroker
from market.models import DailyBar, PaperAccount, PaperOrder
from orders.models import Fill, Order, OrderStatus
from reports.facts import build_facts, has_activity, market_facts, users_with_activity, week_window

from .conftest import AFTER_THE_WEEK, FRIDAY, MONDAY, PREVIOUS_THURSDAY, WEEK, at

pytestmark = pytest.mark.django_db


def close(code, day):
    return DailyBar.objects.get(instrument__code=code, date=day).close


def dt_date(text):
    return dt.date.fromisoformat(text)


def test_week_window_of_a_finished_and_of_a_running_week(demo_codes):
    window = week_window(WEEK, AFTER_THE_WEEK)
    assert (window.monday, window.prev_day, window.as_of, window.complete) == (MONDAY, dt_date("2025-11-21"), FRIDAY, True)
    running = week_window(WEEK, at(FRIDAY, 15, 0))  # before Friday's close
    assert running.complete is False


def test_trades_with_reasons_and_realised_pnl(traded_week, user):
    facts = build_facts(user, WEEK, now=AFTER_THE_WEEK)
    trades = facts["trades"]
    assert [(t["side"], t["reason"]) for t in trades] == [
        ("매수", "주간 진입"), ("매수", "주간 진입"), ("매도", "주말 청산"), ("매도", "주말 청산"),
    ]
    assert {t["code"] for t in trades} == set(traded_week["bought"])
    for sell in (t for t in trades if t["side"] == "매도"):
        fill = Fill.objects.get(order__code=sell["code"], order__side="sell")
        buy = Fill.objects.get(order__code=sell["code"], order__side="buy")
        # realised P&L = sale after commission and tax − the buy's amount and commission (all sold)
        assert sell["realized_pnl"] == fill.amount - fill.commission - fill.tax - buy.amount - buy.commission
        assert (sell["amount"], sell["commission"], sell["tax"]) == (fill.amount, fill.commission, fill.tax)
    summary = facts["trade_summary"]
    assert summary["count"] == 4 and summary["buys"] == 2 and summary["sells"] == 2
    assert summary["realized_pnl"] == sum(t["realized_pnl"] for t in trades if t["realized_pnl"] is not None)
    assert summary["tax"] == sum(t["tax"] for t in trades) > 0


def test_positions_cash_and_equity_add_up(traded_week, user, paper_account):
    facts = build_facts(user, WEEK, now=AFTER_THE_WEEK)
    held = traded_week["held_code"]
    [before] = facts["positions_before"]
    [after] = facts["positions_after"]
    assert (before["code"], before["quantity"], after["code"], after["quantity"]) == (held, 7, held, 7)
    assert before["close"] == close(held, dt_date("2025-11-21")) and after["close"] == close(held, FRIDAY)
    assert after["value"] == 7 * close(held, FRIDAY)
    portfolio = facts["portfolio"]
    assert portfolio["cash_end"] == PaperAccount.objects.get(broker_account=paper_account).cash
    # Cash before the week = cash now minus the week's flows.
    flows = sum(
        (-(o.fill_price * o.filled_quantity + o.commission) if o.side == "buy"
         else o.fill_price * o.filled_quantity - o.commission - o.tax)
        for o in PaperOrder.objects.filter(trading_date__gte=MONDAY, status="filled")
    )
    assert portfolio["cash_start"] == portfolio["cash_end"] - flows
    assert portfolio["equity_start"] == portfolio["cash_start"] + before["value"]
    assert portfolio["equity_end"] == portfolio["cash_end"] + after["value"]
    assert portfolio["pnl"] == portfolio["equity_end"] - portfolio["equity_start"]
    assert portfolio["return_pct"] == round((portfolio["equity_end"] / portfolio["equity_start"] - 1) * 100, 2)
    # The chart series starts at the previous close and ends at the week's last close.
    series = facts["series"]
    assert [p["date"] for p in series] == ["2025-11-21", *facts["week"]["trading_days"]]
    assert series[0]["equity"] == portfolio["equity_start"] and series[-1]["equity"] == portfolio["equity_end"]
    assert sum(p["bought"] for p in series) == facts["trade_summary"]["bought_amount"]


def test_benchmark_is_the_equal_weight_return_of_the_strategy_universe(traded_week, user):
    facts = build_facts(user, WEEK, now=AFTER_THE_WEEK)
    codes = traded_week["codes"]
    expected = statistics.fmean(close(c, FRIDAY) / close(c, dt_date("2025-11-21")) - 1 for c in codes)
    assert facts["benchmark"] == {"name": "전략 유니버스 동일가중", "symbols": 5, "return_pct": round(expected * 100, 2)}
    assert facts["excess_return_pct"] == round(facts["portfolio"]["return_pct"] - facts["benchmark"]["return_pct"], 2)


def test_signals_say_why_they_fired(traded_week, user):
    [strategy] = build_facts(user, WEEK, now=AFTER_THE_WEEK)["strategies"]
    assert strategy["name"] == "주간 평균회귀" and "Z-점수" in strategy["strategy"]
    assert [(r["job"], r["status"]) for r in strategy["runs"]] == [("진입", "완료"), ("청산", "완료")]
    entry, exit_ = strategy["signals"]
    assert entry["signal_day"] == "2025-11-21" and entry["candidates"] == 5
    assert [o["code"] for o in entry["orders"]] == traded_week["bought"][::-1]  # best score first
    assert entry["orders"][0]["score"] == 4.0 and "매수 신호" in entry["orders"][0]["why"]
    for order in exit_["orders"]:
        assert order["reason"] == "주말 청산" and "진입가 대비" in order["why"]
        assert f"{order['change_pct']:+.2f}%" in order["why"]


def test_failures_list_rejected_orders_and_alerts(traded_week, user):
    failures = build_facts(user, WEEK, now=AFTER_THE_WEEK)["failures"]
    [rejected] = failures["rejected_orders"]
    assert rejected["status"] == "거부" and rejected["message"] == "주문가능금액을 초과했습니다"
    assert any(a["kind"] == "브로커 잔고 불일치" and "다릅니다" in a["message"] for a in failures["alerts"])
    assert failures["count"] == len(failures["rejected_orders"]) + len(failures["alerts"])


def test_market_analysis_computed_in_memory_equals_the_stored_one(traded_week, user):
    window = week_window(WEEK, AFTER_THE_WEEK)
    computed = market_facts(window)
    assert computed["source"] == "computed" and computed["symbols"] == 5
    analyze_week(MONDAY)  # the Saturday job stores the week
    stored = market_facts(window)
    assert stored["source"] == "stored"
    assert {k: v for k, v in stored.items() if k != "source"} == {k: v for k, v in computed.items() if k != "source"}
    assert len(stored["extreme_z"]) == 5
    zs = [abs(item["z_score"]) for item in stored["extreme_z"]]
    assert zs == sorted(zs, reverse=True)


def test_facts_carry_no_secret_or_personal_data(traded_week, user, settings):
    kis = BrokerAccountFactory(owner=user, mode=BrokerMode.SIMULATED, name="내 비밀 계좌")
    facts_text = json.dumps(build_facts(user, WEEK, now=AFTER_THE_WEEK), ensure_ascii=False)
    for secret in (kis.app_key, kis.app_secret, kis.account_number, user.username, user.email, "내 비밀 계좌"):
        assert secret not in facts_text


def test_kis_account_facts_from_fills_and_the_broker_balance(user, demo_codes, monkeypatch):
    from types import SimpleNamespace

    account = BrokerAccountFactory(owner=user, mode=BrokerMode.SIMULATED)
    code = demo_codes[2]
    order = Order.objects.create(
        broker_account=account, client_order_id="kis-1", trading_date=MONDAY, code=code, side="buy", quantity=3,
        reason="manual", status=OrderStatus.FILLED, filled_quantity=3, filled_amount=3 * 1000,
        average_fill_price=1000, intent_at=at(MONDAY, 9, 0),
    )
    Fill.objects.create(order=order, cumulative_quantity=3, quantity=3, price=1000, amount=3000, commission=1,
                        filled_at=at(MONDAY, 9, 1))
    balance = SimpleNamespace(summary=SimpleNamespace(cash_deposit=5_000_000))
    monkeypatch.setattr("market.brokers.broker_for", lambda acc, **kw: SimpleNamespace(get_balance=lambda: balance))
    facts = build_facts(user, WEEK, now=AFTER_THE_WEEK)
    [row] = facts["accounts"]
    assert row["label"] == "모의투자 계좌 1" and row["cash_end"] == 5_000_000 and row["cash_start"] == 5_003_001
    assert facts["positions_after"][0]["quantity"] == 3

    def broken(acc, **kw):
        raise ConnectionError("KIS is down")

    monkeypatch.setattr("market.brokers.broker_for", broken)
    facts = build_facts(user, WEEK, now=AFTER_THE_WEEK)  # never fails on the broker
    assert facts["portfolio"]["cash_known"] is False
    assert facts["portfolio"]["equity_end"] == facts["positions_after"][0]["value"]


def test_users_with_activity(traded_week, user, paper_account):
    idle = UserFactory()
    BrokerAccountFactory(owner=idle, mode=BrokerMode.PAPER, app_key="", app_secret="", account_number="")
    holder = UserFactory()
    account = BrokerAccountFactory(owner=holder, mode=BrokerMode.PAPER, app_key="", app_secret="", account_number="")
    PaperBroker(account, clock=lambda: at(PREVIOUS_THURSDAY, 9, 5)).place_order("buy", traded_week["held_code"], 1,
                                                                                order_type="01")
    assert list(users_with_activity(WEEK)) == [user, holder]  # the holder kept a position through the week
    assert list(users_with_activity("2025-W40")) == []
    assert has_activity(build_facts(holder, WEEK, now=AFTER_THE_WEEK))
    assert not has_activity(build_facts(idle, WEEK, now=AFTER_THE_WEEK))
