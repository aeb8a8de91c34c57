"""Secrets from files (NAME_FILE, the Docker secrets convention) as well as from the environment.

The settings are loaded in a child process with a controlled environment, as test_settings does.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography.fernet import Fernet

ROOT = Path(__file__).resolve().parents[2]

# What the child prints: the settings each secret ends up in.
DUMP = """
import json
from django.conf import settings
print(json.dumps({
    "SECRET_KEY": settings.SECRET_KEY,
    "FIELD_ENCRYPTION_KEYS": settings.FIELD_ENCRYPTION_KEYS,
    "DATABASE_PASSWORD": settings.DATABASES["default"]["PASSWORD"],
    "DATABASE_HOST": settings.DATABASES["default"]["HOST"],
    "REDIS": settings.CACHES["default"].get("LOCATION"),
    "KIS_APP_KEY": settings.KIS_APP_KEY,
    "KIS_APP_SECRET": settings.KIS_APP_SECRET,
    "OPENAI_API_KEY": settings.OPENAI_API_KEY,
    "KAKAO_CLIENT_SECRET": settings.KAKAO_CLIENT_SECRET,
    "EMAIL_HOST_PASSWORD": settings.EMAIL_HOST_PASSWORD,
    "NOTIFY_WEBHOOK_URL": settings.NOTIFY_WEBHOOK_URL,
}))
"""

FERNET_KEYS = f"{Fernet.generate_key().decode()},{Fernet.generate_key().decode()}"
# Every secret the settings read, and the value each one carries in these tests.
SECRETS = {
    "SECRET_KEY": "s3cret-Key_with-enough-length-0123456789-abcdefghijklmnopqrstuv",
    "FIELD_ENCRYPTION_KEYS": FERNET_KEYS,
    "DATABASE_URL": "mysql://trading:url-password@db.internal:3306/trading",
    "REDIS_URL": "redis://:redis-password@cache.internal:6379/0",
    "KIS_APP_KEY": "PSkisappkey0123",
    "KIS_APP_SECRET": "kis-app-secret/with+base64=",
    "OPENAI_API_KEY": "sk-test-openai",
    "KAKAO_CLIENT_SECRET": "kakao-client-secret",
    "EMAIL_URL": "smtp+tls://mailer:mail-password@smtp.example.com:587",
    "NOTIFY_WEBHOOK_URL": "https://hooks.example.com/services/T000/B000/XXXX",
}
EXPECTED = {
    "SECRET_KEY": SECRETS["SECRET_KEY"],
    "FIELD_ENCRYPTION_KEYS": FERNET_KEYS.split(","),
    "DATABASE_PASSWORD": "url-password",
    "DATABASE_HOST": "db.internal",
    "REDIS": SECRETS["REDIS_URL"],
    "KIS_APP_KEY": SECRETS["KIS_APP_KEY"],
    "KIS_APP_SECRET": SECRETS["KIS_APP_SECRET"],
    "OPENAI_API_KEY": SECRETS["OPENAI_API_KEY"],
    "KAKAO_CLIENT_SECRET": SECRETS["KAKAO_CLIENT_SECRET"],
    "EMAIL_HOST_PASSWORD": "mail-password",
    "NOTIFY_WEBHOOK_URL": SECRETS["NOTIFY_WEBHOOK_URL"],
}


def load_settings(tmp_path, extra_env):
    """Run DUMP in a child with production settings (DEBUG off) and only `extra_env` as secrets."""
    env = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(("DJANGO_", "DEBUG", "DATABASE_", "REDIS_", "CELERY_B", "CELERY_R", "EMAIL_"))
        and name.removesuffix("_FILE") not in SECRETS and name.removesuffix("_FILE") != "DATABASE_PASSWORD"
    }
    env.update({
        "ENV_FILE": "/nonexistent/.env",
        "DJANGO_SETTINGS_MODULE": "trading_site.settings",
        "DEBUG": "False",
        "ALLOWED_HOSTS": "trader.example.com",
        "STATIC_ROOT": str(tmp_path / "static"),
    })
    env.update(extra_env)
    return subprocess.run([sys.executable, "-c", DUMP], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=120)


def write_secret(folder, name, content):
    path = folder / name.lower()
    path.write_text(content, encoding="utf-8")
    return str(path)


def start_up_error(result):
    """The last line of a failed start: the ImproperlyConfigured message."""
    assert result.returncode != 0, result.stdout
    return result.stderr.strip().splitlines()[-1]


def test_every_secret_from_the_environment(tmp_path):
    result = load_settings(tmp_path, SECRETS)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == EXPECTED


def test_every_secret_from_a_file_gives_the_same_settings(tmp_path):
    folder = tmp_path / "secrets"
    folder.mkdir()
    # `echo value > file` and editors end the file with a newline; Windows editors with \r\n.
    files = {
        f"{name}_FILE": write_secret(folder, name, value + ("\r\n" if name == "KIS_APP_SECRET" else "\n"))
        for name, value in SECRETS.items()
    }
    result = load_settings(tmp_path, files)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == EXPECTED


def test_the_database_password_apart_from_the_url(tmp_path):
    """docker-compose: the URL without a password, the password from MySQL's own secret file."""
    password = write_secret(tmp_path, "mysql_password", "file-password\n")
    result = load_settings(tmp_path, {
        "SECRET_KEY": SECRETS["SECRET_KEY"], "FIELD_ENCRYPTION_KEYS": FERNET_KEYS,
        "DATABASE_URL": "mysql://trading@db:3306/trading", "DATABASE_PASSWORD_FILE": password,
    })
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["DATABASE_PASSWORD"] == "file-password"


