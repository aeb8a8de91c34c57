"""Everything the run command needs on a fresh database: the demo login with its paper account, the
synthetic demo market with its weekly analysis, one demo order filled by the paper broker, and an
active mean-reversion strategy on the paper account that the scheduler trades. Idempotent.

It lives in the orders app because it touches every app to its left."""

from __future__ import annotations

import datetime as dt

from django.core.management.base import BaseCommand
from django.utils import timezone

from accounts.services import ensure_demo_user
from market.analysis_service import analyze_week, latest_complete_week
from market.brokers.paper import PaperBroker
from market.demo_market import store_demo_market
from market.krx import SEOUL
from market.models import DailyBar, PaperOrder, WeeklyAnalysis
from strategies.library import get_strategy
from strategies.models import StrategyConfig, UniverseMode

DEMO_USERNAME = "demo"
DEMO_PASSWORD = "demo-trader-2026"
DEMO_ORDER = ("005930", 10)  # 삼성전자 10 shares
ANALYSED_WEEKS = 8


class Command(BaseCommand):
    help = "Create the demo user (with a paper broker account), the demo market and a filled demo order."

    def add_arguments(self, parser):
        parser.add_argument("--username", default=DEMO_USERNAME)
        parser.add_argument("--password", default=DEMO_PASSWORD)
        parser.add_argument("--symbols", type=int, default=40)
        parser.add_argument("--years", type=int, default=3)

    def handle(self, *args, username, password, symbols, years, **options):
        user, created = ensure_demo_user(username, password)
        summary = store_demo_market(symbols=symbols, years=years, end=None, now=timezone.now())
        self.stdout.write(
            f"demo market: {summary.new_bars} new bars, {summary.total_bars} in "
            f"{summary.first.isoformat()}..{summary.last.isoformat()}"
        )
        if not WeeklyAnalysis.objects.exists():
            last_week = latest_complete_week()
            for weeks_back in range(ANALYSED_WEEKS):
                analyze_week(last_week - dt.timedelta(weeks=weeks_back))
            self.stdout.write(f"weekly analysis: the last {ANALYSED_WEEKS} weeks")
        account = user.broker_accounts.get(is_default=True)
        if not PaperOrder.objects.filter(account__broker_account=account).exists():
            # A market order placed at 09:05 of the last stored session fills at that day's open.
            last_day = DailyBar.objects.filter(instrument__code=DEMO_ORDER[0]).latest("date").date
            placed_at = dt.datetime.combine(last_day, dt.time(9, 5), tzinfo=SEOUL)
            PaperBroker(account, clock=lambda: placed_at).place_order("buy", *DEMO_ORDER, order_type="01")
            self.stdout.write(f"demo order: bought {DEMO_ORDER[1]} × {DEMO_ORDER[0]} on {last_day.isoformat()}")
        strategy, strategy_created = StrategyConfig.objects.get_or_create(
            owner=user, name="평균회귀 데모",
            defaults={
                "strategy_key": "mean_reversion", "params": get_strategy("mean_reversion").defaults(), "universe_mode": UniverseMode.TOP_TRADED,
                "universe_top_n": 20, "max_positions": 5, "cash_per_week": 10_000_000, "is_active": True,
                "broker_account": account,
            },
        )
        if strategy_created:
            self.stdout.write(f"demo strategy: {strategy.name} (active, paper account, top 20 by traded value)")
        self.stdout.write(f"demo login: {user.username} / {password} ({'created' if created else 'exists'})")
