"""Seed 003's backend (QuestCity): FastAPI on PostgreSQL and S3 that degrades instead of
cascading when either fails.

- PostgreSQL through SQLAlchemy (async, psycopg) with the seed's pool: 20 connections plus
  30 overflow, pre-ping, recycled hourly. S3 (MinIO in the seed, moto's server here)
  through boto3.
- One breaker per dependency, with the seed's database settings (3 failures open it for
  30 s, 2 successes close it), the seed's retry presets (``stalwart.presets.DATABASE`` and
  ``S3``) for what is safe to retry, and a deadline on every request.
- Database down: writes answer 503 with ``Retry-After``; reads answer from the last good
  result (``CacheFallback``), marked stale. S3 down: uploads answer 503, avatars fall back
  to the last good one or a default picture, the rest goes on, health says degraded.
- The health API (stalwart's ops app) under ``/api/v1``: ``/health/``, ``/detailed``,
  ``/live``, ``/ready``, ``/services/{name}``, ``POST /services/{name}/reset`` (admin key),
  plus ``/breakers``, ``/metrics`` and ``/dashboard``. Checks run in the background.

    python questcity.py --database-url postgresql://user@127.0.0.1:5432/questcity \\
        --s3 http://127.0.0.1:9000 --port 8000        # QUESTCITY_ADMIN_KEY=... for resets
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import logging
import os
import sys
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, TypeVar

import boto3
import sqlalchemy.exc
import uvicorn
from botocore.config import Config
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectionClosedError,
    EndpointConnectionError,
)
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, Field
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from stalwart import (
    CacheFallback,
    CircuitBreaker,
    CircuitOpenError,
    Fallback,
    Pipeline,
    Rejected,
    Retry,
    Timeout,
    presets,
)
from stalwart.health import HealthRegistry, postgres_check, sqlalchemy_pool_check
from stalwart.web import ops_app

log = logging.getLogger("questcity")
T = TypeVar("T")

ADMIN_KEY_ENV = "QUESTCITY_ADMIN_KEY"
AVATAR_TYPES = frozenset({"image/png", "image/jpeg", "image/webp", "image/svg+xml"})
MAX_AVATAR = 1 << 20
DEFAULT_AVATAR = (
    b'<svg xmlns="http://www.w3.org/2000/svg" width="64" height="64">'
    b'<circle cx="32" cy="32" r="32" fill="#9aa5b1"/></svg>'
)
SCHEMA = """CREATE TABLE IF NOT EXISTS quests (
    id bigserial PRIMARY KEY,
    title text NOT NULL,
    city text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now())"""


@dataclass(frozen=True, kw_only=True)
class Settings:
    database_url: str
    """``postgresql://user[:password]@host:port/db`` (libpq form)."""
    s3_endpoint: str
    bucket: str = "questcity"
    s3_access_key: str = "minioadmin"
    s3_secret_key: str = "minioadmin"  # MinIO's well-known default
    admin_key: str | None = None
    db_timeout: float = 10.0
    """One database call (the seed's breaker ``timeout``)."""
    s3_timeout: float = 10.0
    """One S3 call: connect and read timeouts, and its deadline."""
    request_timeout: float = 30.0
    """A whole request, retries included (the DATABASE preset's total)."""
    recovery_timeout: float = 30.0
    check_interval: float = 10.0
    check_timeout: float = 2.0


# -- what counts as an outage, and what is safe to retry --------------------------------

DB_OUTAGE = (
    sqlalchemy.exc.OperationalError,  # refused, reset, server gone
    sqlalchemy.exc.InterfaceError,
    sqlalchemy.exc.TimeoutError,  # no pool connection within pool_timeout
    TimeoutError,  # a deadline (DeadlineExceeded is one)
    OSError,
)
DB_FAILED = (*DB_OUTAGE, Rejected)
"""What a stale answer stands in for: an outage, or the breaker refusing the call."""
DB_RETRYABLE = (sqlalchemy.exc.OperationalError, sqlalchemy.exc.InterfaceError)
"""Reads are retried when a connection fails; not after a timeout, which spent the budget."""


