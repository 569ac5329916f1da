"""The ops app answers as its own OpenAPI document says, checked by schemathesis.

Every operation of ``/openapi.json`` is driven over real HTTP (uvicorn on loopback) with
generated paths, headers and bodies, and each answer must not be a 5xx, must have a status
code and a content type the document lists for it, and a body that matches its schema.

The app is a busy one: checks that pass, fail (critical or not) and have breakers, breakers
in every state, a journal with sessions, a supervised connection. It is fuzzed four ways:
with the admin key (resets and force_open run, details are shown), by strangers to the same
app (no key, a wrong one, another scheme: 401s and redacted answers), with no key configured
(admin routes are 403), and bare (nothing registered: health "unknown", metrics off).
Real names are mixed into the generated ``{name}`` values, so the 200s are checked too.

``/events`` never ends by itself. The app's heartbeat is 50 ms and that operation's
requests have a 0.3 s timeout: schemathesis reads an event stream until the timeout passes
and validates what came (the hello and a few heartbeats), so each call is bounded; it gets
5 examples, and each test waits until the server has seen its clients leave.

Deterministic for CI: a fixed seed, ``derandomize``, no example database, and a bounded
number of examples per operation.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import hypothesis
import pytest
import schemathesis
from hypothesis import strategies as st
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from stalwart import CircuitBreaker
from stalwart.health import HealthRegistry
from stalwart.journal import Journal, run_batch
from stalwart.supervisor import BlockingSupervisor
from stalwart.testing import FakeClock
from stalwart.web import OpsApp, ops_app
from stalwart.web._core import Request
from supervisor.peers import sync_echo
from waiting import until
from web.support import KEY, SECRET_DSN, serve_asgi

EXAMPLES = 15
"""Generated examples per operation (/events: 5)."""
STREAM_SECONDS = 0.3
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]
BREAKERS = ("closed", "open", "half-open", "forced", "disabled", "payments")
CHECK_NAMES = ("database", "cache", "payments", "disk", "never-run")
REAL_NAMES = {
    "/breakers/": BREAKERS,
    "/health/services/": CHECK_NAMES,
    "/dashboard/": ("app.js", "app.css", "index.html"),
    "/static/": ("stalwart-poller.js", "stalwart-poller.mjs"),
}


@dataclass(frozen=True, slots=True)
class Variant:
    name: str
    api_key: str | None
    """The key the app is built with."""
    send_key: bool
    """Whether the fuzzing client sends it."""
    unhealthy: bool
    """A critical check fails (503 on /health) rather than only a non-critical one."""
    bare: bool = False
    """Nothing at all: no checks (health is "unknown"), no breakers, no metrics, no journal."""


VARIANTS = (
    Variant("operator", api_key=KEY, send_key=True, unhealthy=True),
    Variant("stranger", api_key=KEY, send_key=False, unhealthy=True),
    Variant("keyless", api_key=None, send_key=False, unhealthy=False),
    Variant("bare", api_key=None, send_key=False, unhealthy=False, bare=True),
)


def _fail() -> None:
    raise ConnectionError("refused")


def breakers(clock: FakeClock) -> list[CircuitBreaker]:
    """One breaker in each state (the payments check's own breaker is open)."""
    made = {
        name: CircuitBreaker(name, failure_threshold=1, recovery_timeout=60.0, clock=clock)
        for name in BREAKERS
    }
    made["half-open"] = CircuitBreaker(
        "half-open", failure_threshold=1, recovery_timeout=1.0, clock=clock
    )
    for name in ("open", "half-open", "payments"):
        with contextlib.suppress(ConnectionError):
            made[name].call(_fail)
    clock.advance(1.0)  # half-open's recovery is over; the others stay open
    made["forced"].force_open()
    made["disabled"].disable()
    return list(made.values())


def registry(unhealthy: bool, payments: CircuitBreaker) -> HealthRegistry:
    health = HealthRegistry("orders")

    def database() -> bool:
        if unhealthy:
            raise ConnectionError(f"could not connect to {SECRET_DSN}")
        return True

    def cache() -> bool:
        return False

    health.add("database", database, critical=True, groups=("ready",))
    health.add("cache", cache, critical=False)
    health.add("payments", lambda: True, breaker=payments, critical=False)
    health.add("disk", lambda: {"free": 0.5}, groups=("live",))
    asyncio.run(health.run_once())
    health.add("never-run", lambda: True, groups=("startup",))  # unknown until it runs
    return health


@pytest.fixture(scope="module")
def journal(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Journal]:
    with Journal(tmp_path_factory.mktemp("journal") / "batch.db") as j:
        run_batch(range(3), str, journal=j, session="nightly", metadata={"dsn": SECRET_DSN})
        yield j


@pytest.fixture(scope="module")
def supervised() -> Iterator[BlockingSupervisor]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        refused = f"ws://user:pw@127.0.0.1:{s.getsockname()[1]}/ws"
    with sync_echo() as url, BlockingSupervisor([refused, url], name="agent") as sup:
        assert sup.wait_connected(10)
        yield sup


@pytest.fixture(scope="module", params=VARIANTS, ids=lambda v: v.name)
def variant(request: pytest.FixtureRequest) -> Variant:
    return request.param  # type: ignore[no-any-return]


@pytest.fixture(scope="module")
def served(
    variant: Variant, journal: Journal, supervised: BlockingSupervisor
) -> Iterator[tuple[OpsApp, str]]:
    if variant.bare:
        app = ops_app(breakers=[], metrics=False, heartbeat=0.05)
    else:
        shown = breakers(FakeClock())
        health = registry(variant.unhealthy, next(b for b in shown if b.name == "payments"))
        app = ops_app(
            health=health,
            breakers=shown,
            api_key=variant.api_key,
            service_id="orders-api",
            heartbeat=0.05,
            journal=journal,
        )
    try:
        with serve_asgi(app) as url:
            yield app, url
    finally:
        app.close()


UNHEALTHY_IS_503 = {
    # 503 is how the health routes say "unhealthy" (and /events "too many clients"): designed,
    # and documented. Anywhere else, and any other 5xx anywhere, is a server error.
    "include-path-regex": "^/(health|events)",
    "checks": {"not_a_server_error": {"expected-statuses": ["2xx", "3xx", "4xx", "503"]}},
}


FEW_STREAMS = {
    # Each /events call takes STREAM_SECONDS; the stream has no input but the headers.
    "include-path": "/events",
    "generation": {"max-examples": 5},
}


def load_schema() -> Any:
    """The document the app serves (its own handler answers GET /openapi.json)."""
    config = schemathesis.Config.from_dict(
        {
            "seed": 15,
            "generation": {
                "deterministic": True,
                "max-examples": EXAMPLES,
                "database": "none",
                # Authorization comes from the test (the right key, or a stranger's).
                "with-security-parameters": False,
            },
            "operations": [UNHEALTHY_IS_503, FEW_STREAMS],
        }
    )
    app = ops_app(metrics=False)
    try:
        answer = app.core.handle(Request("GET", "/openapi.json", {}))
    finally:
        app.close()
    loaded = schemathesis.openapi.from_dict(json.loads(answer.body), config=config)

    @loaded.hook
    def before_generate_path_parameters(context: Any, strategy: Any) -> Any:
        # Random names are all 404s: mix in the real ones, so the 200s are checked too.
        path = context.operation.path
        for prefix, real in REAL_NAMES.items():
            if path.startswith(prefix):
                return st.one_of(st.fixed_dictionaries({"name": st.sampled_from(real)}), strategy)
        return strategy

    return loaded


schema = load_schema()


@pytest.fixture
def quiet(served: tuple[OpsApp, str]) -> Iterator[None]:
    """After each operation: the event clients it opened are gone (a hang-up is noticed by
    the server a moment after the client closed)."""
    yield
    events = served[0].events
    assert events is not None
    until(lambda: events.clients == 0, "the event clients left")


ACCEPT = st.sampled_from(
    [
        "*/*",
        "application/json",
        "application/health+json",
        "application/health+json;q=0.5, application/json",
        "application/openmetrics-text; version=1.0.0",
        "text/html",
    ]
)


AUTHORIZATION = st.sampled_from(
    [None, "Bearer not-the-key", "Bearer ", "Basic dXNlcjpwdw==", "bearer " + KEY + "x"]
)
"""What strangers send: nothing, a wrong key, another scheme (the key is never among them)."""


@schema.parametrize()
@schema.given(accept=ACCEPT, authorization=AUTHORIZATION)
@hypothesis.settings(deadline=None, suppress_health_check=list(hypothesis.HealthCheck))
def test_every_operation_answers_as_the_openapi_document_says(
    case: Any,
    accept: str,
    authorization: str | None,
    served: tuple[OpsApp, str],
    variant: Variant,
    quiet: None,
) -> None:
    _, url = served
    if variant.send_key:
        authorization = f"Bearer {KEY}"
    sent = {"Accept": accept}
    if authorization is not None:
        sent["Authorization"] = authorization
    timeout = STREAM_SECONDS if case.path == "/events" else 10.0
    case.call_and_validate(base_url=url, headers=sent, checks=CHECKS, timeout=timeout)


def test_the_busy_app_has_a_breaker_in_every_state() -> None:
    states = {b.name: b.state.value for b in breakers(FakeClock())}
    assert states == {
        "closed": "closed",
        "open": "open",
        "half-open": "half_open",
        "forced": "forced_open",
        "disabled": "disabled",
        "payments": "open",
    }


def test_the_fuzzed_document_is_the_one_served_over_http(served: tuple[OpsApp, str]) -> None:
    _, url = served
    assert httpx.get(f"{url}/openapi.json", timeout=5).json() == schema.raw_schema
