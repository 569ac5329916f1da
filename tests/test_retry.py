"""Retry: decorator, call/acall and loop forms, sync and async alike, on a FakeClock."""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import random
import sys
import threading
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from stalwart import CircuitBreaker, CircuitOpenError, ConfigError
from stalwart._backoff import JITTERS, Jitter
from stalwart._pipeline import Pipeline
from stalwart._retry import (
    Retry,
    RetryAttempt,
    RetryGaveUp,
    RetrySucceeded,
    retry,
)
from stalwart.events import Event
from stalwart.testing import FakeClock, set_testing


class Down(ConnectionError):
    pass


class Throttled(Exception):
    def __init__(self, retry_after: Any) -> None:
        super().__init__("429")
        self.retry_after = retry_after


class Flaky:
    """Fails with ``errors`` in turn, then returns ``value``; counts calls."""

    def __init__(self, *errors: BaseException, value: Any = "ok") -> None:
        self.errors = list(errors)
        self.value = value
        self.calls = 0

    def __call__(self) -> Any:
        self.calls += 1
        if self.errors:
            raise self.errors.pop(0)
        return self.value

    async def acall(self) -> Any:
        return self()


def events_of(r: Retry) -> list[Event]:
    seen: list[Event] = []
    r.add_listener(seen.append)
    return seen


# -- the decorator ---------------------------------------------------------------------


def test_retries_until_success_and_returns_the_value(clock: FakeClock) -> None:
    flaky = Flaky(Down(), Down())
    fetch = retry(on=Down, clock=clock, rng=random.Random(1))(flaky)
    assert fetch() == "ok"
    assert flaky.calls == 3
    assert len(clock.sleeps) == 2


def test_after_the_last_attempt_the_callers_exception_is_reraised_with_a_note(
    clock: FakeClock,
) -> None:
    last = Down("third")
    flaky = Flaky(Down("first"), Down("second"), last)

    @retry(on=Down, max_attempts=3, clock=clock)
    def fetch() -> Any:
        return flaky()

    with pytest.raises(Down) as info:
        fetch()
    assert info.value is last
    assert info.value.__cause__ is None
    assert info.value.__context__ is None
    (note,) = info.value.__notes__
    assert note.startswith("stalwart: retry ")
    assert "gave up after 3 attempts over" in note
    assert "max_attempts=3 reached" in note
    assert flaky.calls == 3


def test_an_exception_on_does_not_match_passes_through_untouched_at_once(clock: FakeClock) -> None:
    flaky = Flaky(ValueError("bug"))
    fetch = retry(on=Down, clock=clock)(flaky)
    with pytest.raises(ValueError, match="bug") as info:
        fetch()
    assert flaky.calls == 1
    assert clock.sleeps == []
    assert not hasattr(info.value, "__notes__")


def test_a_later_unmatched_exception_also_passes_through(clock: FakeClock) -> None:
    flaky = Flaky(Down(), KeyError("k"))
    with pytest.raises(KeyError):
        retry(on=Down, clock=clock)(flaky)()
    assert flaky.calls == 2


def test_async_functions_are_awaited_and_retried(clock: FakeClock) -> None:
    flaky = Flaky(Down(), Down())

    @retry(on=Down, clock=clock)
    async def fetch(x: int) -> Any:
        return (await flaky.acall(), x)

    assert inspect.iscoroutinefunction(fetch)
    assert asyncio.run(fetch(5)) == ("ok", 5)
    assert flaky.calls == 3
    assert len(clock.sleeps) == 2


def test_cancellation_and_interrupts_are_never_retried(clock: FakeClock) -> None:
    flaky = Flaky(KeyboardInterrupt())
    with pytest.raises(KeyboardInterrupt):
        retry(on=lambda exc: True, clock=clock)(flaky)()
    assert flaky.calls == 1

    async def cancelled() -> None:
        raise asyncio.CancelledError

    with pytest.raises(asyncio.CancelledError):
        asyncio.run(retry(on=lambda exc: True, clock=clock)(cancelled)())


def test_on_accepts_a_tuple_a_list_or_a_predicate(clock: FakeClock) -> None:
    for on in ((KeyError, Down), [KeyError, Down], lambda exc: isinstance(exc, Down)):
        flaky = Flaky(Down())
        assert retry(on=on, clock=clock)(flaky)() == "ok"  # type: ignore[arg-type]
        assert flaky.calls == 2


