"""HealthRegistry: registration, judging runs, timeouts, breakers, events, reports, scheduling.

Timing logic runs on a FakeClock; the background loop is tested with short real intervals and
bounded polls (real waits only where a real task or thread is the point).
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Coroutine, Iterator
from typing import Any

import pytest

from stalwart import CircuitBreaker, ConfigError
from stalwart.events import Event
from stalwart.health import (
    CheckCompleted,
    CheckResult,
    HealthChanged,
    HealthRegistry,
    HealthReport,
    HealthStatus,
)
from stalwart.health._registry import MAX_ABANDONED, judge
from stalwart.health._scheduler import Schedule
from stalwart.testing import FakeClock
from threads import run_threads, switching_threads_often

HEALTHY, DEGRADED, UNHEALTHY = HealthStatus.HEALTHY, HealthStatus.DEGRADED, HealthStatus.UNHEALTHY
UNKNOWN = HealthStatus.UNKNOWN
POLL = 5.0  # seconds a bounded poll waits at most


def run(coro: Coroutine[Any, Any, Any]) -> Any:
    async def bounded() -> Any:
        return await asyncio.wait_for(coro, 15)

    return asyncio.run(bounded())


def wait_until(condition: Callable[[], bool], timeout: float = POLL) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.005)


async def await_until(condition: Callable[[], bool], within: float = POLL) -> None:
    deadline = time.monotonic() + within
    while not condition():
        assert time.monotonic() < deadline, "condition not reached in time"
        await asyncio.sleep(0.005)


class Counter:
    """A sync check that counts its calls and returns what it is told."""

    def __init__(self, value: Any = None) -> None:
        self.calls = 0
        self.value = value

    def __call__(self) -> Any:
        self.calls += 1
        return self.value


@pytest.fixture
def registry(clock: FakeClock) -> HealthRegistry:
    return HealthRegistry("api", clock=clock)


# -- configuration ------------------------------------------------------------------------


def ok() -> None:
    return None


@pytest.mark.parametrize(
    ("options", "field"),
    [
        ({"name": ""}, "name"),
        ({"name": "db:main"}, "name"),
        ({"name": "a/b"}, "name"),
        ({"name": 3}, "name"),
        ({"check": "SELECT 1"}, "check"),
        ({"interval": 0}, "interval"),
        ({"interval": float("inf")}, "interval"),
        ({"timeout": -1.0}, "timeout"),
        ({"timeout": float("nan")}, "timeout"),
        ({"critical": "yes"}, "critical"),
        ({"groups": "ready"}, "groups"),
        ({"groups": ("ready", "healthy")}, "groups"),
        ({"groups": 3}, "groups"),
        ({"breaker": object()}, "breaker"),
        ({"feed_breaker": True}, "feed_breaker"),
        ({"feed_breaker": 1}, "feed_breaker"),
        ({"component_type": ""}, "component_type"),
    ],
)
def test_bad_check_settings_raise_config_error_naming_the_field(
    registry: HealthRegistry, options: dict[str, Any], field: str
) -> None:
    args: dict[str, Any] = {"name": "db", "check": ok} | options
    with pytest.raises(ConfigError) as info:
        registry.add(args.pop("name"), args.pop("check"), **args)
    assert info.value.field == field
    assert registry.names() == ()


def test_a_generator_function_is_not_a_check(registry: HealthRegistry) -> None:
    def gen() -> Iterator[None]:
        yield None

    with pytest.raises(ConfigError, match="generator") as info:
        registry.add("db", gen)
    assert info.value.field == "check"


def test_a_duplicate_name_raises_config_error(registry: HealthRegistry) -> None:
    registry.add("db", ok)
    with pytest.raises(ConfigError, match="already registered") as info:
        registry.add("db", ok)
    assert info.value.field == "name"


@pytest.mark.parametrize(
    ("options", "field"),
    [({"history": 0}, "history"), ({"name": ""}, "name"), ({"clock": object()}, "clock")],
)
def test_bad_registry_settings_raise_config_error(options: dict[str, Any], field: str) -> None:
    with pytest.raises(ConfigError) as info:
        HealthRegistry(**options)
    assert info.value.field == field


def test_an_unknown_group_is_a_config_error(registry: HealthRegistry) -> None:
    with pytest.raises(ConfigError) as info:
        registry.report("readiness")
    assert info.value.field == "group"


def test_unknown_names_raise_key_error(registry: HealthRegistry) -> None:
    for action in (registry.get, registry.reset, registry.breaker, registry.remove):
        with pytest.raises(KeyError):
            action("nope")
    with pytest.raises(KeyError):
        run(registry.run_once("nope"))


def test_add_returns_the_settings_with_defaults(registry: HealthRegistry) -> None:
    config = registry.add("db", ok)
    assert (config.interval, config.timeout, config.critical) == (10.0, 2.0, True)
    assert config.groups == frozenset({"ready"})
    assert config.component_type == "component"
    assert registry.names() == ("db",)
    assert registry.config("db") is config


def test_component_type_comes_from_a_built_in_check_unless_given(registry: HealthRegistry) -> None:
    from stalwart.health import tcp_check

    assert registry.add("a", tcp_check("127.0.0.1", 1)).component_type == "system"
    assert registry.add("b", tcp_check("127.0.0.1", 1), component_type="x").component_type == "x"


# -- judging a run ------------------------------------------------------------------------


@pytest.mark.parametrize("value", [None, True, {"rows": 1}, CheckResult.passed()])
def test_none_true_a_dict_or_a_passing_result_pass(value: Any) -> None:
    assert judge(value).status is HEALTHY


def test_a_dict_becomes_the_details() -> None:
    assert judge({"rows": 1}).details == {"rows": 1}


def test_false_fails() -> None:
    assert judge(False).status is UNHEALTHY


def test_any_other_value_fails_and_says_what_a_check_returns() -> None:
    result = judge("ok")
    assert result.status is UNHEALTHY
    assert "returned str" in (result.error or "")


def test_a_raising_check_fails_with_its_exception_text(registry: HealthRegistry) -> None:
    async def broken() -> None:
        raise ConnectionRefusedError("connect to postgresql://app:hunter2@db:5432 refused")

    registry.add("db", broken)
    run(registry.run_once())
    snap = registry.get("db")
    assert snap.status is UNHEALTHY
    assert snap.error == "ConnectionRefusedError: connect to postgresql://app:***@db:5432 refused"


def test_a_returned_warning_degrades_a_critical_check(registry: HealthRegistry) -> None:
    registry.add("pool", lambda: CheckResult.warned("80% used", used=8))
    report = run(registry.run_once())
    assert report.status is DEGRADED
    assert registry.get("pool").details == {"used": 8}
    assert registry.get("pool").consecutive_failures == 0


def test_a_plain_function_returning_a_coroutine_is_awaited(registry: HealthRegistry) -> None:
    async def ping() -> bool:
        return False

    registry.add("db", lambda: ping())
    run(registry.run_once())
    assert registry.get("db").error == "check returned False"


def test_run_duration_and_time_come_from_the_clock(
    registry: HealthRegistry, clock: FakeClock
) -> None:
    def slowish() -> None:
        clock.advance(0.25)

    registry.add("db", slowish)
    run(registry.run_once())
    snap = registry.get("db")
    assert snap.duration == pytest.approx(0.25)
    assert snap.checked_at == pytest.approx(clock.time())
    assert snap.history[0].duration == pytest.approx(0.25)


def test_a_run_that_overran_its_timeout_by_the_clock_fails(
    registry: HealthRegistry, clock: FakeClock
) -> None:
    async def slow() -> None:
        clock.advance(3.0)

    registry.add("db", slow, timeout=2.0)
    run(registry.run_once())
    assert registry.get("db").error == "took 3 s (limit 2 s)"


# -- timeouts -----------------------------------------------------------------------------


def test_a_hung_async_check_fails_at_its_timeout() -> None:
    registry = HealthRegistry("api")

    async def hang() -> None:
        await asyncio.Event().wait()

    registry.add("db", hang, timeout=0.05)
    report = run(registry.run_once())
    assert report.status is UNHEALTHY
    assert registry.get("db").error == "timed out after 0.05 s"


def test_a_checks_own_timeout_error_is_an_ordinary_failure(registry: HealthRegistry) -> None:
    async def refuses() -> None:
        raise TimeoutError("upstream said so")

    registry.add("db", refuses, timeout=5.0)
    run(registry.run_once())
    assert registry.get("db").error == "TimeoutError: upstream said so"


def test_a_hung_sync_check_fails_at_its_timeout_and_at_most_3_threads_hang() -> None:
    registry = HealthRegistry("api")
    release = threading.Event()
    calls: list[int] = []

    def hang() -> None:
        calls.append(1)
        release.wait(POLL)

    registry.add("db", hang, timeout=0.05)
    for started in range(1, MAX_ABANDONED + 2):  # a new run beside each hung one, to a bound
        run(registry.run_once())
        assert registry.get("db").error == "timed out after 0.05 s"
        assert len(calls) == started
    run(registry.run_once())
    assert registry.get("db").error == "3 earlier runs have not returned yet"
    assert len(calls) == MAX_ABANDONED + 1
    release.set()
    wait_until(lambda: not registry._entries["db"].busy)
    run(registry.run_once())
    assert len(calls) == MAX_ABANDONED + 2


def test_a_sync_check_runs_off_the_event_loop() -> None:
    registry = HealthRegistry("api")
    seen: list[str] = []
    registry.add("db", lambda: seen.append(threading.current_thread().name))
    run(registry.run_once())
    assert seen == ["stalwart-health:db"]


# -- cached reads, pending checks, groups --------------------------------------------------


def test_reports_read_cached_results_and_never_run_a_check(registry: HealthRegistry) -> None:
    check = Counter()
    registry.add("db", check)
    for _ in range(3):
        registry.report()
        registry.report("ready")
        registry.get("db")
    assert check.calls == 0
    run(registry.run_once())
    registry.report()
    assert check.calls == 1


def test_a_check_that_never_ran_is_unknown_not_checked_yet(registry: HealthRegistry) -> None:
    registry.add("db", ok)
    snap = registry.get("db")
    assert snap.status is UNKNOWN
    assert snap.error == "not checked yet"
    assert snap.pending
    assert (snap.checked_at, snap.duration, snap.availability) == (None, None, 0.0)
    report = registry.report()
    assert report.status is UNKNOWN
    assert report.http_status == 503
    assert report.message() == "Unknown: none of the 1 checks has completed a run yet"


def test_no_checks_at_all_is_unknown_but_an_empty_probe_group_passes() -> None:
    registry = HealthRegistry("api")
    assert registry.report().status is UNKNOWN
    assert registry.report().http_status == 503
    for group in ("live", "ready", "startup"):
        assert registry.report(group).status is HEALTHY


def test_checks_not_run_yet_are_left_out_once_another_has_run(registry: HealthRegistry) -> None:
    registry.add("db", ok)
    registry.add("cache", ok)
    run(registry.run_once("db"))
    assert registry.report().status is HEALTHY
    assert registry.report().counts()["unknown"] == 1


@pytest.mark.parametrize("fail_status", [500, 429, 503])
def test_the_fail_status_is_a_setting(fail_status: int) -> None:
    registry = HealthRegistry("api", fail_status=fail_status)
    registry.add("db", lambda: False)
    run(registry.run_once())
    assert registry.report().http_status == fail_status


@pytest.mark.parametrize("bad", [200, 399, 600, "503", 503.0, True])
def test_a_fail_status_that_is_not_an_http_error_is_refused(bad: Any) -> None:
    with pytest.raises(ConfigError) as info:
        HealthRegistry("api", fail_status=bad)
    assert info.value.field == "fail_status"


def test_a_failing_non_critical_check_says_degraded_itself(registry: HealthRegistry) -> None:
    registry.add("cache", lambda: False, critical=False)
    run(registry.run_once())
    snap = registry.get("cache")
    assert snap.status is DEGRADED
    assert snap.history[-1].status is UNHEALTHY  # the run itself failed
    assert registry.report().status is DEGRADED
    assert registry.report().http_status == 200


def test_a_startup_check_that_never_ran_fails_the_startup_group(registry: HealthRegistry) -> None:
    registry.add("migrations", ok, groups=("startup", "ready"))
    startup = registry.report("startup")
    assert startup.status is UNHEALTHY
    assert startup.checks["migrations"].status is UNHEALTHY
    assert registry.report("ready").status is UNKNOWN
    run(registry.run_once())
    assert registry.report("startup").status is HEALTHY


def test_liveness_ignores_dependency_checks_by_default(registry: HealthRegistry) -> None:
    registry.add("db", lambda: False)
    registry.add("loop", ok, groups=("live",))
    run(registry.run_once())
    assert registry.report().status is UNHEALTHY
    assert registry.report("ready").status is UNHEALTHY
    live = registry.report("live")
    assert live.status is HEALTHY
    assert list(live.checks) == ["loop"]


def test_liveness_with_no_live_checks_is_healthy(registry: HealthRegistry) -> None:
    registry.add("db", lambda: False)
    run(registry.run_once())
    assert registry.report("live").status is HEALTHY
    assert registry.report("live").checks == {}


def test_a_check_in_no_group_counts_only_in_the_overall_report(registry: HealthRegistry) -> None:
    registry.add("db", lambda: False, groups=())
    run(registry.run_once())
    assert registry.report().status is UNHEALTHY
    assert registry.report("ready").status is HEALTHY  # nothing gates readiness


def test_metrics_follow_runs(registry: HealthRegistry) -> None:
    outcome = Counter(True)
    registry.add("db", outcome, critical=False)
    for value in (True, False, False, True, False):
        outcome.value = value
        run(registry.run_once("db"))
    snap = registry.get("db")
    assert snap.availability == pytest.approx(0.4)
    assert snap.consecutive_failures == 1
    assert [r.status for r in snap.history] == [
        HEALTHY,
        UNHEALTHY,
        UNHEALTHY,
        HEALTHY,
        UNHEALTHY,
    ]
    assert registry.report().status is DEGRADED


def test_history_is_bounded_by_the_registry_setting(clock: FakeClock) -> None:
    registry = HealthRegistry("api", clock=clock, history=3)
    registry.add("db", ok)
    for _ in range(5):
        run(registry.run_once())
    assert len(registry.get("db").history) == 3


def test_removed_checks_leave_the_report(registry: HealthRegistry) -> None:
    registry.add("db", lambda: False)
    run(registry.run_once())
    registry.remove("db")
    assert registry.report().status is UNKNOWN
    assert registry.names() == ()


# -- breakers -----------------------------------------------------------------------------


def test_an_open_breaker_fails_the_check_without_calling_it(
    registry: HealthRegistry, clock: FakeClock
) -> None:
    breaker = CircuitBreaker("db", clock=clock)
    check = Counter()
    registry.add("db", check, breaker=breaker)
    run(registry.run_once())
    assert registry.get("db").status is HEALTHY
    breaker.force_open()
    snap = registry.get("db")  # shows at once, before the next run
    assert snap.status is UNHEALTHY
    assert snap.breaker_state == "forced_open"
    run(registry.run_once())
    assert check.calls == 1
    assert "circuit open" in (registry.get("db").history[-1].error or "")


def test_fed_breaker_opens_on_failed_runs_then_stops_the_calls(
    registry: HealthRegistry, clock: FakeClock
) -> None:
    breaker = CircuitBreaker("db", failure_threshold=2, recovery_timeout=30.0, clock=clock)
    check = Counter(False)
    registry.add("db", check, breaker=breaker, feed_breaker=True)
    run(registry.run_once())
    run(registry.run_once())
    assert breaker.state.value == "open"
    run(registry.run_once())
    assert check.calls == 2
    assert registry.get("db").consecutive_failures == 3


def test_fed_breaker_counts_timeouts_and_recovers_through_the_check(
    registry: HealthRegistry, clock: FakeClock
) -> None:
    breaker = CircuitBreaker("db", failure_threshold=1, recovery_timeout=30.0, clock=clock)
    check = Counter(None)

    def flaky() -> None:
        clock.advance(5.0)  # overruns the 2 s timeout on the fake clock
        check()

    registry.add("db", flaky, breaker=breaker, feed_breaker=True)
    run(registry.run_once())
    assert breaker.state.value == "open"
    registry.remove("db")
    registry.add("db", check, breaker=breaker, feed_breaker=True)
    clock.advance(30.0)
    run(registry.run_once())  # the half-open probe is the check itself
    assert breaker.state.value == "closed"
    assert registry.get("db").status is HEALTHY


@pytest.mark.parametrize("outcome", ["returns False", "raises", "times out"])
def test_a_fed_breaker_counts_failed_runs_whatever_its_record_filter_says(
    registry: HealthRegistry, clock: FakeClock, outcome: str
) -> None:
    # record= classifies the app's own calls (here: OSError only); an exception a breaker
    # does not record counts as a success, which would reset its count on every failed run.
    breaker = CircuitBreaker("db", failure_threshold=3, record=(OSError,), clock=clock)

    def check() -> bool:
        if outcome == "raises":
            raise ValueError("the driver's own error")
        if outcome == "times out":
            clock.advance(5.0)
        return outcome != "returns False"

    registry.add("db", check, breaker=breaker, feed_breaker=True)
    for _ in range(3):
        run(registry.run_once())
    assert breaker.state.value == "open"
    assert breaker.snapshot().total_failures == 3


def test_unfed_breaker_is_not_told_check_outcomes(
    registry: HealthRegistry, clock: FakeClock
) -> None:
    breaker = CircuitBreaker("db", failure_threshold=1, clock=clock)
    registry.add("db", lambda: False, breaker=breaker)
    run(registry.run_once())
    assert breaker.state.value == "closed"
    assert registry.breaker("db") is breaker


def test_reset_closes_the_breaker_and_forgets_the_streak(
    registry: HealthRegistry, clock: FakeClock
) -> None:
    breaker = CircuitBreaker("db", failure_threshold=1, clock=clock)
    registry.add("db", lambda: False, breaker=breaker, feed_breaker=True)
    run(registry.run_once())
    assert registry.get("db").consecutive_failures == 1
    registry.reset("db")
    assert breaker.state.value == "closed"
    assert registry.get("db").consecutive_failures == 0


# -- events -------------------------------------------------------------------------------


def test_each_run_emits_check_completed(registry: HealthRegistry) -> None:
    events: list[CheckCompleted] = []
    registry.add_listener(events.append, CheckCompleted)
    registry.add("db", lambda: False, critical=False)
    run(registry.run_once())
    (event,) = events
    assert (event.name, event.registry, event.strategy) == ("db", "api", "health")
    assert event.status is UNHEALTHY
    assert event.error == "check returned False"
    assert event.consecutive_failures == 1
    assert not event.critical
    assert event.to_dict()["status"] == "unhealthy"


def test_health_changed_is_emitted_only_when_the_overall_status_moves(
    registry: HealthRegistry,
) -> None:
    changes: list[HealthChanged] = []
    registry.add_listener(changes.append, HealthChanged)
    outcome = Counter(True)
    registry.add("db", outcome)
    run(registry.run_once())
    run(registry.run_once())
    outcome.value = False
    run(registry.run_once())
    run(registry.run_once())
    outcome.value = True
    run(registry.run_once())
    assert [(c.old, c.new) for c in changes] == [
        (None, HEALTHY),
        (HEALTHY, UNHEALTHY),
        (UNHEALTHY, HEALTHY),
    ]
    assert changes[1].name == "api"
    assert changes[1].reason == "check 'db' completed"


def test_a_failing_listener_does_not_break_the_run(
    registry: HealthRegistry, caplog: pytest.LogCaptureFixture
) -> None:
    def bad(event: Event) -> None:
        raise RuntimeError("listener bug")

    registry.add_listener(bad)
    registry.add("db", ok)
    run(registry.run_once())
    assert registry.get("db").status is HEALTHY
    assert "listener bug" in caplog.text


def test_remove_listener_stops_delivery(registry: HealthRegistry) -> None:
    events: list[Event] = []
    registry.add_listener(events.append)
    registry.remove_listener(events.append)
    registry.add("db", ok)
    run(registry.run_once())
    assert events == []


# -- the schedule (sans-I/O, fake numbers) --------------------------------------------------


def test_schedule_runs_everything_at_start_then_start_to_start() -> None:
    schedule = Schedule()
    schedule.add("a", 10.0, now=0.0)
    schedule.add("b", 4.0, now=0.0)
    assert schedule.take_due(0.0) == ["a", "b"]
    assert schedule.take_due(0.0) == []  # in flight
    assert schedule.next_wake() is None
    schedule.finished("b", started=0.0, now=1.0)
    assert schedule.next_wake() == 4.0
    assert schedule.take_due(3.9) == []
    assert schedule.take_due(4.0) == ["b"]
    schedule.finished("a", started=0.0, now=2.0)
    assert schedule.next_wake() == 10.0


def test_schedule_runs_an_overrunning_check_again_once_it_ends() -> None:
    schedule = Schedule()
    schedule.add("a", 1.0, now=0.0)
    schedule.take_due(0.0)
    schedule.finished("a", started=0.0, now=2.5)
    assert schedule.next_wake() == 2.5


def test_schedule_request_runs_a_check_now_or_right_after_its_run_in_flight() -> None:
    schedule = Schedule()
    schedule.add("a", 60.0, now=0.0)
    schedule.take_due(0.0)
    schedule.request("a", now=1.0)  # in flight: run again as soon as it ends
    schedule.finished("a", started=0.0, now=2.0)
    assert schedule.take_due(2.0) == ["a"]
    schedule.finished("a", started=2.0, now=2.5)
    assert schedule.next_wake() == 62.0
    schedule.request("a", now=3.0)
    assert schedule.take_due(3.0) == ["a"]


def test_schedule_forgets_removed_checks_even_in_flight() -> None:
    schedule = Schedule()
    schedule.add("a", 1.0, now=0.0)
    schedule.take_due(0.0)
    schedule.remove("a")
    schedule.finished("a", started=0.0, now=1.0)
    schedule.request("a", now=1.0)
    assert schedule.next_wake() is None


def test_schedule_restart_makes_everything_due() -> None:
    schedule = Schedule()
    schedule.add("a", 10.0, now=0.0)
    schedule.take_due(0.0)
    schedule.restart(now=50.0)
    assert schedule.take_due(50.0) == ["a"]


# -- the background loop (real time, short intervals, bounded polls) ----------------------


def test_async_with_runs_checks_in_the_background_until_the_block_ends() -> None:
    registry = HealthRegistry("api")
    check = Counter()
    registry.add("db", check, interval=0.02)

    async def main() -> int:
        async with registry:
            assert registry.running
            await await_until(lambda: check.calls >= 3)
        assert not registry.running
        return check.calls

    calls = run(main())
    time.sleep(0.05)
    assert check.calls == calls  # nothing runs after the block


def test_a_hung_check_neither_blocks_the_scheduler_nor_the_report() -> None:
    registry = HealthRegistry("api")
    fast = Counter()

    async def hang() -> None:
        await asyncio.Event().wait()

    registry.add("hung", hang, interval=0.01, timeout=0.5, critical=False)
    registry.add("fast", fast, interval=0.01)

    async def main() -> None:
        async with registry:
            await await_until(lambda: fast.calls >= 3)
            assert registry.get("hung").pending  # still in its first run
            await await_until(lambda: not registry.get("hung").pending)
            assert registry.report().status is DEGRADED

    run(main())


def test_running_in_thread_serves_sync_apps() -> None:
    registry = HealthRegistry("api")
    check = Counter()
    registry.add("db", check, interval=0.02)
    with registry.running_in_thread():
        wait_until(lambda: check.calls >= 3)
        assert registry.report().status is HEALTHY
    calls = check.calls
    time.sleep(0.05)
    assert check.calls == calls
    assert not registry.running


def test_a_check_added_while_running_is_scheduled_at_once() -> None:
    registry = HealthRegistry("api")
    with registry.running_in_thread():
        check = Counter()
        registry.add("late", check, interval=60.0)
        wait_until(lambda: check.calls == 1)


def test_reset_while_running_runs_the_check_again_at_once() -> None:
    registry = HealthRegistry("api")
    check = Counter(False)
    registry.add("db", check, interval=60.0)
    with registry.running_in_thread():
        wait_until(lambda: not registry.get("db").pending)
        check.value = True
        registry.reset("db")
        wait_until(lambda: registry.get("db").status is HEALTHY)
    assert check.calls == 2


def test_one_background_scheduler_at_a_time() -> None:
    registry = HealthRegistry("api")

    async def main() -> None:
        async with registry:
            with pytest.raises(RuntimeError, match="already running"):
                await registry.__aenter__()
            with pytest.raises(RuntimeError, match="already running"), registry.running_in_thread():
                pass

    run(main())


def test_reports_from_many_threads_stay_consistent_while_checks_run() -> None:
    registry = HealthRegistry("api", history=5)
    flip = Counter(True)

    def flapping() -> bool:
        flip.value = not flip.value
        return bool(flip.value)

    registry.add("flapping", flapping, interval=0.001, critical=False)
    registry.add("steady", lambda: None, interval=0.001)

    def reader(_: int) -> None:
        for _ in range(300):
            report = registry.report()
            assert report.status in (HEALTHY, DEGRADED, UNKNOWN)  # unknown: before a run
            for snap in report.checks.values():
                assert len(snap.history) <= 5
                assert 0.0 <= snap.availability <= 1.0
            report.detailed(redact=True)
            report.ietf(redact=True)

    with switching_threads_often(), registry.running_in_thread():
        run_threads(4, reader)
        wait_until(lambda: len(registry.get("flapping").history) == 5)
    assert registry.get("steady").availability == 1.0


def test_while_running_a_check_with_no_completed_run_for_too_long_shows_as_stale(
    clock: FakeClock,
) -> None:
    registry = HealthRegistry("api", clock=clock)
    runs: list[int] = []

    async def first_run_only() -> None:
        runs.append(1)
        if len(runs) > 1:  # a later run, if the scheduler starts one, never ends here
            await asyncio.Event().wait()

    registry.add("db", first_run_only, interval=10.0, timeout=2.0)
    with registry.running_in_thread():
        wait_until(lambda: not registry.get("db").pending)
        clock.advance(24.0)  # 2 x (interval + timeout): still within the limit
        assert registry.get("db").status is HEALTHY
        clock.advance(0.5)
        snap = registry.get("db")
        assert snap.status is UNHEALTHY
        assert snap.error == "stale: no run has completed for 24.5 s (limit 24 s)"
        assert registry.report().status is UNHEALTHY
    # Without a scheduler, cached results are just old: run_once users decide when to run.
    assert registry.get("db").status is HEALTHY


def test_a_check_that_blocks_the_schedulers_loop_shows_as_stale() -> None:
    registry = HealthRegistry("api")
    blocking, release = threading.Event(), threading.Event()

    async def blocks_the_loop() -> None:
        if not release.is_set():
            blocking.set()
            release.wait(POLL)  # sync code in an async check: nothing can cancel it

    registry.add("bad", blocks_the_loop, interval=0.02, timeout=0.05)
    registry.add("good", lambda: None, interval=0.02, timeout=0.05, critical=False)
    with registry.running_in_thread():
        wait_until(blocking.is_set)
        wait_until(lambda: registry.report().status is UNHEALTHY)
        for name in ("bad", "good"):  # the whole loop is stuck, so every check is
            wait_until(lambda name=name: (registry.get(name).error or "").startswith("stale"))
        release.set()
        wait_until(lambda: registry.report().status is HEALTHY)


def test_a_timed_out_async_check_is_failed_at_its_timeout_not_when_it_unwinds() -> None:
    """A client that takes long to unwind after cancellation (psycopg sends a cancel request
    over the dead path) must not hold the run past its timeout, nor pile up runs."""

    async def main() -> tuple[str | None, str | None]:
        release, unwound = asyncio.Event(), asyncio.Event()

        async def slow_to_cancel() -> None:
            try:
                await asyncio.Event().wait()
            except asyncio.CancelledError:
                await release.wait()  # the client's own cleanup: until the test lets it end
                unwound.set()
                raise

        registry = HealthRegistry("api")
        registry.add("db", slow_to_cancel, timeout=0.05)
        # Judged at the timeout, while the cleanup still runs (bounded: it never ends alone).
        errors = [(await asyncio.wait_for(registry.run_once(), 5)).checks["db"].error]
        assert not unwound.is_set()
        # Each next run starts while the earlier ones are all still unwinding.
        errors += [(await registry.run_once()).checks["db"].error for _ in range(3)]
        release.set()
        await asyncio.wait_for(unwound.wait(), 5)
        return errors

    errors = asyncio.run(main())
    assert errors == [*["timed out after 0.05 s"] * 3, "3 earlier runs have not returned yet"]


def test_a_check_slow_to_unwind_does_not_hide_the_recovery_from_the_next_run() -> None:
    """psycopg, cancelled on a dead server, unwinds for ~10 s: the next run must not wait."""

    async def main() -> list[HealthStatus]:
        release = asyncio.Event()
        down = True

        async def database() -> None:
            if not down:
                return
            try:
                await asyncio.Event().wait()  # the blackholed query
            finally:
                await release.wait()  # its cancellation, over the same dead path

        registry = HealthRegistry("api")
        registry.add("db", database, timeout=0.05)
        statuses = [(await registry.run_once()).status]
        down = False  # the network heals while the first run still unwinds
        statuses.append((await registry.run_once()).status)
        release.set()
        return statuses

    assert asyncio.run(main()) == [HealthStatus.UNHEALTHY, HealthStatus.HEALTHY]


def test_check_changed_is_emitted_when_a_checks_status_moves_and_only_then() -> None:
    from stalwart.health import CheckChanged

    registry = HealthRegistry("api")
    up = {"value": True}
    registry.add("db", lambda: up["value"])
    seen: list[tuple[object, object]] = []
    registry.add_listener(lambda event: seen.append((event.old, event.new)), CheckChanged)
    for value in (True, True, False, False, True):
        up["value"] = value
        asyncio.run(registry.run_once())
    assert seen == [
        (None, HealthStatus.HEALTHY),
        (HealthStatus.HEALTHY, HealthStatus.UNHEALTHY),
        (HealthStatus.UNHEALTHY, HealthStatus.HEALTHY),
    ]


def test_a_check_result_built_with_plain_strings_is_judged_not_a_crash() -> None:
    from stalwart.health import CheckResult

    registry = HealthRegistry("api")
    registry.add("db", lambda: CheckResult("unhealthy", "db down"))  # type: ignore[arg-type]
    registry.add("cache", lambda: CheckResult.failed(ValueError("x")))  # type: ignore[arg-type]
    registry.add("queue", lambda: CheckResult("sideways"))  # type: ignore[arg-type]
    report = asyncio.run(registry.run_once())
    assert report.checks["db"].status is HealthStatus.UNHEALTHY
    assert report.checks["db"].error == "db down"
    assert report.checks["cache"].error == "x"  # an exception as the error: its text
    assert report.checks["queue"].status is HealthStatus.UNHEALTHY  # a bad status fails it
    assert report.summary()["status"] == "unhealthy"


def test_a_check_that_ends_cancelled_by_itself_is_a_failure_not_a_cancellation() -> None:
    calls = {"n": 0}

    async def pool_closed_under_us() -> None:
        calls["n"] += 1
        if calls["n"] == 1:
            return
        waiter = asyncio.get_running_loop().create_future()
        waiter.cancel()  # e.g. a pool that closed cancels its waiters
        await waiter

    async def main() -> tuple[HealthStatus, str | None]:
        registry = HealthRegistry("api")
        registry.add("db", pool_closed_under_us)
        await registry.run_once()
        report = await registry.run_once()  # must not raise CancelledError into the caller
        return report.checks["db"].status, report.checks["db"].error

    assert asyncio.run(main()) == (HealthStatus.UNHEALTHY, "the check was cancelled")


def test_removing_a_failing_check_publishes_the_new_status() -> None:
    registry = HealthRegistry("api")
    registry.add("good", lambda: True)
    registry.add("bad", lambda: False)
    asyncio.run(registry.run_once())
    seen: list[tuple[object, object, str]] = []
    registry.add_listener(lambda e: seen.append((e.old, e.new, e.reason)), HealthChanged)
    registry.remove("bad")
    assert seen == [(HealthStatus.UNHEALTHY, HealthStatus.HEALTHY, "check 'bad' removed")]


# -- run_once beside a scheduled run; slow checks (ops-specs H5) --------------------------


def test_run_once_during_a_scheduled_run_joins_it_instead_of_failing_as_busy() -> None:
    registry = HealthRegistry("api")
    started, release = threading.Event(), threading.Event()
    calls = Counter(None)

    def slow_sync_check() -> None:
        calls()
        started.set()
        assert release.wait(POLL)

    registry.add("db", slow_sync_check, interval=60.0, timeout=POLL)

    async def main() -> HealthReport:
        async with registry:  # the scheduler starts the first run at once
            assert await asyncio.to_thread(started.wait, POLL)
            joining = asyncio.create_task(registry.run_once("db"))
            await asyncio.sleep(0.01)  # a condition wait: let run_once find the run
            assert not joining.done()
            release.set()
            return await joining

    report = run(main())
    assert report.status is HEALTHY
    assert calls.calls == 1
    history = registry.get("db").history
    assert [r.status for r in history] == [HEALTHY]  # no invented "not returned yet"


def test_a_slow_check_is_logged_once_and_shows_as_slow(
    registry: HealthRegistry, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    took = Counter(None)
    took.value = 3.0

    def check() -> None:
        clock.advance(took.value)  # on the fake clock: as long as the test says

    registry.add("db", check, interval=10.0, timeout=2.0)
    caplog.set_level("INFO", logger="stalwart.health")
    run(registry.run_once())
    run(registry.run_once())
    snap = registry.get("db")
    assert snap.slow
    assert snap.to_dict(redact=True)["slow"] is True
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert len(warnings) == 1
    assert warnings[0].startswith("health check 'db' of 'api' is slow: its run took")
    took.value = 0.5
    run(registry.run_once())
    assert not registry.get("db").slow
    assert caplog.records[-1].getMessage() == "health check 'db' of 'api' is fast again: 0.5 s"


def test_a_check_slower_than_its_interval_is_slow_though_within_its_timeout(
    registry: HealthRegistry, clock: FakeClock
) -> None:
    def check() -> None:
        clock.advance(1.5)

    registry.add("db", check, interval=1.0, timeout=5.0)
    run(registry.run_once())
    snap = registry.get("db")
    assert snap.status is HEALTHY
    assert snap.slow


def test_the_slow_gauge_follows_the_last_run(registry: HealthRegistry, clock: FakeClock) -> None:
    from prometheus_client.parser import text_string_to_metric_families

    from stalwart.metrics import PrometheusMetrics

    took = [3.0]

    def check() -> None:
        clock.advance(took[0])

    registry.add("db", check, interval=10.0, timeout=2.0)

    def slow_gauge() -> float:
        with PrometheusMetrics(health=registry) as metrics:
            text = metrics.exposition()[0].decode()
        return next(
            s.value
            for family in text_string_to_metric_families(text)
            for s in family.samples
            if s.name == "stalwart_health_check_slow"
        )

    run(registry.run_once())
    assert slow_gauge() == 1.0
    took[0] = 0.1
    run(registry.run_once())
    assert slow_gauge() == 0.0
