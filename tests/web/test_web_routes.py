"""The ops app's routes through real HTTP round trips under uvicorn."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

import stalwart
from stalwart import CircuitBreaker, CircuitOpenError
from stalwart.health import HealthRegistry
from stalwart.metrics import PrometheusMetrics
from stalwart.web import OpsApp, ops_app
from stalwart.web._core import HEALTH_JSON, wants_ietf
from web.support import KEY, SECRET_DSN, Serve


class Dependency:
    """A check's switchable outcome: up, or down with an error that names a DSN."""

    def __init__(self) -> None:
        self.up = True

    def __call__(self) -> bool:
        if not self.up:
            raise ConnectionError(f"cannot connect to {SECRET_DSN}")
        return True


@pytest.fixture
def database() -> Dependency:
    return Dependency()


@pytest.fixture
def cache() -> Dependency:
    return Dependency()


@pytest.fixture
def health(database: Dependency, cache: Dependency) -> HealthRegistry:
    registry = HealthRegistry(name="orders")
    registry.add("database", database, critical=True, groups=("ready", "startup"))
    registry.add("cache", cache, critical=False)
    return registry


def refresh(registry: HealthRegistry) -> None:
    asyncio.run(asyncio.wait_for(registry.run_once(), 10))


@pytest.fixture
def app(health: HealthRegistry) -> Iterator[OpsApp]:
    refresh(health)
    ops = ops_app(health=health, api_key=KEY, service_id="orders-api")
    yield ops
    ops.close()


def test_health_is_200_with_the_seed_003_summary_while_checks_pass(client: httpx.Client) -> None:
    response = client.get("/health")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert body["status"] == "healthy"
    assert body["services"] == {
        "total": 2, "healthy": 2, "degraded": 0, "unhealthy": 0, "unknown": 0
    }  # fmt: skip
    assert isinstance(body["timestamp"], float)
    assert body["message"]


def test_a_failing_critical_check_gives_503_a_non_critical_one_200_degraded(
    client: httpx.Client, health: HealthRegistry, database: Dependency, cache: Dependency
) -> None:
    cache.up = False
    refresh(health)
    degraded = client.get("/health")
    assert (degraded.status_code, degraded.json()["status"]) == (200, "degraded")
    database.up = False
    refresh(health)
    unhealthy = client.get("/health")
    assert (unhealthy.status_code, unhealthy.json()["status"]) == (503, "unhealthy")


def test_accept_health_json_gets_the_ietf_format(
    client: httpx.Client, health: HealthRegistry, database: Dependency
) -> None:
    database.up = False
    refresh(health)
    response = client.get("/health", headers={"Accept": "application/health+json"})
    assert response.status_code == 503
    assert response.headers["content-type"] == "application/health+json"
    body = response.json()
    assert body["status"] == "fail"
    assert body["serviceId"] == "orders-api"
    assert body["checks"]["database:responseTime"][0]["status"] == "fail"


@pytest.mark.parametrize(
    ("accept", "ietf"),
    [
        ("application/health+json", True),
        ("application/json", False),
        ("*/*", False),
        ("", False),
        ("application/health+json, application/json;q=0.5", True),
        ("application/health+json;q=0.4, application/json", False),
        ("application/health+json;q=0", False),
        ("application/health+json;q=nan", False),
        ("text/html;;;, application/health+json;q=1.0;x=y", True),
    ],
)
def test_the_ietf_format_is_chosen_only_when_accept_prefers_it(accept: str, ietf: bool) -> None:
    assert wants_ietf(accept) is ietf


def test_health_answers_carry_cache_control_max_age(
    client: httpx.Client, health: HealthRegistry, serve: Serve
) -> None:
    for path in ("/health", "/health/live", "/health/ready", "/health/detailed"):
        response = client.get(path)
        assert response.headers["cache-control"] == "max-age=5"
        assert "Authorization" in response.headers["vary"]
    authed = client.get("/health/detailed", headers={"Authorization": f"Bearer {KEY}"})
    assert authed.headers["cache-control"] == "private, max-age=5"
    uncached = ops_app(health=health, cache_max_age=0, metrics=False)
    with serve(uncached) as url:
        assert httpx.get(f"{url}/health", timeout=5).headers["cache-control"] == "no-cache"
    uncached.close()


