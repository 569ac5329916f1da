"""Every calling form, sync and async, runs the same protocol."""

from __future__ import annotations

import asyncio
import contextvars
import inspect
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest

from stalwart import CircuitBreaker, CircuitOpenError, ConfigError, DeadlineExceeded, State, Timeout
from stalwart.events import CallRejected
from stalwart.testing import FakeClock


class Boom(Exception):
    pass


def test_decorator_keeps_name_doc_and_signature(clock: FakeClock) -> None:
    breaker = CircuitBreaker("q", clock=clock)

    @breaker
    def fetch(url: str, *, timeout: float = 3.0) -> str:
        """Fetch it."""
        return url

    @breaker
    async def afetch(url: str, retries: int = 1) -> str:
        return url

    assert fetch.__name__ == "fetch"
    assert fetch.__doc__ == "Fetch it."
    assert str(inspect.signature(fetch)) == "(url: 'str', *, timeout: 'float' = 3.0) -> 'str'"
    assert inspect.iscoroutinefunction(afetch)
    assert str(inspect.signature(afetch)) == "(url: 'str', retries: 'int' = 1) -> 'str'"
    assert fetch("a", timeout=1) == "a"
    assert asyncio.run(afetch("b")) == "b"


@pytest.mark.parametrize("listening", [False, True], ids=["fast-path", "timed-path"])
def test_sync_decorator_counts_and_opens(clock: FakeClock, listening: bool) -> None:
    breaker = CircuitBreaker("q", failure_threshold=2, clock=clock)
    if listening:
        breaker.add_listener(lambda event: None)  # per-call events: the timed path

    @breaker
    def work(fail: bool) -> int:
        if fail:
            raise Boom
        return 1

    assert work(False) == 1
    with pytest.raises(Boom):
        work(True)
    assert work(False) == 1  # resets the consecutive count
    for _ in range(2):
        with pytest.raises(Boom):
            work(True)
    with pytest.raises(CircuitOpenError):
        work(False)
    snap = breaker.snapshot()
    assert (snap.total_successes, snap.total_failures, snap.total_rejections) == (2, 3, 1)


@pytest.mark.parametrize("listening", [False, True], ids=["fast-path", "timed-path"])
def test_async_decorator_counts_failures_of_async_def(clock: FakeClock, listening: bool) -> None:
    # pybreaker's decorator never counts an async def failure; this is the regression test.
    breaker = CircuitBreaker("q", failure_threshold=2, clock=clock)
    if listening:
        breaker.add_listener(lambda event: None)

    @breaker
    async def work(fail: bool) -> int:
        await asyncio.sleep(0)
        if fail:
            raise Boom
        return 1

    async def main() -> None:
        assert await work(False) == 1
        for _ in range(2):
            with pytest.raises(Boom):
                await work(True)
        with pytest.raises(CircuitOpenError):
            await work(False)

    asyncio.run(main())
    assert breaker.state is State.OPEN
    assert breaker.snapshot().total_failures == 2


def test_call_and_acall_pass_arguments_and_results(clock: FakeClock) -> None:
    breaker = CircuitBreaker("q", clock=clock)

    async def add(a: int, b: int = 0) -> int:
        return a + b

    assert breaker.call(divmod, 7, 2) == (3, 1)
    assert asyncio.run(breaker.acall(add, 1, b=2)) == 3


def test_call_refuses_an_async_function(clock: FakeClock) -> None:
    breaker = CircuitBreaker("q", clock=clock)

    async def work() -> None:
        pass

    with pytest.raises(TypeError, match="acall"):
        breaker.call(work)  # type: ignore[arg-type, unused-coroutine]


def test_decorating_a_generator_function_is_refused(clock: FakeClock) -> None:
    breaker = CircuitBreaker("q", clock=clock)

    def rows() -> object:
        yield 1

    async def arows() -> object:
        yield 1

    for fn in (rows, arows):
        with pytest.raises(ConfigError, match="generator"):
            breaker(fn)


