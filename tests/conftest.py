from __future__ import annotations

from collections.abc import Iterator

import pytest

import stalwart
from stalwart._breaker import DISABLE_ENV
from stalwart.testing import FakeClock

pytest_plugins = ("servers",)  # real PostgreSQL and redis servers (tests/servers.py)


@pytest.fixture(autouse=True)
def _isolated(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Each test starts with no named breakers and the disable switch unset."""
    monkeypatch.delenv(DISABLE_ENV, raising=False)
    stalwart.circuit_breakers.clear()
    yield
    stalwart.circuit_breakers.clear()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()
