"""A whole weekly cycle against the fake KIS host over real HTTP: entry at 09:05, the 15:15 checks
(with the day's bars refreshed through the chart TR first), a stop-loss mid-week, the week-end exit
and reconciliation, in 모의투자 (VTS) mode and on a real account with live trading confirmed. Also a
Monday-holiday week, a business rejection and an insufficient-cash rejection, never re-sent.

The strategy is the shared stub (buy everything, rank by column), so the bars only matter for the
stop-loss; the fake serves the bars the scenario sets (`FakeKisServer.set_bar`) and fills market
orders at the quote's current price."""

from __future__ import annotations

import datetime as dt
import math

import pytest

from market.krx import commission_for, week_trading_days
from market.models import DailyBar
from market.tests.fake_kis import BALANCE_PATH, BUYABLE_PATH, DAILY_CHART_PATH, DAILY_ORDERS_PATH, ORDER_CASH_PATH
from orders.common import commission_rate
from orders.models import Order, OrderStatus, WeeklyRun, WeeklyRunStatus
from orders.positions import positions_for
from orders.reconciliation import reconcile_orders
from orders.weekly import place_weekly_buys, resume_interrupted_runs, run_exit_checks

from .kis_week import HOLIDAY_WEEK, QUOTATION_TR_IDS, TR_IDS, WEEK, KisWeek

pytestmark = pytest.mark.django_db


def fake_mode(week: KisWeek) -> str:
    return week.fake.mode


def expected_shares(cash: int, price: int) -> int:
    shares = math.floor(cash / (price * (1 + float(commission_rate()))))
    while shares and shares * price + commission_for(shares * price) > cash:
        shares -= 1
    return shares


@pytest.mark.parametrize("kis_week", [{"mode": "paper"}, {"mode": "real"}], ids=["vts", "real"], indirect=True)
def test_a_full_week_with_a_stop_loss_midweek(kis_week):
    week = kis_week
    fake, ids = week.fake, TR_IDS[fake_mode(week)]
    monday, tuesday, wednesday, thursday, friday = week_trading_days(WEEK)

    entry = week.entry(monday)
    assert entry.run.status == WeeklyRunStatus.COMPLETE, entry.run.reason
    buys = {o.code: o for o in Order.objects.filter(side="buy")}
    assert set(buys) == {"035720", "005930"}  # the two best ranked, max_positions = 2
    for code, order in buys.items():
        opening = fake.stocks[code].base_price  # the quote's stck_oprc at 09:05
        assert order.reference_price == opening and order.quantity == expected_shares(1_000_000, opening)
        assert order.status == OrderStatus.FILLED and order.average_fill_price == fake.stocks[code].price
    assert entry.run.plan["orderable_cash"] == 10_000_000 and entry.run.plan["cash_per_order"] == 1_000_000

    flat = {"035720": buys["035720"].average_fill_price, "005930": buys["005930"].average_fill_price}
    for day in (monday, tuesday):
        assert week.check(day, flat).run.status == WeeklyRunStatus.COMPLETE
    assert not Order.objects.filter(side="sell").exists()
    # The check refreshed the day's bars first: Tuesday's stored Monday's finished bar, not its own.
    assert DailyBar.objects.get(instrument__code="035720", date=monday).close == flat["035720"]
    assert not DailyBar.objects.filter(date=tuesday).exists()

    crash = int(flat["005930"] * 0.9) // 100 * 100  # -10%: below the -5% stop-loss
    week.check(wednesday, {**flat, "005930": crash})
    [stop] = Order.objects.filter(side="sell")
    assert (stop.code, stop.reason, stop.trading_date, stop.quantity) == ("005930", "stop_loss", wednesday, 13)
    assert stop.status == OrderStatus.FILLED and stop.average_fill_price == crash
    assert week.check(thursday, flat).run.job == "check"

    exit_run = week.check(friday, flat).run
    assert (exit_run.job, exit_run.status) == ("exit", WeeklyRunStatus.COMPLETE)
    last = Order.objects.get(side="sell", code="035720")
    assert (last.reason, last.trading_date, last.status) == ("week_end", friday, OrderStatus.FILLED)
    assert positions_for(week.config) == {}
    assert all(p.quantity == 0 for p in fake.positions.values())
    assert WeeklyRun.objects.filter(status=WeeklyRunStatus.COMPLETE).count() == 6  # entry + 4 checks + exit

    # Exactly what reached KIS: the mode's order tr_ids (buys, then the stop-loss, then the week end)
    # and its inquiry tr_ids; quotations use the same ids on both hosts.
    assert week.order_tr_ids() == [ids["buy"], ids["buy"], ids["sell"], ids["sell"]]
    for path in (DAILY_ORDERS_PATH, BALANCE_PATH, BUYABLE_PATH):
        assert week.tr_ids(path) == {ids[path]}, path
    for path, tr_id in QUOTATION_TR_IDS.items():
        assert week.tr_ids(path) == {tr_id}, path
    assert not fake.tr_ids("/uapi/domestic-stock/v1/trading/order-rvsecncl")


