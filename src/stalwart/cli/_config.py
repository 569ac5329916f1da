"""The YAML file of ``stalwart serve``: what it may say, checked before anything starts.

Every key is known: a misspelt one is an error naming it (with its path, such as
``checks.database.intervall``) and the keys allowed there, never silently ignored. Values
are checked by the same code that checks them in Python (``HealthRegistry.add``, the
check builders, ``CircuitBreaker``), and their ConfigError gets the key's path. Secrets
stay out of the file: ``<key>_env: NAME`` reads a value from the environment variable NAME
(``dsn_env: DATABASE_URL``), and the admin key can only come from there.

An example with every key is ``examples/ops.yaml``.
"""

from __future__ import annotations

import inspect
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from .._breaker import BreakerConfig, CircuitBreaker
from .._config_file import known_keys, read_yaml
from .._errors import ConfigError
from .._validate import positive
from ..health import (
    HealthRegistry,
    disk_check,
    http_check,
    postgres_check,
    redis_check,
    tcp_check,
)

__all__ = ("DEFAULT_LISTEN", "ServeConfig", "load", "parse", "parse_listen")

DEFAULT_LISTEN = "127.0.0.1:8080"
"""Loopback unless the file says otherwise: exposing the app is a decision to make."""

_TOP_KEYS = ("service", "listen", "api_key_env", "cache_max_age", "history", "checks")
_REGISTRY_KEYS = ("interval", "timeout", "critical", "groups", "feed_breaker")
"""Per-check settings passed to HealthRegistry.add as they are."""
_CHECK_KEYS = ("type", "breaker", *_REGISTRY_KEYS)

_Builder = Callable[..., Any]
_TYPES: dict[str, tuple[_Builder, tuple[str, ...]]] = {
    # type: (builder, the keys it takes beyond _CHECK_KEYS)
    "http": (http_check, ("url", "method", "expected_status", "headers", "verify")),
    "tcp": (tcp_check, ("host", "port")),
    "postgres": (postgres_check, ("dsn", "query")),
    "redis": (redis_check, ("url",)),
    "disk": (disk_check, ("path", "min_free_bytes", "min_free_ratio")),
}
_BREAKER_KEYS = tuple(
    field.name
    for field in fields(BreakerConfig)
    if field.name not in ("record", "ignore", "failure_if", "retry_after_from", "poll_intervals")
)
"""A check's breaker: the CircuitBreaker settings plain YAML values can express."""
_SECRET_KEYS = ("dsn", "url", "headers")
"""Keys that may come from the environment instead (``dsn_env: NAME``)."""


@dataclass(frozen=True, slots=True)
class ServeConfig:
    """What ``stalwart serve`` runs: the ops app's settings and its health registry."""

    service: str
    host: str
    port: int
    api_key: str | None
    cache_max_age: float
    registry: HealthRegistry
    breakers: tuple[CircuitBreaker, ...]
    """The checks' breakers, shown under /breakers."""
    checks: tuple[dict[str, Any], ...]
    """Each check as configured, secrets masked: for ``--check`` and logs."""


def load(path: str | Path, environ: Mapping[str, str] | None = None) -> ServeConfig:
    """Read and check the YAML file at ``path`` (ConfigError on any problem)."""
    data = read_yaml(path)
    return parse(data, os.environ if environ is None else environ)


def parse(data: Any, environ: Mapping[str, str]) -> ServeConfig:
    """Check an already parsed config (a mapping) and build what it describes."""
    top = known_keys("config", data, _TOP_KEYS)
    service = top.get("service", "service")
    if not isinstance(service, str) or not service:
        raise ConfigError("service", f"must be a non-empty string, got {service!r}")
    host, port = parse_listen(top.get("listen", DEFAULT_LISTEN))
    api_key = None
    if "api_key_env" in top:
        api_key = _from_env("api_key_env", top["api_key_env"], environ)
    cache_max_age = top.get("cache_max_age", 5.0)
    positive("cache_max_age", cache_max_age, allow_zero=True)  # finite, >= 0
    history = top.get("history", 100)
    with _at(""):
        registry = HealthRegistry(service, history=history)
    checks = top.get("checks", {})
    if checks is None:
        checks = {}
    if not isinstance(checks, Mapping):
        raise ConfigError("checks", f"must be a mapping of check names to checks, got {checks!r}")
    shown = tuple(_add_check(registry, str(name), spec, environ) for name, spec in checks.items())
    breakers = tuple(
        breaker for name in registry.names() if (breaker := registry.breaker(name)) is not None
    )
    return ServeConfig(
        service, host, port, api_key, float(cache_max_age), registry, breakers, shown
    )


