"""Bulkhead: the limit holds for threads, tasks and both at once; waiters enter first come,
first served; a waiter that gives up never takes a slot with it."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import random
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from stalwart import BulkheadFullError, ConfigError
from stalwart._bulkhead import Bulkhead, BulkheadCore, BulkheadEntered
from stalwart.events import CallRejected, Event
from stalwart.testing import FakeClock, set_testing
from threads import run_threads, switching_threads_often

WAIT = 10.0  # seconds a test may wait for something that should happen at once


@pytest.fixture(autouse=True)
def _switch_threads_often() -> Iterator[None]:
    with switching_threads_often():
        yield


class Gauge:
    """Counts the calls inside the protected function, and the most seen at once."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.inside = 0
        self.most = 0
        self.calls = 0

    def enter(self) -> None:
        with self._lock:
            self.inside += 1
            self.calls += 1
            self.most = max(self.most, self.inside)

    def leave(self) -> None:
        with self._lock:
            self.inside -= 1


def wait_until(condition: Callable[[], bool]) -> None:
    deadline = time.monotonic() + WAIT
    while not condition():
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.0005)


async def await_until(condition: Callable[[], bool]) -> None:
    deadline = time.monotonic() + WAIT
    while not condition():
        assert time.monotonic() < deadline, "condition not reached"
        await asyncio.sleep(0.0005)


def assert_drained(bulkhead: Bulkhead) -> None:
    """Nothing held, nobody waiting, and every slot can be taken again at once."""
    assert (bulkhead.in_flight, bulkhead.queued) == (0, 0)
    with contextlib.ExitStack() as stack:
        for _ in range(bulkhead.config.max_concurrent):
            stack.enter_context(bulkhead)
        assert bulkhead.in_flight == bulkhead.config.max_concurrent
    assert bulkhead.in_flight == 0


# -- configuration --------------------------------------------------------------------


@pytest.mark.parametrize("value", [0, -1, 1.5, True, "2", None])
def test_bad_max_concurrent_is_a_config_error_naming_it(value: Any) -> None:
    with pytest.raises(ConfigError) as info:
        Bulkhead(value)
    assert info.value.field == "max_concurrent"


@pytest.mark.parametrize("value", [-1, 1.0, None, False])
def test_bad_max_queue_is_a_config_error_naming_it(value: Any) -> None:
    with pytest.raises(ConfigError) as info:
        Bulkhead(1, max_queue=value)
    assert info.value.field == "max_queue"


@pytest.mark.parametrize("value", [0, -1.0, float("nan"), float("inf"), "1"])
def test_bad_max_wait_is_a_config_error_naming_it(value: Any) -> None:
    with pytest.raises(ConfigError) as info:
        Bulkhead(1, max_queue=1, max_wait=value)
    assert info.value.field == "max_wait"


def test_max_wait_without_a_queue_is_a_config_error_naming_max_wait() -> None:
    with pytest.raises(ConfigError) as info:
        Bulkhead(1, max_wait=1.0)
    assert info.value.field == "max_wait"


def test_bad_name_and_clock_are_config_errors_naming_them() -> None:
    with pytest.raises(ConfigError) as info:
        Bulkhead(1, name="")
    assert info.value.field == "name"
    with pytest.raises(ConfigError) as info:
        Bulkhead(1, clock=FakeClock)  # type: ignore[arg-type]
    assert info.value.field == "clock"


def test_generator_function_cannot_be_decorated() -> None:
    def numbers() -> Iterator[int]:
        yield 1

    with pytest.raises(ConfigError) as info:
        Bulkhead(1)(numbers)
    assert info.value.field == "fn"


def test_describe_and_snapshot_show_settings_and_gauges() -> None:
    bulkhead = Bulkhead(3, max_queue=2, max_wait=0.5, name="db")
    assert bulkhead.describe() == {
        "strategy": "bulkhead",
        "name": "db",
        "max_concurrent": 3,
        "max_queue": 2,
        "max_wait": 0.5,
    }
    with bulkhead:
        assert bulkhead.snapshot() == {
            "name": "db",
            "max_concurrent": 3,
            "max_queue": 2,
            "max_wait": 0.5,
            "in_flight": 1,
            "queued": 0,
            "free": 2,
            "total_rejected": 0,
        }
    assert Bulkhead(1).name == "bulkhead"


