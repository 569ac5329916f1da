"""AdaptiveThrottle: the SRE formula, what counts as accepted, the sliding window, the
calling forms, and threads sharing one throttle."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import random
import sys
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from stalwart import ConfigError, RateLimitedError
from stalwart._throttle import AdaptiveThrottle, ThrottleConfig, ThrottleCore, ThrottleStats
from stalwart.events import CallRejected, Event
from stalwart.testing import FakeClock


class Overloaded(Exception):
    """The backend said no (a 429 or 503)."""


class NotFound(Exception):
    """The backend answered: the request was accepted, the answer is an error."""


class NeverDraw:
    """An rng that fails the test if the throttle ever needs a random draw."""

    def random(self) -> float:
        raise AssertionError("no draw expected: the rejection probability is 0")


class AlwaysReject:
    def random(self) -> float:
        return 0.0


def refuse() -> None:
    raise Overloaded


def accept() -> str:
    return "ok"


def fill(throttle: AdaptiveThrottle, refused: int, accepted: int = 0) -> None:
    """Count ``accepted`` accepts, then ``refused`` requests not accepted (refused by the
    backend or, once the throttle kicks in, rejected locally: both count the same)."""
    for _ in range(accepted):
        throttle.call(accept)
    for _ in range(refused):
        with pytest.raises((Overloaded, RateLimitedError)):
            throttle.call(refuse)


# -- configuration -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("options", "field"),
    [
        ({"k": 0.5}, "k"),
        ({"k": 0}, "k"),
        ({"k": -2.0}, "k"),
        ({"k": float("nan")}, "k"),
        ({"k": float("inf")}, "k"),
        ({"k": True}, "k"),
        ({"k": "2"}, "k"),
        ({"window": 0}, "window"),
        ({"window": -1.0}, "window"),
        ({"window": float("inf")}, "window"),
        ({"min_requests": -1}, "min_requests"),
        ({"min_requests": 1.5}, "min_requests"),
        ({"overload_on": "Overloaded"}, "overload_on"),
        ({"overload_on": (Overloaded, 3)}, "overload_on"),
        ({"failure_if": 3}, "failure_if"),
        ({"name": ""}, "name"),
        ({"clock": object()}, "clock"),
        ({"rng": object()}, "rng"),
    ],
)
def test_bad_setting_is_a_config_error_naming_it(options: dict[str, Any], field: str) -> None:
    settings: dict[str, Any] = {"overload_on": Overloaded, **options}
    with pytest.raises(ConfigError) as info:
        AdaptiveThrottle(**settings)
    assert info.value.field == field


def test_k_below_one_is_refused_with_the_reason() -> None:
    with pytest.raises(ConfigError, match="even while the backend accepts every one"):
        AdaptiveThrottle(k=0.9, overload_on=Overloaded)


@pytest.mark.parametrize("k", [1, 1.1, 2.0, 10])
def test_k_of_one_and_above_is_allowed(k: float) -> None:
    assert AdaptiveThrottle(k=k, overload_on=Overloaded).config.k == k


def test_a_throttle_that_could_never_throttle_is_refused() -> None:
    with pytest.raises(ConfigError, match="nothing is ever throttled") as info:
        AdaptiveThrottle()
    assert info.value.field == "overload_on"
    with pytest.raises(ConfigError):
        AdaptiveThrottle(overload_on=[])
    AdaptiveThrottle(failure_if=lambda response: response == 429)  # a value check suffices
    AdaptiveThrottle(overload_on=lambda exc: "busy" in str(exc))


def test_describe_lists_kind_name_and_every_setting() -> None:
    throttle = AdaptiveThrottle(k=1.5, window=60.0, overload_on=Overloaded, name="search")
    assert throttle.describe() == {
        "strategy": "adaptive_throttle",
        "name": "search",
        "k": 1.5,
        "window": 60.0,
        "min_requests": 10,
        "overload_on": Overloaded,
        "failure_if": None,
    }
    assert AdaptiveThrottle(overload_on=Overloaded).name == "adaptive_throttle"
    assert "k=1.5" in repr(throttle)


# -- the formula -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("requests", "accepts", "k", "expected"),
    [
        (30, 5, 2.0, (30 - 10) / 31),
        (30, 30, 2.0, 0.0),
        (30, 15, 2.0, 0.0),  # exactly k times the accepts: not yet
        (100, 0, 2.0, 100 / 101),
        (100, 50, 1.1, (100 - 55) / 101),
        (10, 9, 1.0, 1 / 11),
    ],
)
def test_core_probability_is_the_sre_formula(
    requests: int, accepts: int, k: float, expected: float
) -> None:
    core = ThrottleCore(ThrottleConfig(k=k, min_requests=0, overload_on=Overloaded))
    for i in range(requests):
        core.record(0.0, i < accepts)
    assert core.counts(0.0) == (requests, accepts)
    assert core.probability(0.0) == pytest.approx(expected)


def test_nothing_is_rejected_while_the_backend_accepts_everything(clock: FakeClock) -> None:
    throttle = AdaptiveThrottle(overload_on=Overloaded, clock=clock, rng=NeverDraw())
    for _ in range(2000):
        assert throttle.call(accept) == "ok"
        clock.advance(0.05)
    assert throttle.stats().rejection_probability == 0.0


def test_no_local_rejection_below_min_requests(clock: FakeClock) -> None:
    throttle = AdaptiveThrottle(
        overload_on=Overloaded, min_requests=5, clock=clock, rng=AlwaysReject()
    )
    fill(throttle, refused=4, accepted=0)
    assert throttle.stats().rejection_probability == 0.0
    with pytest.raises(Overloaded):
        throttle.call(refuse)  # the 5th request still goes out
    assert throttle.stats().rejection_probability == pytest.approx(5 / 6)
    with pytest.raises(RateLimitedError):
        throttle.call(accept)


def test_observed_rejections_converge_to_the_formula(clock: FakeClock) -> None:
    """Over a long seeded run against a flaky backend, the local rejections observed match
    the sum of the formula's probabilities at each request (computed from a reference
    count kept by the test), within four standard deviations."""
    throttle = AdaptiveThrottle(
        k=2.0, min_requests=0, overload_on=Overloaded, clock=clock, rng=random.Random(20240)
    )
    backend = random.Random(7)
    requests = accepts = rejected = 0
    expected = variance = 0.0

    def flaky() -> None:
        if backend.random() < 0.7:  # the backend refuses 70%: well over what k=2 tolerates
            raise Overloaded

    for _ in range(20_000):
        p = max(0.0, (requests - 2.0 * accepts) / (requests + 1))
        expected += p
        variance += p * (1 - p)
        requests += 1
        try:
            throttle.call(flaky)
        except RateLimitedError:
            rejected += 1
        except Overloaded:
            pass
        else:
            accepts += 1
        clock.advance(0.001)  # 20 s in all: inside the two-minute window
    assert throttle.stats() == ThrottleStats(
        requests=requests, accepts=accepts, rejection_probability=pytest.approx(p, abs=1e-3)
    )
    assert abs(rejected - expected) <= 4 * math.sqrt(variance) + 1
    assert rejected / requests == pytest.approx(expected / requests, abs=0.02)


@pytest.mark.parametrize("k", [2.0, 3.0])
def test_an_overloaded_backend_receives_about_k_times_what_it_accepts(
    k: float, clock: FakeClock
) -> None:
    """The SRE book's claim: the client keeps sending about k times what the backend
    accepts and rejects the rest itself. Backend capacity 10/s; offered load 100/s."""
    throttle = AdaptiveThrottle(k=k, overload_on=Overloaded, clock=clock, rng=random.Random(1))
    sent: dict[int, int] = {}

    def backend(second: int) -> None:
        sent[second] = sent.get(second, 0) + 1
        if sent[second] > 10:
            raise Overloaded

    for _ in range(100 * 600):
        with contextlib.suppress(RateLimitedError, Overloaded):
            throttle.call(backend, int(clock.monotonic()))
        clock.advance(0.01)
    steady = [sent[s] for s in range(300, 600)]
    assert sum(steady) / len(steady) == pytest.approx(k * 10, rel=0.05)


def test_the_window_forgets_old_counts(clock: FakeClock) -> None:
    throttle = AdaptiveThrottle(overload_on=Overloaded, window=60.0, clock=clock)
    fill(throttle, refused=20, accepted=0)
    assert throttle.stats().rejection_probability > 0.9
    clock.advance(30.0)
    assert throttle.stats().requests == 20  # half a window later: still remembered
    clock.advance(31.0)
    assert throttle.stats() == ThrottleStats(requests=0, accepts=0, rejection_probability=0.0)
    throttle._rng = NeverDraw()
    assert throttle.call(accept) == "ok"


def test_the_window_slides_bucket_by_bucket(clock: FakeClock) -> None:
    throttle = AdaptiveThrottle(overload_on=Overloaded, window=10.0, min_requests=0, clock=clock)
    for second in range(10):
        clock.advance(second - clock.monotonic())
        fill(throttle, refused=1)  # one request at t = 0, 1, ..., 9
    assert throttle.stats().requests == 10
    clock.advance(5.0)  # t = 14: the last 10 s hold the requests of t = 5 ... 9
    assert throttle.stats().requests == 5


def test_a_seeded_rng_makes_the_rejections_reproducible(clock: FakeClock) -> None:
    def run(seed: int) -> list[bool]:
        throttle = AdaptiveThrottle(
            overload_on=Overloaded, clock=FakeClock(), rng=random.Random(seed)
        )
        fill(throttle, refused=10, accepted=5)  # then p = (15 - 10) / 16
        outcomes = []
        for _ in range(200):
            try:
                throttle.call(accept)
                outcomes.append(True)
            except RateLimitedError:
                outcomes.append(False)
        return outcomes

    assert run(3) == run(3)
    assert run(3) != run(4)
    assert False in run(3)


# -- what counts as accepted -------------------------------------------------------------


def test_other_exceptions_count_as_accepted_and_pass_through(clock: FakeClock) -> None:
    throttle = AdaptiveThrottle(overload_on=Overloaded, clock=clock)
    missing = NotFound("no such torrent")

    def lookup() -> None:
        raise missing

    with pytest.raises(NotFound) as info:
        throttle.call(lookup)
    assert info.value is missing
    overloaded = Overloaded("busy")
    with pytest.raises(Overloaded) as info2:
        throttle.call(lambda: (_ for _ in ()).throw(overloaded))
    assert info2.value is overloaded
    assert throttle.stats().requests == 2
    assert throttle.stats().accepts == 1


def test_an_overload_predicate_can_read_the_exception(clock: FakeClock) -> None:
    class HTTPError(Exception):
        def __init__(self, status: int) -> None:
            self.status = status

    throttle = AdaptiveThrottle(
        overload_on=lambda exc: getattr(exc, "status", None) in (429, 503), clock=clock
    )
    for status in (429, 503, 404, 500):
        with pytest.raises(HTTPError):
            throttle.call(lambda s=status: (_ for _ in ()).throw(HTTPError(s)))
    assert (throttle.stats().requests, throttle.stats().accepts) == (4, 2)


def test_failure_if_counts_a_value_as_refused_and_still_returns_it(clock: FakeClock) -> None:
    throttle = AdaptiveThrottle(failure_if=lambda status: status == 429, clock=clock)
    assert throttle.call(lambda: 429) == 429
    assert throttle.call(lambda: 200) == 200
    assert (throttle.stats().requests, throttle.stats().accepts) == (2, 1)


def test_cancellation_counts_nothing(clock: FakeClock) -> None:
    throttle = AdaptiveThrottle(overload_on=Overloaded, clock=clock)

    async def hang() -> None:
        await asyncio.Event().wait()

    async def main() -> None:
        task = asyncio.create_task(throttle.acall(hang))
        await asyncio.sleep(0)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(main())
    assert throttle.stats().requests == 0


def test_a_failing_predicate_is_logged_and_counts_as_accepted(
    clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(value: object) -> bool:
        raise RuntimeError("bug in predicate")

    throttle = AdaptiveThrottle(overload_on=broken, failure_if=broken, clock=clock)
    with caplog.at_level(logging.ERROR, logger="stalwart"):
        assert throttle.call(lambda: 1) == 1
        with pytest.raises(NotFound):
            throttle.call(lambda: (_ for _ in ()).throw(NotFound()))
    assert (throttle.stats().requests, throttle.stats().accepts) == (2, 2)
    assert [r.message.split(":")[1].strip().split()[0] for r in caplog.records] == [
        "failure_if",
        "overload_on",
    ]


# -- local rejections --------------------------------------------------------------------


def test_a_local_rejection_raises_without_calling_and_counts_as_a_request(
    clock: FakeClock,
) -> None:
    throttle = AdaptiveThrottle(overload_on=Overloaded, clock=clock, rng=AlwaysReject(), name="llm")
    fill(throttle, refused=10, accepted=0)
    called = []
    with pytest.raises(RateLimitedError) as info:
        throttle.call(lambda: called.append(1))
    error = info.value
    assert called == []
    assert error.name == "llm"
    assert error.retry_in is None
    assert error.detail.startswith("adaptive throttling: the backend accepted 0 of the last 10")
    assert throttle.stats().requests == 11
    assert throttle.stats().accepts == 0


def test_local_rejections_publish_call_rejected(clock: FakeClock) -> None:
    throttle = AdaptiveThrottle(overload_on=Overloaded, clock=clock, rng=AlwaysReject())
    seen: list[Event] = []
    throttle.add_listener(seen.append, CallRejected)
    fill(throttle, refused=10, accepted=0)
    clock.advance(2.0)
    with pytest.raises(RateLimitedError):
        throttle.call(accept)
    assert [e.to_dict() for e in seen] == [
        {
            "event": "CallRejected",
            "name": "adaptive_throttle",
            "strategy": "adaptive_throttle",
            "at": 2.0,
            "state": None,
            "retry_in": None,
        }
    ]
    throttle.remove_listener(seen.append)


# -- calling forms -----------------------------------------------------------------------


def test_decorator_on_def_and_async_def_keeps_the_signature(clock: FakeClock) -> None:
    throttle = AdaptiveThrottle(overload_on=Overloaded, clock=clock)

    @throttle
    def search(query: str, *, limit: int = 10) -> str:
        return query * limit

    @throttle
    async def asearch(query: str) -> str:
        if query == "busy":
            raise Overloaded
        return query

    assert search("a", limit=2) == "aa"
    assert search.__name__ == "search"
    assert asyncio.run(asearch("b")) == "b"
    with pytest.raises(Overloaded):
        asyncio.run(asearch("busy"))
    assert asyncio.run(throttle.acall(asearch.__wrapped__, "c")) == "c"  # type: ignore[attr-defined]
    assert (throttle.stats().requests, throttle.stats().accepts) == (4, 3)


def test_blocks_count_like_calls(clock: FakeClock) -> None:
    throttle = AdaptiveThrottle(overload_on=Overloaded, clock=clock)
    with throttle:
        pass
    with pytest.raises(Overloaded), throttle:
        raise Overloaded

    async def main() -> None:
        async with throttle:
            pass

    asyncio.run(main())
    assert (throttle.stats().requests, throttle.stats().accepts) == (3, 2)


def test_call_and_acall_refuse_the_wrong_kind_of_function() -> None:
    throttle = AdaptiveThrottle(overload_on=Overloaded)

    async def afn() -> None:
        return None

    with pytest.raises(TypeError, match="acall"):
        throttle.call(afn)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="call"):
        asyncio.run(throttle.acall(accept))  # type: ignore[arg-type]


# -- threads -----------------------------------------------------------------------------


@pytest.fixture
def _switch_threads_often() -> Iterator[None]:
    before = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    yield
    sys.setswitchinterval(before)


@pytest.mark.usefixtures("_switch_threads_often")
def test_threads_hammering_keep_exact_counts() -> None:
    throttle = AdaptiveThrottle(overload_on=Overloaded, clock=FakeClock(), rng=random.Random(5))
    lock = threading.Lock()
    totals = {"calls": 0, "accepted": 0}
    errors: list[BaseException] = []

    def worker(seed: int) -> None:
        rng = random.Random(seed)
        try:
            for _ in range(1000):
                refused = rng.random() < 0.5
                try:
                    throttle.call(refuse if refused else accept)
                    outcome = 1
                except (Overloaded, RateLimitedError):
                    outcome = 0
                with lock:
                    totals["calls"] += 1
                    totals["accepted"] += outcome
        except BaseException as exc:  # surfaced below, so a broken thread fails the test
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert errors == []
    stats = throttle.stats()
    assert (stats.requests, stats.accepts) == (totals["calls"], totals["accepted"])
    assert stats.requests == 8000
