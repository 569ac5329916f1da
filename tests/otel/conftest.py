"""The OpenTelemetry SDK's in-memory exporters behind stalwart.otel, one set per test."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader, Metric
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from stalwart.journal import BatchReport, Journal, run_batch
from stalwart.otel import Instrumentation, instrument
from stalwart.testing import FakeClock


def boom() -> None:
    raise OSError("down")


def flaky(failures: int) -> Callable[[], str]:
    """A call that raises OSError ``failures`` times, then answers "ok" for good."""
    left = iter([OSError("flaky")] * failures)

    def call() -> str:
        if (error := next(left, None)) is not None:
            raise error
        return "ok"

    return call


class RateLimited(Exception):
    """Like an HTTP 429: carries the server's pause, which pauses a journal batch."""

    def __init__(self, retry_after: float) -> None:
        super().__init__(f"429, retry after {retry_after} s")
        self.retry_after = retry_after


def paused_batch(folder: Path, clock: FakeClock) -> BatchReport:
    """Journal session "s": 4 items done, 1 failed, one pause of 5 s (a 429 on item 0)."""
    limited = iter([RateLimited(5.0)])

    def call_api(n: int) -> int:
        if n == 0 and (error := next(limited, None)) is not None:
            raise error
        if n == 4:
            raise ValueError("bad item")
        return n

    with Journal(folder / "batch.db") as journal:
        return run_batch(
            range(5), call_api, journal=journal, session="s", concurrency=1, clock=clock
        )


class Telemetry:
    """A tracer provider and a meter provider that keep what they get, and readers for it."""

    def __init__(self) -> None:
        self.exporter = InMemorySpanExporter()
        self.tracer_provider = TracerProvider()
        self.tracer_provider.add_span_processor(SimpleSpanProcessor(self.exporter))
        self.reader = InMemoryMetricReader()
        self.meter_provider = MeterProvider(metric_readers=[self.reader])
        self.tracer = self.tracer_provider.get_tracer("tests")

    def instrument(self, **options: Any) -> Instrumentation:
        return instrument(
            tracer_provider=self.tracer_provider, meter_provider=self.meter_provider, **options
        )

    def spans(self) -> list[ReadableSpan]:
        return list(self.exporter.get_finished_spans())

    def metrics(self) -> dict[str, Metric]:
        """Every stalwart metric collected now, by name."""
        data = self.reader.get_metrics_data()
        if data is None:
            return {}
        return {
            metric.name: metric
            for resource in data.resource_metrics
            for scope in resource.scope_metrics
            if scope.scope.name == "stalwart"
            for metric in scope.metrics
        }

    def points(self, metric: str, /) -> dict[frozenset[tuple[str, Any]], Any]:
        """The data points of ``metric`` by their attributes ({} if it has none)."""
        found = self.metrics().get(metric)
        if found is None:
            return {}
        return {frozenset(p.attributes.items()): p for p in found.data.data_points}

    def value(self, metric: str, /, **attributes: str) -> Any:
        """A counter's or gauge's value for ``attributes``, None if it has no such point."""
        point = self.points(metric).get(frozenset(attributes.items()))
        return None if point is None else point.value

    def shutdown(self) -> None:
        self.tracer_provider.shutdown()
        self.meter_provider.shutdown()


@pytest.fixture
def telemetry() -> Iterator[Telemetry]:
    kept = Telemetry()
    yield kept
    kept.shutdown()


@pytest.fixture
def otel(telemetry: Telemetry, clock: FakeClock) -> Iterator[Telemetry]:
    """stalwart instrumented into ``telemetry`` (health spans timed by ``clock``)."""
    with telemetry.instrument(clock=clock):
        yield telemetry