def test_call_and_acall_refuse_the_other_kind_of_function() -> None:
    async def afn() -> None:
        pass

    bulkhead = Bulkhead(1)
    with pytest.raises(TypeError, match="acall"):
        bulkhead.call(afn)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="call"):
        asyncio.run(bulkhead.acall(lambda: 1))  # type: ignore[arg-type]
    assert bulkhead.in_flight == 0


def test_full_bulkhead_without_queue_refuses_at_once_and_reports_it() -> None:
    bulkhead = Bulkhead(1, name="pool")
    events: list[Event] = []
    bulkhead.add_listener(events.append, CallRejected)
    with bulkhead, pytest.raises(BulkheadFullError) as info:
        bulkhead.call(lambda: None)
    assert info.value.name == "pool"
    assert info.value.retry_in is None
    assert "1 calls in flight" in info.value.detail
    (event,) = events
    assert isinstance(event, CallRejected)
    assert (event.name, event.strategy) == ("pool", "bulkhead")
    assert bulkhead.snapshot()["total_rejected"] == 1
    assert_drained(bulkhead)


def test_callers_beyond_the_queue_are_refused_at_once() -> None:
    bulkhead = Bulkhead(1, max_queue=1)

    async def main() -> None:
        async with bulkhead:
            waiter = asyncio.create_task(bulkhead.acall(asyncio.sleep, 0))
            await await_until(lambda: bulkhead.queued == 1)
            with pytest.raises(BulkheadFullError, match="1 waiting"):
                await bulkhead.acall(asyncio.sleep, 0)
        await waiter

    asyncio.run(main())
    assert_drained(bulkhead)


def test_caller_exception_passes_through_and_frees_the_slot() -> None:
    bulkhead = Bulkhead(1)

    def fails() -> None:
        raise KeyError("own")

    with pytest.raises(KeyError):
        bulkhead.call(fails)
    assert_drained(bulkhead)


def test_protected_function_runs_without_the_bulkhead_lock_held() -> None:
    bulkhead = Bulkhead(2)
    # snapshot() takes the lock: it would deadlock here if the call held it.
    assert bulkhead.call(bulkhead.snapshot)["in_flight"] == 1


# -- the limit holds ----------------------------------------------------------------


def test_limit_holds_for_fifty_threads() -> None:
    bulkhead, gauge = Bulkhead(5, max_queue=50), Gauge()

    @bulkhead
    def work() -> None:
        gauge.enter()
        time.sleep(0.0002)
        gauge.leave()

    def caller(i: int) -> None:
        for _ in range(20):
            work()

    run_threads(50, caller)
    assert gauge.calls == 50 * 20
    assert gauge.most <= 5
    assert_drained(bulkhead)


def test_limit_holds_for_five_hundred_tasks() -> None:
    bulkhead, gauge = Bulkhead(7, max_queue=500), Gauge()

    @bulkhead
    async def work() -> None:
        gauge.enter()
        await asyncio.sleep(0.0005 * random.random())
        gauge.leave()

    async def main() -> None:
        await asyncio.gather(*(work() for _ in range(500)))

    asyncio.run(main())
    assert gauge.calls == 500
    assert gauge.most == 7  # the limit is reached and never passed
    assert_drained(bulkhead)


def test_limit_holds_for_threads_and_tasks_of_several_loops_at_once() -> None:
    bulkhead, gauge = Bulkhead(4, max_queue=6 * 60 + 6), Gauge()

    @bulkhead
    def sync_work() -> None:
        gauge.enter()
        time.sleep(0.0002)
        gauge.leave()

    @bulkhead
    async def async_work() -> None:
        gauge.enter()
        await asyncio.sleep(0.0002)
        gauge.leave()

    async def loop_main() -> None:
        await asyncio.gather(*(async_work() for _ in range(60)))

    def worker(i: int) -> None:
        if i % 2:
            asyncio.run(loop_main())  # each of these threads runs its own event loop
        else:
            for _ in range(30):
                sync_work()

    run_threads(12, worker)
    assert gauge.calls == 6 * 60 + 6 * 30
    assert gauge.most <= 4
    assert_drained(bulkhead)


