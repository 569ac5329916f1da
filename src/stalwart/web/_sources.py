"""Which circuit breakers the ops app and the metrics report."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

from .._breaker import CircuitBreaker, circuit_breakers
from .._errors import ConfigError

__all__ = ("BreakerSource", "breakers_of")

BreakerSource = Mapping[str, CircuitBreaker] | Iterable[CircuitBreaker]


def breakers_of(source: Any, health: Any = None) -> Callable[[], list[CircuitBreaker]]:
    """A function listing the breakers to report, read afresh at each use, unique by name.

    ``None`` means the process-wide named breakers (``stalwart.circuit_breakers``); a
    mapping is read at each call (so breakers added later appear); any other iterable is
    taken once. The breakers attached to ``health``'s checks are added after them.
    """
    if source is None:
        source = circuit_breakers
    if isinstance(source, Mapping):
        mapping = source

        def given() -> list[CircuitBreaker]:
            return [b for b in list(mapping.values()) if isinstance(b, CircuitBreaker)]

    elif isinstance(source, str | bytes) or not isinstance(source, Iterable):
        raise ConfigError(
            "breakers", f"must be a mapping or an iterable of CircuitBreaker, got {source!r}"
        )
    else:
        fixed = list(source)
        for item in fixed:
            if not isinstance(item, CircuitBreaker):
                raise ConfigError("breakers", f"must hold CircuitBreaker objects, got {item!r}")

        def given() -> list[CircuitBreaker]:
            return fixed

    if health is None or not callable(getattr(health, "breaker", None)):
        return given

    def with_checks() -> list[CircuitBreaker]:
        found = {b.name: b for b in given()}
        for name in health.names():
            try:
                breaker = health.breaker(name)
            except KeyError:  # removed meanwhile
                continue
            if isinstance(breaker, CircuitBreaker):
                found.setdefault(breaker.name, breaker)
        return list(found.values())

    return with_checks
