from __future__ import annotations

from collections.abc import Iterator

import pytest

import stalwart
from stalwart._breaker import DISABLE_ENV
from stalwart._events import _GLOBAL
from stalwart.testing import FakeClock

pytest_plugins = ("servers",)  # real PostgreSQL and redis servers (tests/servers.py)


@pytest.fixture(autouse=True)
def _isolated(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Each test starts with no named breakers and the disable switch unset, and must not
    leave a global listener behind (it would slow or skew every later test)."""
    monkeypatch.delenv(DISABLE_ENV, raising=False)
    stalwart.circuit_breakers.clear()
    before = _GLOBAL.subs  # a module-scoped fixture's listeners are allowed
    yield
    stalwart.circuit_breakers.clear()
    left = [sub.listener for sub in _GLOBAL.subs if sub not in before]
    if left:
        _GLOBAL.change(lambda subs: tuple(sub for sub in subs if sub in before))
        pytest.fail(f"the test left global listeners behind: {left}")


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()
