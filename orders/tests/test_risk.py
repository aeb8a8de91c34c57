"""Pre-trade risk checks and the kill switch: a refused order is rejected with the Korean reason and
`raw_response={"risk": <check>}`, raises a RISK_BLOCKED alert, and never reaches the broker."""

from __future__ import annotations

import datetime as dt
import itertools

import pytest
from django.urls import reverse

from accounts.tests.second_factor import step_up
from market.gateway import BrokerError
from market.krx import commission_for, price_limits, round_to_tick, shift_ticks
from market.models import DailyBar, PaperAccount, PaperOrder
from orders import common, risk
from orders.common import get_broker
from orders.controls import halt_reason_for, halt_trading, resume_trading
from orders.execution import send_order
from orders.models import AlertKind, Order, OrderStatus, TradingAlert, TradingControl, WeeklyRunStatus
from orders.reconciliation import reconcile_orders
from orders.weekly import place_weekly_buys

from .conftest import MONDAY, at

pytestmark = pytest.mark.django_db

FRIDAY_BEFORE = MONDAY - dt.timedelta(days=3)
_ids = itertools.count(1)


def previous_close(code: str) -> int:
    return DailyBar.objects.get(instrument__code=code, date=FRIDAY_BEFORE).close


def new_order(account, code, *, side="buy", quantity=1, order_type="01", price=0, reference_price=None,
              day=MONDAY) -> Order:
    return Order.objects.create(
        broker_account=account, client_order_id=f"risk-test-{next(_ids)}", trading_date=day, code=code, side=side,
        order_type=order_type, quantity=quantity, price=price,
        reference_price=previous_close(code) if reference_price is None else reference_price,
        reason="manual", intent_at=at(day, 9, 0),
    )


def send(order: Order, now: dt.datetime) -> Order:
    send_order(order, get_broker(order.broker_account, now), now, True, "")
    order.refresh_from_db()
    return order


def assert_refused(order: Order, check: str, *words: str) -> None:
    assert order.status == OrderStatus.REJECTED, (order.status, order.error_message)
    assert order.raw_response == {"risk": check}
    for word in words:
        assert word in order.error_message
    assert order.send_attempts == 0 and order.broker_order_no == ""
    alert = TradingAlert.objects.get(kind=AlertKind.RISK_BLOCKED, key=f"order-{order.pk}")
    assert alert.account_id == order.broker_account_id and order.error_message in alert.message
    assert not PaperOrder.objects.filter(client_order_id=order.client_order_id).exists()


# ------------------------------------------------------------------------------------------- kill switch
def test_a_halted_account_sends_nothing_and_the_order_says_why(paper_account, demo_bars, user):
    control = halt_trading(account=paper_account, user=user, reason="계좌 점검 중")
    assert control.halted and control.halted_by == user and control.halted_at is not None
    order = send(new_order(paper_account, demo_bars[0]), at(MONDAY, 10, 0))
    assert_refused(order, risk.KILL_SWITCH, "계좌 점검 중", "킬 스위치")
    assert not PaperOrder.objects.exists()


def test_halt_reason_global_first_then_account_and_resume(paper_account, user, other_user):
    from accounts.tests.factories import BrokerAccountFactory

    other = BrokerAccountFactory(owner=other_user, mode="paper", app_key="", app_secret="", account_number="")
    assert halt_reason_for(paper_account) is None
    halt_trading(account=paper_account, user=user, reason="내 계좌만")
    assert "이 계좌" in halt_reason_for(paper_account) and "내 계좌만" in halt_reason_for(paper_account)
    assert halt_reason_for(other) is None  # another account trades on
    halt_trading(user=user, reason="시장 급변")
    assert "전체" in halt_reason_for(other) and "시장 급변" in halt_reason_for(paper_account)
    assert halt_reason_for(None).startswith("전체")
    resume_trading(user=user)
    assert halt_reason_for(other) is None and "내 계좌만" in halt_reason_for(paper_account)
    control = resume_trading(account=paper_account, user=user)
    assert not control.halted and control.halt_reason == "" and halt_reason_for(paper_account) is None
    assert TradingControl.objects.count() == 2  # halting or resuming again reuses the rows