def test_waits_grow_exponentially_with_no_jitter(clock: FakeClock) -> None:
    flaky = Flaky(*[Down() for _ in range(5)])
    r = retry(on=Down, max_attempts=6, base_delay=1.0, max_delay=5.0, jitter="none", clock=clock)
    assert r(flaky)() == "ok"
    assert clock.sleeps == [1.0, 2.0, 4.0, 5.0, 5.0]


def test_full_jitter_by_default_within_the_exponential(clock: FakeClock) -> None:
    flaky = Flaky(Down(), Down())
    retry(on=Down, base_delay=1.0, clock=clock, rng=random.Random(3))(flaky)()
    first, second = clock.sleeps
    assert 0 <= first <= 1.0
    assert 0 <= second <= 2.0
    assert first != 1.0 or second != 2.0


def test_max_attempts_one_never_retries(clock: FakeClock) -> None:
    flaky = Flaky(Down())
    with pytest.raises(Down) as info:
        retry(on=Down, max_attempts=1, clock=clock)(flaky)()
    assert clock.sleeps == []
    assert "after 1 attempt over" in info.value.__notes__[0]


def test_each_call_has_its_own_attempts_even_from_many_threads() -> None:
    """Per-call state is never shared: 8 threads, each call fails once then succeeds."""
    before = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    clock = FakeClock()
    local = threading.local()
    failures: list[BaseException] = []

    @retry(on=Down, max_attempts=2, base_delay=0.0, max_delay=0.0, clock=clock)
    def once_then_ok(i: int) -> int:
        if getattr(local, "failed", None) != i:
            local.failed = i
            raise Down
        return i

    def worker(offset: int) -> None:
        try:
            for i in range(offset, offset + 300):
                assert once_then_ok(i) == i
        except BaseException as exc:
            failures.append(exc)

    try:
        threads = [threading.Thread(target=worker, args=(k * 1000,)) for k in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:
        sys.setswitchinterval(before)
    assert failures == []
    assert len(clock.sleeps) == 8 * 300


# -- retry_if_result ------------------------------------------------------------------


def test_retry_if_result_retries_values_and_returns_the_last_one(clock: FakeClock) -> None:
    answers = iter([None, None, None, "late"])

    @retry(on=(), retry_if_result=lambda v: v is None, clock=clock)
    def poll() -> str | None:
        return next(answers)

    assert poll() is None  # 3 attempts, all None: the last value is returned
    assert len(clock.sleeps) == 2
    assert poll() == "late"


def test_retry_if_result_and_exceptions_mix(clock: FakeClock) -> None:
    outcomes: Iterator[Any] = iter([Down(), 503, 200])

    def call() -> int:
        outcome = next(outcomes)
        if isinstance(outcome, Exception):
            raise outcome
        return int(outcome)

    r = retry(on=Down, retry_if_result=lambda status: status >= 500, clock=clock)
    assert r(call)() == 200
    assert len(clock.sleeps) == 2


def test_a_raising_predicate_is_logged_and_counts_as_no(
    clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(value: Any) -> bool:
        raise RuntimeError("predicate bug")

    with caplog.at_level(logging.ERROR, logger="stalwart"):
        assert retry(on=(), retry_if_result=broken, clock=clock)(lambda: 7)() == 7
        flaky = Flaky(Down())
        with pytest.raises(Down):
            retry(on=broken, clock=clock)(flaky)()
    assert flaky.calls == 1
    assert "retry_if_result raised" in caplog.text
    assert "on raised" in caplog.text


# -- deadline -------------------------------------------------------------------------


def test_the_last_wait_is_shortened_to_end_at_the_deadline(clock: FakeClock) -> None:
    flaky = Flaky(*[Down() for _ in range(10)])
    r = retry(
        on=Down,
        max_attempts=10,
        base_delay=4.0,
        max_delay=100,
        jitter="none",
        timeout=10.0,
        clock=clock,
    )
    with pytest.raises(Down) as info:
        r(flaky)()
    assert clock.sleeps == [4.0, 6.0]  # 4 + 8 would pass 10: shortened to 6
    assert flaky.calls == 3  # the third attempt starts at exactly 10 s; none after it
    assert "the 10 s timeout has passed" in info.value.__notes__[0]


def test_the_deadline_counts_the_first_attempt_too(clock: FakeClock) -> None:
    def slow() -> None:
        clock.advance(9.5)
        raise Down

    r = retry(on=Down, max_attempts=5, base_delay=2.0, jitter="none", timeout=10.0, clock=clock)
    with pytest.raises(Down):
        r(slow)()
    assert clock.sleeps == [0.5]


def test_unlimited_attempts_end_at_the_deadline(clock: FakeClock) -> None:
    flaky = Flaky(*[Down() for _ in range(1000)])
    r = retry(
        on=Down,
        max_attempts=None,
        base_delay=1,
        max_delay=1,
        jitter="none",
        timeout=30.0,
        clock=clock,
    )
    with pytest.raises(Down):
        r(flaky)()
    assert sum(clock.sleeps) == 30.0
    assert flaky.calls == 31


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.tuples(st.booleans(), st.floats(0.0, 20.0)), min_size=1, max_size=12),
    st.floats(0.01, 60.0),
    st.sampled_from([j for j in JITTERS if j != "proportional"]),
    st.integers(0, 2**32),
    st.none() | st.floats(0.0, 30.0),
)
def test_no_attempt_starts_after_the_deadline_and_no_wait_passes_it(
    schedule: list[tuple[bool, float]],
    timeout: float,
    jitter: Jitter,
    seed: int,
    hint: float | None,
) -> None:
    """For any failure schedule, attempt durations and server hints."""
    clock = FakeClock(start=100.0)
    outcomes = iter(schedule)
    starts: list[float] = []

    def attempt() -> str:
        starts.append(clock.monotonic())
        fails, duration = next(outcomes, (False, 0.0))
        clock.advance(duration)
        if fails:
            raise Throttled(hint)
        return "ok"

    r = retry(
        on=Throttled,
        max_attempts=len(schedule) + 1,
        base_delay=0.5,
        max_delay=30.0,
        jitter=jitter,
        timeout=timeout,
        clock=clock,
        rng=random.Random(seed),
    )
    with contextlib.suppress(Throttled):
        r(attempt)()
    deadline = 100.0 + timeout
    assert all(start <= deadline + 1e-9 for start in starts)
    waited_until = 100.0
    for start, (_, duration), sleep in zip(starts, schedule, clock.sleeps, strict=False):
        waited_until = start + duration + sleep
        assert waited_until <= deadline + 1e-9


