"""Fixtures for the market app's tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from market.tests.fake_kis import FakeKisServer


@pytest.fixture
def fake_kis() -> Iterator[FakeKisServer]:
    """A fake KIS real-account host on 127.0.0.1 (random port), stopped after the test."""
    with FakeKisServer(mode="real") as server:
        yield server
