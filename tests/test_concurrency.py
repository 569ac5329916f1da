"""Threads and asyncio tasks hammering one breaker: exact counts, exact probe limits,
and no lock held while the user's function runs."""

from __future__ import annotations

import asyncio
import contextlib
import random
import threading
import time
from collections.abc import Callable, Iterator

import pytest

from stalwart import CircuitBreaker, CircuitOpenError, State
from stalwart.events import Event, StateTransition
from stalwart.testing import FakeClock
from threads import run_threads, switching_threads_often

THREADS = 8
CALLS = 4_000


class Boom(Exception):
    pass


@pytest.fixture(autouse=True)
def _switch_threads_often() -> Iterator[None]:
    with switching_threads_often():
        yield


@pytest.mark.parametrize("listening", [False, True], ids=["fast-path", "timed-path"])
def test_threads_hammering_keep_exact_counts(listening: bool) -> None:
    # A threshold no run of failures reaches: every call is admitted and counted.
    breaker = CircuitBreaker("q", failure_threshold=CALLS * THREADS)
    if listening:
        breaker.add_listener(lambda event: None)
    expected_failures = 0
    plans = []
    rng = random.Random(7)
    for _ in range(THREADS):
        plan = [rng.random() < 0.3 for _ in range(CALLS)]
        expected_failures += sum(plan)
        plans.append(plan)

    @breaker
    def work(fail: bool) -> None:
        if fail:
            raise Boom

    barrier = threading.Barrier(THREADS)

    def worker(i: int) -> None:
        barrier.wait()
        for fail in plans[i]:
            with contextlib.suppress(Boom):
                work(fail)

    run_threads(THREADS, worker)
    snap = breaker.snapshot()
    assert snap.total_calls == THREADS * CALLS
    assert snap.total_failures == expected_failures
    assert snap.total_successes == THREADS * CALLS - expected_failures
    assert snap.state is State.CLOSED


def test_concurrent_failures_open_the_breaker_exactly_once() -> None:
    clock = FakeClock()
    breaker = CircuitBreaker("q", failure_threshold=5, recovery_timeout=60, clock=clock)
    moves: list[Event] = []
    breaker.add_listener(moves.append, StateTransition)
    barrier = threading.Barrier(THREADS)

    def worker(i: int) -> None:
        barrier.wait()
        for _ in range(200):
            with contextlib.suppress(Boom, CircuitOpenError):
                breaker.call(_boom)

    run_threads(THREADS, worker)
    assert len(moves) == 1
    snap = breaker.snapshot()
    assert snap.total_failures + snap.total_rejections == THREADS * 200
    assert snap.total_failures >= 5


def _boom() -> None:
    raise Boom


def _threads_racing_for_probes(permitted: int, contenders: int) -> int:
    """Open a breaker, let it go half-open, and count the probes admitted to a crowd."""
    clock = FakeClock()
    breaker = CircuitBreaker(
        "q", failure_threshold=1, recovery_timeout=10, half_open_max_calls=permitted, clock=clock
    )
    with contextlib.suppress(Boom):
        breaker.call(_boom)
    clock.advance(10)
    all_tried = threading.Barrier(contenders)
    start = threading.Barrier(contenders)
    admitted: list[int] = []

    def contender(i: int) -> None:
        start.wait()
        try:
            with breaker:
                admitted.append(i)
                all_tried.wait()  # hold the probe until everyone has tried
        except CircuitOpenError:
            all_tried.wait()

    run_threads(contenders, contender)
    assert breaker.state is State.CLOSED  # the probes succeeded
    return len(admitted)


@pytest.mark.parametrize("permitted", [1, 3])
def test_exactly_n_half_open_probes_across_threads_over_many_trials(permitted: int) -> None:
    for trial in range(60):
        admitted = _threads_racing_for_probes(permitted, contenders=12)
        assert admitted == permitted, f"trial {trial}: {admitted} probes admitted"


@pytest.mark.parametrize("permitted", [1, 2])
def test_exactly_n_half_open_probes_across_asyncio_tasks(permitted: int) -> None:
    async def trial() -> int:
        clock = FakeClock()
        breaker = CircuitBreaker(
            "q",
            failure_threshold=1,
            recovery_timeout=10,
            half_open_max_calls=permitted,
            clock=clock,
        )
        with pytest.raises(Boom):
            await breaker.acall(_aboom)
        clock.advance(10)
        release = asyncio.Event()
        admitted = 0

        async def contender() -> None:
            nonlocal admitted
            try:
                async with breaker:
                    admitted += 1
                    await release.wait()
            except CircuitOpenError:
                pass

        tasks = [asyncio.create_task(contender()) for _ in range(50)]
        for _ in range(5):
            await asyncio.sleep(0)  # let every task reach the breaker
        release.set()
        await asyncio.gather(*tasks)
        assert breaker.state is State.CLOSED
        return admitted

    async def main() -> None:
        for _ in range(40):
            assert await trial() == permitted

    asyncio.run(main())


