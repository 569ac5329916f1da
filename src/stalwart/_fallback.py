"""Fallback: a stand-in answer when the call was refused, failed in a chosen way, or
returned a value judged bad.

Shape (the same for every stalwart strategy):

* :class:`FallbackConfig`, a frozen, validated config;
* the core, :class:`FallbackCore`: it judges an exception or a returned value and says
  whether the fallback replaces it. It never calls the function or the factory;
* :class:`Fallback`, the runtime object: a decorator for ``def`` and ``async def`` plus
  ``call`` / ``acall``;
* :class:`FallbackUsed`, its event.

By default only stalwart's own rejections (``Rejected``: an open breaker, a full
bulkhead, a rate limit, a deadline) are replaced. ``on=`` widens that to the caller's own
exceptions on purpose; it never catches cancellation, ``KeyboardInterrupt`` or
``SystemExit``, which are not ``Exception`` subclasses.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Final, ParamSpec, TypeVar, cast

from ._clock import Clock
from ._drivers import is_async_callable
from ._errors import ConfigError, Rejected
from ._events import Event, EventHub
from ._outcome import compile_filter, normalize_filter
from ._strategy import (
    Wrapper,
    strategy_clock,
    strategy_name,
)
from ._types import ExceptionFilter
from ._validate import callable_or_none

__all__ = ("DEFAULT_ON", "Fallback", "FallbackConfig", "FallbackCore", "FallbackUsed")

P = ParamSpec("P")
R = TypeVar("R")

DEFAULT_ON: Final[ExceptionFilter] = Rejected
"""What a fallback replaces by default: stalwart's rejections, never the caller's errors."""

_STRATEGY = "fallback"


class _Missing:
    def __repr__(self) -> str:
        return "<no value>"


_MISSING: Any = _Missing()


@dataclass(frozen=True, slots=True, kw_only=True)
class FallbackConfig:
    """Validated settings of a fallback. See docs/fallback.md."""

    value: Any = _MISSING
    """The stand-in answer (exactly one of value and factory)."""
    factory: Callable[[Any], Any] | None = None
    """Builds the stand-in from the cause: the exception, or the value ``on_result`` judged
    bad. Sync, or async (then only for async functions)."""
    on: ExceptionFilter = DEFAULT_ON
    """Exceptions to replace: classes, a tuple or list of them, or a predicate."""
    on_result: Callable[[Any], bool] | None = None
    """Judges a returned value: True replaces it with the fallback."""

    def __post_init__(self) -> None:
        if (self.value is _MISSING) == (self.factory is None):
            raise ConfigError(
                "value", "give exactly one of value= (the stand-in) or factory= (builds it)"
            )
        callable_or_none("factory", self.factory)
        compile_filter("on", self.on)
        callable_or_none("on_result", self.on_result)

    @property
    def async_factory(self) -> bool:
        return self.factory is not None and is_async_callable(self.factory)


class FallbackCore:
    """Decides whether an outcome is replaced. Stateless, so shared by every call."""

    __slots__ = ("_on", "_on_result")

    def __init__(self, config: FallbackConfig) -> None:
        self._on = compile_filter("on", config.on)
        self._on_result = config.on_result

    def replaces_exception(self, exc: Exception) -> bool:
        return self._on(exc)

    def replaces_result(self, result: Any) -> bool:
        return self._on_result is not None and bool(self._on_result(result))


@dataclass(frozen=True, slots=True, kw_only=True)
class FallbackUsed(Event):
    """The call's outcome was replaced by the fallback. ``cause`` is the exception caught,
    or the returned value that ``on_result`` judged bad."""

    cause: Any


class Fallback(Wrapper):
    """Answers with a stand-in when the call could not give a usable answer.

    ``Fallback(value=[])`` or ``Fallback(factory=lambda exc: cached())``; ``on=`` chooses
    the exceptions (default: stalwart's rejections only), ``on_result=`` the bad values.
    """

    _kind = _STRATEGY

    def __init__(
        self,
        *,
        value: Any = _MISSING,
        factory: Callable[[Any], Any] | None = None,
        on: ExceptionFilter = DEFAULT_ON,
        on_result: Callable[[Any], bool] | None = None,
        name: str | None = None,
        clock: Clock | None = None,
    ) -> None:
        self.config = FallbackConfig(value=value, factory=factory, on=on, on_result=on_result)
        self.name = strategy_name(name, _STRATEGY)
        self._clock = strategy_clock(clock)
        self._core = FallbackCore(self.config)
        self._hub = EventHub()

    def describe(self) -> dict[str, Any]:
        """The fallback's kind, name and every setting."""
        config = self.config
        return {
            "strategy": _STRATEGY,
            "name": self.name,
            "value": None if config.value is _MISSING else config.value,
            "factory": config.factory,
            "on": normalize_filter(config.on),
            "on_result": config.on_result,
        }

    def __repr__(self) -> str:
        return f"Fallback(name={self.name!r})"

    # -- drivers: they differ only in calling versus awaiting -------------------------

    def _check_sync(self, fn: object) -> None:
        if self.config.async_factory:
            raise ConfigError(
                "factory",
                f"is async, so it can only serve async functions; {fn!r} is sync "
                "(give a sync factory)",
            )

    def _sync_wrapper(self, fn: Callable[P, R]) -> Callable[P, R]:
        core, use = self._core, self._use

        @functools.wraps(fn)
        def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
            try:
                result = fn(*args, **kwargs)
            except Exception as exc:
                if not core.replaces_exception(exc):
                    raise
                return cast("R", use(exc))
            return cast("R", use(result)) if core.replaces_result(result) else result

        return wrapper

    def _async_wrapper(self, fn: Callable[P, Awaitable[R]]) -> Callable[P, Awaitable[R]]:
        core, use = self._core, self._use
        ause = self._ause if self.config.async_factory else None

        @functools.wraps(fn)
        async def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
            try:
                result = await fn(*args, **kwargs)
            except Exception as exc:
                if not core.replaces_exception(exc):
                    raise
                cause: Any = exc
            else:
                if not core.replaces_result(result):
                    return result
                cause = result
            return cast("R", use(cause) if ause is None else await ause(cause))

        return wrapper

    def _use(self, cause: Any) -> Any:
        """The stand-in for ``cause`` (value, or a sync factory's answer), reported."""
        self._report(cause)
        factory = self.config.factory
        return self.config.value if factory is None else factory(cause)

    async def _ause(self, cause: Any) -> Any:
        """The stand-in for ``cause`` from an async factory, reported."""
        self._report(cause)
        assert self.config.factory is not None
        return await self.config.factory(cause)

    def _report(self, cause: Any) -> None:
        if self._hub._all:
            self._hub.emit(
                FallbackUsed(
                    name=self.name, strategy=_STRATEGY, at=self._clock.monotonic(), cause=cause
                )
            )
