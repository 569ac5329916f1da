"""stalwart.otel's metrics, read back through the SDK's InMemoryMetricReader."""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import Gauge, Histogram, InMemoryMetricReader, Sum

import stalwart
from otel.conftest import Telemetry, boom, flaky, paused_batch
from stalwart import Bulkhead, BulkheadFullError, CircuitBreaker, CircuitOpenError, ConfigError
from stalwart._retry import Retry
from stalwart.health import HealthRegistry
from stalwart.metrics._model import DEFAULT_BUCKETS
from stalwart.otel import instrument
from stalwart.testing import FakeClock
from threads import run_threads


def test_breaker_calls_are_a_seconds_histogram_by_outcome(
    otel: Telemetry, clock: FakeClock
) -> None:
    breaker = CircuitBreaker("db", failure_threshold=5, ignore=KeyError, clock=clock)

    def slow() -> None:
        clock.advance(0.2)

    def ignored() -> None:
        raise KeyError("x")

    breaker.call(slow)
    breaker.call(slow)
    for fn in (boom, ignored):
        with pytest.raises((OSError, KeyError)):
            breaker.call(fn)
    metric = otel.metrics()["stalwart.circuitbreaker.call.duration"]
    assert metric.unit == "s"
    assert isinstance(metric.data, Histogram)
    points = otel.points("stalwart.circuitbreaker.call.duration")
    ok = points[frozenset({"name": "db", "kind": "successful"}.items())]
    assert (ok.count, ok.sum) == (2, pytest.approx(0.4))
    assert tuple(ok.explicit_bounds) == DEFAULT_BUCKETS  # seconds, not the SDK's ms-like ones
    assert points[frozenset({"name": "db", "kind": "failed"}.items())].count == 1
    assert points[frozenset({"name": "db", "kind": "ignored"}.items())].count == 1


def test_breaker_rejections_count_as_not_permitted_calls_and_bulkheads_do_not(
    otel: Telemetry,
) -> None:
    breaker = CircuitBreaker("qbit", failure_threshold=1)
    with pytest.raises(OSError):
        breaker.call(boom)
    for _ in range(3):
        with pytest.raises(CircuitOpenError):
            breaker.call(boom)
    bulkhead = Bulkhead(max_concurrent=1, max_queue=0, name="pool")
    with bulkhead, pytest.raises(BulkheadFullError):
        bulkhead.call(lambda: None)
    metric = otel.metrics()["stalwart.circuitbreaker.not_permitted_calls"]
    assert (metric.unit, isinstance(metric.data, Sum), metric.data.is_monotonic) == (
        "{call}", True, True,
    )  # fmt: skip
    assert otel.points("stalwart.circuitbreaker.not_permitted_calls").keys() == {
        frozenset({"name": "qbit"}.items())
    }
    assert otel.value("stalwart.circuitbreaker.not_permitted_calls", name="qbit") == 3


def test_retries_are_counted_by_outcome_and_whether_they_retried(otel: Telemetry) -> None:
    clock = FakeClock()
    policy = Retry(on=OSError, max_attempts=3, name="fetch", clock=clock)
    once = Retry(on=OSError, max_attempts=1, name="once", clock=clock)
    call = flaky(1)

    assert policy.call(call) == "ok"  # after one retry
    assert policy.call(call) == "ok"  # at once
    for gives_up in (policy, once):
        with pytest.raises(OSError):
            gives_up.call(boom)
    calls = "stalwart.retry.calls"
    assert otel.value(calls, name="fetch", kind="successful_with_retry") == 1
    assert otel.value(calls, name="fetch", kind="successful_without_retry") == 1
    assert otel.value(calls, name="fetch", kind="failed_with_retry") == 1
    assert otel.value(calls, name="once", kind="failed_without_retry") == 1
    assert otel.value("stalwart.retry.attempts", name="fetch") == 1 + 2
    assert otel.metrics()["stalwart.retry.attempts"].unit == "{retry}"


def test_breaker_state_is_an_up_down_counter_one_for_the_current_state(otel: Telemetry) -> None:
    breaker = stalwart.circuit_breaker("s3", failure_threshold=1)
    assert otel.value("stalwart.circuitbreaker.state", name="s3", state="closed") == 1
    with pytest.raises(OSError):
        breaker.call(boom)
    metric = otel.metrics()["stalwart.circuitbreaker.state"]
    assert isinstance(metric.data, Sum)
    assert not metric.data.is_monotonic  # an up-down counter: summed, breakers per state
    states = {
        dict(attributes)["state"]: point.value
        for attributes, point in otel.points("stalwart.circuitbreaker.state").items()
    }
    assert states == {s.value: int(s.value == "open") for s in stalwart.State}


def test_failure_ratio_is_a_gauge_absent_while_unknown(otel: Telemetry) -> None:
    breaker = stalwart.circuit_breaker("api", failure_rate=0.9, window=4, minimum_calls=4)
    assert otel.value("stalwart.circuitbreaker.failure_ratio", name="api") is None
    for fn in (boom, lambda: None, lambda: None, lambda: None):
        with contextlib.suppress(OSError):
            breaker.call(fn)
    metric = otel.metrics()["stalwart.circuitbreaker.failure_ratio"]
    assert (metric.unit, isinstance(metric.data, Gauge)) == ("1", True)
    assert otel.value("stalwart.circuitbreaker.failure_ratio", name="api") == 0.25


def test_breakers_given_explicitly_are_observed_instead_of_the_named_ones(
    telemetry: Telemetry,
) -> None:
    stalwart.circuit_breaker("named")
    mine = CircuitBreaker("mine")
    with telemetry.instrument(breakers=[mine]):
        names = {
            dict(attributes)["name"]
            for attributes in telemetry.points("stalwart.circuitbreaker.state")
        }
    assert names == {"mine"}


