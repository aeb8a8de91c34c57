"""Issue 14: does live trading follow the backtest? A paper week of the auto-trader compared with the
backtest of the same config over the same week and bars (`orders.drift`)."""

from __future__ import annotations

import datetime as dt
import json
from io import StringIO

import pytest
import time_machine
from django.core.management import call_command
from django.urls import reverse

from accounts.models import BrokerMode
from accounts.tests.factories import BrokerAccountFactory
from orders import tasks
from orders.drift import DriftError, compare_week, week_to_compare
from orders.models import AlertKind, Fill, Order, OrderSide, OrderStatus, TradingAlert, WeeklyDrift
from orders.replay import replay_paper_week
from strategies.models import StrategyConfig, UniverseMode

from .conftest import FRIDAY, MONDAY, at
from .test_api import jwt_client

pytestmark = pytest.mark.django_db

SATURDAY = FRIDAY + dt.timedelta(days=1)
AFTER_THE_WEEK = at(SATURDAY, 9)


@pytest.fixture(autouse=True)
def same_strategy_in_the_backtest(monkeypatch, stub_strategy):
    """The live planner and the drift's backtest use the same (stub) strategy."""
    monkeypatch.setattr("orders.drift.create_strategy", lambda key, params: stub_strategy)
    return stub_strategy


@pytest.fixture
def clock():
    with time_machine.travel(AFTER_THE_WEEK, tick=False) as traveller:
        yield traveller


@pytest.fixture
def paper_week(config, clock):
    """The week of MONDAY run by the live jobs on the paper broker: entry Monday, checks, exit Friday."""
    runs = replay_paper_week(config, MONDAY, until=AFTER_THE_WEEK)
    assert runs and Order.objects.filter(config=config, status=OrderStatus.FILLED).count() == 6
    return config


def sell_fill(config, code: str) -> Fill:
    return Fill.objects.get(order__config=config, order__code=code, order__side=OrderSide.SELL)


def test_a_paper_week_that_followed_the_backtest_has_no_gap_and_no_alert(paper_week, demo_bars):
    drift = compare_week(paper_week, MONDAY)
    assert (drift.week_start, drift.week_end) == (MONDAY, FRIDAY)
    assert (drift.matched_count, drift.missing_count, drift.extra_count, drift.qty_diff_count) == (6, 0, 0, 0)
    assert {(row["code"], row["side"], row["date"]) for row in drift.trades} == {
        (code, side, day.isoformat()) for code in demo_bars[-3:] for side, day in (("buy", MONDAY), ("sell", FRIDAY))}
    assert all(row["kind"] == "matched" and row["slippage_krw"] == 0 for row in drift.trades)
    assert drift.live_pnl == drift.backtest_pnl != 0
    assert (drift.pnl_gap_krw, drift.gap_bps, drift.slippage_krw, drift.slippage_bps) == (0, 0.0, 0, 0.0)
    assert 0 < drift.invested_krw <= 3_000_000
    assert drift.alert is False and drift.alert_reasons == []
    assert not TradingAlert.objects.filter(kind=AlertKind.DRIFT).exists()


def test_a_missing_fill_is_a_missing_trade_and_raises_one_alert(paper_week, demo_bars):
    code = demo_bars[-1]
    sell = sell_fill(paper_week, code)
    order = sell.order
    sell.delete()  # the broker refused the week-end sale: no fill
    Order.objects.filter(pk=order.pk).update(status=OrderStatus.REJECTED, filled_quantity=0, filled_amount=0,
                                             average_fill_price=0, error_message="주문가능수량 부족")
    drift = compare_week(paper_week, MONDAY)
    assert (drift.matched_count, drift.missing_count, drift.extra_count) == (5, 1, 0)
    [missing] = [row for row in drift.trades if row["kind"] == "missing"]
    assert (missing["code"], missing["side"], missing["date"]) == (code, "sell", FRIDAY.isoformat())
    assert missing["live_quantity"] == 0 and missing["backtest_quantity"] == order.quantity
    assert missing["live_order"]["status"] == "rejected"
    # The unsold position's P&L is not realised live: the gap is the backtest's P&L of that trade.
    assert drift.pnl_gap_krw == -missing["backtest_pnl"] != 0
    assert drift.alert is True and "백테스트에만 있는 거래 1건" in drift.alert_reasons
    [alert] = TradingAlert.objects.filter(kind=AlertKind.DRIFT)
    assert alert.account == paper_week.broker_account and alert.is_open
    assert paper_week.name in alert.message and "2025-11-24" in alert.message
    assert drift.trading_alert == alert and drift.alerted_at == AFTER_THE_WEEK


