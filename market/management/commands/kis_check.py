from django.contrib.humanize.templatetags.humanize import intcomma
from django.core.management.base import BaseCommand, CommandError

from market.services import test_broker_connection

from ._account import add_account_argument, resolve_account


class Command(BaseCommand):
    help = "Connection test: issue (or reuse) a token and print the balance and holdings, or the broker's error."

    def add_arguments(self, parser):
        add_account_argument(parser)

    def handle(self, *args, account=None, **options):
        broker_account = resolve_account(account)
        self.stdout.write(
            f"account: {broker_account.name} · mode {broker_account.mode} · {broker_account.masked_account_number}"
        )
        result = test_broker_connection(broker_account)
        if not result.ok:
            raise CommandError(f"connection failed: {result.error}")
        self.stdout.write(self.style.SUCCESS("connected"))
        self.stdout.write(f"cash: {intcomma(result.cash)} KRW · total evaluation: {intcomma(result.total_evaluation)} KRW")
        if not result.holdings:
            self.stdout.write("holdings: none")
        for holding in result.holdings:
            self.stdout.write(
                f"  {holding.code} {holding.name}: {intcomma(holding.quantity)} shares · "
                f"avg {intcomma(int(holding.average_price))} · now {intcomma(holding.current_price)} KRW"
            )
