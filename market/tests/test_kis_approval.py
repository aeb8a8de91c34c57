"""The WebSocket approval key (KIS_API.md §2.3) over HTTP against the fake KIS server: the request body,
caching and sharing through the token store, renewal, refusal, and secrecy in logs."""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any

import pytest
import time_machine

from market.kis import FileTokenStore, InMemoryTokenStore, KisAuthError, NoRateLimit
from market.kis.client import KisClient
from market.kis.masking import default_redactor
from market.tests.fake_kis import (
    APPROVAL_PATH,
    FAKE_ACCOUNT_NO,
    FAKE_APP_KEY,
    FAKE_APP_SECRET,
    FAKE_PRODUCT_CODE,
    TOKEN_PATH,
    FakeKisServer,
)


def make_client(fake: FakeKisServer, **overrides: Any) -> KisClient:
    params: dict[str, Any] = {
        "app_key": FAKE_APP_KEY, "app_secret": FAKE_APP_SECRET, "account_no": FAKE_ACCOUNT_NO,
        "product_code": FAKE_PRODUCT_CODE, "mode": fake.mode, "base_url": fake.base_url,
        "token_store": InMemoryTokenStore(), "rate_limiter": NoRateLimit(), "timeout": (1.0, 2.0),
        "max_retries": 1, "backoff_base": 0.001, "backoff_max": 0.01, "token_throttle_wait": 0.0,
    }
    return KisClient(**(params | overrides))


def approval_requests(fake: FakeKisServer) -> list[dict[str, Any]]:
    return [r.body or {} for r in fake.requests if r.path == APPROVAL_PATH]


def test_approval_body_sends_the_secret_as_secretkey(fake_kis: FakeKisServer) -> None:
    key = make_client(fake_kis).approval_key()

    assert fake_kis.approval_keys_issued == [key]
    assert fake_kis.approval_keys[key] == FAKE_APP_KEY
    [body] = approval_requests(fake_kis)
    assert body == {"grant_type": "client_credentials", "appkey": FAKE_APP_KEY, "secretkey": FAKE_APP_SECRET}
    assert "appsecret" not in body


def test_approval_key_is_cached_and_shared_through_the_store(fake_kis: FakeKisServer, tmp_path) -> None:
    store = InMemoryTokenStore()
    first = make_client(fake_kis, token_store=store)
    key = first.approval_key()
    assert first.approval_key() == key
    assert make_client(fake_kis, token_store=store).approval_key() == key  # another client, same store
    assert fake_kis.count(APPROVAL_PATH) == 1

    # Across processes the file store shares it (each client here has its own store object).
    shared = make_client(fake_kis, token_store=FileTokenStore(tmp_path)).approval_key()
    assert make_client(fake_kis, token_store=FileTokenStore(tmp_path)).approval_key() == shared
    assert fake_kis.count(APPROVAL_PATH) == 2

    # It lives beside the access token, not in its place.
    first.get_token()
    assert first.approval_key() == key
    assert fake_kis.count(TOKEN_PATH) == 1 and fake_kis.count(APPROVAL_PATH) == 2
    assert store.get(first.token_cache_key) is not None


def test_approval_key_is_renewed_only_near_the_end_of_its_24_hours(fake_kis: FakeKisServer) -> None:
    start = dt.datetime(2026, 1, 5, 8, 0, tzinfo=dt.UTC)
    with time_machine.travel(start, tick=False) as traveller:
        client = make_client(fake_kis)
        key = client.approval_key()
        traveller.shift(dt.timedelta(hours=23, minutes=45))  # 15 minutes left: still used
        assert client.approval_key() == key
        assert fake_kis.count(APPROVAL_PATH) == 1
        traveller.shift(dt.timedelta(minutes=10))  # 5 minutes left: inside the renewal margin
        renewed = client.approval_key()
    assert renewed != key
    assert fake_kis.approval_keys_issued == [key, renewed]


def test_a_rejected_key_is_replaced_once(fake_kis: FakeKisServer) -> None:
    store = InMemoryTokenStore()
    first, second = make_client(fake_kis, token_store=store), make_client(fake_kis, token_store=store)
    key = first.approval_key()
    fresh = first.approval_key(rejected=key)
    assert fresh != key and fake_kis.count(APPROVAL_PATH) == 2
    # The other client was refused the same old key: it finds the fresh one instead of issuing again.
    assert second.approval_key(rejected=key) == fresh
    assert fake_kis.count(APPROVAL_PATH) == 2


def test_wrong_secret_is_an_auth_error_without_the_secret(fake_kis: FakeKisServer) -> None:
    wrong_secret = "WRONGsecret" + "y" * 169
    with pytest.raises(KisAuthError) as refused:
        make_client(fake_kis, app_secret=wrong_secret).approval_key()
    assert refused.value.msg_cd == "EGW00105" and refused.value.http_status == 403
    assert wrong_secret not in str(refused.value) and wrong_secret not in repr(refused.value)
    assert fake_kis.approval_keys_issued == []


def test_approval_key_never_reaches_the_logs(fake_kis: FakeKisServer, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="market.kis")
    client = make_client(fake_kis)
    key = client.approval_key()
    client.approval_key(rejected=key)
    issued = fake_kis.approval_keys_issued
    assert len(issued) == 2
    kis_log = "\n".join(r.getMessage() for r in caplog.records if r.name.startswith("market.kis"))
    assert "approval key issued" in kis_log  # the issuance is logged...
    for value in issued:
        assert value not in kis_log  # ...never the key
        # A key that slips into any text is masked by the process-wide redactor (and the log filter).
        assert value not in default_redactor.redact(f"header approval_key={value}")
