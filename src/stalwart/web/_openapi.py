"""The ops app's OpenAPI 3.1 description, built from its route table."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from ._core import Route

_PROBLEM = {"$ref": "#/components/schemas/Problem"}
_HEALTH_STATUS = {"type": "string", "enum": ["healthy", "degraded", "unhealthy"]}
_SCHEMAS: dict[str, Any] = {
    "Problem": {
        "type": "object",
        "required": ["type", "title", "status", "detail"],
        "properties": {
            "type": {"type": "string"},
            "title": {"type": "string"},
            "status": {"type": "integer"},
            "detail": {"type": "string"},
        },
    },
    "HealthSummary": {
        "type": "object",
        "required": ["status", "timestamp", "services"],
        "properties": {
            "status": _HEALTH_STATUS,
            "timestamp": {"type": "number"},
            "services": {
                "type": "object",
                "properties": {
                    k: {"type": "integer"} for k in ("total", "healthy", "degraded", "unhealthy")
                },
            },
            "message": {"type": "string"},
        },
    },
    "HealthIETF": {
        "type": "object",
        "required": ["status"],
        "properties": {"status": {"type": "string", "enum": ["pass", "warn", "fail"]}},
    },
    "PollHint": {
        "type": "object",
        "required": ["name", "available", "state", "poll_interval", "retry_in", "message"],
        "properties": {
            "name": {"type": "string"},
            "available": {"type": "boolean"},
            "state": {"type": "string"},
            "poll_interval": {"type": "number"},
            "retry_in": {"type": ["number", "null"]},
            "message": {"type": "string"},
            "snapshot": {"type": "object"},
            "config": {"type": "object"},
            "shared": {
                "type": ["string", "null"],
                "description": "Where the state is shared (a Redis store), or null if local",
            },
        },
    },
}


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _responses(pattern: str, method: str) -> dict[str, Any]:
    problem = {
        "description": "Problem",
        "content": {"application/problem+json": {"schema": _PROBLEM}},
    }
    out: dict[str, Any] = {}
    if pattern in ("/health", "/health/live", "/health/ready", "/health/startup"):
        body = {
            "description": "Healthy or degraded",
            "content": {
                "application/json": {"schema": {"$ref": "#/components/schemas/HealthSummary"}},
                "application/health+json": {"schema": {"$ref": "#/components/schemas/HealthIETF"}},
            },
        }
        out["200"] = body
        out["503"] = {**body, "description": "Unhealthy"}
    elif pattern.startswith("/breakers/"):
        out["200"] = _json({"$ref": "#/components/schemas/PollHint"}, "Snapshot and poll hint")
        out["404"] = problem
    elif pattern == "/metrics":
        out["200"] = {
            "description": "Prometheus text exposition",
            "content": {"text/plain": {"schema": {"type": "string"}}},
        }
    elif pattern == "/events":
        out["200"] = {
            "description": "Server-sent events",
            "content": {"text/event-stream": {"schema": {"type": "string"}}},
        }
    elif pattern == "/dashboard":
        out["200"] = {
            "description": "The dashboard page",
            "content": {"text/html": {"schema": {"type": "string"}}},
        }
    elif pattern == "/dashboard/{name}":
        out["200"] = {
            "description": "app.js or app.css",
            "content": {
                "text/javascript": {"schema": {"type": "string"}},
                "text/css": {"schema": {"type": "string"}},
            },
        }
    elif pattern == "/static/{name}":
        out["200"] = {
            "description": "stalwart-poller.js or its ES-module form stalwart-poller.mjs",
            "content": {"text/javascript": {"schema": {"type": "string"}}},
        }
    else:
        out["200"] = _json({"type": "object"}, "OK")
    if "{name}" in pattern:
        out["404"] = problem
    if pattern.startswith("/health/services/"):
        out["503"] = _json({"type": "object"}, "The check is unhealthy")
    if method == "POST":
        out["400"] = problem
        out["401"] = problem
        out["403"] = problem
        out["413"] = problem
    out["405"] = problem
    return out


def openapi(routes: Iterable[Route[Any]], root_path: str) -> dict[str, Any]:
    """The description of ``routes``, served from ``root_path``."""
    paths: dict[str, Any] = {}
    for route in routes:
        item: dict[str, Any] = {}
        for method in route.methods:
            operation: dict[str, Any] = {
                "summary": route.summary,
                "operationId": f"{method.lower()}_{route.pattern.strip('/') or 'index'}".replace(
                    "/", "_"
                ).replace("{name}", "name"),
                "responses": _responses(route.pattern, method),
            }
            if route.mutating:
                operation["security"] = [{"bearer": []}]
                operation["requestBody"] = {
                    "required": False,
                    "content": {"application/json": {"schema": {"type": "object"}}},
                }
            item[method.lower()] = operation
        if "{name}" in route.pattern:
            item["parameters"] = [
                {"name": "name", "in": "path", "required": True, "schema": {"type": "string"}}
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
