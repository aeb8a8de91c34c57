"""KisBroker through the site: account credentials, the shared token in the database, the
connection test page and API, token revocation on removal. Real HTTP to the fake KIS host."""

import pytest
from django.urls import reverse
from rest_framework.test import APIClient

from accounts.models import BrokerMode
from accounts.services import delete_broker_account
from accounts.tests.factories import BrokerAccountFactory
from market.brokers import broker_for
from market.brokers.kis import KisBroker
from market.brokers.paper import PaperBroker
from market.gateway import OrderRefused
from market.models import KisAccessToken
from market.services import test_broker_connection as run_connection_test
from market.tests.fake_kis import FAKE_ACCOUNT_NO, FAKE_APP_KEY, FAKE_APP_SECRET, FakeKisServer

pytestmark = pytest.mark.django_db


@pytest.fixture
def fake_vts(settings):
    """A fake KIS 모의투자 host; the site's simulated accounts are pointed at it."""
    with FakeKisServer(mode="paper", rate_limit_per_second=None) as server:
        settings.KIS_BASE_URLS = {"real": "", "paper": server.base_url}
        yield server


@pytest.fixture
def kis_account(user):
    return BrokerAccountFactory(
        owner=user, mode=BrokerMode.SIMULATED, app_key=FAKE_APP_KEY, app_secret=FAKE_APP_SECRET,
        account_number=FAKE_ACCOUNT_NO,
    )


def test_factory_picks_the_implementation(user, kis_account):
    paper = BrokerAccountFactory(owner=user, mode=BrokerMode.PAPER, app_key="", app_secret="", account_number="")
    assert isinstance(broker_for(paper), PaperBroker)
    assert isinstance(broker_for(kis_account), KisBroker)


def test_connection_test_reads_cash_and_holdings(fake_vts, kis_account):
    fake_vts.set_holdings({"005930": (10, 70_000)})
    result = run_connection_test(kis_account)
    assert result.ok, result.error
    assert result.cash == fake_vts.cash
    assert [(h.code, h.quantity) for h in result.holdings] == [("005930", 10)]
    assert set(fake_vts.tr_ids("/uapi/domestic-stock/v1/trading/inquire-balance")) == {"VTTC8434R"}


def test_token_is_stored_encrypted_and_shared_by_brokers(fake_vts, kis_account):
    run_connection_test(kis_account)
    run_connection_test(kis_account)  # a second broker instance, as another process would build
    assert len(fake_vts.tokens_issued) == 1
    row = KisAccessToken.objects.get()
    assert row.token == fake_vts.tokens_issued[0]
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT token FROM market_kisaccesstoken")
        raw = cursor.fetchone()[0]
    assert fake_vts.tokens_issued[0] not in raw


def test_wrong_app_secret_shows_the_kis_error(fake_vts, user):
    account = BrokerAccountFactory(
        owner=user, mode=BrokerMode.SIMULATED, app_key=FAKE_APP_KEY, app_secret="wrong-secret",
        account_number=FAKE_ACCOUNT_NO,
    )
    result = run_connection_test(account)
    assert not result.ok
    assert result.error  # KIS's own message, in Korean
    assert "wrong-secret" not in result.error


def test_unreachable_host_is_a_clear_error(settings, kis_account):
    settings.KIS_BASE_URLS = {"real": "", "paper": "http://127.0.0.1:1"}
    result = run_connection_test(kis_account)
    assert not result.ok and result.error


def test_connection_test_page_is_owner_only(client, fake_vts, kis_account, other_user):
    client.force_login(kis_account.owner)
    response = client.post(reverse("market:connection_test", args=[kis_account.pk]))
    body = response.content.decode()
    assert response.status_code == 200
    assert "10,000,000" in body
    client.force_login(other_user)
    assert client.post(reverse("market:connection_test", args=[kis_account.pk])).status_code == 404


def test_connection_test_api(fake_vts, kis_account, other_user):
    api = APIClient()
    api.force_authenticate(kis_account.owner)
    response = api.post(reverse("api:connection-test", args=[kis_account.pk]))
    assert response.status_code == 200 and response.json()["cash"] == fake_vts.cash
    api.force_authenticate(other_user)
    assert api.post(reverse("api:connection-test", args=[kis_account.pk])).status_code == 404


def test_removing_an_account_revokes_its_token(fake_vts, kis_account):
    run_connection_test(kis_account)
    delete_broker_account(kis_account)
    assert fake_vts.count("/oauth2/revokeP") == 1


def test_paper_account_connection_test_needs_no_network(user):
    paper = BrokerAccountFactory(owner=user, mode=BrokerMode.PAPER, app_key="", app_secret="", account_number="")
    result = run_connection_test(paper)
    assert result.ok and result.cash == 100_000_000 and result.holdings == []


@pytest.fixture
def fake_real(settings):
    with FakeKisServer(mode="real", rate_limit_per_second=None) as server:
        settings.KIS_BASE_URLS = {"real": server.base_url, "paper": ""}
        yield server


ORDER_PATH = "/uapi/domestic-stock/v1/trading/order-cash"


@pytest.fixture
def in_session():
    """Tuesday 2026-11-24 10:00 KST: the regular session is open."""
    import datetime as dt

    import time_machine

    from market.krx import SEOUL

    with time_machine.travel(dt.datetime(2026, 11, 24, 10, 0, tzinfo=SEOUL), tick=True):
        yield


