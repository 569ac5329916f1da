"""Built-in checks: HTTP, TCP, PostgreSQL, Redis, SQLAlchemy pools, disk space.

Each factory validates its arguments and returns a check to pass to
:meth:`HealthRegistry.add`. Client libraries are imported when a check is created, never
when ``stalwart.health`` is, so an app pays only for the clients it checks. Network checks
are async and set no timeout of their own: the registry cancels them at the check's
timeout. Checks that can only block (a sync client, ``statvfs`` on a hung mount) are sync,
so the registry runs them in a worker thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import shutil
import ssl
from collections.abc import Awaitable, Callable, Collection, Mapping
from typing import Any

from .._errors import ConfigError
from .._validate import positive, ratio
from ._model import CheckResult, scrub

__all__ = (
    "DEFAULT_DISK_MIN_FREE_RATIO",
    "DEFAULT_EXPECTED_STATUS",
    "DEFAULT_POOL_WARN_AT",
    "AsyncCheck",
    "SyncCheck",
    "disk_check",
    "http_check",
    "postgres_check",
    "redis_check",
    "sqlalchemy_pool_check",
    "tcp_check",
)

DEFAULT_EXPECTED_STATUS = range(200, 400)
"""HTTP codes that pass: 2xx and 3xx, as a Kubernetes HTTP probe judges them."""
DEFAULT_POOL_WARN_AT = 0.8
"""Share of a pool's capacity checked out from which the pool check warns."""
DEFAULT_DISK_MIN_FREE_RATIO = 0.05
"""Free share of the filesystem below which the disk check fails."""


class AsyncCheck:
    """A built-in check awaited on the scheduler's loop. ``repr`` never shows secrets."""

    __slots__ = ("_run", "component_type", "description")

    def __init__(
        self, description: str, component_type: str, run: Callable[[], Awaitable[Any]]
    ) -> None:
        self.description = description
        self.component_type = component_type
        self._run = run

    async def __call__(self) -> Any:
        return await self._run()

    def __repr__(self) -> str:
        return f"<check {self.description}>"


class SyncCheck:
    """A built-in check that blocks: the registry runs it in a worker thread."""

    __slots__ = ("_run", "component_type", "description")

    def __init__(self, description: str, component_type: str, run: Callable[[], Any]) -> None:
        self.description = description
        self.component_type = component_type
        self._run = run

    def __call__(self) -> Any:
        return self._run()

    def __repr__(self) -> str:
        return f"<check {self.description}>"


def _missing(package: str, extra: str, exc: ImportError) -> ImportError:
    return ImportError(f"this check needs {package}: pip install 'stalwart[{extra}]' ({exc})")


def _text(field: str, value: Any) -> str:
    if not isinstance(value, str) or not value:
        raise ConfigError(field, f"must be a non-empty string, got {value!r}")
    return value


# -- HTTP --------------------------------------------------------------------------------


def http_check(
    url: str,
    *,
    method: str = "GET",
    expected_status: Collection[int] = DEFAULT_EXPECTED_STATUS,
    predicate: Callable[[Any], bool] | None = None,
    headers: Mapping[str, str] | None = None,
    verify: bool = True,
    follow_redirects: bool = False,
) -> AsyncCheck:
    """GET ``url`` (httpx); pass if the status is in ``expected_status`` and, when given,
    ``predicate(response)`` is true (read ``response.json()``, ``.text``, headers)."""
    _text("url", url)
    if not url.startswith(("http://", "https://")):
        raise ConfigError("url", f"must start with http:// or https://, got {scrub(url)!r}")
    _text("method", method)
    if isinstance(expected_status, str | bytes) or not isinstance(expected_status, Collection):
        raise ConfigError(
            "expected_status", f"must be a collection of HTTP codes, got {expected_status!r}"
        )
    codes = frozenset(expected_status)
    if not codes or not all(
        isinstance(c, int) and not isinstance(c, bool) and 100 <= c <= 599 for c in codes
    ):
        raise ConfigError(
            "expected_status",
            f"must hold at least one HTTP code in 100..599, got {expected_status!r}",
        )
    if predicate is not None and not callable(predicate):
        raise ConfigError("predicate", f"must be callable or None, got {predicate!r}")
    try:
        import httpx
    except ImportError as exc:
        raise _missing("httpx", "web", exc) from exc
    shown = scrub(url)
    request_headers = dict(headers or {})
    verb = method.upper()
    # Made once: loading the CA bundle costs ~20 ms of CPU, on the event loop, per client.
    # A plain http:// URL that follows no redirect never needs TLS at all.
    tls: ssl.SSLContext | bool = False
    if verify and (url.startswith("https://") or follow_redirects):
        tls = httpx.create_ssl_context(verify=True, trust_env=False)

    async def run() -> CheckResult:
        async with httpx.AsyncClient(
            verify=tls, follow_redirects=follow_redirects, timeout=None, trust_env=False
        ) as client:
            response = await client.request(verb, url, headers=request_headers)
        code = response.status_code
        if code not in codes:
            return CheckResult.failed(f"HTTP {code} from {verb} {shown}", status_code=code)
        if predicate is not None and not predicate(response):
            return CheckResult.failed(
                f"the response to {verb} {shown} did not satisfy the predicate", status_code=code
            )
        return CheckResult.passed(status_code=code)

    return AsyncCheck(f"http {verb} {shown}", "component", run)


