"""stalwart.otel as users write it (checked by mypy --strict)."""

from __future__ import annotations

from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.trace import TracerProvider

import stalwart.otel
from stalwart import CircuitBreaker
from stalwart.health import HealthRegistry

registry = HealthRegistry("orders")
handle: stalwart.otel.Instrumentation = stalwart.otel.instrument(
    tracer_provider=TracerProvider(),
    meter_provider=MeterProvider(),
    breakers=[CircuitBreaker("payments")],
    health=registry,
    health_spans=False,
)
with handle as same:
    active: bool = same.active
handle.uninstrument()