def test_with_block_checks_the_state_and_records_the_outcome(clock: FakeClock) -> None:
    # circuitbreaker's `with` ignores an open circuit and lets a success close it.
    breaker = CircuitBreaker("q", failure_threshold=1, clock=clock)
    with pytest.raises(Boom), breaker:
        raise Boom
    ran = []
    with pytest.raises(CircuitOpenError), breaker:
        ran.append(1)
    assert ran == []
    assert breaker.state is State.OPEN


def test_async_with_block(clock: FakeClock) -> None:
    breaker = CircuitBreaker("q", failure_threshold=1, recovery_timeout=5, clock=clock)

    async def main() -> None:
        with pytest.raises(Boom):
            async with breaker:
                raise Boom
        with pytest.raises(CircuitOpenError):
            async with breaker:
                pass
        clock.advance(5)
        async with breaker:
            await asyncio.sleep(0)

    asyncio.run(main())
    assert breaker.state is State.CLOSED


def test_nested_blocks_and_tasks_each_settle_their_own_ticket(clock: FakeClock) -> None:
    breaker = CircuitBreaker("q", failure_threshold=2, clock=clock)

    async def one(fail: bool) -> None:
        async with breaker:
            await asyncio.sleep(0)
            if fail:
                raise Boom

    async def main() -> None:
        results = await asyncio.gather(one(False), one(True), one(False), return_exceptions=True)
        assert [type(r) for r in results] == [type(None), Boom, type(None)]

    asyncio.run(main())
    with breaker, breaker:
        pass
    snap = breaker.snapshot()
    assert (snap.total_successes, snap.total_failures) == (4, 1)


def test_exit_without_enter_is_an_error(clock: FakeClock) -> None:
    breaker = CircuitBreaker("q", clock=clock)
    with pytest.raises(RuntimeError, match="not entered"):
        breaker.__exit__(None, None, None)


# -- call_timeout --------------------------------------------------------------------


def test_async_call_timeout_cancels_the_call_and_counts_a_failure() -> None:
    breaker = CircuitBreaker("q", failure_threshold=1, call_timeout=0.05)
    cancelled = []

    @breaker
    async def hang() -> None:
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            cancelled.append(True)
            raise

    async def main() -> None:
        with pytest.raises(DeadlineExceeded) as info:
            await hang()
        assert isinstance(info.value, TimeoutError)

    asyncio.run(main())
    assert cancelled == [True]
    assert breaker.state is State.OPEN


def test_async_call_timeout_is_not_confused_with_the_calls_own_timeout_error() -> None:
    breaker = CircuitBreaker("q", failure_threshold=5, call_timeout=5)

    async def own() -> None:
        raise TimeoutError("from the driver below")

    async def main() -> None:
        with pytest.raises(TimeoutError, match="driver below") as info:
            await breaker.acall(own)
        assert not isinstance(info.value, DeadlineExceeded)

    asyncio.run(main())


def test_async_with_call_timeout_cancels_the_block() -> None:
    breaker = CircuitBreaker("q", failure_threshold=1, call_timeout=0.05)

    async def main() -> None:
        with pytest.raises(DeadlineExceeded):
            async with breaker:
                await asyncio.Event().wait()

    asyncio.run(main())
    assert breaker.state is State.OPEN


def test_sync_call_timeout_stops_waiting_while_the_thread_runs_on() -> None:
    breaker = CircuitBreaker("q", failure_threshold=1, call_timeout=0.05)
    release = threading.Event()
    finished = threading.Event()
    request = contextvars.ContextVar("request", default="none")
    seen: list[str] = []

    @breaker
    def hang() -> str:
        seen.append(request.get())
        release.wait(10)
        finished.set()
        return "late"

    request.set("r-1")
    started = time.monotonic()
    with pytest.raises(DeadlineExceeded, match="thread runs on"):
        hang()
    assert time.monotonic() - started < 5
    assert breaker.state is State.OPEN
    assert not finished.is_set()  # still running: threads cannot be killed
    release.set()
    assert finished.wait(5)
    assert seen == ["r-1"]  # the worker thread saw the caller's context


