"""The ops app as a pure ASGI application (no framework), mountable at any prefix."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from typing import Any

from .._errors import ConfigError
from .._validate import whole
from ._core import MAX_BODY, Request, Response, below_mount, problem
from ._routes import DEFAULT_CACHE_MAX_AGE, HealthSource, OpsCore
from ._sources import BreakerSource, breakers_of
from ._stream import (
    DEFAULT_HEARTBEAT,
    DEFAULT_MAX_CLIENTS,
    DEFAULT_MAX_QUEUE,
    HELLO,
    EventStream,
    Subscriber,
)

__all__ = ("OpsApp", "ops_app")

Scope = dict[str, Any]
Message = dict[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]


class OpsApp:
    """The ASGI callable. Build it with :func:`ops_app`.

    Run alone (``uvicorn.run(app)``) with ``run_checks=True`` it also runs the health
    registry's background checks for the server's lifetime; mounted in another app, run
    them in that app's lifespan (``async with registry: ...``).
    """

    def __init__(self, core: OpsCore, *, run_checks: bool = False, owns_metrics: bool) -> None:
        self.core = core
        self.run_checks = run_checks
        self._owns_metrics = owns_metrics

    @property
    def health(self) -> HealthSource:
        return self.core.health

    @property
    def metrics(self) -> Any:
        return self.core.metrics

    @property
    def events(self) -> EventStream | None:
        return self.core.events

    def close(self) -> None:
        """Stop listening to stalwart's events (metrics the app created, event clients)."""
        if self._owns_metrics and self.core.metrics is not None:
            self.core.metrics.close()
        if self.core.events is not None:
            self.core.events.close()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope.get("type")
        if kind == "lifespan":
            await self._lifespan(receive, send)
            return
        if kind != "http":
            if kind == "websocket":
                await send({"type": "websocket.close", "code": 1003})
            return
        request = await _read_request(scope, receive)
        response = request if isinstance(request, Response) else self.core.handle(request)
        head = scope.get("method") == "HEAD"
        if response.stream and not head:
            await self._stream(response, receive, send)
            return
        await _send(send, response, head=head)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        stack = contextlib.AsyncExitStack()
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                try:
                    if self.run_checks:
                        await stack.enter_async_context(self.core.health)  # type: ignore[arg-type]
                except Exception as exc:
                    await send({"type": "lifespan.startup.failed", "message": repr(exc)})
                    return
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                try:
                    await stack.aclose()
                finally:
                    self.close()
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def _stream(self, response: Response, receive: Receive, send: Send) -> None:
        events = self.core.events
        assert events is not None  # the core only asks for a stream when there is one
        loop = asyncio.get_running_loop()
        ready = asyncio.Event()

        def wake() -> None:
            with contextlib.suppress(RuntimeError):  # the loop has closed: nobody to wake
                loop.call_soon_threadsafe(ready.set)

        sub = events.subscribe(redact=response.redact, wake=wake)
        if sub is None:
            busy = problem(
                503,
                f"{events.max_clients} event clients are connected already",
                headers=[("retry-after", "10")],
            )
            await _send(send, busy, head=False)
            return
        disconnected = asyncio.ensure_future(_disconnect(receive))
        try:
            await send({"type": "http.response.start", "status": 200, "headers": _raw(response)})
            await send({"type": "http.response.body", "body": HELLO, "more_body": True})
            await _pump(sub, ready, disconnected, events.heartbeat, send)
            if not disconnected.done():
                await send({"type": "http.response.body", "body": b"", "more_body": False})
        except OSError:
            pass  # the client went away mid-write
        finally:
            events.unsubscribe(sub)
            disconnected.cancel()


async def _pump(
    sub: Subscriber,
    ready: asyncio.Event,
    disconnected: asyncio.Future[None],
    heartbeat: float,
    send: Send,
) -> None:
    """Write the subscriber's frames as they come, a heartbeat after each quiet spell."""
    while not disconnected.done():
        ready.clear()  # before take(): an offer after it sets the flag again
        chunk = sub.take(idle=False)
        if chunk == b"":
            waiter: asyncio.Future[Any] = asyncio.ensure_future(ready.wait())
            done, _ = await asyncio.wait(
                {waiter, disconnected}, timeout=heartbeat, return_when=asyncio.FIRST_COMPLETED
            )
            waiter.cancel()
            if disconnected in done:
                return
            chunk = sub.take(idle=not done)
        if chunk is None:
            return  # dropped: too slow, or the app closed
        if chunk:
            await send({"type": "http.response.body", "body": chunk, "more_body": True})


async def _disconnect(receive: Receive) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass


