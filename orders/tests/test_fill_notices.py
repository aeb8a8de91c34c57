"""Fill notices (issue 13) applied once, whatever arrives first: the KIS notice before, after or instead of
the reconciliation's daily-orders row (against the fake KIS host over real HTTP), redelivered, split over
two partial fills, ahead of the order's REST answer, a rejection; the paper broker's own fill notices; and
the owner's events on the bus, published only after the commit.

The tests run with real transactions (`transaction=True`): notices and events are sent on commit."""

from __future__ import annotations

import asyncio
import datetime as dt
import threading
import time

import pytest
from django.db import transaction

from market.kis.realtime.records import FillNotice
from market.krx import SEOUL
from market.models import DailyBar, PaperOrder
from market.streaming import events
from market.streaming.bus import InProcessBus, use_bus
from market.streaming.signals import fill_notice_received
from market.tests.fake_kis import DAILY_ORDERS_PATH, ORDER_CASH_PATH
from orders.fill_notices import apply_fill_notice
from orders.manual import place_manual_order
from orders.models import AlertKind, BrokerFillNotice, Fill, Order, OrderStatus, TradeLog, TradingAlert
from orders.reconciliation import reconcile_orders
from orders.weekly import place_weekly_buys

from .conftest import MONDAY, at
from .kis_week import WEEK

pytestmark = pytest.mark.django_db(transaction=True)

ONE_BUY = pytest.mark.parametrize("kis_week", [{"max_positions": 1}], ids=["vts"], indirect=True)
SAMSUNG = "005930"


# ------------------------------------------------------------------------------------------- the owner's events
class RecordingBus(InProcessBus):
    """The in-process bus, noting for each publish whether the publisher was still inside a transaction."""

    def __init__(self) -> None:
        super().__init__()
        self.published: list[tuple[str, dict, bool]] = []

    def publish(self, channel, message):
        self.published.append((channel, dict(message), transaction.get_connection().in_atomic_block))
        super().publish(channel, message)


class Listener:
    """A subscriber of one channel on its own event loop (as the SSE view would be)."""

    def __init__(self, bus: InProcessBus, channel: str) -> None:
        self.bus, self.channel = bus, channel
        self.messages: list[dict] = []
        self._ready = threading.Event()
        self._thread = threading.Thread(target=lambda: asyncio.run(self._main()), daemon=True)

    async def _main(self) -> None:
        self._loop, self._stop = asyncio.get_running_loop(), asyncio.Event()
        async with self.bus.subscribe([self.channel]) as subscription:
            self._ready.set()

            async def read() -> None:
                async for _channel, message in subscription:
                    self.messages.append(message)

            reader = asyncio.create_task(read())
            await self._stop.wait()
            reader.cancel()

    def start(self) -> Listener:
        self._thread.start()
        assert self._ready.wait(5)
        return self

    def stop(self) -> None:
        self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(5)

    def settle(self) -> list[dict]:
        """Everything published so far, delivered: a marker is published and awaited (messages arrive in order)."""
        marker = {"type": "marker", "n": time.monotonic()}
        self.bus.publish(self.channel, marker)
        deadline = time.monotonic() + 5
        while marker not in self.messages:
            assert time.monotonic() < deadline, "the bus did not deliver"
            time.sleep(0.005)
        return [message for message in self.messages if message["type"] != "marker"]

    def of_kind(self, kind: str) -> list[dict]:
        return [message for message in self.settle() if message["type"] == kind]


@pytest.fixture
def bus():
    with use_bus(RecordingBus()) as recording:
        yield recording


@pytest.fixture
def listener(bus, user):
    subscriber = Listener(bus, events.user_channel(user.pk)).start()
    yield subscriber
    subscriber.stop()


def assert_after_commit(bus: RecordingBus) -> None:
    assert bus.published and all(not in_transaction for _c, _m, in_transaction in bus.published)