def test_liveness_never_depends_on_external_checks_readiness_does(
    client: httpx.Client, health: HealthRegistry, database: Dependency
) -> None:
    database.up = False
    refresh(health)
    live = client.get("/health/live")
    assert live.status_code == 200
    assert live.json()["services"]["total"] == 0
    assert client.get("/health/ready").status_code == 503
    assert client.get("/health/startup").status_code == 503


def test_detailed_lists_every_check_with_its_metrics(client: httpx.Client) -> None:
    checks = client.get("/health/detailed").json()["checks"]
    assert set(checks) == {"database", "cache"}
    db = checks["database"]
    for key in ("availability", "avg_duration", "p95_duration", "consecutive_failures", "history"):
        assert key in db
    assert db["critical"] is True


def test_one_service_is_served_and_an_unknown_one_is_a_json_404(client: httpx.Client) -> None:
    one = client.get("/health/services/database")
    assert one.status_code == 200
    assert one.json()["name"] == "database"
    missing = client.get("/health/services/nope")
    assert missing.status_code == 404
    assert missing.headers["content-type"] == "application/problem+json"
    assert missing.json()["status"] == 404


def test_an_unhealthy_service_route_answers_503(
    client: httpx.Client, health: HealthRegistry, database: Dependency
) -> None:
    database.up = False
    refresh(health)
    assert client.get("/health/services/database").status_code == 503


def test_unknown_routes_and_wrong_methods_get_json_errors(client: httpx.Client) -> None:
    missing = client.get("/nope")
    assert (missing.status_code, missing.json()["title"]) == (404, "Not Found")
    wrong = client.delete("/health")
    assert wrong.status_code == 405
    assert wrong.headers["allow"] == "GET, HEAD"
    assert wrong.json()["status"] == 405
    get_reset = client.get("/health/services/database/reset")
    assert (get_reset.status_code, get_reset.headers["allow"]) == (405, "POST")


def test_head_answers_like_get_without_a_body(client: httpx.Client) -> None:
    response = client.head("/health")
    assert response.status_code == 200
    assert response.content == b""
    assert int(response.headers["content-length"]) > 0


def test_a_trailing_slash_is_the_same_route(client: httpx.Client) -> None:
    assert client.get("/health/").json()["status"] == "healthy"


def test_breakers_are_listed_with_the_seed_000_poll_hint(client: httpx.Client) -> None:
    qbit = stalwart.circuit_breaker("qbittorrent", failure_threshold=1, recovery_timeout=60.0)
    stalwart.circuit_breaker("s3")
    with pytest.raises(OSError):
        qbit.call(_fail)
    listing = client.get("/breakers").json()["breakers"]
    assert set(listing) == {"qbittorrent", "s3"}
    one = client.get("/breakers/qbittorrent")
    assert one.status_code == 200
    body = one.json()
    assert body["available"] is False
    assert body["state"] == "open"
    assert body["poll_interval"] == 60.0
    assert 0 < body["retry_in"] <= 60.0
    assert body["message"]
    assert body["snapshot"]["total_failures"] == 1
    assert body["config"]["failure_threshold"] == 1
    assert listing["s3"]["poll_interval"] == 5.0
    assert client.get("/breakers/nope").status_code == 404


def test_breakers_given_to_the_app_replace_the_named_ones(
    health: HealthRegistry, serve: Serve
) -> None:
    stalwart.circuit_breaker("named")
    mine = CircuitBreaker("mine")
    app = ops_app(health=health, breakers=[mine], metrics=False)
    with serve(app) as url:
        assert set(httpx.get(f"{url}/breakers", timeout=5).json()["breakers"]) == {"mine"}
    app.close()


