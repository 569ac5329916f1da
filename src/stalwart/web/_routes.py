"""The ops app's routes: what each one answers, independent of any server interface.

:class:`OpsCore` takes a :class:`Request` and returns a :class:`Response`. The ASGI app and
the Flask blueprint only translate to and from it, so every route, status code, header and
redaction rule lives here once. Handlers read cached state only (health results, breaker
snapshots): nothing here waits on a dependency. The one exception is an operator's reset or
force_open of a shared breaker, which is one Redis round trip, bounded by the store's
timeout. The layers below: the renderers (``_openapi``, ``_stream``, ``_dashboard``) and
the HTTP model (``_core``).
"""

from __future__ import annotations

import hmac
import json
from collections.abc import Callable
from typing import Any, Protocol

from .._breaker import CircuitBreaker
from .._errors import ConfigError
from .._validate import positive
from . import _dashboard as dashboard
from ._core import (
    HEALTH_JSON,
    MAX_BODY,
    Request,
    Response,
    Route,
    path_segments,
    problem,
    wants_ietf,
)
from ._openapi import openapi
from ._stream import EventStream

__all__ = (
    "DEFAULT_CACHE_MAX_AGE",
    "ROUTES",
    "HealthSource",
    "OpsCore",
)

DEFAULT_CACHE_MAX_AGE = 5
"""Seconds a health answer may be cached (``Cache-Control: max-age``)."""


class HealthSource(Protocol):
    """What the ops app reads from a health registry (``stalwart.health.HealthRegistry``)."""

    def names(self) -> tuple[str, ...]: ...
    def get(self, name: str) -> Any: ...
    def report(self, group: str | None = None) -> Any: ...
    def reset(self, name: str) -> None: ...
    def breaker(self, name: str) -> CircuitBreaker | None: ...


Params = dict[str, str]
Handler = Callable[["OpsCore", Request, Params, bool], Response]


class OpsCore:
    """Routes, authentication, redaction and payloads of the ops app."""

    def __init__(
        self,
        *,
        health: HealthSource,
        breakers: Callable[[], list[CircuitBreaker]],
        metrics: Any = None,
        api_key: str | None = None,
        cache_max_age: float = DEFAULT_CACHE_MAX_AGE,
        service_id: str | None = None,
        events: EventStream | None = None,
        journals: tuple[Any, ...] = (),
    ) -> None:
        if api_key is not None and (not isinstance(api_key, str) or not api_key.strip()):
            raise ConfigError("api_key", f"must be a non-empty string or None, got {api_key!r}")
        if api_key is not None and api_key != api_key.strip():
            raise ConfigError("api_key", "must not start or end with whitespace")
        positive("cache_max_age", cache_max_age, allow_zero=True)
        if service_id is not None and not isinstance(service_id, str):
            raise ConfigError("service_id", f"must be a string or None, got {service_id!r}")
        self.health = health
        self.breakers = breakers
        self.metrics = metrics
        self.events = events
        self.journals = journals
        """``stalwart.journal.Journal`` objects whose sessions ``/journal`` lists."""
        self.service_id = service_id
        self._key = None if api_key is None else api_key.encode()
        age = int(cache_max_age) if float(cache_max_age).is_integer() else cache_max_age
        self._cache = f"max-age={age}" if cache_max_age else "no-cache"

    # -- entry point -------------------------------------------------------------------

    def handle(self, request: Request) -> Response:
        """The response to ``request``; bad input gets a 4xx problem document, never a 5xx."""
        parts = path_segments(request.path)
        if parts is None:
            return problem(400, "the path is not valid")
        for route in ROUTES:
            params = route.match(parts)
            if params is None:
                continue
            method = "GET" if request.method == "HEAD" else request.method
            handler = route.methods.get(method)
            if handler is None:
                return problem(
                    405,
                    f"{request.method[:20]!r} is not allowed here; use {route.allow}",
                    headers=[("allow", route.allow)],
                )
            if route.mutating and self._key is None:
                return problem(403, "admin actions are off: the ops app has no api_key")
            authorized = self._authorized(request)
            if isinstance(authorized, Response):
                return authorized
            if route.mutating and not authorized:
                return _unauthorized("this action needs Authorization: Bearer <api key>")
            return handler(self, request, params, authorized)
        return problem(404, "no such route; see /openapi.json")

    # -- authentication ----------------------------------------------------------------

    def _authorized(self, request: Request) -> bool | Response:
        """True for the right bearer key, False for none, a 401 answer for a wrong one.

        Another scheme (a proxy's Basic credentials, say) is no key: reads stay open and
        redacted, admin actions are refused.
        """
        header = request.headers.get("authorization")
        if header is None:
            return False
        scheme, _, token = header.strip().partition(" ")
        if scheme.lower() != "bearer" or self._key is None:
            # With no key configured, a bearer token is someone else's (an ingress passing
            # users' JWTs on): not a wrong key. Reads stay redacted, admin stays refused.
            return False
        given = token.strip().encode("latin-1", "replace")
        if not given:
            return _unauthorized("Authorization must be 'Bearer <api key>'", "invalid_request")
        if not hmac.compare_digest(given, self._key):
            return _unauthorized("the api key is not valid", "invalid_token")
        return True

    # -- helpers for handlers ----------------------------------------------------------

    def health_headers(self, authorized: bool) -> list[tuple[str, str]]:
        # An answer with details must not be served from a shared cache to someone else.
        cache = f"private, {self._cache}" if authorized else self._cache
        return [("cache-control", cache), ("vary", "Accept, Authorization")]

    def health_report(self, request: Request, group: str | None, authorized: bool) -> Response:
        report = self.health.report(group)
        headers = self.health_headers(authorized)
        if wants_ietf(request.headers.get("accept", "")):
            body = report.ietf(redact=not authorized, service_id=self.service_id)
            return Response.json(
                report.http_status, body, content_type=HEALTH_JSON, headers=headers
            )
        return Response.json(report.http_status, report.summary(), headers=headers)

    def breaker(self, name: str) -> CircuitBreaker | None:
        for breaker in self.breakers():
            if breaker.name == name:
                return breaker
        return None