def test_sync_call_timeout_returns_results_and_raises_errors_of_quick_calls() -> None:
    breaker = CircuitBreaker("q", failure_threshold=3, call_timeout=5)
    assert breaker.call(lambda: 42) == 42
    with pytest.raises(Boom):
        breaker.call(_boom)
    assert breaker.snapshot().total_failures == 1


def _boom() -> None:
    raise Boom


def test_sync_block_overrunning_call_timeout_counts_as_failure(clock: FakeClock) -> None:
    breaker = CircuitBreaker("q", failure_threshold=1, call_timeout=1, clock=clock)
    with breaker:
        clock.advance(2)  # cannot be interrupted, but is recorded
    assert breaker.state is State.OPEN


def test_only_the_guards_own_deadline_bypasses_classification() -> None:
    # An inner guard's DeadlineExceeded is the caller's exception to this breaker: it is
    # classified (here: ignored) on every path, with or without a call_timeout.
    def inner() -> None:
        raise DeadlineExceeded("inner", None)

    for timeout in (None, 5.0):
        breaker = CircuitBreaker(
            "q", failure_threshold=1, ignore=TimeoutError, call_timeout=timeout
        )
        with pytest.raises(DeadlineExceeded):
            breaker(inner)()
        with pytest.raises(DeadlineExceeded):
            breaker.call(inner)
        assert breaker.state is State.CLOSED
        assert breaker.snapshot().total_ignored == 2


def test_an_overrun_on_the_guards_clock_counts_on_every_path(clock: FakeClock) -> None:
    # On a FakeClock nothing real times out; the measured overrun is judged alike by
    # call(), the decorator, `with` and acall: the value comes back, a failure is counted.
    breaker = CircuitBreaker("q", failure_threshold=10, call_timeout=1, clock=clock)

    def slow() -> str:
        clock.advance(5)
        return "late"

    async def aslow() -> str:
        clock.advance(5)
        return "late"

    assert breaker.call(slow) == "late"
    assert breaker(slow)() == "late"
    with breaker:
        clock.advance(5)
    assert asyncio.run(breaker.acall(aslow)) == "late"
    assert breaker.snapshot().total_failures == 4


def test_acall_refuses_a_plain_function_without_counting_it(clock: FakeClock) -> None:
    breaker = CircuitBreaker("q", failure_threshold=1, clock=clock)
    with pytest.raises(TypeError, match="not async"):
        asyncio.run(breaker.acall(lambda: "hi"))  # type: ignore[arg-type, return-value]
    assert breaker.snapshot().total_calls == 0


def test_an_object_with_async_call_gets_the_async_wrapper(clock: FakeClock) -> None:
    breaker = CircuitBreaker("q", failure_threshold=2, clock=clock)

    class Client:
        async def __call__(self) -> None:
            raise Boom

    guarded = breaker(Client())
    assert inspect.iscoroutinefunction(guarded)
    for _ in range(2):
        with pytest.raises(Boom):
            asyncio.run(guarded())
    assert breaker.state is State.OPEN


def test_a_with_block_is_not_judged_by_failure_if(clock: FakeClock) -> None:
    judged: list[object] = []

    def judge(value: object) -> bool:
        judged.append(value)
        return True

    breaker = CircuitBreaker("q", failure_threshold=1, failure_if=judge, clock=clock)
    with breaker:
        pass
    assert judged == []
    assert breaker.state is State.CLOSED
    breaker.call(lambda: "value")
    assert judged == ["value"]
    assert breaker.state is State.OPEN


class RateLimited(Exception):
    def __init__(self, retry_after: float) -> None:
        super().__init__("429")
        self.retry_after = retry_after


