"""What every strategy shares: its name and clock, listeners, the decorator shape, counters.

Strategies (``CircuitBreaker``, ``Retry``, ``Timeout``, ``Bulkhead``, ``RateLimiter`` ...)
inherit :class:`Observable` for listeners and, when they wrap def and async def alike,
:class:`Wrapper` for the decorator / ``call`` / ``acall`` forms; they validate their name
and clock with :func:`strategy_name` and :func:`strategy_clock`.
"""

from __future__ import annotations

import inspect
import itertools
import logging
import sys
import threading
from collections.abc import Awaitable, Callable, Iterator
from typing import Any, ClassVar, ParamSpec, Self, TypeVar, cast, overload

from . import _drivers
from ._clock import SYSTEM_CLOCK, Clock
from ._drivers import is_async_callable
from ._errors import ConfigError
from ._events import Event, EventHub, Listener

__all__ = (
    "HAS_GIL",
    "Guarded",
    "Observable",
    "Wrapper",
    "check_call_form",
    "check_decoratable",
    "counter",
    "peek",
    "strategy_clock",
    "strategy_name",
)

P = ParamSpec("P")
R = TypeVar("R")
T = TypeVar("T")
E = TypeVar("E", bound=Event)

_log = logging.getLogger("stalwart")

HAS_GIL: bool = getattr(sys, "_is_gil_enabled", lambda: True)()
"""itertools.count's ``next`` is atomic only under the GIL; fast paths check this."""


def strategy_name(name: str | None, default: str) -> str:
    """The instance's name: given (a non-empty string) or the strategy's kind."""
    if name is None:
        return default
    if not isinstance(name, str) or not name:
        raise ConfigError("name", f"must be a non-empty string or None, got {name!r}")
    return name


def strategy_clock(clock: Clock | None) -> Clock:
    """The clock to use: given (an object implementing Clock) or the system clock."""
    if clock is None:
        return SYSTEM_CLOCK
    if isinstance(clock, type) or not isinstance(clock, Clock):
        raise ConfigError(
            "clock", f"must be an object implementing the Clock protocol, got {clock!r}"
        )
    return clock


def check_decoratable(fn: object) -> None:
    """A function whose call does the work: not a generator function, not a non-callable."""
    if not callable(fn):
        raise ConfigError("fn", f"must be a function to decorate, got {fn!r}")
    if inspect.isgeneratorfunction(fn) or inspect.isasyncgenfunction(fn):
        raise ConfigError(
            "fn",
            f"{fn!r} is a generator function: calling it runs nothing, so there is nothing "
            "to protect. Protect the calls it makes instead.",
        )


def check_call_form(fn: object, kind: str, *, awaited: bool) -> None:
    """``call`` takes a sync function and ``acall`` an async one: the other way round,
    nothing would run (a coroutine never awaited) or the result could not be awaited."""
    if awaited and not is_async_callable(fn):
        raise TypeError(f"{fn!r} is not async: use `{kind}.call(...)`")
    if not awaited and is_async_callable(fn):
        raise TypeError(f"{fn!r} is async: use `await {kind}.acall(...)`")


class Observable:
    """Per-instance listeners over an :class:`EventHub` (global listeners included), and
    the guard around the user's hooks."""

    name: str
    _hub: EventHub

    def _hook(self, setting: str, hook: Callable[[Any], T], arg: Any, default: T) -> T:
        """Run a user hook (a predicate, ``retry_after_from`` ...) outside any lock. If it
        raises, log it and use ``default``: a bug in a hook must neither hide the caller's
        own outcome nor leak a probe."""
        try:
            return hook(arg)
        except Exception:
            _log.exception(
                "%s %r: %s raised on %r; used %r instead",
                type(self).__name__,
                self.name,
                setting,
                arg,
                default,
            )
            return default

    @overload
    def add_listener(self, listener: Listener) -> None: ...
    @overload
    def add_listener(
        self, listener: Callable[[E], object], kind: type[E], /, *kinds: type[E]
    ) -> None: ...
    def add_listener(self, listener: Callable[[Any], object], *types: type[Event]) -> None:
        """Deliver this instance's events (of ``types`` only, if given) to ``listener``.

        Without types the listener gets every event, so it must accept any Event; with
        types, it may be typed for just those (``def on_move(e: StateTransition)``)."""
        self._hub.add(listener, types)

    def remove_listener(self, listener: Callable[[E], object]) -> None:
        self._hub.remove(cast("Listener", listener))


