"""Prometheus metrics: event counters, scrape-time gauges, private registries (ops-specs M1)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator

import prometheus_client
import pytest
from prometheus_client.parser import text_string_to_metric_families

import stalwart
from stalwart import Bulkhead, BulkheadFullError, CircuitBreaker, CircuitOpenError, ConfigError
from stalwart.health import HealthRegistry
from stalwart.metrics import PrometheusMetrics
from stalwart.testing import FakeClock


@pytest.fixture
def metrics() -> Iterator[PrometheusMetrics]:
    with PrometheusMetrics() as installed:
        yield installed


def samples(metrics: PrometheusMetrics) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    text = metrics.exposition()[0].decode()
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def value(metrics: PrometheusMetrics, metric: str, **labels: str) -> float | None:
    return samples(metrics).get((metric, frozenset(labels.items())))


def boom() -> None:
    raise OSError("down")


def test_breaker_calls_are_timed_by_outcome(metrics: PrometheusMetrics, clock: FakeClock) -> None:
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
    name = "stalwart_circuitbreaker_calls_seconds"
    assert value(metrics, f"{name}_count", name="db", kind="successful") == 2
    assert value(metrics, f"{name}_sum", name="db", kind="successful") == pytest.approx(0.4)
    assert value(metrics, f"{name}_count", name="db", kind="failed") == 1
    assert value(metrics, f"{name}_count", name="db", kind="ignored") == 1


def test_rejections_count_as_not_permitted_calls(metrics: PrometheusMetrics) -> None:
    breaker = CircuitBreaker("qbit", failure_threshold=1)
    with pytest.raises(OSError):
        breaker.call(boom)
    for _ in range(3):
        with pytest.raises(CircuitOpenError):
            breaker.call(boom)
    total = "stalwart_circuitbreaker_not_permitted_calls_total"
    assert value(metrics, total, name="qbit") == 3


def test_other_strategies_rejections_are_not_counted_as_breaker_rejections(
    metrics: PrometheusMetrics,
) -> None:
    bulkhead = Bulkhead(max_concurrent=1, max_queue=0, name="pool")
    with bulkhead, pytest.raises(BulkheadFullError):
        bulkhead.call(lambda: None)
    total = "stalwart_circuitbreaker_not_permitted_calls_total"
    assert value(metrics, total, name="pool") is None


def test_state_gauge_is_one_for_the_current_state_only(metrics: PrometheusMetrics) -> None:
    breaker = stalwart.circuit_breaker("s3", failure_threshold=1)
    assert value(metrics, "stalwart_circuitbreaker_state", name="s3", state="closed") == 1
    with pytest.raises(OSError):
        breaker.call(boom)
    states = {
        dict(labels)["state"]: v
        for (name, labels), v in samples(metrics).items()
        if name == "stalwart_circuitbreaker_state"
    }
    assert states == {s.value: (1.0 if s.value == "open" else 0.0) for s in stalwart.State}


def test_failure_ratio_is_a_zero_to_one_ratio_and_absent_while_unknown(
    metrics: PrometheusMetrics,
) -> None:
    breaker = stalwart.circuit_breaker("api", failure_rate=0.9, window=4, minimum_calls=4)
    assert value(metrics, "stalwart_circuitbreaker_failure_ratio", name="api") is None
    for fn in (boom, lambda: None, lambda: None, lambda: None):
        with contextlib.suppress(OSError):
            breaker.call(fn)
    assert value(metrics, "stalwart_circuitbreaker_failure_ratio", name="api") == 0.25


def test_breakers_given_explicitly_are_reported_instead_of_the_named_ones() -> None:
    stalwart.circuit_breaker("named")
    mine = CircuitBreaker("mine")
    with PrometheusMetrics(breakers=[mine]) as metrics:
        names = {dict(labels).get("name") for _, labels in samples(metrics)}
    assert "mine" in names
    assert "named" not in names


def test_retries_that_give_up_are_counted_by_whether_they_retried(
    metrics: PrometheusMetrics,
) -> None:
    clock = FakeClock()
    retrying = stalwart.Retry(on=OSError, max_attempts=3, name="fetch", clock=clock)
    once = stalwart.Retry(on=OSError, max_attempts=1, name="once", clock=clock)
    for policy in (retrying, once):
        with pytest.raises(OSError):
            policy.call(boom)
    total = "stalwart_retry_calls_total"
    assert value(metrics, total, name="fetch", kind="failed_with_retry") == 1
    assert value(metrics, total, name="once", kind="failed_without_retry") == 1
    assert value(metrics, "stalwart_retry_attempts_total", name="fetch") == 2


def test_retried_calls_are_counted_by_outcome_and_whether_they_retried(
    metrics: PrometheusMetrics,
) -> None:
    policy = stalwart.Retry(on=OSError, max_attempts=3, name="fetch", clock=FakeClock())
    failures = iter([OSError()])

    def flaky() -> str:
        error = next(failures, None)
        if error is not None:
            raise error
        return "ok"

    assert policy.call(flaky) == "ok"  # after one retry
    assert policy.call(flaky) == "ok"  # at once
    assert policy.call(flaky) == "ok"
    total = "stalwart_retry_calls_total"
    assert value(metrics, total, name="fetch", kind="successful_with_retry") == 1
    assert value(metrics, total, name="fetch", kind="successful_without_retry") == 2


def test_nothing_is_counted_before_install_or_after_close() -> None:
    metrics = PrometheusMetrics()
    breaker = CircuitBreaker("db")
    breaker.call(lambda: None)
    count = "stalwart_circuitbreaker_calls_seconds_count"
    assert value(metrics, count, name="db", kind="successful") is None
    with metrics:
        breaker.call(lambda: None)
    breaker.call(lambda: None)
    assert value(metrics, count, name="db", kind="successful") == 1


def test_two_instances_keep_private_registries_without_colliding() -> None:
    with PrometheusMetrics() as first, PrometheusMetrics() as second:
        CircuitBreaker("db").call(lambda: None)
    count = "stalwart_circuitbreaker_calls_seconds_count"
    assert value(first, count, name="db", kind="successful") == 1
    assert value(second, count, name="db", kind="successful") == 1
    assert first.registry is not prometheus_client.REGISTRY


def test_the_global_registry_can_be_joined_on_request_and_left_again() -> None:
    metrics = PrometheusMetrics(registry=prometheus_client.REGISTRY)
    try:
        stalwart.circuit_breaker("db")
        text = prometheus_client.generate_latest().decode()
        assert 'stalwart_circuitbreaker_state{name="db",state="closed"} 1.0' in text
    finally:
        metrics.unregister()
    assert "stalwart_" not in prometheus_client.generate_latest().decode()
    PrometheusMetrics(registry=prometheus_client.REGISTRY).unregister()  # the names are free


def test_openmetrics_is_served_when_the_scraper_asks() -> None:
    body, content_type = PrometheusMetrics().exposition("application/openmetrics-text")
    assert content_type.startswith("application/openmetrics-text")
    assert body.rstrip().endswith(b"# EOF")


def test_prefix_is_configurable() -> None:
    metrics = PrometheusMetrics(prefix="myapp")
    stalwart.circuit_breaker("db")
    assert value(metrics, "myapp_circuitbreaker_state", name="db", state="closed") == 1


@pytest.mark.parametrize(
    ("field", "options"),
    [
        ("prefix", {"prefix": "my-app"}),
        ("prefix", {"prefix": ""}),
        ("registry", {"registry": object()}),
        ("health", {"health": object()}),
        ("buckets", {"buckets": ()}),
        ("buckets", {"buckets": (0.1, -1.0)}),
        ("breakers", {"breakers": 42}),
        ("breakers", {"breakers": ["not a breaker"]}),
    ],
)
def test_bad_settings_name_the_field(field: str, options: dict[str, object]) -> None:
    with pytest.raises(ConfigError) as err:
        PrometheusMetrics(**options)  # type: ignore[arg-type]
    assert err.value.field == field


def test_health_checks_report_their_status_and_last_duration() -> None:
    clock = FakeClock()
    registry = HealthRegistry("orders", clock=clock)

    def slow() -> bool:
        clock.advance(0.25)
        return True

    def down() -> bool:
        raise ConnectionError("refused")

    registry.add("database", slow)
    registry.add("cache", down, critical=False)
    metrics = PrometheusMetrics(health=registry)
    assert value(metrics, "stalwart_health_check_duration_seconds", name="database") is None
    asyncio.run(registry.run_once())
    assert value(metrics, "stalwart_health_check_status", name="database") == 1
    assert value(metrics, "stalwart_health_check_status", name="cache") == 0
    duration = value(metrics, "stalwart_health_check_duration_seconds", name="database")
    assert duration == pytest.approx(0.25)


def test_metrics_dropped_without_close_stop_listening_once_collected() -> None:
    import gc

    from stalwart._events import _GLOBAL

    before = len(_GLOBAL.subs)
    PrometheusMetrics().install()  # dropped at once: an app factory, a test
    gc.collect()
    breaker = CircuitBreaker("after")
    breaker.call(lambda: None)  # the first event finds the listener's target gone
    assert len(_GLOBAL.subs) == before
    assert breaker._fast is not None  # the breaker's fast path is back
