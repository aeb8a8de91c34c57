"""The KIS client's HTTP session reads the environment once, when it is made (``trust_env`` off: no proxy
or ~/.netrc lookup on every call), and still goes through the proxy and the CA bundle that the
environment named then."""

from __future__ import annotations

import socket
from typing import Any

import pytest

from market.kis import KisClient
from market.kis.errors import KisNetworkError
from market.kis.ratelimit import NoRateLimit
from market.kis.token_store import InMemoryTokenStore
from market.tests.fake_kis import FAKE_ACCOUNT_NO, FAKE_APP_KEY, FAKE_APP_SECRET, FAKE_PRODUCT_CODE, FakeKisServer

PROXY_VARIABLES = ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY", "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE")


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch):
    for name in PROXY_VARIABLES:
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)


def client(base_url: str, **overrides: Any) -> KisClient:
    params: dict[str, Any] = {
        "app_key": FAKE_APP_KEY, "app_secret": FAKE_APP_SECRET, "account_no": FAKE_ACCOUNT_NO,
        "product_code": FAKE_PRODUCT_CODE, "mode": "real", "base_url": base_url, "token_store": InMemoryTokenStore(),
        "rate_limiter": NoRateLimit(), "timeout": (1.0, 2.0), "max_retries": 0, "backoff_base": 0.001,
        "backoff_max": 0.01, "token_throttle_wait": 0.0,
    }
    return KisClient(**(params | overrides))


def dead_port() -> int:
    with socket.socket() as probe:  # bound, never listening: a connection there is refused at once
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def session_of(kis: KisClient):
    return kis._transport._session


def test_the_proxy_and_ca_bundle_of_the_environment_are_taken_once(monkeypatch):
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.example:3128")
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", "/etc/ssl/company-ca.pem")
    session = session_of(client("https://openapi.koreainvestment.com:9443"))
    assert session.trust_env is False
    assert session.proxies["https"] == "http://proxy.example:3128"
    assert session.verify == "/etc/ssl/company-ca.pem"

    monkeypatch.setenv("NO_PROXY", "koreainvestment.com")
    assert session_of(client("https://openapi.koreainvestment.com:9443")).proxies == {}


def test_a_call_uses_the_proxy_named_when_the_client_was_made_and_not_the_one_named_later(monkeypatch):
    with FakeKisServer(mode="real") as fake:
        direct = client(fake.base_url)
        monkeypatch.setenv("HTTP_PROXY", f"http://127.0.0.1:{dead_port()}")  # after: not read by `direct`
        assert direct.get_quote("005930").code == "005930"

        proxied = client(fake.base_url)  # made while the environment names the (dead) proxy: goes through it
        with pytest.raises(KisNetworkError):
            proxied.get_quote("005930")
        assert fake.count("/uapi/domestic-stock/v1/quotations/inquire-price") == 1


def test_no_lookup_of_the_environment_per_call(monkeypatch):
    """requests reads the proxy variables (and ~/.netrc) on every call of a session that trusts the
    environment; the KIS client's session asks nothing of it after it is made."""
    import requests.sessions
    import requests.utils

    with FakeKisServer(mode="real") as fake:
        kis = client(fake.base_url)

        def looked_up(*args, **kwargs):
            raise AssertionError("the environment was read during a call")

        for module in (requests.sessions, requests.utils):
            monkeypatch.setattr(module, "get_environ_proxies", looked_up)
            monkeypatch.setattr(module, "get_netrc_auth", looked_up)
        kis.get_quote("005930")
        kis.get_balance()
    assert fake.count("/oauth2/tokenP") == 1
