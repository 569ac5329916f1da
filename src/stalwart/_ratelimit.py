"""The rate limiter: the rate grammar, token-bucket and GCRA cores, and the runtime object.

Shape (as every stalwart strategy):

* :class:`Rate`, a count per period, read from ``"10/minute"``, ``"3/5s"``,
  ``"10 per minute"`` or a ``(count, per_seconds)`` tuple;
* :class:`RateLimiterConfig`, the frozen, validated settings;
* :class:`TokenBucket` and :class:`GCRA`, the sans-I/O cores. Told the time, they answer
  "how long until ``cost`` tokens are free?" and take them when that is soon enough.
  They never read a clock, lock or sleep;
* :class:`RateLimiter`, which pairs a core with a clock, a lock held for the arithmetic
  only (never while sleeping) and listeners.

Waiting is a reservation: a caller allowed to wait takes its tokens at once (the bucket
goes into debt) and then sleeps until they would have been there. Waiters are therefore
served first come, first served, and a caller that was told "wait 0.4 s" never finds the
tokens gone when it wakes up.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import inspect
import math
import re
import threading
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Literal, ParamSpec, Protocol, TypeAlias, TypeVar, cast

from . import _testmode
from ._clock import Clock
from ._drivers import is_async_callable
from ._errors import ConfigError, RateLimitedError
from ._events import CallRejected, Event, EventHub
from ._store import StateStore, check_store
from ._strategy import Observable, strategy_clock, strategy_name
from ._validate import one_of, positive, whole

__all__ = (
    "ALGORITHMS",
    "DEFAULT_ALGORITHM",
    "DEFAULT_MAX_WAIT",
    "GCRA",
    "RATE_FORMS",
    "Algorithm",
    "Rate",
    "RateCore",
    "RateLimitWaited",
    "RateLimiter",
    "RateLimiterConfig",
    "RateSpec",
    "TokenBucket",
)

P = ParamSpec("P")
R = TypeVar("R")
E = TypeVar("E", bound=Event)

Algorithm: TypeAlias = Literal["token_bucket", "gcra"]
ALGORITHMS: tuple[Algorithm, ...] = ("token_bucket", "gcra")
DEFAULT_ALGORITHM: Algorithm = "token_bucket"
"""Both algorithms admit the same calls; see docs/rate-limiter.md for how they differ."""
DEFAULT_MAX_WAIT = 0.0
"""Seconds a caller may wait for a token: 0 fails at once with RateLimitedError."""

_STRATEGY = "rate_limiter"
_SLACK = 1e-9
"""A nanosecond of float rounding: a caller who waits exactly the ``retry_in`` it was
told must get its token, even if the sums land a hair short."""

RATE_FORMS = (
    "'<count>/<period>' or '<count> per <period>', where <period> is a unit (second, "
    "minute, hour, day, or s, sec, m, min, h, hr, d, ms) optionally preceded by a number: "
    "'10/minute', '5/second', '100/hour', '3/5s', '10 per minute', '10 per 2 minutes'; "
    "or a (count, per_seconds) tuple such as (10, 60)"
)

_UNITS = {
    "ms": 0.001,
    "msec": 0.001,
    "millisecond": 0.001,
    "s": 1.0,
    "sec": 1.0,
    "second": 1.0,
    "m": 60.0,
    "min": 60.0,
    "minute": 60.0,
    "h": 3600.0,
    "hr": 3600.0,
    "hour": 3600.0,
    "d": 86400.0,
    "day": 86400.0,
}
_NAMED = {1.0: "second", 60.0: "minute", 3600.0: "hour", 86400.0: "day"}
_RATE = re.compile(
    r"\s*(?P<count>\d+)\s*(?:/|\bper\b)\s*(?P<number>\d+(?:\.\d+)?)?\s*(?P<unit>[a-z]+)\s*",
    re.IGNORECASE,
)


@dataclass(frozen=True, slots=True)
class Rate:
    """``count`` calls (tokens) per ``per`` seconds."""

    count: int
    per: float

    def __post_init__(self) -> None:
        if isinstance(self.count, bool) or not isinstance(self.count, int) or self.count < 1:
            raise ConfigError("rate", f"the count must be an integer >= 1, got {self.count!r}")
        try:
            positive("rate", self.per)
        except ConfigError:
            raise ConfigError(
                "rate", f"the period must be a finite number of seconds > 0, got {self.per!r}"
            ) from None
        object.__setattr__(self, "per", float(self.per))

    @classmethod
    def parse(cls, spec: RateSpec) -> Rate:
        """Read a rate from a string, a ``(count, per_seconds)`` tuple, or a Rate."""
        if isinstance(spec, Rate):
            return spec
        if isinstance(spec, tuple):
            if len(spec) != 2:
                raise ConfigError("rate", f"cannot read {spec!r}: write {RATE_FORMS}")
            return cls(spec[0], spec[1])
        if not isinstance(spec, str):
            raise ConfigError("rate", f"cannot read {spec!r}: write {RATE_FORMS}")
        match = _RATE.fullmatch(spec)
        unit = match and _unit(match["unit"])
        if match is None or unit is None:
            hint = ""
            if ";" in spec or "," in spec:
                hint = " (one rate per limiter: for several, compose limiters in a Pipeline)"
            raise ConfigError("rate", f"cannot read {spec!r}{hint}: write {RATE_FORMS}")
        number = float(match["number"]) if match["number"] else 1.0
        if number <= 0:
            raise ConfigError("rate", f"cannot read {spec!r}: the period must be > 0")
        return cls(int(match["count"]), number * unit)

    @property
    def per_second(self) -> float:
        return self.count / self.per

    def __str__(self) -> str:
        named = _NAMED.get(self.per)
        return f"{self.count}/{named}" if named else f"{self.count}/{self.per:g}s"


RateSpec: TypeAlias = "str | tuple[int, float] | Rate"
"""What ``rate=`` accepts."""


class _NoLock(contextlib.nullcontext[None]):
    """The lock a shared limiter does without: its store serialises the arithmetic."""

    def acquire(self) -> bool:
        return True

    def release(self) -> None:
        return None


def _unit(word: str) -> float | None:
    word = word.lower()
    if word not in _UNITS and word.endswith("s"):
        word = word[:-1]  # plurals: seconds, minutes, hours, days, mins, hrs
    return _UNITS.get(word)


@dataclass(frozen=True, slots=True, kw_only=True)
class RateLimiterConfig:
    """Validated settings of a rate limiter. See docs/rate-limiter.md."""

    rate: Rate
    """The sustained rate: tokens refill at ``rate.count`` per ``rate.per`` seconds."""
    burst: int | None = None
    """Most tokens that can be saved up and spent at once (default: ``rate.count``)."""
    algorithm: Algorithm = DEFAULT_ALGORITHM
    max_wait: float = DEFAULT_MAX_WAIT
    """Seconds ``acquire()`` and the decorator may wait for a token before raising."""

    def __post_init__(self) -> None:
        if not isinstance(self.rate, Rate):
            raise ConfigError("rate", f"must be a Rate (use Rate.parse), got {self.rate!r}")
        if self.burst is not None:
            whole("burst", self.burst)
        one_of("algorithm", self.algorithm, ALGORITHMS)
        positive("max_wait", self.max_wait, allow_zero=True)

    @property
    def effective_burst(self) -> int:
        return self.rate.count if self.burst is None else self.burst

    def make_core(self) -> RateCore:
        if self.algorithm == "gcra":
            return GCRA(self.rate.per_second, self.effective_burst)
        return TokenBucket(self.rate.per_second, self.effective_burst)


class RateCore(Protocol):
    """What both algorithms answer. ``now`` never goes back between calls."""

    def reserve(self, now: float, cost: float, within: float) -> float:
        """Seconds until ``cost`` tokens are free. If that is at most ``within``, the
        tokens are taken (reserved for that moment); otherwise nothing changes."""
        ...

    def wait_time(self, now: float, cost: float) -> float:
        """Seconds until ``cost`` tokens are free (0.0: now), taking nothing."""
        ...

    def available(self, now: float) -> float:
        """Tokens free now; below 0 while reservations are outstanding."""
        ...


class TokenBucket:
    """A bucket of ``capacity`` tokens, refilled continuously at ``rate`` per second.

    It starts full. A call takes ``cost`` tokens; a reservation may take the bucket below
    zero, and the debt is repaid by the refill before anyone else is served.
    """

    __slots__ = ("capacity", "rate", "tokens", "updated")

    def __init__(self, rate: float, capacity: int) -> None:
        self.rate = rate
        self.capacity = float(capacity)
        self.tokens = float(capacity)
        self.updated = -math.inf

    def _refill(self, now: float) -> float:
        # A `now` earlier than the last one (never from RateLimiter, which reads its clock
        # under the lock) only removes tokens for a moment: it can never create any.
        tokens = self.tokens + (now - self.updated) * self.rate
        if tokens > self.capacity:
            tokens = self.capacity
        self.tokens = tokens
        self.updated = now
        return tokens

    def reserve(self, now: float, cost: float, within: float) -> float:
        # The hot path of try_acquire: the refill is inlined, every attribute read once.
        tokens = self.tokens + (now - self.updated) * self.rate
        if tokens > self.capacity:
            tokens = self.capacity
        self.updated = now
        left = tokens - cost
        if left >= 0:
            self.tokens = left
            return 0.0
        wait = -left / self.rate
        self.tokens = left if wait <= within else tokens
        return wait

    def wait_time(self, now: float, cost: float) -> float:
        return max(0.0, (cost - self._refill(now)) / self.rate)

    def available(self, now: float) -> float:
        return self._refill(now)

    def __repr__(self) -> str:
        return f"TokenBucket(rate={self.rate!r}/s, capacity={self.capacity:g})"


class GCRA:
    """The generic cell rate algorithm: the token bucket stated as one timestamp.

    ``tat`` (theoretical arrival time) is when the bucket would be full again. A call of
    ``cost`` moves it ``cost * interval`` later and is allowed while the new ``tat`` is at
    most ``burst * interval`` (the burst tolerance) ahead of now.
    """

    __slots__ = ("interval", "tat", "tolerance")

    def __init__(self, rate: float, burst: int) -> None:
        self.interval = 1.0 / rate
        self.tolerance = burst * self.interval
        self.tat = -math.inf

    def reserve(self, now: float, cost: float, within: float) -> float:
        tat = self.tat
        if tat < now:
            tat = now
        new = tat + cost * self.interval
        wait = new - self.tolerance - now
        if wait <= within:
            self.tat = new
            return wait if wait > 0.0 else 0.0
        return wait

    def wait_time(self, now: float, cost: float) -> float:
        return max(0.0, max(self.tat, now) + cost * self.interval - self.tolerance - now)

    def available(self, now: float) -> float:
        return (self.tolerance - (max(self.tat, now) - now)) / self.interval

    def __repr__(self) -> str:
        return f"GCRA(interval={self.interval!r}s, tolerance={self.tolerance!r}s)"


@dataclass(frozen=True, slots=True, kw_only=True)
class RateLimitWaited(Event):
    """A caller waited ``waited`` seconds for ``cost`` tokens, and then went on."""

    waited: float
    cost: int


class RateLimiter(Observable):
    """Lets calls through at a sustained rate with a bounded burst.

    ``try_acquire()`` answers at once; ``acquire()`` / ``await aacquire()`` wait up to the
    allowed bound and otherwise raise :class:`RateLimitedError` with the exact ``retry_in``.
    As a decorator (``def`` and ``async def``) it takes one token before each call.
    """

    __slots__ = (
        "_burst",
        "_clock",
        "_core",
        "_hub",
        "_lock",
        "_now",
        "_remote",
        "_reserve",
        "_wants_waits",
        "_within",
        "config",
        "name",
    )

    def __init__(
        self,
        rate: RateSpec,
        *,
        burst: int | None = None,
        algorithm: Algorithm = DEFAULT_ALGORITHM,
        max_wait: float = DEFAULT_MAX_WAIT,
        name: str | None = None,
        clock: Clock | None = None,
        store: StateStore | None = None,
    ) -> None:
        self.config = RateLimiterConfig(
            rate=Rate.parse(rate), burst=burst, algorithm=algorithm, max_wait=max_wait
        )
        shared = check_store(store, name)
        self.name = strategy_name(name, _STRATEGY)
        self._clock: Clock = strategy_clock(clock)
        self._now = self._clock.monotonic
        # A shared limiter asks its store (one atomic round trip), which keeps the
        # arithmetic consistent by itself: no local lock is held across that call.
        self._remote = shared is not None
        self._core = shared.rate_core(self.name, self.config) if shared else self.config.make_core()
        self._reserve = self._core.reserve
        self._burst = self.config.effective_burst
        self._within = self.config.max_wait + _SLACK
        self._lock: threading.Lock | _NoLock = _NoLock() if shared else threading.Lock()
        self._hub = EventHub()
        self._hub.watch(self._listeners_changed)
        self._listeners_changed()

    # -- taking tokens ---------------------------------------------------------------

    def try_acquire(self, cost: int = 1) -> bool:
        """Take ``cost`` tokens if they are free now; never waits."""
        if cost != 1:
            self._check_cost(cost)
        lock = self._lock
        lock.acquire()
        try:
            wait = self._reserve(self._now(), cost, _SLACK)
        finally:
            lock.release()
        if wait <= _SLACK:
            return True
        if self._hub.rejections:
            self._emit_rejection(wait)
        return False

    def acquire(self, cost: int = 1, *, timeout: float | None = None) -> None:
        """Take ``cost`` tokens, sleeping until they are free if that takes at most
        ``timeout`` seconds (default: ``max_wait``); otherwise raise RateLimitedError."""
        wait = self._take(cost, timeout)
        if wait > _SLACK:
            _testmode.sleep(self._clock, wait)
            self._waited(wait, cost)

    # `timeout` bounds the wait for tokens (the limiter's own sleep), not work to cancel.
    async def aacquire(self, cost: int = 1, *, timeout: float | None = None) -> None:  # noqa: ASYNC109
        """:meth:`acquire` for asyncio: the wait suspends only the calling task (and a
        shared limiter's round trip runs on a worker thread, off the event loop)."""
        if self._remote:
            wait = await asyncio.to_thread(self._take, cost, timeout)
        else:
            wait = self._take(cost, timeout)
        if wait > _SLACK:
            await _testmode.asleep(self._clock, wait)
            self._waited(wait, cost)

    def retry_in(self, cost: int = 1) -> float:
        """Seconds until ``cost`` tokens would be free (0.0: now), taking nothing.

        Round it up for an HTTP ``Retry-After`` header: see docs/rate-limiter.md."""
        if cost != 1:
            self._check_cost(cost)
        with self._lock:
            return self._core.wait_time(self._now(), cost)

    @property
    def remaining(self) -> int:
        """Whole tokens free now (0 while waiters hold reservations)."""
        with self._lock:
            tokens = self._core.available(self._now())
        return max(0, math.floor(tokens + _SLACK))

    # -- calling forms ---------------------------------------------------------------

    def __call__(self, fn: Callable[P, R]) -> Callable[P, R]:
        """Decorate a ``def`` or ``async def``: one token before each call (waiting up to
        ``max_wait``, else RateLimitedError). The wrapper keeps the signature."""
        if not callable(fn):
            raise ConfigError("fn", f"must be a function to decorate, got {fn!r}")
        if inspect.isgeneratorfunction(fn) or inspect.isasyncgenfunction(fn):
            raise ConfigError(
                "fn", f"{fn!r} is a generator function: limit the calls it makes instead"
            )
        if is_async_callable(fn):
            return cast("Callable[P, R]", self._async_wrapper(fn))
        acquire = self.acquire

        @functools.wraps(fn)
        def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
            acquire()
            return fn(*args, **kwargs)

        return wrapper

    def _async_wrapper(self, fn: Callable[P, Awaitable[R]]) -> Callable[P, Awaitable[R]]:
        aacquire = self.aacquire

        @functools.wraps(fn)
        async def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
            await aacquire()
            return await fn(*args, **kwargs)

        return wrapper

    def call(self, fn: Callable[P, R], /, *args: P.args, **kwargs: P.kwargs) -> R:
        """Take one token (as :meth:`acquire`), then run ``fn(*args, **kwargs)``."""
        if is_async_callable(fn):
            raise TypeError(f"{fn!r} is async: use `await limiter.acall(...)`")
        self.acquire()
        return fn(*args, **kwargs)

    async def acall(self, fn: Callable[P, Awaitable[R]], /, *args: P.args, **kwargs: P.kwargs) -> R:
        """Take one token (as :meth:`aacquire`), then await ``fn(*args, **kwargs)``."""
        call = fn  # keeps its type: the check below narrows `fn` to Awaitable[Any]
        if not is_async_callable(fn):
            raise TypeError(f"{fn!r} is not async: use `limiter.call(...)`")
        await self.aacquire()
        return await call(*args, **kwargs)

    def __enter__(self) -> RateLimiter:
        self.acquire()
        return self

    def __exit__(self, et: type[BaseException] | None, exc: BaseException | None, tb: Any) -> None:
        return None

    async def __aenter__(self) -> RateLimiter:
        await self.aacquire()
        return self

    async def __aexit__(
        self, et: type[BaseException] | None, exc: BaseException | None, tb: Any
    ) -> None:
        return None

    # -- description and listeners ---------------------------------------------------

    def describe(self) -> dict[str, Any]:
        """The limiter's kind, name and every setting (for pipelines, logs, the ops app)."""
        return {
            "strategy": _STRATEGY,
            "name": self.name,
            "rate": str(self.config.rate),
            "burst": self._burst,
            "algorithm": self.config.algorithm,
            "max_wait": self.config.max_wait,
        }

    def __repr__(self) -> str:
        return (
            f"RateLimiter({str(self.config.rate)!r}, burst={self._burst}, "
            f"algorithm={self.config.algorithm!r}, name={self.name!r})"
        )

    # -- internals -------------------------------------------------------------------

    def _take(self, cost: int, timeout: float | None) -> float:
        """Reserve ``cost`` tokens if they are free within the allowed wait and return the
        seconds to wait for them; otherwise raise RateLimitedError (shared by both drivers)."""
        if cost != 1:
            self._check_cost(cost)
        if timeout is None:
            within = self._within
        else:
            positive("timeout", timeout, allow_zero=True)
            within = timeout + _SLACK
        with self._lock:
            wait = self._reserve(self._now(), cost, within)
        if wait <= within:
            return wait
        if self._hub.rejections:
            self._emit_rejection(wait)
        bound = self.config.max_wait if timeout is None else timeout
        raise RateLimitedError(
            self.name,
            None if wait == math.inf else wait,
            f"needs {cost} token{'s' if cost != 1 else ''} at {self.config.rate} "
            f"(burst {self._burst}); the wait allowed is {bound:g} s",
        )

    def _check_cost(self, cost: int) -> None:
        if isinstance(cost, bool) or not isinstance(cost, int) or cost < 1:
            raise ConfigError("cost", f"must be an integer >= 1, got {cost!r}")
        if cost > self._burst:
            raise ConfigError(
                "cost",
                f"{cost} is more than the burst of {self._burst}: it could never be granted "
                "(raise burst= or split the work)",
            )

    def _waited(self, wait: float, cost: int) -> None:
        if self._wants_waits:
            self._hub.emit(
                RateLimitWaited(
                    name=self.name, strategy=_STRATEGY, at=self._now(), waited=wait, cost=cost
                )
            )

    def _listeners_changed(self) -> None:
        # Called by the hub whenever this limiter's or the global listeners change.
        self._wants_waits = any(s.wants(RateLimitWaited) for s in self._hub._all)

    def _emit_rejection(self, retry_in: float) -> None:
        self._hub.emit(
            CallRejected(name=self.name, strategy=_STRATEGY, at=self._now(), retry_in=retry_in)
        )
