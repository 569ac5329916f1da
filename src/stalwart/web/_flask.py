"""The ops app as a Flask blueprint: the same request handling (``OpsCore``) over WSGI."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from .._errors import ConfigError
from ._core import MAX_BODY, Request, Response, below_mount, problem
from ._routes import OpsCore
from ._stream import HELLO, EventStream, Subscriber

if TYPE_CHECKING:
    import flask

    from ._asgi import OpsApp

__all__ = ("flask_blueprint",)

_METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]


def flask_blueprint(
    ops: OpsApp | None = None, *, name: str = "stalwart_ops", **options: Any
) -> flask.Blueprint:
    """A blueprint serving the ops app's routes: ``app.register_blueprint(bp, url_prefix=...)``.

    Pass an :class:`OpsApp` to share one with an ASGI server, or the options of
    :func:`ops_app`. A sync app runs its health checks in a thread:
    ``with registry.running_in_thread(): app.run()``.
    """
    import flask

    from ._asgi import ops_app

    if ops is None:
        ops = ops_app(**options)
    elif options:
        raise ConfigError(next(iter(options)), "give either an OpsApp or its options, not both")
    core = ops.core
    blueprint = flask.Blueprint(name, __name__)

    def view(subpath: str = "") -> flask.Response:
        request = flask.request
        length = request.content_length
        if length is not None and length > MAX_BODY:
            return _flask_response(problem(413, f"the body may hold at most {MAX_BODY} bytes"))
        path = "/" + subpath
        full = request.path
        prefix = full[: len(full) - len(path)] if full.endswith(path) else None
        root = request.script_root if prefix is None else prefix
        # The server's raw URI starts at the host's root: above the script root too.
        raw = request.environ.get("RAW_URI") or request.environ.get("REQUEST_URI")
        above = request.script_root + (prefix or "")
        ours = Request(
            method=request.method.upper(),
            path=below_mount(raw, request.script_root + full, above.rstrip("/")),
            headers=_headers(request.headers.items()),
            body=request.stream.read(MAX_BODY + 1),  # bounded, even when chunked
            root_path=root.rstrip("/"),
        )
        response = core.handle(ours)
        if response.stream and request.method != "HEAD":
            return _stream(core, response)
        return _flask_response(response, head=request.method == "HEAD")

    view.provide_automatic_options = False  # type: ignore[attr-defined]
    blueprint.add_url_rule("/", "ops_root", view, methods=_METHODS)
    blueprint.add_url_rule("/<path:subpath>", "ops", view, methods=_METHODS)
    return blueprint


def _headers(items: Any) -> dict[str, str]:
    out: dict[str, str] = {}
    for key, value in items:
        name = str(key).lower()
        out[name] = f"{out[name]}, {value}" if name in out else str(value)
    return out


def _flask_response(response: Response, *, head: bool = False) -> flask.Response:
    import flask

    out = flask.Response(b"" if head else response.body, status=response.status)
    out.headers.clear()
    for key, value in response.headers:
        out.headers.add(key, value)
    if head:
        out.headers["content-length"] = str(len(response.body))
    return out


def _stream(core: OpsCore, response: Response) -> flask.Response:
    import flask

    events = core.events
    assert events is not None
    wake = threading.Event()
    sub = events.subscribe(redact=response.redact, wake=wake.set)
    if sub is None:
        busy = problem(
            503,
            f"{events.max_clients} event clients are connected already",
            headers=[("retry-after", "10")],
        )
        return _flask_response(busy)
    out = flask.Response(_frames(events, sub, wake), status=200)
    out.call_on_close(lambda: events.unsubscribe(sub))  # runs even if never iterated
    out.headers.clear()
    for key, value in response.headers:
        out.headers.add(key, value)
    return out


def _frames(events: EventStream, sub: Subscriber, wake: threading.Event) -> Iterator[bytes]:
    """The blocking twin of the ASGI pump: waits on a threading.Event instead of awaiting.
    A failed write (the client left) closes the generator, which unsubscribes."""
    try:
        yield HELLO
        while True:
            wake.clear()  # before take(): an offer after it sets the flag again
            chunk = sub.take(idle=False)
            if chunk == b"":
                chunk = sub.take(idle=not wake.wait(events.heartbeat))
            if chunk is None:
                return
            if chunk:
                yield chunk
    finally:
        events.unsubscribe(sub)
