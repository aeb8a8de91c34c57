"""Write the secret files docker-compose.yml hands to the containers (compose `secrets:`), one per secret.

Usage: python scripts/make_secrets.py [FOLDER]   (default: secrets/ beside docker-compose.yml)

The Django secret key, the field-encryption key and the database passwords are generated; the others
(KIS app key and secret, OpenAI key, Kakao client secret, e-mail URL, alert webhook) are written empty,
which the settings read as "not set": put the value in the file (the trailing newline is dropped).
An existing file is never replaced: a new SECRET_KEY would log everybody out, a new FIELD_ENCRYPTION_KEYS
would leave the stored broker credentials unreadable, and a new database password would no longer match
the database's. Rotate those by hand (README, Deployment).

The folder is private to you (0700); the files in it are 0644 because compose bind-mounts each file into
the containers as it is, where the app (uid 10001) and MySQL read it as other users.
"""

from __future__ import annotations

import secrets
import sys
from pathlib import Path

from cryptography.fernet import Fernet

# file name -> how to make its first value (None: empty, filled in by you)
SECRETS = {
    "secret_key": lambda: secrets.token_urlsafe(50),
    "field_encryption_keys": lambda: Fernet.generate_key().decode(),
    "mysql_password": lambda: secrets.token_urlsafe(24),
    "mysql_root_password": lambda: secrets.token_urlsafe(24),
    "kis_app_key": None,
    "kis_app_secret": None,
    "openai_api_key": None,
    "kakao_client_secret": None,
    "email_url": None,
    "notify_webhook_url": None,
}


def main(folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    folder.chmod(0o700)
    for name, make in SECRETS.items():
        path = folder / name
        if path.exists():
            print(f"kept      {path}")
            continue
        path.write_text(f"{make()}\n" if make else "", encoding="utf-8")
        path.chmod(0o644)
        print(f"{'generated' if make else 'empty    '} {path}")


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).resolve().parent.parent / "secrets")
