"""KisClient against the fake KIS server over real HTTP on 127.0.0.1.

Backoffs are injected tiny (milliseconds) so the whole module runs in seconds; nothing sleeps for real
except where a test is about time-outs or rate limits.
"""

from __future__ import annotations

import datetime as dt
import logging
import math
import multiprocessing
import os
import socket
import stat
import threading
import time
from decimal import Decimal
from typing import Any

import pytest
import requests

from market.kis import (
    TR_IDS,
    FileTokenStore,
    InMemoryTokenStore,
    KisApiError,
    KisAuthError,
    KisClient,
    KisError,
    KisNetworkError,
    KisNotFound,
    KisOrderOutcomeUnknown,
    KisPaginationError,
    KisProtocolError,
    KisRateLimited,
    KisServerError,
    KisTokenExpired,
    KisTokenIssueThrottled,
    NoRateLimit,
    RedactingLogFilter,
    SmoothRateLimiter,
    mask_account,
    mask_secret,
    safe_headers,
)
from market.kis.client import SEOUL
from market.tests.fake_kis import (
    BALANCE_PATH,
    BUYABLE_PATH,
    DAILY_CHART_PATH,
    DAILY_ORDERS_PATH,
    FAKE_ACCOUNT_NO,
    FAKE_APP_KEY,
    FAKE_APP_SECRET,
    FAKE_PRODUCT_CODE,
    HASHKEY_PATH,
    ORDER_CASH_PATH,
    ORDER_REVISE_CANCEL_PATH,
    QUOTE_PATH,
    TOKEN_PATH,
    FakeKisServer,
    trading_days,
)


def make_client(fake: FakeKisServer, **overrides: Any) -> KisClient:
    params: dict[str, Any] = {
        "app_key": FAKE_APP_KEY,
        "app_secret": FAKE_APP_SECRET,
        "account_no": FAKE_ACCOUNT_NO,
        "product_code": FAKE_PRODUCT_CODE,
        "mode": fake.mode,
        "base_url": fake.base_url,
        "token_store": InMemoryTokenStore(),
        # A fresh limiter per client keeps tests independent; 19/s stays under the fake's 20/s.
        "rate_limiter": SmoothRateLimiter(19, throttle_pause=0.01),
        "timeout": (1.0, 2.0),
        "max_retries": 2,
        "order_max_retries": 2,
        "backoff_base": 0.001,
        "backoff_max": 0.01,
        "token_throttle_wait": 0.0,
    }
    params.update(overrides)
    return KisClient(**params)


def seoul_today() -> dt.date:
    return dt.datetime.now(SEOUL).date()


# ---------------------------------------------------------------------------------------------- tokens
def test_token_is_issued_once_and_reused(fake_kis: FakeKisServer) -> None:
    store = InMemoryTokenStore()
    client = make_client(fake_kis, token_store=store)
    for _ in range(3):
        client.get_quote("005930")
    # A second client on the same store reuses it too.
    make_client(fake_kis, token_store=store).get_quote("000660")

    assert fake_kis.count(TOKEN_PATH) == 1
    assert fake_kis.count(QUOTE_PATH) == 4
    tokens_used = {r.headers["authorization"] for r in fake_kis.requests if r.path == QUOTE_PATH}
    assert tokens_used == {f"Bearer {fake_kis.tokens_issued[0]}"}


def test_threads_with_file_store_share_one_issuance(fake_kis: FakeKisServer, tmp_path) -> None:
    fake_kis.token_delay = 0.3  # every thread arrives while the first issuance is still in flight
    thread_count = 6
    barrier = threading.Barrier(thread_count)
    prices: list[int] = []
    errors: list[BaseException] = []

    def worker() -> None:
        client = make_client(fake_kis, token_store=FileTokenStore(tmp_path))  # own store object, same dir
        barrier.wait()
        try:
            prices.append(client.get_quote("005930").price)
        except BaseException as exc:  # collected and asserted below
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(thread_count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=10)

    assert errors == []
    assert prices == [72_900] * thread_count
    assert fake_kis.count(TOKEN_PATH) == 1


def _quote_in_subprocess(base_url: str, store_dir: str, barrier: Any, results: Any) -> None:
    client = KisClient(FAKE_APP_KEY, FAKE_APP_SECRET, FAKE_ACCOUNT_NO, FAKE_PRODUCT_CODE, mode="real",
                       base_url=base_url, token_store=FileTokenStore(store_dir),
                       rate_limiter=SmoothRateLimiter(19), backoff_base=0.001, backoff_max=0.01,
                       token_throttle_wait=0.0)
    barrier.wait(timeout=20)
    try:
        results.put(client.get_quote("005930").price)
    except KisError as exc:
        results.put(repr(exc))


def test_processes_with_file_store_share_one_issuance(fake_kis: FakeKisServer, tmp_path) -> None:
    fake_kis.token_delay = 0.5
    context = multiprocessing.get_context("spawn")
    process_count = 3
    barrier = context.Barrier(process_count)
    results = context.Queue()
    processes = [
        context.Process(target=_quote_in_subprocess, args=(fake_kis.base_url, str(tmp_path), barrier, results))
        for _ in range(process_count)
    ]
    for process in processes:
        process.start()
    outcomes = [results.get(timeout=30) for _ in range(process_count)]
    for process in processes:
        process.join(timeout=10)

    assert outcomes == [72_900] * process_count
    assert fake_kis.count(TOKEN_PATH) == 1
    assert fake_kis.count(QUOTE_PATH) == process_count


