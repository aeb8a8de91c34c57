"""Cheaper orders (docs/scaling.md): within a run the orderable cash is read once and kept between the
buys, asked again only when the kept figure is not enough; an account's task shares one KIS client
among its configs; the sends of a run share the account row and the previous closes; the entry day's
open of a code is read from the real host once a minute for every account. Over real HTTP against the
fake KIS host (`kis_week`), counted at the host's side."""

from __future__ import annotations

import datetime as dt
import json
import re

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from market.brokers import broker_for
from market.kis import KisClient
from market.krx import commission_for
from market.tests.fake_kis import BUYABLE_PATH, ORDER_CASH_PATH, QUOTE_PATH
from orders import execution, fanout
from orders.execution import SendSession, send_order
from orders.market_inputs import NO_BAR, OPEN, UNKNOWN, EntryOpens
from orders.models import AlertKind, Order, OrderStatus, TradingAlert, WeeklyRunStatus
from orders.weekly import place_weekly_buys
from strategies.models import StrategyConfig, UniverseMode

from .kis_week import CODES, WEEK, KisWeek

pytestmark = pytest.mark.django_db

THREE_BUYS = {"mode": "real", "max_positions": 3, "cash_per_week": 3_000_000}


def buy(week: KisWeek, code: str, quantity: int, number: int) -> Order:
    return Order.objects.create(
        broker_account=week.account, client_order_id=f"cheap-{number}", trading_date=WEEK, code=code, side="buy",
        order_type="01", quantity=quantity, reference_price=week.fake.stocks[code].price, reason="manual",
        intent_at=week.at(WEEK, 9, 5))


def cost(price: int, quantity: int) -> int:
    return price * quantity + commission_for(price * quantity)


# ------------------------------------------------------------------------------------------- the cash
@pytest.mark.parametrize("kis_week", [THREE_BUYS], ids=["real"], indirect=True)
def test_an_entry_reads_the_orderable_cash_once_for_all_its_buys(kis_week):
    week = kis_week
    result = week.entry(WEEK)
    assert result.run.status == WeeklyRunStatus.COMPLETE, result.run.reason
    assert Order.objects.filter(status=OrderStatus.FILLED).count() == 3 == len(week.fake.accepted_orders)
    # The planner's read only (before: one more per order in the risk checks).
    assert week.fake.count(BUYABLE_PATH) == 1
    assert result.run.plan["orderable_cash"] == 10_000_000


@pytest.mark.parametrize("kis_week", [{"mode": "real"}], ids=["real"], indirect=True)
def test_the_broker_is_asked_again_only_when_the_kept_cash_is_not_enough(kis_week):
    week = kis_week
    now = week.at(WEEK, 9, 5)
    broker = broker_for(week.account)
    price = week.fake.stocks["005930"].price
    session = SendSession(week.account, codes=["005930"], trading_date=WEEK, orderable_cash=cost(price, 2) + 100)

    first = buy(week, "005930", 2, 1)
    send_order(first, broker, now, True, "", session=session)
    first.refresh_from_db()
    assert first.status == OrderStatus.SUBMITTED and week.fake.count(BUYABLE_PATH) == 0  # the kept figure was enough
    assert session.cash.orderable == 100

    # 100 won kept, one share needed: KIS says how much there is now (a deposit would count), and decides.
    second = buy(week, "005930", 1, 2)
    send_order(second, broker, now, True, "", session=session)
    second.refresh_from_db()
    assert second.status == OrderStatus.SUBMITTED, second.error_message
    assert week.fake.count(BUYABLE_PATH) == 1
    at_read = 10_000_000 - price * 2  # the fake fills at once: the first buy's amount is gone
    assert session.cash.orderable == at_read - cost(price, 1)

    # Not enough by the kept figure and not enough at KIS either: refused, nothing sent, one more read.
    week.fake.cash = 50_000
    session.cash.orderable = 10_000
    third = buy(week, "005930", 1, 3)
    send_order(third, broker, now, True, "", session=session)
    third.refresh_from_db()
    assert third.status == OrderStatus.REJECTED and third.raw_response == {"risk": "buyable_cash"}
    assert "가능 50,000원" in third.error_message and third.send_attempts == 0
    assert TradingAlert.objects.filter(kind=AlertKind.RISK_BLOCKED, key=f"order-{third.pk}").exists()
    assert week.fake.count(BUYABLE_PATH) == 2 and len(week.fake.accepted_orders) == 2
    assert session.cash.orderable == 50_000


@pytest.mark.parametrize("kis_week", [{"mode": "real"}], ids=["real"], indirect=True)
def test_a_refusal_by_kis_makes_the_next_buy_read_the_cash(kis_week):
    """KIS refusing a buy (here 장운영시간 아님; 주문가능금액 초과 alike) means the kept figure may be wrong:
    the next buy of the run reads the broker's again."""
    week = kis_week
    week.fake.add_fault(ORDER_CASH_PATH, "reject", times=1, method="POST")
    result = week.entry(WEEK)
    assert Order.objects.get(code="035720").status == OrderStatus.REJECTED
    assert Order.objects.get(code="005930").status == OrderStatus.FILLED
    assert result.run.status == WeeklyRunStatus.COMPLETE
    assert week.fake.count(BUYABLE_PATH) == 2  # the planner's, and the second buy's after the refusal


def test_without_a_session_every_buy_reads_the_cash(kis_week):
    """A manual order (no run) reads the broker's orderable cash itself, as before."""
    week = kis_week
    now = week.at(WEEK, 9, 5)
    for number in (1, 2):
        order = buy(week, "005930", 1, number)
        send_order(order, broker_for(week.account), now, True, "")
        order.refresh_from_db()
        assert order.status == OrderStatus.SUBMITTED
    assert week.fake.count(BUYABLE_PATH) == 2


