"""Every web request gets a total time budget for its broker calls (market.middleware,
BROKER_WEB_DEADLINE_SECONDS): with the fake KIS host answering slowly (or refusing a token re-issue for a
minute), the connection test (API and HTMX, also the dashboard's broker balance) and the quote (API and
box) answer a clear Korean message within the budget — never a bare 500 after gunicorn's 30 s. The
site's token lock (DatabaseTokenStore) is waited for only until the deadline too."""

from __future__ import annotations

import threading
import time

import pytest
from django.db import connection
from django.test import RequestFactory
from django.urls import reverse
from django.utils import timezone
from rest_framework.test import APIClient

from accounts.models import BrokerMode
from accounts.tests.factories import BrokerAccountFactory
from market.brokers.shared_state import DatabaseTokenStore
from market.kis import KisDeadlineExceeded
from market.kis.deadline import current_deadline, deadline
from market.kis.ratelimit import NoRateLimit
from market.krx import is_regular_session
from market.middleware import BrokerDeadlineMiddleware
from market.models import Instrument
from market.tests.fake_kis import (
    BALANCE_PATH,
    FAKE_ACCOUNT_NO,
    FAKE_APP_KEY,
    FAKE_APP_SECRET,
    QUOTE_PATH,
    FakeKisServer,
)

SLOW = "증권사 응답이 늦어 요청을 중단했습니다 (1.5초). 잠시 후 다시 시도하세요."
# The budget covers the broker calls; the rest of a request (session, database, rendering) comes on top
# and can take a while on a busy test machine. Without the budget these requests take 41 s or more.
WITHIN_BUDGET = 1.5 + 2.0


@pytest.fixture
def fake_vts(settings, monkeypatch):
    """A fake 모의투자 host for the site's simulated accounts; a 1.5 s budget per web request."""
    # The process-wide 모의투자 pacer (2 per 1.1 s) would only slow the tests down.
    monkeypatch.setattr("market.brokers.kis.rate_limiter_for", lambda kis_mode: NoRateLimit())
    settings.BROKER_WEB_DEADLINE_SECONDS = 1.5
    with FakeKisServer(mode="paper", rate_limit_per_second=None) as server:
        settings.KIS_BASE_URLS = {"real": "", "paper": server.base_url}
        yield server


@pytest.fixture
def kis_account(user):
    return BrokerAccountFactory(owner=user, mode=BrokerMode.SIMULATED, app_key=FAKE_APP_KEY,
                                app_secret=FAKE_APP_SECRET, account_number=FAKE_ACCOUNT_NO)


@pytest.fixture
def api(user):
    client = APIClient()
    client.force_authenticate(user)
    return client


def timed(call):
    started = time.monotonic()
    response = call()
    return response, time.monotonic() - started


# ---------------------------------------------------------------------------------------------- middleware
@pytest.mark.parametrize(("setting", "expected"), [(1.5, 1.5), (20, 20.0), (0, None)])
def test_the_middleware_gives_each_request_the_configured_budget(settings, setting, expected) -> None:
    settings.BROKER_WEB_DEADLINE_SECONDS = setting
    seen = []

    def view(request):
        budget = current_deadline()
        seen.append(budget.seconds if budget else None)
        return None

    BrokerDeadlineMiddleware(view)(RequestFactory().get("/"))
    assert seen == [expected]
    assert current_deadline() is None  # nothing leaks into the next request on this thread


@pytest.mark.parametrize(("headers", "content_type"), [
    ({}, "application/json"),
    ({"HTTP_HX_REQUEST": "true"}, "text/plain; charset=utf-8"),
    ({"HTTP_ACCEPT": "text/html,application/xhtml+xml"}, "text/plain; charset=utf-8"),
])
def test_a_deadline_error_escaping_a_view_answers_504_not_500(headers, content_type) -> None:
    error = KisDeadlineExceeded(seconds=20, stage="retry")
    request = RequestFactory().post("/trade/005930", **headers)
    response = BrokerDeadlineMiddleware(lambda request: None).process_exception(request, error)
    assert response.status_code == 504 and response["Content-Type"] == content_type
    assert "증권사 응답이 늦어 요청을 중단했습니다 (20초)" in response.content.decode()
    assert BrokerDeadlineMiddleware(lambda request: None).process_exception(request, ValueError()) is None