async def _read_request(scope: Scope, receive: Receive) -> Request | Response:
    """The request from the ASGI scope and body, or a 413 for a body too large."""
    headers: dict[str, str] = {}
    for raw_name, raw_value in scope.get("headers", ()):
        name = bytes(raw_name).decode("latin-1").lower()
        value = bytes(raw_value).decode("latin-1")
        headers[name] = f"{headers[name]}, {value}" if name in headers else value
    body = bytearray()
    more = True
    while more:
        message = await receive()
        if message["type"] == "http.disconnect":
            break
        body += message.get("body", b"")
        more = bool(message.get("more_body", False))
        if len(body) > MAX_BODY:
            return problem(413, f"the body may hold at most {MAX_BODY} bytes")
    root = str(scope.get("root_path", ""))
    raw = scope.get("raw_path")
    return Request(
        method=str(scope.get("method", "GET")).upper(),
        path=below_mount(
            None if raw is None else bytes(raw).decode("latin-1"),
            str(scope.get("path", "/")),
            root,
        ),
        headers=headers,
        body=bytes(body),
        root_path=root,
    )


def _raw(response: Response) -> list[tuple[bytes, bytes]]:
    return [(k.encode("latin-1"), v.encode("latin-1")) for k, v in response.headers]


async def _send(send: Send, response: Response, *, head: bool) -> None:
    headers = [*_raw(response), (b"content-length", str(len(response.body)).encode())]
    await send({"type": "http.response.start", "status": response.status, "headers": headers})
    await send({"type": "http.response.body", "body": b"" if head else response.body})


def ops_app(
    *,
    health: HealthSource | None = None,
    breakers: BreakerSource | None = None,
    api_key: str | None = None,
    cache_max_age: float = DEFAULT_CACHE_MAX_AGE,
    service_id: str | None = None,
    metrics: Any = True,
    run_checks: bool = False,
    heartbeat: float = DEFAULT_HEARTBEAT,
    max_event_queue: int = DEFAULT_MAX_QUEUE,
    max_event_clients: int = DEFAULT_MAX_CLIENTS,
    journal: Any = None,
) -> OpsApp:
    """The ops HTTP app: health, breakers with poll hints, metrics and live events.

    ``health``: a :class:`stalwart.health.HealthRegistry` (default: an empty one).
    ``breakers``: the breakers to show (default: ``stalwart.circuit_breakers``, the named
    ones). ``api_key``: the bearer key for admin actions and unredacted details (without
    one, admin actions are refused). ``journal``: a :class:`stalwart.journal.Journal` (or
    a list of them) whose sessions ``/journal`` and the dashboard list; runs in progress in
    this process are shown either way. ``metrics``: True for a private
    :class:`stalwart.metrics.PrometheusMetrics` (needs prometheus-client; the app then
    listens to every breaker's calls), a ``PrometheusMetrics`` of yours, or False.
    """
    if health is None:
        from ..health import HealthRegistry

        health = HealthRegistry(name=service_id or "stalwart")
    if not isinstance(run_checks, bool):
        raise ConfigError("run_checks", f"must be True or False, got {run_checks!r}")
    whole("max_event_queue", max_event_queue)  # named as the caller wrote them
    whole("max_event_clients", max_event_clients)
    events = EventStream(
        health=health if callable(getattr(health, "remove_listener", None)) else None,
        max_queue=max_event_queue,
        heartbeat=heartbeat,
        max_clients=max_event_clients,
    )
    journals = _journals(journal)
    core = OpsCore(
        journals=journals,
        health=health,
        breakers=breakers_of(breakers, health),
        api_key=api_key,
        cache_max_age=cache_max_age,
        service_id=service_id,
        events=events,
    )
    owns = metrics is True
    if metrics is True:
        try:
            from ..metrics import PrometheusMetrics
        except ImportError:  # the prometheus extra is not installed: no /metrics
            metrics = None
        else:
            metrics = PrometheusMetrics(breakers=breakers, health=health).install()
    elif metrics is False or metrics is None:
        metrics = None
    elif not callable(getattr(metrics, "exposition", None)):
        raise ConfigError("metrics", f"must be True, False or a PrometheusMetrics, got {metrics!r}")
    core.metrics = metrics
    return OpsApp(core, run_checks=run_checks, owns_metrics=owns and metrics is not None)


def _journals(journal: Any) -> tuple[Any, ...]:
    if journal is None:
        return ()
    given = tuple(journal) if isinstance(journal, list | tuple) else (journal,)
    for j in given:
        if not (
            callable(getattr(j, "sessions", None)) and isinstance(getattr(j, "url", None), str)
        ):
            raise ConfigError(
                "journal", f"must be a stalwart.journal.Journal or a list of them, got {j!r}"
            )
    return given