# -- server-given pauses ----------------------------------------------------------------


def test_a_retry_after_hint_replaces_the_computed_delay(clock: FakeClock) -> None:
    flaky = Flaky(Throttled(3.0), Throttled(timedelta(seconds=1.5)))
    assert retry(on=Throttled, clock=clock)(flaky)() == "ok"
    assert clock.sleeps == [3.0, 1.5]


def test_a_hint_longer_than_max_delay_gives_up_at_once(clock: FakeClock) -> None:
    flaky = Flaky(Throttled(60.0))
    with pytest.raises(Throttled) as info:
        retry(on=Throttled, max_delay=10.0, clock=clock)(flaky)()
    assert flaky.calls == 1
    assert clock.sleeps == []
    assert "the server asked to wait 60 s, more than max_delay=10 s" in info.value.__notes__[0]


def test_a_hint_ending_past_the_deadline_gives_up_at_once(clock: FakeClock) -> None:
    flaky = Flaky(Throttled(8.0))
    with pytest.raises(Throttled) as info:
        retry(on=Throttled, timeout=5.0, clock=clock)(flaky)()
    assert clock.sleeps == []
    assert "past the 5 s timeout" in info.value.__notes__[0]


def test_junk_hints_are_ignored_and_the_backoff_applies(clock: FakeClock) -> None:
    flaky = Flaky(Throttled("soon"), Throttled(float("nan")), Throttled(-3))
    r = retry(on=Throttled, max_attempts=4, base_delay=1.0, jitter="none", clock=clock)
    assert r(flaky)() == "ok"
    assert clock.sleeps == [1.0, 2.0, 0.0]  # a negative pause is "now"