@pytest.mark.parametrize("kis_week", [{"monday": HOLIDAY_WEEK}], ids=["vts"], indirect=True)
def test_a_monday_holiday_week_enters_on_tuesday_and_exits_on_thursday(kis_week):
    week = kis_week
    tuesday, wednesday, thursday = week_trading_days(HOLIDAY_WEEK)
    assert tuesday == dt.date(2026, 10, 6) and thursday == dt.date(2026, 10, 8)
    assert place_weekly_buys(week.config, HOLIDAY_WEEK, week.at(HOLIDAY_WEEK, 9, 5)) is None  # 대체공휴일
    assert run_exit_checks(week.config, HOLIDAY_WEEK, week.at(HOLIDAY_WEEK, 15, 15)) is None
    assert week.order_tr_ids() == []

    entry = week.entry(tuesday)
    assert (entry.run.trading_date, entry.run.status) == (tuesday, WeeklyRunStatus.COMPLETE)
    flat = {o.code: o.average_fill_price for o in Order.objects.filter(side="buy")}
    assert set(flat) == {"035720", "005930"}
    assert week.check(tuesday, flat).run.job == "check"
    assert week.check(wednesday, flat).run.job == "check"
    exit_run = week.check(thursday, flat).run  # Friday 9 October (한글날) is closed: Thursday exits
    assert (exit_run.job, exit_run.trading_date) == ("exit", thursday)
    sells = Order.objects.filter(side="sell")
    assert {(o.code, o.reason, o.trading_date, o.status) for o in sells} == {
        (code, "week_end", thursday, OrderStatus.FILLED) for code in flat}
    assert week.order_tr_ids() == ["VTTC0012U", "VTTC0012U", "VTTC0011U", "VTTC0011U"]
    assert positions_for(week.config) == {}


def _redeliver_and_recover(week: KisWeek, day: dt.date) -> None:
    """What the scheduler may do afterwards: a duplicated entry delivery, the resume sweep, polls."""
    place_weekly_buys(week.config, day, week.at(day, 9, 12))
    resume_interrupted_runs(week.at(day, 9, 30))
    reconcile_orders(week.account, day, now=week.at(day, 9, 35))
    reconcile_orders(week.account, day, now=week.at(day, 10, 0))


def test_a_rejected_order_keeps_the_kis_message_and_is_not_resent(kis_week):
    week = kis_week
    week.fake.add_fault(ORDER_CASH_PATH, "reject", times=1, method="POST")  # APBK0918 for the first buy
    result = week.entry(WEEK)
    assert result.run.status == WeeklyRunStatus.COMPLETE
    rejected = Order.objects.get(code="035720")
    assert rejected.status == OrderStatus.REJECTED
    assert "장운영시간이 아닙니다" in rejected.error_message and "APBK0918" in rejected.error_message
    assert Order.objects.get(code="005930").status == OrderStatus.FILLED  # the other buy went through
    assert len(week.order_tr_ids()) == 2 and len(week.fake.accepted_orders) == 1

    _redeliver_and_recover(week, WEEK)
    rejected.refresh_from_db()
    assert rejected.status == OrderStatus.REJECTED and not rejected.broker_order_no
    assert len(week.order_tr_ids()) == 2  # nothing re-sent
    assert set(positions_for(week.config)) == {"005930"}


@pytest.mark.parametrize("kis_week", [{"cash_per_week": 5_000_000, "max_positions": 1}], ids=["vts"], indirect=True)
def test_insufficient_cash_is_rejected_and_not_resent(kis_week):
    """The entry splits min(cash per week, orderable cash = 1,000,000); KIS reserves a market buy at
    the upper-limit price, so it answers 주문가능금액 초과 (APBK0919)."""
    week = kis_week
    week.fake.cash = 1_000_000
    result = week.entry(WEEK)
    # Its only order refused: the run did not do its job (blocked, with KIS's reason), and stays so.
    assert result.run.status == WeeklyRunStatus.BLOCKED and "모두 거부" in result.run.reason
    assert "주문가능금액을 초과" in result.run.reason
    assert result.run.plan["orderable_cash"] == 1_000_000 and result.run.plan["cash_per_order"] == 1_000_000
    [order] = Order.objects.all()
    assert order.code == "035720" and order.quantity == expected_shares(1_000_000, week.fake.stocks["035720"].base_price)
    assert order.status == OrderStatus.REJECTED
    assert "주문가능금액을 초과" in order.error_message and "APBK0919" in order.error_message
    assert week.order_tr_ids() == ["VTTC0012U"] and week.fake.accepted_orders == []

    _redeliver_and_recover(week, WEEK)
    order.refresh_from_db()
    assert order.status == OrderStatus.REJECTED
    assert week.order_tr_ids() == ["VTTC0012U"]  # nothing re-sent
    assert positions_for(week.config) == {} and week.fake.positions == {}


def test_a_failed_bar_refresh_leaves_the_check_on_the_current_price(kis_week):
    """The day's chart cannot be read: the check still runs, on the quote's current price."""
    week = kis_week
    week.entry(WEEK)
    entry_price = Order.objects.get(code="005930").average_fill_price
    week.fake.add_fault(DAILY_CHART_PATH, "reject", times=None,
                        body='{"rt_cd": "1", "msg_cd": "MCA00124", "msg1": "해당 서비스를 찾을수 없습니다."}')
    week.fake.stocks["005930"].price = int(entry_price * 0.9) // 100 * 100  # only the quote knows today
    result = run_exit_checks(week.config, WEEK, week.at(WEEK, 15, 15))
    assert result.run.status == WeeklyRunStatus.COMPLETE
    assert set(result.run.plan["bars"]["errors"]) == {"005930", "035720"}
    [stop] = Order.objects.filter(side="sell")
    assert (stop.code, stop.reason, stop.reference_price) == ("005930", "stop_loss", week.fake.stocks["005930"].price)