def s3_outage(exc: BaseException) -> bool:
    """Connection failures, timeouts and 5xx answers; a 4xx (no such key) is an answer."""
    if isinstance(exc, Rejected):  # the breaker open, a deadline passed
        return True
    if isinstance(exc, ClientError):
        return int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 500)) >= 500
    return isinstance(exc, (BotoCoreError, TimeoutError, OSError))


def s3_retryable(exc: BaseException) -> bool:
    if isinstance(exc, ClientError):
        return s3_outage(exc)  # 500, 503 SlowDown
    return isinstance(exc, (EndpointConnectionError, ConnectionClosedError))


class Unavailable(Exception):
    """A dependency cannot serve this request now: a 503 with ``Retry-After``."""

    def __init__(self, detail: str, retry_in: float) -> None:
        super().__init__(detail)
        self.detail, self.retry_in = detail, retry_in


def unavailable(detail: str, exc: Exception, breaker: CircuitBreaker) -> Unavailable:
    """The breaker's wait when it refused (or has just opened), else a short one."""
    wait = exc.retry_in if isinstance(exc, CircuitOpenError) else breaker.snapshot().retry_in
    return Unavailable(detail, wait or 5.0)


# -- the app ----------------------------------------------------------------------------


class NewQuest(BaseModel):
    title: str = Field(min_length=1, max_length=200)
    city: str = Field(min_length=1, max_length=100)


def engine_for(settings: Settings) -> AsyncEngine:
    """The seed's pool (db/engine.py), on psycopg's async driver."""
    url = settings.database_url.replace("postgresql://", "postgresql+psycopg://", 1)
    return create_async_engine(
        url,
        pool_size=20,
        max_overflow=30,
        pool_timeout=30,
        pool_recycle=3600,
        pool_pre_ping=True,
        connect_args={"connect_timeout": max(1, round(settings.db_timeout))},
    )


