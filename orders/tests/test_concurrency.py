"""Concurrent requests on one database (issue 11): SQLite transactions wait for the write lock instead
of failing, an alert survives a lock conflict and is notified once, only after the outermost commit
(never when rolled back), and two requests with one Idempotency-Key answer the same order, never an
error. The whole HTTP path under real concurrency is `test_order_storm.py`."""

from __future__ import annotations

import datetime as dt
import threading

import pytest
import time_machine
from django.conf import settings
from django.db import IntegrityError, OperationalError, connection, connections, transaction
from django.urls import reverse

from accounts.models import BrokerMode
from accounts.tests.factories import BrokerAccountFactory
from market.models import PaperOrder
from orders import common, manual
from orders.controls import halt_trading, raise_alert
from orders.manual import place_manual_order
from orders.models import AlertKind, Order, OrderStatus, TradingAlert

from .conftest import MONDAY, at
from .test_api import jwt_client

SAMSUNG = "005930"
SESSION = at(MONDAY, 10)


@pytest.fixture
def queued(monkeypatch):
    """The notifications handed to the queue: (alert id, in a transaction at that moment, row exists)."""
    calls = []

    def delay(alert_id):
        calls.append((alert_id, transaction.get_connection().in_atomic_block,
                      TradingAlert.objects.filter(pk=alert_id).exists()))

    monkeypatch.setattr("orders.tasks.notify_alert.delay", delay)
    return calls


@pytest.fixture
def account(user):
    return BrokerAccountFactory(owner=user, mode=BrokerMode.PAPER, app_key="", app_secret="", account_number="")


def locked_once(monkeypatch, error):
    """TradingAlert inserts fail once with `error` (another writer held the lock), then work."""
    real = TradingAlert.objects.create
    failures = []

    def create(**fields):
        if not failures:
            failures.append(error)
            raise error
        return real(**fields)

    monkeypatch.setattr(TradingAlert.objects, "create", create)
    return failures


# ------------------------------------------------------------------------------------------- SQLite's lock
def test_sqlite_transactions_take_the_write_lock_when_they_begin(tmp_path, django_db_blocker):
    """The cause of the 500s: a transaction that reads (raise_alert's look-up, get_or_create's get)
    and then writes fails at once with "database is locked" when another connection wrote in between,
    whatever the busy time-out. With the configured transaction mode it takes the lock at BEGIN and
    the other writer waits its turn."""
    if settings.DATABASES["default"]["ENGINE"] != "django.db.backends.sqlite3":
        pytest.skip("SQLite's locking")
    from django.db.backends.sqlite3.base import DatabaseWrapper

    conf = {**settings.DATABASES["default"], "NAME": str(tmp_path / "lock.sqlite3")}
    with django_db_blocker.unblock():
        ours = DatabaseWrapper(conf, alias="lock_ours")
        with ours.cursor() as cursor:
            cursor.execute("CREATE TABLE counter (id INTEGER PRIMARY KEY, value INTEGER)")
            cursor.execute("INSERT INTO counter (id, value) VALUES (1, 0)")
        wrote = threading.Event()

        def other_writer():
            other = DatabaseWrapper(conf, alias="lock_other")
            with other.cursor() as cursor:
                cursor.execute("UPDATE counter SET value = value + 1 WHERE id = 1")
            other.close()
            wrote.set()

        connections["lock_ours"] = ours
        try:
            with transaction.atomic(using="lock_ours"):
                with ours.cursor() as cursor:
                    cursor.execute("SELECT value FROM counter WHERE id = 1")
                    assert cursor.fetchone() == (0,)
                thread = threading.Thread(target=other_writer)
                thread.start()
                thread.join(timeout=1.0)  # deferred: it writes now; immediate: it waits for our commit
                with ours.cursor() as cursor:
                    cursor.execute("INSERT INTO counter (id, value) VALUES (2, 10)")
            thread.join(timeout=30)
            assert wrote.is_set()  # it got its turn after our commit
            with ours.cursor() as cursor:
                cursor.execute("SELECT id, value FROM counter ORDER BY id")
                assert cursor.fetchall() == [(1, 1), (2, 10)]
        finally:
            del connections["lock_ours"]
            ours.close()


# ------------------------------------------------------------------------------------------- alerts
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("error", [OperationalError("database is locked"),
                                   OperationalError(1213, "Deadlock found when trying to get lock"),
                                   OperationalError(1205, "Lock wait timeout exceeded")])
def test_an_alert_lost_to_a_lock_conflict_is_written_again_and_notified_once(account, queued, monkeypatch, error):
    failures = locked_once(monkeypatch, error)
    alert, created = raise_alert(account, AlertKind.RISK_BLOCKED, "refused", key="order-1", details={"order": 1})
    assert failures and created
    assert list(TradingAlert.objects.values_list("pk", flat=True)) == [alert.pk]
    assert queued == [(alert.pk, False, True)]


@pytest.mark.django_db(transaction=True)
def test_inside_a_callers_transaction_a_lock_conflict_goes_up(account, queued, monkeypatch):
    locked_once(monkeypatch, OperationalError("database is locked"))
    with pytest.raises(OperationalError), transaction.atomic():
        raise_alert(account, AlertKind.RISK_BLOCKED, "refused", key="order-1")
    assert not TradingAlert.objects.exists() and queued == []