def test_real_account_sends_no_order_before_confirmation(fake_real, user):
    account = BrokerAccountFactory(
        owner=user, mode=BrokerMode.REAL, app_key=FAKE_APP_KEY, app_secret=FAKE_APP_SECRET,
        account_number=FAKE_ACCOUNT_NO,
    )
    with pytest.raises(OrderRefused, match="실전투자"):
        broker_for(account).place_order("buy", "005930", 1, 72_900)
    assert fake_real.count(ORDER_PATH, "POST") == 0


def test_confirmed_real_account_sends_exactly_one_order(in_session, fake_real, user):
    account = BrokerAccountFactory(
        owner=user, mode=BrokerMode.REAL, app_key=FAKE_APP_KEY, app_secret=FAKE_APP_SECRET,
        account_number=FAKE_ACCOUNT_NO, confirm_live_trading=True,
    )
    assert account.live_trading_allowed
    receipt = broker_for(account).place_order("buy", "005930", 1, 72_900)
    assert receipt.order_no
    assert fake_real.count(ORDER_PATH, "POST") == 1
    assert fake_real.tr_ids(ORDER_PATH) == ["TTTC0012U"]


def test_leaving_real_mode_clears_the_confirmation(user):
    account = BrokerAccountFactory(owner=user, mode=BrokerMode.REAL, confirm_live_trading=True)
    from accounts.services import save_broker_account

    save_broker_account(account, mode=BrokerMode.SIMULATED)
    save_broker_account(account, mode=BrokerMode.REAL)
    assert not account.live_trading_allowed


def test_kis_broker_every_gateway_method_over_http(in_session, fake_vts, kis_account):
    """Each gateway call reaches the 모의투자 host with its paper tr_id and parses the real fields."""
    import datetime as dt

    from market.krx import SEOUL

    broker = broker_for(kis_account)
    today = dt.datetime.now(SEOUL).date()
    assert broker.get_quote("005930").price == 72_900
    bars = broker.get_daily_bars("005930", today - dt.timedelta(days=30), today)
    assert bars and all(bar.low <= bar.close <= bar.high for bar in bars)
    assert broker.get_buyable("005930", 72_900).orderable_cash == fake_vts.cash
    fake_vts.auto_fill = False
    receipt = broker.place_order("buy", "005930", 2, 72_900)
    [row] = broker.get_daily_orders(today, today)
    assert (row.order_no, row.quantity, row.filled_quantity) == (receipt.order_no, 2, 0)
    broker.cancel_order(receipt.order_no, receipt.org_no)
    assert broker.get_balance().summary.cash_deposit == fake_vts.cash
    assert fake_vts.tr_ids(ORDER_PATH) == ["VTTC0012U"]
    assert fake_vts.count(ORDER_PATH, "POST") == 1


def test_order_time_out_is_reconciled_without_a_second_order(in_session, fake_vts, kis_account):
    import datetime as dt

    from market.kis import KisOrderOutcomeUnknown
    from market.krx import SEOUL

    fake_vts.add_fault(ORDER_PATH, "drop_connection")
    broker = broker_for(kis_account)
    with pytest.raises(KisOrderOutcomeUnknown):
        broker.place_order("buy", "005930", 3, 72_900)
    today = dt.datetime.now(SEOUL).date()
    found = [row for row in broker.get_daily_orders(today, today) if row.code == "005930"]
    assert [row.order_no for row in found] == [fake_vts.accepted_orders[0]["ODNO"]]
    assert fake_vts.count(ORDER_PATH, "POST") == 1  # zero duplicates


@pytest.mark.parametrize(
    ("moment", "quantity", "price", "reason"),
    [((2026, 11, 24, 10, 0), 1, 72_950, "호가 단위"), ((2026, 11, 24, 10, 0), 0, 72_900, "수량"),
     ((2026, 11, 24, 16, 0), 1, 72_900, "주문 가능 시간"), ((2026, 11, 22, 10, 0), 1, 72_900, "")],
)
def test_orders_breaking_krx_rules_never_leave(fake_vts, kis_account, moment, quantity, price, reason):
    import datetime as dt

    import time_machine

    from market.krx import SEOUL

    with time_machine.travel(dt.datetime(*moment, tzinfo=SEOUL)):
        with pytest.raises(OrderRefused) as refused:
            broker_for(kis_account).place_order("buy", "005930", quantity, price)
    assert reason in refused.value.user_message
    assert fake_vts.count(ORDER_PATH, "POST") == 0


def test_burst_of_100_requests_stays_under_the_kis_limit(fake_real, user):
    """100 quotes from 8 threads through the site's shared limiter: KIS (the fake enforces 20/s per
    app key, as KIS does) never answers EGW00201."""
    from concurrent.futures import ThreadPoolExecutor

    account = BrokerAccountFactory(
        owner=user, mode=BrokerMode.REAL, app_key=FAKE_APP_KEY, app_secret=FAKE_APP_SECRET,
        account_number=FAKE_ACCOUNT_NO,
    )
    broker = broker_for(account)
    broker.get_balance()  # token issued before the burst
    with ThreadPoolExecutor(max_workers=8) as pool:
        prices = list(pool.map(lambda _: broker.get_quote("005930").price, range(100)))
    assert prices == [72_900] * 100
    assert fake_real.rate_limited == 0
