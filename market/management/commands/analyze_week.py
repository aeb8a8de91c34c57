"""manage.py analyze_week [--week YYYY-Www]: weekly statistics and outliers of every instrument."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from market.analysis_service import MalformedWeekError, analyze_week, latest_complete_week, parse_week


class Command(BaseCommand):
    help = (
        "Compute and store the weekly analysis (returns, volatility, skew, kurtosis, drawdown, z-score, "
        "outliers) of every instrument for one ISO week; re-running replaces the week's rows."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--week",
            default=None,
            help="ISO week YYYY-Www (e.g. 2026-W47) or any date YYYY-MM-DD in it; default: the last complete week",
        )

    def handle(self, *args, week: str | None = None, **options):
        try:
            monday = parse_week(week) if week is not None else latest_complete_week()
        except MalformedWeekError as error:
            raise CommandError(str(error)) from error
        summary = analyze_week(monday)

        days = summary.market_days
        span = f"{days[0].isoformat()}..{days[-1].isoformat()}, {len(days)} trading days" if days else "no trading day"
        self.stdout.write(f"{summary.iso_week} ({span})")
        if not summary.symbols:
            self.stdout.write(self.style.WARNING("no bars stored for this week: nothing analysed"))
            return
        by_series = ", ".join(f"{series} {count}" for series, count in sorted(summary.outliers_by_series.items()))
        self.stdout.write(
            f"symbols analysed: {summary.symbols}, outliers found: {summary.outliers}"
            + (f" ({by_series})" if by_series else "")
        )
        if summary.extreme_z:
            self.stdout.write("most extreme z-scores of the last close (20-bar mean and sample std):")
            for item in summary.extreme_z:
                self.stdout.write(f"  {item.code} {item.name:<20} {item.z_score:+.2f}")
        else:
            self.stdout.write("no z-score: fewer than 20 bars per symbol")