async def _aboom() -> None:
    raise Boom


def test_tasks_in_several_event_loops_share_one_breaker_exactly() -> None:
    breaker = CircuitBreaker("q", failure_threshold=10**9)

    @breaker
    async def work(fail: bool) -> None:
        await asyncio.sleep(0)
        if fail:
            raise Boom

    def loop_thread(i: int) -> None:
        async def main() -> None:
            results = await asyncio.gather(
                *(work(n % 4 == 0) for n in range(500)), return_exceptions=True
            )
            assert sum(isinstance(r, Boom) for r in results) == 125

        asyncio.run(main())

    run_threads(4, loop_thread)
    snap = breaker.snapshot()
    assert (snap.total_calls, snap.total_failures) == (2000, 500)


@pytest.mark.parametrize("mode", ["fast-path", "timed-path", "half-open"])
def test_four_threads_inside_the_protected_call_at_once(mode: str) -> None:
    # If any lock were held across the call, the barrier inside it could never fill.
    clock = FakeClock()
    breaker = CircuitBreaker(
        "q", failure_threshold=1, recovery_timeout=1, half_open_max_calls=4, clock=clock
    )
    if mode == "timed-path":
        breaker.add_listener(lambda event: None)
    if mode == "half-open":
        with contextlib.suppress(Boom):
            breaker.call(_boom)
        clock.advance(1)
        assert breaker.state is State.HALF_OPEN
    inside = threading.Barrier(4, timeout=10)

    @breaker
    def meet() -> None:
        inside.wait()

    run_threads(4, lambda i: meet())
    assert breaker.snapshot().total_successes == 4


@pytest.mark.parametrize("permitted", [1, 2])
def test_probes_taken_and_released_in_a_tight_loop_never_exceed_the_limit(permitted: int) -> None:
    # The breaker stays half-open (success_threshold out of reach) while threads keep
    # taking and returning probe slots; the test tracks how many are ever inside at once.
    clock = FakeClock()
    breaker = CircuitBreaker(
        "q",
        failure_threshold=1,
        recovery_timeout=1,
        half_open_max_calls=permitted,
        success_threshold=10**9,
        clock=clock,
    )
    with pytest.raises(Boom):
        breaker.call(_boom)
    clock.advance(1)
    count_lock = threading.Lock()
    inflight = peak = admitted = 0

    def worker(i: int) -> None:
        nonlocal inflight, peak, admitted
        for _ in range(5_000):
            try:
                with breaker:
                    with count_lock:
                        inflight += 1
                        admitted += 1
                        peak = max(peak, inflight)
                    time.sleep(0)  # let the others at the breaker while this probe is out
                    with count_lock:
                        inflight -= 1
            except CircuitOpenError:
                pass

    run_threads(THREADS, worker)
    assert 1 <= peak <= permitted
    assert admitted > 0
    assert breaker.snapshot().half_open_in_flight == 0
    assert breaker.state is State.HALF_OPEN


def test_the_runtime_never_lets_two_threads_into_the_core_at_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The core is plain bookkeeping, atomic under the GIL only by accident; the lock is
    # what makes it safe. A core that yields inside every method exposes any call made
    # without the lock as an overlap.
    from stalwart import _breaker

    overlaps = 0
    depth: dict[int, int] = {}  # thread -> nesting depth inside the core
    guard = threading.Lock()

    def yielding(method: Callable[..., object]) -> Callable[..., object]:
        def wrapper(*args: object, **kwargs: object) -> object:
            nonlocal overlaps
            me = threading.get_ident()
            with guard:
                overlaps += any(n for t, n in depth.items() if t != me)
                depth[me] = depth.get(me, 0) + 1
            time.sleep(0)
            try:
                return method(*args, **kwargs)
            finally:
                with guard:
                    depth[me] -= 1

        return wrapper

    class YieldingCore(_breaker.BreakerCore):
        pass

    for name in ("acquire", "poll", "retry_in", "rates", "on_success", "on_failure", "on_ignored"):
        setattr(YieldingCore, name, yielding(getattr(_breaker.BreakerCore, name)))
    monkeypatch.setattr(_breaker, "BreakerCore", YieldingCore)

    clock = FakeClock()
    breaker = CircuitBreaker(
        "q", failure_rate=0.5, window=20, minimum_calls=20, recovery_timeout=1, clock=clock
    )
    rng = random.Random(3)

    def worker(i: int) -> None:
        for n in range(300):
            with contextlib.suppress(Boom, CircuitOpenError):
                breaker.call(_boom if rng.random() < 0.4 else (lambda: None))
            if n % 50 == 0:
                clock.advance(1)
                breaker.snapshot()

    run_threads(THREADS, worker)
    assert breaker.snapshot().transitions > 0  # the scenario did move the state machine
    assert overlaps == 0
