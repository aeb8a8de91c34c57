from django.contrib.humanize.templatetags.humanize import intcomma
from django.core.management.base import BaseCommand, CommandError

from market.brokers import broker_for
from market.gateway import BrokerError, user_message_for
from market.kis import KisError

from ._account import add_account_argument, resolve_account


class Command(BaseCommand):
    help = "Print the current price of a stock through the broker gateway (e.g. kis_quote 005930)."

    def add_arguments(self, parser):
        parser.add_argument("codes", nargs="+", help="6-digit stock codes")
        add_account_argument(parser)

    def handle(self, *args, codes, account=None, **options):
        broker = broker_for(resolve_account(account))
        failed = False
        for code in codes:
            try:
                quote = broker.get_quote(code)
            except (KisError, BrokerError, ValueError) as error:
                self.stderr.write(f"{code}: {user_message_for(error)}")
                failed = True
                continue
            self.stdout.write(
                f"{quote.code} {intcomma(quote.price)} KRW ({quote.change:+,} / {quote.change_rate}%) · "
                f"open {intcomma(quote.open)} high {intcomma(quote.high)} low {intcomma(quote.low)} · "
                f"volume {intcomma(quote.volume)} · limits {intcomma(quote.lower_limit)}~{intcomma(quote.upper_limit)}"
            )
        if failed:
            raise CommandError("some quotes failed")
