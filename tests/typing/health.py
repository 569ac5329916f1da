"""Checked by mypy --strict only (never run): stalwart.health keeps its types."""

from __future__ import annotations

from typing import Any, assert_type

from stalwart import CircuitBreaker
from stalwart.health import (
    CheckCompleted,
    CheckConfig,
    CheckResult,
    CheckSnapshot,
    HealthChanged,
    HealthRegistry,
    HealthReport,
    HealthStatus,
    http_check,
    tcp_check,
)
from stalwart.testing import FakeClock

registry = HealthRegistry("api", clock=FakeClock(), history=50)
db = registry.add("db", tcp_check("127.0.0.1", 5432), breaker=CircuitBreaker("db"))
assert_type(db, CheckConfig)
registry.add("web", http_check("http://127.0.0.1:8080/health"), groups=("ready", "startup"))


async def queue() -> CheckResult:
    return CheckResult.warned("backlog", depth=3)


registry.add("queue", queue, critical=False)
report = registry.report("ready")
assert_type(report, HealthReport)
assert_type(report.status, HealthStatus)
assert_type(report.status.ietf, str)
assert_type(report.http_status, int)
assert_type(report.summary(), dict[str, Any])
assert_type(report.ietf(redact=True), dict[str, Any])
assert_type(registry.get("db"), CheckSnapshot)
assert_type(registry.breaker("db"), CircuitBreaker | None)


def on_change(event: HealthChanged) -> None:
    assert_type(event.new, HealthStatus)


def on_run(event: CheckCompleted) -> None:
    assert_type(event.duration, float)


registry.add_listener(on_change, HealthChanged)
registry.add_listener(on_run, CheckCompleted)


async def main() -> None:
    assert_type(await registry.run_once(), HealthReport)
    async with registry as running:
        assert_type(running, HealthRegistry)
    with registry.running_in_thread() as threaded:
        assert_type(threaded, HealthRegistry)
