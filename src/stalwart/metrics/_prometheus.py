"""Prometheus metrics for stalwart: a listener for its events plus a collector of live state.

Counters and histograms are fed by events (``stalwart.add_listener``): call durations by
outcome, rejections, retries. Gauges are read when Prometheus scrapes: each breaker's
state and failure ratio, each health check's status and last duration. Names follow
ops-specs M1 (``<prefix>_circuitbreaker_state{name,state}`` ...), in base units: the failure
ratio is 0..1, not resilience4j's percentage with -1 for "not enough calls".
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.exposition import choose_encoder
from prometheus_client.registry import Collector

from .._errors import ConfigError
from .._events import Event, add_listener, remove_listener
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
    breaker_readings,
    checked_health,
    connection_readings,
    event_readings,
    health_readings,
)

__all__ = (
    "DEFAULT_BUCKETS",
    "DEFAULT_PREFIX",
    "EVENT_TYPES",
    "HealthSnapshots",
    "PrometheusMetrics",
)

DEFAULT_PREFIX = "stalwart"
"""The single application prefix of every metric name."""


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
        bounds = tuple(buckets)
        if not bounds or any(
            isinstance(b, bool) or not isinstance(b, int | float) or not b > 0 for b in bounds
        ):
            raise ConfigError("buckets", f"must be positive numbers of seconds, got {bounds!r}")
        self.registry = CollectorRegistry() if registry is None else registry
        self.prefix = prefix
        self._health = checked_health(health)
        self._breakers = breakers_of(breakers, health)
        self._lock = threading.Lock()
        self._installed = False
        self._counted: dict[Metric, Counter | Histogram] = {}
        for metric in METRICS:
            if metric.live:
                continue
            name = f"{prefix}_{metric.prometheus}"
            if metric.kind == "histogram":
                self._counted[metric] = Histogram(
                    name, metric.description, metric.labels, registry=self.registry,
                    buckets=sorted(bounds),
                )  # fmt: skip
            else:
                self._counted[metric] = Counter(
                    name, metric.description, metric.labels, registry=self.registry
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
        for collector in (*self._counted.values(), self._gauges):
            self.registry.unregister(collector)

    def __enter__(self) -> PrometheusMetrics:
        return self.install()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __call__(self, event: Event) -> None:
        for metric, labels, amount in event_readings(event):
            child = self._counted[metric].labels(*labels)
            if isinstance(child, Histogram):
                child.observe(amount)
            else:
                child.inc(amount)

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
        shown: tuple[Metric, ...] = (*BREAKER_METRICS, *CONNECTION_METRICS)
        if owner._health is not None:
            shown += HEALTH_METRICS
        families = {metric: _family(owner.prefix, metric) for metric in shown}
        readings = [*breaker_readings(owner._breakers()), *connection_readings()]
        if owner._health is not None:
            readings += health_readings(owner._health)
        for metric, labels, value in readings:
            families[metric].add_metric(labels, value)
        yield from families.values()


def _family(prefix: str, metric: Metric) -> GaugeMetricFamily | CounterMetricFamily:
    name = f"{prefix}_{metric.prometheus}"
    if metric.kind == "counter":
        return CounterMetricFamily(name, metric.description, labels=metric.labels)
    return GaugeMetricFamily(name, metric.description, labels=metric.labels)


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