def test_retry_after_from_reads_hints_from_values_too(clock: FakeClock) -> None:
    class Reply:
        def __init__(self, status: int, wait: float | None = None) -> None:
            self.status, self.wait = status, wait

    replies = iter([Reply(429, 2.5), Reply(200)])
    r = retry(
        on=(),
        retry_if_result=lambda reply: reply.status == 429,
        retry_after_from=lambda source: source.wait,
        clock=clock,
    )
    assert r(lambda: next(replies))().status == 200
    assert clock.sleeps == [2.5]


def test_an_open_breakers_retry_in_is_a_hint(clock: FakeClock) -> None:
    breaker = CircuitBreaker("db", failure_threshold=1, recovery_timeout=4.0, clock=clock)
    calls = 0

    def query() -> str:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise Down
        return "rows"

    outer = Pipeline(retry(on=(Down, CircuitOpenError), clock=clock), breaker)(query)
    assert outer() == "rows"
    # first attempt: Down (opens the breaker), waits by backoff; second: rejected with
    # retry_in ~4 s, waits exactly that; third: half-open probe succeeds.
    assert len(clock.sleeps) == 2
    assert calls == 2
    assert clock.sleeps[1] == pytest.approx(4.0 - clock.sleeps[0])


def test_a_raising_retry_after_from_is_logged_and_ignored(
    clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(source: Any) -> float:
        raise RuntimeError("hint bug")

    flaky = Flaky(Down())
    r = retry(on=Down, jitter="none", base_delay=1.0, retry_after_from=broken, clock=clock)
    with caplog.at_level(logging.ERROR, logger="stalwart"):
        assert r(flaky)() == "ok"
    assert clock.sleeps == [1.0]
    assert "retry_after_from raised" in caplog.text


# -- sync and async agree ---------------------------------------------------------------


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.sampled_from(["fail", "hint", "none", "ok"]), min_size=1, max_size=8),
    st.integers(0, 2**32),
    st.sampled_from(JITTERS),
    st.none() | st.floats(1.0, 20.0),
)
def test_sync_and_async_drivers_make_the_same_attempts_and_sleeps(
    script: list[str], seed: int, jitter: Jitter, timeout: float | None
) -> None:
    def run(is_async: bool) -> tuple[list[float], list[str], list[tuple[str, Any]]]:
        clock = FakeClock()
        steps = iter(script)
        log: list[str] = []

        def step() -> Any:
            log.append("attempt")
            clock.advance(0.25)
            kind = next(steps, "ok")
            if kind == "fail":
                raise Down
            if kind == "hint":
                raise Throttled(0.75)
            return None if kind == "none" else "done"

        async def astep() -> Any:
            return step()

        r = Retry(
            on=(Down, Throttled),
            max_attempts=6,
            retry_if_result=lambda v: v is None,
            jitter=jitter,
            timeout=timeout,
            clock=clock,
            rng=random.Random(seed),
            name="r",
        )
        seen = events_of(r)
        try:
            result = asyncio.run(r(astep)()) if is_async else r(step)()
            log.append(f"returned {result}")
        except (Down, Throttled) as exc:
            log.append(f"raised {type(exc).__name__}: {exc.__notes__}")
        return clock.sleeps, log, [(type(e).__name__, e.to_dict()) for e in seen]

    assert run(False) == run(True)


# -- the loop forms ---------------------------------------------------------------------


def test_for_attempt_loop_retries_the_block_until_it_succeeds(clock: FakeClock) -> None:
    flaky = Flaky(Down(), Down())
    numbers = []
    for attempt in Retry(on=Down, clock=clock):
        with attempt:
            numbers.append(attempt.number)
            result = flaky()
    assert result == "ok"
    assert numbers == [1, 2, 3]
    assert len(clock.sleeps) == 2


def test_for_attempt_loop_reraises_the_last_exception_with_a_note(clock: FakeClock) -> None:
    flaky = Flaky(Down(), Down(), Down("last"))

    def loop() -> None:
        for attempt in Retry(on=Down, clock=clock):
            with attempt:
                flaky()

    with pytest.raises(Down, match="last") as info:
        loop()
    assert "gave up after 3 attempts" in info.value.__notes__[0]
    assert flaky.calls == 3


