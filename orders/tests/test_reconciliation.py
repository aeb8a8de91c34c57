"""Reconciliation against the fake KIS host over real HTTP, where the broker is not our clock, our number
format or our only client: a broker clock behind ours, 모의투자's unpadded order numbers, identical
orders placed by the owner in HTS, a day order that lapses at the close, and a failed inquiry."""

from __future__ import annotations

import datetime as dt

import pytest
from django.core.management import CommandError, call_command

from market.tests.fake_kis import DAILY_ORDERS_PATH, ORDER_CASH_PATH
from orders.models import AlertKind, Fill, Order, OrderStatus, TradingAlert, WeeklyRunStatus
from orders.positions import positions_for
from orders.reconciliation import OrderDecisionError, adopt_broker_order, declare_order_not_received, reconcile_orders
from orders.weekly import place_weekly_buys

from .kis_week import WEEK, KisWeek

pytestmark = pytest.mark.django_db

BOTH_MODES = pytest.mark.parametrize("kis_week", [{"mode": "paper", "max_positions": 1},
                                                   {"mode": "real", "max_positions": 1}],
                                     ids=["vts", "real"], indirect=True)
ONE_BUY = pytest.mark.parametrize("kis_week", [{"max_positions": 1}], ids=["vts"], indirect=True)


def entry_with_lost_answer(week: KisWeek, fault: str = "drop_connection") -> Order:
    """The 09:05 entry whose only buy (035720) gets no answer: `drop_connection` = KIS accepted it,
    `lost_request` = it never reached KIS. Either way the order is `unknown`."""
    week.fake.add_fault(ORDER_CASH_PATH, fault, times=1, method="POST")
    place_weekly_buys(week.config, WEEK, week.at(WEEK, 9, 5))
    order = Order.objects.get()
    assert order.status == OrderStatus.UNKNOWN and order.answered_at is not None
    return order


def unknown_alert(order: Order) -> TradingAlert:
    return TradingAlert.objects.get(kind=AlertKind.ORDER_UNKNOWN, key=f"order-{order.pk}")


@BOTH_MODES
def test_an_order_accepted_by_a_broker_whose_clock_is_behind_is_found_not_rejected(kis_week):
    """The broker stamps the order 5 s before the moment we stored it (its clock is behind): it is
    still ours — matched, filled, its message and alert follow — and the week's exit sells it."""
    week = kis_week
    week.fake.clock_offset = dt.timedelta(seconds=-5)
    order = entry_with_lost_answer(week)
    assert len(week.fake.accepted_orders) == 1

    summary = reconcile_orders(week.account, WEEK, now=week.at(WEEK, 9, 40))  # past the 30-minute grace
    order.refresh_from_db()
    assert summary.matched_unknown == 1 and summary.external_orders == []
    assert order.status == OrderStatus.FILLED
    assert order.broker_order_no == week.fake.accepted_orders[0]["ODNO"]
    assert order.error_message == ""  # no "answer lost" text on a filled order
    assert unknown_alert(order).resolved_at is not None
    assert positions_for(week.config)["035720"].quantity == order.quantity

    friday = dt.date(2026, 11, 27)
    week.check(friday, {"035720": order.average_fill_price})
    sell = Order.objects.get(side="sell")
    assert (sell.reason, sell.quantity, sell.status) == ("week_end", order.quantity, OrderStatus.FILLED)
    assert week.fake.positions["035720"].quantity == 0


@pytest.mark.parametrize("kis_week", [{"mode": "paper"}], ids=["vts"], indirect=True)
def test_unpadded_order_numbers_from_the_paper_host_are_reconciled(kis_week):
    """모의투자 answers "117100" and lists "0000117100": one order, not an order and a stranger."""
    week = kis_week
    assert week.fake.short_order_numbers
    result = place_weekly_buys(week.config, WEEK, week.at(WEEK, 9, 5))
    assert result.run.status == WeeklyRunStatus.COMPLETE
    orders = list(Order.objects.all())
    assert {len(order.broker_order_no) for order in orders} == {10}
    summary = reconcile_orders(week.account, WEEK, now=week.at(WEEK, 9, 10))
    assert summary.external_orders == []
    assert {order.status for order in Order.objects.all()} == {OrderStatus.FILLED}
    assert Fill.objects.count() == len(orders)
    assert set(positions_for(week.config)) == {order.code for order in orders}


