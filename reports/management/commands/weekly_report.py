"""`manage.py weekly_report [--week YYYY-Www|YYYY-MM-DD|latest] [--user NAME] [--regenerate] [--no-model] [--email]`

Without --user: one report per user with activity in the week. Without --week: the week that has
just ended (this week from Friday's close on, else the previous one); `latest` is the week of the
latest stored bar (the demo market's last session). An existing report is kept unless --regenerate.
"""

from __future__ import annotations

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from market.analysis_service import MalformedWeekError
from reports.facts import iso_week_label
from reports.services import generate_weekly_reports, resolve_week


class Command(BaseCommand):
    help = "Write the weekly reports (the model when OPENAI_API_KEY is set, else the plain template)."

    def add_arguments(self, parser):
        parser.add_argument("--week", default=None, help="YYYY-Www, a date YYYY-MM-DD, or 'latest' (default: the week just ended)")
        parser.add_argument("--user", default=None, help="username (default: every user with activity in the week)")
        parser.add_argument("--regenerate", action="store_true", help="replace existing reports")
        parser.add_argument("--no-model", action="store_true", help="write the plain report without calling the model")
        parser.add_argument("--email", action="store_true", help="e-mail each written report to its owner")

    def handle(self, *args, week, user, regenerate, no_model, email, **options):
        try:
            monday = resolve_week(week)
        except MalformedWeekError as error:
            raise CommandError(str(error)) from None
        users = None
        if user is not None:
            users = list(get_user_model().objects.filter(username=user))
            if not users:
                raise CommandError(f"no user named {user!r}")
        outcomes = generate_weekly_reports(
            monday, users=users, regenerate=regenerate, use_model=not no_model, email=True if email else None,
        )
        label = iso_week_label(monday)
        if not outcomes:
            self.stdout.write(f"{label}: no user with activity, no report written")
            return
        for outcome in outcomes:
            report = outcome.report
            who = report.user.get_username() if report else "?"
            status = report.status if report else "-"
            detail = f" — {outcome.message}" if outcome.message else ""
            self.stdout.write(f"{label} {who}: {outcome.action}, {status}{detail}")
