"""In-process chaos: faults, latency and results injected at a rate, switchable live."""

from __future__ import annotations

import asyncio

import pytest

from stalwart import (
    CircuitBreaker,
    ConfigError,
    DeadlineExceeded,
    Fallback,
    Pipeline,
    Retry,
    State,
    Timeout,
)
from stalwart.chaos import ChaosFault, ChaosInjected, ChaosLatency, ChaosResult
from stalwart.events import Event
from stalwart.testing import FakeClock


def ok() -> str:
    return "real"


async def aok() -> str:
    return "real"


def test_a_fault_at_rate_one_replaces_every_call_sync_and_async() -> None:
    chaos = ChaosFault(ConnectionError)
    calls: list[int] = []

    @chaos
    def work() -> None:
        calls.append(1)

    with pytest.raises(ConnectionError):
        work()
    with pytest.raises(ConnectionError):
        asyncio.run(chaos(aok)())
    assert calls == []


def test_each_injected_fault_is_a_fresh_exception() -> None:
    chaos = ChaosFault(lambda: TimeoutError("injected"))
    seen = []
    for _ in range(3):
        try:
            chaos.call(ok)
        except TimeoutError as exc:
            seen.append(exc)
    assert len({id(e) for e in seen}) == 3
    assert all(e.__traceback__ is not None for e in seen)


def test_the_rate_is_honoured_and_seeded_runs_repeat() -> None:
    def run(seed: int) -> list[bool]:
        chaos = ChaosResult("fake", rate=0.3, seed=seed)
        return [chaos.call(ok) == "fake" for _ in range(2000)]

    first = run(7)
    assert first == run(7)  # the same seed, the same story
    assert 0.25 < sum(first) / len(first) < 0.35


def test_rate_and_enabled_switch_at_run_time() -> None:
    chaos = ChaosResult("fake", rate=0.0)
    assert chaos.call(ok) == "real"
    chaos.rate = 1.0
    assert chaos.call(ok) == "fake"
    chaos.enabled = False
    assert chaos.call(ok) == "real"
    with chaos.active():
        assert chaos.call(ok) == "fake"
    assert chaos.call(ok) == "real"  # restored after the block
    assert (chaos.rate, chaos.enabled) == (1.0, False)


def test_latency_moves_the_clock_and_then_makes_the_call() -> None:
    clock = FakeClock()
    chaos = ChaosLatency(2.0, max_seconds=4.0, seed=1, clock=clock)
    assert chaos.call(ok) == "real"
    assert asyncio.run(chaos.acall(aok)) == "real"
    assert len(clock.sleeps) == 2
    assert all(2.0 <= s <= 4.0 for s in clock.sleeps)


def test_injected_latency_trips_a_timeout_on_the_same_clock() -> None:
    clock = FakeClock()
    guarded = Pipeline(Timeout(1.0, thread=False, clock=clock), ChaosLatency(3.0, clock=clock))(ok)
    with pytest.raises(DeadlineExceeded):
        guarded()


def test_faults_in_a_pipeline_exercise_retry_breaker_and_fallback() -> None:
    clock = FakeClock()
    breaker = CircuitBreaker("api", failure_threshold=2, clock=clock)
    pipeline = Pipeline(
        Fallback(value="stand-in"),
        Retry(on=ConnectionError, max_attempts=3, base_delay=0.1, clock=clock),
        breaker,
        ChaosFault(ConnectionError),
    )
    assert pipeline(ok)() == "stand-in"
    assert breaker.state is State.OPEN


def test_injections_are_events_only_for_listeners() -> None:
    chaos = ChaosFault(KeyError, name="flaky-cache")
    seen: list[Event] = []
    chaos.add_listener(seen.append, ChaosInjected)
    with pytest.raises(KeyError):
        chaos.call(ok)
    assert len(seen) == 1
    event = seen[0]
    assert isinstance(event, ChaosInjected)
    assert (event.name, event.strategy, event.detail) == (
        "flaky-cache",
        "chaos_fault",
        "fault KeyError",
    )


def test_describe_shows_the_live_settings() -> None:
    chaos = ChaosLatency(0.5, rate=0.25)
    assert chaos.describe() == {
        "strategy": "chaos_latency",
        "name": "chaos_latency",
        "rate": 0.25,
        "enabled": True,
        "seconds": 0.5,
        "max_seconds": None,
    }


@pytest.mark.parametrize(
    ("make", "field"),
    [
        (lambda: ChaosFault(ValueError("one instance")), "exception"),
        (lambda: ChaosFault(ValueError, rate=1.5), "rate"),
        (lambda: ChaosFault(ValueError, rate=-0.1), "rate"),
        (lambda: ChaosFault(ValueError, enabled="yes"), "enabled"),
        (lambda: ChaosLatency(0), "seconds"),
        (lambda: ChaosLatency(2.0, max_seconds=1.0), "max_seconds"),
        (lambda: ChaosResult(), "value"),
        (lambda: ChaosResult(1, factory=lambda: 2), "value"),
        (lambda: ChaosResult(factory=3), "factory"),
        (lambda: ChaosFault(ValueError, name=""), "name"),
    ],
)
def test_bad_settings_name_the_field(make: object, field: str) -> None:
    with pytest.raises(ConfigError) as info:
        make()  # type: ignore[operator]
    assert info.value.field == field


def test_setting_a_bad_rate_live_is_refused_and_keeps_the_old_one() -> None:
    chaos = ChaosResult("fake", rate=0.5)
    with pytest.raises(ConfigError):
        chaos.rate = 2.0
    assert chaos.rate == 0.5
