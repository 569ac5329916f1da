"""CacheFallback: answer with the last good result when the call fails (stale-if-error).

Shape (the same for every stalwart strategy):

* :class:`CacheFallbackConfig`, a frozen, validated config;
* the core, :class:`LastGood`: a bounded map from a call's key to its last good result
  and when it was stored. It never calls the function;
* :class:`CacheFallback`, the runtime object: a decorator for ``def`` and ``async def``
  plus ``call`` / ``acall``, and a step of a ``Pipeline``;
* :class:`StaleServed`, its event.

Each successful call stores its result under the call's key. While an entry is younger
than ``ttl`` it is the answer without calling at all (a plain cache; ``ttl=0``, the
default, always calls). When the call fails in a way ``on`` covers (by default any
exception, an open breaker's rejection included), an entry at most ``stale_for`` old is
the answer instead, and :meth:`CacheFallback.age` tells the caller how old it was.
Without one, the failure goes to the caller unchanged.
"""

from __future__ import annotations

import contextvars
import functools
import threading
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Hashable
from dataclasses import dataclass
from typing import Any, ParamSpec, TypeVar, cast

from ._clock import Clock
from ._errors import ConfigError
from ._events import Event, EventHub
from ._outcome import compile_filter, normalize_filter
from ._strategy import Wrapper, strategy_clock, strategy_name
from ._types import ExceptionFilter
from ._validate import callable_or_none, positive, whole

__all__ = ("CacheFallback", "CacheFallbackConfig", "LastGood", "StaleServed")

P = ParamSpec("P")
R = TypeVar("R")

_STRATEGY = "cache_fallback"
KeyFunction = Callable[..., Hashable]


@dataclass(frozen=True, slots=True, kw_only=True)
class CacheFallbackConfig:
    """Validated settings of a cache fallback. See docs/fallback.md."""

    ttl: float = 0.0
    """Seconds a stored result is the answer without calling (0: always call)."""
    stale_for: float = 3600.0
    """The oldest (seconds) a stored result may be to stand in for a failed call."""
    max_entries: int = 1024
    """Keys kept; the least recently used goes first."""
    on: ExceptionFilter = Exception
    """The failures a stored result may stand in for: classes, or a predicate."""
    key: KeyFunction | None = None
    """The cache key from the call's arguments (default: the arguments themselves)."""

    def __post_init__(self) -> None:
        positive("ttl", self.ttl, allow_zero=True)
        positive("stale_for", self.stale_for)
        if self.ttl > self.stale_for:
            raise ConfigError("ttl", f"must be <= stale_for ({self.stale_for!r}), got {self.ttl!r}")
        whole("max_entries", self.max_entries)
        compile_filter("on", self.on)
        callable_or_none("key", self.key)


class LastGood:
    """The core: the last good result per key, bounded, with the time it was stored."""

    def __init__(self, max_entries: int) -> None:
        self._entries: OrderedDict[Hashable, tuple[float, Any]] = OrderedDict()
        self._max = max_entries
        self._lock = threading.Lock()

    def get(self, key: Hashable) -> tuple[float, Any] | None:
        with self._lock:
            entry = self._entries.get(key)
            if entry is not None:
                self._entries.move_to_end(key)
            return entry

    def put(self, key: Hashable, at: float, value: Any) -> None:
        with self._lock:
            self._entries[key] = (at, value)
            self._entries.move_to_end(key)
            if len(self._entries) > self._max:
                self._entries.popitem(last=False)

    def drop(self, key: Hashable | None = None) -> None:
        with self._lock:
            if key is None:
                self._entries.clear()
            else:
                self._entries.pop(key, None)

    def __len__(self) -> int:
        return len(self._entries)


@dataclass(frozen=True, slots=True, kw_only=True)
class StaleServed(Event):
    """A stored result answered for a failed call. ``age``: seconds since it was stored."""

    cause: BaseException
    age: float


def _default_key(*args: Any, **kwargs: Any) -> Hashable:
    return (args, tuple(sorted(kwargs.items()))) if kwargs else args