def test_async_for_attempt_loop_awaits_the_waits(clock: FakeClock) -> None:
    flaky = Flaky(Down())

    async def main() -> Any:
        async for attempt in Retry(on=Down, clock=clock):
            with attempt:
                result = await flaky.acall()
        return result

    assert asyncio.run(main()) == "ok"
    assert len(clock.sleeps) == 1


def test_loop_judges_set_result_values(clock: FakeClock) -> None:
    values = iter([None, None, 3])
    for attempt in Retry(on=(), retry_if_result=lambda v: v is None, clock=clock):
        with attempt:
            value = next(values)
            attempt.set_result(value)
    assert value == 3
    assert len(clock.sleeps) == 2


def test_loop_ends_after_the_last_rejected_value(clock: FakeClock) -> None:
    n = 0
    for attempt in Retry(on=(), retry_if_result=lambda v: True, max_attempts=2, clock=clock):
        with attempt:
            n += 1
            attempt.set_result(n)
    assert n == 2


def test_loop_lets_unmatched_exceptions_through_at_once(clock: FakeClock) -> None:
    def loop() -> None:
        for attempt in Retry(on=Down, clock=clock):
            with attempt:
                raise KeyError("k")

    with pytest.raises(KeyError):
        loop()
    assert clock.sleeps == []


def test_loop_without_with_attempt_is_an_error(clock: FakeClock) -> None:
    loop = iter(Retry(on=Down, clock=clock))
    next(loop)
    with pytest.raises(RuntimeError, match="with attempt"):
        next(loop)


def test_an_attempt_cannot_be_used_twice(clock: FakeClock) -> None:
    loop = iter(Retry(on=Down, clock=clock))
    attempt = next(loop)
    with attempt:
        pass
    with pytest.raises(RuntimeError, match="already used"), attempt:
        pass


def test_each_loop_is_independent(clock: FakeClock) -> None:
    r = Retry(on=Down, max_attempts=2, clock=clock)
    for _ in range(3):
        flaky = Flaky(Down())
        for attempt in r:
            with attempt:
                flaky()
        assert flaky.calls == 2


# -- call / acall / pipeline / describe ------------------------------------------------


def test_call_and_acall(clock: FakeClock) -> None:
    r = Retry(on=Down, clock=clock)
    assert r.call(Flaky(Down())) == "ok"

    async def afetch(x: int) -> int:
        return x

    assert asyncio.run(r.acall(afetch, 4)) == 4
    with pytest.raises(TypeError, match="acall"):
        r.call(afetch, 1)  # type: ignore[unused-coroutine]
    with pytest.raises(TypeError, match=r"retry\.call"):
        asyncio.run(r.acall(lambda: 1))  # type: ignore[arg-type, return-value]


def test_generator_functions_and_non_callables_are_refused() -> None:
    def gen() -> Iterator[int]:
        yield 1

    with pytest.raises(ConfigError) as info:
        retry(on=Down)(gen)
    assert info.value.field == "fn"
    with pytest.raises(ConfigError):
        retry(on=Down)(3)  # type: ignore[arg-type]


def test_describe_lists_every_setting_and_pipelines_show_it() -> None:
    r = Retry(on=(Down, KeyError), timeout=5.0, name="db")
    described = r.describe()
    assert described["strategy"] == "retry"
    assert described["name"] == "db"
    assert described["max_attempts"] == 3
    assert described["timeout"] == 5.0
    assert described["jitter"] == "full"
    assert described["budget"] is None
    assert set(described) >= {
        "on",
        "base_delay",
        "max_delay",
        "multiplier",
        "jitter_factor",
        "retry_if_result",
        "retry_after_from",
    }
    assert Pipeline(r).describe()[0]["on"] == ["Down", "KeyError"]
    assert "Retry('db'" in repr(r)


def test_events_name_the_function_unless_the_retry_is_named(clock: FakeClock) -> None:
    anonymous, named = Retry(on=Down, clock=clock), Retry(on=Down, clock=clock, name="api")
    seen_anonymous, seen_named = events_of(anonymous), events_of(named)

    def fetch() -> None:
        raise Down

    for r in (anonymous, named):
        with pytest.raises(Down) as info:
            r(fetch)()
    assert {e.name for e in seen_anonymous} == {fetch.__qualname__}
    assert {e.name for e in seen_named} == {"api"}
    assert "stalwart: retry 'api' gave up" in info.value.__notes__[0]
    assert anonymous.name == "retry"