@ONE_BUY
def test_an_identical_hts_order_placed_later_is_not_adopted_and_the_owner_decides(kis_week):
    """Our request never reached KIS; four minutes later the owner buys the same stock and quantity
    in HTS. That order is not ours: our order stays unknown (never "not received" while a look-alike
    is unexplained, never re-sent), the alert lists the candidate, and the owner closes it."""
    week = kis_week
    order = entry_with_lost_answer(week, "lost_request")
    assert week.fake.accepted_orders == []
    hts = week.fake.place_external_order("035720", "buy", order.quantity,
                                         at=week.fake.broker_now() + dt.timedelta(minutes=4))

    for minute in (10, 40, 59):  # well past the grace period
        summary = reconcile_orders(week.account, WEEK, now=week.at(WEEK, 9, minute))
        order.refresh_from_db()
        assert order.status == OrderStatus.UNKNOWN and order.broker_order_no == ""
        assert summary.external_orders == [hts]
    alert = unknown_alert(order)
    assert [c["order_no"] for c in alert.details["candidates"]] == [hts]
    assert "자동으로 연결하지" in alert.message and hts in alert.message
    place_weekly_buys(week.config, WEEK, week.at(WEEK, 10, 0))  # a redelivered entry sends nothing
    assert len([r for r in week.fake.requests if r.path == ORDER_CASH_PATH]) == 1

    declare_order_not_received(order, user=week.config.owner)
    order.refresh_from_db()
    assert order.status == OrderStatus.REJECTED and "접수되지 않은" in order.error_message
    assert unknown_alert(order).resolved_at is not None
    assert positions_for(week.config) == {}  # the HTS shares are the owner's, not the strategy's


@ONE_BUY
def test_two_lookalikes_in_flight_are_left_to_the_owner_who_adopts_the_right_one(kis_week):
    """KIS accepted our order (the answer was lost) and, within the same seconds, the owner's identical
    HTS order arrived: two candidates fit, so neither is adopted until the owner picks one."""
    week = kis_week
    order = entry_with_lost_answer(week)
    ours = week.fake.accepted_orders[0]["ODNO"]
    hts = week.fake.place_external_order("035720", "buy", order.quantity,
                                         at=week.fake.broker_now() + dt.timedelta(seconds=20))
    reconcile_orders(week.account, WEEK, now=week.at(WEEK, 9, 40))
    order.refresh_from_db()
    assert order.status == OrderStatus.UNKNOWN
    assert {c["order_no"] for c in unknown_alert(order).details["candidates"]} == {ours, hts}

    with pytest.raises(OrderDecisionError):  # a number that is not in the broker's orders
        adopt_broker_order(order, "9999999999", user=week.config.owner, now=week.at(WEEK, 9, 45))
    adopt_broker_order(order, ours.lstrip("0"), user=week.config.owner, now=week.at(WEEK, 9, 45))
    order.refresh_from_db()
    assert (order.status, order.broker_order_no, order.error_message) == (OrderStatus.FILLED, ours, "")
    assert unknown_alert(order).resolved_at is not None
    summary = reconcile_orders(week.account, WEEK, now=week.at(WEEK, 9, 50))
    assert summary.checked == 0  # nothing of ours is open any more; the HTS order stays the owner's
    with pytest.raises(OrderDecisionError):  # decided once
        declare_order_not_received(order, user=week.config.owner)


@ONE_BUY
def test_an_unknown_order_with_no_lookalike_is_closed_after_the_grace_period(kis_week):
    week = kis_week
    order = entry_with_lost_answer(week, "lost_request")
    reconcile_orders(week.account, WEEK, now=week.at(WEEK, 9, 20))
    order.refresh_from_db()
    assert order.status == OrderStatus.UNKNOWN
    reconcile_orders(week.account, WEEK, now=week.at(WEEK, 9, 40))
    order.refresh_from_db()
    assert order.status == OrderStatus.REJECTED and "접수되지 않은" in order.error_message
    assert unknown_alert(order).resolved_at is not None
    assert TradingAlert.objects.filter(kind=AlertKind.ORDER_REJECTED, key=f"order-{order.pk}").exists()