def _add_check(
    registry: HealthRegistry, name: str, spec: Any, environ: Mapping[str, str]
) -> dict[str, Any]:
    path = f"checks.{name}"
    if not isinstance(spec, Mapping):
        raise ConfigError(path, f"must be a mapping with a 'type', got {spec!r}")
    kind = spec.get("type")
    if not isinstance(kind, str) or kind not in _TYPES:
        raise ConfigError(f"{path}.type", f"must be one of {', '.join(_TYPES)}; got {kind!r}")
    builder, own_keys = _TYPES[kind]
    secret_env = tuple(f"{key}_env" for key in own_keys if key in _SECRET_KEYS)
    spec = known_keys(path, spec, (*_CHECK_KEYS, *own_keys, *secret_env))
    arguments = {key: spec[key] for key in own_keys if key in spec}
    for key in own_keys:
        if f"{key}_env" in spec:
            if key in spec:
                raise ConfigError(f"{path}.{key}_env", f"give {key} or {key}_env, not both")
            arguments[key] = _from_env(f"{path}.{key}_env", spec[f"{key}_env"], environ)
    for key, param in inspect.signature(builder).parameters.items():
        if param.default is param.empty and key not in arguments:
            raise ConfigError(f"{path}.{key}", f"is required for a {kind} check")
    if "headers" in arguments and not (
        isinstance(arguments["headers"], Mapping)
        and all(isinstance(k, str) and isinstance(v, str) for k, v in arguments["headers"].items())
    ):
        raise ConfigError(f"{path}.headers", "must be a mapping of header names to strings")
    if "verify" in arguments and not isinstance(arguments["verify"], bool):
        raise ConfigError(f"{path}.verify", f"must be true or false, got {arguments['verify']!r}")
    if "expected_status" in arguments and isinstance(arguments["expected_status"], list):
        arguments["expected_status"] = tuple(arguments["expected_status"])
    with _at(path):
        check = builder(**arguments)
    breaker = None
    if "breaker" in spec:
        given = spec["breaker"]  # null: a breaker with the defaults; a mapping: its settings
        options = known_keys(f"{path}.breaker", {} if given is None else given, _BREAKER_KEYS)
        with _at(f"{path}.breaker"):
            breaker = CircuitBreaker(f"health:{name}", **options)
    settings = {
        key: spec[key]
        for key in ("interval", "timeout", "critical", "groups", "feed_breaker")
        if key in spec
    }
    with _at(path):
        registry.add(name, check, breaker=breaker, **settings)
    shown = {key: ("***" if key in _SECRET_KEYS else value) for key, value in spec.items()}
    return {"name": name, **shown}


def parse_listen(value: Any) -> tuple[str, int]:
    problem = f"must be HOST:PORT (such as {DEFAULT_LISTEN}), got {value!r}"
    if not isinstance(value, str) or ":" not in value:
        raise ConfigError("listen", problem)
    host, _, port = value.rpartition(":")
    if host.startswith("[") and host.endswith("]"):  # an IPv6 address: [::1]:8080
        host = host[1:-1]
    elif "[" in host or "]" in host:
        raise ConfigError("listen", problem)
    if not host or not port.isascii() or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ConfigError("listen", problem)
    return host, int(port)


def _from_env(path: str, variable: Any, environ: Mapping[str, str]) -> str:
    if not isinstance(variable, str) or not variable:
        raise ConfigError(path, f"must name an environment variable, got {variable!r}")
    value = environ.get(variable)
    if not value:
        raise ConfigError(path, f"the environment variable {variable} is not set")
    return value


class _at:
    """Give a ConfigError raised inside the key's full path (``checks.db.timeout``)."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __enter__(self) -> None:
        return None

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: Any
    ) -> None:
        if isinstance(exc, ConfigError) and self.path and not exc.field.startswith(self.path):
            raise ConfigError(f"{self.path}.{exc.field}", exc.problem) from exc
