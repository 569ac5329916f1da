"""Timeout: async work is cancelled, sync callers stop waiting, and the deadline (the
shortest of the nested ones) is visible to the work through ``remaining()``."""

from __future__ import annotations

import asyncio
import contextlib
import math
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from stalwart import CircuitBreaker, ConfigError, DeadlineExceeded, Rejected
from stalwart._timeout import TimedOut, Timeout, TimeoutConfig, remaining
from stalwart.events import Event
from stalwart.testing import FakeClock, set_testing

SHORT = 0.02  # real seconds: only where real cancellation or real threads are the point


class Boom(Exception):
    pass


def listen(strategy: Timeout) -> list[Event]:
    events: list[Event] = []
    strategy.add_listener(events.append)
    return events


# -- configuration --------------------------------------------------------------------


@pytest.mark.parametrize("seconds", [0, -1, math.nan, math.inf, "1", True, None])
def test_bad_seconds_is_a_config_error_naming_seconds(seconds: Any) -> None:
    with pytest.raises(ConfigError) as info:
        Timeout(seconds)
    assert info.value.field == "seconds"


def test_bad_thread_is_a_config_error_naming_thread() -> None:
    with pytest.raises(ConfigError) as info:
        Timeout(1.0, thread="yes")  # type: ignore[arg-type]
    assert info.value.field == "thread"


@pytest.mark.parametrize("name", ["", 3])
def test_bad_name_is_a_config_error_naming_name(name: Any) -> None:
    with pytest.raises(ConfigError) as info:
        Timeout(1.0, name=name)
    assert info.value.field == "name"


@pytest.mark.parametrize("clock", [object(), FakeClock])
def test_bad_clock_is_a_config_error_naming_clock(clock: Any) -> None:
    with pytest.raises(ConfigError) as info:
        Timeout(1.0, clock=clock)
    assert info.value.field == "clock"


def test_generator_function_cannot_be_decorated() -> None:
    def numbers() -> Iterator[int]:
        yield 1

    with pytest.raises(ConfigError) as info:
        Timeout(1.0)(numbers)
    assert info.value.field == "fn"


def test_describe_lists_kind_name_and_settings() -> None:
    assert Timeout(2.5, name="db", thread=False).describe() == {
        "strategy": "timeout",
        "name": "db",
        "seconds": 2.5,
        "thread": False,
        "grace": None,
    }
    assert Timeout(1).name == "timeout"
    assert TimeoutConfig(seconds=1).thread is True


def test_call_and_acall_refuse_the_other_kind_of_function() -> None:
    async def afn() -> None:
        pass

    def fn() -> None:
        pass

    timeout = Timeout(1.0)
    with pytest.raises(TypeError, match="acall"):
        timeout.call(afn)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="call"):
        asyncio.run(timeout.acall(fn))  # type: ignore[arg-type]


def test_async_work_is_cancelled_and_deadline_exceeded_raised() -> None:
    cancelled = threading.Event()
    timeout = Timeout(SHORT, name="api")

    @timeout
    async def hang() -> None:
        try:
            await asyncio.Event().wait()  # never finishes by itself
        except asyncio.CancelledError:
            cancelled.set()
            raise

    with pytest.raises(DeadlineExceeded) as info:
        asyncio.run(hang())
    assert cancelled.is_set()
    assert isinstance(info.value, TimeoutError)
    assert isinstance(info.value, Rejected)
    assert info.value.name == "api"


def test_async_call_that_raises_its_own_timeout_error_passes_through_unchanged() -> None:
    own = TimeoutError("the driver's own read timeout")

    async def read() -> None:
        raise own

    with pytest.raises(TimeoutError) as info:
        asyncio.run(Timeout(5.0).acall(read))
    assert info.value is own
    assert not isinstance(info.value, DeadlineExceeded)


def test_async_result_and_caller_exception_pass_through() -> None:
    async def ok(x: int) -> int:
        return x * 2

    async def bad() -> None:
        raise Boom

    timeout = Timeout(5.0)
    assert asyncio.run(timeout.acall(ok, 21)) == 42
    with pytest.raises(Boom):
        asyncio.run(timeout.acall(bad))


def test_outside_cancellation_is_not_turned_into_a_deadline() -> None:
    async def main() -> None:
        task = asyncio.create_task(Timeout(5.0).acall(asyncio.sleep, 10))
        await asyncio.sleep(0)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(main())


# -- sync: thread mode and cooperative mode -----------------------------------------


