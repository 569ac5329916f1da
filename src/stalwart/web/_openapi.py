"""The ops app's OpenAPI 3.1 description, built from its route table.

Each route's answers are listed here as the handlers in ``_routes`` give them: every status
code, content type and body shape. ``tests/web/test_web_schemathesis.py`` drives a busy app
with schemathesis against this document, so a difference shows up as a failing test.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from .._types import State
from ._core import HEALTH_JSON, JSON, PROBLEM_JSON, Route

__all__ = ("HEALTH_STATUSES", "openapi")

HEALTH_STATUSES = ("healthy", "degraded", "unhealthy", "unknown")
"""``stalwart.health.HealthStatus``'s values (``unknown``: no check has run, or none exists)."""


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _nullable(kind: str) -> dict[str, Any]:
    return {"type": [kind, "null"]}


_STRING = {"type": "string"}
_NUMBER = {"type": "number"}
_OBJECT = {"type": "object"}
_STRINGS = {"type": "array", "items": _STRING}
_SCHEMAS: dict[str, Any] = {
    "Problem": {
        "description": "An RFC 9457 problem document: every error the app returns",
        "type": "object",
        "required": ["type", "title", "status", "detail"],
        "properties": {
            "type": _STRING,
            "title": _STRING,
            "status": {"type": "integer"},
            "detail": _STRING,
        },
    },
    "HealthStatus": {"type": "string", "enum": list(HEALTH_STATUSES)},
    "HealthSummary": {
        "description": "Seed 003's summary",
        "type": "object",
        "required": ["status", "timestamp", "services", "message"],
        "properties": {
            "status": _ref("HealthStatus"),
            "timestamp": _NUMBER,
            "services": {
                "type": "object",
                "required": ["total", *HEALTH_STATUSES],
                "properties": {k: {"type": "integer"} for k in ("total", *HEALTH_STATUSES)},
            },
            "message": _STRING,
        },
    },
    "CheckSnapshot": {
        "description": "One check as of its last run; error and details are null and empty "
        "without the api key",
        "type": "object",
        "required": ["name", "status", "critical", "groups", "error", "details"],
        "properties": {
            "name": _STRING,
            "status": _ref("HealthStatus"),
            "critical": {"type": "boolean"},
            "groups": _STRINGS,
            "component_type": _STRING,
            "checked_at": _nullable("number"),
            "duration": _nullable("number"),
            "error": _nullable("string"),
            "details": _OBJECT,
            "availability": _nullable("number"),
            "avg_duration": _nullable("number"),
            "p95_duration": _nullable("number"),
            "consecutive_failures": {"type": "integer"},
            "breaker_state": _nullable("string"),
            "slow": {"type": "boolean"},
            "history": {"type": "array", "items": _OBJECT},
        },
    },
    "HealthDetailed": {
        "allOf": [
            _ref("HealthSummary"),
            {
                "type": "object",
                "required": ["checks"],
                "properties": {
                    "checks": {"type": "object", "additionalProperties": _ref("CheckSnapshot")}
                },
            },
        ]
    },
    "HealthIETF": {
        "description": "draft-inadarei-api-health-check (application/health+json)",
        "type": "object",
        "required": ["status"],
        "properties": {
            "status": {"type": "string", "enum": ["pass", "warn", "fail"]},
            "serviceId": _STRING,
            "description": _STRING,
            "checks": {
                "type": "object",
                "additionalProperties": {"type": "array", "items": _OBJECT},
            },
        },
    },
    "ServiceReset": {
        "type": "object",
        "required": ["reset", "service"],
        "properties": {"reset": _STRING, "service": _ref("CheckSnapshot")},
    },
    "PollHint": {
        "description": "Seed 000's poll hint at the top level, plus the snapshot and settings",
        "type": "object",
        "required": [
            "name",
            "available",
            "state",
            "poll_interval",
            "retry_in",
            "message",
            "snapshot",
            "config",
            "shared",
        ],
        "properties": {
            "name": _STRING,
            "available": {"type": "boolean"},
            "state": {"type": "string", "enum": [s.value for s in State]},
            "poll_interval": _NUMBER,
            "retry_in": _nullable("number"),
            "message": _STRING,
            "snapshot": _OBJECT,
            "config": _OBJECT,
            "shared": {
                "type": ["string", "null"],
                "description": "Where the state is shared (a Redis store), or null if local",
            },
        },
    },
    "Breakers": {
        "type": "object",
        "required": ["breakers"],
        "properties": {"breakers": {"type": "object", "additionalProperties": _ref("PollHint")}},
    },
    "Index": {
        "type": "object",
        "required": ["service", "routes"],
        "properties": {
            "service": _nullable("string"),
            "routes": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["path", "methods", "summary"],
                    "properties": {"path": _STRING, "methods": _STRINGS, "summary": _STRING},
                },
            },
        },
    },
    "Journal": {
        "type": "object",
        "required": ["runs", "journals"],
        "properties": {
            "runs": {"type": "array", "items": _OBJECT},
            "journals": {"type": "array", "items": _OBJECT},
        },
    },
    "Connections": {
        "type": "object",
        "required": ["connections"],
        "properties": {"connections": {"type": "array", "items": _OBJECT}},
    },
}


def _content(*types: str, schema: dict[str, Any] | None = None) -> dict[str, Any]:
    return {kind: {"schema": schema or _STRING} for kind in types}


def _answer(description: str, content: dict[str, Any], **headers: str) -> dict[str, Any]:
    out: dict[str, Any] = {"description": description, "content": content}
    if headers:
        out["headers"] = {
            name: {"description": text, "schema": _STRING} for name, text in headers.items()
        }
    return out


