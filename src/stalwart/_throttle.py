"""Adaptive throttling: the client-side overload protection of the Google SRE book.

Each client keeps, over a sliding window (two minutes by default), how many requests it
attempted (``requests``, local rejections included) and how many the backend accepted
(``accepts``). A new request is rejected locally, without being sent, with probability::

    max(0, (requests - k * accepts) / (requests + 1))

While the backend accepts everything, ``requests == accepts`` and nothing is rejected.
When it starts refusing, the client goes on sending about ``k`` times what the backend
accepts and drops the rest itself, so an overloaded backend stops spending its capacity on
saying no (SRE book, ch. 21 "Handling Overload").

Shape: :class:`ThrottleConfig` (frozen, validated), :class:`ThrottleCore` (counts in,
probability out; reuses the breaker's O(1) bucketed :class:`~stalwart._window.TimeWindow`),
and :class:`AdaptiveThrottle`, which speaks the drivers' permission-and-outcome protocol,
so it works as a decorator, with ``call``/``acall`` and as a ``with`` block.
"""

from __future__ import annotations

import logging
import math
import random
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, fields
from typing import Any, ParamSpec, Protocol, TypeVar

from ._clock import Clock
from ._errors import ConfigError, RateLimitedError
from ._events import CallRejected, Event, EventHub
from ._outcome import compile_filter, normalize_filter
from ._strategy import Guarded, counter, strategy_clock, strategy_name
from ._types import ExceptionFilter
from ._validate import callable_or_none, positive, whole
from ._window import TimeWindow

__all__ = (
    "DEFAULT_K",
    "DEFAULT_MIN_REQUESTS",
    "DEFAULT_WINDOW",
    "AdaptiveThrottle",
    "ThrottleConfig",
    "ThrottleCore",
    "ThrottleStats",
)

P = ParamSpec("P")
R = TypeVar("R")
E = TypeVar("E", bound=Event)

_log = logging.getLogger("stalwart")

DEFAULT_K = 2.0
"""The SRE book's preferred multiplier: send up to twice what the backend accepts."""
DEFAULT_WINDOW = 120.0
"""Seconds of history (the SRE book's two minutes)."""
DEFAULT_MIN_REQUESTS = 10
"""Requests the window must hold before anything is rejected locally. A sporadic client
would otherwise drop half its requests after a single refusal (1 request, 0 accepts)."""

_STRATEGY = "adaptive_throttle"
_TICKET = 0  # every call gets the same ticket: outcomes are counted, never matched


@dataclass(frozen=True, slots=True, kw_only=True)
class ThrottleConfig:
    """Validated settings of an adaptive throttle. See docs/adaptive-throttle.md."""

    k: float = DEFAULT_K
    """Multiplier on accepts: lower is more aggressive. At least 1 (see the docs)."""
    window: float = DEFAULT_WINDOW
    """Seconds over which requests and accepts are counted."""
    min_requests: int = DEFAULT_MIN_REQUESTS
    """No local rejection while the window holds fewer requests than this."""
    overload_on: ExceptionFilter = ()
    """Exceptions meaning "the backend refused the request" (overloaded, quota exceeded).
    Every other outcome, including other exceptions, counts as accepted."""
    failure_if: Callable[[Any], bool] | None = None
    """Judges a returned value: True means the backend refused (an HTTP 429 or 503
    response, say). The value is still returned to the caller."""

    def __post_init__(self) -> None:
        if (
            isinstance(self.k, bool)
            or not isinstance(self.k, int | float)
            or not math.isfinite(self.k)
            or self.k < 1
        ):
            raise ConfigError(
                "k",
                f"must be a finite number >= 1, got {self.k!r}: below 1 the throttle would "
                "reject requests even while the backend accepts every one (2 is the usual "
                "choice; 1.1 is very aggressive)",
            )
        positive("window", self.window)
        whole("min_requests", self.min_requests, minimum=0)
        compile_filter("overload_on", self.overload_on)
        callable_or_none("failure_if", self.failure_if)
        if normalize_filter(self.overload_on) == () and self.failure_if is None:
            raise ConfigError(
                "overload_on",
                "say what a backend refusal looks like: overload_on=<exception classes or a "
                "predicate> and/or failure_if=<predicate on the returned value>. With "
                "neither, every request counts as accepted and nothing is ever throttled",
            )


class ThrottleCore:
    """Requests and accepts over a sliding window, and the local rejection probability.

    Not thread-safe by itself: :class:`AdaptiveThrottle` calls it under its lock.
    """

    __slots__ = ("k", "min_requests", "window")

    def __init__(self, config: ThrottleConfig) -> None:
        self.k = config.k
        self.min_requests = config.min_requests
        self.window = TimeWindow(config.window)

    def counts(self, now: float) -> tuple[int, int]:
        """(requests, accepts) inside the window."""
        requests, refused, _ = self.window.totals(now)
        return requests, requests - refused

    def probability(self, now: float) -> float:
        """The chance that a request made now is rejected locally."""
        requests, accepts = self.counts(now)
        if requests < self.min_requests:
            return 0.0
        return max(0.0, (requests - self.k * accepts) / (requests + 1))

    def record(self, now: float, accepted: bool) -> None:
        """Count one request; ``accepted`` is False for a refusal, remote or local."""
        self.window.record(now, not accepted, False)


