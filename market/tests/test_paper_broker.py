"""PaperBroker: fills from stored bars, fees and tax, KRX rules, cash and holdings in the database."""

import datetime as dt

import pytest

from market.brokers.paper import PaperBroker
from market.gateway import BrokerError, OrderRefused
from market.krx import SEOUL, commission_for, sell_tax_for_trade
from market.models import PaperAccount, PaperOrder
from market.tests.factories import DailyBarFactory, InstrumentFactory, PaperBrokerAccountFactory

pytestmark = pytest.mark.django_db

MON, TUE, WED = dt.date(2026, 11, 16), dt.date(2026, 11, 17), dt.date(2026, 11, 18)


def at(day, hour, minute=0):
    return dt.datetime.combine(day, dt.time(hour, minute), tzinfo=SEOUL)


class Clock:
    def __init__(self, moment):
        self.moment = moment

    def __call__(self):
        return self.moment


@pytest.fixture
def samsung():
    instrument = InstrumentFactory(code="005930", name="삼성전자")
    DailyBarFactory(instrument=instrument, date=dt.date(2026, 11, 13), open=69_000, close=70_000)
    DailyBarFactory(instrument=instrument, date=MON, open=70_500, high=72_000, low=69_800, close=71_200)
    return instrument


@pytest.fixture
def clock():
    return Clock(at(MON, 9, 5))


@pytest.fixture
def broker(user, clock):
    return PaperBroker(PaperBrokerAccountFactory(owner=user), clock=clock)


def test_market_buy_in_the_morning_fills_at_the_open_with_commission(broker, samsung):
    receipt = broker.place_order("buy", "005930", 10, order_type="01")
    assert receipt.order_no == "0000000001"
    [row] = broker.get_daily_orders(MON, MON)
    assert (row.filled_quantity, int(row.average_fill_price)) == (10, 70_500)
    cash = PaperAccount.objects.get().cash
    assert cash == 100_000_000 - 705_000 - commission_for(705_000)
    [holding] = broker.get_balance().holdings
    assert (holding.code, holding.quantity, holding.current_price) == ("005930", 10, 71_200)


def test_market_sell_in_the_afternoon_fills_at_the_close_with_tax(broker, samsung, clock):
    broker.place_order("buy", "005930", 10, order_type="01")
    clock.moment = at(MON, 15, 15)
    broker.place_order("sell", "005930", 10, order_type="01")
    sell = PaperOrder.objects.get(side="sell")
    assert sell.fill_price == 71_200
    assert sell.tax == sell_tax_for_trade(712_000, "KOSPI", MON)
    assert broker.get_balance().holdings == []
    expected = 100_000_000 - 705_000 - commission_for(705_000) + 712_000 - commission_for(712_000) - sell.tax
    assert PaperAccount.objects.get().cash == expected


def test_limit_buy_below_the_low_stays_open_then_expires(broker, samsung, clock):
    broker.place_order("buy", "005930", 1, price=69_000)
    assert PaperOrder.objects.get().status == "open"
    clock.moment = at(TUE, 9, 0)
    [row] = broker.get_daily_orders(MON, MON)
    assert row.cancelled and row.filled_quantity == 0
    assert PaperOrder.objects.get().status == "expired"


def test_limit_buy_touched_by_the_low_fills_at_the_limit(broker, samsung):
    broker.place_order("buy", "005930", 2, price=70_000)
    order = PaperOrder.objects.get()
    assert (order.status, order.fill_price) == ("filled", 70_000)


def test_order_waits_for_the_days_bar_and_fills_when_it_arrives(broker, samsung, clock):
    clock.moment = at(TUE, 9, 5)
    broker.place_order("buy", "005930", 3, order_type="01")
    assert PaperOrder.objects.get().status == "open"
    DailyBarFactory(instrument=samsung, date=TUE, open=71_000, close=71_500)
    [row] = broker.get_daily_orders(TUE, TUE)
    assert row.filled_quantity == 3 and int(row.average_fill_price) == 71_000


def test_order_after_the_close_belongs_to_the_next_trading_day(broker, samsung, clock):
    clock.moment = at(dt.date(2026, 11, 14), 10)  # a Saturday
    broker.place_order("buy", "005930", 1, order_type="01")
    assert PaperOrder.objects.get().trading_date == MON


@pytest.mark.parametrize(
    ("kwargs", "reason"),
    [
        ({"price": 70_050}, "호가 단위"),
        ({"price": 95_000}, "가격"),
        ({"price": 70_000, "quantity": 0}, "수량"),
    ],
)
def test_krx_rule_violations_are_refused_before_anything_is_recorded(broker, samsung, kwargs, reason):
    quantity = kwargs.pop("quantity", 1)
    with pytest.raises(OrderRefused) as refused:
        broker.place_order("buy", "005930", quantity, **kwargs)
    assert reason in refused.value.user_message
    assert not PaperOrder.objects.exists()