@ONE_BUY
def test_a_partly_filled_day_order_is_settled_after_the_close(kis_week):
    week = kis_week
    week.fake.auto_fill = False
    place_weekly_buys(week.config, WEEK, week.at(WEEK, 9, 5))
    order = Order.objects.get()
    assert order.status == OrderStatus.SUBMITTED
    [row] = week.fake.order_rows
    half = order.quantity // 2
    price = week.fake.stocks["035720"].price
    row.update(tot_ccld_qty=str(half), avg_prvs=str(price), tot_ccld_amt=str(half * price),
               rmn_qty=str(order.quantity - half))

    reconcile_orders(week.account, WEEK, now=week.at(WEEK, 15, 0))
    order.refresh_from_db()
    assert order.status == OrderStatus.PARTIALLY_FILLED and order.filled_quantity == half
    reconcile_orders(week.account, WEEK, now=week.at(WEEK, 15, 35))  # the book may still move
    order.refresh_from_db()
    assert order.status == OrderStatus.PARTIALLY_FILLED

    summary = reconcile_orders(week.account, WEEK, now=week.at(WEEK, 15, 45))
    order.refresh_from_db()
    assert summary.expired == 1
    assert order.status == OrderStatus.CANCELLED and order.filled_quantity == half
    assert f"미체결 {order.quantity - half:,}주" in order.error_message and "장 마감" in order.error_message
    assert positions_for(week.config)["035720"].quantity == half


@ONE_BUY
def test_the_reconcile_command_fails_when_the_orders_cannot_be_read(kis_week, capsys):
    week = kis_week
    week.fake.auto_fill = False
    place_weekly_buys(week.config, WEEK, week.at(WEEK, 9, 5))
    week.fake.add_fault(DAILY_ORDERS_PATH, "reject", times=None,
                        body='{"rt_cd": "1", "msg_cd": "MCA00124", "msg1": "해당 서비스를 찾을수 없습니다."}')
    week.at(WEEK, 9, 10)
    with pytest.raises(CommandError, match="reconciliation failed"):
        call_command("reconcile_orders")
    assert "reconciliation failed" in capsys.readouterr().err
    assert Order.objects.get().status == OrderStatus.SUBMITTED  # nothing concluded from a failed read
    with pytest.raises(CommandError):
        call_command("reconcile_orders", date=WEEK.isoformat())
    week.fake.clear_faults()
    call_command("reconcile_orders")  # readable again: exits 0


@ONE_BUY
def test_the_owner_picks_the_order_on_the_dashboard_and_others_cannot(kis_week, client, other_user):
    from django.urls import reverse

    week = kis_week
    order = entry_with_lost_answer(week)
    ours = week.fake.accepted_orders[0]["ODNO"]
    hts = week.fake.place_external_order("035720", "buy", order.quantity,
                                         at=week.fake.broker_now() + dt.timedelta(seconds=20))
    reconcile_orders(week.account, WEEK, now=week.at(WEEK, 9, 40))
    alert = unknown_alert(order)
    url = reverse("orders:decide_unknown_order", args=[alert.pk])

    client.force_login(other_user)
    assert client.post(url, {"action": "adopt", "order_no": ours}).status_code == 404
    client.force_login(week.config.owner)
    page = client.get(reverse("dashboard")).content.decode()
    assert "이 주문입니다" in page and ours in page and hts in page
    answer = client.post(url, {"action": "adopt", "order_no": ours}, HTTP_HX_REQUEST="true")
    assert answer.status_code == 200 and f'id="alert-{alert.pk}"' not in answer.content.decode()
    order.refresh_from_db()
    assert order.status == OrderStatus.FILLED and order.broker_order_no == ours
    assert client.post(url, {"action": "not_received"}, HTTP_HX_REQUEST="true").status_code == 400  # decided


@ONE_BUY
def test_a_send_in_flight_in_another_process_is_not_judged_by_a_concurrent_reconciliation(kis_week):
    """Another request claimed the send a moment ago (pending, attempts 1, no answer recorded yet) and
    KIS already lists the order: a reconciliation running meanwhile leaves it to that request (which
    records the number it gets back). Only when that request can no longer be in flight (it died) does
    reconciliation pair the order with the broker's row."""
    week = kis_week
    now = week.at(WEEK, 10, 0)
    order = Order.objects.create(
        broker_account=week.account, client_order_id="in-flight", trading_date=WEEK, code="035720", side="buy",
        order_type="01", quantity=3, reference_price=0, reason="manual", intent_at=now, send_attempts=1,
        sent_at=now,
    )
    accepted = week.fake.place_external_order("035720", "buy", 3, at=week.fake.broker_now())  # our request, at KIS
    summary = reconcile_orders(week.account, WEEK, now=week.at(WEEK, 10, 0))
    order.refresh_from_db()
    assert order.status == OrderStatus.PENDING and order.broker_order_no == "" and summary.unresolved == 1
    assert not TradingAlert.objects.filter(kind=AlertKind.ORDER_UNKNOWN).exists()
    reconcile_orders(week.account, WEEK, now=week.at(WEEK, 10, 5))  # that request died long ago
    order.refresh_from_db()
    assert order.status == OrderStatus.FILLED and order.broker_order_no == accepted
