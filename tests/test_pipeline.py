"""Pipelines compose strategies once, outermost first, keeping signatures."""

from __future__ import annotations

import asyncio
import functools
import inspect
import json
from collections.abc import Callable
from typing import Any, ParamSpec, TypeVar

import pytest

from stalwart import CircuitBreaker, CircuitOpenError, ConfigError, State
from stalwart._pipeline import Pipeline
from stalwart.testing import FakeClock

P = ParamSpec("P")
R = TypeVar("R")


class Recorder:
    """A minimal strategy: notes when the call passes through it."""

    def __init__(self, label: str, log: list[str]) -> None:
        self.label, self.log = label, log

    def __call__(self, fn: Callable[P, R]) -> Callable[P, R]:
        if inspect.iscoroutinefunction(fn):

            @functools.wraps(fn)
            async def awrapper(*args: Any, **kwargs: Any) -> Any:
                self.log.append(self.label)
                return await fn(*args, **kwargs)

            return awrapper  # type: ignore[return-value]

        @functools.wraps(fn)
        def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
            self.log.append(self.label)
            return fn(*args, **kwargs)

        return wrapper

    def describe(self) -> dict[str, Any]:
        return {"strategy": "recorder", "name": self.label, "on": (KeyError, ValueError)}


def test_strategies_apply_outermost_first_sync_and_async() -> None:
    log: list[str] = []
    pipeline = Pipeline(Recorder("outer", log), Recorder("middle", log), Recorder("inner", log))

    @pipeline
    def work(x: int, *, scale: int = 2) -> int:
        log.append("call")
        return x * scale

    @pipeline
    async def awork(x: int) -> int:
        log.append("acall")
        return x

    assert work(3, scale=3) == 9
    assert asyncio.run(awork(4)) == 4
    assert log == ["outer", "middle", "inner", "call", "outer", "middle", "inner", "acall"]
    assert str(inspect.signature(work)) == "(x: 'int', *, scale: 'int' = 2) -> 'int'"
    assert inspect.iscoroutinefunction(awork)
    assert work.__name__ == "work"


def test_a_breaker_in_a_pipeline_counts_each_attempt() -> None:
    clock = FakeClock()
    log: list[str] = []
    breaker = CircuitBreaker("db", failure_threshold=2, clock=clock)
    pipeline = Pipeline(Recorder("outer", log), breaker)

    def down() -> None:
        raise ConnectionError

    for _ in range(2):
        with pytest.raises(ConnectionError):
            pipeline.call(down)
    with pytest.raises(CircuitOpenError):
        pipeline.call(down)
    assert breaker.state is State.OPEN
    assert log == ["outer"] * 3


def test_describe_lists_settings_outermost_first_as_json() -> None:
    breaker = CircuitBreaker("db", failure_threshold=3, record=[ConnectionError])
    description = Pipeline(Recorder("r", []), breaker).describe()
    assert [d["strategy"] for d in description] == ["recorder", "circuit_breaker"]
    assert description[0]["on"] == ["KeyError", "ValueError"]
    assert description[1]["failure_threshold"] == 3
    assert description[1]["record"] == ["ConnectionError"]
    json.dumps(description)  # every value is JSON-friendly
    assert repr(Pipeline(Recorder("r", []), breaker)) == "Pipeline(recorder, circuit_breaker)"


def test_call_and_acall_check_the_kind_of_function() -> None:
    pipeline = Pipeline(Recorder("r", []))

    async def job() -> int:
        return 1

    assert pipeline.call(divmod, 7, 2) == (3, 1)
    assert asyncio.run(pipeline.acall(job)) == 1
    with pytest.raises(TypeError, match="acall"):
        pipeline.call(job)  # type: ignore[arg-type, unused-coroutine]
    with pytest.raises(TypeError, match="not async"):
        asyncio.run(pipeline.acall(divmod, 7, 2))  # type: ignore[arg-type]


def test_bad_pipelines_are_config_errors() -> None:
    with pytest.raises(ConfigError) as info:
        Pipeline()
    assert info.value.field == "strategies"
    with pytest.raises(ConfigError, match="item 1") as info:
        Pipeline(Recorder("r", []), print)  # type: ignore[arg-type]
    assert info.value.field == "strategies"
    with pytest.raises(ConfigError) as info:
        Pipeline(Recorder("r", []))(42)  # type: ignore[arg-type]
    assert info.value.field == "fn"


def _catalog(clock: FakeClock, breaker: CircuitBreaker) -> Pipeline:
    from stalwart import Bulkhead, Fallback, Retry, Timeout

    return Pipeline(
        Fallback(value="stand-in"),
        Retry(on=ConnectionError, max_attempts=3, base_delay=0.5, clock=clock),
        breaker,
        Bulkhead(2),
        Timeout(2.0, clock=clock),
    )


def test_the_recommended_order_end_to_end_sync_and_async() -> None:
    clock = FakeClock()
    breaker = CircuitBreaker("catalog", failure_threshold=2, clock=clock)
    catalog = _catalog(clock, breaker)
    sent: list[str] = []

    @catalog
    def down() -> str:
        sent.append("sync")
        raise ConnectionError

    @catalog
    async def adown() -> str:
        sent.append("async")
        raise ConnectionError

    assert down() == "stand-in"
    assert sent == ["sync", "sync"]  # the third attempt met an open breaker
    assert breaker.state is State.OPEN
    breaker.reset()
    assert asyncio.run(adown()) == "stand-in"
    assert sent == ["sync", "sync", "async", "async"]
    assert len(clock.sleeps) == 4  # one backoff sleep before each rejected or failed retry


def test_a_full_bulkhead_inside_the_breaker_does_not_open_it() -> None:
    import threading

    from stalwart import Bulkhead, BulkheadFullError

    clock = FakeClock()
    breaker = CircuitBreaker("db", failure_threshold=1, clock=clock)
    inside, release = threading.Event(), threading.Event()
    pipeline = Pipeline(breaker, Bulkhead(1))

    @pipeline
    def query() -> str:
        inside.set()
        release.wait(10)
        return "rows"

    holder = threading.Thread(target=query)
    holder.start()
    assert inside.wait(10)
    with pytest.raises(BulkheadFullError):
        query()  # refused before the database was asked
    release.set()
    holder.join(10)
    assert breaker.state is State.CLOSED
    assert breaker.snapshot().total_ignored == 1