def test_sync_caller_stops_waiting_while_the_thread_runs_on() -> None:
    release, finished = threading.Event(), threading.Event()
    seen: list[float | None] = []

    @Timeout(SHORT, name="legacy")
    def blocking() -> str:
        seen.append(remaining())
        release.wait(5)
        seen.append(remaining())
        finished.set()
        return "too late"

    with pytest.raises(DeadlineExceeded, match="thread runs on") as info:
        blocking()
    assert info.value.name == "legacy"
    assert not finished.is_set()  # the caller got control back while the work still runs
    release.set()
    assert finished.wait(5)
    first, after = seen
    assert first is not None
    assert 0 <= first <= SHORT
    assert after == 0.0  # the deadline has passed, the thread sees it


def test_sync_thread_mode_returns_results_and_passes_exceptions_through() -> None:
    timeout = Timeout(5.0)
    assert timeout.call(lambda x: x + 1, 1) == 2
    own = TimeoutError("socket timeout")

    def fails() -> None:
        raise own

    with pytest.raises(TimeoutError) as info:
        timeout.call(fails)
    assert info.value is own


def test_cooperative_mode_runs_in_the_callers_thread_and_publishes_the_deadline(
    clock: FakeClock,
) -> None:
    timeout = Timeout(3.0, thread=False, clock=clock)

    def work() -> tuple[threading.Thread, float | None]:
        clock.advance(1.0)
        return threading.current_thread(), remaining()

    thread, left = timeout.call(work)
    assert thread is threading.current_thread()
    assert left == 2.0


@pytest.mark.parametrize("thread", [True, False], ids=["thread", "cooperative"])
def test_sync_result_later_than_the_deadline_by_the_clock_is_not_returned(
    clock: FakeClock, thread: bool
) -> None:
    timeout = Timeout(1.0, thread=thread, clock=clock)
    events = listen(timeout)

    def slow() -> str:
        clock.advance(2.0)
        return "late"

    with pytest.raises(DeadlineExceeded, match="too late"):
        timeout.call(slow)
    assert events == [
        TimedOut(name="timeout", strategy="timeout", at=2.0, timeout=1.0, elapsed=2.0)
    ]


def test_async_result_later_than_the_deadline_by_the_clock_is_not_returned(
    clock: FakeClock,
) -> None:
    async def slow() -> str:
        await clock.asleep(1.0)
        return "late"

    with pytest.raises(DeadlineExceeded):
        asyncio.run(Timeout(1.0, clock=clock).acall(slow))


# -- remaining() and nesting --------------------------------------------------------


def test_remaining_is_none_outside_any_timed_call() -> None:
    assert remaining() is None


def test_remaining_counts_down_on_the_injected_clock_and_never_goes_negative(
    clock: FakeClock,
) -> None:
    readings: list[float | None] = []

    @Timeout(10.0, thread=False, clock=clock)
    def work() -> None:
        readings.append(remaining())
        clock.advance(4.0)
        readings.append(remaining())
        clock.advance(100.0)
        readings.append(remaining())

    with pytest.raises(DeadlineExceeded):
        work()
    assert readings == [10.0, 6.0, 0.0]
    assert remaining() is None  # restored after the call, even when it raised


def test_nested_timeout_sees_the_shorter_outer_budget(clock: FakeClock) -> None:
    outer = Timeout(5.0, thread=False, clock=clock, name="outer")
    inner = Timeout(30.0, thread=False, clock=clock, name="inner")

    def work() -> float | None:
        return remaining()

    def around() -> tuple[float | None, float | None, float | None]:
        clock.advance(2.0)
        nested = inner.call(work)
        return remaining(), nested, Timeout(1.0, thread=False, clock=clock).call(work)

    assert outer.call(around) == (3.0, 3.0, 1.0)


def test_outer_deadline_that_is_shorter_wins_and_is_reported_by_the_outer() -> None:
    outer = Timeout(SHORT, name="outer")
    inner = Timeout(10.0, name="inner")
    outer_events, inner_events = listen(outer), listen(inner)

    async def hang() -> None:
        await asyncio.Event().wait()  # never finishes by itself

    async def around() -> None:
        await inner.acall(hang)

    with pytest.raises(DeadlineExceeded) as info:
        asyncio.run(outer.acall(around))
    assert info.value.name == "outer"
    assert inner_events == []
    assert len(outer_events) == 1
    assert isinstance(outer_events[0], TimedOut)
    assert outer_events[0].timeout == SHORT