class Wrapper(Observable):
    """A strategy that wraps ``def`` and ``async def`` alike: it decides once, at
    decoration, which wrapper a function gets; ``call`` / ``acall`` wrap per call."""

    _kind: ClassVar[str]
    """How the strategy is called in messages: "timeout", "bulkhead", ..."""

    def __call__(self, fn: Callable[P, R]) -> Callable[P, R]:
        """Decorate a ``def`` or ``async def``; the wrapper keeps its signature."""
        check_decoratable(fn)
        if is_async_callable(fn):
            return cast("Callable[P, R]", self._async_wrapper(fn))
        self._check_sync(fn)
        return self._sync_wrapper(fn)

    def call(self, fn: Callable[P, R], /, *args: P.args, **kwargs: P.kwargs) -> R:
        """Run a sync ``fn(*args, **kwargs)`` through the strategy."""
        check_call_form(fn, self._kind, awaited=False)
        self._check_sync(fn)
        return self._sync_wrapper(fn)(*args, **kwargs)

    async def acall(self, fn: Callable[P, Awaitable[R]], /, *args: P.args, **kwargs: P.kwargs) -> R:
        """Await ``fn(*args, **kwargs)`` through the strategy; ``fn`` must be async."""
        check_call_form(fn, self._kind, awaited=True)
        return await self._async_wrapper(fn)(*args, **kwargs)

    def _check_sync(self, fn: object) -> None:
        """Refuse, at decoration, a sync function the strategy cannot serve."""

    def _sync_wrapper(self, fn: Callable[P, R]) -> Callable[P, R]:
        raise NotImplementedError

    def _async_wrapper(self, fn: Callable[P, Awaitable[R]]) -> Callable[P, Awaitable[R]]:
        raise NotImplementedError


class Guarded(Observable):
    """The calling forms of a permission-and-outcome strategy (``_drivers.Guard``: the
    breaker, the adaptive throttle): decorator, ``call`` / ``acall`` and ``with`` /
    ``async with`` all run the one protocol in ``_drivers``."""

    _kind: ClassVar[str]
    """How the strategy is called in messages: "breaker", "throttle", ..."""

    def __call__(self, fn: Callable[P, R]) -> Callable[P, R]:
        """Decorate a ``def`` or ``async def``; the wrapper keeps its signature."""
        return _drivers.decorate(self._guard, fn)

    def call(self, fn: Callable[P, R], /, *args: P.args, **kwargs: P.kwargs) -> R:
        """Run a sync ``fn(*args, **kwargs)`` through the strategy."""
        check_call_form(fn, self._kind, awaited=False)
        return _drivers.call_sync(self._guard, fn, args, kwargs)

    async def acall(self, fn: Callable[P, Awaitable[R]], /, *args: P.args, **kwargs: P.kwargs) -> R:
        """Await ``fn(*args, **kwargs)`` through the strategy; ``fn`` must be async (checked
        first: a plain function's result could not be awaited, and that TypeError would
        otherwise be counted against the dependency)."""
        check_call_form(fn, self._kind, awaited=True)
        return await _drivers.call_async(self._guard, fn, args, kwargs)

    def __enter__(self) -> Self:
        _drivers.enter_block(self._guard)
        return self

    def __exit__(self, et: type[BaseException] | None, exc: BaseException | None, tb: Any) -> None:
        _drivers.exit_block(self._guard, exc)

    async def __aenter__(self) -> Self:
        await _drivers.aenter_block(self._guard)
        return self

    async def __aexit__(
        self, et: type[BaseException] | None, exc: BaseException | None, tb: Any
    ) -> None:
        await _drivers.aexit_block(self._guard, exc)

    @property
    def _guard(self) -> _drivers.Guard:
        return cast("_drivers.Guard", self)


def counter() -> Iterator[int]:
    """A counter whose ``next`` is atomic without a lock: itertools.count under the GIL,
    a small locked stand-in without one. Read it with :func:`peek`."""
    return itertools.count() if HAS_GIL else _LockedCount()


class _LockedCount:
    """itertools.count's stand-in where there is no GIL to make ``next`` atomic."""

    def __init__(self) -> None:
        self._value = 0
        self._lock = threading.Lock()

    def __iter__(self) -> _LockedCount:
        return self

    def __next__(self) -> int:
        with self._lock:
            value = self._value
            self._value += 1
            return value

    def __repr__(self) -> str:
        return f"count({self._value})"


def peek(count: Iterator[int]) -> int:
    """How many times ``next`` was called on a counter from :func:`counter`."""
    # "count(N)" is the only public read of an itertools.count's position; a test pins it.
    return int(repr(count)[6:-1])
