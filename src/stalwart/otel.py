"""OpenTelemetry for stalwart: ``stalwart.otel.instrument()`` and every breaker, retry,
bulkhead, health check ... reports metrics and span events to your providers.

Needs the ``otel`` extra (``pip install stalwart[otel]``, opentelemetry-api); your
application brings the SDK and exporters. See ``docs/observability.md``.
"""

from .metrics._otel import Instrumentation as Instrumentation
from .metrics._otel import instrument as instrument

__all__ = ("Instrumentation", "instrument")
