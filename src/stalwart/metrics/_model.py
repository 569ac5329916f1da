"""What stalwart measures, whatever reports it: the metric catalogue, what each event
counts, and the live state read at collection time.

Prometheus (``_prometheus.py``) and OpenTelemetry (``_otel.py``) both build their
instruments from :data:`METRICS` and feed them from :func:`event_readings` and the
``*_readings`` functions, so the two report the same things under the same labels.
Nothing here imports a metrics library.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any, Literal, Protocol, TypeAlias

from .._breaker import CircuitBreaker
from .._errors import ConfigError
from .._events import CallFailed, CallIgnored, CallRejected, CallSucceeded, Event
from .._retry import RetryAttempt, RetryGaveUp, RetrySucceeded
from .._types import State
from ..journal._events import BatchPaused, BatchProgress, BatchResumed

__all__ = (
    "DEFAULT_BUCKETS",
    "EVENT_TYPES",
    "METRICS",
    "HealthSnapshots",
    "Metric",
    "Reading",
    "breaker_readings",
    "checked_health",
    "connection_readings",
    "event_readings",
    "health_readings",
)

DEFAULT_BUCKETS: tuple[float, ...] = (
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
)  # fmt: skip
"""Histogram buckets of call durations, in seconds."""
EVENT_TYPES: tuple[type[Event], ...] = (
    CallSucceeded,
    CallFailed,
    CallIgnored,
    CallRejected,
    RetryAttempt,
    RetryGaveUp,
    RetrySucceeded,
    BatchProgress,
    BatchPaused,
    BatchResumed,
)
"""The events the metrics count (per-call events: breakers time their calls)."""

Kind: TypeAlias = Literal["counter", "histogram", "gauge", "updown"]


@dataclass(frozen=True, slots=True)
class Metric:
    """One thing stalwart measures, with its name in each backend."""

    prometheus: str
    """After the prefix and before ``_total``: ``circuitbreaker_calls_seconds``."""
    otel: str
    """After ``stalwart.``: ``circuitbreaker.call.duration``."""
    kind: Kind
    """``counter`` and ``histogram`` add up; ``gauge`` is a value now; ``updown`` is a
    value now whose sum over a label means something (breakers per state)."""
    unit: str
    """UCUM, as OpenTelemetry writes it: ``s``, ``By``, ``1``, ``{call}``."""
    labels: tuple[str, ...]
    description: str
    live: bool = False
    """Read from the instances at collection time, not counted from events."""


def _live(
    prometheus: str, otel: str, kind: Kind, unit: str, description: str, *labels: str
) -> Metric:
    return Metric(prometheus, otel, kind, unit, ("name", *labels), description, live=True)


BREAKER_CALLS = Metric(
    "circuitbreaker_calls_seconds", "circuitbreaker.call.duration", "histogram", "s",
    ("name", "kind"),
    "Duration of calls a circuit breaker permitted, by outcome "
    "(kind: successful, failed, ignored).",
)  # fmt: skip
NOT_PERMITTED = Metric(
    "circuitbreaker_not_permitted_calls", "circuitbreaker.not_permitted_calls", "counter",
    "{call}", ("name",), "Calls a circuit breaker rejected without running them.",
)  # fmt: skip
RETRY_CALLS = Metric(
    "retry_calls", "retry.calls", "counter", "{call}", ("name", "kind"),
    "Calls through a retry, by outcome (kind: successful_without_retry, "
    "successful_with_retry, failed_with_retry, failed_without_retry).",
)  # fmt: skip
RETRY_ATTEMPTS = Metric(
    "retry_attempts", "retry.attempts", "counter", "{retry}", ("name",),
    "Retries scheduled after a failed attempt.",
)  # fmt: skip
JOURNAL_ITEMS = Metric(
    "journal_items", "journal.items", "counter", "{item}", ("session", "outcome"),
    "Batch items recorded in a journal session, by outcome (done, failed).",
)  # fmt: skip
JOURNAL_PAUSES = Metric(
    "journal_pauses", "journal.pauses", "counter", "{pause}", ("session",),
    "Times every worker of a batch paused together (rate limited, breaker open).",
)  # fmt: skip
JOURNAL_PAUSE_TIME = Metric(
    "journal_pause_seconds", "journal.pause.time", "counter", "s", ("session",),
    "Seconds a batch spent paused.",
)  # fmt: skip
BREAKER_STATE = _live(
    "circuitbreaker_state", "circuitbreaker.state", "updown", "{breaker}",
    "1 for a circuit breaker's current state, 0 for the others.", "state",
)  # fmt: skip
FAILURE_RATIO = _live(
    "circuitbreaker_failure_ratio", "circuitbreaker.failure_ratio", "gauge", "1",
    "Failed / decided calls (0..1) in the breaker's window; absent below minimum_calls.",
)  # fmt: skip
CONNECTION_UP = _live(
    "connection_up", "connection.up", "updown", "{connection}",
    "1 while a supervised connection is open, 0 while it reconnects.",
)  # fmt: skip
CONNECTION_ENDPOINT = _live(
    "connection_endpoint_index", "connection.endpoint_index", "gauge", "1",
    "Position of the endpoint in use (0: the primary).",
)  # fmt: skip
CONNECTION_UPTIME = _live(
    "connection_uptime_seconds", "connection.uptime", "gauge", "s",
    "Seconds the current connection has been open.",
)  # fmt: skip
CONNECTION_BUFFERED = _live(
    "connection_buffered_messages", "connection.buffered_messages", "updown", "{message}",
    "Outbound messages waiting for a connection.",
)  # fmt: skip
CONNECTION_RECONNECTS = _live(
    "connection_reconnects", "connection.reconnects", "counter", "{reconnect}",
    "Connections opened after the first.",
)  # fmt: skip
CONNECTION_MESSAGES = _live(
    "connection_messages", "connection.messages", "counter", "{message}",
    "Messages sent and received.", "direction",
)  # fmt: skip
CONNECTION_BYTES = _live(
    "connection_bytes", "connection.io", "counter", "By",
    "Bytes of messages sent and received.", "direction",
)  # fmt: skip
CONNECTION_DROPPED = _live(
    "connection_dropped_messages", "connection.dropped_messages", "counter", "{message}",
    "Outbound messages dropped (full buffer, close).",
)  # fmt: skip
HEALTH_STATUS = _live(
    "health_check_status", "health_check.status", "updown", "{check}",
    "1 while a health check is healthy, 0 otherwise.",
)  # fmt: skip
HEALTH_DURATION = _live(
    "health_check_duration_seconds", "health_check.duration", "gauge", "s",
    "Duration of a health check's last run.",
)  # fmt: skip
HEALTH_SLOW = _live(
    "health_check_slow", "health_check.slow", "updown", "{check}",
    "1 while a health check's last run took its interval or its timeout, or longer.",
)  # fmt: skip

BREAKER_METRICS = (BREAKER_STATE, FAILURE_RATIO)
CONNECTION_METRICS = (
    CONNECTION_UP, CONNECTION_ENDPOINT, CONNECTION_UPTIME, CONNECTION_BUFFERED,
    CONNECTION_RECONNECTS, CONNECTION_MESSAGES, CONNECTION_BYTES, CONNECTION_DROPPED,
)  # fmt: skip
HEALTH_METRICS = (HEALTH_STATUS, HEALTH_DURATION, HEALTH_SLOW)
METRICS: tuple[Metric, ...] = (
    BREAKER_CALLS, NOT_PERMITTED, RETRY_CALLS, RETRY_ATTEMPTS,
    JOURNAL_ITEMS, JOURNAL_PAUSES, JOURNAL_PAUSE_TIME,
    *BREAKER_METRICS, *CONNECTION_METRICS, *HEALTH_METRICS,
)  # fmt: skip
"""Everything stalwart measures, in the order Prometheus shows it."""

Reading: TypeAlias = tuple[Metric, tuple[str, ...], float]
"""A metric, its label values (in ``metric.labels`` order) and an amount: what to add to
a counter, to record in a histogram, or a gauge's value (an int for counts and flags)."""