# -- events --------------------------------------------------------------------------


def test_events_report_each_wait_and_the_give_up(clock: FakeClock) -> None:
    r = Retry(
        on=(Down, Throttled), max_attempts=3, base_delay=1.0, jitter="none", clock=clock, name="api"
    )
    seen = events_of(r)
    first, second, third = Down("1"), Throttled(0.5), Down("3")
    with pytest.raises(Down):
        r(Flaky(first, second, third))()
    a1, a2, gave_up = seen
    assert isinstance(a1, RetryAttempt)
    assert isinstance(a2, RetryAttempt)
    assert (a1.attempt, a1.delay, a1.exception, a1.retry_after) == (1, 1.0, first, None)
    assert (a2.attempt, a2.delay, a2.exception, a2.retry_after) == (2, 0.5, second, 0.5)
    assert isinstance(gave_up, RetryGaveUp)
    assert (gave_up.attempts, gave_up.reason, gave_up.exception) == (3, "max_attempts", third)
    assert gave_up.elapsed == 1.5
    assert gave_up.at == 1.5
    assert a1.to_dict()["exception"] == "Down: 1"
    assert a1.strategy == "retry"


def test_value_events_carry_the_value(clock: FakeClock) -> None:
    r = Retry(on=(), retry_if_result=lambda v: v < 0, max_attempts=2, clock=clock)
    seen = events_of(r)
    assert r(lambda: -1)() == -1
    attempt, gave_up = seen
    assert isinstance(attempt, RetryAttempt)
    assert attempt.value == -1
    assert attempt.exception is None
    assert isinstance(gave_up, RetryGaveUp)
    assert gave_up.value == -1


def test_typed_listeners_and_removal(clock: FakeClock) -> None:
    r = Retry(on=Down, clock=clock)
    gave_up: list[RetryGaveUp] = []
    r.add_listener(gave_up.append, RetryGaveUp)
    with pytest.raises(Down):
        r(Flaky(Down(), Down(), Down()))()
    assert len(gave_up) == 1
    r.remove_listener(gave_up.append)
    with pytest.raises(Down):
        r(Flaky(Down(), Down(), Down()))()
    assert len(gave_up) == 1


# -- test mode ---------------------------------------------------------------------------


def test_set_testing_skips_sleeping_and_caps_attempts() -> None:
    flaky = Flaky(*[Down() for _ in range(10)])
    r = Retry(on=Down, max_attempts=10, base_delay=100.0, max_delay=1000.0)  # the real clock
    with set_testing(attempts=2) as mode, pytest.raises(Down) as info:
        r(flaky)()
    assert flaky.calls == 2
    assert len(mode.sleeps) == 1
    assert mode.sleeps[0] <= 100.0
    assert "max_attempts=2 reached" in info.value.__notes__[0]


def test_set_testing_covers_async_and_loops() -> None:
    async def main() -> int:
        flaky = Flaky(*[Down() for _ in range(10)])
        with pytest.raises(Down):
            await Retry(on=Down, max_attempts=5, base_delay=5.0).acall(flaky.acall)
        n = 0

        async def loop() -> None:
            nonlocal n
            async for attempt in Retry(on=Down, max_attempts=5, base_delay=5.0):
                with attempt:
                    n += 1
                    raise Down

        with pytest.raises(Down):
            await loop()
        return flaky.calls + n

    with set_testing(attempts=3) as mode:
        assert asyncio.run(main()) == 6
    assert len(mode.sleeps) == 4


# -- configuration errors --------------------------------------------------------------