def test_file_store_files_are_private_and_damage_tolerant(tmp_path) -> None:
    store = FileTokenStore(tmp_path / "tokens")
    expires = dt.datetime(2030, 1, 1, 8, 30, tzinfo=SEOUL)
    store.set("kis-token-abc", "tok-value", expires)
    assert store.get("kis-token-abc") == ("tok-value", expires)
    token_file = tmp_path / "tokens" / "kis-token-abc.json"
    assert stat.S_IMODE(os.stat(token_file).st_mode) == 0o600
    token_file.write_text("{not json", encoding="utf-8")
    assert store.get("kis-token-abc") is None
    with pytest.raises(ValueError):
        store.set("kis-token-abc", "tok", dt.datetime(2030, 1, 1))  # naive datetimes are refused


@pytest.mark.parametrize(("minutes_left", "expect_new_token"), [(5, True), (30, False)])
def test_token_renewed_when_less_than_10_minutes_remain(
    fake_kis: FakeKisServer, minutes_left: int, expect_new_token: bool
) -> None:
    store = InMemoryTokenStore()
    old_token = "eyJ0eXAiOiJKV1QiLCJhbGciOiJIUzUxMiJ9.cHJlZmlsbGVkLXRva2Vu.b2xk"
    expires = dt.datetime.now(SEOUL) + dt.timedelta(minutes=minutes_left)
    fake_kis.register_token(old_token, expires)
    client = make_client(fake_kis, token_store=store)
    store.set(client.token_cache_key, old_token, expires)

    client.get_quote("005930")

    assert fake_kis.count(TOKEN_PATH) == (1 if expect_new_token else 0)
    used = fake_kis.requests[-1].headers["authorization"]
    assert (used != f"Bearer {old_token}") is expect_new_token
    assert (store.get(client.token_cache_key)[0] != old_token) is expect_new_token


@pytest.mark.parametrize("drop_tokens", ["expire_tokens", "invalidate_tokens"])
def test_rejected_token_is_replaced_once_and_call_retried(fake_kis: FakeKisServer, drop_tokens: str) -> None:
    client = make_client(fake_kis)
    client.get_quote("005930")
    getattr(fake_kis, drop_tokens)()  # KIS now answers EGW00123 / EGW00121 for the cached token

    assert client.get_quote("005930").price == 72_900
    assert fake_kis.count(TOKEN_PATH) == 2
    assert fake_kis.count(QUOTE_PATH) == 3  # ok, rejected, ok
    assert fake_kis.requests[-1].headers["authorization"] == f"Bearer {fake_kis.tokens_issued[-1]}"


def test_token_refresh_happens_only_once_per_call(fake_kis: FakeKisServer) -> None:
    fake_kis.token_min_interval = 0  # let the refresh reach tokenP; KIS then hands back the same token
    fake_kis.add_fault(QUOTE_PATH, "token_expired", times=None)
    client = make_client(fake_kis)

    with pytest.raises(KisTokenExpired) as caught:
        client.get_quote("005930")

    assert fake_kis.count(TOKEN_PATH) == 2  # first issuance + exactly one refresh
    assert fake_kis.count(QUOTE_PATH) == 2  # first try + exactly one retry
    assert caught.value.msg1 == "기간이 만료된 token 입니다."


def test_token_issue_throttle_waits_out_the_minute_once(fake_kis: FakeKisServer) -> None:
    fake_kis.token_min_interval = 0.3
    make_client(fake_kis).get_quote("005930")  # another client, other store, issued just now
    sleeps: list[float] = []

    def recording_sleep(seconds: float) -> None:
        sleeps.append(seconds)
        time.sleep(seconds)

    late_client = make_client(fake_kis, token_throttle_wait=0.35, sleep=recording_sleep)
    assert late_client.get_quote("005930").price == 72_900
    assert fake_kis.count(TOKEN_PATH) == 3  # ok, EGW00133, ok after waiting
    assert 0.35 in sleeps


def test_token_issue_throttle_without_wait_raises_korean_message(fake_kis: FakeKisServer) -> None:
    make_client(fake_kis).get_quote("005930")
    with pytest.raises(KisTokenIssueThrottled) as caught:
        make_client(fake_kis).get_quote("005930")
    assert caught.value.msg_cd == "EGW00133"
    assert caught.value.msg1 == "접근토큰 발급 잠시 후 다시 시도하세요(1분당 1회)"
    assert caught.value.http_status == 403
    assert "1분" in caught.value.user_message
    assert fake_kis.count(TOKEN_PATH) == 2  # not retried: retrying inside the minute cannot succeed


