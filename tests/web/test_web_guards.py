"""Request guards on real ASGI apps under uvicorn: a rate limit per client and API keys.

The rate limit's clock is a FakeClock, so a refill is a clock advance, not a wait.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from fastapi import Depends, FastAPI
from starlette.applications import Starlette
from starlette.responses import JSONResponse
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket

from stalwart import ConfigError
from stalwart.testing import FakeClock
from stalwart.web import ApiKey, Guarded, RateLimit, by_address
from web.support import Serve

KEY = "music-core-0123456789"
OTHER = "music-storage-0123456789"


def ok(request: Any) -> JSONResponse:
    return JSONResponse({"ok": True})


async def echo(websocket: WebSocket) -> None:
    await websocket.accept()
    await websocket.send_text(await websocket.receive_text())
    await websocket.close()


def guarded_app(*guards: Any) -> Starlette:
    app = Starlette(
        routes=[
            Route("/search", ok),
            Route("/health", ok),
            Route("/health/live", ok),
            WebSocketRoute("/ws", echo),
        ]
    )
    app.add_middleware(Guarded, guards=list(guards))
    return app


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def limited(serve: Serve, clock: FakeClock) -> Iterator[httpx.Client]:
    limit = RateLimit("10/minute", exempt=["/health"], clock=clock)
    with serve(guarded_app(limit)) as url, httpx.Client(base_url=url, timeout=5) as http:
        yield http


def test_the_11th_request_in_a_minute_gets_429_with_retry_after(
    limited: httpx.Client, clock: FakeClock
) -> None:
    answers = [limited.get("/search") for _ in range(11)]
    assert [a.status_code for a in answers] == [200] * 10 + [429]
    assert answers[0].headers["ratelimit-policy"] == '"rate_limit";q=10;w=60'
    assert answers[0].headers["ratelimit"] == '"rate_limit";r=9;t=6'
    assert answers[9].headers["ratelimit"] == '"rate_limit";r=0;t=60'
    refused = answers[10]
    assert refused.headers["retry-after"] == "6"
    assert refused.headers["content-type"] == "application/problem+json"
    assert refused.json() == {
        "type": "about:blank",
        "title": "Too Many Requests",
        "status": 429,
        "detail": "rate limit 10/minute exceeded for this client; retry in 6 s",
    }
    clock.advance(6.0)  # one request's worth refilled
    assert limited.get("/search").status_code == 200
    assert limited.get("/search").status_code == 429


def test_exempt_paths_are_not_counted(limited: httpx.Client) -> None:
    for _ in range(12):
        assert limited.get("/health").status_code == 200
        assert limited.get("/health/live").status_code == 200
    assert "ratelimit" not in limited.get("/health").headers
    assert limited.get("/search").headers["ratelimit"] == '"rate_limit";r=9;t=6'


def test_clients_are_counted_apart_by_api_key(serve: Serve, clock: FakeClock) -> None:
    limit = RateLimit("2/minute", key="api_key", clock=clock)
    with serve(guarded_app(limit)) as url, httpx.Client(base_url=url, timeout=5) as http:

        def codes(token: str) -> list[int]:
            auth = {"authorization": f"Bearer {token}"}
            return [http.get("/search", headers=auth).status_code for _ in range(3)]

        assert codes(KEY) == [200, 200, 429]
        assert codes(OTHER) == [200, 200, 429]


def test_a_key_function_returning_none_lets_the_request_through(
    serve: Serve, clock: FakeClock
) -> None:
    def internal_unlimited(scope: Any) -> str | None:
        headers = dict(scope["headers"])
        return None if headers.get(b"x-internal") == b"yes" else by_address(scope)

    limit = RateLimit("1/minute", key=internal_unlimited, clock=clock)
    with serve(guarded_app(limit)) as url, httpx.Client(base_url=url, timeout=5) as http:
        internal = [http.get("/search", headers={"x-internal": "yes"}) for _ in range(3)]
        assert [a.status_code for a in internal] == [200, 200, 200]
        assert "ratelimit" not in internal[0].headers
        assert [http.get("/search").status_code for _ in range(2)] == [200, 429]


def test_websockets_and_lifespan_pass_through(serve: Serve, clock: FakeClock) -> None:
    limit = RateLimit("1/minute", clock=clock)
    with serve(guarded_app(limit), lifespan="on") as url:
        from websockets.sync.client import connect

        for _ in range(3):  # not counted: the guard is for HTTP requests
            with connect(url.replace("http", "ws") + "/ws") as ws:
                ws.send("hi")
                assert ws.recv() == "hi"


def test_only_the_most_recent_clients_are_remembered(clock: FakeClock) -> None:
    limit = RateLimit("1/minute", max_clients=2, clock=clock)
    assert limit.check("a").refusal is None
    assert limit.check("a").refusal is not None
    limit.check("b")
    limit.check("c")  # "a" is the least recently seen: dropped
    assert limit.check("a").refusal is None
    assert len(limit._buckets) == 2


# -- API keys ------------------------------------------------------------------------------


@pytest.fixture
def keyed(serve: Serve) -> Iterator[httpx.Client]:
    guard = ApiKey([KEY, OTHER], exempt=["/health"])
    with serve(guarded_app(guard)) as url, httpx.Client(base_url=url, timeout=5) as http:
        yield http


@pytest.mark.parametrize(
    ("headers", "detail"),
    [
        ({}, "an API key is needed: Authorization: Bearer <key>"),
        ({"authorization": "Bearer nope-nope-nope-nope"}, "the API key is not valid"),
        ({"authorization": f"Basic {KEY}"}, "an API key is needed: Authorization: Bearer <key>"),
        ({"authorization": "Bearer"}, "an API key is needed: Authorization: Bearer <key>"),
    ],
)
def test_a_missing_or_wrong_key_gets_401_with_a_json_body(
    keyed: httpx.Client, headers: dict[str, str], detail: str
) -> None:
    answer = keyed.get("/search", headers=headers)
    assert answer.status_code == 401
    assert answer.headers["www-authenticate"] == 'Bearer realm="api"'
    assert answer.headers["content-type"] == "application/problem+json"
    assert answer.json()["detail"] == detail


def test_each_configured_key_is_accepted_and_probes_are_exempt(keyed: httpx.Client) -> None:
    for key in (KEY, OTHER):
        assert keyed.get("/search", headers={"authorization": f"bearer {key}"}).status_code == 200
    assert keyed.get("/health").status_code == 200


def test_keys_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MUSIC_API_KEYS", f"{KEY}, {OTHER},")
    guard = ApiKey(env="MUSIC_API_KEYS")
    assert guard.accepts(KEY)
    assert guard.accepts(OTHER)
    assert not guard.accepts(KEY[:-1])
    assert not guard.accepts(None)


@pytest.mark.parametrize(
    ("kwargs", "problem"),
    [
        ({}, "at least one API key is needed (none given)"),
        ({"env": "NO_SUCH_VARIABLE_SET"}, "'NO_SUCH_VARIABLE_SET' is empty or unset"),
        ({"keys": ["short"]}, "at least 16 characters"),
    ],
)
def test_no_usable_key_is_a_config_error(kwargs: dict[str, Any], problem: str) -> None:
    with pytest.raises(ConfigError, match="keys") as caught:
        ApiKey(**kwargs)
    assert problem in str(caught.value)


@pytest.mark.parametrize(
    ("kwargs", "field_name"),
    [
        ({"rate": "10 per fortnight"}, "rate"),
        ({"rate": "10/minute", "key": "cookie"}, "key"),
        ({"rate": "10/minute", "max_clients": 0}, "max_clients"),
        ({"rate": "10/minute", "exempt": ["health"]}, "exempt"),
        ({"rate": "10/minute", "store": object(), "name": "x"}, "store"),
    ],
)
def test_bad_rate_limit_settings_name_the_field(kwargs: dict[str, Any], field_name: str) -> None:
    with pytest.raises(ConfigError) as caught:
        RateLimit(**kwargs)
    assert caught.value.field == field_name


def test_guarded_needs_a_guard() -> None:
    with pytest.raises(ConfigError, match="guards"):
        Guarded(ok, guards=[])


# -- FastAPI, per route --------------------------------------------------------------------


def test_per_route_guards_as_fastapi_dependencies(serve: Serve, clock: FakeClock) -> None:
    search_limit = RateLimit("2/minute", name="search", clock=clock)
    api_key = ApiKey([KEY])
    app = FastAPI()

    @app.get(
        "/search", dependencies=[Depends(api_key.dependency), Depends(search_limit.dependency)]
    )
    async def search() -> dict[str, bool]:
        return {"ok": True}

    @app.get("/open")
    async def open_route() -> dict[str, bool]:
        return {"ok": True}

    auth = {"authorization": f"Bearer {KEY}"}
    with serve(app) as url, httpx.Client(base_url=url, timeout=5) as http:
        unauthorized = http.get("/search")
        first, second, third = (http.get("/search", headers=auth) for _ in range(3))
        opened = [http.get("/open").status_code for _ in range(5)]
    assert unauthorized.status_code == 401
    assert unauthorized.headers["www-authenticate"] == 'Bearer realm="api"'
    assert unauthorized.json() == {"detail": "an API key is needed: Authorization: Bearer <key>"}
    assert (first.status_code, second.status_code, third.status_code) == (200, 200, 429)
    assert first.headers["ratelimit"] == '"search";r=1;t=30'
    assert third.headers["retry-after"] == "30"
    assert third.json()["detail"] == "rate limit 2/minute exceeded for this client; retry in 30 s"
    assert opened == [200] * 5


@pytest.mark.parametrize("start", [255_433.16, 209_160.27, 85_794.14])
def test_float_rounding_never_refuses_a_clients_first_request(start: float) -> None:
    """At these clock readings GCRA's sums land a hair above zero; the
    first request must still be let through (regression: it was refused)."""
    limit = RateLimit("1/day", clock=FakeClock(start))
    assert limit.check("client").refusal is None
    assert limit.check("client").refusal is not None


def test_header_seconds_ignore_float_dust() -> None:
    """On the system clock, "one every 6 s" is 6.000000x s: the headers still say 6."""
    limit = RateLimit("10/minute", name="search")
    fields = dict(limit.check("client").headers)
    assert fields["ratelimit"] == '"search";r=9;t=6'
