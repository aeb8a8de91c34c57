from django.core.management.base import BaseCommand

from accounts.services import rotate_broker_secrets


class Command(BaseCommand):
    help = "Re-encrypt stored broker secrets with the first key of FIELD_ENCRYPTION_KEYS."

    def handle(self, *args, **options):
        count = rotate_broker_secrets()
        self.stdout.write(f"re-encrypted {count} broker account(s)")
