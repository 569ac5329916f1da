"""Health checks that run in the background, so a health probe never waits on a dependency.

Register checks by name on a :class:`HealthRegistry` (built-ins for HTTP, TCP, PostgreSQL,
Redis, SQLAlchemy pools and disk space, or any ``def`` / ``async def``), run them with
``async with registry`` or ``registry.running_in_thread()``, and read
``registry.report(group)``: cached results with per-check metrics, aggregated to healthy /
degraded / unhealthy, as seed 003's summary, a detailed view or the IETF
``application/health+json`` body. Client libraries are imported only by the checks that
use them.
"""

from ._checks import disk_check as disk_check
from ._checks import http_check as http_check
from ._checks import postgres_check as postgres_check
from ._checks import redis_check as redis_check
from ._checks import sqlalchemy_pool_check as sqlalchemy_pool_check
from ._checks import tcp_check as tcp_check
from ._model import CheckResult as CheckResult
from ._model import CheckSnapshot as CheckSnapshot
from ._model import HealthReport as HealthReport
from ._model import HealthStatus as HealthStatus
from ._registry import CheckChanged as CheckChanged
from ._registry import CheckCompleted as CheckCompleted
from ._registry import CheckConfig as CheckConfig
from ._registry import HealthChanged as HealthChanged
from ._registry import HealthRegistry as HealthRegistry

__all__ = (
    "CheckChanged",
    "CheckCompleted",
    "CheckConfig",
    "CheckResult",
    "CheckSnapshot",
    "HealthChanged",
    "HealthRegistry",
    "HealthReport",
    "HealthStatus",
    "disk_check",
    "http_check",
    "postgres_check",
    "redis_check",
    "sqlalchemy_pool_check",
    "tcp_check",
)
