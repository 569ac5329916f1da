"""The ops app mounted in FastAPI and Starlette, and as a Flask blueprint: real round trips."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from typing import Any

import fastapi
import flask
import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Mount, Route

import stalwart
from stalwart.health import HealthRegistry
from stalwart.web import OpsApp, flask_blueprint, ops_app
from stalwart.web._core import below_mount
from web.support import KEY, SECRETS, Serve

WAIT = 5.0


def down() -> bool:
    raise ConnectionError("postgresql://admin:hunter2@db.internal.example:5432/orders")


@pytest.fixture
def health() -> HealthRegistry:
    registry = HealthRegistry(name="orders")
    registry.add("database", down, critical=True)
    registry.add("cache", lambda: True, critical=False)
    asyncio.run(asyncio.wait_for(registry.run_once(), 10))
    return registry


@pytest.fixture
def ops(health: HealthRegistry) -> Iterator[OpsApp]:
    app = ops_app(health=health, api_key=KEY, heartbeat=0.05)
    yield app
    app.close()


def check_mounted(url: str) -> None:
    """The same answers wherever the app is mounted at ``url``."""
    stalwart.circuit_breaker("qbittorrent")
    with httpx.Client(base_url=url, timeout=WAIT) as client:
        health = client.get("/health")
        assert health.status_code == 503
        assert health.json()["services"]["total"] == 2
        assert health.headers["cache-control"] == "max-age=5"
        ietf = client.get("/health", headers={"Accept": "application/health+json"})
        assert ietf.headers["content-type"] == "application/health+json"
        assert ietf.json()["status"] == "fail"
        assert client.get("/health/live").status_code == 200
        detailed = client.get("/health/detailed")
        assert not any(secret in detailed.text for secret in SECRETS)
        assert client.get("/breakers/qbittorrent").json()["poll_interval"] == 5.0
        assert client.get("/health/services/nope").status_code == 404
        wrong = client.put("/health")
        assert (wrong.status_code, wrong.headers["allow"]) == (405, "GET, HEAD")
        assert client.post("/health/services/database/reset").status_code == 401
        authed = {"Authorization": f"Bearer {KEY}"}
        reset = client.post("/health/services/database/reset", headers=authed)
        assert reset.status_code == 200
        bad = client.post("/health/services/database/reset", headers=authed, content=b"{")
        assert (bad.status_code, bad.json()["status"]) == (400, 400)
        big = client.post("/health/services/database/reset", headers=authed, content=b" " * 70_000)
        assert big.status_code == 413
        metrics = client.get("/metrics")
        names = {f.name for f in text_string_to_metric_families(metrics.text)}
        assert "stalwart_circuitbreaker_state" in names
        servers = client.get("/openapi.json").json()["servers"]
        assert servers == [{"url": "/ops"}]
        # A name with a slash or a percent sign is one segment, decoded once.
        for name, sent in (("eu/west", "eu%2Fwest"), ("50%ff", "50%25ff"), ("a b", "a%20b")):
            stalwart.circuit_breaker(name)
            answer = client.get(f"/breakers/{sent}")
            assert (answer.status_code, answer.json().get("name")) == (200, name), answer.text


def stream_one_transition(url: str) -> dict[str, Any]:
    breaker = stalwart.circuit_breaker("streamed", failure_threshold=1)
    with httpx.Client(timeout=WAIT) as client, client.stream("GET", f"{url}/events") as response:
        chunks = response.iter_raw()
        buffer = b""
        while b"connected" not in buffer:
            buffer += next(chunks)
        with pytest.raises(OSError):
            breaker.call(_fail)
        while b"event: state_transition" not in buffer:
            buffer += next(chunks)
    return {"frame": buffer.decode()}


def test_mounted_in_fastapi(ops: OpsApp, serve: Serve) -> None:
    app = fastapi.FastAPI()

    @app.get("/")
    def home() -> dict[str, str]:
        return {"app": "mine"}

    app.mount("/ops", ops)
    with serve(app) as url:
        assert httpx.get(f"{url}/", timeout=WAIT).json() == {"app": "mine"}
        check_mounted(f"{url}/ops")
        assert '"name":"streamed"' in stream_one_transition(f"{url}/ops")["frame"]


def test_mounted_in_starlette(ops: OpsApp, serve: Serve) -> None:
    async def home(request: Any) -> PlainTextResponse:
        return PlainTextResponse("mine")

    app = Starlette(routes=[Route("/", home), Mount("/ops", app=ops)])
    with serve(app) as url:
        assert httpx.get(f"{url}/", timeout=WAIT).text == "mine"
        check_mounted(f"{url}/ops")


def test_flask_blueprint_serves_the_same_data(ops: OpsApp, wsgi: Serve) -> None:
    app = flask.Flask("shop")

    @app.get("/")
    def home() -> str:
        return "mine"

    app.register_blueprint(flask_blueprint(ops), url_prefix="/ops")
    with wsgi(app) as url:
        assert httpx.get(f"{url}/", timeout=WAIT).text == "mine"
        check_mounted(f"{url}/ops")
        assert '"name":"streamed"' in stream_one_transition(f"{url}/ops")["frame"]


def test_flask_blueprint_builds_its_own_app_from_options(
    health: HealthRegistry, wsgi: Serve
) -> None:
    app = flask.Flask("shop")
    app.register_blueprint(
        flask_blueprint(health=health, metrics=False, name="ops2"), url_prefix="/x"
    )
    with wsgi(app) as url:
        assert httpx.get(f"{url}/x/health", timeout=WAIT).status_code == 503
        assert httpx.get(f"{url}/x/metrics", timeout=WAIT).status_code == 404


def test_flask_blueprint_refuses_an_app_and_options_together(ops: OpsApp) -> None:
    with pytest.raises(stalwart.ConfigError) as err:
        flask_blueprint(ops, api_key="k")
    assert err.value.field == "api_key"


def _fail() -> None:
    raise OSError("down")


def test_flask_event_clients_that_leave_are_unsubscribed(ops: OpsApp, wsgi: Serve) -> None:
    app = flask.Flask("shop")
    app.register_blueprint(flask_blueprint(ops), url_prefix="/ops")
    stream = ops.events
    assert stream is not None
    with wsgi(app) as url:
        with httpx.Client(timeout=WAIT) as client, client.stream("GET", f"{url}/ops/events") as r:
            chunks = r.iter_raw()
            assert b"connected" in next(chunks)
            assert stream.clients == 1
        # A blocking server notices a gone client at its next write: the next heartbeat.
        deadline = time.monotonic() + WAIT
        while stream.clients and time.monotonic() < deadline:
            time.sleep(0.01)
    assert stream.clients == 0


def test_flask_head_answers_like_get_without_a_body(ops: OpsApp, wsgi: Serve) -> None:
    app = flask.Flask("shop")
    app.register_blueprint(flask_blueprint(ops), url_prefix="/ops")
    with wsgi(app) as url:
        response = httpx.head(f"{url}/ops/health", timeout=WAIT)
    assert response.status_code == 503
    assert response.content == b""
    assert int(response.headers["content-length"]) > 0


@pytest.mark.parametrize(
    ("raw", "path", "root", "below"),
    [
        ("/ops/breakers/eu%2Fwest", "/ops/breakers/eu/west", "/ops", "/breakers/eu%2Fwest"),
        ("/breakers/50%25ff", "/breakers/50%ff", "", "/breakers/50%25ff"),
        (None, "/ops/breakers/50%ff", "/ops", "/breakers/50%25ff"),  # no raw path: re-encoded
        ("/a/b/health?x=1", "/a/b/health", "/a/b", "/health"),
        ("/ops", "/ops", "/ops", "/"),
        ("/other/health", "/other/health", "/ops", "/other/health"),  # not under the root
    ],
)
def test_below_mount_keeps_the_path_encoded_under_the_root(
    raw: str | None, path: str, root: str, below: str
) -> None:
    assert below_mount(raw, path, root) == below
