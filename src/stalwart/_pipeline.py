"""Strategies composed in an order you can read: ``Pipeline(a, b, c)`` is ``a(b(c(fn)))``.

Each strategy is a decorator that decides once whether the function is sync or async, so
the pipeline only chains them, once, at decoration time: a call pays for each strategy's
own wrapper and nothing else. ``describe()`` lists the strategies and their settings,
outermost first, for logs, the ops app and tests (Polly's pipeline descriptor).
"""

from __future__ import annotations

import enum
import functools
import inspect
from collections.abc import Awaitable, Callable
from typing import Any, ParamSpec, Protocol, TypeVar, runtime_checkable

from ._drivers import is_async_callable
from ._errors import ConfigError

__all__ = ("Pipeline", "Strategy", "describe_value")

P = ParamSpec("P")
R = TypeVar("R")


@runtime_checkable
class Strategy(Protocol):
    """What a pipeline composes: a decorator for def and async def that can describe itself."""

    def __call__(self, fn: Callable[P, R]) -> Callable[P, R]: ...

    def describe(self) -> dict[str, Any]: ...


class Pipeline:
    """Apply strategies to a call in order, the first one outermost.

    ``Pipeline(Fallback(...), Retry(...), breaker, Bulkhead(...), Timeout(...))`` reads as
    the call sees it: the fallback catches what the retries could not fix; each retry
    asks the breaker, waits for a bulkhead slot, and is bounded by the timeout. Use it as
    a decorator on ``def`` and ``async def`` (the signature is kept), or through
    ``call`` / ``acall``.
    """

    def __init__(self, *strategies: Strategy, name: str | None = None) -> None:
        if not strategies:
            raise ConfigError("strategies", "a pipeline needs at least one strategy")
        for position, strategy in enumerate(strategies):
            if not isinstance(strategy, Strategy):
                raise ConfigError(
                    "strategies",
                    f"item {position} ({strategy!r}) is not a strategy: it must be a decorator "
                    "with describe(), like Retry, CircuitBreaker, Timeout or Bulkhead",
                )
        self.strategies: tuple[Strategy, ...] = strategies
        self.name = name or "pipeline"

    def __call__(self, fn: Callable[P, R]) -> Callable[P, R]:
        if not callable(fn):
            raise ConfigError("fn", f"must be a function to decorate, got {fn!r}")
        wrapped = fn
        for strategy in reversed(self.strategies):
            wrapped = strategy(wrapped)
        # Every strategy keeps the signature; this restores the outermost metadata too, in
        # case a strategy's wrapper was built from an inner one.
        return functools.wraps(fn)(wrapped)

    def call(self, fn: Callable[P, R], /, *args: P.args, **kwargs: P.kwargs) -> R:
        """Run a sync ``fn(*args, **kwargs)`` through every strategy (composed per call)."""
        if is_async_callable(fn):
            raise TypeError(f"{fn!r} is async: use `await pipeline.acall(...)`")
        return self(fn)(*args, **kwargs)

    async def acall(self, fn: Callable[P, Awaitable[R]], /, *args: P.args, **kwargs: P.kwargs) -> R:
        """Await ``fn(*args, **kwargs)`` through every strategy (composed per call)."""
        if not is_async_callable(fn):
            raise TypeError(f"{fn!r} is not async: use `pipeline.call(...)`")
        guarded: Callable[P, Awaitable[R]] = self(fn)
        return await guarded(*args, **kwargs)

    def describe(self) -> list[dict[str, Any]]:
        """Each strategy's settings, outermost first, as JSON-friendly dicts."""
        return [
            {key: describe_value(value) for key, value in strategy.describe().items()}
            for strategy in self.strategies
        ]

    def __repr__(self) -> str:
        inner = ", ".join(
            str(s.describe().get("strategy", type(s).__name__)) for s in self.strategies
        )
        return f"Pipeline({inner})"


def describe_value(value: Any) -> Any:
    """A setting as JSON can show it: classes and functions by name, enums by value."""
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, list | tuple | set | frozenset):
        return [describe_value(item) for item in value]
    if isinstance(value, dict):
        return {str(key): describe_value(item) for key, item in value.items()}
    if inspect.isclass(value) or inspect.isfunction(value) or inspect.ismethod(value):
        return getattr(value, "__qualname__", repr(value))
    return repr(value)