def test_an_empty_file_means_not_set(tmp_path):
    files = {name: write_secret(tmp_path, name, "\n") for name in ("OPENAI_API_KEY", "KIS_APP_SECRET")}
    result = load_settings(tmp_path, {
        "SECRET_KEY": SECRETS["SECRET_KEY"], "FIELD_ENCRYPTION_KEYS": FERNET_KEYS,
        **{f"{name}_FILE": path for name, path in files.items()},
    })
    assert result.returncode == 0, result.stderr
    loaded = json.loads(result.stdout)
    assert loaded["OPENAI_API_KEY"] == "" and loaded["KIS_APP_SECRET"] == ""


def test_an_empty_file_for_a_required_secret_is_named(tmp_path):
    result = load_settings(tmp_path, {
        "SECRET_KEY_FILE": write_secret(tmp_path, "SECRET_KEY", ""), "FIELD_ENCRYPTION_KEYS": FERNET_KEYS,
    })
    assert "Set the SECRET_KEY environment variable" in start_up_error(result)
    assert "SECRET_KEY_FILE" in start_up_error(result)


def test_both_the_variable_and_the_file_stop_the_start(tmp_path):
    path = write_secret(tmp_path, "SECRET_KEY", "value-in-the-file\n")
    result = load_settings(tmp_path, {
        "SECRET_KEY": "value-in-the-environment", "SECRET_KEY_FILE": path, "FIELD_ENCRYPTION_KEYS": FERNET_KEYS,
    })
    error = start_up_error(result)
    assert "ImproperlyConfigured" in error and "Both SECRET_KEY and SECRET_KEY_FILE are set" in error
    assert "value-in-the-file" not in result.stderr and "value-in-the-environment" not in result.stderr


def test_both_set_for_an_optional_secret_stop_the_start_too(tmp_path):
    result = load_settings(tmp_path, {
        "SECRET_KEY": SECRETS["SECRET_KEY"], "FIELD_ENCRYPTION_KEYS": FERNET_KEYS,
        "OPENAI_API_KEY": "sk-env", "OPENAI_API_KEY_FILE": write_secret(tmp_path, "OPENAI_API_KEY", "sk-file"),
    })
    assert "Both OPENAI_API_KEY and OPENAI_API_KEY_FILE are set" in start_up_error(result)


@pytest.mark.parametrize("problem", ["missing", "directory", "not text"])
def test_a_file_that_cannot_be_read_is_named_with_its_variable(tmp_path, problem):
    path = tmp_path / "field_encryption_keys"
    if problem == "directory":
        path.mkdir()
    elif problem == "not text":
        path.write_bytes(b"\xff\xfe" + FERNET_KEYS.encode())
    result = load_settings(tmp_path, {"SECRET_KEY": SECRETS["SECRET_KEY"], "FIELD_ENCRYPTION_KEYS_FILE": str(path)})
    error = start_up_error(result)
    assert "ImproperlyConfigured" in error
    assert f"FIELD_ENCRYPTION_KEYS_FILE names {path}, which cannot be read" in error
    assert FERNET_KEYS.split(",")[0] not in result.stderr


def test_a_value_beginning_with_a_dollar_is_refused(tmp_path):
    """django-environ would take `$abc` for a reference to the variable ABC and silently use that."""
    result = load_settings(tmp_path, {
        "SECRET_KEY": SECRETS["SECRET_KEY"], "FIELD_ENCRYPTION_KEYS": FERNET_KEYS,
        "DATABASE_URL": "mysql://trading@db:3306/trading",
        "DATABASE_PASSWORD_FILE": write_secret(tmp_path, "mysql_password", "$HOME-like-password\n"),
    })
    assert "must not begin with $" in start_up_error(result)
    assert "HOME-like-password" not in result.stderr


def test_make_secrets_generates_once_and_never_replaces(tmp_path):
    folder = tmp_path / "secrets"
    script = ROOT / "scripts" / "make_secrets.py"
    subprocess.run([sys.executable, str(script), str(folder)], check=True, capture_output=True, timeout=60)
    generated = {path.name: path.read_text(encoding="utf-8") for path in folder.iterdir()}
    assert set(generated) >= {"secret_key", "field_encryption_keys", "mysql_password", "mysql_root_password",
                              "kis_app_key", "kis_app_secret", "openai_api_key", "kakao_client_secret",
                              "email_url", "notify_webhook_url"}
    Fernet(generated["field_encryption_keys"].strip().encode())  # a usable key
    assert len(generated["secret_key"].strip()) >= 50
    assert generated["mysql_password"] != generated["mysql_root_password"]
    assert generated["openai_api_key"] == ""
    assert folder.stat().st_mode & 0o777 == 0o700

    (folder / "openai_api_key").write_text("sk-mine\n", encoding="utf-8")
    subprocess.run([sys.executable, str(script), str(folder)], check=True, capture_output=True, timeout=60)
    assert (folder / "secret_key").read_text(encoding="utf-8") == generated["secret_key"]
    assert (folder / "openai_api_key").read_text(encoding="utf-8") == "sk-mine\n"

    # What compose hands over is what the settings read.
    files = {f"{name.upper()}_FILE": str(folder / name) for name in ("secret_key", "field_encryption_keys")}
    result = load_settings(tmp_path, {**files, "OPENAI_API_KEY_FILE": str(folder / "openai_api_key")})
    assert result.returncode == 0, result.stderr
    loaded = json.loads(result.stdout)
    assert loaded["SECRET_KEY"] == generated["secret_key"].strip()
    assert loaded["OPENAI_API_KEY"] == "sk-mine"