def test_bad_secret_is_an_auth_error_without_the_secret(fake_kis: FakeKisServer) -> None:
    wrong_secret = "WRONGsecretSENTINEL" + "y" * 161
    client = make_client(fake_kis, app_secret=wrong_secret)
    with pytest.raises(KisAuthError) as caught:
        client.get_quote("005930")
    assert caught.value.msg_cd == "EGW00105"
    assert caught.value.msg1 == "유효하지 않은 AppSecret입니다."
    assert wrong_secret not in str(caught.value) + repr(caught.value) + caught.value.user_message
    assert fake_kis.count(QUOTE_PATH) == 0


def test_revoke_token_forgets_it(fake_kis: FakeKisServer) -> None:
    fake_kis.token_min_interval = 0
    store = InMemoryTokenStore()
    client = make_client(fake_kis, token_store=store)
    client.get_quote("005930")
    first = fake_kis.tokens_issued[0]

    assert client.revoke_token() is True
    assert store.get(client.token_cache_key) is None
    assert client.revoke_token() is False
    client.get_quote("005930")
    assert fake_kis.tokens_issued[-1] != first


# ---------------------------------------------------------------------------------------------- tr_id
EXPECTED_TR_IDS = {
    "real": {ORDER_CASH_PATH: {"TTTC0012U", "TTTC0011U"}, ORDER_REVISE_CANCEL_PATH: {"TTTC0013U"},
             BALANCE_PATH: {"TTTC8434R"}, DAILY_ORDERS_PATH: {"TTTC0081R"}, BUYABLE_PATH: {"TTTC8908R"},
             QUOTE_PATH: {"FHKST01010100"}, DAILY_CHART_PATH: {"FHKST03010100"}},
    "paper": {ORDER_CASH_PATH: {"VTTC0012U", "VTTC0011U"}, ORDER_REVISE_CANCEL_PATH: {"VTTC0013U"},
              BALANCE_PATH: {"VTTC8434R"}, DAILY_ORDERS_PATH: {"VTTC0081R"}, BUYABLE_PATH: {"VTTC8908R"},
              QUOTE_PATH: {"FHKST01010100"}, DAILY_CHART_PATH: {"FHKST03010100"}},
}


@pytest.mark.parametrize("mode", ["real", "paper"])
def test_client_picks_tr_ids_for_real_and_paper(mode: str) -> None:
    with FakeKisServer(mode=mode, rate_limit_per_second=None) as fake:
        fake.auto_fill = False
        client = make_client(fake, rate_limiter=NoRateLimit())
        buy = client.place_order("buy", "005930", 1, 72_900)
        fake.set_holdings({"000660": (3, 180_000)})
        client.place_order("sell", "000660", 1, 0, order_type="01")
        client.revise_or_cancel(buy.org_no, buy.order_no, "cancel")
        client.get_balance()
        client.get_daily_orders(seoul_today(), seoul_today())
        client.get_buyable("005930")
        client.get_quote("005930")
        client.get_daily_bars("005930", seoul_today() - dt.timedelta(days=10), seoul_today())

        for path, expected in EXPECTED_TR_IDS[mode].items():
            assert set(fake.tr_ids(path)) == expected, path
        assert buy.org_no == ("91252" if mode == "real" else "00950")
    # The table the client uses agrees with the literal expectations above.
    index = 0 if mode == "real" else 1
    assert TR_IDS["order_buy"][index] in EXPECTED_TR_IDS[mode][ORDER_CASH_PATH]


def test_real_client_on_paper_host_fails_without_retry() -> None:
    with FakeKisServer(mode="paper", rate_limit_per_second=None) as fake:
        client = make_client(fake, mode="real")
        with pytest.raises(KisServerError) as caught:
            client.get_balance()
        assert caught.value.msg_cd == "EGW02006"
        assert caught.value.msg1 == "모의투자 TR 이 아닙니다."
        assert fake.tr_ids(BALANCE_PATH)[0] == "TTTC8434R"


# ---------------------------------------------------------------------------------------------- quotes
def test_quote_parsing(fake_kis: FakeKisServer) -> None:
    quote = make_client(fake_kis).get_quote("005930")
    assert quote.code == "005930"
    assert quote.price == 72_900
    assert quote.change == -300 and quote.change_sign == "5"
    assert quote.change_rate == Decimal("-0.41")
    assert quote.base_price == 73_200
    assert (quote.upper_limit, quote.lower_limit) == (95_100, 51_300)
    assert quote.tick_size == 100 and quote.lot_size == 1
    assert quote.temporarily_halted is False
    assert isinstance(quote.volume, int)
    assert fake_kis.requests[-1].query == {"FID_COND_MRKT_DIV_CODE": "J", "FID_INPUT_ISCD": "005930"}


def test_quote_unknown_symbol(fake_kis: FakeKisServer) -> None:
    with pytest.raises(KisNotFound):
        make_client(fake_kis).get_quote("999999")


def test_invalid_codes_are_refused_before_any_request(fake_kis: FakeKisServer) -> None:
    client = make_client(fake_kis)
    for code in ["5930", "005930 ", "005930\x00", "abcdef", 5930]:
        with pytest.raises(ValueError):
            client.get_quote(code)  # type: ignore[arg-type]
    assert fake_kis.requests == []


