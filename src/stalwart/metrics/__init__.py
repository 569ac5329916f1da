"""Metrics listeners: stalwart's events and live state as Prometheus metrics.

``PrometheusMetrics`` needs the ``prometheus`` extra (prometheus-client).
"""

from ._prometheus import PrometheusMetrics as PrometheusMetrics

__all__ = ("PrometheusMetrics",)