# ------------------------------------------------------------------------------------------- KIS (fake host)
def submitted_order(week) -> Order:
    """The entry's one market buy, accepted by KIS and not filled yet."""
    week.fake.auto_fill = False
    place_weekly_buys(week.config, WEEK, week.at(WEEK, 9, 5))
    order = Order.objects.get()
    assert order.status == OrderStatus.SUBMITTED and order.broker_order_no
    return order


def broker_fills(week, order: Order, quantity: int, price: int, *, minute: int) -> FillNotice:
    """KIS fills `quantity` more shares at `price` at 09:`minute`: its daily-orders row moves on, and this
    is the notice it sends (H0STCNI9, order number unpadded as the parser gives it)."""
    moment = week.at(WEEK, 9, minute)
    row = next(row for row in week.fake.order_rows if row["odno"] == order.broker_order_no)
    filled, amount = int(row["tot_ccld_qty"]) + quantity, int(row["tot_ccld_amt"]) + quantity * price
    row.update(tot_ccld_qty=str(filled), tot_ccld_amt=str(amount), avg_prvs=str(round(amount / filled)),
               rmn_qty=str(int(row["ord_qty"]) - filled))
    return FillNotice(
        customer_id="hts-user", account_no=week.fake.account_no, order_no=row["odno"].lstrip("0"),
        original_order_no="", side=order.side, correction="0", order_kind=order.order_type, code=order.code,
        quantity=quantity, price=price, time=moment.astimezone(SEOUL).time().replace(microsecond=0),
        rejected=False, is_fill=True, acceptance="2", branch_no=row["ord_gno_brno"],
        order_quantity=order.quantity, order_price=order.price, name=row["prdt_name"])


def deliver(week, notice: FillNotice):
    """As the streamer does: the signal, outside any transaction."""
    [(_receiver, outcome)] = fill_notice_received.send(sender=None, account_id=week.account.pk, notice=notice,
                                                       source="kis")
    return outcome


def reconcile(week, minute: int):
    return reconcile_orders(week.account, WEEK, now=week.at(WEEK, 9, minute), positions=False)


def broker_row(week, order: Order) -> dict:
    return next(row for row in week.fake.order_rows if row["odno"] == order.broker_order_no)


def assert_recorded_once(order: Order, week, fills: int) -> Order:
    """`fills` fills, each with one TradeLog row and one FILLED alert; quantity and amount are the broker's."""
    order.refresh_from_db()
    row = broker_row(week, order)
    assert Fill.objects.filter(order=order).count() == fills
    assert TradeLog.objects.filter(fill__order=order).count() == fills
    assert TradingAlert.objects.filter(kind=AlertKind.FILLED).count() == fills
    assert sorted(TradingAlert.objects.filter(kind=AlertKind.FILLED).values_list("details__fill", flat=True)) == \
        sorted(Fill.objects.filter(order=order).values_list("pk", flat=True))
    assert (order.filled_quantity, order.filled_amount) == (int(row["tot_ccld_qty"]), int(row["tot_ccld_amt"]))
    assert sum(Fill.objects.filter(order=order).values_list("quantity", flat=True)) == order.filled_quantity
    assert sum(Fill.objects.filter(order=order).values_list("amount", flat=True)) == order.filled_amount
    return order


@ONE_BUY
def test_a_notice_before_the_reconciliation_row_gives_one_fill(kis_week, bus, listener):
    week = kis_week
    order = submitted_order(week)
    half = order.quantity // 2
    outcome = deliver(week, broker_fills(week, order, half, 41_250, minute=6))
    assert outcome.new and outcome.order_id == order.pk and outcome.fills_recorded == 1
    order = assert_recorded_once(order, week, fills=1)
    assert order.status == OrderStatus.PARTIALLY_FILLED and order.average_fill_price == 41_250

    reconcile(week, 10)  # the row says the same: nothing new
    order = assert_recorded_once(order, week, fills=1)
    assert order.status == OrderStatus.PARTIALLY_FILLED
    [fill_event] = listener.of_kind("fill")
    assert fill_event["message"] == f"035720 매수 {half:,}주 체결 (41,250원)"
    assert (fill_event["order_id"], fill_event["fill_quantity"], fill_event["filled_quantity"]) == (
        order.pk, half, half)
    assert [event["status"] for event in listener.of_kind("order")] == [OrderStatus.SUBMITTED,
                                                                        OrderStatus.PARTIALLY_FILLED]
    assert_after_commit(bus)


