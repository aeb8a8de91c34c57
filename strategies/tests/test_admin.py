"""The admin edits a strategy config through fields generated from the declared parameters."""

import pytest
from django.urls import reverse

from accounts.tests.factories import UserFactory
from accounts.tests.second_factor import step_up
from strategies.models import StrategyConfig

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("instruments")]


@pytest.fixture
def admin_client(client):
    step_up(client, UserFactory(is_staff=True, is_superuser=True))  # the admin needs a second factor
    return client


def form_data(owner, **overrides):
    data = {
        "owner": owner.pk, "name": "평균회귀", "strategy_key": "mean_reversion", "universe_mode": "codes",
        "universe_codes": "005930, 000660", "universe_top_n": 200, "max_positions": 10, "cash_per_week": 10_000_000,
        "param_window": 20, "param_z_threshold": 2.0, "param_stop_loss": -0.05, "param_take_profit": 0.11,
    }
    return {**data, **overrides}


def test_add_page_shows_the_declared_parameters(admin_client):
    body = admin_client.get(reverse("admin:strategies_strategyconfig_add")).content.decode()
    for name in ("param_window", "param_z_threshold", "param_stop_loss", "param_take_profit"):
        assert f'name="{name}"' in body


def test_valid_parameters_are_saved(admin_client, user):
    response = admin_client.post(reverse("admin:strategies_strategyconfig_add"), form_data(user, param_window=30))
    assert response.status_code == 302, response.content.decode()[:2000]
    config = StrategyConfig.objects.get()
    assert config.params == {"window": 30, "z_threshold": 2.0, "stop_loss": -0.05, "take_profit": 0.11}


@pytest.mark.parametrize(("field", "value"), [("param_window", 1), ("param_z_threshold", -3), ("param_stop_loss", 0.2)])
def test_out_of_bounds_parameters_are_refused_with_a_message(admin_client, user, field, value):
    response = admin_client.post(reverse("admin:strategies_strategyconfig_add"), form_data(user, **{field: value}))
    assert response.status_code == 200
    errors = response.context["adminform"].form.errors
    assert field in errors and "이어야 합니다" in errors[field][0]
    assert not StrategyConfig.objects.exists()


@pytest.mark.parametrize(("field", "value", "words"), [
    ("universe_codes", "005930 999999 AAAAAA 12", "알 수 없는 종목코드입니다: 999999, AAAAAA, 12"),
    ("cash_per_week", -5, "0"), ("max_positions", 999_999_999_999, "200"), ("universe_top_n", 2**63 - 1, "3000"),
])
def test_settings_outside_the_rules_are_refused_on_add(admin_client, user, field, value, words):
    response = admin_client.post(reverse("admin:strategies_strategyconfig_add"), form_data(user, **{field: value}))
    assert response.status_code == 200
    errors = response.context["adminform"].form.errors
    assert list(errors) == [field] and words in errors[field][0]
    assert not StrategyConfig.objects.exists()


def test_the_change_form_applies_the_same_rules(admin_client, user):
    config = StrategyConfig.objects.create(owner=user, name="평균회귀", strategy_key="mean_reversion",
                                           universe_mode="codes", universe_codes="005930")
    url = reverse("admin:strategies_strategyconfig_change", args=[config.pk])
    response = admin_client.post(url, form_data(user, universe_codes="005930 AAAAAA", cash_per_week=-5))
    assert response.status_code == 200
    assert set(response.context["adminform"].form.errors) == {"universe_codes", "cash_per_week"}
    config.refresh_from_db()
    assert (config.universe_codes, config.cash_per_week) == ("005930", 10_000_000)
    response = admin_client.post(url, form_data(user, universe_codes="005930 005930 000660"))
    assert response.status_code == 302
    config.refresh_from_db()
    assert config.universe_codes == "005930, 000660"