def test_metrics_are_prometheus_exposition_with_breaker_and_health_series(
    client: httpx.Client,
) -> None:
    breaker = stalwart.circuit_breaker("api", failure_threshold=1)
    breaker.call(lambda: None)
    with pytest.raises(OSError):
        breaker.call(_fail)
    with pytest.raises(CircuitOpenError):
        breaker.call(_fail)
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    values = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(response.text)
        for s in family.samples
    }
    assert values[("stalwart_circuitbreaker_state", (("name", "api"), ("state", "open")))] == 1
    calls = "stalwart_circuitbreaker_calls_seconds_count"
    assert values[(calls, (("kind", "successful"), ("name", "api")))] == 1
    assert values[(calls, (("kind", "failed"), ("name", "api")))] == 1
    rejected = "stalwart_circuitbreaker_not_permitted_calls_total"
    assert values[(rejected, (("name", "api"),))] == 1
    assert values[("stalwart_health_check_status", (("name", "database"),))] == 1
    assert ("stalwart_health_check_duration_seconds", (("name", "cache"),)) in values
    assert values[("stalwart_health_check_slow", (("name", "database"),))] == 0


def test_metrics_can_be_switched_off(health: HealthRegistry, serve: Serve) -> None:
    app = ops_app(health=health, metrics=False)
    with serve(app) as url:
        assert httpx.get(f"{url}/metrics", timeout=5).status_code == 404
    app.close()


def test_openapi_describes_every_route(client: httpx.Client) -> None:
    spec = client.get("/openapi.json").json()
    assert spec["openapi"].startswith("3.1")
    for path in ("/health", "/health/services/{name}/reset", "/breakers/{name}", "/events"):
        assert path in spec["paths"]
    assert spec["paths"]["/health/services/{name}/reset"]["post"]["security"] == [{"bearer": []}]
    assert spec["servers"] == [{"url": "/"}]


def test_the_index_lists_the_routes(client: httpx.Client) -> None:
    paths = [r["path"] for r in client.get("/").json()["routes"]]
    assert "/health/ready" in paths


def test_behind_a_proxy_that_strips_a_prefix_links_name_the_prefix(
    app: OpsApp, serve: Serve
) -> None:
    # uvicorn --root-path: the proxy removed /ops, the scope says where the app lives.
    with serve(app, root_path="/ops") as url, httpx.Client(base_url=url, timeout=5) as http:
        assert http.get("/health").json()["status"] == "healthy"
        assert http.get("/health/services/database").status_code == 200
        assert http.get("/openapi.json").json()["servers"] == [{"url": "/ops"}]


def test_reset_with_the_key_resets_the_checks_breaker(health: HealthRegistry, serve: Serve) -> None:
    breaker = CircuitBreaker("payments", failure_threshold=1)
    health.add("payments", lambda: True, breaker=breaker)
    with pytest.raises(OSError):
        breaker.call(_fail)
    refresh(health)
    app = ops_app(health=health, api_key=KEY, metrics=False)
    with serve(app) as url:
        response = httpx.post(
            f"{url}/health/services/payments/reset",
            headers={"Authorization": f"Bearer {KEY}"},
            timeout=5,
        )
    app.close()
    assert response.status_code == 200
    assert response.json()["reset"] == "payments"
    assert breaker.state is stalwart.State.CLOSED


def test_run_checks_runs_the_registry_for_the_servers_lifetime(serve: Serve) -> None:
    registry = HealthRegistry(name="solo")
    calls: list[int] = []

    def check() -> bool:
        calls.append(1)
        return True

    registry.add("ping", check, interval=0.05, timeout=1.0)
    app = ops_app(health=registry, run_checks=True, metrics=False)
    with serve(app, lifespan="on") as url:
        body: Any = None
        for _ in range(200):
            body = httpx.get(f"{url}/health/services/ping", timeout=5).json()
            if body["checked_at"] is not None:
                break
            asyncio.run(asyncio.sleep(0.01))
        assert body["status"] == "healthy"
    assert calls