def test_daily_bars_paginate_over_more_than_100_days(fake_kis: FakeKisServer) -> None:
    fake_kis.chart_padding = 2  # the real server pads output2 with {} objects
    end = seoul_today()
    start = end - dt.timedelta(days=320)
    expected_days = trading_days(start, end)
    assert len(expected_days) > 200

    bars = make_client(fake_kis).get_daily_bars("005930", start, end)

    assert [bar.date for bar in bars] == expected_days  # oldest first, no gaps, no duplicates
    sample = fake_kis.bar_for("005930", expected_days[0])
    assert bars[0].close == int(sample["stck_clpr"]) and bars[0].volume == int(sample["acml_vol"])
    assert all(bar.low <= min(bar.open, bar.close) <= max(bar.open, bar.close) <= bar.high for bar in bars)
    calls = fake_kis.count(DAILY_CHART_PATH)
    assert math.ceil(len(expected_days) / 100) <= calls <= math.ceil(len(expected_days) / 100) + 1
    # Each call moved the end date back to the day before the oldest row received.
    second_query = [r.query for r in fake_kis.requests if r.path == DAILY_CHART_PATH][1]
    oldest_first_page = expected_days[-100]
    assert second_query["FID_INPUT_DATE_2"] == (oldest_first_page - dt.timedelta(days=1)).strftime("%Y%m%d")
    assert second_query["FID_ORG_ADJ_PRC"] == "0"  # 0 = adjusted on this TR


def test_daily_bars_stop_at_listing_date(fake_kis: FakeKisServer) -> None:
    end = seoul_today()
    listed = fake_kis.stocks["0039P0"].listed_on
    bars = make_client(fake_kis).get_daily_bars("0039P0", dt.date(2020, 1, 1), end)
    assert bars[0].date == trading_days(listed, end)[0]
    assert len(bars) == len(trading_days(listed, end))


# ---------------------------------------------------------------------------------------------- orders
def test_order_accepted_returns_order_number(fake_kis: FakeKisServer) -> None:
    client = make_client(fake_kis)
    receipt = client.place_order("buy", "005930", 10, 71_200)

    assert fake_kis.count(ORDER_CASH_PATH, "POST") == 1
    accepted = fake_kis.accepted_orders[0]
    assert receipt.order_no == accepted["ODNO"] and len(receipt.order_no) == 10
    assert receipt.org_no == "91252"
    assert receipt.order_time is not None
    assert receipt.msg1 == "주문 전송 완료 되었습니다."
    body = fake_kis.requests[-1].body
    assert body == {"CANO": FAKE_ACCOUNT_NO, "ACNT_PRDT_CD": "01", "PDNO": "005930", "ORD_DVSN": "00",
                    "ORD_QTY": "10", "ORD_UNPR": "71200", "EXCG_ID_DVSN_CD": "KRX"}
    # The accepted order shows up in daily orders and in the balance.
    orders = client.get_daily_orders(seoul_today(), seoul_today())
    assert [(o.order_no, o.side, o.quantity, o.filled_quantity) for o in orders] == [
        (receipt.order_no, "buy", 10, 10)]
    balance = client.get_balance()
    assert [(h.code, h.quantity, h.average_price) for h in balance.holdings] == [("005930", 10, Decimal(71_200))]
    assert balance.summary.cash_deposit == 10_000_000 - 712_000


def test_market_order_sends_zero_price(fake_kis: FakeKisServer) -> None:
    make_client(fake_kis).place_order("buy", "005930", 2, 0, order_type="01")
    assert fake_kis.requests[-1].body["ORD_UNPR"] == "0"
    assert fake_kis.requests[-1].body["ORD_DVSN"] == "01"


@pytest.mark.parametrize(
    ("quantity", "price", "order_type"),
    [(0, 70_000, "00"), (-1, 70_000, "00"), (True, 70_000, "00"), (1.5, 70_000, "00"), (1, 0, "00"),
     (1, -5, "00"), (1, 70_000, "1"), ("10", 70_000, "00")],
)
def test_bad_order_inputs_never_reach_kis(fake_kis: FakeKisServer, quantity: Any, price: Any,
                                          order_type: str) -> None:
    with pytest.raises(ValueError):
        make_client(fake_kis).place_order("buy", "005930", quantity, price, order_type=order_type)
    assert fake_kis.count(ORDER_CASH_PATH) == 0


@pytest.mark.parametrize("fault", ["drop_connection", "delay", "bad_gateway", "empty_msg_cd", "garbage_body",
                                   "missing_odno"])
def test_ambiguous_order_failures_raise_outcome_unknown_after_one_post(fake_kis: FakeKisServer,
                                                                      fault: str) -> None:
    fake_kis.add_fault(ORDER_CASH_PATH, fault, delay=1.5)
    client = make_client(fake_kis, timeout=(1.0, 0.3))

    with pytest.raises(KisOrderOutcomeUnknown) as caught:
        client.place_order("buy", "005930", 3, 72_900)

    assert fake_kis.count(ORDER_CASH_PATH, "POST") == 1  # never re-sent
    error = caught.value
    assert error.order_outcome_unknown is True
    assert error.order_summary["code"] == "005930" and error.order_summary["quantity"] == 3
    assert "다시 주문하지 말고" in error.user_message
    # The fake did accept it: reconciliation through daily orders finds exactly that order.
    assert len(fake_kis.accepted_orders) == 1
    found = client.get_daily_orders(seoul_today(), seoul_today(), code="005930", side="buy")
    assert [o.order_no for o in found] == [fake_kis.accepted_orders[0]["ODNO"]]


