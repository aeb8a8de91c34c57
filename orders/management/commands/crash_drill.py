"""`manage.py crash_drill [--runs 20] [--seed N]`: kill the entry job with SIGKILL at random moments in a
separate process, recover, and count duplicate and lost orders against the broker's record
(`orders.drill`). Exits 1 when any run left a duplicate, a lost order, an open intent, an
incomplete run or a position that differs from the broker.

Works on a scratch database (a temporary SQLite file, or `test_<name>_drill` next to the configured
MySQL/MariaDB database), never on the configured one; `--database-url` names another one."""

from __future__ import annotations

import argparse

from django.core.management.base import BaseCommand, CommandError

from orders import drill
from orders.scratch import ScratchError


class Command(BaseCommand):
    help = "Crash drill: SIGKILL the weekly entry job at random moments, recover, count duplicates and lost orders."

    def add_arguments(self, parser):
        parser.add_argument("--runs", type=int, default=drill.DEFAULT_RUNS, help="number of kills (default 20)")
        parser.add_argument("--seed", type=int, default=None, help="random seed (printed; repeats a drill)")
        parser.add_argument("--database-url", default=None,
                            help="use this database instead of a scratch one (it is migrated and written to)")
        parser.add_argument("--keep", action="store_true", help="keep the scratch database for inspection")
        parser.add_argument("--json", action="store_true", help="print the summary as JSON at the end")
        # The drill's worker process on the scratch database (not for people).
        parser.add_argument("--child", choices=["server"], help=argparse.SUPPRESS)

    def handle(self, *args, runs, seed, database_url, keep, json: bool, child, **options):
        if child:
            drill.serve()
            return
        try:
            summary = drill.run_drill(runs, seed, database_url=database_url, keep=keep, out=self.stdout.write)
        except (drill.DrillError, ScratchError) as error:
            raise CommandError(str(error)) from error
        self.stdout.write(summary.summary_line())
        if json:
            self.stdout.write(drill.as_json(summary))
        if not summary.ok:
            failed = ", ".join(str(run.index) for run in summary.failed_runs)
            raise CommandError(f"crash drill failed (seed {summary.seed}): runs {failed}")
