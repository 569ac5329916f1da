"""RateLimiter: the rate grammar, both algorithms' arithmetic, waiting versus failing,
the calling forms, events, and threads and tasks sharing one limiter."""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import math
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import stalwart
from stalwart import ConfigError, RateLimitedError, Rejected, _ratelimit
from stalwart._ratelimit import (
    GCRA,
    Rate,
    RateLimiter,
    RateLimiterConfig,
    RateLimitWaited,
    TokenBucket,
)
from stalwart.events import CallRejected, Event
from stalwart.testing import FakeClock, set_testing
from threads import run_threads, switching_threads_often

ALGORITHMS = ["token_bucket", "gcra"]


@pytest.fixture(params=ALGORITHMS)
def algorithm(request: pytest.FixtureRequest) -> Any:
    return request.param


@pytest.fixture
def _switch_threads_often() -> Iterator[None]:
    with switching_threads_often():
        yield


# -- the rate grammar --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("spec", "count", "per"),
    [
        ("10/minute", 10, 60.0),
        ("5/second", 5, 1.0),
        ("100/hour", 100, 3600.0),
        ("1000/day", 1000, 86400.0),
        ("3/5s", 3, 5.0),
        ("3 / 5 s", 3, 5.0),
        ("10 per minute", 10, 60.0),
        ("10 per 2 minutes", 10, 120.0),
        ("10 PER Minute", 10, 60.0),
        ("  7/min  ", 7, 60.0),
        ("2/1.5s", 2, 1.5),
        ("50/100ms", 50, 0.1),
        ("4/h", 4, 3600.0),
        ("4/hrs", 4, 3600.0),
        ("1/d", 1, 86400.0),
        ("9/seconds", 9, 1.0),
        ((10, 60), 10, 60.0),
        ((3, 0.5), 3, 0.5),
        (Rate(2, 4.0), 2, 4.0),
    ],
)
def test_rate_grammar_reads_every_documented_form(spec: Any, count: int, per: float) -> None:
    rate = Rate.parse(spec)
    assert (rate.count, rate.per) == (count, pytest.approx(per))


@pytest.mark.parametrize(
    "spec",
    [
        "10/fortnight",
        "ten/minute",
        "10",
        "10/",
        "/minute",
        "10 minute",
        "10per minute",
        "0/minute",
        "10/0s",
        "-1/second",
        "1.5/second",
        "10/month",
        "",
        (10,),
        (10, 60, 1),
        (0, 60),
        (10, 0),
        (10, -1),
        (True, 60),
        (10.5, 60),
        (10, float("inf")),
        (10, "60"),
        60,
        None,
    ],
)
def test_unreadable_rate_is_a_config_error_naming_rate(spec: Any) -> None:
    with pytest.raises(ConfigError) as info:
        RateLimiter(spec)
    assert info.value.field == "rate"


def test_rate_error_shows_the_accepted_forms() -> None:
    with pytest.raises(ConfigError, match="cannot read '10/fortnight'") as info:
        Rate.parse("10/fortnight")
    for form in ("10/minute", "3/5s", "10 per minute", "(count, per_seconds)"):
        assert form in info.value.problem


def test_several_rates_in_one_string_point_to_composing_limiters() -> None:
    with pytest.raises(ConfigError, match="one rate per limiter"):
        Rate.parse("10/minute;100/hour")


def test_rate_prints_in_the_grammar_it_was_read_from() -> None:
    assert str(Rate.parse("10 per minute")) == "10/minute"
    assert str(Rate.parse("3/5s")) == "3/5s"
    assert Rate.parse(str(Rate.parse("7/2.5s"))) == Rate(7, 2.5)
    assert Rate.parse("10/minute").per_second == pytest.approx(1 / 6)


# -- configuration -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("options", "field"),
    [
        ({"burst": 0}, "burst"),
        ({"burst": 2.5}, "burst"),
        ({"burst": True}, "burst"),
        ({"algorithm": "leaky_bucket"}, "algorithm"),
        ({"max_wait": -1.0}, "max_wait"),
        ({"max_wait": float("nan")}, "max_wait"),
        ({"max_wait": float("inf")}, "max_wait"),
        ({"name": ""}, "name"),
        ({"name": 3}, "name"),
        ({"clock": object()}, "clock"),
        ({"clock": FakeClock}, "clock"),
    ],
)
def test_bad_setting_is_a_config_error_naming_it(options: dict[str, Any], field: str) -> None:
    with pytest.raises(ConfigError) as info:
        RateLimiter("10/minute", **options)
    assert info.value.field == field