def test_rate_limited_order_is_retried_and_counted(fake_kis: FakeKisServer) -> None:
    fake_kis.add_fault(ORDER_CASH_PATH, "rate_limit", times=2)
    receipt = make_client(fake_kis).place_order("buy", "005930", 1, 72_900)
    assert fake_kis.count(ORDER_CASH_PATH, "POST") == 3  # 2 refusals (EGW00201) + 1 accepted
    assert [o["ODNO"] for o in fake_kis.accepted_orders] == [receipt.order_no]


def test_rate_limited_order_gives_up_after_cap_as_definitive_refusal(fake_kis: FakeKisServer) -> None:
    fake_kis.add_fault(ORDER_CASH_PATH, "rate_limit", times=None)
    with pytest.raises(KisRateLimited) as caught:
        make_client(fake_kis, order_max_retries=2).place_order("buy", "005930", 1, 72_900)
    assert fake_kis.count(ORDER_CASH_PATH, "POST") == 3
    assert fake_kis.accepted_orders == []
    assert caught.value.order_outcome_unknown is False
    assert caught.value.msg1 == "초당 거래건수를 초과하였습니다."


class CountingSession(requests.Session):
    def __init__(self) -> None:
        super().__init__()
        self.calls: list[dict[str, Any]] = []

    def request(self, method, url, *args, **kwargs):  # type: ignore[override]
        self.calls.append({"method": method, "url": url, "timeout": kwargs.get("timeout")})
        return super().request(method, url, *args, **kwargs)


def test_order_connect_refused_is_retried_because_nothing_was_sent(tmp_path) -> None:
    with socket.socket() as probe:  # a port with no listener
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    store = InMemoryTokenStore()
    session = CountingSession()
    client = KisClient(FAKE_APP_KEY, FAKE_APP_SECRET, FAKE_ACCOUNT_NO, FAKE_PRODUCT_CODE,
                       base_url=f"http://127.0.0.1:{port}", token_store=store, session=session,
                       rate_limiter=NoRateLimit(), order_max_retries=2, backoff_base=0.001, backoff_max=0.01)
    store.set(client.token_cache_key, "eyJhbGciOi.prefilled.token", dt.datetime.now(SEOUL) + dt.timedelta(hours=5))

    with pytest.raises(KisNetworkError) as caught:
        client.place_order("buy", "005930", 1, 72_900)

    assert caught.value.possibly_sent is False
    assert not isinstance(caught.value, KisOrderOutcomeUnknown)
    assert [c["method"] for c in session.calls] == ["POST"] * 3


def test_order_refusal_keeps_korean_message_and_is_not_retried(fake_kis: FakeKisServer) -> None:
    with pytest.raises(KisApiError) as caught:
        make_client(fake_kis).place_order("buy", "005930", 1_000, 72_900)
    error = caught.value
    assert (error.rt_cd, error.msg_cd, error.msg1) == ("1", "APBK0919", "주문가능금액을 초과 했습니다")
    assert "주문가능금액을 초과 했습니다" in error.user_message
    assert "주문가능금액을 초과 했습니다" in str(error)
    assert fake_kis.count(ORDER_CASH_PATH, "POST") == 1


def test_order_with_expired_token_renews_and_sends_once_more(fake_kis: FakeKisServer) -> None:
    client = make_client(fake_kis)
    client.get_quote("005930")
    fake_kis.expire_tokens()
    receipt = client.place_order("buy", "005930", 1, 72_900)
    assert fake_kis.count(ORDER_CASH_PATH, "POST") == 2  # refused at the gateway (EGW00123), then accepted
    assert [o["ODNO"] for o in fake_kis.accepted_orders] == [receipt.order_no]


def test_order_with_hashkey(fake_kis: FakeKisServer) -> None:
    receipt = make_client(fake_kis, use_hashkey=True).place_order("buy", "005930", 1, 72_900)
    assert receipt.order_no
    assert fake_kis.count(HASHKEY_PATH) == 1
    order_request = [r for r in fake_kis.requests if r.path == ORDER_CASH_PATH][0]
    assert order_request.headers["hashkey"]


def test_revise_and_cancel(fake_kis: FakeKisServer) -> None:
    fake_kis.auto_fill = False
    client = make_client(fake_kis)
    order = client.place_order("buy", "005930", 5, 72_000)
    revised = client.revise_or_cancel(order.org_no, order.order_no, "revise", quantity=2, price=72_100)
    cancelled = client.revise_or_cancel(order.org_no, order.order_no, "cancel")

    assert len({order.order_no, revised.order_no, cancelled.order_no}) == 3
    cancel_body = fake_kis.requests[-1].body
    assert cancel_body["RVSE_CNCL_DVSN_CD"] == "02" and cancel_body["QTY_ALL_ORD_YN"] == "Y"
    rows = {o.order_no: o for o in client.get_daily_orders(seoul_today(), seoul_today())}
    assert rows[cancelled.order_no].cancelled and rows[cancelled.order_no].original_order_no == order.order_no
    assert rows[cancelled.order_no].quantity == 3
    assert rows[order.order_no].remaining_quantity == 0
    with pytest.raises(KisApiError):  # nothing left to cancel
        client.revise_or_cancel(order.org_no, order.order_no, "cancel")


