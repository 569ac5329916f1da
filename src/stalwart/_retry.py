"""Retry: config, the per-call decision core, the runtime object, its events, and the budget.

Shape (as every stalwart strategy):

* :class:`RetryConfig`, a frozen, validated config (``on=`` is required);
* :class:`RetryCore`, one call's decisions. Told the time and the server's hint after each
  failed attempt, it answers "wait this long" or "give up, for this reason". It never
  reads a clock, sleeps, locks or calls user code;
* :class:`Retry`, the runtime object: a decorator for ``def`` and ``async def``,
  ``call``/``acall``, and the loop forms ``for attempt in Retry(...)`` and
  ``async for attempt in Retry(...)``. What needs the runtime (the user's ``on=``,
  ``retry_if_result`` and ``retry_after_from`` hooks, the shared budget, events, the note on
  the caller's exception) lives in :class:`_Run`, shared by every form; the drivers only
  call or await, and sleep;
* :class:`RetryBudget`, Finagle's retry budget: a token bucket shared by many callers.

Nothing is read or allocated before the first failure unless a ``timeout`` (the deadline
counts from the call's start) or a ``budget`` (every call deposits) asks for it.
"""

from __future__ import annotations

import functools
import logging
import math
import random
import sys
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field, fields
from typing import Any, Literal, ParamSpec, TypeAlias, TypedDict, TypeVar, Unpack, cast

from . import _testmode
from ._backoff import (
    DEFAULT_BASE_DELAY,
    DEFAULT_JITTER,
    DEFAULT_MAX_DELAY,
    DEFAULT_MULTIPLIER,
    Backoff,
    Jitter,
    default_retry_after,
)
from ._clock import Clock
from ._drivers import is_async_callable
from ._errors import ConfigError, Rejected
from ._events import Event, EventHub
from ._outcome import compile_filter, normalize_filter, normalize_hint
from ._store import BudgetState, StateStore, check_store
from ._strategy import (
    Observable,
    check_call_form,
    check_decoratable,
    counter,
    peek,
    strategy_clock,
    strategy_name,
)
from ._types import ExceptionFilter, RetryAfterFrom
from ._validate import callable_or_none, callable_required, optional_positive, positive, whole

__all__ = (
    "DEFAULT_BUDGET_TTL",
    "DEFAULT_MAX_ATTEMPTS",
    "DEFAULT_MIN_RETRIES_PER_SECOND",
    "DEFAULT_PERCENT_CAN_RETRY",
    "Attempt",
    "BudgetCore",
    "GiveUpReason",
    "Retry",
    "RetryAttempt",
    "RetryBudget",
    "RetryBudgetExhausted",
    "RetryConfig",
    "RetryCore",
    "RetryGaveUp",
    "RetryOptions",
    "RetrySucceeded",
    "retry",
    "retry_after_hint",
)

P = ParamSpec("P")
R = TypeVar("R")
_log = logging.getLogger("stalwart")

DEFAULT_MAX_ATTEMPTS = 3
"""Attempts per call, the first included (Google SRE: "up to 3 attempts" per request)."""
DEFAULT_PERCENT_CAN_RETRY = 0.2
"""Retry budget: retries allowed per call made (Finagle's 20 %)."""
DEFAULT_MIN_RETRIES_PER_SECOND = 10.0
"""Retry budget: retries allowed per second whatever the traffic (Finagle's 10)."""
DEFAULT_BUDGET_TTL = 10.0
"""Retry budget: seconds a call's deposit counts (Finagle's 10 s)."""

_STRATEGY = "retry"
_UNLIMITED = sys.maxsize  # max_attempts=None: the deadline alone ends the retries
_SLICES = 10  # a budget's window moves in steps of ttl / 10
_EPSILON = 1e-9  # 0.29 * 100 is 28.999999999999996 in floating point

GiveUpReason: TypeAlias = Literal["max_attempts", "deadline", "retry_after", "budget"]


