"""A caller's total time budget (market.kis.deadline) through the KIS client, over real HTTP against the
fake KIS server: a slow broker or KIS's one-per-minute token limit must not hold a web request past its
deadline, an order stopped before its send is definitely not sent, an order sent and answered too late
stays "outcome unknown" (never re-sent), and without a deadline nothing changes."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from urllib3.util import Timeout

from market.kis import (
    FileTokenStore,
    InMemoryTokenStore,
    KisDeadlineExceeded,
    KisOrderOutcomeUnknown,
    SmoothRateLimiter,
)
from market.kis.deadline import current_deadline, deadline, remaining
from market.tests.fake_kis import BALANCE_PATH, ORDER_CASH_PATH, QUOTE_PATH, TOKEN_PATH, FakeKisServer
from market.tests.test_kis_client import CountingSession, make_client

NOT_SENT = "주문은 전송되지 않았습니다"
# How late after its deadline a call may return on a busy test machine (without one: 41 s, 61 s, 30 s).
SLACK = 1.0


@contextmanager
def timed() -> Iterator[list[float]]:
    elapsed: list[float] = []
    started = time.monotonic()
    try:
        yield elapsed
    finally:
        elapsed.append(time.monotonic() - started)


def site_like_client(fake: FakeKisServer, **overrides):
    """The time-outs, retries and backoff the site's clients use (about 41 s for a read that never
    answers), and the real 61 s wait for the token limit."""
    options = {"timeout": (3.05, 10), "max_retries": 3, "backoff_base": 0.5, "backoff_max": 8.0,
               "token_throttle_wait": 61.0}
    return make_client(fake, **options | overrides)


# ---------------------------------------------------------------------------------------------- the budget
def test_a_deadline_nests_only_inward_and_is_gone_outside() -> None:
    assert current_deadline() is None and remaining() is None
    with deadline(5) as outer:
        with deadline(60) as inner:  # cannot extend what the caller has left
            assert inner is outer
        with deadline(1) as shorter:
            assert shorter.seconds == 1 and 0.9 < remaining() <= 1
        assert current_deadline() is outer
    assert current_deadline() is None
    with pytest.raises(ValueError):
        with deadline(0):
            pass


def test_each_request_timeout_is_cut_to_what_is_left(fake_kis: FakeKisServer) -> None:
    session = CountingSession()
    client = site_like_client(fake_kis, session=session)
    client.get_quote("005930")  # no deadline: the configured pair
    with deadline(5):
        client.get_quote("005930")
    assert session.calls[0]["timeout"] == (3.05, 10)
    cut = session.calls[-1]["timeout"]
    assert isinstance(cut, Timeout) and cut.total <= 5 and cut.connect_timeout <= 3.05


# ---------------------------------------------------------------------------------------------- reads
def test_a_slow_balance_stops_within_a_2s_deadline_with_a_korean_message(fake_kis: FakeKisServer) -> None:
    fake_kis.add_fault(BALANCE_PATH, "delay", times=None, delay=30)  # without a deadline: ~41 s, then an error
    client = site_like_client(fake_kis)
    client.get_token()

    with timed() as elapsed, deadline(2), pytest.raises(KisDeadlineExceeded) as caught:
        client.get_balance()

    assert elapsed[0] < 2 + SLACK
    assert caught.value.user_message == "증권사 응답이 늦어 요청을 중단했습니다 (2초). 잠시 후 다시 시도하세요."
    assert caught.value.code == "KIS_DEADLINE" and not caught.value.order_not_sent
    assert fake_kis.count(BALANCE_PATH) == 1  # no retry that could not finish in time


def test_a_deadline_with_room_changes_nothing(fake_kis: FakeKisServer) -> None:
    fake_kis.add_fault(QUOTE_PATH, "delay", times=2, delay=1.0)
    client = make_client(fake_kis, timeout=(1.0, 0.3))
    with deadline(10):
        assert client.get_quote("005930").price == 72_900
    assert fake_kis.count(QUOTE_PATH) == 3  # two time-outs retried, as without a deadline


# ---------------------------------------------------------------------------------------------- tokens
def test_a_token_reissue_meeting_the_one_per_minute_limit_fails_at_once(fake_kis: FakeKisServer) -> None:
    client = site_like_client(fake_kis)
    client.get_quote("005930")
    fake_kis.invalidate_tokens()  # e.g. KIS maintenance: the token must be re-issued ...
    fake_kis.token_issued_elsewhere()  # ... and another process of the app key just did (EGW00133)

    with timed() as elapsed, deadline(20), pytest.raises(KisDeadlineExceeded) as caught:
        client.get_quote("005930")

    assert elapsed[0] < SLACK  # not a 61 s sleep inside the request
    assert caught.value.stage == "token_limit"
    assert "토큰 발급 제한(1분에 1회)" in caught.value.user_message
    assert "잠시 후 다시 시도하세요" in caught.value.user_message
    assert fake_kis.count(TOKEN_PATH) == 2  # the first issuance, then the one EGW00133


@pytest.mark.parametrize("budget", [None, 5.0], ids=["no deadline", "a deadline that holds the wait"])
def test_the_token_limit_is_still_waited_out_when_there_is_time(fake_kis: FakeKisServer, budget) -> None:
    fake_kis.token_min_interval = 0.3
    fake_kis.token_issued_elsewhere()
    sleeps: list[float] = []

    def recording_sleep(seconds: float) -> None:
        sleeps.append(seconds)
        time.sleep(seconds)

    client = make_client(fake_kis, token_throttle_wait=0.35, sleep=recording_sleep)
    if budget is None:
        price = client.get_quote("005930").price
    else:
        with deadline(budget):
            price = client.get_quote("005930").price
    assert price == 72_900
    assert 0.35 in sleeps and fake_kis.count(TOKEN_PATH) == 2  # EGW00133, the wait, then issued


@pytest.mark.parametrize("store_kind", ["memory", "file"])
def test_a_token_lock_held_elsewhere_is_waited_for_only_until_the_deadline(tmp_path, store_kind) -> None:
    """The holder may be a worker waiting out the token limit under the lock for a minute."""
    store = InMemoryTokenStore() if store_kind == "memory" else FileTokenStore(tmp_path)
    held, release = threading.Event(), threading.Event()

    def holder() -> None:
        with store.lock("kis-token-x"):
            held.set()
            release.wait(10)

    thread = threading.Thread(target=holder)
    thread.start()
    try:
        assert held.wait(5)
        with timed() as elapsed, deadline(0.4), pytest.raises(KisDeadlineExceeded) as caught:
            with store.lock("kis-token-x"):
                pass
        assert elapsed[0] < 0.4 + SLACK and caught.value.stage == "token_lock"
    finally:
        release.set()
        thread.join()
    with store.lock("kis-token-x"):  # without a deadline, and free again: taken at once
        pass


# ---------------------------------------------------------------------------------------------- orders
def _stop_before_send(fake: FakeKisServer, cause: str):
    """A client and a deadline under which the order cannot be sent in time, for ``cause``."""
    if cause == "slow token":
        fake.token_delay = 5.0
        return site_like_client(fake), 1.0
    if cause == "token limit":
        fake.token_issued_elsewhere()
        return site_like_client(fake), 5.0
    if cause == "rate-limit pause":
        limiter = SmoothRateLimiter(19, throttle_pause=5.0)
        client = site_like_client(fake, rate_limiter=limiter)
        client.get_token()
        limiter.on_throttled(client._limiter_key)  # KIS said EGW00201: every sender pauses 5 s
        return client, 1.0
    # "too little left": less than the reserve an order needs to read its answer
    client = site_like_client(fake, order_time_reserve=2.0)
    client.get_token()
    return client, 1.5


@pytest.mark.parametrize("cause", ["slow token", "token limit", "rate-limit pause", "too little left"])
def test_an_order_stopped_by_the_deadline_before_its_send_is_definitely_not_sent(fake_kis: FakeKisServer,
                                                                                 cause: str) -> None:
    client, budget = _stop_before_send(fake_kis, cause)

    with timed() as elapsed, deadline(budget), pytest.raises(KisDeadlineExceeded) as caught:
        client.place_order("buy", "005930", 3, 72_900)

    error = caught.value
    assert error.order_not_sent and not error.order_outcome_unknown
    assert NOT_SENT in error.user_message
    assert fake_kis.count(ORDER_CASH_PATH) == 0 and fake_kis.accepted_orders == []
    assert elapsed[0] < budget + SLACK


def test_an_order_sent_in_time_and_answered_too_late_stays_unknown_and_is_not_resent(fake_kis: FakeKisServer) -> None:
    fake_kis.add_fault(ORDER_CASH_PATH, "delay", times=None, delay=30)
    client = site_like_client(fake_kis, order_time_reserve=0.5)
    client.get_token()

    with timed() as elapsed, deadline(1.5), pytest.raises(KisOrderOutcomeUnknown) as caught:
        client.place_order("buy", "005930", 3, 72_900)

    assert elapsed[0] < 1.5 + SLACK  # the read was cut to the deadline
    assert caught.value.order_outcome_unknown and "다시 주문하지 말고" in caught.value.user_message
    assert fake_kis.count(ORDER_CASH_PATH, "POST") == 1
    assert len(fake_kis.accepted_orders) == 1  # KIS took it: reconciliation will find it