# -- TCP ---------------------------------------------------------------------------------


def _port(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 65535:
        raise ConfigError("port", f"must be an integer in 1..65535, got {value!r}")
    return value


def tcp_check(host: str, port: int) -> AsyncCheck:
    """Pass if a TCP connection to ``host:port`` opens (then close it at once)."""
    _text("host", host)
    _port(port)

    async def run() -> None:
        _, writer = await asyncio.open_connection(host, port)
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()

    return AsyncCheck(f"tcp {host}:{port}", "system", run)


# -- PostgreSQL --------------------------------------------------------------------------


def postgres_check(
    dsn: str | None = None,
    *,
    connect: Callable[[], Any] | None = None,
    query: str = "SELECT 1",
) -> AsyncCheck | SyncCheck:
    """Run ``query`` on PostgreSQL (psycopg 3).

    With ``dsn``, open a new connection for each run (async; cancelled at the timeout). With
    ``connect``, use the app's own connections: an ``async def`` returning a psycopg
    ``AsyncConnection``, or a ``def`` returning a connection or a context manager giving
    one (``pool.connection``), run in a worker thread. Exactly one of the two.
    """
    if (dsn is None) == (connect is None):
        raise ConfigError("dsn", "give exactly one of dsn= and connect=")
    _text("query", query)
    if connect is not None:
        return _postgres_with(connect, query)
    _text("dsn", dsn)
    assert dsn is not None
    try:
        import psycopg
    except ImportError as exc:
        raise _missing("psycopg", "postgres", exc) from exc

    async def run() -> CheckResult:
        async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as conn:
            await conn.execute(query)
            return CheckResult.passed(server_version=conn.info.server_version)

    return AsyncCheck("postgres (dsn)", "datastore", run)


def _postgres_with(connect: Callable[[], Any], query: str) -> AsyncCheck | SyncCheck:
    if not callable(connect):
        raise ConfigError("connect", f"must be callable, got {connect!r}")
    if inspect.iscoroutinefunction(connect):

        async def arun() -> None:
            async with await connect() as conn:
                await conn.execute(query)

        return AsyncCheck("postgres (connect)", "datastore", arun)

    def run() -> None:
        with connect() as conn:
            conn.execute(query)

    return SyncCheck("postgres (connect)", "datastore", run)


# -- Redis -------------------------------------------------------------------------------


def redis_check(url: str | None = None, *, client: Any = None) -> AsyncCheck | SyncCheck:
    """PING Redis (redis-py): a new connection to ``url`` per run (async), or the app's own
    ``client`` (``redis.asyncio.Redis`` awaited, ``redis.Redis`` in a worker thread)."""
    if (url is None) == (client is None):
        raise ConfigError("url", "give exactly one of url= and client=")
    if client is not None:
        ping = getattr(client, "ping", None)
        if not callable(ping):
            raise ConfigError("client", f"must be a redis-py client (with ping()), got {client!r}")
        # redis.asyncio's ping is a plain method returning a coroutine: look at the class too.
        if inspect.iscoroutinefunction(ping) or type(client).__module__.startswith("redis.asyncio"):

            async def aping() -> bool:
                return bool(await ping())

            return AsyncCheck("redis (client)", "datastore", aping)
        return SyncCheck("redis (client)", "datastore", lambda: bool(ping()))
    _text("url", url)
    assert url is not None
    if not url.startswith(("redis://", "rediss://", "unix://")):
        raise ConfigError(
            "url", f"must start with redis://, rediss:// or unix://, got {scrub(url)!r}"
        )
    try:
        import redis.asyncio as aioredis
    except ImportError as exc:
        raise _missing("redis", "redis", exc) from exc

    async def run() -> bool:
        conn = aioredis.Redis.from_url(url)
        try:
            return bool(await conn.ping())
        finally:
            await conn.aclose()

    return AsyncCheck(f"redis {scrub(url)}", "datastore", run)


# -- SQLAlchemy pools --------------------------------------------------------------------


def sqlalchemy_pool_check(engine: Any, *, warn_at: float = DEFAULT_POOL_WARN_AT) -> AsyncCheck:
    """Read a SQLAlchemy engine's pool (no query, no I/O): size, checked out, overflow.

    Fails when every connection the pool may hold is checked out (the next request waits
    ``pool_timeout``), warns from ``warn_at`` of that capacity. Pools without a size
    (NullPool, StaticPool ...) pass with what they tell. Works for ``AsyncEngine`` too.
    """
    ratio("warn_at", warn_at)
    sync_engine = getattr(engine, "sync_engine", engine)
    pool = getattr(sync_engine, "pool", None)
    if pool is None or not callable(getattr(pool, "status", None)):
        raise ConfigError(
            "engine", f"must be a SQLAlchemy Engine or AsyncEngine, got {scrub(repr(engine))}"
        )

    async def run() -> CheckResult:
        return judge_pool(pool, warn_at)

    return AsyncCheck(f"sqlalchemy pool {type(pool).__name__}", "datastore", run)


def judge_pool(pool: Any, warn_at: float) -> CheckResult:
    """The pool check's verdict on a pool's counters (pure: a read of the pool's state)."""
    kind = type(pool).__name__
    size = pool.size() if callable(getattr(pool, "size", None)) else None
    if size is None or not callable(getattr(pool, "checkedout", None)):
        return CheckResult.passed(pool=kind, status=str(pool.status()))
    checked_out = int(pool.checkedout())
    max_overflow = int(getattr(pool, "_max_overflow", 0))
    overflow = max(0, int(pool.overflow()))
    capacity = None if max_overflow < 0 else int(size) + max_overflow
    details = {
        "pool": kind,
        "size": int(size),
        "checked_out": checked_out,
        "overflow": overflow,
        "max_overflow": max_overflow,
        "capacity": capacity,
    }
    if capacity is None or capacity == 0:
        return CheckResult.passed(**details)
    used = checked_out / capacity
    details["utilization"] = round(used, 4)
    if checked_out >= capacity:
        return CheckResult.failed(
            f"pool exhausted: {checked_out} of {capacity} connections checked out", **details
        )
    if used >= warn_at:
        return CheckResult.warned(
            f"pool nearly exhausted: {checked_out} of {capacity} connections checked out",
            **details,
        )
    return CheckResult.passed(**details)


# -- disk --------------------------------------------------------------------------------


def disk_check(
    path: str = "/",
    *,
    min_free_bytes: int | None = None,
    min_free_ratio: float | None = DEFAULT_DISK_MIN_FREE_RATIO,
) -> SyncCheck:
    """Fail when the filesystem holding ``path`` has less than ``min_free_bytes`` or less
    than ``min_free_ratio`` of its size free (either limit may be None)."""
    _text("path", path)
    if min_free_bytes is not None:
        if isinstance(min_free_bytes, bool) or not isinstance(min_free_bytes, int):
            raise ConfigError("min_free_bytes", f"must be an integer >= 0, got {min_free_bytes!r}")
        positive("min_free_bytes", min_free_bytes, allow_zero=True)
    if min_free_ratio is not None:
        ratio("min_free_ratio", min_free_ratio, allow_zero=True)

    def run() -> CheckResult:
        usage = shutil.disk_usage(path)
        free_ratio = usage.free / usage.total if usage.total else 0.0
        details = {
            "path": path,
            "total_bytes": usage.total,
            "free_bytes": usage.free,
            "free_ratio": round(free_ratio, 4),
        }
        if min_free_bytes is not None and usage.free < min_free_bytes:
            return CheckResult.failed(f"{usage.free} bytes free, below {min_free_bytes}", **details)
        if min_free_ratio is not None and free_ratio < min_free_ratio:
            return CheckResult.failed(
                f"{free_ratio:.1%} free, below {min_free_ratio:.1%}", **details
            )
        return CheckResult.passed(**details)

    return SyncCheck(f"disk {path}", "system", run)