# -- events ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class RetryAttempt(Event):
    """Attempt ``attempt`` (1 = the first call) failed; the next starts after ``delay`` s."""

    attempt: int
    delay: float
    exception: BaseException | None = None
    """What the attempt raised; None when ``retry_if_result`` rejected a value."""
    value: Any = None
    """The value ``retry_if_result`` rejected (None after an exception)."""
    retry_after: float | None = None
    """The server-given pause that set ``delay``, if there was one."""


@dataclass(frozen=True, slots=True, kw_only=True)
class RetrySucceeded(Event):
    """The call succeeded on attempt ``attempts`` (1: the first try, without a retry)."""

    attempts: int


@dataclass(frozen=True, slots=True, kw_only=True)
class RetryGaveUp(Event):
    """No more attempts: the caller gets the last exception (or value)."""

    attempts: int
    elapsed: float
    """Seconds from the end of the first attempt to giving up."""
    reason: GiveUpReason
    exception: BaseException | None = None
    value: Any = None


@dataclass(frozen=True, slots=True, kw_only=True)
class RetryBudgetExhausted(Event):
    """A retry was due but the shared budget ``budget`` had none left."""

    attempt: int
    budget: str
    exception: BaseException | None = None
    value: Any = None


# -- budget ------------------------------------------------------------------------


class BudgetCore:
    """Finagle's retry budget: retries allowed = ``reserve + percent * calls - retries``,
    counting the calls and retries of the last ``ttl`` seconds.

    A sliding window of 10 slices, so a deposit stops counting between 0.9 and 1 ``ttl``
    after it was made. Sans-I/O and not thread-safe: :class:`RetryBudget` locks around it.
    """

    __slots__ = ("_per_second", "_percent", "_reserve", "_slots")

    def __init__(self, percent_can_retry: float, min_retries_per_second: float, ttl: float):
        self._percent = percent_can_retry
        self._reserve = min_retries_per_second * ttl
        self._per_second = _SLICES / ttl  # slices per second: now * this, not now // width,
        # so that 2.0 s with a ttl of 2 s is slice 10 (2.0 // 0.2 is 9.0 in floating point)
        self._slots = [[-1, 0, 0] for _ in range(_SLICES)]  # [slice number, calls, retries]

    def deposit(self, now: float, calls: int = 1) -> None:
        self._slot(now)[1] += calls

    def try_withdraw(self, now: float) -> bool:
        if self.balance(now) < 1.0 - _EPSILON:
            return False
        self._slot(now)[2] += 1
        return True

    def balance(self, now: float) -> float:
        """Retries the budget would allow now (may be fractional)."""
        current = math.floor(now * self._per_second)
        calls = retries = 0
        for number, deposited, withdrawn in self._slots:
            if current - _SLICES < number <= current:
                calls += deposited
                retries += withdrawn
        return self._reserve + self._percent * calls - retries

    def slice_end(self, now: float) -> float:
        """When the slice holding ``now`` ends (deposits until then may be batched)."""
        return (math.floor(now * self._per_second) + 1) / self._per_second

    def _slot(self, now: float) -> list[int]:
        number = math.floor(now * self._per_second)
        slot = self._slots[number % _SLICES]
        if slot[0] != number:
            slot[:] = [number, 0, 0]
        return slot