def test_inner_deadline_that_is_shorter_is_its_own() -> None:
    outer, inner = Timeout(10.0, name="outer"), Timeout(SHORT, name="inner")
    outer_events, inner_events = listen(outer), listen(inner)

    async def around() -> None:
        await inner.acall(asyncio.sleep, 10)

    with pytest.raises(DeadlineExceeded) as info:
        asyncio.run(outer.acall(around))
    assert info.value.name == "inner"
    assert outer_events == []
    assert len(inner_events) == 1


def test_nested_call_with_no_time_left_does_not_run(clock: FakeClock) -> None:
    outer = Timeout(1.0, thread=False, clock=clock, name="outer")
    ran: list[bool] = []

    def around() -> None:
        clock.advance(1.0)
        Timeout(5.0, thread=False, clock=clock).call(lambda: ran.append(True))

    with pytest.raises(DeadlineExceeded, match="no time was left") as info:
        outer.call(around)
    assert ran == []
    assert info.value.name == "outer"


def test_sync_timeout_inside_an_async_one_runs_its_thread_on_the_outer_budget(
    clock: FakeClock,
) -> None:
    outer = Timeout(4.0, clock=clock)

    async def around() -> float | None:
        clock.advance(1.0)
        return Timeout(60.0, clock=clock).call(remaining)

    assert asyncio.run(outer.acall(around)) == 3.0


def test_tasks_see_their_own_deadline_and_children_inherit_it(clock: FakeClock) -> None:
    async def child() -> float | None:
        return remaining()

    async def parent(seconds: float) -> tuple[float | None, float | None]:
        await asyncio.sleep(0)  # let the other task set its own deadline meanwhile
        return remaining(), await asyncio.create_task(child())

    async def main() -> list[tuple[float | None, float | None]]:
        return list(
            await asyncio.gather(
                Timeout(2.0, clock=clock).acall(parent, 2.0),
                Timeout(7.0, clock=clock).acall(parent, 7.0),
            )
        )

    assert asyncio.run(main()) == [(2.0, 2.0), (7.0, 7.0)]


@given(
    st.lists(
        st.tuples(st.floats(0.5, 100.0), st.floats(0.0, 20.0)),
        min_size=1,
        max_size=6,
    )
)
def test_remaining_is_the_least_of_every_active_budget(levels: list[tuple[float, float]]) -> None:
    """Property: at each depth, remaining() is min over the enclosing timeouts of what
    each has left, or the call fails with the deadline that ran out first."""
    clock = FakeClock()

    def enter(depth: int, starts: list[tuple[float, float]]) -> None:
        seconds, spend = levels[depth]
        starts = [*starts, (clock.monotonic(), seconds)]
        now = clock.monotonic()
        expected = min(start + budget - now for start, budget in starts)
        assert remaining() == pytest.approx(max(0.0, expected))
        clock.advance(spend)
        if depth + 1 < len(levels):
            Timeout(levels[depth + 1][0], thread=False, clock=clock).call(enter, depth + 1, starts)

    with contextlib.suppress(DeadlineExceeded):
        Timeout(levels[0][0], thread=False, clock=clock).call(enter, 0, [])
    assert remaining() is None


# -- test mode and composition ------------------------------------------------------


def test_test_mode_caps_the_timeout() -> None:
    with set_testing(timeout=SHORT), pytest.raises(DeadlineExceeded):
        asyncio.run(Timeout(60.0).acall(asyncio.sleep, 10))


def test_listener_can_be_removed() -> None:
    timeout = Timeout(SHORT)
    events: list[Event] = []
    timeout.add_listener(events.append, TimedOut)
    timeout.remove_listener(events.append)
    with pytest.raises(DeadlineExceeded):
        asyncio.run(timeout.acall(asyncio.sleep, 10))
    assert events == []


def test_breaker_outside_a_timeout_counts_its_deadline_as_a_failure(clock: FakeClock) -> None:
    breaker = CircuitBreaker("api", failure_threshold=1, clock=clock)

    @breaker
    @Timeout(SHORT)
    async def hang() -> None:
        await asyncio.Event().wait()  # never finishes by itself

    with pytest.raises(DeadlineExceeded):
        asyncio.run(hang())
    assert breaker.snapshot().total_failures == 1


def test_timed_out_event_carries_the_limit_and_the_time_the_call_ran() -> None:
    timeout = Timeout(SHORT, name="api")
    events = listen(timeout)
    with pytest.raises(DeadlineExceeded):
        asyncio.run(timeout.acall(asyncio.sleep, 10))
    (event,) = events
    assert isinstance(event, TimedOut)
    assert (event.name, event.strategy, event.timeout) == ("api", "timeout", SHORT)
    assert event.elapsed > 0


