"""Hedge: the idempotency guard, who wins, what happens on failure, and that every copy
is cancelled and awaited (no task outlives the call)."""

from __future__ import annotations

import asyncio
import gc
import inspect
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import pytest
from hypothesis import given
from hypothesis import strategies as st

import stalwart
from stalwart import ConfigError
from stalwart._hedge import Hedge, HedgeCore, HedgeStarted, HedgeWon
from stalwart.events import Event
from stalwart.testing import FakeClock, set_testing

T = TypeVar("T")


class StuckClock(FakeClock):
    """A clock whose async sleeps never end by themselves: the delay never elapses."""

    async def asleep(self, seconds: float) -> None:
        await asyncio.Event().wait()


def run(main: Callable[[], Awaitable[T]]) -> T:
    """Run ``main`` and check that it left no task behind and that the loop reported
    nothing (such as "Task exception was never retrieved")."""
    problems: list[dict[str, Any]] = []

    async def checked() -> T:
        asyncio.get_running_loop().set_exception_handler(lambda _, ctx: problems.append(ctx))
        try:
            return await main()
        finally:
            # At once, without yielding: a copy or timer still pending now outlived the call.
            leftover = asyncio.all_tasks() - {asyncio.current_task()}
            gc.collect()
            await asyncio.sleep(0)
            assert leftover == set()

    result = asyncio.run(checked())
    assert problems == []
    return result


async def hang() -> None:
    await asyncio.Event().wait()


def summary(events: list[Event]) -> list[tuple[Any, ...]]:
    out: list[tuple[Any, ...]] = []
    for e in events:
        if isinstance(e, HedgeStarted):
            out.append(("started", e.attempt, pytest.approx(e.after), e.trigger))
        elif isinstance(e, HedgeWon):
            out.append(("won", e.attempt, pytest.approx(e.after), e.started))
    return out


# -- configuration -----------------------------------------------------------------------


def test_a_hedge_refuses_to_exist_unless_declared_idempotent() -> None:
    with pytest.raises(ConfigError, match="more than once") as info:
        Hedge(delay=0.1)
    assert info.value.field == "idempotent"
    for value in (False, 1, "yes", None):
        with pytest.raises(ConfigError) as info:
            Hedge(delay=0.1, idempotent=value)  # type: ignore[arg-type]
        assert info.value.field == "idempotent"


@pytest.mark.parametrize(
    ("options", "field"),
    [
        ({"delay": -0.1}, "delay"),
        ({"delay": float("nan")}, "delay"),
        ({"delay": "1"}, "delay"),
        ({"max_hedged": 0}, "max_hedged"),
        ({"max_hedged": 1.5}, "max_hedged"),
        ({"name": ""}, "name"),
        ({"clock": object()}, "clock"),
    ],
)
def test_bad_setting_is_a_config_error_naming_it(options: dict[str, Any], field: str) -> None:
    settings: dict[str, Any] = {"delay": 0.1, "idempotent": True, **options}
    with pytest.raises(ConfigError) as info:
        Hedge(**settings)
    assert info.value.field == field


def test_decorating_a_sync_function_is_a_config_error() -> None:
    hedge = Hedge(delay=0.1, idempotent=True)

    def fetch() -> int:
        return 1

    async def stream() -> Any:
        yield 1

    for fn in (fetch, stream):
        with pytest.raises(ConfigError) as info:
            hedge(fn)
        assert info.value.field == "fn"
    with pytest.raises(TypeError, match="async"):
        run(lambda: hedge.acall(fetch))  # type: ignore[arg-type]


def test_describe_lists_kind_name_and_every_setting() -> None:
    hedge = Hedge(delay=0.25, max_hedged=2, idempotent=True, name="search")
    assert hedge.describe() == {
        "strategy": "hedge",
        "name": "search",
        "delay": 0.25,
        "max_hedged": 2,
        "idempotent": True,
    }
    assert Hedge(delay=1, idempotent=True).name == "hedge"
    assert "delay=0.25" in repr(hedge)


