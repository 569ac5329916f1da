"""In-process fault injection: exceptions, latency or results, at a rate, switchable live.

Polly v8's chaos strategies, for Python: ``ChaosFault``, ``ChaosLatency`` and
``ChaosResult`` are strategies like any other (decorators for def and async def, usable
in a ``Pipeline``), sharing one decision: inject on this call or not, drawn from a seeded
random source at the current ``rate`` while ``enabled``. Both can be changed while the
program runs, or for the length of a ``with chaos.active(...)`` block.
"""

from __future__ import annotations

import functools
import random
import threading
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, ClassVar, ParamSpec, TypeVar

from .._clock import Clock
from .._errors import ConfigError
from .._events import Event, EventHub
from .._strategy import Wrapper, strategy_clock, strategy_name
from .._validate import positive, ratio

__all__ = ("ChaosFault", "ChaosInjected", "ChaosLatency", "ChaosResult")

P = ParamSpec("P")
R = TypeVar("R")


@dataclass(frozen=True, slots=True, kw_only=True)
class ChaosInjected(Event):
    """A chaos strategy injected its fault, latency or result into a call."""

    detail: str


class _Chaos(Wrapper):
    """The decision every chaos strategy shares, and its live controls.

    Thread-safe: the random source is drawn under a small lock (``random.Random`` is not
    safe to share), and ``rate`` / ``enabled`` are plain attributes read once per call.
    """

    _kind: ClassVar[str]

    def __init__(
        self,
        *,
        rate: float,
        enabled: bool,
        seed: int | None,
        name: str | None,
        clock: Clock | None,
    ) -> None:
        self.name = strategy_name(name, self._kind)
        self._clock = strategy_clock(clock)
        self._hub = EventHub()
        self._rng = random.Random(seed)
        self._rng_lock = threading.Lock()
        self.rate = rate
        self.enabled = enabled

    # -- live controls ------------------------------------------------------------------

    @property
    def rate(self) -> float:
        """The share of calls injected into, 0 (none) to 1 (all)."""
        return self._rate

    @rate.setter
    def rate(self, value: float) -> None:
        ratio("rate", value, allow_zero=True)
        self._rate = float(value)

    @property
    def enabled(self) -> bool:
        return self._enabled

    @enabled.setter
    def enabled(self, value: bool) -> None:
        if not isinstance(value, bool):
            raise ConfigError("enabled", f"must be True or False, got {value!r}")
        self._enabled = value

    @contextmanager
    def active(self, rate: float = 1.0) -> Iterator[None]:
        """Inject at ``rate`` (all calls by default) for the block, then restore."""
        before = (self._rate, self._enabled)
        self.rate, self.enabled = rate, True
        try:
            yield
        finally:
            self._rate, self._enabled = before

    def describe(self) -> dict[str, Any]:
        return {
            "strategy": self._kind,
            "name": self.name,
            "rate": self._rate,
            "enabled": self._enabled,
            **self._settings(),
        }

    # -- the shared decision --------------------------------------------------------------

    def _fires(self) -> bool:
        if not self._enabled:
            return False
        rate = self._rate
        if rate >= 1.0:
            fired = True
        elif rate <= 0.0:
            return False
        else:
            with self._rng_lock:
                fired = self._rng.random() < rate
        if fired and self._hub._all:
            self._hub.emit(
                ChaosInjected(
                    name=self.name,
                    strategy=self._kind,
                    at=self._clock.monotonic(),
                    detail=self._detail(),
                )
            )
        return fired

    def _settings(self) -> dict[str, Any]:
        raise NotImplementedError

    def _detail(self) -> str:
        raise NotImplementedError

    # -- drivers: a fired call gets the injection, the others run untouched ---------------

    def _sync_wrapper(self, fn: Callable[P, R]) -> Callable[P, R]:
        fires, inject = self._fires, self._inject

        @functools.wraps(fn)
        def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
            if fires():
                return inject(fn, args, kwargs)
            return fn(*args, **kwargs)

        return wrapper

    def _async_wrapper(self, fn: Callable[P, Awaitable[R]]) -> Callable[P, Awaitable[R]]:
        fires, ainject = self._fires, self._ainject

        @functools.wraps(fn)
        async def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
            if fires():
                return await ainject(fn, args, kwargs)
            return await fn(*args, **kwargs)

        return wrapper

    def _inject(self, fn: Callable[..., R], args: Any, kwargs: Any) -> R:
        raise NotImplementedError

    async def _ainject(self, fn: Callable[..., Awaitable[R]], args: Any, kwargs: Any) -> R:
        raise NotImplementedError