def test_config_wants_a_parsed_rate() -> None:
    with pytest.raises(ConfigError) as info:
        RateLimiterConfig(rate="10/minute")  # type: ignore[arg-type]
    assert info.value.field == "rate"


@pytest.mark.parametrize("cost", [0, -1, 2.5, "2"])
def test_bad_cost_is_a_config_error_naming_cost(cost: Any) -> None:
    limiter = RateLimiter("10/minute")
    for take in (limiter.try_acquire, limiter.acquire, limiter.retry_in):
        with pytest.raises(ConfigError) as info:
            take(cost)
        assert info.value.field == "cost"


def test_cost_above_burst_is_refused_because_it_could_never_succeed(algorithm: Any) -> None:
    limiter = RateLimiter("10/minute", burst=3, algorithm=algorithm, max_wait=3600.0)
    for take in (limiter.try_acquire, limiter.acquire):
        with pytest.raises(ConfigError, match="could never be granted") as info:
            take(4)
        assert info.value.field == "cost"
        assert isinstance(info.value, ValueError)
    assert limiter.try_acquire(3)


@pytest.mark.parametrize("timeout", [-1.0, float("nan"), "1"])
def test_bad_timeout_is_a_config_error_naming_timeout(timeout: Any) -> None:
    with pytest.raises(ConfigError) as info:
        RateLimiter("10/minute").acquire(timeout=timeout)
    assert info.value.field == "timeout"


def test_describe_lists_kind_name_and_every_setting() -> None:
    limiter = RateLimiter("10 per minute", burst=3, algorithm="gcra", max_wait=2.0, name="api")
    assert limiter.describe() == {
        "strategy": "rate_limiter",
        "name": "api",
        "rate": "10/minute",
        "burst": 3,
        "algorithm": "gcra",
        "max_wait": 2.0,
    }
    assert RateLimiter("5/second").describe()["burst"] == 5  # burst defaults to the count
    assert RateLimiter("5/second").name == "rate_limiter"
    assert "10/minute" in repr(limiter)


# -- the arithmetic, both algorithms -------------------------------------------------------


def test_burst_is_granted_at_once_then_refused(algorithm: Any, clock: FakeClock) -> None:
    limiter = RateLimiter("10/minute", algorithm=algorithm, clock=clock)
    assert [limiter.try_acquire() for _ in range(11)] == [True] * 10 + [False]
    assert limiter.remaining == 0
    assert limiter.retry_in() == pytest.approx(6.0)


def test_tokens_refill_continuously(algorithm: Any, clock: FakeClock) -> None:
    limiter = RateLimiter("10/minute", algorithm=algorithm, clock=clock)
    for _ in range(10):
        limiter.try_acquire()
    clock.advance(3.0)  # half a token
    assert not limiter.try_acquire()
    assert limiter.retry_in() == pytest.approx(3.0)
    clock.advance(3.0)
    assert limiter.try_acquire()
    assert not limiter.try_acquire()
    clock.advance(30.0)
    assert limiter.remaining == 5


def test_refill_stops_at_the_burst(algorithm: Any, clock: FakeClock) -> None:
    limiter = RateLimiter("10/minute", burst=4, algorithm=algorithm, clock=clock)
    clock.advance(3600.0)
    assert limiter.remaining == 4
    assert [limiter.try_acquire() for _ in range(5)] == [True] * 4 + [False]


def test_burst_below_the_count_spaces_calls_out(algorithm: Any, clock: FakeClock) -> None:
    limiter = RateLimiter("10/minute", burst=1, algorithm=algorithm, clock=clock)
    assert limiter.try_acquire()
    assert not limiter.try_acquire()
    clock.advance(6.0)
    assert limiter.try_acquire()


def test_cost_takes_that_many_tokens(algorithm: Any, clock: FakeClock) -> None:
    limiter = RateLimiter("10/second", algorithm=algorithm, clock=clock)
    assert limiter.try_acquire(7)
    assert limiter.remaining == 3
    assert not limiter.try_acquire(4)
    assert limiter.retry_in(4) == pytest.approx(0.1)
    assert limiter.try_acquire(3)