# -- who wins ----------------------------------------------------------------------------


def test_a_fast_call_is_never_hedged(clock: FakeClock) -> None:
    hedge = Hedge(delay=0.2, idempotent=True, clock=clock)
    events: list[Event] = []
    hedge.add_listener(events.append)
    calls = []

    @hedge
    async def fetch(key: str) -> str:
        calls.append(key)
        return key.upper()

    assert run(lambda: fetch("a")) == "A"
    assert calls == ["a"]
    assert events == []


def test_a_slow_call_is_hedged_after_the_delay_and_the_first_success_wins(
    clock: FakeClock,
) -> None:
    hedge = Hedge(delay=0.2, idempotent=True, clock=clock, name="replicas")
    events: list[Event] = []
    hedge.add_listener(events.append)
    log: list[tuple[Any, ...]] = []

    async def fetch() -> str:
        attempt = sum(1 for entry in log if entry[0] == "start") + 1
        log.append(("start", attempt, clock.monotonic()))
        if attempt == 1:
            try:
                await hang()
            except asyncio.CancelledError:
                log.append(("cancelled", 1))
                raise
            finally:
                log.append(("finally", 1))
        return f"copy {attempt}"

    assert run(lambda: hedge.acall(fetch)) == "copy 2"
    # The loser was cancelled, and its finally ran, before the caller got the result.
    assert log == [("start", 1, 0.0), ("start", 2, 0.2), ("cancelled", 1), ("finally", 1)]
    assert summary(events) == [("started", 2, 0.2, "delay"), ("won", 2, 0.2, 2)]
    assert all(e.name == "replicas" and e.strategy == "hedge" for e in events)
    assert clock.sleeps == [0.2]


def test_the_first_call_can_still_win_after_a_hedge_started(clock: FakeClock) -> None:
    hedge = Hedge(delay=0.2, idempotent=True, clock=clock)
    primary_may_finish = asyncio.Event()
    events: list[Event] = []
    hedge.add_listener(events.append)
    hedge.add_listener(lambda e: primary_may_finish.set(), HedgeStarted)
    cancelled = []

    async def fetch() -> str:
        if not events:
            await primary_may_finish.wait()
            return "primary"
        try:
            await hang()
        except asyncio.CancelledError:
            cancelled.append("hedge")
            raise
        return "hedge"

    assert run(lambda: hedge.acall(fetch)) == "primary"
    assert cancelled == ["hedge"]
    assert summary(events) == [("started", 2, 0.2, "delay"), ("won", 1, 0.2, 2)]


def test_up_to_max_hedged_copies_start_one_delay_apart(clock: FakeClock) -> None:
    hedge = Hedge(delay=0.5, max_hedged=3, idempotent=True, clock=clock)
    events: list[Event] = []
    hedge.add_listener(events.append, HedgeStarted)
    started: list[float] = []

    async def fetch() -> float:
        started.append(clock.monotonic())
        await hang()
        return 0.0

    async def main() -> None:
        task = asyncio.create_task(hedge.acall(fetch))
        for _ in range(20):
            await asyncio.sleep(0)
        assert not task.done()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    run(main)
    assert started == [0.0, 0.5, 1.0, 1.5]  # the first call and three hedges, no more
    assert summary(events) == [
        ("started", 2, 0.5, "delay"),
        ("started", 3, 1.0, "delay"),
        ("started", 4, 1.5, "delay"),
    ]


def test_delay_zero_starts_every_copy_at_once(clock: FakeClock) -> None:
    hedge = Hedge(delay=0, max_hedged=2, idempotent=True, clock=clock)
    events: list[Event] = []
    hedge.add_listener(events.append)
    attempts: list[int] = []

    async def fetch() -> int:
        attempt = len(attempts) + 1
        attempts.append(attempt)
        if attempt == 1:
            await hang()
        if attempt == 2:
            raise ConnectionError("replica 2 down")
        return attempt

    assert run(lambda: hedge.acall(fetch)) == 3
    assert summary(events) == [
        ("started", 2, 0.0, "delay"),
        ("started", 3, 0.0, "delay"),
        ("won", 3, 0.0, 3),
    ]
    assert clock.sleeps == []


