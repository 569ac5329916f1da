"""Seed 004's YAML: the agent's servers and connection settings, checked before it starts.

The seed's keys keep their names (``server.url``, ``server.fallback_urls``,
``connection.heartbeat_interval``, ``connect_timeout``, ``max_reconnect_delay``,
``initial_reconnect_delay``); the supervisor's other settings sit next to them under
``connection``. Every key is known: a misspelt one is an error naming its path
(``connection.heartbeat_intervall``) and the keys allowed there. ``http(s)://`` URLs
become ``ws(s)://`` (the seed lists its servers' base URLs), and ``server.path`` is added
to the URLs that have no path of their own.

Any reconnect key (``initial_reconnect_delay``, ``max_reconnect_delay``,
``reconnect_multiplier``, ``reconnect_jitter``) switches from the gRPC preset to the
seed's series: 1, 2, 4 ... capped at 60 s, each jittered by ±20 % (0: exactly those).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

from .. import presets
from .._backoff import Backoff
from .._config_file import known_keys, read_yaml
from .._errors import ConfigError
from .._validate import positive
from ._core import OVERFLOW_POLICIES, SupervisorSettings

if TYPE_CHECKING:
    from ._supervisor import Supervisor

__all__ = ("AgentConfig", "load_config", "parse_config")

_TOP_KEYS = ("server", "connection")
_SERVER_KEYS = ("url", "fallback_urls", "path")
_BACKOFF_KEYS = (
    "initial_reconnect_delay",
    "max_reconnect_delay",
    "reconnect_multiplier",
    "reconnect_jitter",
)
_TIMING_KEYS = (
    "heartbeat_interval",
    "connect_timeout",
    "dead_after",
    "ping_interval",
    "ping_timeout",
    "close_timeout",
    "reset_after",
)
"""Seconds; each may be null to turn the feature off where the supervisor allows it."""
_CONNECTION_KEYS = (*_TIMING_KEYS, *_BACKOFF_KEYS, "max_buffer", "overflow")
_SCHEMES = {"http": "ws", "https": "wss", "ws": "ws", "wss": "wss"}

SEED_BACKOFF = Backoff(
    base_delay=1.0,
    multiplier=2.0,
    max_delay=60.0,
    jitter="proportional",
    jitter_factor=0.2,
    cap_after_jitter=True,
)
"""Seed 004's reconnect series (1, 2, 4 ... 60 s), jittered by ±20 % and never past 60 s."""


@dataclass(frozen=True, slots=True)
class AgentConfig:
    """What a seed 004 config file describes: the endpoints and the supervisor settings."""

    endpoints: tuple[str, ...]
    """The primary first, then the fallbacks in order (as ``ws://``/``wss://`` URLs)."""
    options: Mapping[str, Any] = field(default_factory=dict)
    """Keyword arguments for :class:`Supervisor` (``connect_timeout``, ``backoff`` ...)."""

    def supervisor(self, **overrides: Any) -> Supervisor:
        """A :class:`Supervisor` for these endpoints and settings; ``overrides`` (such as
        ``heartbeat=system_heartbeat``, ``handle_signals=True``) win over the file."""
        from ._supervisor import Supervisor

        return Supervisor(list(self.endpoints), **{**self.options, **overrides})


def load_config(path: str | Path) -> AgentConfig:
    """Read and check the YAML file at ``path`` (ConfigError naming the key on a problem)."""
    data = read_yaml(path)
    return parse_config(data)


def parse_config(data: Any) -> AgentConfig:
    """Check an already parsed config (a mapping, as ``yaml.safe_load`` returns)."""
    top = known_keys("config", data, _TOP_KEYS)
    if "server" not in top:
        raise ConfigError("server", "is required: a mapping with the server's url")
    endpoints = _endpoints(known_keys("server", top["server"], _SERVER_KEYS))
    connection = top.get("connection")
    given = known_keys("connection", {} if connection is None else connection, _CONNECTION_KEYS)
    options: dict[str, Any] = {}
    for key in _TIMING_KEYS:
        if key in given:
            value = given[key]
            if value is not None:
                positive(f"connection.{key}", value)
                value = float(value)
            options[key] = value
    if "max_buffer" in given:
        options["max_buffer"] = given["max_buffer"]
    if "overflow" in given:
        overflow = given["overflow"]
        if overflow not in OVERFLOW_POLICIES:
            raise ConfigError(
                "connection.overflow",
                f"must be one of {', '.join(OVERFLOW_POLICIES)}, got {overflow!r}",
            )
        options["overflow"] = overflow
    options["backoff"] = _backoff(given)
    # Check every value now, with the key's path, rather than when the agent starts.
    try:
        SupervisorSettings(endpoints=endpoints, **dict(options.items()))
    except ConfigError as exc:
        where = exc.field if exc.field.startswith(("server", "connection")) else None
        if where is None:
            where = "server" if exc.field.startswith("endpoints") else f"connection.{exc.field}"
        raise ConfigError(where, exc.problem) from exc
    return AgentConfig(endpoints, options)