class RetryBudget:
    """Caps retries across many callers to a fraction of their calls, plus a floor.

    Share one budget between every ``retry(..., budget=b)`` that calls the same
    dependency: each call deposits, each retry withdraws, and when the budget is empty the
    retry is skipped (the caller gets its own exception). During an outage, retries then
    add at most ``percent_can_retry`` to the load instead of multiplying it by
    ``max_attempts``. Defaults are Finagle's: 20 % of calls plus 10 retries per second,
    counted over the last 10 s. Thread-safe.
    """

    def __init__(
        self,
        *,
        percent_can_retry: float = DEFAULT_PERCENT_CAN_RETRY,
        min_retries_per_second: float = DEFAULT_MIN_RETRIES_PER_SECOND,
        ttl: float = DEFAULT_BUDGET_TTL,
        name: str | None = None,
        clock: Clock | None = None,
        store: StateStore | None = None,
    ) -> None:
        positive("percent_can_retry", percent_can_retry, allow_zero=True)
        positive("min_retries_per_second", min_retries_per_second, allow_zero=True)
        positive("ttl", ttl)
        if not 1.0 <= ttl <= 60.0:
            raise ConfigError("ttl", f"must be between 1 and 60 seconds, got {ttl!r}")
        self.name = strategy_name(name, "retry_budget")
        self.percent_can_retry = percent_can_retry
        self.min_retries_per_second = min_retries_per_second
        self.ttl = ttl
        self._clock = strategy_clock(clock)
        self._now = self._clock.monotonic
        shared = check_store(store, name)
        self._core: BudgetState = (
            shared.budget_core(self.name, percent_can_retry, min_retries_per_second, ttl)
            if shared
            else BudgetCore(percent_can_retry, min_retries_per_second, ttl)
        )
        self._shared = shared is not None
        self._lock = threading.Lock()
        # Deposits of the current slice are counted without the lock (itertools.count is
        # atomic under the GIL) and handed to the core when the slice ends or a retry asks.
        # A deposit racing with the hand-over may be lost: the budget can only err strict.
        self._pending: Iterator[int] = counter()
        self._pending_at = 0.0
        self._pending_until = -math.inf

    def deposit(self) -> None:
        """Count one call (a first attempt)."""
        if self._shared:
            # The store gathers deposits itself and sends them in the background.
            self._core.deposit(self._now())
            return
        if self._now() >= self._pending_until:
            with self._lock:
                self._hand_over(self._now())
        next(self._pending)

    def try_withdraw(self) -> bool:
        """Take one retry if the budget has one; False if it is exhausted."""
        now = self._now()
        with self._lock:
            self._hand_over(now)
            return self._core.try_withdraw(now)

    @property
    def balance(self) -> float:
        """Retries the budget would allow now."""
        now = self._now()
        with self._lock:
            self._hand_over(now)
            return self._core.balance(now)

    def _hand_over(self, now: float) -> None:
        """Under the lock: give the batched deposits to the core; batch anew from ``now``."""
        pending, self._pending = self._pending, counter()
        calls = peek(pending)
        if calls:
            self._core.deposit(self._pending_at, calls)
        self._pending_at = now
        self._pending_until = self._core.slice_end(now)

    def describe(self) -> dict[str, Any]:
        return {
            "strategy": "retry_budget",
            "name": self.name,
            "percent_can_retry": self.percent_can_retry,
            "min_retries_per_second": self.min_retries_per_second,
            "ttl": self.ttl,
        }

    def __repr__(self) -> str:
        return f"RetryBudget({self.name!r}, balance={self.balance:.3g})"


# -- config ------------------------------------------------------------------------


def retry_after_hint(source: Any) -> float | None:
    """The default ``retry_after_from``: a ``retry_after`` attribute (seconds or a
    timedelta), the ``Retry-After`` of a 429/503 response the exception carries, else the
    ``retry_in`` of a stalwart rejection (an open breaker's, say)."""
    hint = default_retry_after(source)
    if hint is None and isinstance(source, Rejected):
        return source.retry_in
    return hint