def _problem(description: str, **headers: str) -> dict[str, Any]:
    return _answer(description, _content(PROBLEM_JSON, schema=_ref("Problem")), **headers)


def _health(schema: str) -> dict[str, Any]:
    content = {
        **_content(JSON, schema=_ref(schema)),
        **_content(HEALTH_JSON, schema=_ref("HealthIETF")),
    }
    return _answer("Healthy or degraded (IETF format when Accept prefers it)", content)


_JS = "text/javascript"
# What each route answers when all goes well (and the statuses only it has).
_ANSWERS: dict[str, dict[str, Any]] = {
    "/": {"200": _answer("The routes of this app", _content(JSON, schema=_ref("Index")))},
    "/health": {"200": _health("HealthSummary")},
    "/health/detailed": {"200": _health("HealthDetailed")},
    "/health/services/{name}": {
        "200": _answer("The check", _content(JSON, schema=_ref("CheckSnapshot")))
    },
    "/health/services/{name}/reset": {
        "200": _answer("The check after the reset", _content(JSON, schema=_ref("ServiceReset")))
    },
    "/breakers": {"200": _answer("Every breaker", _content(JSON, schema=_ref("Breakers")))},
    "/breakers/{name}": {
        "200": _answer("Snapshot and poll hint", _content(JSON, schema=_ref("PollHint")))
    },
    "/breakers/{name}/reset": {
        "200": _answer("The breaker, closed", _content(JSON, schema=_ref("PollHint")))
    },
    "/breakers/{name}/force_open": {
        "200": _answer("The breaker, held open", _content(JSON, schema=_ref("PollHint")))
    },
    "/metrics": {
        "200": _answer(
            "Prometheus text exposition, or OpenMetrics when Accept asks for it",
            _content("text/plain", "application/openmetrics-text"),
        ),
        "404": _problem("Metrics are off (prometheus-client is not installed)"),
    },
    "/events": {
        "200": _answer(
            "Server-sent events; the stream does not end", _content("text/event-stream")
        ),
        "404": _problem("The event stream is off"),
        "503": _problem(
            "Too many event clients are connected", **{"Retry-After": "Seconds to wait"}
        ),
    },
    "/journal": {"200": _answer("Runs and sessions", _content(JSON, schema=_ref("Journal")))},
    "/connections": {
        "200": _answer("Supervised connections", _content(JSON, schema=_ref("Connections")))
    },
    "/openapi.json": {"200": _answer("This document", _content(JSON, schema=_OBJECT))},
    "/dashboard": {"200": _answer("The dashboard page", _content("text/html"))},
    "/dashboard/{name}": {"200": _answer("app.js or app.css", _content(_JS, "text/css"))},
    "/static/{name}": {
        "200": _answer(
            "stalwart-poller.js or its ES-module form stalwart-poller.mjs (CORS open)",
            _content(_JS),
            **{"Access-Control-Allow-Origin": "*"},
        )
    },
}
for _group in ("/health/live", "/health/ready", "/health/startup"):
    _ANSWERS[_group] = _ANSWERS["/health"]


def _responses(route: Route[Any], fail_status: int) -> dict[str, Any]:
    out: dict[str, Any] = dict(_ANSWERS[route.pattern])
    if route.pattern.startswith("/health") and not route.mutating:
        failing = {**out["200"], "description": "Unhealthy or unknown (the registry's fail_status)"}
        out[str(fail_status)] = failing
    if "{name}" in route.pattern:
        out["404"] = _problem("No such name")
    if route.mutating:
        out["400"] = _problem("The body is not a JSON object")
        out["403"] = _problem("Admin actions are off: the app has no api key")
        out["413"] = _problem("The body is over 64 KiB")
    # A wrong bearer key is refused on every route (reads included), a missing one on admin
    # actions; an app without a key takes any bearer token for someone else's.
    out["401"] = _problem(
        "The api key is missing (admin actions) or wrong",
        **{"WWW-Authenticate": 'Bearer realm="stalwart"'},
    )
    out["405"] = _problem("Another method", Allow="The methods this path allows")
    return dict(sorted(out.items()))


def openapi(
    routes: Iterable[Route[Any]], root_path: str, *, fail_status: int = 503
) -> dict[str, Any]:
    """The description of ``routes``, served from ``root_path``; ``fail_status`` is what the
    health routes answer for unhealthy (the registry's)."""
    paths: dict[str, Any] = {}
    for route in routes:
        item: dict[str, Any] = {}
        for method in route.methods:
            operation: dict[str, Any] = {
                "summary": route.summary,
                "operationId": f"{method.lower()}_{route.pattern.strip('/') or 'index'}".replace(
                    "/", "_"
                ).replace("{name}", "name"),
                "responses": _responses(route, fail_status),
            }
            if route.mutating:
                operation["security"] = [{"bearer": []}]
                operation["requestBody"] = {
                    "required": False,
                    "content": {JSON: {"schema": _OBJECT}},
                }
            else:
                # Reads are open; with the key they show details (error texts, hosts).
                operation["security"] = [{}, {"bearer": []}]
            item[method.lower()] = operation
        if "{name}" in route.pattern:
            item["parameters"] = [
                {"name": "name", "in": "path", "required": True, "schema": _STRING}
            ]
        paths[route.pattern] = item
    return {
        "openapi": "3.1.0",
        "info": {"title": "stalwart ops app", "version": "1"},
        "servers": [{"url": root_path or "/"}],
        "paths": paths,
        "components": {
            "schemas": _SCHEMAS,
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
    }