def _unauthorized(detail: str, error: str | None = None) -> Response:
    challenge = 'Bearer realm="stalwart"' + (f', error="{error}"' if error else "")
    return problem(401, detail, headers=[("www-authenticate", challenge)])


# -- handlers --------------------------------------------------------------------------


def _index(core: OpsCore, req: Request, params: Params, authed: bool) -> Response:
    routes = [
        {"path": r.pattern, "methods": r.allow.split(", "), "summary": r.summary} for r in ROUTES
    ]
    return Response.json(200, {"service": core.service_id, "routes": routes})


def _group(name: str | None) -> Handler:
    def handler(core: OpsCore, req: Request, params: Params, authed: bool) -> Response:
        return core.health_report(req, name, authed)

    handler.__name__ = f"health_{name or 'all'}"
    return handler


def _detailed(core: OpsCore, req: Request, params: Params, authed: bool) -> Response:
    report = core.health.report(None)
    headers = core.health_headers(authed)
    if wants_ietf(req.headers.get("accept", "")):
        body = report.ietf(redact=not authed, service_id=core.service_id)
        return Response.json(report.http_status, body, content_type=HEALTH_JSON, headers=headers)
    return Response.json(report.http_status, report.detailed(redact=not authed), headers=headers)


def _service(core: OpsCore, req: Request, params: Params, authed: bool) -> Response:
    name = params["name"]
    try:
        snap = core.health.get(name)
    except KeyError:
        return problem(404, f"no health check named {name[:200]!r}")
    failing = getattr(snap.status, "value", snap.status) in ("unhealthy", "unknown")
    status = getattr(core.health, "fail_status", 503) if failing else 200
    return Response.json(
        status, snap.to_dict(redact=not authed), headers=core.health_headers(authed)
    )


