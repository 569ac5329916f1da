"""Events reach the right listeners, cost nothing when unwanted, and never break a call."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator

import pytest

import stalwart
from stalwart import CircuitBreaker, CircuitOpenError, State
from stalwart.events import (
    CallFailed,
    CallIgnored,
    CallRejected,
    CallSucceeded,
    Event,
    LoggingListener,
    SlowCall,
    StateTransition,
)
from stalwart.testing import FakeClock


class Boom(Exception):
    pass


def boom() -> None:
    raise Boom


@pytest.fixture
def global_events() -> Iterator[list[Event]]:
    seen: list[Event] = []
    stalwart.add_listener(seen.append)
    yield seen
    stalwart.remove_listener(seen.append)


def test_transitions_carry_old_new_reason_and_retry_in(clock: FakeClock) -> None:
    breaker = CircuitBreaker("q", failure_threshold=1, recovery_timeout=30, clock=clock)
    seen: list[Event] = []
    breaker.add_listener(seen.append, StateTransition)
    with pytest.raises(Boom):
        breaker.call(boom)
    clock.advance(30)
    breaker.call(lambda: None)
    moves = [(e.old, e.new, e.reason) for e in seen if isinstance(e, StateTransition)]
    assert moves == [
        (State.CLOSED, State.OPEN, "failure_threshold"),
        (State.OPEN, State.HALF_OPEN, "recovery_timeout_elapsed"),
        (State.HALF_OPEN, State.CLOSED, "probes_succeeded"),
    ]
    first = seen[0]
    assert isinstance(first, StateTransition)
    assert (first.name, first.strategy, first.retry_in) == ("q", "circuit_breaker", 30)


def test_per_call_events_with_durations(clock: FakeClock) -> None:
    breaker = CircuitBreaker(
        "q", failure_threshold=5, slow_call_duration=1, ignore=KeyError, clock=clock
    )
    seen: list[Event] = []
    breaker.add_listener(seen.append)

    def slow() -> None:
        clock.advance(2)

    breaker.call(slow)
    with pytest.raises(Boom):
        breaker.call(boom)
    with pytest.raises(KeyError):
        breaker.call(lambda: {}["x"])
    kinds = [type(e) for e in seen]
    assert kinds == [CallSucceeded, SlowCall, CallFailed, CallIgnored]
    assert isinstance(seen[0], CallSucceeded)
    assert seen[0].duration == 2
    assert isinstance(seen[2], CallFailed)
    assert isinstance(seen[2].exception, Boom)


def test_rejections_are_events_too(clock: FakeClock) -> None:
    breaker = CircuitBreaker("q", clock=clock)
    seen: list[Event] = []
    breaker.add_listener(seen.append, CallRejected)
    breaker.force_open()
    with pytest.raises(CircuitOpenError):
        breaker.call(lambda: None)
    assert len(seen) == 1
    event = seen[0]
    assert isinstance(event, CallRejected)
    assert (event.state, event.retry_in) == (State.FORCED_OPEN, None)


def test_global_listeners_see_every_instance_including_later_ones(
    clock: FakeClock, global_events: list[Event]
) -> None:
    first = CircuitBreaker("a", clock=clock)
    first.force_open()
    second = CircuitBreaker("b", clock=clock)
    second.call(lambda: None)
    names = {(e.name, type(e).__name__) for e in global_events}
    assert ("a", "StateTransition") in names
    assert ("b", "CallSucceeded") in names


def test_type_filters_and_removal(clock: FakeClock) -> None:
    breaker = CircuitBreaker("q", clock=clock)
    transitions: list[Event] = []
    breaker.add_listener(transitions.append, StateTransition)
    breaker.call(lambda: None)
    assert transitions == []
    breaker.force_open()
    assert len(transitions) == 1
    breaker.remove_listener(transitions.append)
    breaker.reset()
    assert len(transitions) == 1


def test_fast_path_is_off_only_while_someone_wants_per_call_events(clock: FakeClock) -> None:
    breaker = CircuitBreaker("q", clock=clock)
    assert breaker._fast is not None
    breaker.add_listener(print, StateTransition)
    assert breaker._fast is not None  # transitions are not per call
    stalwart.add_listener(print, CallSucceeded)
    try:
        assert breaker._fast is None  # a global change reaches existing breakers
    finally:
        stalwart.remove_listener(print)
    assert breaker._fast is not None


def test_a_failing_listener_is_logged_and_the_call_goes_on(
    clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    breaker = CircuitBreaker("q", clock=clock)

    def broken(event: Event) -> None:
        raise RuntimeError("listener bug")

    breaker.add_listener(broken)
    with caplog.at_level(logging.ERROR, logger="stalwart"):
        assert breaker.call(lambda: 7) == 7
    assert "listener" in caplog.text
    assert "listener bug" in caplog.text


def test_bad_listener_registration_names_the_field() -> None:
    breaker = CircuitBreaker("q")
    with pytest.raises(stalwart.ConfigError) as info:
        breaker.add_listener(42)  # type: ignore[arg-type]
    assert info.value.field == "listener"
    with pytest.raises(stalwart.ConfigError) as info:
        breaker.add_listener(print, int)  # type: ignore[arg-type]
    assert info.value.field == "types"


def test_logging_listener_writes_one_structured_line_per_transition(
    clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    breaker = CircuitBreaker("qbittorrent", failure_threshold=2, recovery_timeout=60, clock=clock)
    breaker.add_listener(LoggingListener())
    assert breaker._fast is not None  # it only wants transitions
    with caplog.at_level(logging.INFO, logger="stalwart"):
        for _ in range(2):
            with pytest.raises(Boom):
                breaker.call(boom)
        with pytest.raises(CircuitOpenError):
            breaker.call(lambda: None)
    assert caplog.messages == [
        "circuit_breaker name=qbittorrent transition=closed->open "
        "reason=failure_threshold retry_in=60.000"
    ]
    record = caplog.records[0]
    assert record.levelno == logging.WARNING
    assert record.stalwart["new"] == "open"  # type: ignore[attr-defined]


def test_event_to_dict_is_json_friendly(clock: FakeClock) -> None:
    event = CallFailed(
        name="q", strategy="circuit_breaker", at=1.0, duration=0.5, exception=Boom("x")
    )
    assert event.to_dict() == {
        "event": "CallFailed",
        "name": "q",
        "strategy": "circuit_breaker",
        "at": 1.0,
        "duration": 0.5,
        "exception": "Boom: x",
        "retry_after": None,
    }
    with pytest.raises(AttributeError):
        event.name = "other"  # type: ignore[misc]


def test_bound_methods_can_be_removed_with_a_fresh_reference(clock: FakeClock) -> None:
    # `seen.append` is a new object each time it is read; removal must still find it.
    seen: list[Event] = []
    stalwart.add_listener(seen.append)
    stalwart.remove_listener(seen.append)
    breaker = CircuitBreaker("q", clock=clock)
    breaker.add_listener(seen.append)
    breaker.remove_listener(seen.append)
    breaker.force_open()
    assert seen == []


def test_listeners_added_from_many_threads_are_all_kept(clock: FakeClock) -> None:
    import threading

    breaker = CircuitBreaker("q", clock=clock)
    hits: list[int] = []
    listeners = [lambda event, i=i: hits.append(i) for i in range(64)]
    barrier = threading.Barrier(8)

    def register(chunk: int) -> None:
        barrier.wait()
        for listener in listeners[chunk::8]:
            breaker.add_listener(listener, StateTransition)
            stalwart.add_listener(listener, StateTransition)

    threads = [threading.Thread(target=register, args=(c,)) for c in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    try:
        breaker.force_open()
    finally:
        for listener in listeners:
            stalwart.remove_listener(listener)
    assert sorted(hits) == sorted(list(range(64)) * 2)  # once per instance, once global


def test_transitions_reach_listeners_in_the_order_they_happened(clock: FakeClock) -> None:
    import threading

    breaker = CircuitBreaker("q", failure_threshold=1, recovery_timeout=1, clock=clock)
    inside, go = threading.Event(), threading.Event()
    seen: list[State] = []

    def slow_on_open(event: StateTransition) -> None:
        if event.new is State.OPEN and not go.is_set():
            inside.set()
            go.wait(10)  # a slow listener (a network exporter, say) holds this delivery

    breaker.add_listener(slow_on_open, StateTransition)
    breaker.add_listener(lambda e: seen.append(e.new), StateTransition)

    def opener() -> None:
        with contextlib.suppress(Boom):
            breaker.call(boom)

    first = threading.Thread(target=opener)
    first.start()
    assert inside.wait(10)
    clock.advance(1)
    second = threading.Thread(target=lambda: breaker.state)  # open -> half_open, meanwhile
    second.start()
    # The second thread does not wait for the slow listener: it queues its transition
    # for the thread already delivering, and goes on.
    second.join(10)
    assert not second.is_alive()
    go.set()
    first.join(10)
    second.join(10)
    assert seen == [State.OPEN, State.HALF_OPEN]


def test_counters_read_their_position_from_repr() -> None:
    import itertools

    from stalwart._strategy import _LockedCount
    from stalwart._strategy import peek as _peek

    for counter in (itertools.count(), _LockedCount()):
        for _ in range(3):
            next(counter)
        assert _peek(counter) == 3


def test_a_listener_that_causes_a_transition_gets_it_after_the_current_one(
    clock: FakeClock,
) -> None:
    breaker = CircuitBreaker("q", failure_threshold=1, recovery_timeout=1, clock=clock)
    seen: list[tuple[State, State]] = []

    def record_and_react(event: StateTransition) -> None:
        seen.append((event.old, event.new))
        if event.new is State.OPEN:
            breaker.reset()  # an operator hook that reacts at once: re-enters the breaker

    breaker.add_listener(record_and_react, StateTransition)
    with contextlib.suppress(Boom):
        breaker.call(boom)
    assert seen == [(State.CLOSED, State.OPEN), (State.OPEN, State.CLOSED)]
    assert breaker.state is State.CLOSED


def test_a_transition_is_stamped_with_when_it_happened(clock: FakeClock) -> None:
    breaker = CircuitBreaker("q", failure_threshold=1, recovery_timeout=5, clock=clock)
    seen: list[StateTransition] = []
    breaker.add_listener(seen.append, StateTransition)
    clock.advance(1)
    with contextlib.suppress(Boom):
        breaker.call(boom)
    clock.advance(9)  # open -> half_open happened at 6.0; nobody looks until 10.0
    assert breaker.state is State.HALF_OPEN
    assert [e.at for e in seen] == [1.0, 10.0]