# ---------------------------------------------------------------------------------------------- bad answers
MAINTENANCE_PAGE = "<html><body>시스템 점검 중입니다</body></html>"


@pytest.mark.parametrize(
    ("status", "body", "error_type"),
    [
        (200, '{"msg_cd": "MCA00000", "msg1": "ok", "output": {"stck_prpr": "72900"}}', KisProtocolError),  # no rt_cd
        (200, '{"rt_cd": "0", "msg_cd": "MCA00000", "msg1": "", "output": null}', KisProtocolError),
        (200, '{"rt_cd": "0", "msg_cd": "MCA00000", "msg1": "", "output": {"stck_prpr": ""}}', KisNotFound),
        (200, '{"rt_cd": "0", "msg_cd": "MCA00000", "msg1": "", "output": {"stck_prpr": "12a"}}', KisProtocolError),
        (200, '{"rt_cd": "1", "msg_cd": "", "msg1": "기타 오류"}', KisApiError),
        (200, "[1, 2, 3]", KisProtocolError),
        (401, '{"error": "unauthorized"}', KisAuthError),
        (503, MAINTENANCE_PAGE, KisServerError),
    ],
)
def test_malformed_quote_answers_raise_typed_errors(fake_kis: FakeKisServer, status: int, body: str,
                                                    error_type: type) -> None:
    fake_kis.add_fault(QUOTE_PATH, "raw", times=None, status=status, body=body)
    with pytest.raises(error_type) as caught:
        make_client(fake_kis).get_quote("005930")
    assert caught.value.user_message
    retried = error_type is KisServerError
    assert fake_kis.count(QUOTE_PATH) == (3 if retried else 1)


def test_mojibake_message_still_yields_the_rejection(fake_kis: FakeKisServer) -> None:
    euc_kr = '{"rt_cd": "1", "msg_cd": "APBK0919", "msg1": "주문가능금액을 초과"}'.encode("euc-kr")
    fake_kis.add_fault(ORDER_CASH_PATH, "raw", status=200, body=euc_kr)
    with pytest.raises(KisApiError) as caught:
        make_client(fake_kis).place_order("buy", "005930", 1, 72_900)
    assert caught.value.msg_cd == "APBK0919"
    assert "\ufffd" in caught.value.msg1


def test_order_receipt_tolerates_impossible_time(fake_kis: FakeKisServer) -> None:
    body = ('{"rt_cd": "0", "msg_cd": "APBK0013", "msg1": "주문 전송 완료 되었습니다.", '
            '"output": {"KRX_FWDG_ORD_ORGNO": "91252", "ODNO": "0000999999", "ORD_TMD": "246060"}}')
    fake_kis.add_fault(ORDER_CASH_PATH, "raw", status=200, body=body)
    receipt = make_client(fake_kis).place_order("buy", "005930", 1, 72_900)
    assert (receipt.order_no, receipt.order_time) == ("0000999999", None)


# ---------------------------------------------------------------------------------------------- retries
@pytest.mark.parametrize(
    ("fault", "error_type"),
    [("rate_limit", KisRateLimited), ("bad_gateway", KisServerError), ("empty_msg_cd", KisServerError),
     ("delay", KisNetworkError), ("drop_connection", KisNetworkError)],
)
def test_reads_retry_exactly_n_plus_one_times(fake_kis: FakeKisServer, fault: str, error_type: type) -> None:
    fake_kis.add_fault(QUOTE_PATH, fault, times=None, delay=1.0)
    sleeps: list[float] = []
    client = make_client(fake_kis, max_retries=3, timeout=(1.0, 0.2), sleep=sleeps.append)

    with pytest.raises(error_type):
        client.get_quote("005930")

    assert fake_kis.count(QUOTE_PATH) == 4
    assert len(sleeps) == 3 and all(0 < s <= 0.01 for s in sleeps)  # bounded backoff between attempts


def test_read_recovers_after_transient_failures(fake_kis: FakeKisServer) -> None:
    fake_kis.add_fault(QUOTE_PATH, "bad_gateway", times=2)
    assert make_client(fake_kis).get_quote("005930").price == 72_900
    assert fake_kis.count(QUOTE_PATH) == 3


def test_every_request_carries_a_timeout(fake_kis: FakeKisServer) -> None:
    session = CountingSession()
    client = make_client(fake_kis, session=session, use_hashkey=True)
    client.get_quote("005930")
    client.place_order("buy", "005930", 1, 72_900)
    client.get_balance()
    client.get_daily_orders(seoul_today(), seoul_today())
    client.revoke_token()
    assert len(session.calls) == 7  # tokenP, quote, hashkey, order, balance, daily orders, revokeP
    assert all(call["timeout"] == (1.0, 2.0) for call in session.calls)