def _body_problem(req: Request) -> Response | None:
    """A POST's body must be empty or a JSON object (nothing in it is read yet)."""
    if len(req.body) > MAX_BODY:
        return problem(413, f"the body may hold at most {MAX_BODY} bytes")
    if req.body.strip():
        try:
            body = json.loads(req.body)
        except (ValueError, RecursionError):
            return problem(400, "the body must be a JSON object (or empty)")
        if not isinstance(body, dict):
            return problem(400, "the body must be a JSON object (or empty)")
    return None


def _reset(core: OpsCore, req: Request, params: Params, authed: bool) -> Response:
    if (bad := _body_problem(req)) is not None:
        return bad
    name = params["name"]
    try:
        core.health.reset(name)
        snap = core.health.get(name)
    except KeyError:
        return problem(404, f"no health check named {name[:200]!r}")
    payload = {"reset": name, "service": snap.to_dict(redact=False)}
    return Response.json(200, payload, headers=[("cache-control", "no-store")])


def breaker_payload(breaker: CircuitBreaker) -> dict[str, Any]:
    """Seed 000's poll hint at the top level, plus the snapshot and the settings."""
    return {
        "name": breaker.name,
        **breaker.poll_hint(),
        "snapshot": breaker.snapshot().to_dict(),
        "config": breaker.describe(),
        "shared": breaker.shared,
    }


def _breaker_action(action: str) -> Handler:
    """POST /breakers/{name}/reset or /force_open: the operator's switch. A shared
    breaker (``store=``) changes in every process, not only in this one."""

    def handler(core: OpsCore, req: Request, params: Params, authed: bool) -> Response:
        if (bad := _body_problem(req)) is not None:
            return bad
        breaker = core.breaker(params["name"])
        if breaker is None:
            return problem(404, f"no circuit breaker named {params['name'][:200]!r}")
        getattr(breaker, action)()
        return Response.json(200, breaker_payload(breaker), headers=[("cache-control", "no-store")])

    return handler


def _breakers(core: OpsCore, req: Request, params: Params, authed: bool) -> Response:
    listing = {breaker.name: breaker_payload(breaker) for breaker in core.breakers()}
    return Response.json(200, {"breakers": listing}, headers=[("cache-control", "no-store")])


def _breaker(core: OpsCore, req: Request, params: Params, authed: bool) -> Response:
    breaker = core.breaker(params["name"])
    if breaker is None:
        return problem(404, f"no circuit breaker named {params['name'][:200]!r}")
    return Response.json(200, breaker_payload(breaker), headers=[("cache-control", "no-store")])


def _metrics(core: OpsCore, req: Request, params: Params, authed: bool) -> Response:
    if core.metrics is None:
        return problem(404, "metrics are off (install prometheus-client, or pass metrics=)")
    body, content_type = core.metrics.exposition(req.headers.get("accept"))
    return Response(200, [("content-type", content_type), ("cache-control", "no-store")], body)


def _journal(core: OpsCore, req: Request, params: Params, authed: bool) -> Response:
    """Batch runs in progress in this process, and the sessions of the given journals.

    Without the key, journal URLs (hosts, paths) and session metadata are left out."""
    from ..journal import live_runs

    runs = live_runs()
    journals = []
    for journal in core.journals:
        entry: dict[str, Any] = {"url": journal.url if authed else None}
        try:
            sessions = [s.to_dict() for s in journal.sessions()]
        except Exception as exc:  # a journal that cannot be read is reported, not a 5xx
            entry["error"] = f"{type(exc).__name__}: {exc}" if authed else type(exc).__name__
            sessions = []
        if not authed:
            for s in sessions:
                s.pop("metadata", None)
        entry["sessions"] = sessions
        journals.append(entry)
    if not authed:
        for run in runs:
            run["journal"] = None
    return Response.json(
        200, {"runs": runs, "journals": journals}, headers=[("cache-control", "no-store")]
    )