@dataclass(frozen=True, slots=True, kw_only=True)
class RetryConfig:
    """Validated settings of a retry. See docs/retry.md."""

    on: ExceptionFilter | None = None
    """Required: the exceptions to retry (classes, a tuple or list of them, or a
    predicate); ``()`` to retry on values only."""
    max_attempts: int | None = DEFAULT_MAX_ATTEMPTS
    """Attempts in all, the first included; None (unlimited) only with a timeout."""
    base_delay: float = DEFAULT_BASE_DELAY
    max_delay: float = DEFAULT_MAX_DELAY
    """Cap on the computed delay, and the longest server-given pause honoured."""
    multiplier: float = DEFAULT_MULTIPLIER
    jitter: Jitter = DEFAULT_JITTER
    jitter_factor: float | None = None
    timeout: float | None = None
    """Total deadline in seconds from the call's start: the last wait is shortened to end
    by it and no attempt starts after it."""
    retry_if_result: Callable[[Any], bool] | None = None
    """Judges a returned value: True retries it (the last one is returned all the same)."""
    retry_after_from: RetryAfterFrom = retry_after_hint
    """Extracts a server-given pause from an exception or rejected value; it replaces the
    computed delay."""
    budget: RetryBudget | None = None
    backoff: Backoff = field(init=False, repr=False, compare=False)
    """The delay series the settings above describe (derived)."""

    def __post_init__(self) -> None:
        if self.on is None:
            raise ConfigError(
                "on",
                "is required: the exceptions to retry (a class, a tuple or list of classes, "
                "or a predicate); on=() retries on retry_if_result alone",
            )
        compile_filter("on", self.on)
        spec = normalize_filter(self.on)
        for item in spec if isinstance(spec, tuple) else ():
            if not issubclass(item, Exception):
                raise ConfigError(
                    "on",
                    f"must be Exception subclasses, got {item!r}: cancellation and interrupts "
                    "are never retried",
                )
        if self.max_attempts is None:
            if self.timeout is None:
                raise ConfigError(
                    "max_attempts",
                    "None (unlimited) needs a timeout, or the retries would never end",
                )
        else:
            whole("max_attempts", self.max_attempts)
        optional_positive("timeout", self.timeout)
        callable_or_none("retry_if_result", self.retry_if_result)
        callable_required("retry_after_from", self.retry_after_from)
        if self.budget is not None and not isinstance(self.budget, RetryBudget):
            raise ConfigError("budget", f"must be a RetryBudget or None, got {self.budget!r}")
        backoff = Backoff(
            base_delay=self.base_delay,
            max_delay=self.max_delay,
            multiplier=self.multiplier,
            jitter=self.jitter,
            jitter_factor=self.jitter_factor,
        )
        object.__setattr__(self, "backoff", backoff)


class RetryOptions(TypedDict, total=False):
    """Keyword options of :func:`retry` and :class:`Retry` besides ``on``, ``name``,
    ``clock`` and ``rng``: the fields of :class:`RetryConfig`. The presets are of this type."""

    max_attempts: int | None
    base_delay: float
    max_delay: float
    multiplier: float
    jitter: Jitter
    jitter_factor: float | None
    timeout: float | None
    retry_if_result: Callable[[Any], bool] | None
    retry_after_from: RetryAfterFrom
    budget: RetryBudget | None


_SETTINGS = tuple(f.name for f in fields(RetryConfig) if f.init)


# -- core ----------------------------------------------------------------------------


class RetryCore:
    """When to try again, for one call.

    Told the time and the server-given pause (if any) after each failed attempt, it
    answers with the seconds to wait or the reason to give up. A server's pause replaces
    the computed delay; one longer than ``max_delay``, or ending past the deadline, gives
    up at once (retrying earlier than the server asked would only fail again). The last
    computed wait is shortened to end at the deadline; no attempt starts after it.
    """

    __slots__ = ("_backoff", "attempts", "deadline", "first_failure", "max_attempts", "previous")

    def __init__(self, backoff: Backoff, max_attempts: int, deadline: float | None) -> None:
        self._backoff = backoff
        self.max_attempts = max_attempts
        self.deadline = deadline
        self.attempts = 0
        """Attempts failed so far."""
        self.first_failure: float | None = None
        self.previous: float | None = None
        """The last computed delay (decorrelated jitter grows from it)."""

    def after_failure(
        self, now: float, hint: float | None, rng: random.Random | None
    ) -> float | GiveUpReason:
        self.attempts += 1
        if self.first_failure is None:
            self.first_failure = now
        if self.attempts >= self.max_attempts:
            return "max_attempts"
        deadline = self.deadline
        if deadline is not None and now >= deadline:
            return "deadline"
        if hint is not None:
            too_late = deadline is not None and now + hint > deadline
            return "retry_after" if too_late or hint > self._backoff.max_delay else hint
        delay = self._backoff.delay(self.attempts - 1, self.previous, rng)
        self.previous = delay
        return delay if deadline is None else min(delay, deadline - now)


# -- runtime -------------------------------------------------------------------------