# ---------------------------------------------------------------------------------------------- pages
def test_balance_follows_continuation_to_the_end(fake_kis: FakeKisServer) -> None:
    fake_kis.balance_page_size = 20
    holdings = {f"{100000 + i:06d}": (i + 1, 10_000) for i in range(45)}
    fake_kis.set_holdings(holdings | {"005930": (0, 70_000)})  # sold out today: still listed with qty 0

    balance = make_client(fake_kis).get_balance()

    assert balance.pages == 3
    assert {h.code: h.quantity for h in balance.holdings} == {code: qty for code, (qty, _) in holdings.items()}
    requests_seen = [r for r in fake_kis.requests if r.path == BALANCE_PATH]
    assert [r.headers.get("tr_cont", "") for r in requests_seen] == ["", "N", "N"]
    assert requests_seen[1].query["CTX_AREA_FK100"] == f"{FAKE_ACCOUNT_NO}^01^N^N^01^01^N^"
    assert balance.summary.securities_evaluation == sum(h.evaluation_amount for h in balance.holdings)


def test_daily_orders_follow_continuation_to_the_end(fake_kis: FakeKisServer) -> None:
    seeded = fake_kis.seed_orders(249, seoul_today())  # e.g. orders the user placed in the MTS app
    client = make_client(fake_kis)
    mine = client.place_order("buy", "005930", 1, 72_900)
    orders = client.get_daily_orders(seoul_today(), seoul_today())
    assert fake_kis.count(DAILY_ORDERS_PATH) == 3  # 100 + 100 + 50 rows
    assert sorted(o.order_no for o in orders) == sorted([*seeded, mine.order_no])
    assert all(o.order_time is not None and o.side == "buy" for o in orders)


def test_daily_orders_older_than_three_months_use_the_history_tr(fake_kis: FakeKisServer) -> None:
    today = seoul_today()
    old_day = today - dt.timedelta(days=200)
    fake_kis.seed_orders(2, old_day)
    fake_kis.seed_orders(1, today)

    orders = make_client(fake_kis).get_daily_orders(old_day, today)

    assert len(orders) == 3
    requests_seen = [r for r in fake_kis.requests if r.path == DAILY_ORDERS_PATH]
    assert [r.tr_id for r in requests_seen] == ["TTTC0081R", "CTSC9215R"]
    recent, history = (r.query for r in requests_seen)
    cutoff = dt.datetime.strptime(recent["INQR_STRT_DT"], "%Y%m%d").date()
    assert cutoff.day == 1 and (today.year * 12 + today.month) - (cutoff.year * 12 + cutoff.month) == 3
    assert history["INQR_STRT_DT"] == old_day.strftime("%Y%m%d")
    assert history["INQR_END_DT"] == (cutoff - dt.timedelta(days=1)).strftime("%Y%m%d")


@pytest.mark.parametrize(("fault", "expected_requests"), [("endless_same_key", 2), ("endless_new_key", 5)])
def test_endless_continuation_stops_with_an_error(fake_kis: FakeKisServer, fault: str,
                                                  expected_requests: int) -> None:
    fake_kis.add_fault(DAILY_ORDERS_PATH, fault, times=None)
    started = time.monotonic()
    with pytest.raises(KisPaginationError):
        make_client(fake_kis, max_pages=5).get_daily_orders(seoul_today(), seoul_today())
    assert time.monotonic() - started < 5
    assert fake_kis.count(DAILY_ORDERS_PATH) == expected_requests


def test_data_changed_between_pages_restarts_from_page_one(fake_kis: FakeKisServer) -> None:
    fake_kis.balance_page_size = 20
    fake_kis.set_holdings({f"{200000 + i:06d}": (1, 5_000) for i in range(45)})
    fake_kis.add_fault(BALANCE_PATH, "data_changed", skip=1)  # page 2 answers SYDB0050 once

    balance = make_client(fake_kis).get_balance()

    assert len(balance.holdings) == 45
    tr_conts = [r.headers.get("tr_cont", "") for r in fake_kis.requests if r.path == BALANCE_PATH]
    assert tr_conts == ["", "N", "", "N", "N"]


def test_buyable_amount(fake_kis: FakeKisServer) -> None:
    buyable = make_client(fake_kis).get_buyable("005930")
    assert buyable.price_used == 95_100  # market orders are sized at the upper limit
    assert buyable.cash_only_quantity == 105
    assert buyable.orderable_cash == 10_000_000
    assert fake_kis.requests[-1].query["ORD_DVSN"] == "01"


# ---------------------------------------------------------------------------------------------- limits
def test_client_rate_limiter_keeps_under_the_kis_limit(fake_kis: FakeKisServer) -> None:
    fake_kis.rate_limit_per_second = 10
    client = make_client(fake_kis, rate_limiter=SmoothRateLimiter(9))
    for _ in range(14):
        client.get_quote("005930")
    assert fake_kis.rate_limited == 0


def test_kis_rate_limit_answers_are_backed_off_and_retried(fake_kis: FakeKisServer) -> None:
    fake_kis.rate_limit_per_second = 10
    client = make_client(fake_kis, rate_limiter=NoRateLimit(), max_retries=5, backoff_base=0.2, backoff_max=0.8)
    prices = [client.get_quote("005930").price for _ in range(12)]
    assert prices == [72_900] * 12
    assert fake_kis.rate_limited >= 1
    assert fake_kis.count(QUOTE_PATH) == 12 + fake_kis.rate_limited


