"""Metrics listeners: stalwart's events and live state as Prometheus metrics.

``PrometheusMetrics`` needs the ``prometheus`` extra (prometheus-client).
"""

from ._prometheus import DEFAULT_BUCKETS as DEFAULT_BUCKETS
from ._prometheus import DEFAULT_PREFIX as DEFAULT_PREFIX
from ._prometheus import PrometheusMetrics as PrometheusMetrics

__all__ = ("DEFAULT_BUCKETS", "DEFAULT_PREFIX", "PrometheusMetrics")