_BREAKER = "circuit_breaker"
_RETRY = "retry"
_JOURNAL = "journal"
_STATES = tuple(s.value for s in State)
_KIND = {CallSucceeded: "successful", CallFailed: "failed", CallIgnored: "ignored"}


def event_readings(event: Event) -> Iterator[Reading]:
    """What ``event`` adds to the event-fed metrics (nothing for most events)."""
    kind = _KIND.get(type(event))
    if event.strategy == _BREAKER:
        if kind is not None:
            yield BREAKER_CALLS, (event.name, kind), event.duration  # type: ignore[attr-defined]
        elif isinstance(event, CallRejected):
            yield NOT_PERMITTED, (event.name,), 1
    elif event.strategy == _RETRY:
        if isinstance(event, RetryAttempt):
            yield RETRY_ATTEMPTS, (event.name,), 1
        elif isinstance(event, RetrySucceeded | RetryGaveUp):
            outcome = "successful" if isinstance(event, RetrySucceeded) else "failed"
            retried = "with" if event.attempts > 1 else "without"
            yield RETRY_CALLS, (event.name, f"{outcome}_{retried}_retry"), 1
    elif event.strategy == _JOURNAL:
        if isinstance(event, BatchProgress):
            if event.done:
                yield JOURNAL_ITEMS, (event.name, "done"), event.done
            if event.failed:
                yield JOURNAL_ITEMS, (event.name, "failed"), event.failed
        elif isinstance(event, BatchPaused):
            yield JOURNAL_PAUSES, (event.name,), 1
        elif isinstance(event, BatchResumed):
            yield JOURNAL_PAUSE_TIME, (event.name,), event.paused_seconds