class Retry(Observable):
    """Calls a function again when it fails with one of the ``on=`` exceptions.

    Exponential backoff with jitter between attempts, at most ``max_attempts`` in all,
    within an optional total ``timeout``; a server-given pause replaces the computed
    delay. After the last attempt the caller gets its own exception, unchanged but for a
    note saying why stalwart gave up. Use it as a decorator (``def`` and ``async def``),
    in a :class:`~stalwart.Pipeline`, through ``call``/``acall``, or as a loop::

        for attempt in Retry(on=OSError):
            with attempt:
                ...
    """

    def __init__(
        self,
        *,
        on: ExceptionFilter | None = None,
        name: str | None = None,
        clock: Clock | None = None,
        rng: random.Random | None = None,
        **options: Unpack[RetryOptions],
    ) -> None:
        unknown = sorted(set(options) - set(_SETTINGS))
        if unknown:
            raise ConfigError(unknown[0], f"is not a retry setting; known: {sorted(_SETTINGS)}")
        self.config = RetryConfig(on=on, **options)
        self.name = strategy_name(name, _STRATEGY)
        self._named = name is not None
        self._clock = strategy_clock(clock)
        if rng is not None and not isinstance(rng, random.Random):
            raise ConfigError("rng", f"must be a random.Random or None, got {rng!r}")
        self._rng = rng
        self._retryable = compile_filter("on", cast("ExceptionFilter", self.config.on))
        self._max_attempts = self.config.max_attempts or _UNLIMITED
        self._begin = _beginning(self._clock, self.config)
        self._judge = None if self.config.retry_if_result is None else self._retry_value
        self._hub = EventHub()

    # -- calling forms -----------------------------------------------------------------

    def __call__(self, fn: Callable[P, R]) -> Callable[P, R]:
        """Decorate a ``def`` or ``async def``; the wrapper keeps its signature."""
        check_decoratable(fn)
        return functools.wraps(fn)(self._wrapper(fn))

    def call(self, fn: Callable[P, R], /, *args: P.args, **kwargs: P.kwargs) -> R:
        """Run a sync ``fn(*args, **kwargs)`` with retries."""
        check_call_form(fn, _STRATEGY, awaited=False)
        return self._wrapper(fn)(*args, **kwargs)

    async def acall(self, fn: Callable[P, Awaitable[R]], /, *args: P.args, **kwargs: P.kwargs) -> R:
        """Await ``fn(*args, **kwargs)`` with retries; ``fn`` must be async."""
        check_call_form(fn, _STRATEGY, awaited=True)
        retrying: Callable[P, Awaitable[R]] = self._wrapper(fn)
        return await retrying(*args, **kwargs)

    def __iter__(self) -> Iterator[Attempt]:
        """``for attempt in retry: with attempt: ...``: the block runs until it succeeds."""
        return _Attempts(self, self.name)

    def __aiter__(self) -> AsyncIterator[Attempt]:
        """``async for attempt in retry: with attempt: ...``; the waits are awaited."""
        return _Attempts(self, self.name)

    # -- description and listeners -----------------------------------------------------

    def describe(self) -> dict[str, Any]:
        """The retry's kind, name and every setting (for pipelines, logs and the ops app)."""
        settings = {name: getattr(self.config, name) for name in _SETTINGS}
        budget = self.config.budget
        settings["budget"] = None if budget is None else budget.describe()
        return {"strategy": _STRATEGY, "name": self.name, **settings}

    def __repr__(self) -> str:
        config = self.config
        return f"Retry({self.name!r}, on={config.on!r}, max_attempts={config.max_attempts})"

    # -- drivers -----------------------------------------------------------------------

    def _wrapper(self, fn: Callable[P, R]) -> Callable[P, R]:
        """The retrying function, sync or async (decided once), without functools.wraps.

        Both forms make the first attempt themselves and return its value when
        :meth:`_accepted` takes it (not asked when there is nothing to judge and nobody
        listening); a failure goes to the driver, whose :class:`_Run` decides the rest."""
        label = self.name if self._named else getattr(fn, "__qualname__", self.name)
        # Bound once: the first attempt reads no attribute it does not need.
        begin, judge, hub, accepted = self._begin, self._judge, self._hub, self._accepted
        if is_async_callable(fn):
            afn = fn  # keeps the narrowing to async inside the closure

            async def awrapper(*args: Any, **kwargs: Any) -> Any:
                start = None if begin is None else begin()
                value = None
                try:
                    value = await afn(*args, **kwargs)
                    if (judge is None and not hub._all) or accepted(label, value, 1):
                        return value
                    error: Exception | None = None
                except Exception as exc:
                    error = exc
                # Out of the except block: a later attempt's exception must not get this
                # one as its __context__.
                return await _drive_async(_Run(self, label, start), afn, args, kwargs, error, value)

            return cast("Callable[P, R]", awrapper)

        def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
            start = None if begin is None else begin()
            value: R | None = None
            try:
                value = fn(*args, **kwargs)
                if (judge is None and not hub._all) or accepted(label, value, 1):
                    return value
                error: Exception | None = None
            except Exception as exc:
                error = exc
            return _drive_sync(_Run(self, label, start), fn, args, kwargs, error, value)

        return wrapper

    def _core(self, start: float | None) -> RetryCore:
        """One call's decision core, from the call's start (given exactly when there is
        a timeout)."""
        timeout = _testmode.cap_timeout(self.config.timeout)
        deadline = None if start is None or timeout is None else start + timeout
        return RetryCore(self.config.backoff, _testmode.cap_attempts(self._max_attempts), deadline)

    def _accepted(self, label: str, value: Any, attempts: int) -> bool:
        """True if a returned value ends the call (``retry_if_result`` does not reject it;
        ``_NO_VALUE`` is not judged), telling the listeners attempt ``attempts`` succeeded."""
        judge = self._judge
        if judge is not None and value is not _NO_VALUE and judge(value):
            return False
        if self._hub._all:
            self._succeeded(label, attempts)
        return True

    def _succeeded(self, label: str, attempts: int) -> None:
        self._hub.emit(
            RetrySucceeded(
                name=label, strategy=_STRATEGY, at=self._clock.monotonic(), attempts=attempts
            )
        )

    # -- hooks (user code: guarded) ------------------------------------------------------

    def _should_retry(self, exc: Exception) -> bool:
        return self._hook("on", self._retryable, exc, False)

    def _retry_value(self, value: Any) -> bool:
        judge = cast("Callable[[Any], bool]", self.config.retry_if_result)
        return bool(self._hook("retry_if_result", judge, value, False))

    def _hint(self, source: Any) -> float | None:
        raw = self._hook("retry_after_from", self.config.retry_after_from, source, None)
        return normalize_hint(raw)


