"""ASGI guard benchmark: the rate limit's added latency per request, stalwart vs slowapi.

Run it with ``scripts/bench guards`` (or ``.venv/bin/python bench/guards.py``). Each
contender is one FastAPI app answering ``GET /search`` with a small JSON body, called as
ASGI (no socket, no server: the app's own cost is what is left) and awaited in a loop:

1. route-pass    a limit on one route so high it never refuses: what checking it costs on
                 every request let through. stalwart's ``RateLimit`` as a FastAPI
                 dependency; slowapi's ``@limiter.limit`` (its users' usual form, with
                 ``request: Request`` on the route), headers on as stalwart sends them;
2. route-refuse  that limit exhausted for the client: every request answered 429;
3. app-pass      the same, app-wide: stalwart's ``Guarded`` middleware, slowapi's
                 ``SlowAPIMiddleware`` with ``default_limits``;
4. app-refuse    the app-wide limit exhausted.

The bare call is the same app without a limit. Budgets: none yet; the ratio to slowapi is
the figure (issue 14 asks for it, not for a bound).

Then seed 003's example under load (``_questcity_load.py``): the requests/s of its healthy
routes while S3 is blackholed, against S3 up (goal: >= 90 % kept). ``--no-load`` skips it.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import Depends, FastAPI, Request
from fastapi.responses import JSONResponse
from slowapi import Limiter, _rate_limit_exceeded_handler
from slowapi.errors import RateLimitExceeded
from slowapi.middleware import SlowAPIMiddleware
from slowapi.util import get_remote_address

import _questcity_load
from _harness import AdapterError, Bench, Contender, Extra, Run, Scenario, Sizes, call, main
from stalwart.web import Guarded, RateLimit

PASS = "100000000/second"
REFUSE = "1/day"
SCOPE = {
    "type": "http",
    "asgi": {"version": "3.0"},
    "http_version": "1.1",
    "method": "GET",
    "scheme": "http",
    "path": "/search",
    "raw_path": b"/search",
    "query_string": b"",
    "root_path": "",
    "headers": [(b"host", b"bench")],
    "client": ("127.0.0.1", 50000),
    "server": ("bench", 80),
}


def requester(app: Any) -> Callable[[], Awaitable[int]]:
    """One request to ``app`` as ASGI; returns the status code."""

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def request() -> int:
        status = 0

        async def send(message: dict[str, Any]) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]

        await app(dict(SCOPE), receive, send)
        return status

    return request


def answers(code: int) -> Callable[[Callable[[], Awaitable[int]]], None]:
    def check(fn: Callable[[], Awaitable[int]]) -> None:
        got = call(fn)
        if got != code:
            raise AdapterError(f"answered {got}, expected {code}")

    return check


def bare_app() -> FastAPI:
    app = FastAPI()

    @app.get("/search")
    async def search() -> JSONResponse:
        return JSONResponse({"results": []})

    return app


def stalwart_dependency(rate: str) -> FastAPI:
    limit = RateLimit(rate, name="search")
    app = FastAPI()

    @app.get("/search", dependencies=[Depends(limit.dependency)])
    async def search() -> JSONResponse:
        return JSONResponse({"results": []})

    return app


def stalwart_middleware(rate: str) -> FastAPI:
    app = bare_app()
    app.add_middleware(Guarded, guards=[RateLimit(rate, name="search")])
    return app


def slowapi_app(rate: str) -> FastAPI:
    limiter = Limiter(key_func=get_remote_address, headers_enabled=True)
    app = FastAPI()
    app.state.limiter = limiter
    app.add_exception_handler(RateLimitExceeded, _rate_limit_exceeded_handler)  # type: ignore[arg-type]

    @app.get("/search")
    @limiter.limit(rate)
    async def search(request: Request) -> JSONResponse:
        return JSONResponse({"results": []})

    return app


def slowapi_middleware(rate: str) -> FastAPI:
    limiter = Limiter(key_func=get_remote_address, default_limits=[rate], headers_enabled=True)
    app = bare_app()
    app.state.limiter = limiter
    app.add_exception_handler(RateLimitExceeded, _rate_limit_exceeded_handler)  # type: ignore[arg-type]
    app.add_middleware(SlowAPIMiddleware)
    return app


def contenders(
    rate: str, code: int, ours: Callable[[str], Any], theirs: Callable[[str], Any]
) -> list[Contender]:
    def exhausted(make: Callable[[str], Any]) -> Callable[[], Any]:
        def build() -> Any:
            fn = requester(make(rate))
            if code == 429:
                call(fn)  # the one request of the day
            return fn

        return build

    check = answers(code)
    return [
        Contender("stalwart", exhausted(ours), check=check),
        Contender("slowapi", exhausted(theirs), check=check),
    ]


SCENARIOS = (
    # key, title, rate, status, the two forms compared
    ("route-pass", "a route's limit that never refuses (Depends vs @limiter.limit): GET -> 200",
     PASS, 200, (stalwart_dependency, slowapi_app)),
    ("route-refuse", "the route's limit exhausted for the client: every request answered 429",
     REFUSE, 429, (stalwart_dependency, slowapi_app)),
    ("app-pass", "an app-wide limit that never refuses (Guarded vs SlowAPIMiddleware): GET -> 200",
     PASS, 200, (stalwart_middleware, slowapi_middleware)),
    ("app-refuse", "the app-wide limit exhausted for the client: every request answered 429",
     REFUSE, 429, (stalwart_middleware, slowapi_middleware)),
)  # fmt: skip


def scenarios() -> list[Scenario]:
    bare = requester(bare_app())
    return [
        Scenario(key, title, bare=bare, contenders=contenders(rate, code, *forms), is_async=True)
        for key, title, rate, code, forms in SCENARIOS
    ]


def questcity_load(run: Run) -> Any:
    return None if run.args.no_load else _questcity_load.measure(run)


def options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--no-load", action="store_true", help="skip the questcity load test")


if __name__ == "__main__":
    bench = Bench(
        "stalwart ASGI guard benchmark",
        "The rate-limit guard's added latency per request: stalwart vs slowapi.",
        packages=("stalwart", "slowapi", "fastapi", "starlette"),
        scenarios=scenarios(),
        sizes=Sizes(rounds=5, async_calls=3_000),
        extras=[Extra("questcity_s3_down", questcity_load, _questcity_load.render)],
        options=options,
    )
    sys.exit(main(bench))
