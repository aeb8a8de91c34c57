"""The 주문 page: the user's strategies with derived positions, weekly runs and orders; nobody else's."""

import datetime as dt
import io

import pytest
from django.core.management import call_command
from django.urls import reverse

from market.krx import SEOUL
from orders.models import Order
from orders.services import place_weekly_buys, reconcile_orders
from strategies.models import StrategyConfig

pytestmark = pytest.mark.django_db


def test_orders_page_shows_the_demo_strategy_its_orders_and_positions(client, other_user):
    call_command("setup_demo", symbols=10, years=1, stdout=io.StringIO())
    config = StrategyConfig.objects.get()
    monday = dt.date(2026, 11, 2)
    place_weekly_buys(config, monday, dt.datetime(2026, 11, 2, 9, 5, tzinfo=SEOUL))
    reconcile_orders(config.broker_account, monday, now=dt.datetime(2026, 11, 2, 9, 10, tzinfo=SEOUL))
    orders = list(Order.objects.filter(config=config))
    client.login(username="demo", password="demo-trader-2026")
    body = client.get(reverse("orders:index")).content.decode()
    assert config.name in body and 'id="weekly-runs"' in body
    assert orders, "the demo market has buy signals that Monday"
    for order in orders:
        assert order.code in body
    assert all(order.filled_quantity == order.quantity for order in orders)  # paper fills at the open
    assert f'id="positions-{config.pk}"' in body
    client.force_login(other_user)
    other = client.get(reverse("orders:index")).content.decode()
    assert config.name not in other and 'id="no-strategies"' in other