class CacheFallback(Wrapper):
    """Serves the last good result when the call fails: ``@CacheFallback(stale_for=600)``.

    ``ttl=`` also answers from the cache without calling while a result is fresh. Put it
    outside a breaker in a Pipeline, and an open breaker's rejection is answered from the
    cache too.
    """

    _kind = _STRATEGY

    def __init__(
        self,
        *,
        ttl: float = 0.0,
        stale_for: float = 3600.0,
        max_entries: int = 1024,
        on: ExceptionFilter = Exception,
        key: KeyFunction | None = None,
        name: str | None = None,
        clock: Clock | None = None,
    ) -> None:
        self.config = CacheFallbackConfig(
            ttl=ttl, stale_for=stale_for, max_entries=max_entries, on=on, key=key
        )
        self.name = strategy_name(name, _STRATEGY)
        self._clock = strategy_clock(clock)
        self._now = self._clock.monotonic
        self._covers = compile_filter("on", self.config.on)
        self._key = key or _default_key
        self._store = LastGood(max_entries)
        self._hub = EventHub()
        self._age: contextvars.ContextVar[float | None] = contextvars.ContextVar(
            f"stalwart_cache_age_{id(self)}", default=None
        )

    def age(self) -> float | None:
        """How old (seconds) the answer of this context's latest call was: 0.0 when it
        came from the function just now, None before any call."""
        return self._age.get()

    def clear(self, *args: Any, **kwargs: Any) -> None:
        """Forget the stored result of a call with these arguments (all, without any)."""
        self._store.drop(self._key(*args, **kwargs) if args or kwargs else None)

    def __len__(self) -> int:
        return len(self._store)

    def describe(self) -> dict[str, Any]:
        config = self.config
        return {
            "strategy": _STRATEGY,
            "name": self.name,
            "ttl": config.ttl,
            "stale_for": config.stale_for,
            "max_entries": config.max_entries,
            "on": normalize_filter(config.on),
            "key": config.key,
        }

    def __repr__(self) -> str:
        return f"CacheFallback(name={self.name!r}, entries={len(self._store)})"

    # -- the shared steps; the drivers differ only in calling versus awaiting ------------

    def _lookup(self, args: Any, kwargs: Any) -> tuple[Hashable, tuple[float, Any] | None]:
        try:
            key = self._key(*args, **kwargs)
            hash(key)
        except TypeError as exc:
            raise ConfigError(
                "key", f"the call's arguments cannot be a cache key ({exc}): give key="
            ) from None
        entry = self._store.get(key)
        if entry is not None and (age := self._now() - entry[0]) < self.config.ttl:
            self._age.set(age)
            return key, entry
        return key, None

    def _stored(self, key: Hashable, value: Any) -> Any:
        self._store.put(key, self._now(), value)
        self._age.set(0.0)
        return value

    def _instead(self, key: Hashable, exc: Exception) -> Any:
        """The stored result standing in for ``exc``, or ``exc`` raised again."""
        entry = self._store.get(key) if self._covers(exc) else None
        now = self._now()
        if entry is None or (age := now - entry[0]) > self.config.stale_for:
            raise exc
        self._age.set(age)
        if self._hub._all:
            self._hub.emit(
                StaleServed(name=self.name, strategy=_STRATEGY, at=now, cause=exc, age=age)
            )
        return entry[1]

    def _sync_wrapper(self, fn: Callable[P, R]) -> Callable[P, R]:
        lookup, stored, instead = self._lookup, self._stored, self._instead

        @functools.wraps(fn)
        def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
            key, fresh = lookup(args, kwargs)
            if fresh is not None:
                return cast("R", fresh[1])
            try:
                result = fn(*args, **kwargs)
            except Exception as exc:
                return cast("R", instead(key, exc))
            return cast("R", stored(key, result))

        return wrapper

    def _async_wrapper(self, fn: Callable[P, Awaitable[R]]) -> Callable[P, Awaitable[R]]:
        lookup, stored, instead = self._lookup, self._stored, self._instead

        @functools.wraps(fn)
        async def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
            key, fresh = lookup(args, kwargs)
            if fresh is not None:
                return cast("R", fresh[1])
            try:
                result = await fn(*args, **kwargs)
            except Exception as exc:
                return cast("R", instead(key, exc))
            return cast("R", stored(key, result))

        return wrapper
