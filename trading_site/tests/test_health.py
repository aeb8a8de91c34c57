"""GET /healthz: 200 when the database (and Redis, when configured) answer, 503 otherwise."""

import os

import pytest
from django.db import connection

pytestmark = pytest.mark.django_db


def test_healthy(client, settings):
    response = client.get("/healthz")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ok"
    assert body["checks"]["database"] == "ok"
    assert body["broker_mode"] == settings.BROKER_BACKEND
    assert body["version"] == settings.VERSION


def test_redis_not_configured_is_not_an_error(client, settings):
    settings.REDIS_URL = ""
    assert client.get("/healthz").json()["checks"]["redis"] == "not configured"


def test_unreachable_redis_is_503(client, settings):
    settings.REDIS_URL = "redis://127.0.0.1:1/0"  # nothing listens on port 1
    response = client.get("/healthz")
    assert response.status_code == 503
    assert response.json()["checks"]["redis"].startswith("error")


@pytest.mark.skipif(not os.environ.get("REDIS_URL"), reason="REDIS_URL not set (CI sets it for the Redis run)")
def test_real_redis_is_ok(client, settings):
    assert client.get("/healthz").json()["checks"]["redis"] == "ok"


def test_database_down_is_503(client, monkeypatch):
    def broken_cursor(*args, **kwargs):
        raise connection.Database.OperationalError("server has gone away")

    monkeypatch.setattr(connection, "cursor", broken_cursor)
    response = client.get("/healthz")
    assert response.status_code == 503
    assert response.json()["status"] == "error"
    assert "OperationalError" in response.json()["checks"]["database"]


def test_healthz_needs_no_login_and_is_not_cached(client):
    response = client.get("/healthz")
    assert "no-cache" in response["Cache-Control"]