@ONE_BUY
def test_a_notice_after_the_reconciliation_row_adds_nothing(kis_week, bus, listener):
    week = kis_week
    order = submitted_order(week)
    half = order.quantity // 2
    notice = broker_fills(week, order, half, 41_300, minute=6)
    assert reconcile(week, 10).fills_recorded == 1
    outcome = deliver(week, notice)
    assert outcome.new and outcome.fills_recorded == 0
    assert BrokerFillNotice.objects.get().applied_at is not None  # seen, and found already counted
    order = assert_recorded_once(order, week, fills=1)
    assert order.status == OrderStatus.PARTIALLY_FILLED and order.filled_quantity == half
    assert order.average_fill_price == 41_300
    assert len(listener.of_kind("fill")) == 1
    assert_after_commit(bus)


@ONE_BUY
def test_a_notice_instead_of_the_reconciliation_records_the_fill(kis_week, listener):
    """The daily orders cannot be read: the notice alone records the fill; once they can, nothing changes."""
    week = kis_week
    order = submitted_order(week)
    notice = broker_fills(week, order, order.quantity, 41_250, minute=6)
    week.fake.add_fault(DAILY_ORDERS_PATH, "reject", times=None,
                        body='{"rt_cd": "1", "msg_cd": "MCA00124", "msg1": "해당 서비스를 찾을수 없습니다."}')
    with pytest.raises(Exception):  # noqa: B017 - the broker's error, whichever it is
        reconcile(week, 7)
    assert deliver(week, notice).fills_recorded == 1
    order = assert_recorded_once(order, week, fills=1)
    assert order.status == OrderStatus.FILLED

    week.fake.clear_faults()
    assert reconcile(week, 12).checked == 0  # filled: nothing left for the reconciliation
    assert_recorded_once(order, week, fills=1)
    assert len(listener.of_kind("fill")) == 1


@ONE_BUY
def test_a_notice_redelivered_twice_is_stored_and_applied_once(kis_week, listener):
    week = kis_week
    order = submitted_order(week)
    notice = broker_fills(week, order, 2, 41_250, minute=6)
    outcomes = [deliver(week, notice) for _ in range(3)]
    assert [(outcome.new, outcome.fills_recorded) for outcome in outcomes] == [(True, 1), (False, 0), (False, 0)]
    assert BrokerFillNotice.objects.count() == 1
    assert_recorded_once(order, week, fills=1)
    reconcile(week, 10)
    order = assert_recorded_once(order, week, fills=1)
    assert order.filled_quantity == 2
    assert len(listener.of_kind("fill")) == 1


@ONE_BUY
def test_two_partial_fills_in_two_notices_with_the_reconciliation_between(kis_week, bus, listener):
    """Notice 1 is applied; the broker fills more; the reconciliation reads it first (the second fill);
    notice 2 then adds nothing; the broker fills the rest and its notice comes first again. Three fills,
    at their own prices, summing to the broker's."""
    week = kis_week
    order = submitted_order(week)
    first = second = order.quantity // 3
    rest = order.quantity - first - second
    assert deliver(week, broker_fills(week, order, first, 41_250, minute=6)).fills_recorded == 1
    notice = broker_fills(week, order, second, 41_300, minute=8)
    assert reconcile(week, 10).fills_recorded == 1
    assert deliver(week, notice).fills_recorded == 0
    order = assert_recorded_once(order, week, fills=2)
    assert order.status == OrderStatus.PARTIALLY_FILLED and order.filled_quantity == first + second
    assert deliver(week, broker_fills(week, order, rest, 41_200, minute=12)).fills_recorded == 1
    assert reconcile(week, 15).fills_recorded == 0
    order = assert_recorded_once(order, week, fills=3)
    assert order.status == OrderStatus.FILLED
    assert list(Fill.objects.filter(order=order).order_by("cumulative_quantity")
                .values_list("cumulative_quantity", "quantity", "price")) == [
        (first, first, 41_250), (first + second, second, 41_300), (order.quantity, rest, 41_200)]
    assert [event["fill_quantity"] for event in listener.of_kind("fill")] == [first, second, rest]
    assert_after_commit(bus)


