"""`POST /trade/{symbol}`'s body: a body that cannot be read is a Korean 400 in the API's error shape,
and quantities and prices must be written as whole numbers (nothing is stored otherwise)."""

from __future__ import annotations

import json

import pytest
import time_machine
from django.urls import reverse
from rest_framework.test import APIClient

from market.models import DailyBar, PaperOrder
from orders.models import Order

from .conftest import MONDAY, at

pytestmark = pytest.mark.django_db

SAMSUNG = "005930"


def post(user, body, content_type="application/json"):
    client = APIClient()
    client.force_authenticate(user)
    with time_machine.travel(at(MONDAY, 10), tick=False):
        return client.post(reverse("trade", args=[SAMSUNG]), body, content_type=content_type)


def assert_refused(response, words: str) -> dict:
    assert response.status_code == 400, response.content
    body = response.json()
    assert words in body["detail"], body
    assert not Order.objects.exists() and not PaperOrder.objects.exists()
    return body


@pytest.mark.parametrize("raw", ['{"quantity": 1', "quantity=1", "[1, 2", '{"quantity": 1}}'])
def test_malformed_json_is_a_korean_400(user, paper_account, demo_bars, raw):
    body = assert_refused(post(user, raw), "요청 본문을 읽을 수 없습니다")
    assert list(body) == ["detail"]


@pytest.mark.parametrize("value", [[1], "order", 3])
def test_a_json_body_that_is_not_an_object_is_a_korean_400(user, paper_account, demo_bars, value):
    assert_refused(post(user, json.dumps(value)), "JSON 객체나 폼 데이터")


@pytest.mark.parametrize("quantity", ["1.0", 1.0, 1.5, "1e3", True, "1,000", "", None, "١"])
def test_a_quantity_not_written_as_a_whole_number_is_refused(user, paper_account, demo_bars, quantity):
    body = assert_refused(post(user, json.dumps({"quantity": quantity})), "quantity(주문 수량)")
    assert body["quantity"]


def test_a_price_not_written_as_a_whole_number_is_refused(user, paper_account, demo_bars):
    low = DailyBar.objects.get(instrument__code=SAMSUNG, date=MONDAY).low
    for price in (f"{low}.0", float(low), f"{low}e0", True):
        body = assert_refused(post(user, json.dumps({"price": price})), "price(지정가)")
        assert body["price"]


def test_whole_numbers_from_json_and_from_a_form_are_accepted(user, paper_account, demo_bars):
    low = DailyBar.objects.get(instrument__code=SAMSUNG, date=MONDAY).low
    assert post(user, json.dumps({"quantity": 2, "price": low})).status_code == 201
    form = post(user, f"quantity=+3&price={low}&account={paper_account.pk}",
                content_type="application/x-www-form-urlencoded")
    assert form.status_code == 201, form.content
    assert sorted(Order.objects.values_list("quantity", flat=True)) == [2, 3]