# -- failures ----------------------------------------------------------------------------


def test_a_failure_starts_the_next_copy_at_once_without_waiting_the_delay() -> None:
    clock = StuckClock()  # the delay would never elapse: only the failure can start a copy
    hedge = Hedge(delay=10.0, idempotent=True, clock=clock)
    events: list[Event] = []
    hedge.add_listener(events.append)
    attempts: list[int] = []

    async def fetch() -> str:
        attempts.append(len(attempts) + 1)
        if len(attempts) == 1:
            raise ConnectionResetError("primary replica reset")
        return "from the hedge"

    assert run(lambda: hedge.acall(fetch)) == "from the hedge"
    assert summary(events) == [("started", 2, 0.0, "failure"), ("won", 2, 0.0, 2)]


def test_when_every_copy_fails_the_last_failure_is_raised_unchanged(clock: FakeClock) -> None:
    hedge = Hedge(delay=0.2, idempotent=True, clock=clock)
    first, second = ConnectionError("replica 1"), TimeoutError("replica 2")
    errors = iter([first, second])

    async def fetch() -> None:
        raise next(errors)

    with pytest.raises(TimeoutError) as info:
        run(lambda: hedge.acall(fetch))
    assert info.value is second


def test_the_last_to_fail_is_raised_not_the_last_started(clock: FakeClock) -> None:
    hedge = Hedge(delay=0.2, idempotent=True, clock=clock)
    hedge_failed = asyncio.Event()
    from_primary, from_hedge = ConnectionError("primary, later"), ConnectionError("hedge")
    started = []

    async def fetch() -> None:
        started.append(1)
        if len(started) == 1:
            await hedge_failed.wait()
            raise from_primary
        hedge_failed.set()
        raise from_hedge

    with pytest.raises(ConnectionError) as info:
        run(lambda: hedge.acall(fetch))
    assert info.value is from_primary


def test_a_base_exception_from_a_copy_stops_hedging_at_once(clock: FakeClock) -> None:
    class Fatal(BaseException):
        pass

    hedge = Hedge(delay=0.2, max_hedged=2, idempotent=True, clock=clock)
    calls = []

    async def fetch() -> None:
        calls.append(1)
        raise Fatal

    with pytest.raises(Fatal):
        run(lambda: hedge.acall(fetch))
    assert calls == [1]


def test_a_losers_own_failure_while_cancelled_is_retrieved_quietly(clock: FakeClock) -> None:
    hedge = Hedge(delay=0.2, idempotent=True, clock=clock)
    calls = []

    async def fetch() -> str:
        calls.append(1)
        if len(calls) == 1:
            try:
                await hang()
            finally:
                raise RuntimeError("cleanup failed")
        return "hedge"

    assert run(lambda: hedge.acall(fetch)) == "hedge"  # run() checks the loop stayed quiet


def test_cancelling_the_caller_cancels_and_awaits_every_copy(clock: FakeClock) -> None:
    hedge = Hedge(delay=0.2, max_hedged=1, idempotent=True, clock=clock)
    finished: list[int] = []

    async def fetch(n: list[int]) -> None:
        n.append(1)
        number = len(n)
        try:
            await hang()
        finally:
            finished.append(number)

    async def main() -> None:
        task = asyncio.create_task(hedge.acall(fetch, []))
        for _ in range(10):
            await asyncio.sleep(0)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert sorted(finished) == [1, 2]  # both ran their finally before the caller resumed

    run(main)


# -- test mode ---------------------------------------------------------------------------


