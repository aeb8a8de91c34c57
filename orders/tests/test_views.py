"""The 주문 page: the user's strategies with derived positions, weekly runs and orders; nobody else's."""

import datetime as dt
import io

import pytest
import time_machine
from django.core.management import call_command
from django.urls import reverse

from market.krx import SEOUL
from orders.models import Order
from orders.reconciliation import reconcile_orders
from orders.weekly import place_weekly_buys
from strategies.models import StrategyConfig

pytestmark = pytest.mark.django_db


def test_orders_page_shows_the_demo_strategy_its_orders_and_positions(client, other_user):
    with time_machine.travel(dt.datetime(2026, 11, 25, 10, 0, tzinfo=SEOUL), tick=False):
        call_command("setup_demo", symbols=10, years=1, stdout=io.StringIO())
    demo = StrategyConfig.objects.get()
    replayed = list(Order.objects.filter(config=demo))  # the demo's last 8 weeks, bought and sold
    # A second strategy on the same paper account buys on 2026-11-02 and still holds.
    config = StrategyConfig.objects.create(
        owner=demo.owner, name="두 번째 전략", strategy_key=demo.strategy_key, params=demo.params,
        universe_mode=demo.universe_mode, universe_top_n=demo.universe_top_n, max_positions=3,
        cash_per_week=3_000_000, broker_account=demo.broker_account,
    )
    monday = dt.date(2026, 11, 2)
    place_weekly_buys(config, monday, dt.datetime(2026, 11, 2, 9, 5, tzinfo=SEOUL))
    reconcile_orders(config.broker_account, monday, now=dt.datetime(2026, 11, 2, 9, 10, tzinfo=SEOUL))
    orders = list(Order.objects.filter(config=config))
    client.login(username="demo", password="demo-trader-2026")
    body = client.get(reverse("orders:index")).content.decode()
    assert demo.name in body and config.name in body and 'id="weekly-runs"' in body
    assert orders, "the demo market has buy signals that Monday"
    assert replayed and all(order.status == "filled" for order in replayed)
    for order in orders + replayed[:5]:
        assert order.code in body
    assert all(order.filled_quantity == order.quantity for order in orders)  # paper fills at the open
    assert f'id="positions-{config.pk}"' in body
    client.force_login(other_user)
    other = client.get(reverse("orders:index")).content.decode()
    assert config.name not in other and demo.name not in other and 'id="no-strategies"' in other


@pytest.mark.parametrize(("query", "words"), [
    ({"start": "2026-99-99"}, "시작일이 올바른 날짜(YYYY-MM-DD)가 아닙니다: 2026-99-99"),
    ({"end": "어제"}, "종료일이 올바른 날짜(YYYY-MM-DD)가 아닙니다: 어제"),
    ({"start": "2026-11-25", "end": "2026-11-24"}, "종료일이 시작일보다 앞섭니다"),
])
def test_a_bad_date_filter_is_an_error_on_the_page_not_ignored(client, user, query, words):
    client.force_login(user)
    response = client.get(reverse("orders:index"), {"status": "filled", **query})
    assert response.status_code == 400
    body = response.content.decode()
    assert 'id="order-filter-errors"' in body and words in body and 'id="orders-count"' not in body
    # HTMX swaps only successful answers: the orders list comes back with the error in it.
    partial = client.get(reverse("orders:index"), query, HTTP_HX_REQUEST="true", HTTP_HX_TARGET="orders-list")
    assert partial.status_code == 200 and words in partial.content.decode()
    assert partial.content.decode().lstrip().startswith('<div id="orders-list">')


def test_good_date_filters_list_the_orders(client, user):
    client.force_login(user)
    response = client.get(reverse("orders:index"), {"start": "2026-11-24", "end": "2026-11-24"})
    assert response.status_code == 200 and 'id="orders-count"' in response.content.decode()
    assert response.context["filters"]["start"] == dt.date(2026, 11, 24)
