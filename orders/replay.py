"""Past weeks of a paper config replayed through the live jobs, as the scheduler would have run them."""

from __future__ import annotations

import datetime as dt

from django.utils import timezone

from accounts.models import BrokerMode
from market.krx import SEOUL, first_trading_day_of_week, week_trading_days
from market.models import DailyBar
from strategies.models import StrategyConfig

from .models import WeeklyRun, WeeklyRunStatus
from .reconciliation import reconcile_orders
from .weekly import CHECK_SLOT, ENTRY_SLOT, RECONCILE_DELAY, place_weekly_buys, run_exit_checks


def replay_paper_week(config: StrategyConfig, day: dt.date, *, until: dt.datetime | None = None) -> list[WeeklyRun]:
    """Run the week of `day` for a paper config as the scheduler would have: the entry at 09:05 of
    its first trading day, the check at 15:15 of each trading day (the exit on the last), a
    reconciliation after each, and a waiting run again at its retry time (a late open), as the sweep
    would, on the job clock; only slots before `until` (default now) and on days whose bars are
    stored. The runs' unique keys make a second replay (or the scheduler afterwards) do nothing
    twice. Used by the demo set-up and for trying a strategy on past weeks."""
    account = config.broker_account
    if account is None or account.mode != BrokerMode.PAPER:
        raise ValueError("only a paper account's past weeks can be replayed")
    until = until or timezone.now()
    stored = set(DailyBar.objects.filter(date__in=week_trading_days(day)).values_list("date", flat=True).distinct())
    runs: dict[int, WeeklyRun] = {}  # a run tried again (a late open) is listed once, in its last state
    for trading_date in week_trading_days(day):
        if trading_date not in stored:
            break
        slots = [(ENTRY_SLOT, place_weekly_buys)] if trading_date == first_trading_day_of_week(day) else []
        slots.append((CHECK_SLOT, run_exit_checks))
        for slot, job in slots:
            now = dt.datetime.combine(trading_date, slot, tzinfo=SEOUL)
            while now < until:
                result = job(config, trading_date, now)
                if result is not None and result.run is not None:
                    runs[result.run.pk] = result.run
                reconcile_orders(account, trading_date, now=now + RECONCILE_DELAY)
                run = result.run if result is not None else None
                if run is None or run.status != WeeklyRunStatus.WAITING or not run.retry_at or run.retry_at <= now:
                    break
                now = run.retry_at  # the sweep takes a waiting run again at its retry time
            if now >= until:
                return list(runs.values())
    return list(runs.values())