_NO_VALUE: Any = object()  # a loop block that set no result: nothing to judge


class _Run:
    """One call's retries: the core's decisions, plus hooks, budget, events and notes.

    Every calling form (decorator, call/acall, the loops) tells :meth:`settle` how each
    attempt ended and waits as it answers; only how they wait differs.
    """

    __slots__ = ("_core", "_label", "_retry", "_start", "clock")

    def __init__(self, retry: Retry, label: str, start: float | None) -> None:
        self._retry = retry
        self._label = label
        self._start = start
        """When the call began (given exactly when a timeout counts from it)."""
        self._core: RetryCore | None = None
        """Made at the first failure: a success judged at once allocates no core."""
        self.clock = retry._clock

    def settle(self, error: BaseException | None, value: Any) -> float | None:
        """After an attempt that raised ``error`` or (None) returned ``value``: seconds to
        wait before the next attempt, or None when the call is over (it succeeded, or it
        stops with this outcome). ``_NO_VALUE``: a loop block that set no result."""
        if error is None:
            attempts = 1 if self._core is None else self._core.attempts + 1
            if self._retry._accepted(self._label, value, attempts):
                return None
            return self.failed(None, value)
        if not isinstance(error, Exception):  # cancellation, interrupts: never retried
            return None
        return self.failed(error, None)

    def failed(self, error: Exception | None, value: Any) -> float | None:
        """After a failed attempt (``error`` raised, or, when it is None, ``value`` was
        judged worth retrying): seconds to wait before the next attempt, or None to stop.

        An exception ``on=`` does not match stops at once, untouched. Giving up emits
        :class:`RetryGaveUp` and notes the reason on ``error``.
        """
        retry = self._retry
        if error is not None and not retry._should_retry(error):
            return None
        hint = retry._hint(value if error is None else error)
        now = self.clock.monotonic()
        core = self._core
        if core is None:
            core = self._core = retry._core(self._start)
        decision = core.after_failure(now, hint, retry._rng)
        if isinstance(decision, str):
            self._give_up(decision, now, error, value, hint)
            return None
        budget = retry.config.budget
        if budget is not None and not budget.try_withdraw():
            if retry._hub._all:
                retry._hub.emit(
                    RetryBudgetExhausted(
                        name=self._label,
                        strategy=_STRATEGY,
                        at=now,
                        attempt=core.attempts,
                        budget=budget.name,
                        exception=error,
                        value=value,
                    )
                )
            self._give_up("budget", now, error, value, hint)
            return None
        if retry._hub._all:
            retry._hub.emit(
                RetryAttempt(
                    name=self._label,
                    strategy=_STRATEGY,
                    at=now,
                    attempt=core.attempts,
                    delay=decision,
                    exception=error,
                    value=value,
                    retry_after=hint,
                )
            )
        return decision

    def _give_up(
        self,
        reason: GiveUpReason,
        now: float,
        error: Exception | None,
        value: Any,
        hint: float | None,
    ) -> None:
        core = cast("RetryCore", self._core)  # made by the failure that gives up
        elapsed = now - cast("float", core.first_failure)
        if error is not None:
            error.add_note(self._note(reason, elapsed, hint))
        hub = self._retry._hub
        if hub._all:
            hub.emit(
                RetryGaveUp(
                    name=self._label,
                    strategy=_STRATEGY,
                    at=now,
                    attempts=core.attempts,
                    elapsed=elapsed,
                    reason=reason,
                    exception=error,
                    value=value,
                )
            )

    def _note(self, reason: GiveUpReason, elapsed: float, hint: float | None) -> str:
        config = self._retry.config
        attempts = cast("RetryCore", self._core).attempts
        if reason == "max_attempts":
            why = f"max_attempts={attempts} reached"
        elif reason == "deadline":
            why = f"the {config.timeout:g} s timeout has passed"
        elif reason == "budget":
            why = f"retry budget {cast('RetryBudget', config.budget).name!r} is exhausted"
        else:
            limit = (
                f"more than max_delay={config.max_delay:g} s"
                if hint is not None and hint > config.max_delay
                else f"past the {config.timeout:g} s timeout"
            )
            why = f"the server asked to wait {hint:.3g} s, {limit}"
        plural = "attempt" if attempts == 1 else "attempts"
        return (
            f"stalwart: retry {self._label!r} gave up after {attempts} {plural} "
            f"over {elapsed:.3g} s: {why}"
        )