# ---------------------------------------------------------------------------------------------- connection test
@pytest.mark.django_db
def test_connection_test_api_answers_504_in_korean_within_the_budget(fake_vts, kis_account, api) -> None:
    fake_vts.add_fault(BALANCE_PATH, "delay", times=None, delay=30)  # unbounded: ~41 s of retries, then 500

    response, elapsed = timed(lambda: api.post(reverse("api:connection-test", args=[kis_account.pk])))

    assert response.status_code == 504
    body = response.json()
    assert body["detail"] == SLOW and body["error"] == SLOW and body["ok"] is False
    assert body["error_code"] == "KIS_DEADLINE"
    assert elapsed < WITHIN_BUDGET, elapsed
    assert fake_vts.count(BALANCE_PATH) == 1


@pytest.mark.django_db
def test_connection_test_partial_shows_the_message(fake_vts, kis_account, client, user) -> None:
    """The HTMX partial the account page and the dashboard's broker balance load."""
    fake_vts.add_fault(BALANCE_PATH, "delay", times=None, delay=30)
    client.force_login(user)

    response, elapsed = timed(lambda: client.post(reverse("market:connection_test", args=[kis_account.pk]),
                                                  HTTP_HX_REQUEST="true"))

    assert response.status_code == 200  # htmx swaps 2xx only: the message must be shown
    assert SLOW in response.content.decode()
    assert elapsed < WITHIN_BUDGET, elapsed


@pytest.mark.django_db
def test_a_token_reissue_meeting_the_minute_limit_answers_at_once(fake_vts, kis_account, api, settings) -> None:
    settings.BROKER_WEB_DEADLINE_SECONDS = 20  # the default: still far shorter than KIS's minute
    fake_vts.token_issued_elsewhere()  # e.g. a worker issued a token a moment ago: EGW00133 for a minute

    response, elapsed = timed(lambda: api.post(reverse("api:connection-test", args=[kis_account.pk])))

    assert response.status_code == 504
    assert "토큰 발급 제한(1분에 1회)" in response.json()["detail"]
    assert elapsed < 5  # not a 61 s sleep inside the request


# ---------------------------------------------------------------------------------------------- quote
@pytest.mark.django_db
def test_quote_api_and_box_answer_the_message_within_the_budget(fake_vts, kis_account, api, client, user) -> None:
    Instrument.objects.create(code="005930", name="삼성전자", market="KOSPI")
    fake_vts.add_fault(QUOTE_PATH, "delay", times=None, delay=30)

    response, elapsed = timed(lambda: api.get(reverse("api:instrument-quote", args=["005930"])))
    assert response.status_code == 504
    assert response.json() == {"detail": SLOW, "code": "KIS_DEADLINE"}
    assert elapsed < WITHIN_BUDGET, elapsed

    client.force_login(user)
    is_regular_session(timezone.now())  # the box asks the KRX calendar first; build it outside the timing
    response, elapsed = timed(lambda: client.get(reverse("market:quote", args=["005930"]), HTTP_HX_REQUEST="true"))
    assert response.status_code == 200 and SLOW in response.content.decode()
    assert elapsed < WITHIN_BUDGET, elapsed


# ---------------------------------------------------------------------------------------------- token lock
@pytest.mark.django_db(transaction=True)
def test_the_site_token_lock_is_waited_for_only_until_the_deadline() -> None:
    """Another process holds the lock (e.g. a worker waiting out the token limit for a minute)."""
    store = DatabaseTokenStore()
    held, release = threading.Event(), threading.Event()

    def worker() -> None:
        try:
            with store.lock("kis-token-deadline-test"):
                held.set()
                release.wait(10)
        finally:
            connection.close()

    thread = threading.Thread(target=worker)
    thread.start()
    try:
        assert held.wait(10)
        started = time.monotonic()
        with deadline(0.5), pytest.raises(KisDeadlineExceeded) as caught:
            with store.lock("kis-token-deadline-test"):
                pass
        assert time.monotonic() - started < 1.5 and caught.value.stage == "token_lock"
    finally:
        release.set()
        thread.join()
    with store.lock("kis-token-deadline-test"):  # free again, no deadline: taken at once
        pass