# -- first come, first served --------------------------------------------------------


def test_waiting_threads_enter_in_the_order_they_queued() -> None:
    bulkhead = Bulkhead(1, max_queue=10)
    order: list[int] = []
    threads = []
    with bulkhead:
        for i in range(8):
            t = threading.Thread(target=bulkhead.call, args=(order.append, i))
            t.start()
            threads.append(t)
            wait_until(lambda i=i: bulkhead.queued == i + 1)  # type: ignore[misc]
    for t in threads:
        t.join(WAIT)
    assert order == list(range(8))
    assert_drained(bulkhead)


def test_waiting_tasks_enter_in_the_order_they_queued() -> None:
    bulkhead = Bulkhead(1, max_queue=10)
    order: list[int] = []

    async def record(i: int) -> None:
        order.append(i)
        await asyncio.sleep(0)

    async def main() -> None:
        tasks = []
        async with bulkhead:
            for i in range(8):
                tasks.append(asyncio.create_task(bulkhead.acall(record, i)))
                await await_until(lambda i=i: bulkhead.queued == i + 1)  # type: ignore[misc]
        await asyncio.gather(*tasks)

    asyncio.run(main())
    assert order == list(range(8))
    assert_drained(bulkhead)


def test_freed_slot_goes_to_the_waiter_not_to_a_newcomer() -> None:
    bulkhead = Bulkhead(1, max_queue=1)

    async def main() -> None:
        entered: list[str] = []

        async def mark(who: str) -> None:
            entered.append(who)

        async with bulkhead:
            waiter = asyncio.create_task(bulkhead.acall(mark, "waiter"))
            await await_until(lambda: bulkhead.queued == 1)
        # The slot is the waiter's now, though it has not run yet: a newcomer queues.
        assert (bulkhead.in_flight, bulkhead.queued) == (1, 0)
        await bulkhead.acall(mark, "newcomer")
        await waiter
        assert entered == ["waiter", "newcomer"]

    asyncio.run(main())
    assert_drained(bulkhead)


# -- waiting: max_wait, timeouts, cancellation -----------------------------------------


def test_thread_waits_at_most_max_wait_then_is_refused() -> None:
    bulkhead = Bulkhead(1, max_queue=1, max_wait=0.02)
    with bulkhead:
        started = time.monotonic()
        with pytest.raises(BulkheadFullError, match=r"within 0\.02 s"):
            bulkhead.call(lambda: None)
        assert time.monotonic() - started >= 0.02
        assert bulkhead.queued == 0
    assert bulkhead.snapshot()["total_rejected"] == 1
    assert_drained(bulkhead)


def test_task_waits_at_most_max_wait_then_is_refused() -> None:
    bulkhead = Bulkhead(1, max_queue=1, max_wait=0.02)

    async def main() -> None:
        async with bulkhead:
            started = time.monotonic()
            with pytest.raises(BulkheadFullError):
                await bulkhead.acall(asyncio.sleep, 0)
            assert time.monotonic() - started >= 0.015  # the loop's timer may round down
            assert bulkhead.queued == 0

    asyncio.run(main())
    assert_drained(bulkhead)


def test_waiter_gets_the_slot_freed_within_max_wait() -> None:
    bulkhead = Bulkhead(1, max_queue=1, max_wait=WAIT)
    with bulkhead:
        result: list[str] = []
        t = threading.Thread(target=lambda: result.append(bulkhead.call(str, "in")))
        t.start()
        wait_until(lambda: bulkhead.queued == 1)
    t.join(WAIT)
    assert result == ["in"]
    assert_drained(bulkhead)


def test_test_mode_caps_an_unbounded_wait() -> None:
    bulkhead = Bulkhead(1, max_queue=1)
    with bulkhead, set_testing(timeout=0.01), pytest.raises(BulkheadFullError):
        bulkhead.call(lambda: None)
    assert_drained(bulkhead)


