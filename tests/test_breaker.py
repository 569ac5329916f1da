"""The breaker's behaviour, driven through its public API on a FakeClock."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from stalwart import (
    BreakerConfig,
    CircuitBreaker,
    CircuitOpenError,
    ConfigError,
    PollIntervals,
    State,
)
from stalwart._breaker import DISABLE_ENV
from stalwart.testing import FakeClock


class Boom(Exception):
    pass


class RateLimited(Exception):
    def __init__(self, retry_after: Any) -> None:
        super().__init__("429")
        self.retry_after = retry_after


def ok() -> str:
    return "ok"


def boom() -> None:
    raise Boom


def fail(breaker: CircuitBreaker, times: int = 1, exc: BaseException | None = None) -> None:
    raiser = boom if exc is None else _raiser(exc)
    for _ in range(times):
        with pytest.raises(type(exc) if exc else Boom):
            breaker.call(raiser)


def _raiser(exc: BaseException) -> Any:
    def raise_it() -> None:
        raise exc

    return raise_it


def rejected(breaker: CircuitBreaker) -> CircuitOpenError:
    with pytest.raises(CircuitOpenError) as info:
        breaker.call(ok)
    return info.value


# -- consecutive mode --------------------------------------------------------------


def test_opens_after_failure_threshold_consecutive_failures(clock: FakeClock) -> None:
    breaker = CircuitBreaker("q", failure_threshold=3, clock=clock)
    fail(breaker, 2)
    assert breaker.state is State.CLOSED
    fail(breaker)
    assert breaker.state is State.OPEN
    assert not breaker.available


def test_a_success_resets_the_consecutive_count(clock: FakeClock) -> None:
    breaker = CircuitBreaker("q", failure_threshold=3, clock=clock)
    fail(breaker, 2)
    assert breaker.call(ok) == "ok"
    fail(breaker, 2)
    assert breaker.state is State.CLOSED
    assert breaker.snapshot().failure_count == 2


def test_open_rejects_without_running_and_reports_retry_in(clock: FakeClock) -> None:
    breaker = CircuitBreaker("q", failure_threshold=1, recovery_timeout=60, clock=clock)
    fail(breaker)
    ran: list[int] = []
    clock.advance(15)
    with pytest.raises(CircuitOpenError) as info:
        breaker.call(lambda: ran.append(1))
    assert ran == []
    assert info.value.retry_in == pytest.approx(45)
    assert info.value.name == "q"


def test_half_open_after_recovery_timeout_then_closes_on_success_threshold(
    clock: FakeClock,
) -> None:
    breaker = CircuitBreaker(
        "q", failure_threshold=2, recovery_timeout=60, success_threshold=2, clock=clock
    )
    fail(breaker, 2)
    clock.advance(59.9)
    assert breaker.state is State.OPEN
    clock.advance(0.1)
    assert breaker.state is State.HALF_OPEN
    breaker.call(ok)
    assert breaker.state is State.HALF_OPEN
    assert breaker.snapshot().success_count == 1
    breaker.call(ok)
    assert breaker.state is State.CLOSED


def test_a_failed_probe_reopens_for_a_full_period(clock: FakeClock) -> None:
    breaker = CircuitBreaker("q", failure_threshold=1, recovery_timeout=10, clock=clock)
    fail(breaker)
    clock.advance(10)
    fail(breaker)
    assert breaker.state is State.OPEN
    assert rejected(breaker).retry_in == pytest.approx(10)


def test_recovery_timeout_grows_after_failed_recoveries_up_to_the_cap(clock: FakeClock) -> None:
    breaker = CircuitBreaker(
        "q",
        failure_threshold=1,
        recovery_timeout=10,
        recovery_backoff=2,
        max_recovery_timeout=35,
        clock=clock,
    )
    fail(breaker)
    waits = []
    for _ in range(4):
        waits.append(rejected(breaker).retry_in)
        clock.advance(waits[-1] or 0)
        fail(breaker)  # the probe fails
    assert waits == [10, 20, 35, 35]
    assert breaker.snapshot().failed_recoveries == 4
    clock.advance(35)
    breaker.call(ok)
    assert breaker.state is State.CLOSED
    snap = breaker.snapshot()
    assert (snap.recovery_timeout, snap.failed_recoveries) == (10, 0)


# -- half-open probes and leases ---------------------------------------------------


def test_half_open_admits_only_half_open_max_calls_probes(clock: FakeClock) -> None:
    breaker = CircuitBreaker(
        "q", failure_threshold=1, recovery_timeout=5, half_open_max_calls=2, clock=clock
    )
    fail(breaker)
    clock.advance(5)
    with breaker, breaker:
        # Two probes are in flight; a third caller is turned away.
        assert breaker.snapshot().half_open_in_flight == 2
        rejected(breaker)
    assert breaker.state is State.CLOSED


def test_a_hung_probe_loses_its_lease_and_counts_as_failed(clock: FakeClock) -> None:
    breaker = CircuitBreaker(
        "q", failure_threshold=1, recovery_timeout=10, probe_lease=3, clock=clock
    )
    fail(breaker)
    clock.advance(10)
    breaker.__enter__()  # a probe that never comes back
    rejected(breaker)  # its slot is taken
    clock.advance(3)
    assert breaker.state is State.OPEN  # lease expired: the recovery failed
    assert breaker.snapshot().failed_recoveries == 1
    clock.advance(10)
    assert breaker.call(ok) == "ok"  # a new probe is admitted and closes it
    assert breaker.state is State.CLOSED
    # The hung probe finally returns: its stale ticket changes nothing.
    breaker.__exit__(None, None, None)
    assert breaker.state is State.CLOSED


def test_probe_lease_defaults_to_recovery_timeout_plus_call_timeout() -> None:
    assert BreakerConfig(recovery_timeout=7).effective_probe_lease == 7
    assert BreakerConfig(recovery_timeout=7, call_timeout=2).effective_probe_lease == 9
    assert BreakerConfig(probe_lease=3, call_timeout=2).effective_probe_lease == 3


def test_a_probe_back_after_its_lease_failed_whether_or_not_anyone_looked(
    clock: FakeClock,
) -> None:
    outcomes = []
    for someone_looked in (False, True):
        breaker = CircuitBreaker(
            "q", failure_threshold=1, recovery_timeout=10, probe_lease=5, clock=clock
        )
        fail(breaker)
        clock.advance(10)
        with breaker:  # the probe
            clock.advance(8)  # overruns its 5 s lease
            if someone_looked:
                assert breaker.state is State.OPEN
        snap = breaker.snapshot()
        outcomes.append((snap.state, snap.failed_recoveries))
    assert outcomes == [(State.OPEN, 1), (State.OPEN, 1)]


def test_an_ignored_probe_frees_its_slot_without_deciding(clock: FakeClock) -> None:
    breaker = CircuitBreaker(
        "q", failure_threshold=1, recovery_timeout=5, ignore=KeyError, clock=clock
    )
    fail(breaker)
    clock.advance(5)
    fail(breaker, exc=KeyError("x"))
    assert breaker.state is State.HALF_OPEN
    assert breaker.snapshot().half_open_in_flight == 0
    breaker.call(ok)
    assert breaker.state is State.CLOSED


def test_a_call_admitted_before_opening_cannot_close_the_breaker(clock: FakeClock) -> None:
    breaker = CircuitBreaker("q", failure_threshold=1, recovery_timeout=5, clock=clock)
    breaker.__enter__()  # a slow call starts while closed
    fail(breaker)  # another call fails: open
    clock.advance(5)
    assert breaker.state is State.HALF_OPEN
    breaker.__exit__(None, None, None)  # the slow call succeeds late
    assert breaker.state is State.HALF_OPEN  # stale ticket: no effect on the probes
    assert breaker.snapshot().total_successes == 1


def test_a_stale_failure_does_not_count_toward_the_new_period(clock: FakeClock) -> None:
    breaker = CircuitBreaker("q", failure_threshold=2, recovery_timeout=5, clock=clock)
    breaker.__enter__()
    fail(breaker, 2)
    clock.advance(5)
    breaker.call(ok)  # probe closes it
    try:
        raise Boom
    except Boom as exc:
        breaker.__exit__(Boom, exc, None)  # the old call fails now
    assert breaker.snapshot().failure_count == 0
    assert breaker.snapshot().total_failures == 3


# -- classification ---------------------------------------------------------------


def test_exceptions_outside_record_count_as_successes(clock: FakeClock) -> None:
    breaker = CircuitBreaker("q", failure_threshold=1, record=ConnectionError, clock=clock)
    fail(breaker, 3, exc=ValueError("bad input"))
    assert breaker.state is State.CLOSED
    assert breaker.snapshot().total_successes == 3
    fail(breaker, exc=ConnectionError())
    assert breaker.state is State.OPEN


def test_ignored_exceptions_count_as_neither(clock: FakeClock) -> None:
    breaker = CircuitBreaker("q", failure_threshold=2, ignore=(KeyError,), clock=clock)
    fail(breaker)
    fail(breaker, 5, exc=KeyError())
    snap = breaker.snapshot()
    assert snap.failure_count == 1  # the consecutive run was not reset either
    assert (snap.total_ignored, snap.total_successes) == (5, 0)


def test_record_and_ignore_accept_predicates(clock: FakeClock) -> None:
    breaker = CircuitBreaker(
        "q",
        failure_threshold=1,
        record=lambda e: "fatal" in str(e),
        ignore=lambda e: "skip" in str(e),
        clock=clock,
    )
    fail(breaker, exc=Boom("skip fatal"))
    fail(breaker, exc=Boom("harmless"))
    assert breaker.state is State.CLOSED
    fail(breaker, exc=Boom("fatal"))
    assert breaker.state is State.OPEN


def test_cancellation_and_interrupts_are_ignored(clock: FakeClock) -> None:
    breaker = CircuitBreaker("q", failure_threshold=1, clock=clock)
    fail(breaker, exc=KeyboardInterrupt())
    assert breaker.state is State.CLOSED
    assert breaker.snapshot().total_ignored == 1


def test_failure_if_judges_values_which_are_still_returned(clock: FakeClock) -> None:
    breaker = CircuitBreaker(
        "q", failure_threshold=2, failure_if=lambda status: status >= 500, clock=clock
    )
    assert breaker.call(lambda: 503) == 503
    assert breaker.call(lambda: 200) == 200
    assert breaker.call(lambda: 502) == 502
    assert breaker.call(lambda: 500) == 500
    assert breaker.state is State.OPEN


# -- retry_after: the coordinated pause ---------------------------------------------


def test_retry_after_opens_at_once_for_at_least_that_long(clock: FakeClock) -> None:
    breaker = CircuitBreaker("llm", failure_threshold=5, recovery_timeout=10, clock=clock)
    fail(breaker, exc=RateLimited(120))
    assert breaker.state is State.OPEN
    assert rejected(breaker).retry_in == pytest.approx(120)
    clock.advance(119)
    assert breaker.state is State.OPEN
    clock.advance(1)
    assert breaker.state is State.HALF_OPEN


def test_retry_after_shorter_than_recovery_timeout_keeps_the_longer(clock: FakeClock) -> None:
    breaker = CircuitBreaker("llm", recovery_timeout=30, clock=clock)
    fail(breaker, exc=RateLimited(timedelta(seconds=2)))
    assert rejected(breaker).retry_in == pytest.approx(30)


def test_a_late_retry_after_extends_an_open_breaker(clock: FakeClock) -> None:
    breaker = CircuitBreaker("llm", failure_threshold=1, recovery_timeout=10, clock=clock)
    breaker.__enter__()
    fail(breaker)
    try:
        raise RateLimited(60)
    except RateLimited as exc:
        breaker.__exit__(RateLimited, exc, None)
    assert rejected(breaker).retry_in == pytest.approx(60)


def test_retry_after_from_reads_hints_from_values_too(clock: FakeClock) -> None:
    breaker = CircuitBreaker(
        "api",
        failure_if=lambda r: r["status"] == 429,
        retry_after_from=lambda r: r.get("retry_after") if isinstance(r, dict) else None,
        clock=clock,
    )
    assert breaker.call(lambda: {"status": 429, "retry_after": 45})["status"] == 429
    assert rejected(breaker).retry_in == pytest.approx(45)


def test_unusable_retry_after_values_are_no_hint(clock: FakeClock) -> None:
    breaker = CircuitBreaker("q", failure_threshold=3, clock=clock)
    for hint in ("soon", float("nan"), None, True):
        fail(breaker, exc=RateLimited(hint))
        breaker.call(ok)
    assert breaker.state is State.CLOSED
    fail(breaker, exc=RateLimited(-5))  # negative: clamped to 0, still a pause signal
    assert breaker.state is State.OPEN


# -- rate mode and slow calls -------------------------------------------------------


def test_failure_rate_over_a_count_window_waits_for_minimum_calls(clock: FakeClock) -> None:
    breaker = CircuitBreaker("q", failure_rate=0.5, window=10, minimum_calls=4, clock=clock)
    fail(breaker, 3)
    assert breaker.state is State.CLOSED  # 3 calls < minimum_calls
    breaker.call(ok)
    assert breaker.state is State.OPEN  # 3/4 >= 0.5


def test_count_window_forgets_calls_older_than_its_size(clock: FakeClock) -> None:
    breaker = CircuitBreaker("q", failure_rate=0.5, window=4, minimum_calls=4, clock=clock)
    fail(breaker)
    for _ in range(4):
        breaker.call(ok)  # the failure slides out
    fail(breaker)
    assert breaker.snapshot().failure_rate == 0.25
    assert breaker.state is State.CLOSED


def test_failure_rate_over_a_time_window_forgets_old_calls(clock: FakeClock) -> None:
    breaker = CircuitBreaker(
        "q", failure_rate=0.5, window_duration=10, minimum_calls=3, clock=clock
    )
    fail(breaker, 2)
    clock.advance(11)  # those failures leave the window
    breaker.call(ok)
    breaker.call(ok)
    fail(breaker)
    assert breaker.state is State.CLOSED  # 1/3 in the window
    fail(breaker)
    assert breaker.state is State.OPEN  # 2/4


def test_slow_calls_open_the_breaker_at_slow_call_rate(clock: FakeClock) -> None:
    breaker = CircuitBreaker(
        "q",
        slow_call_duration=1.0,
        slow_call_rate=0.5,
        window=4,
        minimum_calls=4,
        clock=clock,
    )

    def slow() -> str:
        clock.advance(2)
        return "late"

    breaker.call(ok)
    breaker.call(ok)
    breaker.call(slow)
    assert breaker.state is State.CLOSED
    breaker.call(slow)
    assert breaker.state is State.OPEN
    assert breaker.snapshot().slow_call_rate is None  # window cleared on opening


def test_a_slow_probe_is_a_failed_recovery(clock: FakeClock) -> None:
    breaker = CircuitBreaker(
        "q", failure_threshold=1, slow_call_duration=1, recovery_timeout=5, clock=clock
    )
    fail(breaker)
    clock.advance(5)

    def slow() -> None:
        clock.advance(2)

    breaker.call(slow)
    assert breaker.state is State.OPEN


# -- manual control, the environment switch ----------------------------------------


def test_force_open_rejects_until_reset(clock: FakeClock) -> None:
    breaker = CircuitBreaker("q", recovery_timeout=1, clock=clock)
    breaker.force_open()
    clock.advance(3600)
    assert breaker.state is State.FORCED_OPEN
    assert rejected(breaker).retry_in is None
    breaker.reset()
    assert breaker.call(ok) == "ok"


def test_disable_lets_everything_through_but_keeps_counting(clock: FakeClock) -> None:
    breaker = CircuitBreaker("q", failure_threshold=1, clock=clock)
    breaker.disable()
    fail(breaker, 10)
    assert breaker.state is State.DISABLED
    assert breaker.available
    assert breaker.snapshot().total_failures == 10
    breaker.reset()
    assert breaker.state is State.CLOSED


def test_reset_keeps_lifetime_totals(clock: FakeClock) -> None:
    breaker = CircuitBreaker("q", failure_threshold=1, clock=clock)
    breaker.call(ok)
    fail(breaker)
    rejected(breaker)
    breaker.reset()
    snap = breaker.snapshot()
    assert (snap.total_calls, snap.total_failures, snap.total_rejections) == (2, 1, 1)
    assert snap.state is State.CLOSED
    assert snap.transitions == 2


def test_the_environment_switch_survives_reset(
    monkeypatch: pytest.MonkeyPatch, clock: FakeClock
) -> None:
    # An admin reset must not override the operator's kill switch.
    monkeypatch.setenv(DISABLE_ENV, "1")
    breaker = CircuitBreaker("q", clock=clock)
    breaker.force_open()
    breaker.reset()
    assert breaker.state is State.DISABLED


def test_disable_forgets_when_it_last_opened(clock: FakeClock) -> None:
    breaker = CircuitBreaker("q", failure_threshold=1, clock=clock)
    fail(breaker)
    assert breaker.snapshot().opened_at is not None
    breaker.disable()
    assert breaker.snapshot().opened_at is None


@pytest.mark.parametrize("value", ["1", "true", "YES", " on "])
def test_environment_switch_makes_breakers_pass_through(
    monkeypatch: pytest.MonkeyPatch, clock: FakeClock, value: str
) -> None:
    monkeypatch.setenv(DISABLE_ENV, value)
    breaker = CircuitBreaker("q", failure_threshold=1, clock=clock)
    fail(breaker, 3)
    assert breaker.state is State.DISABLED
    assert breaker.call(ok) == "ok"


def test_environment_switch_with_a_bad_value_is_a_config_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(DISABLE_ENV, "maybe")
    with pytest.raises(ConfigError) as info:
        CircuitBreaker("q")
    assert info.value.field == DISABLE_ENV


# -- snapshot and poll hints --------------------------------------------------------


def test_snapshot_to_dict_has_the_documented_fields(clock: FakeClock) -> None:
    breaker = CircuitBreaker("qbittorrent", failure_threshold=2, clock=clock)
    breaker.call(ok)
    fail(breaker, 2)
    clock.advance(4)
    data = breaker.snapshot().to_dict()
    expected = {
        "name": "qbittorrent",
        "state": "open",
        "available": False,
        "failure_count": 0,
        "success_count": 0,
        "retry_in": 26.0,
        "opened_at": 1_700_000_000.0,
        "total_calls": 3,
        "total_failures": 2,
        "transitions": 1,
    }
    assert {key: data[key] for key in expected} == expected
    assert data["failure_rate"] == pytest.approx(2 / 3)


def test_poll_hint_follows_seed_000s_interval_table(clock: FakeClock) -> None:
    breaker = CircuitBreaker(
        "qbittorrent", failure_threshold=2, recovery_timeout=60, success_threshold=2, clock=clock
    )
    assert breaker.poll_hint() == {
        "available": True,
        "state": "closed",
        "poll_interval": 5.0,
        "retry_in": 0.0,
        "message": "qbittorrent is available",
    }
    fail(breaker, 2)
    clock.advance(14.7)
    hint = breaker.poll_hint()
    assert (hint["available"], hint["state"], hint["poll_interval"]) == (False, "open", 60.0)
    assert hint["retry_in"] == pytest.approx(45.3)
    assert "next check in 45 s" in hint["message"]
    clock.advance(45.3)
    assert breaker.poll_hint()["poll_interval"] == 15.0  # half-open: recovering
    for _ in range(4):  # four failed recoveries in a row: more than 3
        clock.advance(60)
        fail(breaker)
    assert breaker.poll_hint()["poll_interval"] == 120.0


def test_poll_intervals_are_configurable(clock: FakeClock) -> None:
    breaker = CircuitBreaker(
        "q", poll_intervals=PollIntervals(fast=1, medium=2, slow=3, very_slow=4), clock=clock
    )
    assert breaker.poll_hint()["poll_interval"] == 1


def test_available_is_false_while_half_open_slots_are_taken(clock: FakeClock) -> None:
    breaker = CircuitBreaker("q", failure_threshold=1, recovery_timeout=1, clock=clock)
    fail(breaker)
    clock.advance(1)
    assert breaker.available
    with breaker:
        assert not breaker.available
        hint = breaker.poll_hint()
        assert (hint["state"], hint["retry_in"]) == ("half_open", None)  # depends on the probe
        assert rejected(breaker).retry_in is None


def test_repr_shows_name_and_state(clock: FakeClock) -> None:
    assert repr(CircuitBreaker("db", clock=clock)) == "CircuitBreaker('db', state=closed)"


def test_a_stale_success_does_not_reset_the_new_periods_failures(clock: FakeClock) -> None:
    breaker = CircuitBreaker("q", failure_threshold=2, recovery_timeout=5, clock=clock)
    breaker.__enter__()  # admitted in the first closed period, still running
    fail(breaker, 2)  # opens
    clock.advance(5)
    breaker.call(ok)  # the probe closes it: a new closed period
    fail(breaker)  # one failure in the new period
    breaker.__exit__(None, None, None)  # the old call succeeds now
    assert breaker.snapshot().failure_count == 1
    fail(breaker)
    assert breaker.state is State.OPEN


# -- user hooks and server hints -------------------------------------------------------


def test_a_raising_hook_is_logged_and_the_call_keeps_its_own_outcome(
    clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    breaker = CircuitBreaker(
        "q",
        failure_threshold=1,
        recovery_timeout=10,
        failure_if=lambda r: r["status"] >= 500,
        clock=clock,
    )
    fail(breaker)
    clock.advance(10)
    assert breaker.call(dict) == {}  # the hook's KeyError does not replace the value
    assert "failure_if raised" in caplog.text
    assert breaker.state is State.CLOSED  # counted as the default: a success
    assert breaker.snapshot().half_open_in_flight == 0


def test_a_raising_record_predicate_counts_the_exception_as_a_failure(clock: FakeClock) -> None:
    def broken(exc: BaseException) -> bool:
        raise RuntimeError("predicate bug")

    breaker = CircuitBreaker("q", failure_threshold=1, record=broken, clock=clock)
    fail(breaker)  # the caller still sees its own Boom
    assert breaker.state is State.OPEN


def test_hints_from_retry_after_from_are_normalised_and_capped(clock: FakeClock) -> None:
    breaker = CircuitBreaker(
        "q",
        recovery_timeout=10,
        max_recovery_timeout=300,
        retry_after_from=lambda e: e.args[0] if e.args else None,
        clock=clock,
    )
    fail(breaker, exc=Boom(timedelta(seconds=45)))
    assert rejected(breaker).retry_in == pytest.approx(45)
    breaker.reset()
    fail(breaker, exc=Boom(float("inf")))  # no usable hint: an ordinary failure
    assert breaker.state is State.CLOSED
    fail(breaker, exc=Boom(86_400))  # a day: capped at max_recovery_timeout
    assert rejected(breaker).retry_in == pytest.approx(300)


def test_retry_after_pauses_even_when_the_exception_is_not_recorded(clock: FakeClock) -> None:
    breaker = CircuitBreaker(
        "llm", failure_threshold=5, record=ConnectionError, recovery_timeout=1, clock=clock
    )
    fail(breaker, exc=RateLimited(20))  # a 429 is not a ConnectionError, but says "pause"
    assert rejected(breaker).retry_in == pytest.approx(20)


def test_failure_count_stays_consecutive_when_slow_calls_keep_a_window(clock: FakeClock) -> None:
    breaker = CircuitBreaker("q", failure_threshold=3, slow_call_duration=5, clock=clock)
    fail(breaker)
    breaker.call(ok)
    fail(breaker)
    assert breaker.snapshot().failure_count == 1


def test_local_rejections_from_inner_strategies_are_ignored(clock: FakeClock) -> None:
    # In Pipeline(..., breaker, Bulkhead(...), ...) a full bulkhead refuses before the
    # dependency is asked: that is no evidence against the dependency.
    from stalwart import BulkheadFullError, DeadlineExceeded, RateLimitedError

    breaker = CircuitBreaker("q", failure_threshold=1, clock=clock)
    for refusal in (BulkheadFullError("b"), RateLimitedError("r", 1.0), CircuitOpenError("c")):
        fail(breaker, exc=refusal)
    assert breaker.state is State.CLOSED
    assert breaker.snapshot().total_ignored == 3
    fail(breaker, exc=DeadlineExceeded("t"))  # too slow: that is a dependency failure
    assert breaker.state is State.OPEN