def test_refusal_takes_nothing(algorithm: Any, clock: FakeClock) -> None:
    limiter = RateLimiter("10/second", algorithm=algorithm, clock=clock)
    limiter.try_acquire(8)
    assert not limiter.try_acquire(5)
    assert limiter.try_acquire(2)


@settings(max_examples=200, deadline=None)
@given(
    waits=st.lists(st.integers(0, 40), min_size=1, max_size=40),
    costs=st.lists(st.integers(1, 4), min_size=1, max_size=40),
    per=st.sampled_from([(4, 2.0), (1, 0.25), (8, 1.0), (3, 6.0)]),
)
def test_both_algorithms_admit_exactly_the_same_calls(
    waits: list[int], costs: list[int], per: tuple[int, float]
) -> None:
    # Rates and steps that are exact in binary floating point, so the comparison is exact.
    count, seconds = per
    bucket = TokenBucket(count / seconds, count)
    gcra = GCRA(count / seconds, count)
    now = 0.0
    for step, cost in zip(waits, costs, strict=False):
        now += step / 8
        if cost > count:
            continue
        assert bucket.reserve(now, cost, 0.0) == gcra.reserve(now, cost, 0.0)
        assert bucket.available(now) == gcra.available(now)


@settings(max_examples=200, deadline=None)
@given(
    algorithm=st.sampled_from(ALGORITHMS),
    steps=st.lists(
        st.tuples(st.floats(0, 3), st.integers(1, 3), st.sampled_from([0.0, 0.5, 5.0])),
        min_size=1,
        max_size=60,
    ),
    burst=st.integers(3, 6),
)
def test_calls_never_exceed_burst_plus_rate_times_any_interval(
    algorithm: Any, steps: list[tuple[float, int, float]], burst: int
) -> None:
    """Whatever callers ask (waiting or not), the calls that go ahead, at the moment they
    go ahead, fit the bucket: over any interval [a, b], cost <= burst + rate * (b - a)."""
    rate = 2.0
    core = RateLimiterConfig(rate=Rate(2, 1.0), burst=burst, algorithm=algorithm).make_core()
    now = 0.0
    started: list[tuple[float, int]] = []
    for dt, cost, within in steps:
        now += dt
        wait = core.reserve(now, cost, within)
        if wait <= within:
            started.append((now + wait, cost))
    started.sort()
    for i, (a, _) in enumerate(started):
        total = 0
        for b, cost in started[i:]:
            total += cost
            assert total <= burst + rate * (b - a) + 1e-6


@settings(max_examples=200, deadline=None)
@given(
    algorithm=st.sampled_from(ALGORITHMS),
    spec=st.sampled_from(["10/minute", "3/5s", "7/second", "100/hour", "1/0.3s"]),
    taken=st.integers(1, 20),
    idle=st.floats(0, 100),
)
def test_waiting_exactly_retry_in_is_enough_and_a_little_less_is_not(
    algorithm: Any, spec: str, taken: int, idle: float
) -> None:
    clock = FakeClock(1000.0)
    limiter = RateLimiter(spec, algorithm=algorithm, clock=clock)
    for _ in range(taken):
        limiter.try_acquire()
    clock.advance(idle)
    while limiter.try_acquire():
        pass
    retry_in = limiter.retry_in()
    with pytest.raises(RateLimitedError) as info:
        limiter.acquire()
    assert info.value.retry_in == pytest.approx(retry_in)
    clock.advance(retry_in * 0.99)
    assert not limiter.try_acquire()
    clock.advance(retry_in * 0.01)
    assert limiter.try_acquire()


def test_cores_reject_time_running_backwards_conservatively() -> None:
    bucket = TokenBucket(1.0, 2)
    assert bucket.reserve(10.0, 2, 0.0) == 0.0
    assert bucket.reserve(5.0, 1, 0.0) > 0  # an earlier `now` never creates tokens
    assert bucket.reserve(11.0, 1, 0.0) == 0.0


# -- waiting versus failing ------------------------------------------------------------


def test_acquire_without_a_wait_allowed_raises_with_the_exact_retry_in(
    algorithm: Any, clock: FakeClock
) -> None:
    limiter = RateLimiter("10/minute", algorithm=algorithm, clock=clock, name="search")
    for _ in range(10):
        limiter.acquire()
    clock.advance(1.5)
    with pytest.raises(RateLimitedError) as info:
        limiter.acquire()
    error = info.value
    assert isinstance(error, Rejected)
    assert error.name == "search"
    assert error.retry_in == pytest.approx(4.5)
    assert "10/minute" in error.detail
    assert clock.sleeps == []


