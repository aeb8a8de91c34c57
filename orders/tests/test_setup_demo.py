import io

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command

from market.brokers.paper import PaperBroker
from market.models import PaperOrder

pytestmark = pytest.mark.django_db


def run():
    out = io.StringIO()
    call_command("setup_demo", symbols=3, years=1, stdout=out)
    return out.getvalue()


def test_setup_demo_creates_login_market_and_a_filled_demo_order():
    output = run()
    user = get_user_model().objects.get(username="demo")
    assert user.check_password("demo-trader-2026")
    assert "demo login: demo / demo-trader-2026" in output
    order = PaperOrder.objects.get()
    assert order.status == "filled" and order.code == "005930"
    holdings = PaperBroker(user.broker_accounts.get()).get_balance().holdings
    assert [(h.code, h.quantity) for h in holdings] == [("005930", 10)]


def test_setup_demo_is_idempotent():
    run()
    second = run()
    assert "0 new bars" in second
    assert PaperOrder.objects.count() == 1
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
