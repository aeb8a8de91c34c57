"""The site's own routes around the apps: the favicon, Swagger UI without inline script, Redoc's old link."""

import pytest

pytestmark = pytest.mark.django_db


def test_favicon_ico_answers_with_the_static_icon(client):
    response = client.get("/favicon.ico")
    assert response.status_code == 302 and response["Location"] == "/static/favicon.ico"
    assert "max-age=86400" in response["Cache-Control"]
    icon = client.get(response["Location"])
    assert icon.status_code == 200
    assert b"".join(icon.streaming_content)[:4] == b"\x00\x00\x01\x00"  # an ICO file


def test_pages_link_the_svg_icon(client):
    body = client.get("/accounts/login/").content.decode()
    assert '<link rel="icon" href="/static/favicon.svg" type="image/svg+xml">' in body
    assert client.get("/static/favicon.svg").status_code == 200


def test_swagger_ui_loads_its_start_up_script_from_the_view(client):
    page = client.get("/api/docs/").content.decode()
    assert '<script src="/api/docs/?script="></script>' in page
    assert "<script>" not in page and "<style>" not in page
    assert "/static/css/swagger.css" in page
    script = client.get("/api/docs/?script=")
    assert script.status_code == 200 and script["Content-Type"].startswith("application/javascript")
    body = script.content.decode()
    assert "SwaggerUIBundle(" in body and '"validatorUrl": null' in body  # no badge from validator.swagger.io


def test_redoc_is_gone_and_its_link_lands_on_swagger_ui(client):
    response = client.get("/api/redoc/")
    assert response.status_code == 301 and response["Location"] == "/api/docs/"
