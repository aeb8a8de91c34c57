"""A model field that stores text encrypted (see accounts.crypto) and gives back plaintext."""

from __future__ import annotations

from django.db import models

from .crypto import decrypt, encrypt


class EncryptedTextField(models.TextField):
    """Plaintext in Python, a Fernet token in the column. Empty strings stay empty (no secret)."""

    description = "Text encrypted at rest"

    def from_db_value(self, value, expression, connection):
        if value is None or value == "":
            return value
        return decrypt(value)

    def get_prep_value(self, value):
        value = super().get_prep_value(value)
        if value is None or value == "":
            return value
        return encrypt(value)
