"""Write a local .env from .env.example: DEBUG on, a fresh SECRET_KEY and field-encryption key.

Usage: python scripts/make_env.py .env.example .env
"""

import secrets
import sys
from pathlib import Path

from cryptography.fernet import Fernet

GENERATED = {
    "DEBUG": "True",
    "SECRET_KEY": secrets.token_urlsafe(50),
    "FIELD_ENCRYPTION_KEYS": Fernet.generate_key().decode(),
}


def main(example: str, target: str) -> None:
    lines = []
    for line in Path(example).read_text(encoding="utf-8").splitlines():
        name = line.split("=", 1)[0].strip()
        if "=" in line and not line.lstrip().startswith("#") and name in GENERATED:
            line = f"{name}={GENERATED[name]}"
        lines.append(line)
    Path(target).write_text("\n".join(lines) + "\n", encoding="utf-8")
    Path(target).chmod(0o600)


if __name__ == "__main__":
    main(*sys.argv[1:3])
