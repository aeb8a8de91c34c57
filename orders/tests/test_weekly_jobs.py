"""The weekly jobs on the paper broker with demo bars: entry, idempotency, exits, missed slots."""

from __future__ import annotations

import datetime as dt
import math

import pytest
from django.db import IntegrityError, transaction

from market.krx import DEFAULT_COMMISSION_RATE, commission_for
from market.models import DailyBar, PaperOrder, PaperPosition
from orders.models import Fill, Order, OrderStatus, WeeklyRun, WeeklyRunStatus
from orders.positions import positions_for
from orders.reconciliation import reconcile_orders
from orders.weekly import place_weekly_buys, run_exit_checks

from .conftest import FRIDAY, MONDAY, at

pytestmark = pytest.mark.django_db


def _entry(config, now=None):
    result = place_weekly_buys(config, MONDAY, now or at(MONDAY, 9, 5))
    reconcile_orders(config.broker_account, MONDAY, now=at(MONDAY, 9, 10))
    return result


def test_entry_buys_the_top_ranked_at_most_max_positions(config, demo_bars):
    result = _entry(config)
    assert result.run.status == WeeklyRunStatus.COMPLETE
    orders = list(Order.objects.order_by("code"))
    # Score = column index, so the three last codes win; equal split of min(cash_per_week, the
    # account's orderable cash), sized at the entry day's open (known at 09:05), as the backtest.
    assert [o.code for o in orders] == demo_bars[-3:]
    for order in orders:
        opening = DailyBar.objects.get(instrument__code=order.code, date=MONDAY).open
        per = 3_000_000 // 3
        expected = math.floor(per / (opening * (1 + float(DEFAULT_COMMISSION_RATE))))
        while expected * opening + commission_for(expected * opening) > per:
            expected -= 1
        assert (order.side, order.order_type, order.quantity, order.reference_price) == ("buy", "01", expected, opening)
        assert order.status == OrderStatus.FILLED
        assert order.average_fill_price == opening  # a market order before 12:00 fills at the open
        [fill] = order.fills.all()
        assert (fill.quantity, fill.price, fill.commission) == (expected, opening, commission_for(expected * opening))
    assert set(positions_for(config)) == set(demo_bars[-3:])


def test_entry_twice_or_racing_creates_no_second_order(config):
    first = place_weekly_buys(config, MONDAY, at(MONDAY, 9, 5))
    second = place_weekly_buys(config, MONDAY, at(MONDAY, 9, 5))
    third = place_weekly_buys(config, MONDAY, at(MONDAY, 9, 6))
    assert first.run.pk == second.run.pk == third.run.pk
    assert WeeklyRun.objects.count() == 1
    assert Order.objects.count() == 3
    assert PaperOrder.objects.count() == 3  # orders that reached the broker


def test_a_running_run_is_left_alone_by_a_duplicate_delivery(config):
    run = WeeklyRun.objects.create(config=config, iso_week="2025-W48", week_start=MONDAY, job="entry",
                                   trading_date=MONDAY, status=WeeklyRunStatus.RUNNING, started_at=at(MONDAY, 9, 5))
    result = place_weekly_buys(config, MONDAY, at(MONDAY, 9, 6))
    assert result.run.pk == run.pk and result.run.status == WeeklyRunStatus.RUNNING
    assert not Order.objects.exists() and not PaperOrder.objects.exists()


def test_the_database_refuses_a_second_run_or_intent(config):
    place_weekly_buys(config, MONDAY, at(MONDAY, 9, 5))
    with pytest.raises(IntegrityError), transaction.atomic():
        WeeklyRun.objects.create(config=config, iso_week="2025-W48", week_start=MONDAY, job="entry",
                                 trading_date=MONDAY)
    order = Order.objects.first()
    with pytest.raises(IntegrityError), transaction.atomic():
        Order.objects.create(client_order_id=order.client_order_id, broker_account=order.broker_account,
                             trading_date=MONDAY, code=order.code, side="buy", quantity=1, reason="entry",
                             intent_at=at(MONDAY, 9, 5))