def test_a_worse_fill_price_is_slippage_in_krw_and_bp(paper_week, demo_bars):
    code = demo_bars[-2]
    buy = Fill.objects.get(order__config=paper_week, order__code=code, order__side=OrderSide.BUY)
    backtest_price = buy.price
    worse = backtest_price + backtest_price // 50  # 2% above the open the backtest bought at
    Fill.objects.filter(pk=buy.pk).update(price=worse, amount=worse * buy.quantity)
    drift = compare_week(paper_week, MONDAY)
    [row] = [row for row in drift.trades if row["slippage_krw"]]
    extra_paid = (worse - backtest_price) * buy.quantity
    assert (row["code"], row["side"], row["kind"]) == (code, "buy", "matched")
    assert (row["backtest_price"], row["live_price"]) == (backtest_price, worse)
    assert row["slippage_krw"] == extra_paid
    assert row["slippage_bps"] == round((worse - backtest_price) / backtest_price * 10_000, 2)
    # The week's slippage: KRW summed, bp weighted by the backtest's traded value of the matched trades.
    traded_value = sum(r["backtest_price"] * r["backtest_quantity"] for r in drift.trades)
    assert drift.slippage_krw == extra_paid
    assert drift.slippage_bps == round(extra_paid / traded_value * 10_000, 2)
    # Paying more lowers the realised P&L by as much; the gap is in bp of the backtest's cash invested.
    assert drift.pnl_gap_krw == drift.live_pnl - drift.backtest_pnl == -extra_paid
    assert drift.gap_bps == round(-extra_paid / drift.invested_krw * 10_000, 2)
    assert drift.missing_count == drift.extra_count == 0


@pytest.mark.parametrize("margin, alerted", [(1, False), (-1, True)])
def test_the_alert_threshold_is_the_configs(paper_week, demo_bars, margin, alerted):
    buy = Fill.objects.get(order__config=paper_week, order__code=demo_bars[-1], order__side=OrderSide.BUY)
    worse = buy.price + buy.price // 20  # 5% above
    Fill.objects.filter(pk=buy.pk).update(price=worse, amount=worse * buy.quantity)
    gap_bps = abs(compare_week(paper_week, MONDAY).gap_bps)
    assert gap_bps > 10  # well above rounding
    threshold = int(gap_bps) + 1 if margin > 0 else int(gap_bps) - 1
    StrategyConfig.objects.filter(pk=paper_week.pk).update(drift_alert_bps=threshold)
    paper_week.refresh_from_db()
    WeeklyDrift.objects.all().delete()
    TradingAlert.objects.filter(kind=AlertKind.DRIFT).delete()
    drift = compare_week(paper_week, MONDAY)
    assert drift.alert is alerted
    assert TradingAlert.objects.filter(kind=AlertKind.DRIFT).exists() is alerted
    if alerted:
        assert drift.alert_reasons == [f"손익 차이 {drift.pnl_gap_krw:+,}원 ({drift.gap_bps:+.1f}bp, 기준 {threshold}bp)"]


def test_an_extra_live_trade_is_counted_and_alerted(paper_week, demo_bars, paper_account):
    code = demo_bars[0]  # ranked last by the strategy: never bought by the backtest
    order = Order.objects.create(
        config=paper_week, broker_account=paper_account, client_order_id="extra-1", trading_date=MONDAY, code=code,
        side=OrderSide.BUY, quantity=3, reason="entry", status=OrderStatus.FILLED, filled_quantity=3,
        filled_amount=30_000, average_fill_price=10_000, intent_at=at(MONDAY, 9, 5))
    Fill.objects.create(order=order, cumulative_quantity=3, quantity=3, price=10_000, amount=30_000, commission=4,
                        filled_at=at(MONDAY, 9, 6))
    drift = compare_week(paper_week, MONDAY)
    assert (drift.matched_count, drift.missing_count, drift.extra_count) == (6, 0, 1)
    [extra] = [row for row in drift.trades if row["kind"] == "extra"]
    assert (extra["code"], extra["live_quantity"], extra["backtest_quantity"], extra["quantity_diff"]) == (code, 3, 0, 3)
    assert drift.alert and "실거래에만 있는 거래 1건" in drift.alert_reasons
    assert drift.pnl_gap_krw == 0  # bought, not sold: nothing realised


def test_recomputing_updates_the_row_and_never_repeats_the_alert(paper_week, demo_bars, clock):
    sell = sell_fill(paper_week, demo_bars[-1])
    sell.delete()
    first = compare_week(paper_week, MONDAY)
    alert = TradingAlert.objects.get(kind=AlertKind.DRIFT)
    clock.move_to(AFTER_THE_WEEK + dt.timedelta(hours=1))
    second = compare_week(paper_week, MONDAY)
    assert second.pk == first.pk and WeeklyDrift.objects.count() == 1
    assert (second.trades, second.pnl_gap_krw, second.missing_count) == (first.trades, first.pnl_gap_krw, 1)
    assert second.computed_at == AFTER_THE_WEEK + dt.timedelta(hours=1)
    assert TradingAlert.objects.filter(kind=AlertKind.DRIFT).count() == 1
    # Resolved by the owner, the week's alert stays resolved: a recompute does not raise it again.
    from orders.controls import resolve_alert
    resolve_alert(alert, user=None, note="확인함")
    compare_week(paper_week, MONDAY)
    assert TradingAlert.objects.filter(kind=AlertKind.DRIFT).count() == 1