def test_cancelled_waiter_leaves_the_queue() -> None:
    bulkhead = Bulkhead(1, max_queue=2)

    async def main() -> None:
        async with bulkhead:
            waiter = asyncio.create_task(bulkhead.acall(asyncio.sleep, 0))
            await await_until(lambda: bulkhead.queued == 1)
            waiter.cancel()
            with pytest.raises(asyncio.CancelledError):
                await waiter
            assert bulkhead.queued == 0

    asyncio.run(main())
    assert_drained(bulkhead)


def test_waiter_cancelled_while_being_handed_a_slot_passes_it_on() -> None:
    bulkhead = Bulkhead(1, max_queue=2)
    entered: list[str] = []

    async def mark(who: str) -> None:
        entered.append(who)

    async def main() -> None:
        async with bulkhead:
            first = asyncio.create_task(bulkhead.acall(mark, "first"))
            second = asyncio.create_task(bulkhead.acall(mark, "second"))
            await await_until(lambda: bulkhead.queued == 2)
        # Leaving the block handed the slot to `first`, which has not run since:
        assert (bulkhead.in_flight, bulkhead.queued) == (1, 1)
        first.cancel()
        with pytest.raises(asyncio.CancelledError):
            await first
        await second  # it got the slot `first` could not use

    asyncio.run(main())
    assert entered == ["second"]
    assert_drained(bulkhead)


def test_thread_waiter_whose_slot_came_as_its_wait_ran_out_uses_it() -> None:
    # The race "wait timed out" vs "slot handed over" decided for the slot, made
    # deterministic with a waiter whose Event never wakes.
    core: BulkheadCore[Any] = BulkheadCore(1, 1)
    assert core.try_enter()
    waiter = _Waiter()
    assert core.try_queue(waiter)
    assert core.release() is waiter  # handed over under the lock ...
    assert core.time_out(waiter) is False  # ... so its timeout cannot refuse it
    assert (core.in_flight, len(core.waiters), core.rejected) == (1, 0, 0)


def test_slot_handed_to_a_closed_event_loop_goes_to_the_next_waiter() -> None:
    bulkhead = Bulkhead(1, max_queue=2)
    queued = threading.Event()

    kept: list[asyncio.Task[None]] = []  # alive until the slot has been handed on

    def orphan() -> None:
        # A loop closed while its task waits: the task never comes back for its slot.
        loop = asyncio.new_event_loop()
        task = loop.create_task(bulkhead.acall(asyncio.sleep, 0))
        kept.append(task)
        loop.call_soon(queued.set)
        loop.run_until_complete(asyncio.sleep(0.001))
        task._log_destroy_pending = False  # type: ignore[attr-defined]
        loop.close()

    result: list[str] = []
    with bulkhead:
        run_threads(1, lambda i: orphan())
        assert queued.is_set()
        assert bulkhead.queued == 1
        t = threading.Thread(target=lambda: result.append(bulkhead.call(str, "next")))
        t.start()
        wait_until(lambda: bulkhead.queued == 2)
    t.join(WAIT)
    assert result == ["next"]
    assert_drained(bulkhead)
    kept.clear()  # its coroutine is closed now: it must not give back a slot it passed on
    gc.collect()
    assert_drained(bulkhead)


# -- no slot leaks under random schedules ------------------------------------------------


@dataclass(eq=False)
class _Waiter:
    queued: bool = False
    granted: bool = False
    woken: int = 0

    def wake(self) -> bool:
        self.woken += 1
        return True


@dataclass
class _Model:
    """The reference: a plain FIFO with counts."""

    limit: int
    room: int
    held: int = 0
    queue: deque[_Waiter] = field(default_factory=deque)


