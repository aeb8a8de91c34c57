"""Start-up errors name the missing variable; production settings pass `check --deploy`."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography.fernet import Fernet

ROOT = Path(__file__).resolve().parents[2]


def run_manage(*args, extra_env=None):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "SECRET_KEY", "FIELD_ENC", "DEBUG"))}
    env.update({"ENV_FILE": "/nonexistent/.env", "DJANGO_SETTINGS_MODULE": "trading_site.settings"})
    env.update(extra_env or {})
    return subprocess.run(
        [sys.executable, "manage.py", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )


PRODUCTION = {
    "DEBUG": "False",
    "SECRET_KEY": "k" * 10 + "Zq8!x@3#vL0pW9$mR2^tY6&uE1*oI5(aS7)dF4_gH" + "j" * 10,
    "FIELD_ENCRYPTION_KEYS": Fernet.generate_key().decode(),
    "ALLOWED_HOSTS": "trader.example.com",
}


@pytest.mark.parametrize("missing", ["SECRET_KEY", "FIELD_ENCRYPTION_KEYS"])
def test_missing_variable_is_named_at_start_up(missing):
    env = {k: v for k, v in PRODUCTION.items() if k != missing}
    result = run_manage("check", extra_env=env)
    assert result.returncode != 0
    assert f"Set the {missing} environment variable" in result.stderr
    assert "Traceback" not in result.stderr.splitlines()[-1]


def test_production_settings_pass_check_deploy(tmp_path):
    # collected static files (a manifest naming every source file; test_static_check covers the rest)
    from trading_site.static_check import _source_paths

    paths = {path: path for path in _source_paths()}
    (tmp_path / "staticfiles.json").write_text(json.dumps({"version": "1.1", "paths": paths}), encoding="utf-8")
    result = run_manage("check", "--deploy", "--fail-level", "WARNING",
                        extra_env={**PRODUCTION, "STATIC_ROOT": str(tmp_path)})
    assert result.returncode == 0, result.stdout + result.stderr


def test_check_deploy_fails_before_collectstatic(tmp_path):
    result = run_manage("check", "--deploy", extra_env={**PRODUCTION, "STATIC_ROOT": str(tmp_path)})
    assert result.returncode != 0
    assert "trading_site.E001" in result.stderr and "collectstatic --noinput" in result.stderr