def test_a_drift_that_goes_away_resolves_its_alert(paper_week, demo_bars):
    sell = sell_fill(paper_week, demo_bars[-1])
    values = {f: getattr(sell, f) for f in ("order", "cumulative_quantity", "quantity", "price", "amount",
                                             "commission", "tax", "filled_at")}
    sell.delete()
    assert compare_week(paper_week, MONDAY).alert
    Fill.objects.create(**values)  # the fill arrives late (reconciled after the comparison)
    drift = compare_week(paper_week, MONDAY)
    assert not drift.alert and drift.missing_count == 0
    alert = TradingAlert.objects.get(kind=AlertKind.DRIFT)
    assert not alert.is_open and alert.resolution_note.startswith("자동 해소")


def test_a_week_without_its_last_close_stored_is_not_compared(config, clock):
    with pytest.raises(DriftError, match="종가가 아직 저장되지 않아"):
        compare_week(config, MONDAY + dt.timedelta(weeks=1))
    assert not WeeklyDrift.objects.exists()


def test_the_week_to_compare_is_the_last_closed_one():
    assert week_to_compare(at(FRIDAY, 15, 29)) == MONDAY - dt.timedelta(weeks=1)
    assert week_to_compare(at(FRIDAY, 15, 30)) == MONDAY
    assert week_to_compare(at(SATURDAY, 9)) == MONDAY


def test_the_task_runs_on_the_weeks_last_trading_day(config):
    with time_machine.travel(at(FRIDAY, 17, 30), tick=False):
        replay_paper_week(config, MONDAY)
        first = tasks.compare_live_backtest()
        assert first == {config.pk: "ok"}
        assert tasks.compare_live_backtest() == first  # a duplicated delivery: same row, nothing new
    assert WeeklyDrift.objects.get().week_start == MONDAY
    with time_machine.travel(at(FRIDAY - dt.timedelta(days=1), 17, 30), tick=False):
        assert "skipped" in tasks.compare_live_backtest()


def test_the_command_prints_and_stores_the_comparison(paper_week):
    out = StringIO()
    call_command("compare_live_backtest", "--week", "2025-11-26", "--json", stdout=out)
    payload = json.loads(out.getvalue())
    assert payload["week_start"] == "2025-11-24" and payload["errors"] == {}
    [row] = payload["drifts"]
    assert (row["config"], row["matched"], row["missing"], row["gap_bps"], row["alert"]) == (paper_week.pk, 6, 0, 0.0, False)
    out = StringIO()
    call_command("compare_live_backtest", "--config", str(paper_week.pk), stdout=out)  # default: last closed week
    assert f"config {paper_week.pk} weekly: gap +0 KRW" in out.getvalue()
    assert WeeklyDrift.objects.count() == 1


def test_the_api_lists_only_the_owners_comparisons(paper_week, other_user, user, demo_bars):
    mine = compare_week(paper_week, MONDAY)
    account = BrokerAccountFactory(owner=other_user, mode=BrokerMode.PAPER, app_key="", app_secret="",
                                   account_number="")
    theirs_config = StrategyConfig.objects.create(
        owner=other_user, name="theirs", strategy_key="ma_crossover", params={}, universe_mode=UniverseMode.CODES,
        universe_codes=" ".join(demo_bars), max_positions=3, cash_per_week=3_000_000, is_active=True,
        broker_account=account)
    theirs = compare_week(theirs_config, MONDAY)
    response = jwt_client(user).get(reverse("api:drift-list"))
    assert response.status_code == 200
    rows = response.json()["results"]
    assert [row["id"] for row in rows] == [mine.pk]
    assert rows[0]["config_name"] == "weekly" and rows[0]["threshold_bps"] == 100
    assert len(rows[0]["trades"]) == 6 and rows[0]["trades"][0]["kind"] == "matched"
    assert jwt_client(user).get(reverse("api:drift-detail", args=[theirs.pk])).status_code == 404
    assert jwt_client(other_user).get(reverse("api:drift-detail", args=[theirs.pk])).status_code == 200
    assert jwt_client(user).get(reverse("api:drift-list"), {"alert": "true"}).json()["results"] == []
    assert jwt_client(user).get(reverse("api:drift-list"), {"week": "2025-11-27"}).json()["results"][0]["id"] == mine.pk
    assert jwt_client(user).get(reverse("api:drift-list"), {"week": "nope"}).status_code == 400


def test_the_drift_api_is_in_the_openapi_schema(client):
    schema = client.get(reverse("api:schema")).content.decode()
    assert "/api/drift/" in schema and "WeeklyDrift" in schema


def test_the_dashboard_shows_the_latest_week_per_active_config(client, user, paper_week, demo_bars):
    sell_fill(paper_week, demo_bars[-1]).delete()
    compare_week(paper_week, MONDAY)
    client.force_login(user)
    page = client.get(reverse("dashboard")).content.decode()
    assert f'id="drift-{paper_week.pk}"' in page
    assert "badge-halted" in page.split('id="drift"')[1].split("</section>")[0]