@settings(max_examples=300, deadline=None)
@given(
    limit=st.integers(1, 4),
    room=st.integers(0, 4),
    ops=st.lists(
        st.tuples(st.sampled_from(["arrive", "leave", "time_out", "cancel"]), st.integers(0, 7))
    ),
)
def test_core_hands_slots_in_fifo_order_and_never_loses_one(
    limit: int, room: int, ops: list[tuple[str, int]]
) -> None:
    """Property: whatever mix of arrivals, departures, timeouts and cancellations, the
    core matches a plain FIFO model, never exceeds the limit, and drains to zero."""
    core: BulkheadCore[_Waiter] = BulkheadCore(limit, room)
    model = _Model(limit, room)
    holders = 0  # callers holding a slot (entered at once, or granted and took it)
    for op, pick in ops:
        if op == "arrive":
            waiter = _Waiter()
            if core.try_enter():
                assert model.held < limit
                assert not model.queue
                model.held += 1
                holders += 1
            elif core.try_queue(waiter):
                assert len(model.queue) < room
                model.queue.append(waiter)
            else:
                assert model.held == limit
                assert len(model.queue) == room
        elif op == "leave" and holders:
            holders -= 1
            granted = core.release()
            if model.queue:
                assert granted is model.queue.popleft()  # first come, first served
                assert granted is not None
                assert granted.granted
                holders += 1
            else:
                assert granted is None
                model.held -= 1
        elif op in ("time_out", "cancel") and model.queue:
            waiter = model.queue[pick % len(model.queue)]
            assert not waiter.granted
            gave_up = core.time_out(waiter) if op == "time_out" else core.withdraw(waiter)
            assert gave_up
            model.queue.remove(waiter)
        assert (core.in_flight, list(core.waiters)) == (model.held, list(model.queue))
        assert core.in_flight <= limit
        assert not core.waiters or core.in_flight == limit
    for _ in range(holders + len(model.queue)):
        core.release()
    assert (core.in_flight, len(core.waiters)) == (0, 0)
    with pytest.raises(RuntimeError):
        core.release()


def test_no_slot_leaks_after_random_timeouts_and_cancellations_of_threads_and_tasks() -> None:
    """Randomized bounded schedules: callers hold slots for random short times, some wait
    with a short max_wait and give up, some tasks are cancelled at random moments. After
    all of it the bulkhead is empty and every slot can be taken again."""
    rng = random.Random(20240611)
    for trial in range(6):
        limit = rng.randint(1, 3)
        bulkhead = Bulkhead(limit, max_queue=rng.randint(1, 12), max_wait=0.004)
        gauge = Gauge()
        run_threads(9, _random_schedule(bulkhead, gauge, rng.random()))
        assert gauge.most <= limit, trial
        assert gauge.inside == 0
        assert_drained(bulkhead)


def _random_schedule(bulkhead: Bulkhead, gauge: Gauge, seed: float) -> Callable[[int], None]:
    def work() -> None:
        gauge.enter()
        time.sleep(0.001 * random.random())
        gauge.leave()

    async def awork() -> None:
        gauge.enter()
        try:
            await asyncio.sleep(0.001 * random.random())
        finally:
            gauge.leave()

    async def task_callers(i: int) -> None:
        local = random.Random(seed + i)
        tasks = [asyncio.create_task(bulkhead.acall(awork)) for _ in range(30)]
        for task in tasks:
            if local.random() < 0.4:
                await asyncio.sleep(0.0005 * local.random())
                task.cancel()
        for outcome in await asyncio.gather(*tasks, return_exceptions=True):
            assert outcome is None or isinstance(
                outcome, BulkheadFullError | asyncio.CancelledError
            ), outcome

    def caller(i: int) -> None:
        if i % 3 == 0:
            asyncio.run(task_callers(i))
            return
        for _ in range(15):
            with contextlib.suppress(BulkheadFullError):
                bulkhead.call(work)

    return caller


# -- events ---------------------------------------------------------------------------------


def test_bulkhead_entered_reports_the_wait_on_the_bulkheads_clock(clock: FakeClock) -> None:
    bulkhead = Bulkhead(1, max_queue=1, clock=clock, name="db")
    events: list[BulkheadEntered] = []
    bulkhead.add_listener(events.append, BulkheadEntered)
    with bulkhead:
        t = threading.Thread(target=bulkhead.call, args=(lambda: None,))
        t.start()
        wait_until(lambda: bulkhead.queued == 1)
        clock.advance(2.5)
    t.join(WAIT)
    assert events == [
        BulkheadEntered(name="db", strategy="bulkhead", at=0.0, waited=0.0),
        BulkheadEntered(name="db", strategy="bulkhead", at=2.5, waited=2.5),
    ]
    bulkhead.remove_listener(events.append)
    bulkhead.call(lambda: None)
    assert len(events) == 2
