"""One set of rules for a strategy's settings (strategies.validators, StrategyConfig's validators and
clean()): codes are known instruments, named in Korean when not; duplicates go; amounts and counts
within the backtest's bounds. The page form, the API and the admin each have their own tests."""

import datetime as dt
import io

import pytest
import time_machine
from django.core.exceptions import ValidationError
from django.core.management import call_command

from market.krx import SEOUL
from strategies import validators
from strategies.models import StrategyConfig

pytestmark = pytest.mark.django_db

BAD_CODES = "999999 AAAAAA, 12 <script>alert(1)</script>"


def config(**fields) -> StrategyConfig:
    values = {"name": "검증", "strategy_key": "mean_reversion", "params": {}, "universe_mode": "codes",
              "universe_codes": "005930, 000660"}
    return StrategyConfig(**{**values, **fields})


def errors_of(instance) -> dict:
    with pytest.raises(ValidationError) as caught:
        instance.full_clean(exclude=["owner"])
    return caught.value.message_dict


def test_codes_are_normalised_deduplicated_in_order(instruments):
    assert validators.clean_universe_codes("000660 005930,005930\n 35720", required=True) == "000660, 005930, 035720"


def test_unknown_codes_are_named_as_typed_in_korean(instruments):
    with pytest.raises(ValidationError) as caught:
        validators.clean_universe_codes(f"005930 {BAD_CODES}", required=True)
    message = caught.value.messages[0]
    assert message.startswith("알 수 없는 종목코드")
    assert "999999, AAAAAA, 12, <script>alert(1)" in message and "005930" not in message


def test_too_many_codes_are_refused_before_any_lookup():
    codes = " ".join(f"{n:06d}" for n in range(validators.MAX_UNIVERSE_CODES + 1))
    with pytest.raises(ValidationError, match="3,000개까지"):
        validators.clean_universe_codes(codes, required=True)


def test_a_listed_universe_needs_a_code_and_a_top_n_universe_none(instruments):
    assert "universe_codes" in errors_of(config(universe_codes=" , "))
    top_n = config(universe_mode="top_traded", universe_codes="")
    top_n.full_clean(exclude=["owner"])


@pytest.mark.parametrize(("field", "value"), [
    ("cash_per_week", -5), ("cash_per_week", validators.MAX_CASH_KRW + 1), ("max_positions", 0),
    ("max_positions", 999_999_999_999), ("universe_top_n", 0), ("universe_top_n", 2**63 - 1),
])
def test_amounts_and_counts_outside_the_bounds_are_refused(instruments, field, value):
    errors = errors_of(config(**{field: value}))
    assert list(errors) == [field]


def test_full_clean_stores_the_normalised_codes_and_code_list_deduplicates(instruments):
    checked = config(universe_codes="005930 005930 000660")
    checked.full_clean(exclude=["owner"])
    assert checked.universe_codes == "005930, 000660"
    assert config(universe_codes="005930 005930,5930").code_list == ["005930"]  # a row stored before the rule


def test_the_demo_strategy_still_validates():
    with time_machine.travel(dt.datetime(2026, 11, 25, 10, 0, tzinfo=SEOUL), tick=False):
        call_command("setup_demo", symbols=5, years=1, stdout=io.StringIO())
    demo = StrategyConfig.objects.get()
    demo.full_clean()
