"""What every strategy promises as a decorator: def stays def, async def stays async def,
and the name, docstring and signature are kept."""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Callable
from typing import Any

import pytest

from stalwart import (
    AdaptiveThrottle,
    Bulkhead,
    CircuitBreaker,
    Fallback,
    Hedge,
    Pipeline,
    RateLimiter,
    Retry,
    Timeout,
    retry,
)
from stalwart.chaos import ChaosFault, ChaosLatency, ChaosResult
from stalwart.testing import FakeClock

Make = Callable[[FakeClock], Any]

STRATEGIES: dict[str, Make] = {
    "circuit_breaker": lambda clock: CircuitBreaker("b", clock=clock),
    "retry decorator": lambda clock: retry(on=ConnectionError, clock=clock),
    "Retry": lambda clock: Retry(on=ConnectionError, clock=clock),
    "timeout": lambda clock: Timeout(5.0, clock=clock),
    "fallback": lambda clock: Fallback(value=""),
    "bulkhead": lambda clock: Bulkhead(1),
    "rate_limiter": lambda clock: RateLimiter("1000/second", clock=clock),
    "adaptive_throttle": lambda clock: AdaptiveThrottle(overload_on=ConnectionError, clock=clock),
    "chaos off": lambda clock: ChaosFault(ConnectionError, rate=0.0),
    "chaos latency": lambda clock: ChaosLatency(0.1, clock=clock),
    "chaos result off": lambda clock: ChaosResult("x", enabled=False),
    "pipeline": lambda clock: Pipeline(
        Retry(on=ConnectionError, clock=clock), CircuitBreaker("p", clock=clock)
    ),
}
ASYNC_ONLY: dict[str, Make] = {
    "hedge": lambda clock: Hedge(delay=1.0, idempotent=True, clock=clock),
}


@pytest.mark.parametrize("make", STRATEGIES.values(), ids=STRATEGIES.keys())
def test_a_sync_function_keeps_name_doc_signature_and_result(make: Make) -> None:
    @make(FakeClock())
    def fetch(url: str, *, retries: int = 1) -> str:
        """Fetch it."""
        return url

    assert fetch.__name__ == "fetch"
    assert fetch.__doc__ == "Fetch it."
    assert str(inspect.signature(fetch)) == "(url: 'str', *, retries: 'int' = 1) -> 'str'"
    assert not inspect.iscoroutinefunction(fetch)
    assert fetch("a", retries=2) == "a"


@pytest.mark.parametrize(
    "make", [*STRATEGIES.values(), *ASYNC_ONLY.values()], ids=[*STRATEGIES, *ASYNC_ONLY]
)
def test_an_async_function_stays_async_with_its_signature(make: Make) -> None:
    @make(FakeClock())
    async def afetch(url: str, *, retries: int = 1) -> str:
        """Fetch it, asynchronously."""
        return url

    assert afetch.__name__ == "afetch"
    assert afetch.__doc__ == "Fetch it, asynchronously."
    assert str(inspect.signature(afetch)) == "(url: 'str', *, retries: 'int' = 1) -> 'str'"
    assert inspect.iscoroutinefunction(afetch)
    assert asyncio.run(afetch("b")) == "b"
