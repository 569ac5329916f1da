"""Checked by mypy --strict only (never run): the public API keeps its types.

A decorator that erased signatures, or a method that returned Any, would make
`assert_type` fail here.
"""

from __future__ import annotations

from typing import Any, assert_type

import stalwart
from stalwart import (
    BreakerConfig,
    BreakerSnapshot,
    CircuitBreaker,
    CircuitOpenError,
    Clock,
    PollHint,
    State,
)
from stalwart.events import Event, LoggingListener, StateTransition
from stalwart.testing import FakeClock

clock: Clock = FakeClock()  # FakeClock satisfies the Clock protocol
breaker = CircuitBreaker("q", failure_threshold=2, recovery_timeout=60.0, clock=clock)
named = stalwart.circuit_breaker("db", BreakerConfig(failure_threshold=3))
assert_type(named, CircuitBreaker)


@breaker
def fetch(url: str, *, timeout: float = 3.0) -> bytes:
    return url.encode()


@breaker
async def afetch(url: str) -> int:
    return len(url)


@stalwart.circuit_breaker("database", failure_threshold=3)
async def database_operation(query: str) -> list[str]:
    return [query]


assert_type(fetch("a", timeout=1.0), bytes)
assert_type(breaker.call(fetch, "a"), bytes)
assert_type(breaker.call(divmod, 7, 2), tuple[int, int])


async def use_async() -> None:
    assert_type(await afetch("x"), int)
    assert_type(await breaker.acall(afetch, "x"), int)
    assert_type(await database_operation("select 1"), list[str])
    async with breaker as guarded:
        assert_type(guarded, CircuitBreaker)


with breaker as block:
    assert_type(block, CircuitBreaker)

assert_type(breaker.state, State)
assert_type(breaker.available, bool)
snapshot = breaker.snapshot()
assert_type(snapshot, BreakerSnapshot)
assert_type(snapshot.retry_in, float | None)
assert_type(snapshot.to_dict(), dict[str, Any])
hint = breaker.poll_hint()
assert_type(hint, PollHint)
assert_type(hint["poll_interval"], float)


def on_event(event: Event) -> None:
    if isinstance(event, StateTransition):
        assert_type(event.new, State)


breaker.add_listener(on_event, StateTransition)
stalwart.add_listener(LoggingListener())

try:
    fetch("b")
except CircuitOpenError as exc:
    assert_type(exc.retry_in, float | None)
    assert_type(exc.name, str)


def on_move(event: StateTransition) -> None:
    assert_type(event.old, State)


breaker.add_listener(on_move, StateTransition)
stalwart.add_listener(on_move, StateTransition)
# Without a filter a listener gets every event, so one typed for transitions only is an
# error (mypy --strict flags this ignore as unused if the error ever goes away).
breaker.add_listener(on_move)  # type: ignore[arg-type]
stalwart.add_listener(on_move)  # type: ignore[arg-type]


# -- strategies (issue 3) ---------------------------------------------------------------

from stalwart import (  # noqa: E402
    AdaptiveThrottle,
    Backoff,
    Bulkhead,
    Fallback,
    Hedge,
    Pipeline,
    RateLimiter,
    Retry,
    RetryBudget,
    Timeout,
    parse_retry_after,
    presets,
    remaining,
    retry,
)


@retry(on=ConnectionError, max_attempts=3, base_delay=0.1, clock=clock)
def query(sql: str, *, limit: int = 10) -> list[str]:
    return [sql] * limit


@retry(on=OSError, **presets.DATABASE)
async def aquery(sql: str) -> int:
    return len(sql)


assert_type(query("select 1", limit=2), list[str])


async def use_strategies() -> None:
    assert_type(await aquery("select 1"), int)
    async for attempt in Retry(on=OSError, clock=clock):
        with attempt:
            pass
    assert_type(await Hedge(delay=0.05, idempotent=True)(afetch)("x"), int)


for attempt in Retry(on=OSError, clock=clock):
    with attempt:
        pass

pipeline = Pipeline(
    Fallback(value=b""),
    Retry(on=OSError, budget=RetryBudget(), clock=clock),
    breaker,
    Bulkhead(4),
    RateLimiter("10/second", clock=clock),
    AdaptiveThrottle(overload_on=ConnectionError, clock=clock),
    Timeout(2.0, clock=clock),
)
guarded_fetch = pipeline(fetch)
assert_type(guarded_fetch("a", timeout=1.0), bytes)
assert_type(pipeline.describe(), list[dict[str, Any]])
assert_type(RateLimiter("5/minute").try_acquire(), bool)
assert_type(remaining(), float | None)
assert_type(parse_retry_after("120"), float | None)
assert_type(presets.GRPC, Backoff)