class HealthSnapshots(Protocol):
    """What the metrics read from a health registry (``stalwart.health.HealthRegistry``)."""

    def names(self) -> tuple[str, ...]: ...
    def get(self, name: str) -> Any: ...


def checked_health(health: Any) -> HealthSnapshots | None:
    """``health`` if it can be read like a HealthRegistry (or None), else a ConfigError."""
    if health is not None and not (hasattr(health, "names") and hasattr(health, "get")):
        raise ConfigError("health", f"must be a HealthRegistry or None, got {health!r}")
    return health  # type: ignore[no-any-return]


def breaker_readings(breakers: Iterable[CircuitBreaker]) -> Iterator[Reading]:
    """Each breaker's state (1 for the current one, 0 for the others) and failure ratio."""
    for breaker in breakers:
        snap = breaker.snapshot()
        for value in _STATES:
            yield BREAKER_STATE, (breaker.name, value), int(snap.state.value == value)
        rate = snap.failure_rate
        if rate is not None and math.isfinite(rate):
            yield FAILURE_RATIO, (breaker.name,), rate


def connection_readings() -> Iterator[Reading]:
    """The supervised connections of this process (``stalwart.supervisor``), by name."""
    from ..supervisor import live_supervisors

    for supervisor in live_supervisors():
        stats = supervisor.stats()
        name = (supervisor.name,)
        yield CONNECTION_UP, name, int(stats.connected)
        if stats.connected and stats.endpoint_index is not None:
            yield CONNECTION_ENDPOINT, name, stats.endpoint_index
        yield CONNECTION_UPTIME, name, stats.uptime
        yield CONNECTION_BUFFERED, name, stats.buffered
        yield CONNECTION_RECONNECTS, name, stats.reconnect_count
        yield CONNECTION_MESSAGES, (*name, "sent"), stats.messages_sent
        yield CONNECTION_MESSAGES, (*name, "received"), stats.messages_received
        yield CONNECTION_BYTES, (*name, "sent"), stats.bytes_sent
        yield CONNECTION_BYTES, (*name, "received"), stats.bytes_received
        yield CONNECTION_DROPPED, name, stats.dropped


def health_readings(health: HealthSnapshots) -> Iterator[Reading]:
    """Each check's status (1 healthy), slowness (1 slow) and last duration."""
    for name in health.names():
        try:
            snap = health.get(name)
        except KeyError:  # removed between names() and get()
            continue
        healthy = getattr(snap.status, "value", snap.status) == "healthy"
        yield HEALTH_STATUS, (name,), int(healthy)
        yield HEALTH_SLOW, (name,), int(bool(getattr(snap, "slow", False)))
        if snap.duration is not None:
            yield HEALTH_DURATION, (name,), float(snap.duration)