@pytest.mark.django_db(transaction=True)
def test_other_database_errors_are_not_retried(account, queued, monkeypatch):
    failures = locked_once(monkeypatch, OperationalError(1054, "Unknown column"))
    with pytest.raises(OperationalError):
        raise_alert(account, AlertKind.RISK_BLOCKED, "refused", key="order-1")
    assert failures and not TradingAlert.objects.exists() and queued == []


@pytest.mark.django_db(transaction=True)
def test_the_notification_is_queued_only_after_the_outermost_commit(account, queued):
    with transaction.atomic():
        with transaction.atomic():
            alert, created = raise_alert(account, AlertKind.FILLED, "filled", key="fill-1")
        assert created and queued == []  # the worker would not find the row yet
    assert queued == [(alert.pk, False, True)]


@pytest.mark.django_db(transaction=True)
def test_a_rolled_back_alert_is_never_notified(account, queued):
    with pytest.raises(RuntimeError), transaction.atomic():
        raise_alert(account, AlertKind.ORDER_REJECTED, "refused", key="order-1")
        raise RuntimeError("the caller's transaction fails")
    assert not TradingAlert.objects.exists() and queued == []
    with transaction.atomic():  # a savepoint rolled back inside a transaction that commits
        try:
            with transaction.atomic():
                raise_alert(account, AlertKind.ORDER_REJECTED, "refused", key="order-2")
                raise RuntimeError("the savepoint fails")
        except RuntimeError:
            pass
    assert not TradingAlert.objects.exists() and queued == []


@pytest.mark.django_db(transaction=True)
def test_a_refused_trade_in_a_request_transaction_is_notified_after_it_commits(user, account, demo_bars, queued):
    """As with ATOMIC_REQUESTS (off in the settings; a view run inside a transaction either way)."""
    assert not settings.DATABASES["default"].get("ATOMIC_REQUESTS")
    halt_trading(account=account, user=user, reason="test")
    with time_machine.travel(SESSION, tick=False):
        client = jwt_client(user)
        with transaction.atomic():
            response = client.post(reverse("trade", args=[SAMSUNG]), {}, format="json")
            assert response.status_code == 201 and response.json()["status"] == OrderStatus.REJECTED
            assert queued == []
    alert = TradingAlert.objects.get(kind=AlertKind.RISK_BLOCKED)
    assert queued == [(alert.pk, False, True)]


@pytest.mark.django_db(transaction=True)
def test_a_refused_trade_whose_alert_meets_a_locked_database_answers_201_with_its_alert(
        user, account, demo_bars, queued, monkeypatch):
    """The issue's 500: the order was stored `rejected`, its alert hit "database is locked", the
    request answered 500 and the alert was gone."""
    halt_trading(account=account, user=user, reason="test")
    failures = locked_once(monkeypatch, OperationalError("database is locked"))
    with time_machine.travel(SESSION, tick=False):
        response = jwt_client(user).post(reverse("trade", args=[SAMSUNG]), {}, format="json")
    assert failures and response.status_code == 201, response.content
    order = Order.objects.get()
    assert response.json()["trade_id"] == order.pk and order.status == OrderStatus.REJECTED
    alert = TradingAlert.objects.get()
    assert alert.details["order"] == order.pk and queued == [(alert.pk, False, True)]


# ------------------------------------------------------------------------------------------- one key, two requests
@pytest.mark.django_db
def test_a_key_stored_by_a_concurrent_request_after_our_look_up_is_a_replay(user, account, demo_bars, monkeypatch):
    """The double click's other request stores (and sends) the order between this request's look-up
    and its insert: the unique client order id refuses the insert, and this request answers that
    order as a replay instead of an IntegrityError (a 500)."""
    real = Order.objects.get_or_create
    theirs = []

    def racing(**kwargs):
        if theirs:  # the other request's own insert
            return real(**kwargs)
        theirs.append(None)
        theirs[0] = place_manual_order(user, None, SAMSUNG, now=SESSION, idempotency_key="double-click")
        raise IntegrityError("UNIQUE constraint failed: orders_order.client_order_id")

    monkeypatch.setattr(Order.objects, "get_or_create", racing)
    mine = place_manual_order(user, None, SAMSUNG, now=SESSION, idempotency_key="double-click")
    assert mine.pk == theirs[0].pk and mine.idempotent_replay and not theirs[0].idempotent_replay
    assert mine.status == OrderStatus.FILLED
    assert Order.objects.count() == 1 and PaperOrder.objects.count() == 1


@pytest.mark.django_db
def test_a_deadlock_while_storing_the_order_is_tried_again(user, account, demo_bars, monkeypatch):
    real = Order.objects.get_or_create
    failures = []

    def deadlocked_once(**kwargs):
        if not failures:
            failures.append(1)
            raise OperationalError(1213, "Deadlock found when trying to get lock; try restarting transaction")
        return real(**kwargs)

    monkeypatch.setattr(Order.objects, "get_or_create", deadlocked_once)
    order = place_manual_order(user, None, SAMSUNG, now=SESSION, idempotency_key="k")
    assert failures and order.status == OrderStatus.FILLED and PaperOrder.objects.count() == 1