# ------------------------------------------------------------------------------------------- queries
@pytest.mark.parametrize("kis_week", [THREE_BUYS], ids=["real"], indirect=True)
def test_the_orders_of_an_entry_cost_few_queries(kis_week, monkeypatch):
    """Per order: the claim, the answer and one read of the kill switch and limits (before: 8 in the
    send — the order and its account read again, the kill switch and the limits apart, the previous
    close, the open alerts — and 5 to store the intent)."""
    week = kis_week
    now = week.at(WEEK, 9, 5)
    per_send = []
    real_send = execution.send_order

    def counted_send(*args, **kwargs):
        with CaptureQueriesContext(connection) as sent:
            real_send(*args, **kwargs)
        per_send.append(len(sent.captured_queries))

    monkeypatch.setattr("orders.weekly.send_order", counted_send)
    with CaptureQueriesContext(connection) as entry:
        result = place_weekly_buys(week.config, WEEK, now)
    assert result.run.status == WeeklyRunStatus.COMPLETE
    assert per_send == [3, 3, 3]
    inserts = [q["sql"] for q in entry.captured_queries if re.match(r'INSERT INTO [`"]orders_order[`"]', q["sql"])]
    assert len(inserts) == 1  # the three intents in one insert, in the plan's transaction
    assert len(entry.captured_queries) <= 56  # 72 before, for the same entry of three orders


# ------------------------------------------------------------------------------------------- one client
@pytest.mark.parametrize("kis_week", [{"mode": "real", "max_positions": 1, "cash_per_week": 1_000_000}], ids=["real"],
                         indirect=True)
def test_an_account_task_shares_one_kis_client_among_its_configs(kis_week, monkeypatch, user):
    week = kis_week
    made, closed = [], []

    class CountedClient(KisClient):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            made.append(self)

        def close(self):
            closed.append(self)
            super().close()

    monkeypatch.setattr("market.brokers.kis.KisClient", CountedClient)
    second = StrategyConfig.objects.create(
        owner=user, name="second", strategy_key="ma_crossover", params={}, universe_mode=UniverseMode.CODES,
        universe_codes=" ".join(CODES), max_positions=2, cash_per_week=1_000_000, is_active=True,
        broker_account=week.account)
    now = week.at(WEEK, 9, 5)
    results = fanout.run_account_job("entry", week.account.pk, [week.config.pk, second.pk], WEEK,
                                     fanout.job_deadline("entry", WEEK), now=lambda: now)
    assert results == {week.config.pk: WeeklyRunStatus.COMPLETE, second.pk: WeeklyRunStatus.COMPLETE}
    assert len(made) == 1 and closed == made  # one client for both configs, closed at the task's end
    assert Order.objects.filter(config=second).exists() and Order.objects.filter(config=week.config).exists()
    assert week.fake.count("/oauth2/tokenP") == 1


# ------------------------------------------------------------------------------------------- shared opens
@pytest.mark.parametrize("kis_week", [{"mode": "real"}], ids=["real"], indirect=True)
def test_the_entry_open_of_a_code_is_read_once_a_minute_on_the_real_host(kis_week):
    week = kis_week
    broker = broker_for(week.account)
    now = week.at(WEEK, 9, 5)
    opening = week.fake.stocks["005930"].base_price
    for _ in range(3):  # three accounts' planners in the same minute
        assert EntryOpens(["005930"], WEEK, now, broker).lookup("005930") == (OPEN, opening)
    assert week.fake.count(QUOTE_PATH) == 1
    later = now + dt.timedelta(minutes=1)
    assert EntryOpens(["005930"], WEEK, later, broker).lookup("005930") == (OPEN, opening)
    assert week.fake.count(QUOTE_PATH) == 2  # a new minute asks KIS again


@pytest.mark.parametrize("kis_week", [{"mode": "real"}], ids=["real"], indirect=True)
def test_a_failed_or_halted_quote_is_not_mistaken_for_an_open(kis_week):
    week = kis_week
    broker = broker_for(week.account)
    now = week.at(WEEK, 9, 5)
    week.fake.add_fault(QUOTE_PATH, "reject", times=1,
                        body='{"rt_cd": "1", "msg_cd": "MCA00124", "msg1": "해당 서비스를 찾을수 없습니다."}')
    assert EntryOpens(["005930"], WEEK, now, broker).lookup("005930") == (UNKNOWN, None)
    # The failure is not shared: the next account asks KIS, and shares what it gets.
    assert EntryOpens(["005930"], WEEK, now, broker).lookup("005930")[0] == OPEN
    assert week.fake.count(QUOTE_PATH) == 2

    halted = json.loads(week.fake._quote({"FID_INPUT_ISCD": "000660"}).body)
    halted["output"]["temp_stop_yn"] = "Y"  # trading halted: no bar that day, shared for the minute as well
    week.fake.add_fault(QUOTE_PATH, "reject", times=1, body=json.dumps(halted, ensure_ascii=False))
    assert EntryOpens(["000660"], WEEK, now, broker).lookup("000660") == (NO_BAR, None)
    assert EntryOpens(["000660"], WEEK, now, broker).lookup("000660") == (NO_BAR, None)
    assert week.fake.count(QUOTE_PATH) == 3


def test_the_paper_trading_host_is_not_shared(kis_week):
    """모의투자 (the default `kis_week`): every planner asks its own host."""
    week = kis_week
    broker = broker_for(week.account)
    now = week.at(WEEK, 9, 5)
    for _ in range(2):
        assert EntryOpens(["005930"], WEEK, now, broker).lookup("005930")[0] == OPEN
    assert week.fake.count(QUOTE_PATH) == 2