@ONE_BUY
def test_a_notice_before_the_orders_rest_answer_waits_and_is_applied_once(kis_week, listener):
    """KIS notifies the fill while the answer to the order is still on its way: the notice is kept
    until the order's number is recorded, then applied once."""
    week = kis_week
    week.fake.auto_fill = False
    week.fake.add_fault(ORDER_CASH_PATH, "delay", delay=1.5, method="POST")
    now = week.at(WEEK, 9, 5)
    sender = threading.Thread(target=place_weekly_buys, args=(week.config, WEEK, now))
    sender.start()
    deadline = time.monotonic() + 10
    while not week.fake.accepted_orders:  # KIS has the order; its answer is delayed
        assert time.monotonic() < deadline
        time.sleep(0.01)
    order = Order.objects.get()
    assert order.broker_order_no == ""
    odno = week.fake.accepted_orders[0]["ODNO"]
    order.broker_order_no = odno  # only for the helper's row look-up; not saved
    outcome = deliver(week, broker_fills(week, order, order.quantity, 41_250, minute=5))
    assert outcome.new and outcome.order_id is None and outcome.fills_recorded == 0  # pending
    assert not Fill.objects.exists() and BrokerFillNotice.objects.get().applied_at is None

    sender.join(10)
    assert not sender.is_alive()
    order.refresh_from_db()
    assert order.broker_order_no == odno
    order = assert_recorded_once(order, week, fills=1)
    assert order.status == OrderStatus.FILLED
    assert BrokerFillNotice.objects.get().order_id == order.pk
    reconcile(week, 10)
    assert_recorded_once(order, week, fills=1)
    assert len(listener.of_kind("fill")) == 1


@ONE_BUY
def test_a_rejection_notice_is_told_at_once_and_the_reconciliation_rejects_the_order(kis_week, listener):
    week = kis_week
    order = submitted_order(week)
    row = broker_row(week, order)
    moment = week.at(WEEK, 9, 6)
    notice = FillNotice(
        customer_id="hts-user", account_no=week.fake.account_no, order_no=order.broker_order_no, original_order_no="",
        side="buy", correction="0", order_kind=order.order_type, code=order.code, quantity=order.quantity, price=0,
        time=moment.astimezone(SEOUL).time().replace(microsecond=0), rejected=True, is_fill=False, acceptance="1",
        branch_no=row["ord_gno_brno"], order_quantity=order.quantity, order_price=0, name=row["prdt_name"])
    assert deliver(week, notice).fills_recorded == 0
    order.refresh_from_db()
    assert order.status == OrderStatus.SUBMITTED  # the daily orders decide
    assert not TradingAlert.objects.filter(kind=AlertKind.ORDER_REJECTED).exists()
    told = listener.of_kind("order")[-1]
    assert "거부" in told["message"] and told["status"] == OrderStatus.SUBMITTED

    row.update(rjct_qty=str(order.quantity), rmn_qty="0")
    reconcile(week, 10)
    reconcile(week, 15)
    order.refresh_from_db()
    assert order.status == OrderStatus.REJECTED and not Fill.objects.exists()
    assert TradingAlert.objects.filter(kind=AlertKind.ORDER_REJECTED).count() == 1
    assert listener.of_kind("order")[-1]["status"] == OrderStatus.REJECTED