def test_entry_runs_only_on_the_weeks_first_trading_day(config):
    assert place_weekly_buys(config, MONDAY + dt.timedelta(days=1), at(MONDAY, 9, 5)) is None
    assert place_weekly_buys(config, dt.date(2025, 11, 22), at(MONDAY, 9, 5)) is None  # Saturday
    assert not WeeklyRun.objects.exists()


def test_missed_entry_after_the_cutoff_is_skipped_with_a_reason(config):
    result = place_weekly_buys(config, MONDAY, at(MONDAY, 13, 30))
    assert result.run.status == WeeklyRunStatus.SKIPPED
    assert "13:00" in result.run.reason
    assert not Order.objects.exists()


def test_late_entry_before_the_cutoff_still_runs(config):
    result = place_weekly_buys(config, MONDAY, at(MONDAY, 11, 0))
    assert result.run.status == WeeklyRunStatus.COMPLETE
    assert Order.objects.count() == 3


def test_dry_run_plans_without_writing(config):
    result = place_weekly_buys(config, MONDAY, at(MONDAY, 9, 5), dry_run=True)
    assert len(result.planned) == 3 and result.run is None
    assert not Order.objects.exists() and not WeeklyRun.objects.exists() and not PaperOrder.objects.exists()


def test_checks_hold_midweek_and_the_last_day_liquidates(config):
    _entry(config)
    for offset in (0, 1, 2, 3):  # Mon..Thu checks: no stop-loss/take-profit/sell signal
        day = MONDAY + dt.timedelta(days=offset)
        result = run_exit_checks(config, day, at(day, 15, 15))
        assert result.run.job == "check" and result.run.status == WeeklyRunStatus.COMPLETE
    assert not Order.objects.filter(side="sell").exists()
    held = positions_for(config)
    result = run_exit_checks(config, FRIDAY, at(FRIDAY, 15, 15))
    assert result.run.job == "exit" and result.run.status == WeeklyRunStatus.COMPLETE
    sells = {o.code: o for o in Order.objects.filter(side="sell")}
    assert {code: o.quantity for code, o in sells.items()} == {code: p.quantity for code, p in held.items()}
    assert {o.reason for o in sells.values()} == {"week_end"}
    # Running the exit again (a duplicated task) sends nothing more; reconciliation settles the fills.
    run_exit_checks(config, FRIDAY, at(FRIDAY, 15, 16))
    reconcile_orders(config.broker_account, FRIDAY, now=at(FRIDAY, 16, 0))
    reconcile_orders(config.broker_account, FRIDAY, now=at(FRIDAY, 16, 5))
    assert Order.objects.filter(side="sell").count() == len(held)
    assert PaperOrder.objects.filter(side="sell").count() == len(held)
    for order in sells.values():
        order.refresh_from_db()
        close = DailyBar.objects.get(instrument__code=order.code, date=FRIDAY).close
        assert (order.status, order.average_fill_price) == (OrderStatus.FILLED, close)
    assert Fill.objects.filter(order__side="sell").count() == len(held)  # repeated polls add nothing
    assert positions_for(config) == {}
    assert not PaperPosition.objects.exists()


