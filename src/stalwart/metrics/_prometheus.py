"""Prometheus metrics for stalwart: a listener for its events plus a collector of live state.

Counters and histograms are fed by events (``stalwart.add_listener``): call durations by
outcome, rejections, retries. Gauges are read when Prometheus scrapes: each breaker's
state and failure ratio, each health check's status and last duration. Names follow
ops-specs M1 (``<prefix>_circuitbreaker_state{name,state}`` ...), in base units: the failure
ratio is 0..1, not resilience4j's percentage with -1 for "not enough calls".
"""

from __future__ import annotations

import math
import threading
import weakref
from collections.abc import Callable, Iterable, Iterator
from typing import Any, Protocol

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.exposition import choose_encoder
from prometheus_client.registry import Collector

from .._errors import ConfigError
from .._events import (
    CallFailed,
    CallIgnored,
    CallRejected,
    CallSucceeded,
    Event,
    add_listener,
    remove_listener,
)
from .._retry import RetryAttempt, RetryGaveUp, RetrySucceeded
from .._types import State
from ..journal._events import BatchPaused, BatchProgress, BatchResumed
from ..web._sources import BreakerSource, breakers_of

__all__ = (
    "DEFAULT_BUCKETS",
    "DEFAULT_PREFIX",
    "EVENT_TYPES",
    "HealthSnapshots",
    "PrometheusMetrics",
)

DEFAULT_PREFIX = "stalwart"
"""The single application prefix of every metric name."""
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
"""The events the listener subscribes to (per-call events: breakers time their calls)."""

_BREAKER = "circuit_breaker"
_RETRY = "retry"
_JOURNAL = "journal"
_STATES = tuple(s.value for s in State)
_KIND = {CallSucceeded: "successful", CallFailed: "failed", CallIgnored: "ignored"}


class _Snapshot(Protocol):
    @property
    def status(self) -> Any: ...
    @property
    def duration(self) -> float | None: ...


class HealthSnapshots(Protocol):
    """What the collector reads from a health registry (``stalwart.health.HealthRegistry``)."""

    def names(self) -> tuple[str, ...]: ...
    def get(self, name: str) -> Any: ...