# -- async: walking away from slow cancellation (grace) -------------------------------


class SlowToUnwind:
    """Work that hangs, and on cancellation holds on until ``release`` is set (psycopg
    waits up to 10 s to cancel a query on a dead server)."""

    def __init__(self) -> None:
        self.release, self.cancelled, self.unwound = (asyncio.Event() for _ in range(3))

    async def __call__(self) -> None:
        try:
            await asyncio.Event().wait()  # never finishes by itself
        except asyncio.CancelledError:
            self.cancelled.set()
            await self.release.wait()
            self.unwound.set()
            raise


def test_grace_zero_walks_away_while_the_cancelled_work_unwinds() -> None:
    from stalwart._timeout import _UNWINDING

    async def main() -> None:
        work = SlowToUnwind()
        timeout = Timeout(SHORT, grace=0.0, name="db")
        with pytest.raises(DeadlineExceeded) as info:
            await timeout.acall(work)
        assert info.value.name == "db"
        await asyncio.wait_for(work.cancelled.wait(), 5.0)
        assert not work.unwound.is_set()  # the caller did not wait for the clean-up
        assert len(_UNWINDING) == 1
        work.release.set()
        await asyncio.wait_for(work.unwound.wait(), 5.0)
        await asyncio.sleep(0)  # the done callback runs on the next loop step
        assert not _UNWINDING

    asyncio.run(main())


def test_without_grace_the_caller_waits_for_the_cancelled_work_to_unwind() -> None:
    async def main() -> None:
        work = SlowToUnwind()
        caller = asyncio.create_task(Timeout(SHORT).acall(work))
        await asyncio.wait_for(work.cancelled.wait(), 5.0)
        for _ in range(10):
            await asyncio.sleep(0)
        assert not caller.done()
        work.release.set()
        with pytest.raises(DeadlineExceeded):
            await caller
        assert work.unwound.is_set()

    asyncio.run(main())


def test_work_that_unwinds_within_the_grace_is_waited_for() -> None:
    async def main() -> None:
        work = SlowToUnwind()
        work.release.set()  # the clean-up is quick
        with pytest.raises(DeadlineExceeded) as info:
            await Timeout(SHORT, grace=5.0).acall(work)
        assert info.value.name == "timeout"
        assert work.unwound.is_set()

    asyncio.run(main())


def test_grace_passes_results_errors_and_the_deadline_through() -> None:
    timeout = Timeout(5.0, grace=0.0)

    async def ok(x: int) -> tuple[int, float | None]:
        return x * 2, remaining()

    async def bad() -> None:
        raise Boom

    doubled, left = asyncio.run(timeout.acall(ok, 21))
    assert doubled == 42
    assert left is not None  # the work's task sees the deadline
    assert 4.0 < left <= 5.0
    with pytest.raises(Boom):
        asyncio.run(timeout.acall(bad))


def test_cancelling_the_caller_cancels_work_it_walked_away_from_too() -> None:
    async def main() -> None:
        started, cancelled = asyncio.Event(), asyncio.Event()

        async def work() -> None:
            started.set()
            try:
                await asyncio.Event().wait()
            except asyncio.CancelledError:
                cancelled.set()
                raise

        caller = asyncio.create_task(Timeout(60.0, grace=0.0).acall(work))
        await started.wait()
        caller.cancel()
        with pytest.raises(asyncio.CancelledError):
            await caller
        await asyncio.wait_for(cancelled.wait(), 5.0)

    asyncio.run(main())


def test_an_error_raised_while_unwinding_in_the_background_is_not_left_unretrieved() -> None:
    import gc

    reported: list[dict[str, Any]] = []

    async def main() -> None:
        asyncio.get_running_loop().set_exception_handler(lambda _, ctx: reported.append(ctx))
        release = asyncio.Event()

        async def work() -> None:
            try:
                await asyncio.Event().wait()
            except asyncio.CancelledError:
                await release.wait()
                raise Boom from None

        with pytest.raises(DeadlineExceeded):
            await Timeout(SHORT, grace=0.0).acall(work)
        release.set()
        for _ in range(5):
            await asyncio.sleep(0)
        gc.collect()

    asyncio.run(main())
    assert reported == []


def test_grace_is_validated_and_described() -> None:
    with pytest.raises(ConfigError, match="grace"):
        Timeout(1.0, grace=-1.0)
    assert Timeout(1.0, grace=0.5).describe()["grace"] == 0.5
    assert Timeout(1.0).describe()["grace"] is None
