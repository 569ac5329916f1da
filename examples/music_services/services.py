"""Seed 001's three services: core (the bot's API), music processing, and data storage.

Each is a FastAPI app served by uvicorn in its own process. They call each other over HTTP
with a Bearer API key (``MUSIC_API_KEYS``, comma-separated: every service accepts any of
them, so keys can be rotated). The storage service keeps its cache and collections in
Redis. The core service:

- checks the storage cache first, with a 1 s timeout behind its own breaker;
- otherwise searches the music service, with retries on connection errors, behind a
  breaker (5 failures, 60 s);
- stores the answer in the cache, and serves the last good answer (up to an hour old) when
  the music service fails or its breaker is open;
- answers ``/health`` with the parallel checks of the other two;
- limits each client to 10 requests a minute.

    python services.py storage --port 8003 --redis redis://127.0.0.1:6379/0
    python services.py music --port 8002
    python services.py core --port 8001 --music http://127.0.0.1:8002 --storage http://127.0.0.1:8003
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import uvicorn
from fastapi import Depends, FastAPI, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

import stalwart.http
from stalwart import CacheFallback, CircuitBreaker, CircuitOpenError, Pipeline, Retry
from stalwart.health import HealthRegistry, http_check, redis_check
from stalwart.web import ApiKey, Guarded, RateLimit, by_address, ops_app

KEYS_ENV = "MUSIC_API_KEYS"
PROBES = ["/health"]


def service_key() -> str:
    """The key this service sends to the others: the first of ``MUSIC_API_KEYS``."""
    return os.environ[KEYS_ENV].split(",")[0].strip()


def guarded(app: FastAPI) -> FastAPI:
    """Every route but the health probes wants one of the API keys."""
    app.add_middleware(Guarded, guards=[ApiKey(env=KEYS_ENV, exempt=PROBES)])
    return app


# -- data storage: a Redis cache and the users' collections ------------------------------


class CachedSearch(BaseModel):
    query: str
    results: list[dict[str, Any]]


def storage_app(redis_url: str) -> FastAPI:
    import redis.asyncio as aredis

    db = aredis.Redis.from_url(redis_url, socket_timeout=1.0, socket_connect_timeout=1.0)
    health = HealthRegistry(name="storage")
    health.add("redis", redis_check(client=db), interval=2.0, timeout=1.0)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with health:  # runs the checks in the background
            yield
        await db.aclose()

    app = FastAPI(title="data storage", lifespan=lifespan)
    app.mount("/ops", ops_app(health=health, metrics=False))

    def cache_key(query: str) -> str:
        return "search:" + hashlib.sha256(query.strip().lower().encode()).hexdigest()[:24]

    @app.get("/health")
    async def healthy() -> JSONResponse:
        report = health.report()
        return JSONResponse(
            {"service": "storage", "status": report.status.value}, report.http_status
        )

    @app.get("/cache/search")
    async def cached(query: str) -> JSONResponse:
        found = await db.get(cache_key(query))
        if found is None:
            return JSONResponse({"detail": "not cached"}, 404)
        return JSONResponse(json.loads(found))

    @app.post("/cache/search")
    async def cache(item: CachedSearch) -> dict[str, bool]:
        await db.set(cache_key(item.query), item.model_dump_json(), ex=3600)
        return {"cached": True}

    @app.post("/tracks/{user_id}")
    async def save_track(user_id: int, track: dict[str, Any]) -> dict[str, int]:
        count = await db.rpush(f"tracks:{user_id}", json.dumps(track))
        return {"tracks": int(count)}

    @app.get("/tracks/{user_id}")
    async def tracks(user_id: int) -> dict[str, Any]:
        raw = await db.lrange(f"tracks:{user_id}", 0, -1)
        return {"user_id": user_id, "tracks": [json.loads(t) for t in raw]}

    return guarded(app)


# -- music processing: search and download (a small local catalogue) --------------------


class SearchRequest(BaseModel):
    query: str
    limit: int = Field(default=10, ge=1, le=50)


class DownloadRequest(BaseModel):
    track_id: str


def music_app() -> FastAPI:
    app = FastAPI(title="music processing")

    @app.get("/health")
    async def healthy() -> dict[str, str]:
        return {"service": "music", "status": "healthy"}

    @app.post("/search")
    async def search(request: SearchRequest) -> dict[str, Any]:
        results = [
            {
                "track_id": hashlib.sha1(f"{request.query}:{n}".encode()).hexdigest()[:12],
                "title": f"{request.query} - track {n + 1}",
                "duration": 180 + 7 * n,
            }
            for n in range(min(request.limit, 5))
        ]
        return {"query": request.query, "results": results}

    @app.post("/download")
    async def download(request: DownloadRequest) -> dict[str, Any]:
        return {"track_id": request.track_id, "status": "done", "file": f"{request.track_id}.mp3"}

    return guarded(app)


# -- core: the bot's API ----------------------------------------------------------------


def client_id(scope: Any) -> str | None:
    """Clients are limited apart by their ``X-Client-Id`` (the bot sends the Telegram user),
    else by address."""
    for name, value in scope.get("headers") or ():
        if name == b"x-client-id":
            return "client:" + bytes(value).decode("latin-1")[:64]
    return by_address(scope)


def core_app(music_url: str, storage_url: str, *, recovery_timeout: float = 60.0) -> FastAPI:
    music_breaker = CircuitBreaker("music", failure_threshold=5, recovery_timeout=recovery_timeout)
    storage_breaker = CircuitBreaker(
        "storage", failure_threshold=3, recovery_timeout=recovery_timeout
    )
    retry = Retry(on=httpx.TransportError, max_attempts=3, base_delay=0.1, max_delay=1.0)
    last_good = CacheFallback(stale_for=3600.0, name="search")
    limit = RateLimit("10/minute", key=client_id, name="core")
    headers = {"Authorization": f"Bearer {service_key()}"}
    hooks = stalwart.http.async_event_hooks()  # a 5xx or 429 counts as a failed call
    music = httpx.AsyncClient(base_url=music_url, headers=headers, timeout=3.0, event_hooks=hooks)
    storage = httpx.AsyncClient(base_url=storage_url, headers=headers, timeout=1.0)

    health = HealthRegistry(name="core")
    for name, url in (("music", music_url), ("storage", storage_url)):  # checked in parallel
        health.add(name, http_check(f"{url}/health"), critical=False, interval=1.0, timeout=1.0)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with health:
            yield
        await music.aclose()
        await storage.aclose()

    app = FastAPI(title="core bot", lifespan=lifespan)
    app.mount("/ops", ops_app(health=health, breakers=[music_breaker, storage_breaker]))

    @Pipeline(last_good, retry, music_breaker)
    async def search_music(query: str) -> list[dict[str, Any]]:
        response = await music.post("/search", json={"query": query, "limit": 5})
        results: list[dict[str, Any]] = response.json()["results"]
        return results

    async def from_cache(query: str) -> list[dict[str, Any]] | None:
        """The storage cache, or None when it misses or cannot be asked."""
        try:
            response = await storage_breaker.acall(
                storage.get, "/cache/search", params={"query": query}
            )
        except (httpx.HTTPError, CircuitOpenError):
            return None
        if response.status_code != 200:
            return None
        results: list[dict[str, Any]] = response.json()["results"]
        return results

    async def remember(query: str, results: list[dict[str, Any]]) -> None:
        # The answer stands either way; the cache is filled next time.
        with contextlib.suppress(httpx.HTTPError, CircuitOpenError):
            await storage_breaker.acall(
                storage.post, "/cache/search", json={"query": query, "results": results}
            )

    def unavailable(exc: Exception) -> JSONResponse:
        wait = exc.retry_in if isinstance(exc, CircuitOpenError) else None
        retry_after = max(1, round(wait)) if wait else 5
        return JSONResponse(
            {
                "detail": "the music service is unavailable, try again later",
                "retry_in": retry_after,
            },
            503,
            headers={"Retry-After": str(retry_after)},
        )

    @app.get("/health")
    async def healthy() -> JSONResponse:
        report = health.report()
        checks = {name: snap.status.value for name, snap in report.checks.items()}
        return JSONResponse({"service": "core", "status": report.status.value, "checks": checks})

    @app.get("/search", dependencies=[Depends(limit.dependency)])
    async def search(q: str) -> JSONResponse:
        cached = await from_cache(q)
        if cached is not None:
            return JSONResponse({"query": q, "source": "cache", "results": cached})
        try:
            results = await search_music(q)
        except (httpx.HTTPError, CircuitOpenError) as exc:
            return unavailable(exc)
        age = last_good.age()
        if age:  # the music service failed: yesterday's answer, said so
            return JSONResponse({"query": q, "source": "stale", "age": age, "results": results})
        await remember(q, results)
        return JSONResponse({"query": q, "source": "music", "results": results})

    @app.post("/download", dependencies=[Depends(limit.dependency)])
    async def download(request: Request) -> JSONResponse:
        body = await request.json()
        try:
            response = await music_breaker.acall(music.post, "/download", json=body)
        except (httpx.HTTPError, CircuitOpenError) as exc:
            return unavailable(exc)
        return JSONResponse(response.json())

    return guarded(app)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("service", choices=["core", "music", "storage"])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/0")
    parser.add_argument("--music", default="http://127.0.0.1:8002")
    parser.add_argument("--storage", default="http://127.0.0.1:8003")
    parser.add_argument("--recovery-timeout", type=float, default=60.0)
    args = parser.parse_args(argv)
    if not os.environ.get(KEYS_ENV):
        parser.error(f"set {KEYS_ENV} (comma-separated API keys, 16 characters or more)")
    if args.service == "storage":
        app = storage_app(args.redis)
    elif args.service == "music":
        app = music_app()
    else:
        app = core_app(args.music, args.storage, recovery_timeout=args.recovery_timeout)
    print(f"{args.service} service: http://127.0.0.1:{args.port}", flush=True)
    uvicorn.run(app, host="127.0.0.1", port=args.port, log_level="warning")
    return 0


if __name__ == "__main__":
    sys.exit(main())