class PrometheusMetrics:
    """stalwart's metrics in a prometheus-client registry.

    Call :meth:`install` (or use it as a context manager) to start counting events;
    :meth:`close` stops. ``registry`` defaults to a private ``CollectorRegistry`` so two
    apps (or two tests) never collide; pass ``prometheus_client.REGISTRY`` to join the
    process-wide one (then create a single instance per process).
    """

    def __init__(
        self,
        *,
        registry: CollectorRegistry | None = None,
        breakers: BreakerSource | None = None,
        health: HealthSnapshots | None = None,
        prefix: str = DEFAULT_PREFIX,
        buckets: Iterable[float] = DEFAULT_BUCKETS,
    ) -> None:
        if not isinstance(prefix, str) or not prefix.isidentifier() or prefix.startswith("__"):
            raise ConfigError("prefix", f"must be a word like 'stalwart', got {prefix!r}")
        if registry is not None and not isinstance(registry, CollectorRegistry):
            raise ConfigError("registry", f"must be a CollectorRegistry or None, got {registry!r}")
        if health is not None and not (hasattr(health, "names") and hasattr(health, "get")):
            raise ConfigError("health", f"must be a HealthRegistry or None, got {health!r}")
        bounds = tuple(buckets)
        if not bounds or any(
            isinstance(b, bool) or not isinstance(b, int | float) or not b > 0 for b in bounds
        ):
            raise ConfigError("buckets", f"must be positive numbers of seconds, got {bounds!r}")
        self.registry = CollectorRegistry() if registry is None else registry
        self.prefix = prefix
        self._breakers = breakers_of(breakers, health)
        self._health = health
        self._lock = threading.Lock()
        self._installed = False
        self._calls = Histogram(
            f"{prefix}_circuitbreaker_calls_seconds",
            "Duration of calls a circuit breaker permitted, by outcome "
            "(kind: successful, failed, ignored).",
            ("name", "kind"),
            registry=self.registry,
            buckets=sorted(bounds),
        )
        self._not_permitted = Counter(
            f"{prefix}_circuitbreaker_not_permitted_calls",
            "Calls a circuit breaker rejected without running them.",
            ("name",),
            registry=self.registry,
        )
        self._retry_calls = Counter(
            f"{prefix}_retry_calls",
            "Calls through a retry, by outcome (kind: successful_without_retry, "
            "successful_with_retry, failed_with_retry, failed_without_retry).",
            ("name", "kind"),
            registry=self.registry,
        )
        self._retry_attempts = Counter(
            f"{prefix}_retry_attempts",
            "Retries scheduled after a failed attempt.",
            ("name",),
            registry=self.registry,
        )
        self._journal_items = Counter(
            f"{prefix}_journal_items",
            "Batch items recorded in a journal session, by outcome (done, failed).",
            ("session", "outcome"),
            registry=self.registry,
        )
        self._journal_pauses = Counter(
            f"{prefix}_journal_pauses",
            "Times every worker of a batch paused together (rate limited, breaker open).",
            ("session",),
            registry=self.registry,
        )
        self._journal_paused = Counter(
            f"{prefix}_journal_pause_seconds",
            "Seconds a batch spent paused.",
            ("session",),
            registry=self.registry,
        )
        self._gauges = _StateCollector(self)
        self.registry.register(self._gauges)
        self._relay = _weak_listener(self)

    # -- the listener ------------------------------------------------------------------

    def install(self) -> PrometheusMetrics:
        """Start counting: subscribe to every stalwart instance's events.

        The subscription holds this object weakly: one dropped without :meth:`close` (an
        app factory, a test) stops listening once it is garbage, instead of keeping every
        breaker in the process building per-call events for it."""
        with self._lock:
            if not self._installed:
                add_listener(self._relay, *EVENT_TYPES)
                self._installed = True
        return self

    def close(self) -> None:
        """Stop counting (the registry keeps what it has)."""
        with self._lock:
            if self._installed:
                remove_listener(self._relay)
                self._installed = False

    def unregister(self) -> None:
        """Stop counting and take every metric out of the registry (so another instance
        may register the same names there)."""
        self.close()
        for collector in (
            self._calls,
            self._not_permitted,
            self._retry_calls,
            self._retry_attempts,
            self._journal_items,
            self._journal_pauses,
            self._journal_paused,
            self._gauges,
        ):
            self.registry.unregister(collector)

    def __enter__(self) -> PrometheusMetrics:
        return self.install()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __call__(self, event: Event) -> None:
        kind = _KIND.get(type(event))
        if event.strategy == _BREAKER:
            if kind is not None:
                duration = event.duration  # type: ignore[attr-defined]
                self._calls.labels(event.name, kind).observe(duration)
            elif isinstance(event, CallRejected):
                self._not_permitted.labels(event.name).inc()
        elif event.strategy == _RETRY:
            if isinstance(event, RetryAttempt):
                self._retry_attempts.labels(event.name).inc()
            elif isinstance(event, RetrySucceeded):
                retried = "with" if event.attempts > 1 else "without"
                self._retry_calls.labels(event.name, f"successful_{retried}_retry").inc()
            elif isinstance(event, RetryGaveUp):
                retried = "with" if event.attempts > 1 else "without"
                self._retry_calls.labels(event.name, f"failed_{retried}_retry").inc()
        elif event.strategy == _JOURNAL:
            if isinstance(event, BatchProgress):
                if event.done:
                    self._journal_items.labels(event.name, "done").inc(event.done)
                if event.failed:
                    self._journal_items.labels(event.name, "failed").inc(event.failed)
            elif isinstance(event, BatchPaused):
                self._journal_pauses.labels(event.name).inc()
            elif isinstance(event, BatchResumed):
                self._journal_paused.labels(event.name).inc(event.paused_seconds)

    # -- exposition --------------------------------------------------------------------

    def exposition(self, accept: str | None = None) -> tuple[bytes, str]:
        """The text a scrape gets, and its content type (OpenMetrics if ``accept`` asks)."""
        encoder, content_type = choose_encoder(accept or "")
        return encoder(self.registry), content_type

    def __repr__(self) -> str:
        state = "installed" if self._installed else "idle"
        return f"<PrometheusMetrics prefix={self.prefix!r} {state}>"


