"""Two processes of the site (as web and worker would be) share one KIS token: one issuance."""

import os
import subprocess
import sys
from pathlib import Path

from market.tests.fake_kis import FAKE_ACCOUNT_NO, FAKE_APP_KEY, FAKE_APP_SECRET, FakeKisServer

ROOT = Path(__file__).resolve().parents[2]


def test_two_processes_issue_one_token(tmp_path):
    with FakeKisServer(mode="paper", rate_limit_per_second=None) as fake:
        fake.token_delay = 1.0  # both processes ask while the first issuance is in flight
        env = {
            **os.environ,
            "DATABASE_URL": f"sqlite:///{tmp_path / 'site.sqlite3'}",
            "DEBUG": "True",
            "KIS_URL_BASE": fake.base_url,
            "KIS_MODE": "simulated",
            "KIS_APP_KEY": FAKE_APP_KEY,
            "KIS_APP_SECRET": FAKE_APP_SECRET,
            "KIS_ACCOUNT": FAKE_ACCOUNT_NO,
        }
        env.pop("REDIS_URL", None)
        manage = [sys.executable, "manage.py"]
        subprocess.run([*manage, "migrate", "-v0"], cwd=ROOT, env=env, check=True, timeout=120)
        checks = [
            subprocess.Popen([*manage, "kis_check"], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT, text=True)
            for _ in range(2)
        ]
        outputs = [check.communicate(timeout=120)[0] for check in checks]
        assert all(check.returncode == 0 for check in checks), outputs
        assert all("connected" in output for output in outputs)
        assert len(fake.tokens_issued) == 1

