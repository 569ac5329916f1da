"""PostgreSQL and Redis checks against real servers, and the case the registry exists for:
the dependency blackholed by the chaos proxy while reports keep answering from the cache.

Real I/O, so real time: intervals and timeouts are fractions of a second, every wait is a
bounded poll.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Coroutine
from typing import Any

import psycopg
import redis
import redis.asyncio as aioredis

from servers import PostgresServer, RedisServer
from stalwart import CircuitBreaker
from stalwart.chaos import ChaosProxy
from stalwart.health import (
    HealthRegistry,
    HealthReport,
    HealthStatus,
    postgres_check,
    redis_check,
)

HEALTHY, DEGRADED, UNHEALTHY = HealthStatus.HEALTHY, HealthStatus.DEGRADED, HealthStatus.UNHEALTHY
TIMEOUT = 0.4  # the checks' timeout under the blackhole
WAIT = 20.0
"""Bound on every poll. Above psycopg's own worst case: a query cut by the blackhole is
cancelled over the same dead path (5 s for the cancel request, 5 s more for the query).
With runs every 0.05 s, 3 such runs are soon unwinding, and until one has ended later runs
fail at once, so recovery can lag the healed network by up to 10 s (seen once in CI)."""


def run(coro: Coroutine[Any, Any, Any]) -> Any:
    async def bounded() -> Any:
        return await asyncio.wait_for(coro, 40)

    return asyncio.run(bounded())


def outcome(check: Any) -> Any:
    registry = HealthRegistry("api")
    registry.add("dep", check)
    run(registry.run_once())
    return registry.get("dep")


# -- PostgreSQL -------------------------------------------------------------------------------


def test_postgres_check_with_a_dsn_runs_select_1(postgres_server: PostgresServer) -> None:
    snap = outcome(postgres_check(postgres_server.dsn))
    assert snap.status is HEALTHY, snap.error
    assert snap.details["server_version"] >= 100000
    assert snap.component_type == "datastore"


def test_postgres_check_runs_the_given_query(postgres_server: PostgresServer) -> None:
    snap = outcome(postgres_check(postgres_server.dsn, query="SELECT * FROM no_such_table"))
    assert snap.status is UNHEALTHY
    assert snap.error.startswith("UndefinedTable")


def test_postgres_check_with_a_sync_connection_factory(postgres_server: PostgresServer) -> None:
    opened: list[psycopg.Connection[Any]] = []

    def connect() -> psycopg.Connection[Any]:
        conn = psycopg.connect(postgres_server.dsn, autocommit=True)
        opened.append(conn)
        return conn

    assert outcome(postgres_check(connect=connect)).status is HEALTHY
    assert opened[0].closed


def test_postgres_check_with_an_async_connection_factory(postgres_server: PostgresServer) -> None:
    async def connect() -> psycopg.AsyncConnection[Any]:
        return await psycopg.AsyncConnection.connect(postgres_server.dsn, autocommit=True)

    assert outcome(postgres_check(connect=connect)).status is HEALTHY


def test_postgres_check_fails_when_nothing_listens() -> None:
    from servers import free_port

    snap = outcome(postgres_check(f"postgresql://postgres:hunter2@127.0.0.1:{free_port()}/x"))
    assert snap.status is UNHEALTHY
    assert snap.error.startswith("OperationalError")
    assert "hunter2" not in snap.error


# -- Redis ----------------------------------------------------------------------------------


def test_redis_check_with_a_url_pings(redis_server: RedisServer) -> None:
    assert outcome(redis_check(redis_server.url)).status is HEALTHY


def test_redis_check_with_the_apps_sync_client(redis_server: RedisServer) -> None:
    client = redis.Redis.from_url(redis_server.url)
    try:
        assert outcome(redis_check(client=client)).status is HEALTHY
    finally:
        client.close()


def test_redis_check_with_the_apps_async_client(redis_server: RedisServer) -> None:
    async def main() -> HealthStatus:
        client = aioredis.Redis.from_url(redis_server.url)
        try:
            registry = HealthRegistry("api")
            registry.add("cache", redis_check(client=client))
            return (await registry.run_once()).status
        finally:
            await client.aclose()

    assert run(main()) is HEALTHY


def test_redis_check_fails_when_nothing_listens() -> None:
    from servers import free_port

    snap = outcome(redis_check(f"redis://127.0.0.1:{free_port()}/0"))
    assert snap.status is UNHEALTHY
    assert snap.error.startswith("ConnectionError")


# -- blackholed dependencies ------------------------------------------------------------------


async def until(
    registry: HealthRegistry, wanted: HealthStatus, latencies: list[float]
) -> HealthReport:
    """Poll ``registry.report()`` until its status is ``wanted``, timing every call."""
    deadline = time.monotonic() + WAIT
    while True:
        start = time.perf_counter()
        report = registry.report()
        latencies.append(time.perf_counter() - start)
        if report.status is wanted:
            return report
        assert time.monotonic() < deadline, f"still {report.status}: {report.summary()}"
        await asyncio.sleep(0.005)


TIMED_OUT = (f"timed out after {TIMEOUT:g} s", "3 earlier runs have not returned yet")


def blackhole_scenario(
    upstream: tuple[str, int],
    make_check: Callable[[tuple[str, int]], Any],
    *,
    critical: bool,
) -> tuple[list[float], list[str | None]]:
    """Healthy, then blackholed (reports keep answering while runs time out), then healed."""
    latencies: list[float] = []
    errors: list[str | None] = []

    async def main() -> None:
        async with ChaosProxy(upstream) as proxy:
            registry = HealthRegistry("api")
            registry.add(
                "dep",
                make_check(proxy.address),
                interval=0.05,
                timeout=TIMEOUT,
                critical=critical,
            )
            registry.add("live", lambda: None, groups=("live",))
            async with registry:
                await until(registry, HEALTHY, latencies)
                proxy.set(blackhole=True)
                broken = await until(registry, UNHEALTHY if critical else DEGRADED, latencies)
                errors.append(broken.checks["dep"].error)
                assert registry.report("live").status is HEALTHY
                proxy.clear()
                await until(registry, HEALTHY, latencies)
                assert registry.get("dep").consecutive_failures == 0

    run(main())
    return latencies, errors


def test_blackholed_postgres_turns_the_service_unhealthy_while_reports_stay_instant(
    postgres_server: PostgresServer,
) -> None:
    def check(address: tuple[str, int]) -> Any:
        return postgres_check(f"postgresql://postgres@{address[0]}:{address[1]}/postgres")

    latencies, errors = blackhole_scenario(
        (postgres_server.host, postgres_server.port), check, critical=True
    )
    assert errors[0] in TIMED_OUT, errors
    # Reports read the cache: none waited for a run that hung for the whole timeout.
    assert max(latencies) < TIMEOUT, max(latencies)
    worst = max(latencies) * 1e3
    print(f"\nreport() during a postgres blackhole: {len(latencies)} calls, max {worst:.3f} ms")


def test_blackholed_redis_only_degrades_the_service_when_not_critical(
    redis_server: RedisServer,
) -> None:
    def check(address: tuple[str, int]) -> Any:
        return redis_check(f"redis://{address[0]}:{address[1]}/0")

    latencies, errors = blackhole_scenario(
        (redis_server.host, redis_server.port), check, critical=False
    )
    # The first run times out; a run due while the cancelled one still unwinds fails at once.
    assert errors[0] in TIMED_OUT, errors
    assert max(latencies) < TIMEOUT, max(latencies)


def test_blackholed_postgres_behind_a_running_thread_scheduler_with_a_fed_breaker(
    postgres_server: PostgresServer,
) -> None:
    """The sync-app form: checks in the registry's thread, reports from this one; the
    breaker fed by the check opens, so later runs do not even try the dependency."""
    from stalwart.chaos import ProxyThread

    breaker = CircuitBreaker("db", failure_threshold=2, recovery_timeout=0.3)
    with ProxyThread() as proxies:
        proxy = proxies.add((postgres_server.host, postgres_server.port))
        host, port = proxy.address
        registry = HealthRegistry("api")
        registry.add(
            "db",
            postgres_check(f"postgresql://postgres@{host}:{port}/postgres"),
            interval=0.05,
            timeout=TIMEOUT,
            breaker=breaker,
            feed_breaker=True,
        )
        latencies: list[float] = []

        def poll(wanted: HealthStatus) -> None:
            deadline = time.monotonic() + WAIT
            while True:
                start = time.perf_counter()
                status = registry.report().status
                latencies.append(time.perf_counter() - start)
                if status is wanted:
                    return
                assert time.monotonic() < deadline, registry.report().detailed(redact=False)
                time.sleep(0.005)

        with registry.running_in_thread():
            poll(HEALTHY)
            proxy.set(blackhole=True)
            poll(UNHEALTHY)
            deadline = time.monotonic() + WAIT
            while breaker.state.value == "closed":
                assert time.monotonic() < deadline
                time.sleep(0.01)
            assert registry.get("db").breaker_state in ("open", "half_open")
            proxy.clear()
            poll(HEALTHY)
        assert breaker.state.value == "closed"
        assert max(latencies) < TIMEOUT
