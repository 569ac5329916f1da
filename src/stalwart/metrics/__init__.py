"""Metrics listeners: stalwart's events and live state as Prometheus metrics.

``PrometheusMetrics`` needs the ``prometheus`` extra (prometheus-client); it is loaded on
first use, so ``stalwart.otel`` can share this package's catalogue without it. ``asset()``
finds the shipped alerting rules (``alerts.yml``) and Grafana dashboard
(``grafana-dashboard.json``) over the same metric names.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ._files import asset as asset

if TYPE_CHECKING:
    from ._prometheus import PrometheusMetrics as PrometheusMetrics

__all__ = ("PrometheusMetrics", "asset")


def __getattr__(name: str) -> Any:
    if name != "PrometheusMetrics":
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from ._prometheus import PrometheusMetrics

    globals()[name] = PrometheusMetrics  # from now on a plain module attribute
    return PrometheusMetrics


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