def test_acquire_sleeps_on_the_clock_when_the_wait_is_allowed(
    algorithm: Any, clock: FakeClock
) -> None:
    limiter = RateLimiter("10/minute", algorithm=algorithm, clock=clock, max_wait=6.0)
    for _ in range(10):
        limiter.acquire()
    limiter.acquire()
    assert clock.sleeps == [pytest.approx(6.0)]
    assert clock.monotonic() == pytest.approx(6.0)


def test_a_wait_longer_than_allowed_raises_without_sleeping(
    algorithm: Any, clock: FakeClock
) -> None:
    limiter = RateLimiter("10/minute", algorithm=algorithm, clock=clock, max_wait=5.9)
    for _ in range(10):
        limiter.acquire()
    with pytest.raises(RateLimitedError) as info:
        limiter.acquire()
    assert info.value.retry_in == pytest.approx(6.0)
    assert clock.sleeps == []
    assert limiter.retry_in() == pytest.approx(6.0)  # the refusal reserved nothing


def test_timeout_overrides_max_wait_both_ways(clock: FakeClock) -> None:
    patient = RateLimiter("1/second", clock=clock, max_wait=10.0)
    patient.acquire()
    with pytest.raises(RateLimitedError):
        patient.acquire(timeout=0.5)
    hasty = RateLimiter("1/second", clock=clock)
    hasty.acquire()
    hasty.acquire(timeout=1.0)
    assert clock.sleeps == [pytest.approx(1.0)]


def test_waiters_reserve_in_turn_first_come_first_served(algorithm: Any) -> None:
    # In test mode nothing sleeps and time stands still: each waiter's reservation pushes
    # the next one a token further back.
    limiter = RateLimiter("10/minute", algorithm=algorithm, clock=FakeClock(), max_wait=60.0)
    with set_testing() as mode:
        for _ in range(13):
            limiter.acquire()
    assert mode.sleeps == [pytest.approx(6.0), pytest.approx(12.0), pytest.approx(18.0)]
    assert limiter.remaining == 0
    assert limiter.retry_in() == pytest.approx(24.0)


def test_async_waiters_on_one_loop_are_spaced_by_the_rate(algorithm: Any) -> None:
    # Time frozen (test mode): every task reserves the slot after the previous one's.
    limiter = RateLimiter("2/second", burst=1, algorithm=algorithm, clock=FakeClock(), max_wait=5)

    async def main() -> None:
        await asyncio.gather(*(limiter.aacquire() for _ in range(4)))

    with set_testing() as mode:
        asyncio.run(main())
    assert mode.sleeps == pytest.approx([0.5, 1.0, 1.5])


def test_test_mode_skips_the_sleep_but_keeps_the_reservation(clock: FakeClock) -> None:
    limiter = RateLimiter("1/second", clock=clock, max_wait=5.0)
    limiter.acquire()
    with set_testing() as mode:
        limiter.acquire()
    assert mode.sleeps == [pytest.approx(1.0)]
    assert clock.sleeps == []
    assert not limiter.try_acquire()


def test_a_cancelled_waiter_keeps_its_reservation() -> None:
    class StuckClock(FakeClock):
        async def asleep(self, seconds: float) -> None:
            await asyncio.Event().wait()  # a sleep that only ends by cancellation

    clock = StuckClock()
    limiter = RateLimiter("1/second", clock=clock, max_wait=5.0)

    async def main() -> None:
        await limiter.aacquire()
        waiter = asyncio.create_task(limiter.aacquire())
        await asyncio.sleep(0)
        waiter.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiter

    asyncio.run(main())
    assert limiter.retry_in() == pytest.approx(2.0)


def test_the_lock_is_not_held_while_a_caller_sleeps() -> None:
    class GateClock(FakeClock):
        def __init__(self) -> None:
            super().__init__()
            self.asleep_now = threading.Event()
            self.release = threading.Event()

        def sleep(self, seconds: float) -> None:
            self.asleep_now.set()
            assert self.release.wait(10)
            super().sleep(seconds)

    clock = GateClock()
    limiter = RateLimiter("1/second", clock=clock, max_wait=5.0)
    limiter.acquire()
    sleeper = threading.Thread(target=limiter.acquire)
    sleeper.start()
    try:
        assert clock.asleep_now.wait(10)
        # These take the lock: they would hang if the sleeper held it.
        assert not limiter.try_acquire()
        assert limiter.retry_in() == pytest.approx(2.0)
    finally:
        clock.release.set()
        sleeper.join(10)
    assert not sleeper.is_alive()


