"""The decorator's wrapper: the function's own signature, and refusals without a clock read."""

from __future__ import annotations

import asyncio
import inspect
import pickle
import threading
import time
from typing import Any

import pytest

from stalwart import CircuitBreaker, CircuitOpenError
from stalwart._alarms import Alarms
from stalwart._errors import Countdown
from stalwart.testing import FakeClock


class Boom(Exception):
    pass


def _shapes(a: int, b: int = 2, /, c: int = 3, *rest: int, k: int = 4, m: int, **extra: int) -> Any:
    return (a, b, c, rest, k, m, extra)


def test_a_plain_function_keeps_its_own_signature_and_defaults() -> None:
    breaker = CircuitBreaker("w", clock=FakeClock())
    guarded = breaker(_shapes)
    # Not *args/**kwargs: the wrapper's code takes the function's own parameters.
    assert guarded.__code__.co_flags & inspect.CO_VARARGS
    assert guarded.__code__.co_varnames[:3] == ("a", "b", "c")
    assert guarded(1, m=5) == _shapes(1, m=5)
    assert guarded(1, 9, 8, 7, 6, k=0, m=5, z=1) == _shapes(1, 9, 8, 7, 6, k=0, m=5, z=1)
    assert inspect.signature(guarded) == inspect.signature(_shapes)
    with pytest.raises(TypeError, match="_shapes"):
        guarded(1)  # m is required, named after the user's function
    with pytest.raises(TypeError):
        guarded(a=1, m=5)  # a is positional-only, as in the function


def test_the_same_default_objects_are_passed_on() -> None:
    marker: list[int] = []

    def f(x: list[int] = marker) -> list[int]:
        return x

    assert CircuitBreaker("d", clock=FakeClock())(f)() is marker


def test_parameters_named_like_the_template_fall_back_to_the_generic_wrapper() -> None:
    def f(_s_guard: int, _s_fn: int = 1) -> int:
        return _s_guard + _s_fn

    guarded = CircuitBreaker("g", clock=FakeClock())(f)
    assert guarded.__code__.co_varnames[:2] == ("args", "kwargs")
    assert guarded(1, _s_fn=2) == 3


def test_the_slow_path_passes_every_kind_of_argument() -> None:
    clock = FakeClock()
    breaker = CircuitBreaker("s", clock=clock, slow_call_duration=5.0)  # no fast path
    assert breaker(_shapes)(1, 9, 8, 7, k=0, m=5, z=1) == _shapes(1, 9, 8, 7, k=0, m=5, z=1)

    async def g(a: int, *, k: int) -> int:
        return a + k

    assert asyncio.run(breaker(g)(1, k=2)) == 3


def test_a_method_gets_self_like_any_argument() -> None:
    breaker = CircuitBreaker("m", clock=FakeClock())

    class Client:
        @breaker
        def get(self, key: str) -> str:
            return f"{id(self)}:{key}"

    client = Client()
    assert client.get("x") == f"{id(client)}:x"


def test_tracebacks_show_the_wrapper_source() -> None:
    def f() -> None:
        raise Boom

    import traceback

    try:
        CircuitBreaker("t", clock=FakeClock())(f)()
    except Boom as exc:
        text = "".join(traceback.format_exception(exc))
    assert "<stalwart wrapper" in text
    assert "_s_fn(" in text


@pytest.mark.parametrize("form", ["sync", "async"])
def test_an_open_breaker_refuses_without_reading_the_clock_until_its_alarm(form: str) -> None:
    clock = FakeClock()
    breaker = CircuitBreaker("a", failure_threshold=1, recovery_timeout=10, clock=clock)
    calls: list[int] = []

    def f() -> None:
        calls.append(1)

    async def af() -> None:
        calls.append(1)

    guarded = breaker(f) if form == "sync" else breaker(af)
    with pytest.raises(Boom):
        breaker.call(lambda: (_ for _ in ()).throw(Boom()))
    assert breaker._refusing is True
    reads = 0
    real = clock.monotonic

    def counting() -> float:
        nonlocal reads
        reads += 1
        return real()

    clock.monotonic = counting  # type: ignore[method-assign]
    clock.advance(4)
    for _ in range(3):
        with pytest.raises(CircuitOpenError) as info:
            guarded() if form == "sync" else asyncio.run(guarded())
    assert reads == 0  # refused three times with no clock read
    assert info.value.retry_in == pytest.approx(6)
    assert breaker.snapshot().total_rejections == 3
    clock.advance(6)  # the alarm rings: the next call asks, and probes
    assert breaker._refusing is False
    guarded() if form == "sync" else asyncio.run(guarded())
    assert calls == [1]


