"""Everything the run command needs on a fresh database: the demo login and its paper account."""

from __future__ import annotations

from django.core.management.base import BaseCommand

from accounts.services import ensure_demo_user

DEMO_USERNAME = "demo"
DEMO_PASSWORD = "demo-trader-2026"


class Command(BaseCommand):
    help = "Create the demo user (with a paper broker account). Idempotent."

    def add_arguments(self, parser):
        parser.add_argument("--username", default=DEMO_USERNAME)
        parser.add_argument("--password", default=DEMO_PASSWORD)

    def handle(self, *args, username, password, **options):
        user, created = ensure_demo_user(username, password)
        self.stdout.write(f"demo login: {user.username} / {password} ({'created' if created else 'exists'})")