@dataclass(frozen=True, slots=True, kw_only=True)
class ThrottleStats:
    """What the throttle sees now."""

    requests: int
    accepts: int
    rejection_probability: float

    def to_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


class _Random(Protocol):
    def random(self) -> float: ...


class AdaptiveThrottle(Guarded):
    """Rejects requests locally, at random, in proportion to how many the backend refuses.

    A local rejection raises :class:`RateLimitedError` (``retry_in`` None) without calling
    the function. The caller's own outcome always passes through unchanged; it only counts.
    """

    _kind = "throttle"

    # The drivers' protocol (_drivers.Guard): no fast path, nothing refused by time alone.
    _fast: int | None = None
    _dirty = False
    _refusing = False
    _remaining = None
    _Rejection = RateLimitedError

    def __init__(
        self,
        *,
        k: float = DEFAULT_K,
        window: float = DEFAULT_WINDOW,
        min_requests: int = DEFAULT_MIN_REQUESTS,
        overload_on: ExceptionFilter = (),
        failure_if: Callable[[Any], bool] | None = None,
        name: str | None = None,
        clock: Clock | None = None,
        rng: _Random | None = None,
    ) -> None:
        self.config = ThrottleConfig(
            k=k,
            window=window,
            min_requests=min_requests,
            overload_on=overload_on,
            failure_if=failure_if,
        )
        self.name = strategy_name(name, _STRATEGY)
        self._clock: Clock = strategy_clock(clock)
        if rng is not None and not callable(getattr(rng, "random", None)):
            raise ConfigError("rng", f"must have a random() method (random.Random), got {rng!r}")
        self._rng: _Random = random.Random() if rng is None else rng
        self._overload = compile_filter("overload_on", overload_on)
        self._monotonic = self._clock.monotonic
        self._core = ThrottleCore(self.config)
        self._lock = threading.Lock()
        self._hub = EventHub()
        self._successes: Iterator[int] = counter()
        self._rejections: Iterator[int] = counter()

    # -- public surface --------------------------------------------------------------

    def stats(self) -> ThrottleStats:
        """Requests, accepts and the current local rejection probability."""
        now = self._monotonic()
        with self._lock:
            requests, accepts = self._core.counts(now)
            probability = self._core.probability(now)
        return ThrottleStats(requests=requests, accepts=accepts, rejection_probability=probability)

    def describe(self) -> dict[str, Any]:
        """The throttle's kind, name and every setting."""
        settings = {f.name: getattr(self.config, f.name) for f in fields(ThrottleConfig)}
        return {"strategy": _STRATEGY, "name": self.name, **settings}

    def __repr__(self) -> str:
        return f"AdaptiveThrottle(k={self.config.k!r}, name={self.name!r})"

    # -- the protocol the drivers use ------------------------------------------------

    @property
    def _call_timeout(self) -> float | None:
        return None

    _call_timer = None

    def _acquire(self) -> int:
        now = self._monotonic()
        with self._lock:
            probability = self._core.probability(now)
        # The draw is outside the lock: rng may be the caller's object.
        if probability == 0.0 or self._rng.random() >= probability:
            return _TICKET
        with self._lock:
            requests, accepts = self._core.counts(now)
            self._core.record(now, False)  # a local rejection is a request not accepted
        next(self._rejections)
        if self._hub.rejections:
            self._emit_rejection(now, None)
        raise RateLimitedError(
            self.name,
            None,
            f"adaptive throttling: the backend accepted {accepts} of the last {requests} "
            f"requests, so {probability:.0%} of new ones are rejected locally",
        )

    def _emit_rejection(self, now: float, retry_in: float | None) -> None:
        self._hub.emit(CallRejected(name=self.name, strategy=_STRATEGY, at=now, retry_in=retry_in))

    def _settle_success(self, ticket: int, duration: float, *, counted: bool = False) -> None:
        self._record(True)

    def _settle_failure(
        self,
        ticket: int,
        duration: float,
        exception: BaseException | None,
        retry_after: float | None,
    ) -> None:
        self._record(False)

    def _settle_exception(self, ticket: int, exc: BaseException, duration: float) -> None:
        if not isinstance(exc, Exception):
            # Cancelled or interrupted: the backend's answer is unknown, so count nothing.
            return
        self._record(not self._hook("overload_on", self._overload, exc, False))

    def _settle_result(self, ticket: int, result: Any, duration: float) -> None:
        judge = self.config.failure_if
        self._record(judge is None or not self._hook("failure_if", judge, result, False))

    def _record(self, accepted: bool) -> None:
        now = self._monotonic()
        with self._lock:
            self._core.record(now, accepted)