def _connections(core: OpsCore, req: Request, params: Params, authed: bool) -> Response:
    """The supervised connections of this process (``stalwart.supervisor``) with their stats.

    Without the key, endpoints show as their position in the list (``#1``) and errors as
    their type: hosts and messages can tell an outsider too much."""
    from ..supervisor import live_supervisors

    connections = []
    for supervisor in live_supervisors():
        stats = supervisor.stats().to_dict()
        if not authed:
            index = stats["endpoint_index"]
            stats["endpoint"] = None if index is None else f"#{index}"
            stats["endpoints"] = [f"#{i}" for i in range(len(stats["endpoints"]))]
            if stats["last_error"]:
                stats["last_error"] = stats["last_error"].split(":", 1)[0]
        connections.append(stats)
    return Response.json(200, {"connections": connections}, headers=[("cache-control", "no-store")])


def _events(core: OpsCore, req: Request, params: Params, authed: bool) -> Response:
    if core.events is None:
        return problem(404, "the event stream is off")
    headers = [
        ("content-type", "text/event-stream"),
        ("cache-control", "no-store"),
        ("x-accel-buffering", "no"),
    ]
    return Response(200, headers, stream=True, redact=not authed)


def _dashboard_page(core: OpsCore, req: Request, params: Params, authed: bool) -> Response:
    return Response(200, dashboard.headers("text/html; charset=utf-8"), dashboard.page(req.path))


def _shipped_file(folder: str) -> Handler:
    """The handler serving one of the files shipped in ``folder`` (dashboard, static)."""

    def handle(core: OpsCore, req: Request, params: Params, authed: bool) -> Response:
        found = dashboard.shipped(folder, params["name"])
        if found is None:
            return problem(404, f"no {folder} file named {params['name'][:200]!r}")
        body, headers = found
        return Response(200, headers, body)

    return handle


def _openapi_document(core: OpsCore, req: Request, params: Params, authed: bool) -> Response:
    fail_status = getattr(core.health, "fail_status", 503)
    return Response.json(200, openapi(ROUTES, req.root_path, fail_status=fail_status))


ROUTES: tuple[Route[Handler], ...] = (
    Route("/", {"GET": _index}, "The routes of this app"),
    Route("/health", {"GET": _group(None)}, "Overall health (seed 003 summary or IETF)"),
    Route("/health/detailed", {"GET": _detailed}, "Every check with its metrics"),
    Route("/health/live", {"GET": _group("live")}, "Liveness: no external dependencies"),
    Route("/health/ready", {"GET": _group("ready")}, "Readiness: critical dependencies"),
    Route("/health/startup", {"GET": _group("startup")}, "Startup: checks needed to start"),
    Route("/health/services/{name}", {"GET": _service}, "One check"),
    Route(
        "/health/services/{name}/reset",
        {"POST": _reset},
        "Reset a check's breaker and failure streak (API key)",
        mutating=True,
    ),
    Route("/breakers", {"GET": _breakers}, "Every circuit breaker with its poll hint"),
    Route("/breakers/{name}", {"GET": _breaker}, "One circuit breaker with its poll hint"),
    Route(
        "/breakers/{name}/reset",
        {"POST": _breaker_action("reset")},
        "Close a breaker, in every process when it is shared (API key)",
        mutating=True,
    ),
    Route(
        "/breakers/{name}/force_open",
        {"POST": _breaker_action("force_open")},
        "Hold a breaker open until reset, in every process when shared (API key)",
        mutating=True,
    ),
    Route("/metrics", {"GET": _metrics}, "Prometheus exposition"),
    Route("/events", {"GET": _events}, "Server-sent events: state changes as they happen"),
    Route("/journal", {"GET": _journal}, "Batch runs in progress and journal sessions"),
    Route("/connections", {"GET": _connections}, "Supervised long-lived connections and stats"),
    Route("/openapi.json", {"GET": _openapi_document}, "This app's OpenAPI 3.1 description"),
    Route("/dashboard", {"GET": _dashboard_page}, "Live web page: breakers and health checks"),
    Route(
        "/dashboard/{name}", {"GET": _shipped_file("dashboard")}, "The dashboard's script and style"
    ),
    Route(
        "/static/{name}",
        {"GET": _shipped_file("static")},
        "stalwart-poller.js (.mjs) for your pages",
    ),
)