def _fail() -> None:
    raise OSError("down")


def test_without_a_registry_the_app_reports_an_unknown_service_and_why(serve: Serve) -> None:
    app = ops_app(metrics=False, service_id="bare")
    with serve(app) as url:
        answer = httpx.get(f"{url}/health", timeout=5)
        ietf = httpx.get(f"{url}/health", headers={"Accept": HEALTH_JSON}, timeout=5)
        live = httpx.get(f"{url}/health/live", timeout=5)
    app.close()
    assert answer.status_code == 503  # ops-specs H3: no checks is not a pass
    summary = answer.json()
    assert summary["status"] == "unknown"
    assert summary["services"]["total"] == 0
    assert summary["message"] == "Unknown: no health checks are registered"
    assert ietf.status_code == 503
    assert ietf.json()["status"] == "fail"
    assert ietf.json()["output"] == "Unknown: no health checks are registered"
    assert ietf.json()["serviceId"] == "bare"
    assert live.status_code == 200  # nothing gates liveness: the process answers


def test_metrics_of_your_own_are_served_and_left_running_on_close(
    health: HealthRegistry, serve: Serve
) -> None:
    with PrometheusMetrics(prefix="shop") as metrics:
        app = ops_app(health=health, metrics=metrics)
        stalwart.circuit_breaker("db").call(lambda: None)
        with serve(app) as url:
            text = httpx.get(f"{url}/metrics", timeout=5).text
        app.close()
        assert 'shop_circuitbreaker_calls_seconds_count{kind="successful",name="db"} 1.0' in text
        stalwart.circuit_breaker("db").call(lambda: None)
        assert b'kind="successful",name="db"} 2.0' in metrics.exposition()[0]


@pytest.mark.parametrize(
    ("field", "options"),
    [
        ("cache_max_age", {"cache_max_age": -1}),
        ("cache_max_age", {"cache_max_age": "5"}),
        ("service_id", {"service_id": 3}),
        ("metrics", {"metrics": "yes"}),
        ("run_checks", {"run_checks": "yes"}),
        ("heartbeat", {"heartbeat": 0}),
        ("max_event_queue", {"max_event_queue": 0}),
        ("max_event_clients", {"max_event_clients": 1.5}),
        ("breakers", {"breakers": 42}),
    ],
)
def test_bad_app_settings_name_the_field(
    health: HealthRegistry, field: str, options: dict[str, Any]
) -> None:
    with pytest.raises(stalwart.ConfigError) as err:
        ops_app(health=health, **options)
    assert err.value.field == field


def test_breakers_attached_to_checks_are_listed_even_when_not_named(
    health: HealthRegistry, serve: Serve
) -> None:
    health.add("payments", lambda: True, breaker=CircuitBreaker("payments-api"))
    with PrometheusMetrics(health=health) as metrics:
        app = ops_app(health=health, metrics=metrics)
        with serve(app) as url:
            listing = httpx.get(f"{url}/breakers", timeout=5).json()["breakers"]
            one = httpx.get(f"{url}/breakers/payments-api", timeout=5)
            text = httpx.get(f"{url}/metrics", timeout=5).text
        app.close()
    assert "payments-api" in listing
    assert one.status_code == 200
    assert 'stalwart_circuitbreaker_state{name="payments-api",state="closed"} 1.0' in text


def test_without_prometheus_client_the_app_runs_and_metrics_are_404() -> None:
    script = """
import asyncio, sys
sys.modules["prometheus_client"] = None  # as if the extra were not installed
from stalwart.web import ops_app
app = ops_app()
sent = []
async def receive():
    return {"type": "http.request", "body": b""}
async def send(message):
    sent.append(message)
scope = {"type": "http", "method": "GET", "path": "/metrics", "headers": []}
asyncio.run(app(scope, receive, send))
assert app.metrics is None
print(sent[0]["status"])
"""
    done = subprocess.run(
        [sys.executable, "-W", "error", "-c", script], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "404"
