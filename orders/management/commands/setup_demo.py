"""Everything the run command needs on a fresh database: the demo login with its paper account, the
synthetic demo market with its weekly analysis, an active mean-reversion strategy on the paper account
with the last weeks of its trading replayed by the weekly jobs (so the dashboard, the orders and the
reports have a history), one manual demo order, and the scheduler trades on from there. Idempotent.

It lives in the orders app because it touches every app to its left."""

from __future__ import annotations

import datetime as dt

from django.core.management.base import BaseCommand
from django.utils import timezone

from accounts.services import ensure_demo_user
from market.analysis_service import analyze_week, latest_complete_week
from market.demo_market import store_demo_market
from market.krx import SEOUL
from market.models import DailyBar, WeeklyAnalysis
from orders.manual import place_manual_order
from orders.models import Order
from orders.replay import replay_paper_week
from strategies.library import get_strategy
from strategies.models import StrategyConfig, UniverseMode

DEMO_USERNAME = "demo"
DEMO_PASSWORD = "demo-trader-2026"
DEMO_ORDER = ("005930", 10)  # 삼성전자 10 shares
ANALYSED_WEEKS = 8
REPLAYED_WEEKS = 8  # weeks of the demo strategy's trading history


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
        if strategy.is_active and strategy.broker_account_id == account.pk and not strategy.weekly_runs.exists():
            # The demo has a trading history: the scheduler's jobs replayed on the paper broker over the
            # last weeks of the demo market, up to this week's sessions so far.
            last_day = DailyBar.objects.latest("date").date
            for weeks_back in range(REPLAYED_WEEKS - 1, -1, -1):
                replay_paper_week(strategy, last_day - dt.timedelta(weeks=weeks_back))
            orders = Order.objects.filter(config=strategy)
            self.stdout.write(
                f"demo trading: the last {REPLAYED_WEEKS} weeks replayed on the paper broker "
                f"({orders.count()} orders, {orders.filter(status='filled').count()} filled)"
            )
        if not Order.objects.filter(broker_account=account, reason="manual").exists():
            # A manual market order at 09:05 of the last stored session fills at that day's open.
            last_day = DailyBar.objects.filter(instrument__code=DEMO_ORDER[0]).latest("date").date
            placed_at = dt.datetime.combine(last_day, dt.time(9, 5), tzinfo=SEOUL)
            order = place_manual_order(user, account, DEMO_ORDER[0], quantity=DEMO_ORDER[1], now=placed_at,
                                       idempotency_key="setup-demo")
            self.stdout.write(f"demo order: buy {DEMO_ORDER[1]} × {DEMO_ORDER[0]} on {last_day.isoformat()} "
                              f"({order.status})")
        self.stdout.write(f"demo login: {user.username} / {password} ({'created' if created else 'exists'})")