def test_health_checks_report_status_slowness_and_last_duration(telemetry: Telemetry) -> None:
    clock = FakeClock()
    registry = HealthRegistry("orders", clock=clock)

    def slow() -> bool:
        clock.advance(0.25)
        return True

    def down() -> bool:
        raise ConnectionError("refused")

    registry.add("database", slow, interval=0.2, timeout=1.0)
    registry.add("cache", down, critical=False)
    with telemetry.instrument(health=registry, clock=clock):
        assert telemetry.value("stalwart.health_check.duration", name="database") is None
        asyncio.run(registry.run_once())
        assert telemetry.value("stalwart.health_check.status", name="database") == 1
        assert telemetry.value("stalwart.health_check.status", name="cache") == 0
        assert telemetry.value("stalwart.health_check.slow", name="database") == 1  # > interval
        assert telemetry.value("stalwart.health_check.slow", name="cache") == 0
        duration = telemetry.value("stalwart.health_check.duration", name="database")
        assert duration == pytest.approx(0.25)
        assert telemetry.metrics()["stalwart.health_check.duration"].unit == "s"


def test_journal_items_pauses_and_paused_seconds_are_counted(
    otel: Telemetry, clock: FakeClock, tmp_path: Path
) -> None:
    report = paused_batch(tmp_path, clock)
    assert (report.done, report.failed, report.pauses) == (4, 1, 1)
    assert otel.value("stalwart.journal.items", session="s", outcome="done") == 4
    assert otel.value("stalwart.journal.items", session="s", outcome="failed") == 1
    assert otel.value("stalwart.journal.pauses", session="s") == 1
    assert otel.value("stalwart.journal.pause.time", session="s") == pytest.approx(5.0)
    assert otel.metrics()["stalwart.journal.pause.time"].unit == "s"


def test_threads_hammering_one_breaker_are_all_counted(otel: Telemetry) -> None:
    breaker = CircuitBreaker("hot", failure_threshold=10_000)

    def work(i: int) -> None:
        for n in range(250):
            with contextlib.suppress(OSError):
                breaker.call(boom if n % 5 == 0 else lambda: None)

    run_threads(8, work)
    points = otel.points("stalwart.circuitbreaker.call.duration")
    assert points[frozenset({"name": "hot", "kind": "successful"}.items())].count == 8 * 200
    assert points[frozenset({"name": "hot", "kind": "failed"}.items())].count == 8 * 50


def test_tasks_on_one_loop_are_all_counted(otel: Telemetry) -> None:
    breaker = CircuitBreaker("loop")

    async def ok() -> None:
        await asyncio.sleep(0)

    async def main() -> None:
        await asyncio.gather(*(breaker.acall(ok) for _ in range(200)))

    asyncio.run(main())
    points = otel.points("stalwart.circuitbreaker.call.duration")
    assert points[frozenset({"name": "loop", "kind": "successful"}.items())].count == 200


def test_nothing_is_reported_after_uninstrument_and_a_new_instrument_reports_again(
    telemetry: Telemetry,
) -> None:
    breaker = stalwart.circuit_breaker("db")
    handle = telemetry.instrument()
    breaker.call(lambda: None)
    handle.uninstrument()
    handle.uninstrument()  # twice is fine
    assert not handle.active
    breaker.call(lambda: None)
    metrics = telemetry.metrics()
    assert "stalwart.circuitbreaker.state" not in metrics  # its callbacks went quiet
    duration = "stalwart.circuitbreaker.call.duration"
    assert telemetry.points(duration)[frozenset({"name": "db", "kind": "successful"}.items())]
    with telemetry.instrument():  # the meter hands the first instruments out again
        breaker.call(lambda: None)
        assert telemetry.value("stalwart.circuitbreaker.state", name="db", state="closed") == 1
        point = telemetry.points(duration)[frozenset({"name": "db", "kind": "successful"}.items())]
        assert point.count == 2  # the call made while uninstrumented was not counted


def test_instrument_twice_alike_returns_the_active_handle_and_otherwise_says_what_differs(
    telemetry: Telemetry,
) -> None:
    with telemetry.instrument() as first:
        assert telemetry.instrument() is first
        other = MeterProvider(metric_readers=[InMemoryMetricReader()])
        with pytest.raises(ConfigError, match="already instrumented") as caught:
            instrument(tracer_provider=telemetry.tracer_provider, meter_provider=other)
        assert caught.value.field == "meter_provider"
        other.shutdown()
    assert repr(first) == "<stalwart.otel.Instrumentation stopped>"


def test_another_meter_provider_gets_nothing_from_a_later_instrumentation() -> None:
    old, new = Telemetry(), Telemetry()
    try:
        breaker = stalwart.circuit_breaker("db")
        with old.instrument():
            pass
        with new.instrument():
            breaker.call(lambda: None)
            assert new.value("stalwart.circuitbreaker.state", name="db", state="closed") == 1
            assert "stalwart.circuitbreaker.state" not in old.metrics()
    finally:
        old.shutdown()
        new.shutdown()


@pytest.mark.parametrize(
    ("field", "options"),
    [
        ("tracer_provider", {"tracer_provider": "jaeger"}),
        ("meter_provider", {"meter_provider": object()}),
        ("health", {"health": "registry"}),
        ("breakers", {"breakers": 3}),
        ("health_spans", {"health_spans": "yes"}),
        ("clock", {"clock": 1.0}),
    ],
)
def test_bad_settings_name_the_field(field: str, options: dict[str, Any]) -> None:
    with pytest.raises(ConfigError) as caught:
        instrument(**options)
    assert caught.value.field == field
