import datetime as dt
import io

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command

from market.brokers.paper import PaperBroker
from market.krx import SEOUL
from market.models import PaperOrder
from orders.models import Order, WeeklyRun

# The demo market ends "today" and the replayed weeks end with this week's sessions so far: pinned to a
# Wednesday morning in the session (this week's exit still to come).
WEDNESDAY = dt.datetime(2026, 11, 25, 10, 0, tzinfo=SEOUL)

pytestmark = [pytest.mark.django_db, pytest.mark.time_machine(WEDNESDAY, tick=False)]


def run():
    out = io.StringIO()
    call_command("setup_demo", symbols=3, years=1, stdout=out)
    return out.getvalue()


def test_setup_demo_creates_login_market_and_a_filled_demo_order():
    output = run()
    user = get_user_model().objects.get(username="demo")
    assert user.check_password("demo-trader-2026")
    assert "demo login: demo / demo-trader-2026" in output
    order = Order.objects.get(reason="manual")  # through the same service as POST /trade/{symbol}
    assert (order.status, order.code, order.filled_quantity) == ("filled", "005930", 10)
    assert PaperOrder.objects.get(code="005930").status == "filled"
    holdings = PaperBroker(user.broker_accounts.get()).get_balance().holdings
    assert ("005930", 10) in [(h.code, h.quantity) for h in holdings]


def test_setup_demo_is_idempotent():
    run()
    second = run()
    assert "0 new bars" in second
    assert Order.objects.filter(reason="manual").count() == 1
    assert PaperOrder.objects.count() == Order.objects.count()  # every paper order is one of ours
    assert get_user_model().objects.filter(username="demo").count() == 1


def test_setup_demo_analyses_recent_weeks():
    from market.models import WeeklyAnalysis

    run()
    assert WeeklyAnalysis.objects.values("week_start").distinct().count() == 8


def test_setup_demo_creates_one_active_paper_strategy():
    from strategies.models import StrategyConfig

    run()
    run()
    config = StrategyConfig.objects.get()
    assert config.is_active and config.strategy_key == "mean_reversion"
    assert config.broker_account.mode == "paper" and config.owner.username == "demo"


def test_setup_demo_replays_the_last_weeks_through_the_weekly_jobs():
    """The demo strategy's history comes from the scheduler's own jobs on the paper broker: one entry
    per replayed week, a check every session, and nothing run twice on a second set-up."""
    out = io.StringIO()
    call_command("setup_demo", symbols=12, years=1, stdout=out)
    assert "demo trading: the last 8 weeks replayed" in out.getvalue()
    entries = WeeklyRun.objects.filter(job="entry")
    assert entries.count() == 8 and not entries.exclude(status="complete").exists()
    assert WeeklyRun.objects.filter(job="exit").count() == 7  # this week's (Friday's) exit has not run yet
    runs, orders = WeeklyRun.objects.count(), Order.objects.count()
    call_command("setup_demo", symbols=12, years=1, stdout=io.StringIO())
    assert (WeeklyRun.objects.count(), Order.objects.count()) == (runs, orders)
    for order in Order.objects.exclude(reason="manual"):
        assert order.status == "filled" and order.run.config.name == "평균회귀 데모"
