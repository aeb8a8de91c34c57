"""Create the superuser; the `.env` KIS values (if all set) become their default broker account."""

from __future__ import annotations

import os

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from accounts.services import EnvKisAccount, ensure_superuser


class Command(BaseCommand):
    help = "Create or update a superuser; KIS_* values from .env become their default broker account."

    def add_arguments(self, parser):
        parser.add_argument("--username", default=os.environ.get("DJANGO_SUPERUSER_USERNAME", "admin"))
        parser.add_argument("--email", default=os.environ.get("DJANGO_SUPERUSER_EMAIL", ""))
        parser.add_argument(
            "--password",
            default=os.environ.get("DJANGO_SUPERUSER_PASSWORD", ""),
            help="Defaults to DJANGO_SUPERUSER_PASSWORD.",
        )

    def handle(self, *args, username, email, password, **options):
        if not password:
            raise CommandError("Give --password or set DJANGO_SUPERUSER_PASSWORD.")
        env_account = EnvKisAccount(
            app_key=settings.KIS_APP_KEY,
            app_secret=settings.KIS_APP_SECRET,
            account=settings.KIS_ACCOUNT,
            product_code=settings.KIS_ACCOUNT_PRODUCT_CODE,
            mode=settings.KIS_MODE,
            hts_id=settings.KIS_HTS_ID,
        )
        user, created, broker_account = ensure_superuser(username, email, password, env_account)
        self.stdout.write(f"superuser {user.username} {'created' if created else 'updated'}")
        if broker_account:
            self.stdout.write(
                f"default broker account: {broker_account.name} ({broker_account.mode}, "
                f"{broker_account.masked_account_number})"
            )
        elif any([settings.KIS_APP_KEY, settings.KIS_APP_SECRET, settings.KIS_ACCOUNT]):
            self.stderr.write("KIS_APP_KEY, KIS_APP_SECRET and KIS_ACCOUNT must all be set; no broker account made.")