def test_insufficient_cash_is_refused(broker, samsung):
    with pytest.raises(OrderRefused, match="주문가능금액"):
        broker.place_order("buy", "005930", 10_000, price=70_000)
    assert not PaperOrder.objects.exists()


def test_selling_more_than_held_is_refused(broker, samsung):
    broker.place_order("buy", "005930", 5, order_type="01")
    with pytest.raises(OrderRefused, match="매도가능수량"):
        broker.place_order("sell", "005930", 6, order_type="01")


def test_unknown_code_is_a_clear_error(broker):
    with pytest.raises(BrokerError, match="알 수 없는 종목코드"):
        broker.place_order("buy", "999999", 1, order_type="01")


def test_cancel_an_open_order(broker, samsung):
    receipt = broker.place_order("buy", "005930", 1, price=69_000)
    broker.cancel_order(receipt.order_no, receipt.org_no)
    assert PaperOrder.objects.get().status == "cancelled"
    with pytest.raises(BrokerError, match="이미 처리된"):
        broker.cancel_order(receipt.order_no, receipt.org_no)


def test_quote_comes_from_the_last_bar(broker, samsung):
    quote = broker.get_quote("005930")
    assert (quote.price, quote.base_price, quote.change) == (71_200, 70_000, 1_200)
    assert (quote.lower_limit, quote.upper_limit) == (49_000, 91_000)


def test_accounts_are_separate(user, other_user, samsung, clock):
    mine = PaperBroker(PaperBrokerAccountFactory(owner=user), clock=clock)
    theirs = PaperBroker(PaperBrokerAccountFactory(owner=other_user), clock=clock)
    mine.place_order("buy", "005930", 1, order_type="01")
    assert theirs.get_balance().holdings == []
    assert theirs.get_daily_orders(MON, MON) == []


def test_commission_rate_comes_from_settings(broker, samsung, settings):
    settings.COMMISSION_RATE = "0.001"
    broker.place_order("buy", "005930", 10, order_type="01")
    assert PaperOrder.objects.get().commission == 705  # 0.1% of 705,000


def sim_minute(code, moment, *, open, high, low, close):  # noqa: A002
    from market.models import IntradayBar

    return IntradayBar.objects.create(source="sim", code=code, minute=moment, open=open, high=high, low=low,
                                      close=close, volume=100)


def test_before_the_days_bar_a_market_order_fills_at_the_simulated_tapes_price(broker, samsung, clock):
    """The streamer's simulated stream is the day's tape: the demo fills at the price the pages show."""
    sim_minute("005930", at(TUE, 10, 0), open=70_900, high=71_300, low=70_800, close=71_100)
    sim_minute("005930", at(TUE, 10, 1), open=71_100, high=71_400, low=71_000, close=71_300)
    clock.moment = at(TUE, 10, 1) + dt.timedelta(seconds=30)
    broker.place_order("buy", "005930", 3, order_type="01")
    order = PaperOrder.objects.get()
    assert (order.status, order.fill_price) == ("filled", 71_300)  # the latest price, not the previous close


def test_a_limit_order_fills_when_the_tape_crosses_it_later(broker, samsung, clock):
    sim_minute("005930", at(TUE, 10, 0), open=71_000, high=71_200, low=70_900, close=71_100)
    clock.moment = at(TUE, 10, 0) + dt.timedelta(seconds=40)
    broker.place_order("buy", "005930", 2, price=70_500)
    assert PaperOrder.objects.get().status == "open"  # 71,100 now: above the limit
    sim_minute("005930", at(TUE, 10, 5), open=70_700, high=70_800, low=70_400, close=70_600)
    clock.moment = at(TUE, 10, 6)
    [row] = broker.get_daily_orders(TUE, TUE)
    assert (row.filled_quantity, int(row.average_fill_price)) == (2, 70_500)


def test_the_tape_of_another_day_or_source_is_not_used(broker, samsung, clock):
    from market.models import IntradayBar

    sim_minute("005930", at(MON, 14, 0), open=71_000, high=71_000, low=71_000, close=71_000)  # yesterday
    IntradayBar.objects.create(source="kis", code="005930", minute=at(TUE, 9, 30), open=71_000, high=71_000,
                               low=71_000, close=71_000, volume=1)  # real prices never fill a paper order
    clock.moment = at(TUE, 9, 31)
    broker.place_order("buy", "005930", 1, order_type="01")
    assert PaperOrder.objects.get().status == "open"