def _drive_sync(
    run: _Run,
    fn: Callable[..., R],
    args: Any,
    kwargs: Any,
    error: Exception | None,
    value: R | None,
) -> R:
    """Attempt again while ``run`` says so, after a failed first attempt."""
    delay = run.failed(error, value)
    while delay is not None:
        _testmode.sleep(run.clock, delay)
        try:
            value, error = fn(*args, **kwargs), None
        except Exception as exc:
            value, error = None, exc
        delay = run.settle(error, value)
    if error is None:
        return cast("R", value)
    raise error


async def _drive_async(
    run: _Run,
    fn: Callable[..., Awaitable[R]],
    args: Any,
    kwargs: Any,
    error: Exception | None,
    value: R | None,
) -> R:
    # _drive_sync, awaiting the sleep and the call.
    delay = run.failed(error, value)
    while delay is not None:
        await _testmode.asleep(run.clock, delay)
        try:
            value, error = await fn(*args, **kwargs), None
        except Exception as exc:
            value, error = None, exc
        delay = run.settle(error, value)
    if error is None:
        return cast("R", value)
    raise error


# -- loop form -----------------------------------------------------------------------

_FIRST, _RUNNING, _WAITING, _DONE = range(4)


class Attempt:
    """One try of a ``for attempt in Retry(...)`` loop; run it as ``with attempt:``.

    An exception from the block that will be retried is swallowed (the loop goes on after
    the wait); after the last attempt it propagates, with a note. With
    ``retry_if_result``, hand the block's value to :meth:`set_result` to have it judged.
    """

    __slots__ = ("_has_value", "_loop", "_value", "number")

    def __init__(self, loop: _Attempts, number: int) -> None:
        self._loop = loop
        self.number = number
        """1 for the first attempt."""
        self._value: Any = None
        self._has_value = False

    def set_result(self, value: Any) -> None:
        """The block's value, for ``retry_if_result`` to judge when the block ends."""
        self._value = value
        self._has_value = True

    def __enter__(self) -> Attempt:
        return self

    def __exit__(self, et: type[BaseException] | None, exc: BaseException | None, tb: Any) -> bool:
        return self._loop._settle(self, exc)

    def __repr__(self) -> str:
        return f"Attempt({self.number})"


