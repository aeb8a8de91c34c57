"""`manage.py order_storm [--users 4] [--requests 200] [--parallel 16] [--same-key-share 0.3] [--json]`:
many users place manual orders at once through POST /trade/{symbol} on the run command's server
(`orders.storm`), and server errors, duplicate orders, unsettled orders and lost alerts are counted.
Exits 1 when any of the four is not 0.

Works on a scratch database (a temporary SQLite file, or `test_<name>_storm` next to the configured
MySQL/MariaDB database) with its own task queue, never on the configured ones."""

from __future__ import annotations

import argparse
import datetime as dt

from django.core.management.base import BaseCommand, CommandError

from market.krx import SEOUL
from orders import storm
from orders.scratch import ScratchError


class Command(BaseCommand):
    help = ("Order storm: parallel POST /trade requests from several users against the run command's server on a "
            "scratch database; counts server errors, duplicates, unsettled orders and lost alerts.")

    def add_arguments(self, parser):
        parser.add_argument("--users", type=int, default=storm.DEFAULT_USERS, help="users, each with a paper account")
        parser.add_argument("--requests", type=int, default=storm.DEFAULT_REQUESTS, help="POST /trade requests")
        parser.add_argument("--parallel", type=int, default=storm.DEFAULT_PARALLEL, help="client threads")
        parser.add_argument("--same-key-share", type=float, default=storm.DEFAULT_SAME_KEY_SHARE,
                            help="share of the requests that repeat an earlier request's Idempotency-Key (0..1)")
        parser.add_argument("--at", default=storm.PINNED_AT.isoformat(),
                            help="the moment the storm's server runs at (ISO, Seoul unless given; default a Monday "
                                 "10:00 session), or 'real' for the machine's clock")
        parser.add_argument("--seed", type=int, default=None, help="random seed (printed; repeats the plan)")
        parser.add_argument("--database-url", default=None,
                            help="use this database instead of a scratch one (it is migrated and written to)")
        parser.add_argument("--keep", action="store_true", help="keep the scratch database and folder (logs)")
        parser.add_argument("--json", action="store_true", help="print the figures as one JSON object at the end")
        # The storm's own processes on the scratch database (not for people).
        parser.add_argument("--child", choices=["server", "count"], help=argparse.SUPPRESS)
        parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
        parser.add_argument("--input", help=argparse.SUPPRESS)

    def handle(self, *args, users, requests, parallel, same_key_share, at, seed, database_url, keep, json: bool,
               child, port, input, **options):
        if child == "server":
            storm.child_server(port, users, at)
            return
        if child == "count":
            import json as json_module

            storm.emit("result " + json_module.dumps(storm.child_count(input), default=str))
            return
        moment = None
        if at != "real":
            try:
                moment = dt.datetime.fromisoformat(at)
            except ValueError:
                raise CommandError(f"--at must be an ISO date and time (e.g. 2025-11-24T22:00) or 'real': {at}") from None
            if moment.tzinfo is None:
                moment = moment.replace(tzinfo=SEOUL)
        try:
            summary = storm.run_storm(users, requests, parallel, same_key_share, seed=seed, at=moment,
                                      database_url=database_url, keep=keep, out=self.stdout.write)
        except (storm.StormError, ScratchError) as error:
            raise CommandError(str(error)) from error
        self.stdout.write(summary.line())
        if json:
            self.stdout.write(summary.as_json())
        if not summary.ok:
            raise CommandError(f"order storm failed (seed {summary.seed}): {summary.line()}")