def test_test_mode_removes_the_delay(clock: FakeClock) -> None:
    hedge = Hedge(delay=30.0, idempotent=True, clock=clock)
    calls = []

    async def fetch() -> int:
        calls.append(1)
        if len(calls) == 1:
            await hang()
        return len(calls)

    with set_testing() as mode:
        assert run(lambda: hedge.acall(fetch)) == 2
    assert mode.sleeps == [30.0]
    assert clock.sleeps == []


def test_test_mode_attempts_cap_the_copies(clock: FakeClock) -> None:
    hedge = Hedge(delay=0.01, max_hedged=3, idempotent=True, clock=clock)
    events: list[Event] = []
    hedge.add_listener(events.append)
    calls = []

    async def slow() -> str:
        calls.append(1)
        for _ in range(10):
            await asyncio.sleep(0)
        return "done"

    with set_testing(attempts=1):
        assert run(lambda: hedge.acall(slow)) == "done"
    assert calls == [1]
    assert events == []

    async def failing() -> None:
        calls.append(1)
        raise ConnectionError

    calls.clear()
    with set_testing(attempts=2), pytest.raises(ConnectionError):
        run(lambda: hedge.acall(failing))
    assert len(calls) == 2


# -- the decorator -----------------------------------------------------------------------


def test_decorator_keeps_the_signature_and_passes_arguments_to_every_copy(
    clock: FakeClock,
) -> None:
    hedge = Hedge(delay=0.1, idempotent=True, clock=clock)
    seen: list[tuple[str, int]] = []

    @hedge
    async def fetch(key: str, *, version: int = 1) -> str:
        """Read a key from any replica."""
        seen.append((key, version))
        if len(seen) == 1:
            await hang()
        return f"{key}@{version}"

    assert run(lambda: fetch("k", version=3)) == "k@3"
    assert seen == [("k", 3), ("k", 3)]
    assert fetch.__name__ == "fetch"
    assert fetch.__doc__ == "Read a key from any replica."
    assert inspect.iscoroutinefunction(fetch)
    assert inspect.signature(fetch) == inspect.signature(fetch.__wrapped__)  # type: ignore[attr-defined]


def test_listeners_can_be_removed(clock: FakeClock) -> None:
    hedge = Hedge(delay=0.1, idempotent=True, clock=clock)
    events: list[Event] = []
    hedge.add_listener(events.append)
    hedge.remove_listener(events.append)
    calls = []

    async def fetch() -> int:
        calls.append(1)
        if len(calls) == 1:
            await hang()
        return 2

    assert run(lambda: hedge.acall(fetch)) == 2
    assert events == []


def test_global_listeners_registered_before_the_hedge_get_its_events(clock: FakeClock) -> None:
    seen: list[Event] = []
    stalwart.add_listener(seen.append, HedgeStarted, HedgeWon)
    calls = []

    async def fetch() -> int:
        calls.append(1)
        if len(calls) == 1:
            await hang()
        return 2

    try:
        hedge = Hedge(delay=0.1, idempotent=True, clock=clock)
        assert run(lambda: hedge.acall(fetch)) == 2
    finally:
        stalwart.remove_listener(seen.append)
    assert [type(e) for e in seen] == [HedgeStarted, HedgeWon]


# -- the core ----------------------------------------------------------------------------


@given(
    attempts=st.integers(1, 5),
    delay=st.sampled_from([0.0, 1.0]),
    actions=st.lists(st.sampled_from(["delay", "fail"]), max_size=30),
)
def test_core_never_starts_more_than_allowed_and_is_lost_only_when_all_failed(
    attempts: int, delay: float, actions: list[str]
) -> None:
    core = HedgeCore(attempts, delay=delay)
    failed = 0
    for action in [*actions, "start"]:
        while core.next_start() is not None:
            pass
        assert core.started <= attempts
        assert core.running == core.started - failed
        if action == "delay":
            core.delay_elapsed()
        elif core.running:
            core.failed()
            failed += 1
            # A failure makes the next copy due at once, if any is left.
            assert core.due or core.started == attempts
        assert core.lost == (failed == attempts)