class _Attempts:
    """The loop's state: which attempt runs, and the wait before the next one."""

    __slots__ = ("_current", "_delay", "_run", "_state")

    def __init__(self, retry: Retry, label: str) -> None:
        self._run = _Run(retry, label, None if retry._begin is None else retry._begin())
        self._state = _FIRST
        self._current: Attempt | None = None
        self._delay = 0.0

    def __iter__(self) -> _Attempts:
        return self

    def __aiter__(self) -> _Attempts:
        return self

    def __next__(self) -> Attempt:
        attempt = self._advance()
        if attempt is None:
            raise StopIteration
        if attempt.number > 1:
            _testmode.sleep(self._run.clock, self._delay)
        return attempt

    async def __anext__(self) -> Attempt:
        attempt = self._advance()
        if attempt is None:
            raise StopAsyncIteration
        if attempt.number > 1:
            await _testmode.asleep(self._run.clock, self._delay)
        return attempt

    def _advance(self) -> Attempt | None:
        """The next attempt, or None when the loop is over."""
        state = self._state
        if state == _DONE:
            return None
        if state == _RUNNING:
            raise RuntimeError(
                "retry loop: each attempt must run as `with attempt:` (the previous one did not)"
            )
        number = 1 if self._current is None else self._current.number + 1
        self._current = Attempt(self, number)
        self._state = _RUNNING
        return self._current

    def _settle(self, attempt: Attempt, exc: BaseException | None) -> bool:
        """The block of ``attempt`` ended; True swallows ``exc`` (it will be retried)."""
        if attempt is not self._current or self._state != _RUNNING:
            raise RuntimeError(f"retry loop: {attempt!r} was already used")
        value = attempt._value if attempt._has_value else _NO_VALUE
        delay = self._run.settle(exc, value)
        if delay is None:
            self._state = _DONE
            return False
        self._state, self._delay = _WAITING, delay
        return True


# -- factory and helpers ---------------------------------------------------------------


def retry(
    *,
    on: ExceptionFilter | None = None,
    name: str | None = None,
    clock: Clock | None = None,
    rng: random.Random | None = None,
    **options: Unpack[RetryOptions],
) -> Retry:
    """A :class:`Retry`, for use as a decorator: ``@retry(on=ConnectionError)``.

    ``on=`` is required. Defaults: 3 attempts, waits from 0.5 s doubling up to 10 s with
    full jitter, no total timeout. See :class:`RetryConfig` for every option.
    """
    return Retry(on=on, name=name, clock=clock, rng=rng, **options)


def _beginning(clock: Clock, config: RetryConfig) -> Callable[[], float | None] | None:
    """What a call does before its first attempt: deposit into the budget, and note its
    start when a timeout counts from it (returned). None: nothing at all."""
    budget, timed = config.budget, config.timeout is not None
    if budget is None:
        return clock.monotonic if timed else None
    if not timed:
        return budget.deposit  # one frame less on every call
    deposit, now = budget.deposit, clock.monotonic

    def begin() -> float:
        deposit()
        return now()

    return begin