class _StateCollector(Collector):
    """Gauges read at scrape time: breaker states and ratios, health checks."""

    def __init__(self, owner: PrometheusMetrics) -> None:
        self._owner = weakref.ref(owner)

    def describe(self) -> list[Any]:
        return []  # families come and go with breakers; nothing to check up front

    def collect(self) -> Iterator[GaugeMetricFamily | CounterMetricFamily]:
        owner = self._owner()
        if owner is None:
            return
        prefix = owner.prefix
        state = GaugeMetricFamily(
            f"{prefix}_circuitbreaker_state",
            "1 for a circuit breaker's current state, 0 for the others.",
            labels=("name", "state"),
        )
        ratio = GaugeMetricFamily(
            f"{prefix}_circuitbreaker_failure_ratio",
            "Failed / decided calls (0..1) in the breaker's window; absent below minimum_calls.",
            labels=("name",),
        )
        for breaker in owner._breakers():
            snap = breaker.snapshot()
            for value in _STATES:
                state.add_metric((breaker.name, value), 1.0 if snap.state.value == value else 0.0)
            rate = snap.failure_rate
            if rate is not None and math.isfinite(rate):
                ratio.add_metric((breaker.name,), rate)
        yield state
        yield ratio
        yield from _connection_families(prefix)
        health = owner._health
        if health is None:
            return
        status = GaugeMetricFamily(
            f"{prefix}_health_check_status",
            "1 while a health check is healthy, 0 otherwise.",
            labels=("name",),
        )
        duration = GaugeMetricFamily(
            f"{prefix}_health_check_duration_seconds",
            "Duration of a health check's last run.",
            labels=("name",),
        )
        slow = GaugeMetricFamily(
            f"{prefix}_health_check_slow",
            "1 while a health check's last run took its interval or its timeout, or longer.",
            labels=("name",),
        )
        for name in health.names():
            try:
                snap = health.get(name)
            except KeyError:  # removed between names() and get()
                continue
            healthy = getattr(snap.status, "value", snap.status) == "healthy"
            status.add_metric((name,), 1.0 if healthy else 0.0)
            slow.add_metric((name,), 1.0 if getattr(snap, "slow", False) else 0.0)
            if snap.duration is not None:
                duration.add_metric((name,), float(snap.duration))
        yield status
        yield duration
        yield slow


def _connection_families(prefix: str) -> Iterator[GaugeMetricFamily | CounterMetricFamily]:
    """The supervised connections of this process (``stalwart.supervisor``), by name."""
    from ..supervisor import live_supervisors

    def gauge(name: str, doc: str) -> GaugeMetricFamily:
        return GaugeMetricFamily(f"{prefix}_connection_{name}", doc, labels=("name",))

    def counter(name: str, doc: str, *labels: str) -> CounterMetricFamily:
        return CounterMetricFamily(f"{prefix}_connection_{name}", doc, labels=("name", *labels))

    up = gauge("up", "1 while a supervised connection is open, 0 while it reconnects.")
    index = gauge("endpoint_index", "Position of the endpoint in use (0: the primary).")
    uptime = gauge("uptime_seconds", "Seconds the current connection has been open.")
    buffered = gauge("buffered_messages", "Outbound messages waiting for a connection.")
    reconnects = counter("reconnects", "Connections opened after the first.")
    messages = counter("messages", "Messages sent and received.", "direction")
    sizes = counter("bytes", "Bytes of messages sent and received.", "direction")
    dropped = counter("dropped_messages", "Outbound messages dropped (full buffer, close).")
    for supervisor in live_supervisors():
        stats = supervisor.stats()
        name = (supervisor.name,)
        up.add_metric(name, 1.0 if stats.connected else 0.0)
        if stats.connected and stats.endpoint_index is not None:
            index.add_metric(name, float(stats.endpoint_index))
        uptime.add_metric(name, stats.uptime)
        buffered.add_metric(name, float(stats.buffered))
        reconnects.add_metric(name, float(stats.reconnect_count))
        messages.add_metric((*name, "sent"), float(stats.messages_sent))
        messages.add_metric((*name, "received"), float(stats.messages_received))
        sizes.add_metric((*name, "sent"), float(stats.bytes_sent))
        sizes.add_metric((*name, "received"), float(stats.bytes_received))
        dropped.add_metric(name, float(stats.dropped))
    yield from (up, index, uptime, buffered, reconnects, messages, sizes, dropped)


def _weak_listener(metrics: PrometheusMetrics) -> Callable[[Event], None]:
    """A global listener that feeds ``metrics`` while it lives, then removes itself."""
    target = weakref.ref(metrics)

    def relay(event: Event) -> None:
        alive = target()
        if alive is None:
            remove_listener(relay)
            return
        alive(event)

    return relay