def _endpoints(server: Mapping[str, Any]) -> tuple[str, ...]:
    if "url" not in server:
        raise ConfigError("server.url", "is required: the primary server's URL")
    path = server.get("path")
    if path is not None and (not isinstance(path, str) or not path.startswith("/")):
        raise ConfigError("server.path", f"must be a path starting with '/', got {path!r}")
    fallbacks = server.get("fallback_urls")
    if fallbacks is None:
        fallbacks = []
    if not isinstance(fallbacks, list):
        raise ConfigError("server.fallback_urls", f"must be a list of URLs, got {fallbacks!r}")
    urls = [
        _url("server.url", server["url"], path),
        *(_url(f"server.fallback_urls[{i}]", u, path) for i, u in enumerate(fallbacks)),
    ]
    for i, url in enumerate(urls):
        if url in urls[:i]:
            where = "server.url" if i == 0 else f"server.fallback_urls[{i - 1}]"
            raise ConfigError(where, f"lists {url} twice")
    return tuple(urls)


def _url(where: str, value: Any, path: str | None) -> str:
    problem = "must be a ws://, wss://, http:// or https:// URL with a host"
    if not isinstance(value, str):
        raise ConfigError(where, f"{problem}, got {value!r}")
    try:
        parts = urlsplit(value.strip())
        parts.port  # noqa: B018 - raises ValueError on a port out of range
    except ValueError as exc:
        raise ConfigError(where, f"{problem}, got {value!r} ({exc})") from exc
    scheme = _SCHEMES.get(parts.scheme.lower())
    if scheme is None or not parts.hostname:
        raise ConfigError(where, f"{problem}, got {value!r}")
    own_path = parts.path if parts.path not in ("", "/") else (path or parts.path or "/")
    return urlunsplit((scheme, parts.netloc, own_path, parts.query, ""))


def _backoff(given: Mapping[str, Any]) -> Backoff:
    if not any(key in given for key in _BACKOFF_KEYS):
        return presets.GRPC
    base = given.get("initial_reconnect_delay", SEED_BACKOFF.base_delay)
    cap = given.get("max_reconnect_delay", SEED_BACKOFF.max_delay)
    multiplier = given.get("reconnect_multiplier", SEED_BACKOFF.multiplier)
    jitter = given.get("reconnect_jitter", SEED_BACKOFF.jitter_factor)
    positive("connection.initial_reconnect_delay", base, allow_zero=True)
    positive("connection.max_reconnect_delay", cap, allow_zero=True)
    if isinstance(jitter, bool) or not isinstance(jitter, int | float) or not 0 <= jitter <= 1:
        raise ConfigError(
            "connection.reconnect_jitter",
            f"must be a fraction from 0 (exact delays) to 1, got {jitter!r}",
        )
    if cap < base:
        raise ConfigError(
            "connection.max_reconnect_delay",
            f"must be >= initial_reconnect_delay ({base}), got {cap}",
        )
    try:
        if jitter == 0:
            return Backoff(base_delay=base, max_delay=cap, multiplier=multiplier, jitter="none")
        return Backoff(
            base_delay=base,
            max_delay=cap,
            multiplier=multiplier,
            jitter="proportional",
            jitter_factor=float(jitter),
            cap_after_jitter=True,
        )
    except ConfigError as exc:
        key = {"multiplier": "reconnect_multiplier"}.get(exc.field, exc.field)
        raise ConfigError(f"connection.{key}", exc.problem) from exc
