"""The ops app's HTTP model, independent of any server interface and of the routes.

A :class:`Request` (method, path below the mount point, headers, body) comes in, a
:class:`Response` goes out; :class:`Route` matches a path pattern; :func:`problem` is the
shape of every error; :func:`jsonable` turns stalwart's values into JSON data. Nothing here
imports the rest of ``stalwart.web``: the routes (``_routes``) build on it, and so do the
renderers (``_openapi``, ``_stream``) and the transports (``_asgi``, ``_flask``).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, Generic, TypeVar
from urllib.parse import quote, unquote

__all__ = (
    "HEALTH_JSON",
    "JSON",
    "MAX_BODY",
    "PROBLEM_JSON",
    "Request",
    "Response",
    "Route",
    "below_mount",
    "jsonable",
    "path_segments",
    "problem",
    "wants_ietf",
)

JSON = "application/json"
HEALTH_JSON = "application/health+json"
PROBLEM_JSON = "application/problem+json"
MAX_BODY = 65536
"""Largest request body read (bytes); the ops app's only body is an optional JSON object."""

_REASONS = {
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    413: "Content Too Large",
    429: "Too Many Requests",
    503: "Service Unavailable",
}


@dataclass(frozen=True, slots=True)
class Request:
    """One HTTP request as the ops app sees it."""

    method: str
    path: str
    """Below the mount point, still percent-encoded (as sent), starting with ``/``."""
    headers: Mapping[str, str]
    """Lower-case names; repeated headers joined with ``", "``."""
    body: bytes = b""
    root_path: str = ""
    """Where the app is mounted (for links in the OpenAPI description)."""


@dataclass(slots=True)
class Response:
    """What to send back. ``stream`` marks the server-sent events route."""

    status: int
    headers: list[tuple[str, str]]
    body: bytes = b""
    stream: bool = False
    redact: bool = True
    """For a stream: whether the subscriber gets redacted events."""

    @classmethod
    def json(
        cls,
        status: int,
        payload: Any,
        *,
        content_type: str = JSON,
        headers: list[tuple[str, str]] | None = None,
    ) -> Response:
        body = json.dumps(jsonable(payload), separators=(",", ":")).encode()
        return cls(status, [("content-type", content_type), *(headers or [])], body)


def problem(status: int, detail: str, *, headers: list[tuple[str, str]] | None = None) -> Response:
    """An RFC 9457 problem document: every error the app returns has this shape."""
    payload = {"type": "about:blank", "title": _REASONS[status], "status": status, "detail": detail}
    extra = [("cache-control", "no-store"), *(headers or [])]
    return Response.json(status, payload, content_type=PROBLEM_JSON, headers=extra)


def jsonable(value: Any) -> Any:
    """``value`` as plain JSON data: enums by value, classes and functions by name,
    non-finite floats as null, anything else unknown as its ``repr``."""
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Enum):
        return jsonable(value.value)
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [jsonable(v) for v in value]
    if isinstance(value, type):
        return value.__qualname__
    if isinstance(value, BaseException):
        return f"{type(value).__name__}: {value}"
    if callable(value):
        return getattr(value, "__qualname__", None) or repr(value)
    if hasattr(value, "to_dict"):
        return jsonable(value.to_dict())
    return repr(value)


H = TypeVar("H")


@dataclass(frozen=True, slots=True)
class Route(Generic[H]):
    """A path pattern (``{name}`` matches one segment) and its handlers ``H`` by method."""

    pattern: str
    methods: Mapping[str, H]
    summary: str
    mutating: bool = False
    segments: tuple[str, ...] = field(init=False)

    def __post_init__(self) -> None:
        inner = self.pattern.strip("/")
        object.__setattr__(self, "segments", tuple(inner.split("/")) if inner else ())

    def match(self, parts: tuple[str, ...]) -> dict[str, str] | None:
        if len(parts) != len(self.segments):
            return None
        params: dict[str, str] = {}
        for want, got in zip(self.segments, parts, strict=True):
            if want.startswith("{"):
                if not got:
                    return None
                params[want[1:-1]] = got
            elif want != got:
                return None
        return params

    @property
    def allow(self) -> str:
        methods = list(self.methods)
        if "GET" in methods:
            methods.insert(methods.index("GET") + 1, "HEAD")
        return ", ".join(methods)


_MEDIA = re.compile(r"^\s*([^;\s]+)\s*(?:;(.*))?$")


def wants_ietf(accept: str) -> bool:
    """True when ``Accept`` prefers ``application/health+json`` over plain JSON."""
    best: dict[str, float] = {}
    for item in accept.split(",")[:50]:
        m = _MEDIA.match(item)
        if m is None:
            continue
        media, q = m.group(1).lower(), 1.0
        for param in (m.group(2) or "").split(";"):
            key, _, value = param.partition("=")
            if key.strip().lower() == "q":
                try:
                    q = float(value.strip())
                except ValueError:
                    q = 0.0
                q = q if math.isfinite(q) else 0.0
        best[media] = max(best.get(media, 0.0), q)
    ietf = best.get(HEALTH_JSON, 0.0)
    plain = max(best.get(JSON, 0.0), best.get("application/*", 0.0), best.get("*/*", 0.0))
    return ietf > 0 and ietf >= plain


def below_mount(raw: str | None, path: str, root: str) -> str:
    """The percent-encoded path below the mount point ``root``.

    ``path`` is what the server decoded and ``raw`` the path as sent (None when the server
    does not say). Routing must split the raw path, then decode each segment: decoded
    first, ``a%2Fb`` would be two segments and ``50%25ff`` would be decoded twice."""
    if raw is None:
        raw = quote(path, safe="/")  # the best left: the decoded path, encoded again
    raw = raw.split("?", 1)[0] or "/"
    if root and path.startswith(root):
        depth = sum(1 for part in root.split("/") if part)
        return "/" + "/".join(raw.split("/")[1 + depth :])
    return raw


def path_segments(path: str) -> tuple[str, ...] | None:
    """The decoded segments of the percent-encoded ``path``, without empty ends
    (``/health/`` is ``/health``)."""
    if not path.startswith("/") or len(path) > 2048:
        return None
    try:
        parts = tuple(unquote(p, errors="strict") for p in path.strip("/").split("/"))
    except UnicodeDecodeError:
        return None
    return () if parts == ("",) else parts
