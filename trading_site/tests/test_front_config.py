"""The HTTPS front's configuration as deploy/nginx/entrypoint.sh renders it (scripts/front_check runs it)."""

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
ENTRYPOINT = ROOT / "deploy" / "nginx" / "entrypoint.sh"
NGINX = shutil.which("nginx") or ("/usr/sbin/nginx" if os.access("/usr/sbin/nginx", os.X_OK) else None)

pytestmark = pytest.mark.skipif(not shutil.which("openssl") or not shutil.which("envsubst"),
                                reason="needs openssl and envsubst (gettext-base)")


def render(tmp_path, *command, **settings):
    env = {
        "PATH": os.environ["PATH"],
        "SERVER_NAME": "trader.example.com",
        "APP_UPSTREAM": "127.0.0.1:8000",
        "STATIC_ROOT": str(tmp_path / "static") + "/",
        "TLS_CERT": str(tmp_path / "tls" / "fullchain.pem"),
        "TLS_KEY": str(tmp_path / "tls" / "privkey.pem"),
        "NGINX_CONF": str(tmp_path / "nginx.conf"),
        "NGINX_RUNTIME_DIR": str(tmp_path / "run"),
        **settings,
    }
    result = subprocess.run(["bash", str(ENTRYPOINT), *(command or ["true"])], env=env, capture_output=True,
                            text=True, timeout=60)
    return result, tmp_path / "nginx.conf"


def block(config: str, start: str) -> str:
    """The text of the block opened by the line containing `start`."""
    text = config[config.index(start):]
    depth = 0
    for position, char in enumerate(text):
        depth += {"{": 1, "}": -1}.get(char, 0)
        if char == "}" and depth == 0:
            return text[:position]
    raise AssertionError(f"{start}: unclosed")


def test_the_template_is_rendered_with_only_its_own_names_replaced(tmp_path):
    result, path = render(tmp_path, HTTPS_PORT="8443", PUBLIC_HTTPS_PORT="8443")
    assert result.returncode == 0, result.stderr
    config = path.read_text(encoding="utf-8")
    directives = "\n".join(line for line in config.splitlines() if not line.lstrip().startswith("#"))
    assert not re.search(r"\$\{[A-Z_]+\}", directives), "a ${NAME} left unreplaced"
    assert "server 127.0.0.1:8000;" in config
    assert f"alias {tmp_path / 'static'}/;" in config
    # nginx's own variables pass through
    assert "return 301 https://$host:8443$request_uri;" in config
    assert "proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;" in config
    assert "proxy_set_header X-Forwarded-Proto $scheme;" in config
    assert "proxy_set_header X-Forwarded-Host $forwarded_host;" in config
    stream = block(config, "location /stream/")
    assert "proxy_buffering off;" in stream and "proxy_read_timeout 1h;" in stream


def test_the_redirect_names_no_port_on_443(tmp_path):
    result, path = render(tmp_path)
    assert result.returncode == 0, result.stderr
    assert "return 301 https://$host$request_uri;" in path.read_text(encoding="utf-8")


def test_a_self_signed_certificate_is_made_once_and_kept(tmp_path):
    render(tmp_path)
    cert = tmp_path / "tls" / "fullchain.pem"
    names = subprocess.run(["openssl", "x509", "-in", str(cert), "-noout", "-ext", "subjectAltName"],
                           capture_output=True, text=True, check=True).stdout
    assert "DNS:trader.example.com" in names and "DNS:localhost" in names and "IP Address:127.0.0.1" in names
    assert (tmp_path / "tls" / "privkey.pem").stat().st_mode & 0o077 == 0
    first = cert.read_bytes()
    result, _ = render(tmp_path)
    assert result.returncode == 0 and cert.read_bytes() == first
    assert "generating" not in result.stderr


def test_half_a_certificate_stops_the_start(tmp_path):
    (tmp_path / "tls").mkdir()
    (tmp_path / "tls" / "fullchain.pem").write_text("mine", encoding="utf-8")
    result, _ = render(tmp_path)
    assert result.returncode != 0
    assert "must both exist" in result.stderr


@pytest.mark.skipif(NGINX is None, reason="needs Debian's nginx (CI installs it)")
def test_nginx_accepts_the_configuration(tmp_path):
    result, path = render(tmp_path, NGINX, "-t", "-e", "stderr", "-c", str(tmp_path / "nginx.conf"),
                          HTTP_PORT="8080", HTTPS_PORT="8443", LISTEN_ADDRESS="127.0.0.1",
                          NGINX_USER=subprocess.run(["id", "-un"], capture_output=True, text=True).stdout.strip(),
                          NGINX_ERROR_LOG=str(tmp_path / "error.log"), NGINX_ACCESS_LOG=str(tmp_path / "access.log"))
    assert result.returncode == 0, result.stderr
    assert "test is successful" in result.stderr
