"""Fuzzing the ops app's HTTP surface: whatever comes in, the answer is never a 5xx.

Through the ASGI callable directly (fast, any bytes a server could pass on), and a sample
through uvicorn (what a real client can send). The registry is healthy, so a 503 could only
come from the app failing on its input.
"""

from __future__ import annotations

import asyncio
import json
import string
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import stalwart
from stalwart.health import HealthRegistry
from stalwart.web import OpsApp, ops_app
from web.support import KEY, Serve

ROUTES = [
    "/",
    "/health",
    "/health/detailed",
    "/health/live",
    "/health/ready",
    "/health/startup",
    "/health/services/{name}",
    "/health/services/{name}/reset",
    "/breakers",
    "/breakers/{name}",
    "/metrics",
    "/events",
    "/openapi.json",
    "/dashboard",
    "/dashboard/{name}",
    "/static/{name}",
]
METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE", "CONNECT"]
TCHAR = "!#$%&'*+-.^_`|~" + string.digits + string.ascii_letters
TOKEN = st.text(alphabet=TCHAR, min_size=1, max_size=12)
NAMES = st.one_of(
    st.sampled_from(["database", "qbittorrent", "nope", "", "..", "%2F", "%ff", "%"]),
    st.text(max_size=30),
)


@st.composite
def paths(draw: st.DrawFn) -> str:
    if draw(st.booleans()):
        template = draw(st.sampled_from(ROUTES))
        path = template.replace("{name}", draw(NAMES))
        if draw(st.booleans()):
            path += draw(st.sampled_from(["/", "//", "/x", "?q=1", "/reset/reset"]))
        return path
    return draw(st.one_of(st.text(max_size=60), st.just("/" + "a/" * 600)))


HEADER_VALUES = st.one_of(
    st.sampled_from(
        [
            "application/health+json",
            "application/health+json;q=abc",
            "*/*;q=1e400",
            f"Bearer {KEY}",
            "Bearer",
            "Basic Zm9vOmJhcg==",
            "application/json",
            "application/openmetrics-text; version=1.0.0",
            ",,,;;;",
        ]
    ),
    st.binary(max_size=40).map(lambda b: b.decode("latin-1")),
)
HEADERS = st.lists(
    st.tuples(
        st.sampled_from(["accept", "authorization", "content-type", "content-length", "x-any"]),
        HEADER_VALUES,
    ),
    max_size=5,
)
BODIES = st.one_of(
    st.just(b""),
    st.binary(max_size=200),
    st.sampled_from([b"{}", b"{", b"[]", b"null", b'{"a": 1}', b"[" * 3000, b"\xff"]),
)


@pytest.fixture(scope="module")
def app() -> Iterator[OpsApp]:
    registry = HealthRegistry(name="fuzzed")
    registry.add("database", lambda: True, critical=True, groups=("live", "ready", "startup"))
    asyncio.run(registry.run_once())
    ops = ops_app(health=registry, api_key=KEY, heartbeat=0.01)
    yield ops
    ops.close()


Answer = tuple[int, bytes, dict[str, str]]


async def call(
    app: OpsApp, method: str, path: str, headers: list[tuple[str, str]], body: bytes
) -> Answer:
    raw_path = path.split("?")[0]
    scope: dict[str, Any] = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": raw_path,
        "raw_path": raw_path.encode("utf-8", "surrogateescape"),
        "query_string": path.partition("?")[2].encode("utf-8", "surrogateescape"),
        "root_path": "",
        "headers": [(k.encode("latin-1"), v.encode("latin-1")) for k, v in headers],
        "client": ("127.0.0.1", 1),
        "server": ("127.0.0.1", 80),
    }
    messages = [{"type": "http.request", "body": body, "more_body": False}]
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        if messages:
            return messages.pop()
        await asyncio.sleep(0)  # the client leaves once it has sent the request
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await asyncio.wait_for(app(scope, receive, send), 10)
    start = sent[0]
    assert start["type"] == "http.response.start"
    content = b"".join(m.get("body", b"") for m in sent[1:])
    head = {k.decode("latin-1"): v.decode("latin-1") for k, v in start["headers"]}
    return start["status"], content, head


def check(status: int, content: bytes, headers: dict[str, str], method: str) -> None:
    assert status < 500, (status, content[:300])
    kind = headers.get("content-type", "")
    if "json" in kind and method != "HEAD":
        json.loads(content)  # every JSON answer, errors included, parses
    if status >= 400:
        assert kind == "application/problem+json"


@settings(
    max_examples=400,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    method=st.one_of(st.sampled_from(METHODS), TOKEN),
    path=paths(),
    headers=HEADERS,
    body=BODIES,
)
def test_no_input_gets_a_5xx_through_the_asgi_callable(
    app: OpsApp, method: str, path: str, headers: list[tuple[str, str]], body: bytes
) -> None:
    stalwart.circuit_breaker("qbittorrent")
    status, content, head = asyncio.run(call(app, method, path, headers, body))
    check(status, content, head, method)


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    method=st.sampled_from(["GET", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"]),
    route=st.sampled_from([r for r in ROUTES if r != "/events"]),
    name=st.text(max_size=20),
    accept=st.sampled_from(["*/*", "application/health+json", "text/html", "x/y;q=0"]),
    authorization=st.sampled_from([None, f"Bearer {KEY}", "Bearer wrong", "Basic abc"]),
    body=BODIES,
)
def test_no_request_a_real_client_can_send_gets_a_5xx_through_uvicorn(
    app: OpsApp,
    serve: Serve,
    method: str,
    route: str,
    name: str,
    accept: str,
    authorization: str | None,
    body: bytes,
) -> None:
    headers = {"Accept": accept}
    if authorization:
        headers["Authorization"] = authorization
    path = route.replace("{name}", quote(name, safe="") or "x")
    with serve(app) as url:
        response = httpx.request(method, url + path, headers=headers, content=body, timeout=5)
    check(response.status_code, response.content, dict(response.headers), method)