def test_a_global_halt_blocks_the_entry_before_planning_and_resume_lets_it_run(config):
    halt_trading(reason="긴급 점검")
    result = place_weekly_buys(config, MONDAY, at(MONDAY, 9, 5))
    assert result.run.status == WeeklyRunStatus.BLOCKED and "긴급 점검" in result.run.reason
    assert not Order.objects.exists() and not PaperOrder.objects.exists()
    resume_trading()
    result = place_weekly_buys(config, MONDAY, at(MONDAY, 9, 30))  # the blocked run is taken up again
    assert result.run.status == WeeklyRunStatus.COMPLETE
    assert PaperOrder.objects.count() == Order.objects.count() == 3


def test_a_halt_while_the_job_sends_rejects_every_order_still_pending(config, monkeypatch):
    def halt_after_planning(name, subject):
        if name == "intents_committed":
            halt_trading(account=config.broker_account, reason="주문 중 정지")

    monkeypatch.setattr(common, "checkpoint", halt_after_planning)
    result = place_weekly_buys(config, MONDAY, at(MONDAY, 9, 5))
    # Every order refused: the run did not do its job, so it is not "complete" and says why.
    assert result.run.status == WeeklyRunStatus.BLOCKED
    assert "3건이 모두 거부" in result.run.reason and "주문 중 정지" in result.run.reason
    assert TradingAlert.objects.filter(kind=AlertKind.JOB_FAILED, key=f"run-{result.run.pk}").exists()
    orders = list(Order.objects.all())
    assert len(orders) == 3
    for order in orders:
        assert_refused(order, risk.KILL_SWITCH, "주문 중 정지")
    assert not PaperOrder.objects.exists()
    # Tried again (the sweep) it stays blocked and sends nothing: refused intents are never re-sent.
    assert place_weekly_buys(config, MONDAY, at(MONDAY, 9, 10)).run.status == WeeklyRunStatus.BLOCKED
    assert not PaperOrder.objects.exists()


def test_only_the_kill_switch_stops_a_sell(paper_account, demo_bars):
    code = demo_bars[0]
    buy = send(new_order(paper_account, code, quantity=10), at(MONDAY, 9, 30))
    assert buy.status == OrderStatus.SUBMITTED
    halt_trading(account=paper_account, reason="매도도 멈춤")
    sell = send(new_order(paper_account, code, side="sell", quantity=10), at(MONDAY, 13, 0))
    assert_refused(sell, risk.KILL_SWITCH, "매도도 멈춤")


# ------------------------------------------------------------------------------------------- KRX rules
@pytest.mark.parametrize(("hour", "minute"), [(8, 30), (15, 30), (18, 0)])
def test_outside_the_regular_session_nothing_is_sent(paper_account, demo_bars, hour, minute):
    order = send(new_order(paper_account, demo_bars[0]), at(MONDAY, hour, minute))
    assert_refused(order, risk.MARKET_HOURS, "정규장", "09:00~15:30")


def test_a_holiday_is_refused_by_the_job_clock():
    sunday = at(MONDAY - dt.timedelta(days=1), 10, 0)
    assert "휴장일" in risk.check_market_hours(sunday)
    assert risk.check_market_hours(at(MONDAY, 9, 0)) is None  # the open itself is inside
    assert risk.check_market_hours(at(MONDAY, 15, 29)) is None


def test_an_off_tick_limit_price_is_refused(paper_account, demo_bars):
    code = demo_bars[0]
    base = previous_close(code)
    price = shift_ticks(base, 1) + 1  # one won above a valid tick
    order = send(new_order(paper_account, code, order_type="00", price=price), at(MONDAY, 10, 0))
    assert_refused(order, risk.TICK_SIZE, "호가 단위")


def test_a_limit_price_outside_the_daily_band_is_refused(paper_account, demo_bars):
    code = demo_bars[0]
    lower, upper = price_limits(previous_close(code))
    order = send(new_order(paper_account, code, order_type="00", price=shift_ticks(upper, 1)), at(MONDAY, 10, 0))
    assert_refused(order, risk.PRICE_LIMIT, "가격제한폭", f"{upper:,}원")
    at_the_limit = send(new_order(paper_account, code, order_type="00", price=lower), at(MONDAY, 10, 0))
    assert at_the_limit.status == OrderStatus.SUBMITTED  # the limit price itself is allowed