@pytest.mark.django_db
def test_a_double_click_waits_for_the_first_request_instead_of_racing_it(user, account, demo_bars, monkeypatch):
    """The second request finds the order the first one has just stored and is about to send: it
    neither sends it nor runs the risk checks on it (a refusal there could mark an order `rejected`
    that the first request is sending); it waits for the outcome and answers the same order."""
    monkeypatch.setattr(manual, "MANUAL_REPLAY_WAIT", manual.MANUAL_REPLAY_WAIT / 50)  # 0.2 s
    seen = {}

    def second_click(name, subject):
        if name == "manual_intent_committed" and not seen:
            replay = place_manual_order(user, None, SAMSUNG, now=at(MONDAY, 10, 0), idempotency_key="dbl")
            seen["replay"] = (replay.pk, replay.idempotent_replay, replay.status, replay.send_attempts,
                              PaperOrder.objects.count())

    monkeypatch.setattr(common, "checkpoint", second_click)
    first = place_manual_order(user, None, SAMSUNG, now=SESSION, idempotency_key="dbl")
    # Still the first request's to send: the replay answered the stored order, untouched.
    assert seen["replay"] == (first.pk, True, OrderStatus.PENDING, 0, 0)
    assert first.status == OrderStatus.FILLED and PaperOrder.objects.count() == 1
    assert not TradingAlert.objects.exclude(kind=AlertKind.FILLED).exists()


@pytest.mark.django_db
def test_a_replay_after_the_first_request_died_sends_the_order(user, account, demo_bars, monkeypatch):
    def die(name, subject):
        if name == "manual_intent_committed":
            raise RuntimeError("the first request's process was killed")

    monkeypatch.setattr(common, "checkpoint", die)
    with pytest.raises(RuntimeError):
        place_manual_order(user, None, SAMSUNG, now=SESSION, idempotency_key="k-died")
    monkeypatch.setattr(common, "checkpoint", lambda name, subject: None)
    later = SESSION + manual.MANUAL_IN_FLIGHT
    retried = place_manual_order(user, None, SAMSUNG, now=later, idempotency_key="k-died")
    assert retried.idempotent_replay and retried.status == OrderStatus.FILLED and PaperOrder.objects.count() == 1


@pytest.mark.django_db
def test_the_paper_broker_books_a_live_order_when_it_arrives_not_when_its_request_began(
        user, account, demo_bars, monkeypatch):
    """Concurrent requests reach the broker in another order than they began (one waits for a lock):
    the paper broker, like a real one, stamps the order with the moment it gets it, so its order times
    follow its own sequence."""
    with time_machine.travel(SESSION, tick=False) as clock:
        def slow(name, subject):
            if name == "manual_intent_committed":
                clock.shift(5)  # the request waited 5 s for the database before sending

        monkeypatch.setattr(common, "checkpoint", slow)
        order = place_manual_order(user, None, SAMSUNG)
    assert order.intent_at == SESSION and order.status == OrderStatus.FILLED
    assert PaperOrder.objects.get().placed_at == SESSION + dt.timedelta(seconds=5)


@pytest.mark.django_db
def test_a_sell_recorded_before_the_buy_it_sold_from_leaves_no_phantom_shares(user, account):
    """Two requests of one account: the buy reaches the broker first (order no. 1), the sell of those
    shares right after (no. 2), in the same second; the sell's request records its fill first. The
    position follows the broker's sequence, not the recording order (seen in the order storm: shares
    sold stayed "held", and the balance check reported a shortfall that blocked the entries)."""
    from orders.models import Fill, OrderReason
    from orders.positions import positions_for

    moment = SESSION + dt.timedelta(seconds=1)

    def filled(number, side, quantity):
        return Order.objects.create(
            broker_account=account, client_order_id=f"m-{number}", trading_date=MONDAY, code=SAMSUNG, side=side,
            quantity=quantity, reason=OrderReason.MANUAL, intent_at=SESSION, status=OrderStatus.FILLED,
            broker_order_no=f"{number:010d}", filled_quantity=quantity)

    buy, sell = filled(1, "buy", 2), filled(2, "sell", 1)
    for order in (sell, buy):  # recorded in this order
        Fill.objects.create(order=order, cumulative_quantity=order.quantity, quantity=order.quantity, price=70_000,
                            amount=70_000 * order.quantity, commission=0, tax=0, filled_at=moment)
    assert positions_for(account=account)[SAMSUNG].quantity == 1


def test_the_settings_configure_sqlite_for_concurrent_writers():
    if settings.DATABASES["default"]["ENGINE"] != "django.db.backends.sqlite3":
        pytest.skip("SQLite's options")
    options = settings.DATABASES["default"]["OPTIONS"]
    assert options["transaction_mode"] == "IMMEDIATE" and options["timeout"] >= 5
    assert "journal_mode=WAL" in options["init_command"]
    assert connection.vendor == "sqlite"
