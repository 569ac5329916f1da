"""OpenTelemetry for stalwart: its metrics as OTel instruments, its events as span events.

:func:`instrument` subscribes one listener to every stalwart instance's events. It feeds
an instrument per entry of the metric catalogue (``_model.METRICS``, the one Prometheus
reads too; live state is read by observable callbacks at collection time), adds the
strategies' events (a retry, a breaker transition, a rejection ...) to the current span,
and turns each health check run into a span of its own, since a background run has no
span to join. Needs only ``opentelemetry-api``: the application brings the SDK.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Iterable
from dataclasses import fields
from enum import Enum
from functools import partial
from typing import Any

try:
    from opentelemetry import metrics as otel_metrics
    from opentelemetry import trace
    from opentelemetry.metrics import CallbackOptions, Counter, Histogram, Observation
    from opentelemetry.util.types import AttributeValue
except ImportError as exc:  # pragma: no cover - exercised in a subprocess without the extra
    raise ImportError(
        "stalwart.otel needs OpenTelemetry: pip install stalwart[otel] "
        "(and an SDK or distro for your exporters)"
    ) from exc

from .. import __version__
from .._bulkhead import BulkheadEntered
from .._cache import StaleServed
from .._clock import Clock, SystemClock
from .._errors import ConfigError
from .._events import CallRejected, Event, SlowCall, StateTransition, add_listener, remove_listener
from .._fallback import FallbackUsed
from .._hedge import HedgeStarted, HedgeWon
from .._ratelimit import RateLimitWaited
from .._retry import RetryAttempt, RetryBudgetExhausted, RetryGaveUp, RetrySucceeded
from .._timeout import TimedOut
from ..chaos._inject import ChaosInjected
from ..health._model import HealthStatus
from ..health._registry import CheckChanged, CheckCompleted, HealthChanged
from ..journal._events import BatchFinished, BatchPaused, BatchResumed, BatchStarted
from ..web._sources import BreakerSource, breakers_of
from ._model import (
    BREAKER_METRICS,
    CONNECTION_METRICS,
    DEFAULT_BUCKETS,
    EVENT_TYPES,
    HEALTH_METRICS,
    METRICS,
    HealthSnapshots,
    Metric,
    Reading,
    breaker_readings,
    checked_health,
    connection_readings,
    event_readings,
    health_readings,
)

__all__ = ("SCOPE", "SPAN_EVENT_TYPES", "Instrumentation", "instrument")

SCOPE = "stalwart"
"""The instrumentation scope (tracer and meter name) of everything stalwart emits."""
SPAN_EVENT_TYPES: tuple[type[Event], ...] = (
    StateTransition,
    CallRejected,
    SlowCall,
    RetryAttempt,
    RetrySucceeded,
    RetryGaveUp,
    RetryBudgetExhausted,
    TimedOut,
    FallbackUsed,
    StaleServed,
    HedgeStarted,
    HedgeWon,
    RateLimitWaited,
    BulkheadEntered,
    ChaosInjected,
    CheckChanged,
    HealthChanged,
    BatchStarted,
    BatchPaused,
    BatchResumed,
    BatchFinished,
)
"""The events added to the current span, as ``stalwart.<snake_case of the class>``."""

_QUIET: dict[type[Event], Callable[[Any], bool]] = {
    RetrySucceeded: lambda e: e.attempts == 1,  # every call that needed no retry
    BulkheadEntered: lambda e: e.waited == 0,  # every call that got a slot at once
}
"""Events that would be on nearly every span: they are added only when they tell news."""
_OWN = frozenset({"name", "strategy", "at"})


class _Shape:
    """How one event class becomes a span event: its name and the fields to read."""

    __slots__ = ("fields", "name")

    def __init__(self, cls: type[Event]) -> None:
        self.name = "stalwart." + re.sub(r"(?<!^)(?=[A-Z])", "_", cls.__name__).lower()
        self.fields = tuple(f.name for f in fields(cls) if f.name not in _OWN)

    def attributes(self, event: Event) -> dict[str, AttributeValue]:
        """``stalwart.<field>`` for plain values and enums; an exception as ``error.type``
        and ``exception.message``. Other values (a rejected result) are the caller's data
        and stay out."""
        out: dict[str, AttributeValue] = {
            "stalwart.strategy": event.strategy,
            "stalwart.name": event.name,
        }
        for field in self.fields:
            value = getattr(event, field)
            if isinstance(value, Enum):
                value = value.value
            if isinstance(value, BaseException):
                cls = type(value)
                module = "" if cls.__module__ == "builtins" else f"{cls.__module__}."
                out["error.type"] = module + cls.__qualname__
                out["exception.message"] = str(value)
            elif isinstance(value, bool | int | float | str):
                out[f"stalwart.{field}"] = value
        return out


_SHAPES = {cls: _Shape(cls) for cls in (*SPAN_EVENT_TYPES, CheckCompleted)}

_LOCK = threading.Lock()
_ACTIVE: Instrumentation | None = None


class Instrumentation:
    """What :func:`instrument` started; :meth:`uninstrument` (or leaving ``with``) stops it."""

    def __init__(
        self,
        *,
        tracer_provider: Any,
        meter_provider: Any,
        breakers: BreakerSource | None,
        health: HealthSnapshots | None,
        health_spans: bool,
        clock: Clock | None,
    ) -> None:
        self.settings = {
            "tracer_provider": tracer_provider,
            "meter_provider": meter_provider,
            "breakers": breakers,
            "health": health,
            "health_spans": health_spans,
            "clock": clock,
        }
        self._breakers = breakers_of(breakers, health)
        self._health = health
        self._health_spans = health_spans
        self._clock = clock or SystemClock()
        self._tracer = trace.get_tracer(SCOPE, __version__, tracer_provider=tracer_provider)
        # Instruments cannot be taken back from a meter and the SDK hands the first ones
        # out again, callbacks included: so the callbacks ask which instrumentation is
        # active for their provider instead of holding this one.
        self.meter_provider = meter_provider or otel_metrics.get_meter_provider()
        meter = otel_metrics.get_meter(SCOPE, __version__, meter_provider=self.meter_provider)
        self._counted: dict[Metric, Counter | Histogram] = {}
        for metric in METRICS:
            name = f"{SCOPE}.{metric.otel}"
            if metric.kind == "histogram":
                self._counted[metric] = meter.create_histogram(
                    name, metric.unit, metric.description,
                    explicit_bucket_boundaries_advisory=DEFAULT_BUCKETS,
                )  # fmt: skip
                continue
            if not metric.live:
                self._counted[metric] = meter.create_counter(name, metric.unit, metric.description)
                continue
            create = {
                "counter": meter.create_observable_counter,
                "gauge": meter.create_observable_gauge,
                "updown": meter.create_observable_up_down_counter,
            }[metric.kind]
            callback = partial(_observe, self.meter_provider, metric)
            create(name, callbacks=[callback], unit=metric.unit, description=metric.description)
        self.active = False

    # -- life --------------------------------------------------------------------------

    def _start(self) -> None:
        add_listener(self._on_event, *EVENT_TYPES, *SPAN_EVENT_TYPES, CheckCompleted)
        self.active = True

    def uninstrument(self) -> None:
        """Stop: no more metrics, span events or spans (no error if already stopped)."""
        global _ACTIVE
        with _LOCK:
            if _ACTIVE is self:
                remove_listener(self._on_event)
                _ACTIVE = None
            self.active = False

    def __enter__(self) -> Instrumentation:
        return self

    def __exit__(self, *exc: object) -> None:
        self.uninstrument()

    def __repr__(self) -> str:
        return f"<stalwart.otel.Instrumentation {'active' if self.active else 'stopped'}>"

    # -- events ------------------------------------------------------------------------

    def _on_event(self, event: Event) -> None:
        # The hub logs and swallows whatever a listener raises: nothing here reaches the
        # caller's call.
        for metric, labels, amount in event_readings(event):
            instrument = self._counted[metric]
            attributes = dict(zip(metric.labels, labels, strict=True))
            if isinstance(instrument, Histogram):
                instrument.record(amount, attributes)
            else:
                instrument.add(amount, attributes)
        if isinstance(event, CheckCompleted):
            if self._health_spans:
                self._check_span(event)
            return
        shape = _SHAPES.get(type(event))
        if shape is None:
            return
        quiet = _QUIET.get(type(event))
        if quiet is not None and quiet(event):
            return
        span = trace.get_current_span()
        if span.is_recording():
            span.add_event(shape.name, shape.attributes(event))

    def _check_span(self, event: CheckCompleted) -> None:
        """A span per run, ended now and started ``duration`` earlier: the run is over
        when its event comes, and a background run has no span to add an event to."""
        end = int(self._clock.time() * 1e9)
        span = self._tracer.start_span(
            f"health_check {event.name}",
            kind=trace.SpanKind.INTERNAL,
            attributes=_SHAPES[CheckCompleted].attributes(event),
            start_time=end - round(event.duration * 1e9),
        )
        if event.status is HealthStatus.UNHEALTHY:
            span.set_status(trace.Status(trace.StatusCode.ERROR, event.error))
        span.end(end_time=end)

    # -- live state --------------------------------------------------------------------

    def readings(self, metric: Metric) -> Iterable[Reading]:
        """The live readings of ``metric``'s group (breakers, connections, health)."""
        if metric in BREAKER_METRICS:
            return breaker_readings(self._breakers())
        if metric in CONNECTION_METRICS:
            return connection_readings()
        if metric in HEALTH_METRICS and self._health is not None:
            return health_readings(self._health)
        return ()


