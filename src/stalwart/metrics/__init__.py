"""Metrics listeners: stalwart's events and live state as Prometheus metrics.

``PrometheusMetrics`` needs the ``prometheus`` extra (prometheus-client). ``asset()`` finds
the shipped alerting rules (``alerts.yml``) and Grafana dashboard
(``grafana-dashboard.json``) over the same metric names.
"""

from ._files import asset as asset
from ._prometheus import PrometheusMetrics as PrometheusMetrics

__all__ = ("PrometheusMetrics", "asset")
