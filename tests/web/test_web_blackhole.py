"""The issue's key scenario over HTTP: real PostgreSQL and redis-server behind the chaos proxy.

While a dependency is blackholed (connections accepted, never answered), its check times
out in the background and ``/health`` through uvicorn keeps answering from cached results:
every answer comes back well inside the check's own timeout. The status follows each
check's criticality, and returns to healthy once the network does.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import httpx
import pytest

from servers import PostgresServer, RedisServer
from stalwart.chaos import ProxyThread, ThreadedProxy
from stalwart.health import HealthRegistry, postgres_check, redis_check
from stalwart.web import ops_app
from web.support import Serve

CHECK_TIMEOUT = 0.5
INTERVAL = 0.1
WAIT = 15.0


@pytest.fixture
def chaos() -> Iterator[ProxyThread]:
    with ProxyThread() as runner:
        yield runner


def until(client: httpx.Client, status: str, latencies: list[float]) -> dict[str, object]:
    """GET /health until it reports ``status`` (bounded), noting each answer's latency."""
    deadline = time.monotonic() + WAIT
    while time.monotonic() < deadline:
        start = time.perf_counter()
        response = client.get("/health")
        latencies.append(time.perf_counter() - start)
        body: dict[str, object] = response.json()
        if body["status"] == status:
            assert response.status_code == (503 if status == "unhealthy" else 200)
            return body
        time.sleep(0.005)  # a prober's pace, not a load test: leave the checks some CPU
    pytest.fail(f"/health never became {status!r}")


def test_health_answers_from_cache_while_a_blackholed_dependency_times_out(
    postgres_server: PostgresServer,
    redis_server: RedisServer,
    chaos: ProxyThread,
    serve: Serve,
) -> None:
    pg: ThreadedProxy = chaos.add((postgres_server.host, postgres_server.port))
    rd: ThreadedProxy = chaos.add((redis_server.host, redis_server.port))
    pg_dsn = f"postgresql://postgres@{pg.address[0]}:{pg.address[1]}/postgres?connect_timeout=5"
    registry = HealthRegistry(name="orders")
    timing = {"interval": INTERVAL, "timeout": CHECK_TIMEOUT}
    registry.add("postgres", postgres_check(pg_dsn), critical=True, **timing)
    redis_url = f"redis://{rd.address[0]}:{rd.address[1]}/0"
    registry.add("redis", redis_check(redis_url), critical=False, **timing)
    app = ops_app(health=registry, metrics=False)
    latencies: list[float] = []
    with (
        registry.running_in_thread(),
        serve(app) as url,
        httpx.Client(base_url=url, timeout=5) as client,
    ):
        until(client, "healthy", [])
        rd.set(blackhole=True)
        until(client, "degraded", latencies)  # a non-critical dependency only degrades
        pg.set(blackhole=True)
        body = until(client, "unhealthy", latencies)
        assert body["services"] == {
            "total": 2,
            "healthy": 0,
            "degraded": 1,
            "unhealthy": 1,
            "unknown": 0,
        }  # fmt: skip  (the non-critical one says degraded)
        detail = client.get("/health/services/postgres").json()
        assert detail["consecutive_failures"] >= 1
        pg.clear()
        rd.clear()
        until(client, "healthy", latencies)
    app.close()
    # Each outage lasted at least one check timeout, and /health answered throughout it.
    assert len(latencies) >= 3
    assert max(latencies) < CHECK_TIMEOUT, f"slowest /health: {max(latencies) * 1000:.1f} ms"
    ordered = sorted(latencies)
    p99 = ordered[int(len(ordered) * 0.99)]
    p50, slowest = ordered[len(ordered) // 2], ordered[-1]
    print(
        f"/health answers: {len(ordered)}, p50 {p50 * 1000:.2f} ms, "
        f"p99 {p99 * 1000:.2f} ms, max {slowest * 1000:.2f} ms"
    )