def test_stop_loss_and_take_profit_sell_at_that_close(config, demo_bars, stub_strategy):
    _entry(config)
    stub_strategy.stop_loss, stub_strategy.take_profit = -0.05, 0.11
    tuesday = MONDAY + dt.timedelta(days=1)
    loser, winner, keeper = demo_bars[-3:]
    for code, factor in ((loser, 0.9), (winner, 1.2)):
        entry = Order.objects.get(code=code).average_fill_price
        price = int(entry * factor) // 10 * 10
        DailyBar.objects.filter(instrument__code=code, date=tuesday).update(
            close=price, high=max(price, entry), low=min(price, entry))
    result = run_exit_checks(config, tuesday, at(tuesday, 15, 15))
    assert result.run.status == WeeklyRunStatus.COMPLETE
    reconcile_orders(config.broker_account, tuesday, now=at(tuesday, 16, 0))
    sells = {o.code: o for o in Order.objects.filter(side="sell")}
    assert {code: o.reason for code, o in sells.items()} == {loser: "stop_loss", winner: "take_profit"}
    for code, order in sells.items():
        assert order.status == OrderStatus.FILLED
        assert order.average_fill_price == DailyBar.objects.get(instrument__code=code, date=tuesday).close
    assert set(positions_for(config)) == {keeper}


def test_sell_signal_exits(config, monkeypatch):
    from .conftest import SellAllStrategy

    _entry(config)
    monkeypatch.setattr("orders.planning.create_strategy",
                        lambda key, params: SellAllStrategy(stop_loss=-0.5, take_profit=5.0))
    tuesday = MONDAY + dt.timedelta(days=1)
    run_exit_checks(config, tuesday, at(tuesday, 15, 15))
    assert {o.reason for o in Order.objects.filter(side="sell")} == {"signal"}
    assert Order.objects.filter(side="sell").count() == 3


def test_a_missed_friday_exit_is_caught_up_at_the_next_check(config, monkeypatch):
    _entry(config)
    held = positions_for(config)
    # No exit ran on Friday; the next week's Monday check sells the carried positions.
    next_monday = MONDAY + dt.timedelta(days=7)
    monkeypatch.setattr("orders.planning.day_prices", lambda codes, day, broker: {
        code: DailyBar.objects.get(instrument__code=code, date=FRIDAY).close for code in codes})
    result = run_exit_checks(config, next_monday, at(next_monday, 15, 15), dry_run=True)
    assert {(p.code, p.quantity, p.reason) for p in result.planned} == {
        (code, pos.quantity, "week_end") for code, pos in held.items()}


def test_never_sells_more_than_held(config):
    _entry(config)
    run_exit_checks(config, FRIDAY, at(FRIDAY, 15, 15))
    # A manual exit the same day finds the open/filled sells and plans nothing more.
    result = run_exit_checks(config, FRIDAY, at(FRIDAY, 15, 20), dry_run=True)
    assert result.planned == []


def test_intents_another_process_stored_meanwhile_are_kept_and_the_rest_stored_once(config):
    """The plan's intents go in with one insert; when a client order id is already taken (another process
    stored it meanwhile) the stored row is kept as it is and every other intent is stored once."""
    from orders.planning import PlannedOrder
    from orders.weekly import _store_intents

    run = WeeklyRun.objects.create(config=config, iso_week="2025-W48", week_start=MONDAY, job="entry",
                                   trading_date=MONDAY, status=WeeklyRunStatus.RUNNING, started_at=at(MONDAY, 9, 5))
    planned = [PlannedOrder(code=code, side="buy", quantity=quantity, reason="entry", reference_price=10_000,
                            client_order_id=f"intent-{code}") for code, quantity in (("A", 1), ("B", 2), ("C", 3))]
    taken = Order.objects.create(client_order_id="intent-B", broker_account=config.broker_account, config=config,
                                 trading_date=MONDAY, code="B", side="buy", quantity=7, reason="entry",
                                 intent_at=at(MONDAY, 9, 4))
    with transaction.atomic():
        _store_intents(run, config, planned, MONDAY, at(MONDAY, 9, 5))
    rows = {order.client_order_id: order for order in Order.objects.all()}
    assert sorted(rows) == ["intent-A", "intent-B", "intent-C"]
    assert rows["intent-B"].pk == taken.pk and rows["intent-B"].quantity == 7 and rows["intent-B"].run_id is None
    assert rows["intent-A"].run_id == run.pk and rows["intent-C"].quantity == 3