# -- calling forms -----------------------------------------------------------------------


def test_decorator_takes_a_token_before_each_sync_call(clock: FakeClock) -> None:
    limiter = RateLimiter("2/minute", clock=clock)
    ran: list[int] = []

    @limiter
    def search(query: str, *, limit: int = 10) -> str:
        """Search."""
        ran.append(limit)
        return query.upper()

    assert search("a") == "A"
    assert search("b", limit=3) == "B"
    with pytest.raises(RateLimitedError):
        search("c")
    assert ran == [10, 3]
    assert search.__name__ == "search"
    assert search.__doc__ == "Search."
    assert inspect.signature(search) == inspect.signature(search.__wrapped__)  # type: ignore[attr-defined]


def test_decorator_takes_a_token_before_each_async_call(clock: FakeClock) -> None:
    limiter = RateLimiter("1/minute", clock=clock, max_wait=60.0)
    ran: list[str] = []

    @limiter
    async def search(query: str) -> str:
        ran.append(query)
        return query.upper()

    async def main() -> list[str]:
        return [await search("a"), await search("b")]

    assert asyncio.run(main()) == ["A", "B"]
    assert ran == ["a", "b"]
    assert clock.sleeps == [pytest.approx(60.0)]
    assert inspect.iscoroutinefunction(search)


def test_decorator_refuses_what_it_cannot_limit() -> None:
    limiter = RateLimiter("1/second")

    def gen() -> Iterator[int]:
        yield 1

    with pytest.raises(ConfigError) as info:
        limiter(gen)
    assert info.value.field == "fn"
    with pytest.raises(ConfigError):
        limiter(42)  # type: ignore[arg-type]


def test_call_acall_and_blocks_take_one_token_each(clock: FakeClock) -> None:
    limiter = RateLimiter("4/minute", clock=clock)

    async def double(x: int) -> int:
        return 2 * x

    assert limiter.call(divmod, 7, 2) == (3, 1)
    assert asyncio.run(limiter.acall(double, 4)) == 8
    with limiter:
        pass

    async def block() -> None:
        async with limiter:
            pass

    asyncio.run(block())
    assert limiter.remaining == 0
    with pytest.raises(RateLimitedError), limiter:
        pytest.fail("the block must not run")
    with pytest.raises(TypeError, match="acall"):
        limiter.call(double, 1)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="call"):
        asyncio.run(limiter.acall(divmod, 1, 2))  # type: ignore[arg-type]


def test_the_callers_exception_passes_through_unchanged() -> None:
    limiter = RateLimiter("5/second")
    boom = KeyError("x")

    @limiter
    def fail() -> None:
        raise boom

    with pytest.raises(KeyError) as info:
        fail()
    assert info.value is boom


# -- events ------------------------------------------------------------------------------


def test_refusals_publish_call_rejected(clock: FakeClock) -> None:
    limiter = RateLimiter("1/minute", clock=clock, name="api")
    seen: list[Event] = []
    limiter.add_listener(seen.append, CallRejected)
    limiter.try_acquire()
    clock.advance(15.0)
    assert not limiter.try_acquire()
    with pytest.raises(RateLimitedError):
        limiter.acquire()
    assert [e.to_dict() for e in seen] == [
        {
            "event": "CallRejected",
            "name": "api",
            "strategy": "rate_limiter",
            "at": 15.0,
            "state": None,
            "retry_in": pytest.approx(45.0),
        }
    ] * 2
    limiter.remove_listener(seen.append)
    limiter.try_acquire()
    assert len(seen) == 2


def test_waits_publish_rate_limit_waited(clock: FakeClock) -> None:
    limiter = RateLimiter("2/second", clock=clock, max_wait=1.0)
    seen: list[RateLimitWaited] = []
    limiter.add_listener(seen.append, RateLimitWaited)
    limiter.acquire(2)
    limiter.acquire()
    asyncio.run(limiter.aacquire())
    assert [(e.waited, e.cost, e.strategy, e.at) for e in seen] == [
        (pytest.approx(0.5), 1, "rate_limiter", pytest.approx(0.5)),
        (pytest.approx(0.5), 1, "rate_limiter", pytest.approx(1.0)),
    ]