def test_smooth_limiter_spaces_requests_per_key_and_pauses_on_throttle() -> None:
    slept: list[float] = []

    def recording_sleep(seconds: float) -> None:
        slept.append(seconds)
        time.sleep(seconds)

    limiter = SmoothRateLimiter(10, throttle_pause=0.3, sleep=recording_sleep)
    started = time.monotonic()
    for _ in range(6):
        limiter.acquire("app")
    spaced = time.monotonic() - started
    assert spaced >= 0.45  # 5 gaps of 100 ms at 10/s, not a burst
    started = time.monotonic()
    limiter.acquire("other-app")  # another key has its own budget
    assert time.monotonic() - started < 0.05
    limiter.on_throttled("app")
    limiter.acquire("app")
    assert slept and slept[-1] == pytest.approx(0.3, abs=0.05)


# ---------------------------------------------------------------------------------------------- secrets
def test_masking_helpers() -> None:
    assert mask_account("12345678") == "1234****"
    assert mask_account("12345678-01") == "1234****-01"
    assert mask_secret(FAKE_APP_SECRET) == FAKE_APP_SECRET[:4] + "****"
    assert mask_secret("short") == "****"
    headers = safe_headers({"authorization": "Bearer abc.def.ghi", "appkey": FAKE_APP_KEY,
                            "appsecret": FAKE_APP_SECRET, "tr_id": "TTTC8434R"})
    assert headers == {"authorization": "Bearer ****", "appkey": FAKE_APP_KEY[:4] + "****",
                       "appsecret": FAKE_APP_SECRET[:4] + "****", "tr_id": "TTTC8434R"}


def _exercise_everything(fake: FakeKisServer) -> list[BaseException]:
    """Run calls and failures that put secrets at risk; return the errors raised."""
    fake.balance_page_size = 1
    fake.set_holdings({"005930": (2, 70_000), "000660": (1, 180_000)})
    client = make_client(fake, timeout=(1.0, 0.1))
    errors: list[BaseException] = []
    client.get_quote("005930")
    client.get_balance()  # continuation keys carry the account number
    client.place_order("buy", "005930", 1, 72_900)
    fake.add_fault(QUOTE_PATH, "echo_secret")  # KIS echoes appsecret, the bearer token and CANO in msg1
    fake.add_fault(ORDER_CASH_PATH, "drop_connection")
    fake.add_fault(BALANCE_PATH, "delay", times=None, delay=0.5)
    for call in (lambda: client.get_quote("005930"), lambda: client.place_order("buy", "005930", 1, 72_900),
                 client.get_balance):
        try:
            call()
        except KisError as exc:
            errors.append(exc)
    fake.clear_faults()
    fake.expire_tokens()
    client.get_quote("005930")  # renewal path logs too
    wrong = make_client(fake, app_secret=FAKE_APP_SECRET[:-1] + "Z")
    try:
        wrong.issue_token()
    except KisError as exc:
        errors.append(exc)
    errors_texts = [repr(client), str(client.get_token()), repr(client.get_token())]
    errors.append(Exception(" ".join(errors_texts)))
    return errors


def _sentinels(fake: FakeKisServer) -> list[str]:
    return [FAKE_APP_KEY, FAKE_APP_SECRET, FAKE_APP_SECRET[:-1] + "Z", FAKE_ACCOUNT_NO, *fake.tokens_issued]


def test_secrets_absent_from_errors_and_kis_logs(fake_kis: FakeKisServer, caplog) -> None:
    caplog.set_level(logging.DEBUG, logger="market.kis")
    errors = _exercise_everything(fake_kis)

    assert len(errors) == 5
    texts = [str(e) for e in errors] + [repr(e) for e in errors]
    texts += [e.user_message for e in errors if isinstance(e, KisError)]
    kis_log = "\n".join(r.getMessage() for r in caplog.records if r.name.startswith("market.kis"))
    assert "order outcome UNKNOWN" in kis_log and "5012****" in kis_log  # the logs are there, masked
    for secret in _sentinels(fake_kis):
        assert secret not in kis_log
        for text in texts:
            assert secret not in text
    echoed = next(e for e in errors if isinstance(e, KisApiError))
    assert echoed.msg1.startswith("입력값 오류")  # Korean text kept, secrets masked


def test_log_filter_masks_third_party_records_too(fake_kis: FakeKisServer, caplog) -> None:
    """With everything at DEBUG, urllib3 logs URLs that contain CANO; the filter masks them."""
    caplog.set_level(logging.DEBUG)
    caplog.set_level(logging.DEBUG, logger="urllib3")  # the site's LOGGING keeps urllib3 at WARNING
    caplog.handler.addFilter(RedactingLogFilter())
    try:
        _exercise_everything(fake_kis)
    finally:
        caplog.handler.filters.clear()
    assert any(r.name.startswith("urllib3") for r in caplog.records)
    for secret in _sentinels(fake_kis):
        assert secret not in caplog.text