def test_a_market_order_with_a_stale_reference_price_is_refused(paper_account, demo_bars):
    code = demo_bars[0]
    stale = previous_close(code) * 2  # e.g. sized before a split
    order = send(new_order(paper_account, code, reference_price=stale), at(MONDAY, 10, 0))
    assert_refused(order, risk.PRICE_LIMIT, "기준 가격", "시세")


# ------------------------------------------------------------------------------------------- money limits
def test_a_buy_above_the_orderable_cash_is_refused(paper_account, demo_bars):
    code = demo_bars[0]
    PaperAccount.objects.create(broker_account=paper_account, initial_cash=100_000, cash=100_000)
    quantity = 100_000 // previous_close(code) + 1
    order = send(new_order(paper_account, code, quantity=quantity), at(MONDAY, 10, 0))
    assert_refused(order, risk.BUYABLE_CASH, "주문가능금액", "가능 100,000원")


def test_cash_includes_the_commission(paper_account, demo_bars):
    code = demo_bars[0]
    price = previous_close(code)
    cash = 10 * price + commission_for(10 * price) - 1  # one won short of 10 shares with the fee
    PaperAccount.objects.create(broker_account=paper_account, initial_cash=cash, cash=cash)
    assert_refused(send(new_order(paper_account, code, quantity=10), at(MONDAY, 10, 0)), risk.BUYABLE_CASH, "수수료")
    assert send(new_order(paper_account, code, quantity=9), at(MONDAY, 10, 0)).status == OrderStatus.SUBMITTED


def test_max_order_amount_from_the_settings_then_the_global_then_the_account_row(paper_account, demo_bars, settings):
    code = demo_bars[0]
    price = previous_close(code)
    settings.ORDERS_MAX_ORDER_KRW = 5 * price
    assert_refused(send(new_order(paper_account, code, quantity=6), at(MONDAY, 10, 0)),
                   risk.MAX_ORDER_AMOUNT, "최대 주문 금액", f"{5 * price:,}원")
    TradingControl.objects.create(scope="global", max_order_krw=100 * price)
    assert send(new_order(paper_account, code, quantity=6), at(MONDAY, 10, 0)).status == OrderStatus.SUBMITTED
    TradingControl.objects.create(scope=f"account-{paper_account.pk}", account=paper_account, max_order_krw=price)
    assert_refused(send(new_order(paper_account, code, quantity=2), at(MONDAY, 10, 0)), risk.MAX_ORDER_AMOUNT)
    # A sell reduces exposure: the amount limit does not hold it back.
    sell = send(new_order(paper_account, code, side="sell", quantity=6), at(MONDAY, 10, 5))
    assert sell.status == OrderStatus.SUBMITTED


