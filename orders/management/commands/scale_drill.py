"""`manage.py scale_drill [--accounts 500] [--orders-per-account 10] [--workers 4] [--json] [--keep]`: the
Monday 09:05 entry of many KIS accounts fanned out over real Celery workers (Redis) against the fake KIS
host with KIS's per-key limits, then the old sequential loop on the same data (`orders.scale_drill`).
Prints the seconds from the slot to the last order sent and recorded, orders per second, duplicates,
lost orders, rate-limit answers and token issuances per key. Exits 1 on any duplicate or lost order, a
rate-limit answer not retried, or a key with more than one token.

Works on a scratch database (`test_<name>_scale` next to the configured MySQL/MariaDB database, else a
SQLite file) and a Redis database of its own (`--redis-db`, flushed); REDIS_URL is required."""

from __future__ import annotations

import argparse

from django.core.management.base import BaseCommand, CommandError

from orders import scale_drill
from orders.scratch import ScratchError


class Command(BaseCommand):
    help = ("Scale drill: the weekly entry of many KIS accounts fanned out over Celery workers against the fake "
            "KIS host, next to the old sequential loop; counts duplicates, lost orders, rate-limit answers, tokens.")

    def add_arguments(self, parser):
        parser.add_argument("--accounts", type=int, default=scale_drill.DEFAULT_ACCOUNTS,
                            help="users, each with one KIS account (its own app key) and one active config")
        parser.add_argument("--orders-per-account", type=int, default=scale_drill.DEFAULT_ORDERS_PER_ACCOUNT,
                            help="buys each config plans at the entry")
        parser.add_argument("--workers", type=int, default=scale_drill.DEFAULT_WORKERS,
                            help="Celery worker processes on the trading queue")
        parser.add_argument("--pool", default=scale_drill.DEFAULT_POOL, choices=["threads", "prefork", "solo"],
                            help="the workers' pool (default threads: the tasks wait on KIS and the database)")
        parser.add_argument("--concurrency", type=int, default=scale_drill.DEFAULT_CONCURRENCY,
                            help="tasks at once per worker")
        parser.add_argument("--sequential-accounts", type=int, default=None,
                            help="run the old loop on the first N accounts only and scale its time up (default: "
                                 "all; 0 skips it)")
        parser.add_argument("--redis-db", type=int, default=scale_drill.DEFAULT_REDIS_DB,
                            help="the Redis database of the drill (flushed), on the server of REDIS_URL")
        parser.add_argument("--database-url", default=None,
                            help="use this database instead of a scratch one (it is migrated and written to)")
        parser.add_argument("--keep", action="store_true", help="keep the scratch database, folder (logs) and Redis db")
        parser.add_argument("--json", action="store_true", help="print the figures as one JSON object at the end")
        # The drill's own processes (not for people).
        parser.add_argument("--child", choices=["setup", "worker", "sequential", "facts", "watch"],
                            help=argparse.SUPPRESS)
        parser.add_argument("--clock", help=argparse.SUPPRESS)
        parser.add_argument("--name", help=argparse.SUPPRESS)
        parser.add_argument("--output", help=argparse.SUPPRESS)
        parser.add_argument("--configs", type=int, help=argparse.SUPPRESS)
        parser.add_argument("--reset", action="store_true", help=argparse.SUPPRESS)

    def handle(self, *args, accounts, orders_per_account, workers, pool, concurrency, sequential_accounts, redis_db,
               database_url, keep, json: bool, child, clock, name, output, configs, reset, **options):
        if child:
            self._child(child, accounts=accounts, orders_per_account=orders_per_account, pool=pool,
                        concurrency=concurrency, clock=clock, name=name, output=output, configs=configs,
                        reset=reset)
            return
        try:
            summary = scale_drill.run_drill(
                accounts, orders_per_account, workers, pool=pool, concurrency=concurrency,
                sequential_accounts=sequential_accounts, redis_db=redis_db, database_url=database_url, keep=keep,
                out=self.stdout.write)
        except (scale_drill.DrillError, ScratchError) as error:
            raise CommandError(str(error)) from error
        figures = summary.as_dict()
        self.stdout.write(
            f"accounts: {summary.accounts}, orders: {figures['orders']}/{figures['orders_expected']}, last sent "
            f"{figures['seconds_to_last_send']} s after the slot ({figures['orders_per_second']}/s), sequential "
            f"{figures['sequential_seconds']} s{' (scaled up)' if figures['sequential_extrapolated'] else ''}, "
            f"speed-up {figures['speedup']}×; duplicates: {figures['duplicates']}, lost: {figures['lost']}, "
            f"rate-limit answers: {figures['rate_limit_answers']} ({figures['rate_limit_not_retried']} not retried), "
            f"most tokens per key: {figures['max_tokens_per_key']}")
        if json:
            self.stdout.write(summary.as_json())
        if not summary.ok:
            raise CommandError("scale drill failed: duplicates, lost orders, a rate-limit answer not retried, a key "
                               "with more than one token or a worker traceback (see above)")

    def _child(self, child, *, accounts, orders_per_account, pool, concurrency, clock, name, output, configs, reset):
        import json as json_module

        if child == "setup":
            scale_drill.emit("setup " + json_module.dumps(scale_drill.child_setup(accounts, orders_per_account)))
        elif child == "worker":
            scale_drill.child_worker(name, pool, concurrency, clock)
        elif child == "sequential":
            scale_drill.child_sequential(accounts)
        elif child == "watch":
            scale_drill.child_watch()
        else:
            scale_drill.child_facts(output, configs, reset)
