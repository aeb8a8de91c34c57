"""Fixtures of the strategies tests."""

import pytest

from market.tests.factories import InstrumentFactory


@pytest.fixture
def instruments(db):
    """The instruments the config tests list (codes of the demo market), without bars: a strategy's
    codes must be known instruments."""
    names = {"005930": "삼성전자", "000660": "SK하이닉스", "035720": "카카오"}
    return [InstrumentFactory(code=code, name=name) for code, name in names.items()]