@pytest.mark.parametrize("form", ["sync", "async"])
def test_the_decorator_rejects_an_open_breaker_with_the_right_retry_in(
    clock: FakeClock, form: str
) -> None:
    breaker = CircuitBreaker("q", failure_threshold=1, recovery_timeout=10, clock=clock)
    seen: list[CallRejected] = []
    breaker.add_listener(seen.append, CallRejected)

    def ok() -> str:
        return "ok"

    async def aok() -> str:
        return "ok"

    def call_once() -> str:
        return breaker(ok)() if form == "sync" else asyncio.run(breaker(aok)())

    def attempt() -> float | None:
        with pytest.raises(CircuitOpenError) as info:
            call_once()
        return info.value.retry_in

    breaker.__enter__()  # a call admitted while closed, still running
    with pytest.raises(Boom):
        breaker.call(_boom)  # opens for 10 s
    clock.advance(4)
    assert attempt() == pytest.approx(6)
    # The old call now fails with a server hint: the open period stretches to 60 s from
    # now, without a transition, and the decorator's quick path must see it.
    breaker.__exit__(RateLimited, RateLimited(60), None)
    assert attempt() == pytest.approx(60)
    breaker.force_open()
    assert attempt() is None
    breaker.reset()
    assert call_once() == "ok"
    assert [e.retry_in for e in seen] == [pytest.approx(6), pytest.approx(60), None]
    assert breaker.snapshot().total_rejections == 3


def _ok() -> str:
    return "ok"


async def _aok() -> str:
    return "ok"


def _run_form(wrapped: Callable[[], Any], form: str) -> Any:
    result = wrapped()
    return asyncio.run(result) if form == "async" else result


@pytest.mark.parametrize("form", ["sync", "async"])
def test_the_inline_refusal_matches_acquire_with_and_without_a_listener(
    clock: FakeClock, form: str
) -> None:
    """Unheard rejections of a plainly open breaker are refused inline by the decorator;
    a rejection listener (or forced open) sends them through _acquire: same answers."""
    answers: dict[bool, list[float | None]] = {}
    for listening in (False, True):
        breaker = CircuitBreaker("q", failure_threshold=1, recovery_timeout=10, clock=clock)
        seen: list[CallRejected] = []

        wrapped = breaker(_ok) if form == "sync" else breaker(_aok)

        def attempt(wrapped: Callable[[], Any] = wrapped) -> float | None:
            with pytest.raises(CircuitOpenError) as info:
                _run_form(wrapped, form)
            return info.value.retry_in

        with pytest.raises(Boom):
            breaker.call(_boom)
        assert breaker._refusing is True
        if listening:
            breaker.add_listener(seen.append, CallRejected)
            assert breaker._refusing is False  # heard: _acquire refuses
        clock.advance(4)
        got = [attempt()]
        breaker.force_open()
        got.append(attempt())
        assert breaker.snapshot().total_rejections == 2
        assert [e.retry_in for e in seen] == (got if listening else [])
        answers[listening] = got
        clock.advance(100)
    assert answers[False] == answers[True] == [pytest.approx(6), None]


# -- the deadline wheel behind async call_timeout and Timeout ---------------------------


def test_someone_elses_cancellation_is_not_turned_into_a_deadline() -> None:
    async def main() -> None:
        started = asyncio.Event()

        @Timeout(60.0)
        async def hang() -> None:
            started.set()
            await asyncio.Event().wait()

        task = asyncio.create_task(hang())
        await started.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(main())


def test_many_timed_calls_share_a_few_loop_timers_and_leave_nothing_behind() -> None:
    from stalwart._wheel import wheel_for

    @Timeout(30.0)
    async def quick() -> int:
        await asyncio.sleep(0)
        return 1

    async def main() -> None:
        loop = asyncio.get_running_loop()
        results = await asyncio.gather(*(quick() for _ in range(500)))
        assert sum(results) == 500
        wheel = wheel_for(loop)
        assert len(wheel.slots) <= 3  # slots of 5 ms: 500 calls, a timer or two in all
        assert all(not slot.tasks for slot in wheel.slots.values())  # finished calls unwatched

    asyncio.run(main())