@pytest.mark.parametrize(
    ("field", "settings"),
    [
        ("on", {}),
        ("on", {"on": None}),
        ("on", {"on": "Down"}),
        ("on", {"on": (Down, 3)}),
        ("on", {"on": KeyboardInterrupt}),
        ("on", {"on": [Down, asyncio.CancelledError]}),
        ("max_attempts", {"on": Down, "max_attempts": 0}),
        ("max_attempts", {"on": Down, "max_attempts": 2.5}),
        ("max_attempts", {"on": Down, "max_attempts": None}),
        ("timeout", {"on": Down, "timeout": 0}),
        ("timeout", {"on": Down, "timeout": -1}),
        ("base_delay", {"on": Down, "base_delay": -0.1}),
        ("max_delay", {"on": Down, "base_delay": 5.0, "max_delay": 1.0}),
        ("multiplier", {"on": Down, "multiplier": 0.9}),
        ("jitter", {"on": Down, "jitter": "random"}),
        ("jitter_factor", {"on": Down, "jitter_factor": 0.3}),
        ("retry_if_result", {"on": Down, "retry_if_result": 5}),
        ("retry_after_from", {"on": Down, "retry_after_from": None}),
        ("budget", {"on": Down, "budget": 0.2}),
        ("name", {"on": Down, "name": ""}),
        ("clock", {"on": Down, "clock": FakeClock}),
        ("rng", {"on": Down, "rng": 42}),
        ("max_attemps", {"on": Down, "max_attemps": 3}),
    ],
)
def test_bad_settings_raise_config_error_naming_the_field(
    field: str, settings: dict[str, Any]
) -> None:
    for build in (Retry, retry):
        with pytest.raises(ConfigError) as info:
            build(**settings)
        assert info.value.field == field, info.value


def test_missing_on_says_what_to_give() -> None:
    with pytest.raises(ConfigError, match="on: is required: the exceptions to retry"):
        retry()  # on= is left out on purpose


def test_defaults_are_bounded() -> None:
    config = Retry(on=Down).config
    assert config.max_attempts == 3
    assert config.timeout is None
    assert (config.base_delay, config.max_delay, config.multiplier) == (0.5, 10.0, 2.0)
    assert config.jitter == "full"
    assert config.budget is None
    assert Retry(on=Down, max_attempts=None, timeout=1.0).config.max_attempts is None


# -- RetrySucceeded: how many attempts a success took ------------------------------------


def test_a_success_is_reported_with_the_attempts_it_took_on_every_form() -> None:
    from stalwart.events import RetrySucceeded

    clock = FakeClock()
    policy = Retry(on=OSError, max_attempts=5, name="api", clock=clock)
    seen: list[int] = []
    policy.add_listener(lambda event: seen.append(event.attempts), RetrySucceeded)
    failures = iter([OSError(), OSError()])

    def flaky() -> str:
        error = next(failures, None)
        if error is not None:
            raise error
        return "ok"

    async def fine() -> str:
        return "ok"

    assert policy(flaky)() == "ok"  # third attempt
    assert policy(flaky)() == "ok"  # first attempt
    assert asyncio.run(policy(fine)()) == "ok"
    for attempt in policy:
        with attempt:
            pass
    assert seen == [3, 1, 1, 1]


def test_giving_up_is_not_reported_as_a_success() -> None:
    from stalwart.events import RetrySucceeded

    policy = Retry(on=OSError, max_attempts=2, clock=FakeClock())
    seen: list[object] = []
    policy.add_listener(seen.append, RetrySucceeded)

    def down() -> None:
        raise OSError("down")

    with pytest.raises(OSError, match="down"):
        policy(down)()
    assert seen == []


@pytest.mark.parametrize("form", ["sync", "async", "loop"])
def test_an_exception_after_a_rejected_value_is_reported_without_that_value(
    clock: FakeClock, form: str
) -> None:
    """Every form tells the same story: "bad" rejected, then OSError (value None), then 1."""
    outcomes: list[Any] = ["bad", OSError("down"), 1]
    retry = Retry(on=OSError, max_attempts=3, retry_if_result=lambda v: v == "bad", clock=clock)
    attempts: list[RetryAttempt] = []
    succeeded: list[RetrySucceeded] = []
    retry.add_listener(attempts.append, RetryAttempt)
    retry.add_listener(succeeded.append, RetrySucceeded)

    def step() -> Any:
        outcome = outcomes.pop(0)
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    async def astep() -> Any:
        return step()

    if form == "sync":
        result = retry(step)()
    elif form == "async":
        result = asyncio.run(retry(astep)())
    else:
        for attempt in retry:
            with attempt:
                result = step()
                attempt.set_result(result)
    assert result == 1
    assert [(a.value, type(a.exception)) for a in attempts] == [
        ("bad", type(None)),
        (None, OSError),
    ]
    assert [s.attempts for s in succeeded] == [3]