def test_no_event_is_built_when_nobody_listens(
    monkeypatch: pytest.MonkeyPatch, clock: FakeClock
) -> None:
    def forbidden(**kwargs: Any) -> Event:
        raise AssertionError("an event was built with no listener")

    monkeypatch.setattr(_ratelimit, "CallRejected", forbidden)
    monkeypatch.setattr(_ratelimit, "RateLimitWaited", forbidden)
    limiter = RateLimiter("1/second", clock=clock, max_wait=1.0)
    limiter.acquire()
    limiter.acquire()  # waits
    assert not limiter.try_acquire()
    with pytest.raises(RateLimitedError):
        limiter.acquire(timeout=0.0)


def test_a_listener_for_rejections_only_does_not_make_waits_build_events(
    monkeypatch: pytest.MonkeyPatch, clock: FakeClock
) -> None:
    def forbidden(**kwargs: Any) -> Event:
        raise AssertionError("a RateLimitWaited was built that nobody wants")

    monkeypatch.setattr(RateLimitWaited, "__init__", forbidden)
    limiter = RateLimiter("1/second", clock=clock, max_wait=1.0)
    limiter.add_listener(lambda e: None, CallRejected)
    limiter.acquire()
    limiter.acquire()  # waits


def test_global_listeners_registered_before_the_limiter_get_its_events(
    clock: FakeClock,
) -> None:
    seen: list[Event] = []
    stalwart.add_listener(seen.append, RateLimitWaited)
    try:
        limiter = RateLimiter("1/second", clock=clock, max_wait=1.0)
        limiter.acquire()
        limiter.acquire()
    finally:
        stalwart.remove_listener(seen.append)
    assert [type(e) for e in seen] == [RateLimitWaited]


# -- threads and tasks -------------------------------------------------------------------


@pytest.mark.usefixtures("_switch_threads_often")
def test_threads_hammering_try_acquire_get_exactly_the_burst(algorithm: Any) -> None:
    limiter = RateLimiter((1000, 3600.0), algorithm=algorithm, clock=FakeClock())
    granted = [0] * 8

    def worker(i: int) -> None:
        for _ in range(400):
            if limiter.try_acquire():
                granted[i] += 1

    run_threads(8, worker)
    assert sum(granted) == 1000


@pytest.mark.usefixtures("_switch_threads_often")
def test_threads_waiting_get_distinct_slots(algorithm: Any) -> None:
    # In test mode (no sleeping, time frozen), each acquire's reservation is one token
    # later than the last: with 8 threads the waits must be exactly 1..N tokens, no two alike.
    limiter = RateLimiter("1/second", algorithm=algorithm, clock=FakeClock(), max_wait=1e6)
    limiter.acquire()
    with set_testing() as mode:
        run_threads(8, lambda i: [limiter.acquire() for _ in range(50)])
    assert sorted(round(s, 6) for s in mode.sleeps) == [float(n) for n in range(1, 401)]


def test_tasks_hammering_aacquire_are_granted_exactly_the_burst(algorithm: Any) -> None:
    limiter = RateLimiter((100, 60.0), algorithm=algorithm, clock=FakeClock())
    outcomes: list[bool] = []

    async def worker() -> None:
        for _ in range(30):
            try:
                await limiter.aacquire()
            except RateLimitedError:
                outcomes.append(False)
            else:
                outcomes.append(True)
            await asyncio.sleep(0)

    async def main() -> None:
        await asyncio.gather(*(worker() for _ in range(10)))

    asyncio.run(main())
    assert outcomes.count(True) == 100
    assert outcomes.count(False) == 200


def test_remaining_is_a_whole_number_of_tokens(clock: FakeClock, algorithm: Any) -> None:
    limiter = RateLimiter("10/second", algorithm=algorithm, clock=clock)
    limiter.try_acquire(10)
    clock.advance(0.35)
    assert limiter.remaining == 3
    assert math.isclose(limiter.retry_in(4), 0.05, abs_tol=1e-9)
    with contextlib.suppress(RateLimitedError):
        limiter.acquire(4)
    assert limiter.remaining == 3
