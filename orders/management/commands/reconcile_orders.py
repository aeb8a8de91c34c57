"""`manage.py reconcile_orders [--date YYYY-MM-DD]`: bring open orders to the broker's state (never sends).
Exits 1 when an account's orders or balance could not be read: a failed reconciliation is not a success."""

from __future__ import annotations

import datetime as dt

from django.core.management.base import BaseCommand, CommandError

from accounts.models import BrokerAccount
from market.gateway import BrokerError, user_message_for
from market.kis.errors import KisError
from orders.models import OPEN_STATUSES, Order
from orders.reconciliation import (
    ReconcileSummary,
    close_interrupted_manual_orders,
    reconcile_open_orders,
    reconcile_orders,
)
from orders.weekly import resume_interrupted_runs


class Command(BaseCommand):
    help = "Reconcile open orders with the broker's daily orders, then resume interrupted runs."

    def add_arguments(self, parser):
        parser.add_argument("--date", type=dt.date.fromisoformat, default=None,
                            help="only this trading date (default: every date with open orders)")

    def handle(self, *args, date, **options):
        if isinstance(date, str):
            date = dt.date.fromisoformat(date)
        manual = close_interrupted_manual_orders()
        if any(manual.values()):
            self.stdout.write(f"interrupted manual orders: {manual['cancelled']} cancelled (never sent), "
                              f"{manual['unknown']} to be found in the broker's orders")
        if date is None:
            results = reconcile_open_orders()
        else:
            results = {}
            ids = Order.objects.filter(trading_date=date, status__in=OPEN_STATUSES).values_list(
                "broker_account_id", flat=True).distinct()
            for account in BrokerAccount.objects.filter(pk__in=set(ids)):
                try:
                    results[account.pk] = reconcile_orders(account, date)
                except (BrokerError, KisError) as error:
                    results[account.pk] = ReconcileSummary(error=f"{date}: {user_message_for(error)}")
        for account_id, summary in results.items():
            if summary.error:
                self.stderr.write(f"account {account_id}: reconciliation failed: {summary.error}")
                continue
            self.stdout.write(
                f"account {account_id}: checked {summary.checked}, unknown matched {summary.matched_unknown}, "
                f"fills {summary.fills_recorded}, unresolved {summary.unresolved}, expired {summary.expired}, "
                f"external {len(summary.external_orders)}"
            )
        for run in resume_interrupted_runs():
            self.stdout.write(f"resumed run {run.pk}: {run.status} {run.reason}".rstrip())
        failed = sorted(account_id for account_id, summary in results.items() if summary.error)
        if failed:
            raise CommandError(f"reconciliation failed for account(s) {', '.join(map(str, failed))}: "
                               "the broker could not be read (see above); nothing was concluded for them")