def test_a_stretched_open_period_sets_another_alarm() -> None:
    clock = FakeClock()
    breaker = CircuitBreaker("x", failure_threshold=1, recovery_timeout=10, clock=clock)
    with pytest.raises(Boom):
        breaker.call(lambda: (_ for _ in ()).throw(Boom()))
    core = breaker._core
    with breaker._lock:
        core.open_until += 20  # what a server's Retry-After does, without a transition
    clock.advance(10)
    assert breaker._refusing is True  # the first alarm found the period longer
    clock.advance(20)
    assert breaker._refusing is False


def test_the_system_clock_wakes_an_open_breaker_on_time() -> None:
    breaker = CircuitBreaker("sys", failure_threshold=1, recovery_timeout=0.05)
    with pytest.raises(Boom):
        breaker.call(lambda: (_ for _ in ()).throw(Boom()))
    assert breaker._refusing is True
    deadline = time.monotonic() + 5
    while breaker._refusing and time.monotonic() < deadline:
        time.sleep(0.01)
    assert breaker._refusing is False
    assert breaker.call(lambda: 7) == 7


def test_alarms_run_in_deadline_order_and_survive_a_raising_callback() -> None:
    now = [0.0]
    alarms = Alarms(lambda: now[0])
    rang: list[str] = []
    done = threading.Event()

    def bad() -> None:
        raise RuntimeError("ignored")

    alarms.call_at(2.0, lambda: (rang.append("b"), done.set()))
    alarms.call_at(1.0, bad)
    alarms.call_at(1.0, lambda: rang.append("a"))
    time.sleep(0.05)
    assert rang == []
    assert alarms.pending == 3
    now[0] = 3.0
    alarms.call_at(0.0, lambda: None)  # wakes the thread
    assert done.wait(5)
    assert rang == ["a", "b"]
    assert alarms.pending == 0


def test_a_fake_clock_rings_alarms_when_time_passes_them_never_inside_call_at() -> None:
    clock = FakeClock()
    rang: list[float] = []
    clock.call_at(0.0, lambda: rang.append(clock.monotonic()))
    assert rang == []
    clock.advance(0)
    clock.call_at(5.0, lambda: rang.append(clock.monotonic()))
    clock.sleep(4)
    assert rang == [0.0]
    asyncio.run(clock.asleep(1))
    assert rang == [0.0, 5.0]


def test_a_countdown_is_read_once_then_kept_and_pickles_as_a_float() -> None:
    clock = FakeClock()
    exc = CircuitOpenError("c", Countdown(10.0, clock.monotonic))
    clock.advance(4)
    assert exc.retry_in == 6.0
    clock.advance(4)
    assert exc.retry_in == 6.0  # kept from the first reading
    again = pickle.loads(pickle.dumps(CircuitOpenError("c", Countdown(10.0, clock.monotonic))))
    assert again.args == ("c", 2.0)
    assert float(Countdown(1.0, clock.monotonic)) == 0.0  # never negative


def test_a_forked_child_still_wakes_a_breaker_opened_before_the_fork() -> None:
    import os

    breaker = CircuitBreaker("fork", failure_threshold=1, recovery_timeout=0.2)
    with pytest.raises(Boom):
        breaker.call(lambda: (_ for _ in ()).throw(Boom()))
    assert breaker._refusing is True
    pid = os.fork()
    if pid == 0:  # the child: the alarm thread did not survive the fork, its alarm did
        deadline = time.monotonic() + 5
        while breaker._refusing and time.monotonic() < deadline:
            time.sleep(0.01)
        os._exit(0 if not breaker._refusing else 1)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