def _observe(provider: Any, metric: Metric, options: CallbackOptions) -> list[Observation]:
    active = _ACTIVE
    if active is None or active.meter_provider is not provider:
        return []
    return [
        Observation(value, dict(zip(metric.labels, labels, strict=True)))
        for found, labels, value in active.readings(metric)
        if found is metric
    ]


def instrument(
    *,
    tracer_provider: Any = None,
    meter_provider: Any = None,
    breakers: BreakerSource | None = None,
    health: HealthSnapshots | None = None,
    health_spans: bool = True,
    clock: Clock | None = None,
) -> Instrumentation:
    """Report every stalwart instance to OpenTelemetry until ``.uninstrument()``.

    ``tracer_provider`` / ``meter_provider``: None for the global ones (set them before
    or after). ``breakers``: whose state and failure ratio to observe, as for
    ``PrometheusMetrics`` (None: the named breakers, plus those of ``health``'s checks).
    ``health``: a ``HealthRegistry`` whose checks' status and last duration to observe.
    ``health_spans``: a span per health check run (of any registry). ``clock`` times
    those spans.

    One instrumentation is active at a time: calling again with the same arguments
    returns the active handle, with others raises ConfigError naming the first that
    differs (uninstrument first).
    """
    global _ACTIVE
    for field, provider, method in (
        ("tracer_provider", tracer_provider, "get_tracer"),
        ("meter_provider", meter_provider, "get_meter"),
    ):
        if provider is not None and not callable(getattr(provider, method, None)):
            kind = "TracerProvider" if method == "get_tracer" else "MeterProvider"
            raise ConfigError(field, f"must be a {kind} or None, got {provider!r}")
    if not isinstance(health_spans, bool):
        raise ConfigError("health_spans", f"must be True or False, got {health_spans!r}")
    if clock is not None and not callable(getattr(clock, "time", None)):
        raise ConfigError("clock", f"must be a Clock (stalwart.SystemClock ...), got {clock!r}")
    wanted = {
        "tracer_provider": tracer_provider,
        "meter_provider": meter_provider,
        "breakers": breakers,
        "health": checked_health(health),
        "health_spans": health_spans,
        "clock": clock,
    }
    with _LOCK:
        if _ACTIVE is not None:
            for field, value in wanted.items():
                if value is not _ACTIVE.settings[field]:
                    raise ConfigError(
                        field,
                        "stalwart is already instrumented with another value; call "
                        "uninstrument() on the active handle first",
                    )
            return _ACTIVE
        handle = Instrumentation(
            tracer_provider=tracer_provider,
            meter_provider=meter_provider,
            breakers=breakers,
            health=wanted["health"],
            health_spans=health_spans,
            clock=clock,
        )
        handle._start()
        _ACTIVE = handle
        return handle