class ChaosFault(_Chaos):
    """Raises an exception instead of making the call, at ``rate``.

    ``exception`` is an exception class (raised with no arguments) or a factory returning
    a fresh exception: one instance raised again and again would keep growing its
    traceback, so an instance is refused.
    """

    _kind = "chaos_fault"

    def __init__(
        self,
        exception: type[BaseException] | Callable[[], BaseException],
        *,
        rate: float = 1.0,
        enabled: bool = True,
        seed: int | None = None,
        name: str | None = None,
        clock: Clock | None = None,
    ) -> None:
        if isinstance(exception, BaseException) or not callable(exception):
            raise ConfigError(
                "exception",
                f"must be an exception class or a factory returning one, got {exception!r} "
                "(one instance raised on every call would keep growing its traceback)",
            )
        self.exception = exception
        super().__init__(rate=rate, enabled=enabled, seed=seed, name=name, clock=clock)

    def _make(self) -> BaseException:
        exc = self.exception()
        if not isinstance(exc, BaseException):
            raise TypeError(
                f"chaos {self.name!r}: {self.exception!r} returned {exc!r}, not an exception"
            )
        return exc

    def _settings(self) -> dict[str, Any]:
        return {"exception": self.exception}

    def _detail(self) -> str:
        return f"fault {getattr(self.exception, '__qualname__', repr(self.exception))}"

    def _inject(self, fn: Callable[..., R], args: Any, kwargs: Any) -> R:
        raise self._make()

    async def _ainject(self, fn: Callable[..., Awaitable[R]], args: Any, kwargs: Any) -> R:
        raise self._make()


class ChaosLatency(_Chaos):
    """Delays the call by ``seconds`` (or a uniform draw up to ``max_seconds``) at ``rate``.

    The delay is slept on the strategy's clock: on a ``FakeClock`` it takes no real time
    but moves the clock, so clock-based deadlines see it; on the system clock it is real
    (and an async ``Timeout`` around it cancels it like any slow call).
    """

    _kind = "chaos_latency"

    def __init__(
        self,
        seconds: float,
        *,
        max_seconds: float | None = None,
        rate: float = 1.0,
        enabled: bool = True,
        seed: int | None = None,
        name: str | None = None,
        clock: Clock | None = None,
    ) -> None:
        positive("seconds", seconds)
        if max_seconds is not None:
            positive("max_seconds", max_seconds)
            if max_seconds < seconds:
                raise ConfigError(
                    "max_seconds", f"must be >= seconds ({seconds}), got {max_seconds}"
                )
        self.seconds = float(seconds)
        self.max_seconds = None if max_seconds is None else float(max_seconds)
        super().__init__(rate=rate, enabled=enabled, seed=seed, name=name, clock=clock)

    def _delay(self) -> float:
        if self.max_seconds is None:
            return self.seconds
        with self._rng_lock:
            return self._rng.uniform(self.seconds, self.max_seconds)

    def _settings(self) -> dict[str, Any]:
        return {"seconds": self.seconds, "max_seconds": self.max_seconds}

    def _detail(self) -> str:
        if self.max_seconds is None:
            return f"latency {self.seconds:g} s"
        return f"latency {self.seconds:g}-{self.max_seconds:g} s"

    def _inject(self, fn: Callable[..., R], args: Any, kwargs: Any) -> R:
        self._clock.sleep(self._delay())
        return fn(*args, **kwargs)

    async def _ainject(self, fn: Callable[..., Awaitable[R]], args: Any, kwargs: Any) -> R:
        await self._clock.asleep(self._delay())
        return await fn(*args, **kwargs)


class ChaosResult(_Chaos):
    """Returns ``value`` (or ``factory()``) instead of making the call, at ``rate``."""

    _kind = "chaos_result"

    _MISSING: ClassVar[Any] = object()

    def __init__(
        self,
        value: Any = _MISSING,
        *,
        factory: Callable[[], Any] | None = None,
        rate: float = 1.0,
        enabled: bool = True,
        seed: int | None = None,
        name: str | None = None,
        clock: Clock | None = None,
    ) -> None:
        if (value is self._MISSING) == (factory is None):
            raise ConfigError("value", "give exactly one of value= or factory=")
        if factory is not None and not callable(factory):
            raise ConfigError("factory", f"must be callable, got {factory!r}")
        self.value = value
        self.factory = factory
        super().__init__(rate=rate, enabled=enabled, seed=seed, name=name, clock=clock)

    def _result(self) -> Any:
        return self.value if self.factory is None else self.factory()

    def _settings(self) -> dict[str, Any]:
        value = None if self.value is self._MISSING else self.value
        return {"value": value, "factory": self.factory}

    def _detail(self) -> str:
        return "result"

    def _inject(self, fn: Callable[..., R], args: Any, kwargs: Any) -> R:
        result: R = self._result()
        return result

    async def _ainject(self, fn: Callable[..., Awaitable[R]], args: Any, kwargs: Any) -> R:
        result: R = self._result()
        return result