def test_a_call_that_swallows_our_cancellation_still_misses_its_deadline() -> None:
    @Timeout(0.01)
    async def stubborn() -> str:
        try:
            await asyncio.Event().wait()  # only our cancellation ends it
        except asyncio.CancelledError:
            return "finished anyway"
        return "in time"

    async def main() -> None:
        with pytest.raises(DeadlineExceeded):
            await stubborn()  # its result came after the deadline: not returned
        task = asyncio.current_task()
        assert task is not None
        assert task.cancelling() == 0  # our cancellation was taken back

    asyncio.run(main())


def test_the_running_task_is_found_in_every_loop_and_thread() -> None:
    """The wheel's shortcuts (the loop seen last, CPython's task map) find the same task
    as asyncio.current_task, whichever loop runs, in whichever thread."""
    seen: list[bool] = []

    @Timeout(0.01)
    async def hang() -> None:
        await asyncio.Event().wait()

    async def main() -> None:
        with pytest.raises(DeadlineExceeded):
            await hang()
        child = asyncio.create_task(hang())  # the deadline must cancel the child, not us
        with pytest.raises(DeadlineExceeded):
            await child
        task = asyncio.current_task()
        assert task is not None
        assert task.cancelling() == 0
        seen.append(True)

    for _ in range(3):  # a new loop each time: the cached one is stale
        asyncio.run(main())
    threads = [threading.Thread(target=asyncio.run, args=(main(),)) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert seen == [True] * 7


# -- the worker threads behind sync deadlines ------------------------------------------


def test_sync_deadline_threads_are_reused_while_idle() -> None:
    from stalwart._drivers import run_with_deadline

    breaker = CircuitBreaker("reuse", call_timeout=5.0)
    names: set[int] = set()

    def who() -> None:
        names.add(threading.get_ident())

    for _ in range(50):
        run_with_deadline(breaker, who, (), {}, 5.0)
    assert len(names) <= 2  # one thread, maybe one more left from an earlier test


def test_a_hung_sync_call_keeps_its_thread_and_later_calls_get_another() -> None:
    from stalwart._drivers import run_with_deadline

    breaker = CircuitBreaker("hung", call_timeout=5.0)
    release = threading.Event()
    try:
        with pytest.raises(DeadlineExceeded):
            run_with_deadline(breaker, release.wait, (), {}, 0.02)
        # The hung call still holds its thread; the next call must not queue behind it.
        assert run_with_deadline(breaker, lambda: "next", (), {}, 5.0) == "next"
    finally:
        release.set()


def test_an_idle_sync_deadline_thread_retires(monkeypatch: pytest.MonkeyPatch) -> None:
    from stalwart import _drivers

    workers = _drivers._Workers()
    monkeypatch.setattr(workers, "KEEP_ALIVE", 0.01)
    job = _drivers._Job("retire", lambda: threading.current_thread(), (), {}, None)
    job.context = contextvars.copy_context()
    workers.run(job)
    assert job.done.acquire(timeout=5)
    thread = job.result
    thread.join(5)  # it waited KEEP_ALIVE for another job, then exited
    assert not thread.is_alive()
    assert workers._idle == []


def test_a_sync_deadline_call_sees_the_callers_context_and_its_owners_name() -> None:
    from stalwart._drivers import run_with_deadline

    var: contextvars.ContextVar[str] = contextvars.ContextVar("var", default="unset")
    var.set("caller's")
    breaker = CircuitBreaker("named", call_timeout=5.0)

    def look() -> tuple[str, str]:
        return var.get(), threading.current_thread().name

    assert run_with_deadline(breaker, look, (), {}, 5.0) == ("caller's", "stalwart:named")