@ONE_BUY
def test_a_notice_applied_in_a_transaction_that_rolls_back_leaves_nothing_and_publishes_nothing(
        kis_week, bus, listener):
    week = kis_week
    order = submitted_order(week)
    notice = broker_fills(week, order, order.quantity, 41_250, minute=6)
    before = len(listener.settle())
    with pytest.raises(RuntimeError), transaction.atomic():
        assert deliver(week, notice).fills_recorded == 1
        raise RuntimeError("the caller's transaction fails")
    assert not BrokerFillNotice.objects.exists() and not Fill.objects.exists()
    assert len(listener.settle()) == before
    assert deliver(week, notice).fills_recorded == 1  # delivered again later: applied, once
    assert_recorded_once(order, week, fills=1)
    assert len(listener.of_kind("fill")) == 1
    assert_after_commit(bus)


# ------------------------------------------------------------------------------------------- the paper broker
@pytest.fixture
def market(demo_bars):
    assert SAMSUNG in demo_bars
    return demo_bars


def test_a_paper_fill_is_recorded_at_once_from_its_notice_and_once(user, paper_account, market, bus, listener):
    """The paper broker fills at placement and notifies it after its commit, before the order's number is
    recorded: the notice waits for it, then gives the one fill; the reconciliation adds nothing."""
    order = place_manual_order(user, paper_account, SAMSUNG, quantity=3, now=at(MONDAY, 10))
    assert order.status == OrderStatus.FILLED
    paper = PaperOrder.objects.get()
    [notice] = BrokerFillNotice.objects.all()
    assert (notice.source, notice.order_id, notice.order_no, notice.quantity, notice.price) == (
        "paper", order.pk, paper.order_no, 3, paper.fill_price)
    assert notice.notice_time == paper.filled_at and notice.applied_at is not None
    [fill] = Fill.objects.all()
    assert (fill.quantity, fill.amount, fill.price) == (3, 3 * paper.fill_price, paper.fill_price)
    assert TradeLog.objects.count() == 1 and TradingAlert.objects.filter(kind=AlertKind.FILLED).count() == 1
    assert fill.filled_at == paper.filled_at

    reconcile_orders(paper_account, MONDAY, now=at(MONDAY, 10, 5))
    assert Fill.objects.count() == 1 and TradeLog.objects.count() == 1
    [event] = listener.of_kind("fill")
    assert event["message"] == f"{SAMSUNG} 매수 3주 체결 ({paper.fill_price:,}원)"
    assert_after_commit(bus)


def test_a_paper_fill_found_by_the_reconciliations_read_is_recorded_once(user, paper_account, market, listener):
    """The day's bar is not stored when the order is placed (it stays open); the reconciliation's read
    fills it, the notice records it, and the reconciliation's row then adds nothing."""
    bar = DailyBar.objects.get(instrument__code=SAMSUNG, date=MONDAY)
    values = {field: getattr(bar, field) for field in ("instrument_id", "date", "open", "high", "low", "close",
                                                        "volume")}
    bar.delete()
    order = place_manual_order(user, paper_account, SAMSUNG, quantity=2, now=at(MONDAY, 10))
    assert order.status == OrderStatus.ACCEPTED and not BrokerFillNotice.objects.exists()  # open, read back
    DailyBar.objects.create(**values)

    summary = reconcile_orders(paper_account, MONDAY, now=at(MONDAY, 10, 5))
    order.refresh_from_db()
    assert order.status == OrderStatus.FILLED and summary.fills_recorded == 0  # the notice came first
    assert Fill.objects.count() == 1 and TradeLog.objects.count() == 1
    assert TradingAlert.objects.filter(kind=AlertKind.FILLED).count() == 1
    paper = PaperOrder.objects.get()
    assert (order.filled_quantity, order.filled_amount) == (2, 2 * paper.fill_price)
    assert len(listener.of_kind("fill")) == 1


