"""stalwart.otel's span events and health check spans, read back through the SDK's
InMemorySpanExporter."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import NonRecordingSpan, SpanKind, StatusCode

from otel.conftest import Telemetry, boom
from stalwart import Bulkhead, BulkheadFullError, CircuitBreaker, CircuitOpenError
from stalwart._fallback import Fallback
from stalwart._retry import Retry
from stalwart.health import HealthRegistry
from stalwart.metrics._otel import SPAN_EVENT_TYPES
from stalwart.testing import FakeClock


def events(span: ReadableSpan) -> list[tuple[str, dict[str, Any]]]:
    return [(e.name, dict(e.attributes or {})) for e in span.events]


def only(spans: list[ReadableSpan], name: str) -> ReadableSpan:
    (span,) = [s for s in spans if s.name == name]
    return span


class Refused(ConnectionError):
    pass


def test_retry_attempts_are_events_on_the_current_span_with_the_error(
    otel: Telemetry, clock: FakeClock
) -> None:
    policy = Retry(on=ConnectionError, max_attempts=3, name="fetch", clock=clock)
    failures = iter([Refused("no route to 10.0.0.1")])

    def flaky() -> str:
        error = next(failures, None)
        if error is not None:
            raise error
        return "ok"

    with otel.tracer.start_as_current_span("request"):
        assert policy.call(flaky) == "ok"
        assert policy.call(flaky) == "ok"  # at once: no event for it
    (name, attributes), (won, after) = events(only(otel.spans(), "request"))
    assert name == "stalwart.retry_attempt"
    assert attributes["stalwart.strategy"] == "retry"
    assert attributes["stalwart.name"] == "fetch"
    assert attributes["stalwart.attempt"] == 1
    assert attributes["stalwart.delay"] > 0
    assert attributes["error.type"] == f"{__name__}.Refused"
    assert attributes["exception.message"] == "no route to 10.0.0.1"
    assert (won, after["stalwart.attempts"]) == ("stalwart.retry_succeeded", 2)


def test_a_retry_that_gives_up_says_why_and_builtin_errors_have_their_plain_name(
    otel: Telemetry, clock: FakeClock
) -> None:
    policy = Retry(on=OSError, max_attempts=2, name="fetch", clock=clock)
    with otel.tracer.start_as_current_span("request"), pytest.raises(OSError):
        policy.call(boom)
    found = events(only(otel.spans(), "request"))
    assert [name for name, _ in found] == ["stalwart.retry_attempt", "stalwart.retry_gave_up"]
    gave_up = found[1][1]
    assert (gave_up["stalwart.reason"], gave_up["stalwart.attempts"]) == ("max_attempts", 2)
    assert gave_up["error.type"] == "OSError"


def test_breaker_transitions_and_rejections_are_events_on_the_calls_span(otel: Telemetry) -> None:
    breaker = CircuitBreaker("payments", failure_threshold=1)
    with otel.tracer.start_as_current_span("first"), pytest.raises(ZeroDivisionError):
        breaker.call(lambda: 1 / 0)
    with otel.tracer.start_as_current_span("second"), pytest.raises(CircuitOpenError):
        breaker.call(lambda: 1)
    spans = otel.spans()
    ((moved, transition),) = events(only(spans, "first"))
    assert moved == "stalwart.state_transition"
    assert transition["stalwart.old"] == "closed"
    assert transition["stalwart.new"] == "open"
    assert transition["stalwart.reason"] == "failure_threshold"
    ((rejected, rejection),) = events(only(spans, "second"))
    assert rejected == "stalwart.call_rejected"
    assert (rejection["stalwart.strategy"], rejection["stalwart.state"]) == (
        "circuit_breaker", "open",
    )  # fmt: skip
    assert rejection["stalwart.retry_in"] > 0
    # The caller's own instrumentation owns its span's status: stalwart leaves it alone.
    assert {s.status.status_code for s in spans} == {StatusCode.UNSET}


def test_bulkhead_rejections_and_fallbacks_are_events_too(otel: Telemetry) -> None:
    bulkhead = Bulkhead(max_concurrent=1, max_queue=0, name="pool")
    fallback = Fallback(value="cached", on=BulkheadFullError, name="answer")
    with otel.tracer.start_as_current_span("request"), bulkhead:
        assert fallback.call(bulkhead.call, lambda: "live") == "cached"
    (rejected, rejection), (used, replaced) = events(only(otel.spans(), "request"))
    assert (rejected, rejection["stalwart.strategy"]) == ("stalwart.call_rejected", "bulkhead")
    assert (used, replaced["stalwart.name"]) == ("stalwart.fallback_used", "answer")
    assert replaced["error.type"] == "stalwart._errors.BulkheadFullError"


def test_events_land_on_each_tasks_own_span(otel: Telemetry) -> None:
    breaker = CircuitBreaker("api", failure_threshold=1)

    async def request(name: str, fn: Any) -> None:
        with otel.tracer.start_as_current_span(name):
            await asyncio.sleep(0)
            with contextlib.suppress(OSError, CircuitOpenError):
                await breaker.acall(fn)

    async def fail() -> None:
        raise OSError("down")

    async def main() -> None:
        await request("opens", fail)
        await asyncio.gather(*(request(f"after-{i}", fail) for i in range(5)))

    asyncio.run(main())
    spans = otel.spans()
    assert [name for name, _ in events(only(spans, "opens"))] == ["stalwart.state_transition"]
    for i in range(5):
        assert [name for name, _ in events(only(spans, f"after-{i}"))] == ["stalwart.call_rejected"]


def test_without_a_current_span_events_cost_nothing_and_make_no_span(otel: Telemetry) -> None:
    breaker = CircuitBreaker("quiet", failure_threshold=1)
    with pytest.raises(OSError):
        breaker.call(lambda: (_ for _ in ()).throw(OSError("x")))
    with pytest.raises(CircuitOpenError):
        breaker.call(lambda: None)
    assert otel.spans() == []


def test_a_health_check_run_is_a_span_of_its_own_timed_by_the_clock(
    otel: Telemetry, clock: FakeClock
) -> None:
    registry = HealthRegistry("orders", clock=clock)

    def database() -> bool:
        clock.advance(0.25)
        return True

    def cache() -> None:  # moves no clock: the checks run at once, and share this one
        raise ConnectionError("refused by cache:6379")

    registry.add("database", database)
    registry.add("cache", cache, critical=False)
    asyncio.run(registry.run_once())
    spans = otel.spans()
    ok = only(spans, "health_check database")
    assert ok.kind is SpanKind.INTERNAL
    assert ok.parent is None  # a background run: a root span
    assert ok.instrumentation_scope is not None
    assert ok.instrumentation_scope.name == "stalwart"
    assert ok.end_time is not None
    assert ok.start_time is not None
    assert ok.end_time - ok.start_time == 250_000_000
    assert ok.status.status_code is StatusCode.UNSET
    assert ok.attributes is not None
    assert ok.attributes["stalwart.registry"] == "orders"
    assert ok.attributes["stalwart.status"] == "healthy"
    failed = only(spans, "health_check cache")
    assert failed.status.status_code is StatusCode.ERROR
    assert failed.status.description is not None
    assert "refused by cache:6379" in failed.status.description
    assert failed.attributes is not None
    assert failed.attributes["stalwart.consecutive_failures"] == 1
    assert failed.attributes["stalwart.critical"] is False


def test_a_health_run_inside_a_span_is_its_child_and_status_changes_are_its_events(
    otel: Telemetry, clock: FakeClock
) -> None:
    registry = HealthRegistry("orders", clock=clock)
    registry.add("database", lambda: True)

    async def startup() -> None:
        with otel.tracer.start_as_current_span("startup"):
            await registry.run_once()

    asyncio.run(startup())
    spans = otel.spans()
    parent = only(spans, "startup")
    check = only(spans, "health_check database")
    assert check.parent is not None
    assert check.parent.span_id == parent.context.span_id
    changes = dict(events(parent))
    assert changes["stalwart.check_changed"]["stalwart.new"] == "healthy"
    assert "stalwart.old" not in changes["stalwart.check_changed"]  # None: the first run
    assert changes["stalwart.health_changed"]["stalwart.name"] == "orders"


def test_health_spans_can_be_turned_off(telemetry: Telemetry, clock: FakeClock) -> None:
    registry = HealthRegistry("orders", clock=clock)
    registry.add("database", lambda: True)
    with telemetry.instrument(health=registry, health_spans=False, clock=clock):
        asyncio.run(registry.run_once())
        assert telemetry.value("stalwart.health_check.status", name="database") == 1
    assert telemetry.spans() == []


class Exploding(NonRecordingSpan):
    """A span that says it records and raises on every event: a broken exporter chain."""

    def is_recording(self) -> bool:
        return True

    def add_event(self, *args: Any, **kwargs: Any) -> None:
        raise RuntimeError("exporter on fire")


def test_a_failing_span_never_reaches_the_caller(
    otel: Telemetry, caplog: pytest.LogCaptureFixture
) -> None:
    breaker = CircuitBreaker("api", failure_threshold=1)
    span = Exploding(trace.INVALID_SPAN_CONTEXT)
    with caplog.at_level(logging.ERROR, "stalwart"), trace.use_span(span):
        with pytest.raises(OSError):  # the caller's own exception, untouched
            breaker.call(lambda: (_ for _ in ()).throw(OSError("down")))
        with pytest.raises(CircuitOpenError):
            breaker.call(lambda: None)
    assert "exporter on fire" in caplog.text


def test_every_span_event_type_has_a_distinct_name() -> None:
    from stalwart.metrics._otel import _SHAPES

    names = [_SHAPES[cls].name for cls in SPAN_EVENT_TYPES]
    assert len(set(names)) == len(names)
    assert all(name.startswith("stalwart.") and name.islower() for name in names)