def create_app(settings: Settings) -> FastAPI:
    engine = engine_for(settings)
    s3 = boto3.client(
        "s3",
        endpoint_url=settings.s3_endpoint,
        aws_access_key_id=settings.s3_access_key,
        aws_secret_access_key=settings.s3_secret_key,
        region_name="us-east-1",
        # One attempt per call: stalwart retries, and the breaker sees every failure.
        config=Config(
            connect_timeout=settings.s3_timeout,
            read_timeout=settings.s3_timeout,
            retries={"total_max_attempts": 1},
            max_pool_connections=20,
        ),
    )
    s3_threads = ThreadPoolExecutor(20, thread_name_prefix="s3")  # boto3 is sync

    # The seed's named breakers: database 3 failures / 30 s / 2 successes.
    database = CircuitBreaker(
        "database",
        failure_threshold=3,
        success_threshold=2,
        recovery_timeout=settings.recovery_timeout,
        record=DB_OUTAGE,
    )
    storage = CircuitBreaker(
        "s3",
        failure_threshold=5,
        success_threshold=2,
        recovery_timeout=settings.recovery_timeout,
        record=s3_outage,
    )

    # One call's deadline walks away from psycopg's slow cancellation (grace=0): a query
    # stuck on a dead server takes 10 s to cancel, the request does not wait for it.
    db_call = Timeout(settings.db_timeout, grace=0.0, name="database-call")
    s3_call = Timeout(settings.s3_timeout, name="s3-call")
    request = Timeout(settings.request_timeout, name="request")
    quests_cache = CacheFallback(
        stale_for=3600.0,
        max_entries=1024,
        name="quests",
        on=DB_FAILED,
        key=lambda statement, params: (statement, *params.items()),
    )
    avatars_cache = CacheFallback(stale_for=86400.0, max_entries=256, name="avatars", on=s3_outage)
    default_avatar = Fallback(value=(DEFAULT_AVATAR, "image/svg+xml"), on=s3_outage)

    db_read = Pipeline(
        quests_cache, request, Retry(on=DB_RETRYABLE, **presets.DATABASE), database, db_call
    )
    db_write = Pipeline(request, database, db_call)  # a write is never sent twice
    s3_get = Pipeline(
        default_avatar,
        avatars_cache,
        request,
        Retry(on=s3_retryable, **presets.S3),
        storage,
        s3_call,
    )
    s3_put = Pipeline(request, Retry(on=s3_retryable, **presets.S3), storage, s3_call)

    async def in_thread(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(s3_threads, lambda: fn(*args, **kwargs))

    schema_made = False

    async def sql(statement: str, params: dict[str, Any] | None = None) -> list[dict[str, Any]]:
        nonlocal schema_made
        async with engine.begin() as conn:
            if not schema_made:  # the first statement after start makes the table
                await conn.execute(text(SCHEMA))
                schema_made = True
            result = await conn.execute(text(statement), params or {})
            return [dict(row._mapping) for row in result] if result.returns_rows else []

    def bucket_reachable() -> None:
        s3.head_bucket(Bucket=settings.bucket)

    health = HealthRegistry(name="questcity")
    dsn = f"{settings.database_url}{'&' if '?' in settings.database_url else '?'}connect_timeout=2"
    every = {"interval": settings.check_interval, "timeout": settings.check_timeout}
    # A check run also probes its open breaker (feed_breaker): the breaker closes after
    # recovery even when no request comes. S3 is not critical: down, the app is degraded.
    health.add("database", postgres_check(dsn), breaker=database, feed_breaker=True, **every)
    health.add("s3", bucket_reachable, critical=False, breaker=storage, feed_breaker=True,
               component_type="datastore", **every)  # fmt: skip
    health.add("database_pool", sqlalchemy_pool_check(engine), critical=False, **every)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        try:  # once: the app starts without S3 (uploads make the bucket later)
            await s3_call.acall(in_thread, ensure_bucket)
        except Exception as exc:
            log.warning("S3 bucket %s not ready: %s", settings.bucket, exc)
        async with health:
            yield
        s3_threads.shutdown(wait=False, cancel_futures=True)
        await engine.dispose()

    def ensure_bucket() -> None:
        try:
            s3.head_bucket(Bucket=settings.bucket)
        except ClientError:
            s3.create_bucket(Bucket=settings.bucket)

    app = FastAPI(title="QuestCity", lifespan=lifespan)

    @app.exception_handler(Unavailable)
    async def on_unavailable(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, Unavailable)
        seconds = max(1, round(exc.retry_in))
        return JSONResponse(
            {"detail": exc.detail, "retry_in": seconds}, 503, headers={"Retry-After": str(seconds)}
        )

    async def read(what: str, statement: str, **params: Any) -> tuple[list[dict[str, Any]], Any]:
        """Rows from the database, or its last good answer (and how old) when it fails."""
        try:
            rows = await db_read.acall(sql, statement, params)
        except DB_FAILED as exc:
            raise unavailable(
                f"the database is unavailable: {what} cannot be read", exc, database
            ) from exc
        return rows, quests_cache.age()

    def answer(body: dict[str, Any], age: float | None) -> JSONResponse:
        if not age:
            return JSONResponse({**body, "source": "database"})
        return JSONResponse(
            {**body, "source": "cache", "age": round(age, 1)}, headers={"Age": str(int(age))}
        )

    @app.get("/api/v1/quests")
    async def list_quests(city: str | None = None) -> JSONResponse:
        statement = "SELECT id, title, city, created_at FROM quests"
        if city is None:
            rows, age = await read("quests", statement + " ORDER BY id")
        else:
            rows, age = await read(
                "quests", statement + " WHERE city = :city ORDER BY id", city=city
            )
        return answer({"quests": [jsonable(row) for row in rows]}, age)

    @app.get("/api/v1/quests/{quest_id}")
    async def get_quest(quest_id: int) -> JSONResponse:
        rows, age = await read(
            "the quest",
            "SELECT id, title, city, created_at FROM quests WHERE id = :id",
            id=quest_id,
        )
        if not rows:
            return JSONResponse({"detail": f"no quest {quest_id}"}, 404)
        return answer(jsonable(rows[0]), age)

    @app.post("/api/v1/quests", status_code=201)
    async def create_quest(quest: NewQuest) -> JSONResponse:
        try:
            rows = await db_write.acall(
                sql,
                "INSERT INTO quests (title, city) VALUES (:title, :city) "
                "RETURNING id, title, city, created_at",
                quest.model_dump(),
            )
        except DB_FAILED as exc:
            raise unavailable(
                "the database is unavailable: writes are paused", exc, database
            ) from exc
        return JSONResponse(jsonable(rows[0]), 201)

    @app.put("/api/v1/users/{user_id}/avatar")
    async def upload_avatar(user_id: int, request: Request) -> JSONResponse:
        kind = request.headers.get("content-type", "").split(";")[0].strip()
        if kind not in AVATAR_TYPES:
            return JSONResponse(
                {"detail": f"content-type must be one of {sorted(AVATAR_TYPES)}"}, 415
            )
        body = await request.body()
        if not body or len(body) > MAX_AVATAR:
            return JSONResponse({"detail": f"an avatar is 1 to {MAX_AVATAR} bytes"}, 413)
        try:
            await s3_put.acall(in_thread, put_avatar, user_id, body, kind)
        except Exception as exc:
            if not s3_outage(exc):
                raise
            raise unavailable(
                "file storage is unavailable: uploads are paused", exc, storage
            ) from exc
        return JSONResponse({"user_id": user_id, "bytes": len(body), "content_type": kind})

    def put_avatar(user_id: int, body: bytes, kind: str) -> None:
        try:
            s3.put_object(
                Bucket=settings.bucket, Key=f"avatars/{user_id}", Body=body, ContentType=kind
            )
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") != "NoSuchBucket":
                raise
            ensure_bucket()  # S3 was down when the app started
            put_avatar(user_id, body, kind)

    def get_avatar(user_id: int) -> tuple[bytes, str]:
        try:
            found = s3.get_object(Bucket=settings.bucket, Key=f"avatars/{user_id}")
        except ClientError as exc:
            if s3_outage(exc):
                raise
            return DEFAULT_AVATAR, "image/svg+xml"  # no avatar yet (or no bucket yet)
        return found["Body"].read(), found.get("ContentType", "application/octet-stream")

    @app.get("/api/v1/users/{user_id}/avatar")
    async def avatar(user_id: int) -> Response:
        body, kind = await s3_get.acall(fetch, user_id)
        age = avatars_cache.age()
        headers = {"Cache-Control": "no-cache"}
        if body is DEFAULT_AVATAR:
            headers["X-Avatar"] = "default"
        elif age:
            headers["Age"] = str(int(age))
        return Response(body, media_type=kind, headers=headers)

    async def fetch(user_id: int) -> tuple[bytes, str]:
        return await in_thread(get_avatar, user_id)

    # Mounted last: the routes above come first under the same /api/v1 prefix.
    app.mount(
        "/api/v1",
        ops_app(
            health=health,
            breakers=[database, storage],
            api_key=settings.admin_key,
            service_id="questcity",
        ),
    )
    return app


def jsonable(row: dict[str, Any]) -> dict[str, Any]:
    return {k: v.isoformat() if isinstance(v, datetime.datetime) else v for k, v in row.items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    env = os.environ.get
    parser.add_argument(
        "--database-url", default=env("DATABASE_URL"), required=not env("DATABASE_URL")
    )
    parser.add_argument("--s3", default=env("S3_ENDPOINT", "http://127.0.0.1:9000"))
    parser.add_argument("--bucket", default=env("S3_BUCKET", "questcity"))
    parser.add_argument("--port", type=int, default=8000)
    for name, default in (
        ("db-timeout", 10.0),
        ("s3-timeout", 10.0),
        ("request-timeout", 30.0),
        ("recovery-timeout", 30.0),
        ("check-interval", 10.0),
        ("check-timeout", 2.0),
    ):
        parser.add_argument(f"--{name}", type=float, default=default)
    args = parser.parse_args(argv)
    settings = Settings(
        database_url=args.database_url,
        s3_endpoint=args.s3,
        bucket=args.bucket,
        s3_access_key=env("S3_ACCESS_KEY", "minioadmin"),
        s3_secret_key=env("S3_SECRET_KEY", "minioadmin"),
        admin_key=env(ADMIN_KEY_ENV),
        db_timeout=args.db_timeout,
        s3_timeout=args.s3_timeout,
        request_timeout=args.request_timeout,
        recovery_timeout=args.recovery_timeout,
        check_interval=args.check_interval,
        check_timeout=args.check_timeout,
    )
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    print(f"QuestCity: http://127.0.0.1:{args.port}/api/v1/health/", flush=True)
    uvicorn.run(create_app(settings), host="127.0.0.1", port=args.port, log_level="warning")
    return 0


if __name__ == "__main__":
    sys.exit(main())
