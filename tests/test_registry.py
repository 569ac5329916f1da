"""stalwart.circuit_breaker(name): one name, one shared instance."""

from __future__ import annotations

import threading

import pytest

import stalwart
from stalwart import BreakerConfig, ConfigError, State
from stalwart.testing import FakeClock


def test_same_name_gives_the_same_instance() -> None:
    first = stalwart.circuit_breaker("database", failure_threshold=3)
    assert stalwart.circuit_breaker("database", failure_threshold=3) is first
    assert stalwart.circuit_breaker("database") is first  # no settings: look it up
    assert stalwart.circuit_breakers["database"] is first
    assert list(stalwart.circuit_breakers) == ["database"]


def test_different_settings_for_an_existing_name_are_a_config_error() -> None:
    stalwart.circuit_breaker("database", failure_threshold=3)
    with pytest.raises(ConfigError) as info:
        stalwart.circuit_breaker("database", failure_threshold=4)
    assert info.value.field == "failure_threshold"
    assert "already exists" in str(info.value)


def test_a_different_clock_for_an_existing_name_is_a_config_error() -> None:
    stalwart.circuit_breaker("s3", clock=FakeClock())
    with pytest.raises(ConfigError) as info:
        stalwart.circuit_breaker("s3", clock=FakeClock())
    assert info.value.field == "clock"


def test_seed_003_decorator_factory_form() -> None:
    clock = FakeClock()

    @stalwart.circuit_breaker("database", BreakerConfig(failure_threshold=1), clock=clock)
    async def database_operation() -> None:
        raise ConnectionError

    import asyncio

    with pytest.raises(ConnectionError):
        asyncio.run(database_operation())
    assert stalwart.circuit_breakers["database"].state is State.OPEN


def test_constructing_directly_does_not_register() -> None:
    stalwart.CircuitBreaker("private")
    assert "private" not in stalwart.circuit_breakers


def test_concurrent_first_use_creates_exactly_one_instance() -> None:
    barrier = threading.Barrier(8)
    got: list[object] = []

    def grab() -> None:
        barrier.wait()
        got.append(stalwart.circuit_breaker("hot", failure_threshold=2))

    threads = [threading.Thread(target=grab) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len({id(b) for b in got}) == 1


def test_registry_is_read_only_and_can_be_cleared() -> None:
    stalwart.circuit_breaker("a")
    with pytest.raises(TypeError):
        stalwart.circuit_breakers["b"] = stalwart.CircuitBreaker("b")  # type: ignore[index]
    stalwart.circuit_breakers.remove("a")
    assert "a" not in stalwart.circuit_breakers
    assert repr(stalwart.circuit_breakers) == "<circuit breaker registry: []>"


def test_a_default_written_out_is_the_same_setting() -> None:
    first = stalwart.circuit_breaker("db", failure_threshold=5, recovery_timeout=30.0)
    assert stalwart.circuit_breaker("db", BreakerConfig()) is first


def test_spellings_of_the_same_rate_settings_are_the_same() -> None:
    first = stalwart.circuit_breaker("api", failure_rate=0.5, record=ConnectionError)
    again = stalwart.circuit_breaker(
        "api", failure_rate=0.5, window=100, minimum_calls=20, record=[ConnectionError]
    )
    assert again is first