def test_a_paper_fill_rolled_back_sends_no_notice(user, paper_account, market, listener):
    from market.brokers.paper import PaperBroker

    broker = PaperBroker(paper_account, clock=lambda: at(MONDAY, 10))
    with pytest.raises(RuntimeError), transaction.atomic():
        broker.place_order("buy", SAMSUNG, 1, order_type="01")
        raise RuntimeError("rolled back")
    assert not PaperOrder.objects.exists() and not BrokerFillNotice.objects.exists()
    assert listener.settle() == []


def test_the_paper_broker_works_with_no_listener_and_with_a_failing_one(user, paper_account, market):
    from market.brokers.paper import PaperBroker

    broker = PaperBroker(paper_account, clock=lambda: at(MONDAY, 10))
    assert fill_notice_received.disconnect(dispatch_uid="orders.apply_fill_notice")
    try:
        broker.place_order("buy", SAMSUNG, 1, order_type="01")

        def failing(**kwargs):
            raise RuntimeError("listener down")

        fill_notice_received.connect(failing, dispatch_uid="test.failing")
        try:
            receipt = broker.place_order("buy", SAMSUNG, 2, order_type="01")
        finally:
            fill_notice_received.disconnect(dispatch_uid="test.failing")
    finally:
        from orders.apps import fill_notice_receiver

        fill_notice_received.connect(fill_notice_receiver, dispatch_uid="orders.apply_fill_notice")
    assert receipt.order_no == "0000000002"
    assert list(PaperOrder.objects.order_by("pk").values_list("status", "filled_quantity")) == [
        ("filled", 1), ("filled", 2)]
    assert not BrokerFillNotice.objects.exists()


def test_apply_fill_notice_refuses_an_unknown_source(paper_account):
    notice = FillNotice(
        customer_id="", account_no="", order_no="1", original_order_no="", side="buy", correction="0",
        order_kind="01", code=SAMSUNG, quantity=1, price=1, time=dt.time(9), rejected=False, is_fill=True,
        acceptance="2", branch_no="", order_quantity=1, order_price=0, name="")
    with pytest.raises(ValueError):
        apply_fill_notice(paper_account.pk, notice, source="sim")
    assert not BrokerFillNotice.objects.exists()


@ONE_BUY
@pytest.mark.parametrize("round_", range(3))
def test_a_notice_and_the_reconciliation_at_the_same_moment_count_each_share_once(kis_week, listener, round_):
    """The notice of the first of two fills and the reconciliation reading both, at once: both take the
    order's row lock, and whichever is second records only what the first did not. MySQL/MariaDB only:
    the in-memory SQLite test database (shared cache) fails a second writer at once instead of letting it
    wait as a SQLite file does (test_concurrency.py covers the file's waiting)."""
    from django.db import connection

    if connection.vendor != "mysql":
        pytest.skip("needs row locks that wait (MySQL/MariaDB)")
    week = kis_week
    order = submitted_order(week)
    half = order.quantity // 2
    notice = broker_fills(week, order, half, 41_250, minute=6)  # delivered while the reconciliation
    broker_fills(week, order, order.quantity - half, 41_300, minute=7)  # reads both fills
    start = threading.Barrier(2)
    errors: list[BaseException] = []

    def run(work) -> None:
        try:
            start.wait(5)
            work()
        except BaseException as error:  # reported below
            errors.append(error)
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(lambda: deliver(week, notice),)),
               threading.Thread(target=run, args=(lambda: reconcile_orders(
                   week.account, WEEK, now=dt.datetime.now(SEOUL), positions=False),))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert errors == []
    fills = Fill.objects.count()  # 2 when the notice was first, 1 when the reconciliation was
    assert fills in (1, 2)
    order = assert_recorded_once(order, week, fills=fills)
    assert order.status == OrderStatus.FILLED
    assert len(listener.of_kind("fill")) == fills