def test_the_daily_loss_limit_stops_new_buys_but_not_sells(paper_account, demo_bars):
    code = demo_bars[0]
    base = previous_close(code)
    low = round_to_tick(base * 85 // 100, "down")
    # Monday opens at the previous close and closes 15% lower: a morning buy, an afternoon sell at a loss.
    DailyBar.objects.filter(instrument__code=code, date=MONDAY).update(open=base, high=base, low=low, close=low)
    account = paper_account
    buy = send(new_order(account, code, quantity=100), at(MONDAY, 9, 30))
    reconcile_orders(account, MONDAY, now=at(MONDAY, 9, 35))
    sell = send(new_order(account, code, side="sell", quantity=50), at(MONDAY, 13, 0))
    reconcile_orders(account, MONDAY, now=at(MONDAY, 13, 5))
    buy.refresh_from_db()
    sell.refresh_from_db()
    assert (buy.status, sell.status) == (OrderStatus.FILLED, OrderStatus.FILLED)
    loss = -risk.realised_pnl(account, MONDAY)
    assert loss > 50 * (base - low)  # the price drop plus both commissions and the tax
    assert risk.realised_pnl(account, MONDAY + dt.timedelta(days=1)) == 0  # the next day starts afresh

    TradingControl.objects.create(scope=f"account-{account.pk}", account=account, daily_loss_limit_krw=loss)
    refused = send(new_order(account, demo_bars[1]), at(MONDAY, 13, 10))
    assert_refused(refused, risk.DAILY_LOSS_LIMIT, "일일 손실 한도", f"{loss:,}원")
    closing = send(new_order(account, code, side="sell", quantity=50), at(MONDAY, 13, 10))
    assert closing.status == OrderStatus.SUBMITTED  # reducing exposure is never blocked by the loss limit


def test_an_unreadable_risk_input_sends_nothing_and_the_run_waits_to_be_tried_again(config, monkeypatch):
    from market.brokers.paper import PaperBroker

    real = PaperBroker.get_buyable

    def down(self, code, price=None):
        raise BrokerError("주문가능금액 조회 실패")

    monkeypatch.setattr(PaperBroker, "get_buyable", down)
    result = place_weekly_buys(config, MONDAY, at(MONDAY, 9, 5))
    assert result.run.status == WeeklyRunStatus.WAITING and "주문가능금액" in result.run.reason
    assert result.run.retry_at == at(MONDAY, 9, 10)  # the next sweep
    assert not PaperOrder.objects.exists()
    assert set(Order.objects.values_list("status", "send_attempts")) == {(OrderStatus.PENDING, 0)}
    assert "주문가능금액 조회 실패" in Order.objects.first().error_message
    assert TradingAlert.objects.filter(kind=AlertKind.JOB_FAILED, key=f"run-{result.run.pk}").count() == 1

    monkeypatch.setattr(PaperBroker, "get_buyable", real)
    result = place_weekly_buys(config, MONDAY, at(MONDAY, 9, 20))
    assert result.run.status == WeeklyRunStatus.COMPLETE
    assert PaperOrder.objects.count() == 3
    assert not Order.objects.exclude(error_message="").exists()


def test_evaluate_reads_nothing_for_a_sell_and_stops_at_the_first_refusal():
    def forbidden(*args):
        raise AssertionError("not needed")

    sell = risk.OrderFacts(side="sell", order_type="01", quantity=5, price=0, reference_price=0)
    assert risk.evaluate(sell, now=at(MONDAY, 10, 0), halt_reason=None, limits=risk.Limits(1, 1),
                         base_price=forbidden, realised_pnl_today=forbidden, orderable_cash=forbidden,
                         commission=forbidden) is None
    buy = risk.OrderFacts(side="buy", order_type="01", quantity=5, price=0, reference_price=10_000)
    denial = risk.evaluate(buy, now=at(MONDAY, 8, 0), halt_reason=None, limits=risk.Limits(None, None),
                           base_price=forbidden, realised_pnl_today=forbidden, orderable_cash=forbidden,
                           commission=forbidden)
    assert denial.check == risk.MARKET_HOURS


# ------------------------------------------------------------------------------------------- admin
def test_admin_halts_and_resumes_through_the_actions_and_lists_the_global_switch(client, paper_account,
                                                                               django_user_model):
    admin_user = django_user_model.objects.create_superuser("boss", "boss@example.com", "pw-boss-123456")
    step_up(client, admin_user)  # the admin needs a second factor
    url = reverse("admin:orders_tradingcontrol_changelist")
    assert client.get(url).status_code == 200
    control = TradingControl.objects.get(scope="global")  # listed even before anyone halted
    response = client.post(url, {"action": "halt_selected", "_selected_action": [control.pk]})
    assert response.status_code == 302
    control.refresh_from_db()
    assert control.halted and control.halted_by == admin_user and control.halt_reason
    assert halt_reason_for(paper_account).startswith("전체")
    client.post(url, {"action": "resume_selected", "_selected_action": [control.pk]})
    control.refresh_from_db()
    assert not control.halted and halt_reason_for(paper_account) is None

    add = client.post(reverse("admin:orders_tradingcontrol_add"),
                      {"account": paper_account.pk, "halt_reason": "", "max_order_krw": "1000000",
                       "daily_loss_limit_krw": ""})
    assert add.status_code == 302
    row = TradingControl.objects.get(account=paper_account)
    assert client.get(reverse("admin:orders_tradingcontrol_change", args=[row.pk])).status_code == 200
    assert row.scope == f"account-{paper_account.pk}" and row.max_order_krw == 1_000_000 and not row.halted
    again = client.post(reverse("admin:orders_tradingcontrol_add"), {"account": paper_account.pk})
    assert again.status_code == 200 and TradingControl.objects.filter(account=paper_account).count() == 1
