"""Timeout: a deadline for a call, and the budget it leaves for the calls made inside it.

Shape (the same for every stalwart strategy):

* :class:`TimeoutConfig`, a frozen, validated config;
* the core, :func:`plan_deadline`: given the time, the timeout and the deadline already
  active around the call, it says which deadline applies and whose it is. It never reads a
  clock, sleeps or calls user code;
* :class:`Timeout`, the runtime object: a decorator for ``def`` and ``async def`` plus
  ``call`` / ``acall``;
* :class:`TimedOut`, its event.

The active deadline travels in a context variable, so every call made inside a timed call
(in the same thread, in a task it starts, or in the worker thread of a sync timeout) sees
it through :func:`remaining`, and nested timeouts never outlive an outer one.

This module also holds what Fallback and Bulkhead share with Timeout: the base classes
:class:`Wrapper` (decorator, ``call``, ``acall``) and :class:`Observable` (listeners), and
the checks :func:`strategy_name`, :func:`strategy_clock`, :func:`check_decoratable` and
:func:`check_call_form`. (Their natural homes are ``_drivers``, ``_events`` and
``_validate``, which other modules own.)
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, ParamSpec, TypeVar

from ._clock import Clock
from ._drivers import (
    deadline_exceeded,
    imposed_by,
    is_ours,
    run_with_deadline,
    unwatch,
    watch,
)
from ._errors import ConfigError, DeadlineExceeded
from ._events import Event, EventHub
from ._strategy import (
    Wrapper,
    strategy_clock,
    strategy_name,
)
from ._testmode import cap_timeout
from ._validate import positive

__all__ = (
    "DEFAULT_THREAD",
    "Deadline",
    "TimedOut",
    "Timeout",
    "TimeoutConfig",
    "plan_deadline",
    "remaining",
)

P = ParamSpec("P")
R = TypeVar("R")
E = TypeVar("E", bound=Event)

DEFAULT_THREAD = True
"""Sync functions run in a worker thread the caller stops waiting for at the deadline."""

_STRATEGY = "timeout"


# -- config, event, core ------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class TimeoutConfig:
    """Validated settings of a timeout. See docs/timeout.md."""

    seconds: float
    """The call's time budget (shortened by any outer deadline)."""
    thread: bool = DEFAULT_THREAD
    """Sync functions only: True runs them in a worker thread and stops waiting at the
    deadline (the thread runs on); False runs them in the caller's thread and only
    publishes the deadline through ``remaining()`` for the function's own client timeouts."""

    def __post_init__(self) -> None:
        positive("seconds", self.seconds)
        if not isinstance(self.thread, bool):
            raise ConfigError("thread", f"must be True or False, got {self.thread!r}")


@dataclass(frozen=True, slots=True, kw_only=True)
class TimedOut(Event):
    """The timeout's deadline ran out before the call returned (DeadlineExceeded raised).

    ``timeout`` is the deadline's length in seconds, ``elapsed`` how long the call had run
    by the timeout's clock. Emitted by the timeout whose deadline it was, also when it ran
    out inside a nested call that it bounded."""

    timeout: float
    elapsed: float


class Deadline:
    """One timed call's deadline. ``owner`` is the deadline that binds it: itself, or the
    outer one when that leaves less time. A DeadlineExceeded is raised as the owner's
    (``_drivers.imposed_by(exc, owner)``), so the timeout that set it reports it."""

    __slots__ = ("clock", "expires_at", "name", "owner", "start", "timeout")

    def __init__(
        self,
        name: str,
        timeout: float,
        start: float,
        expires_at: float,
        clock: Clock,
        owner: Deadline | None = None,
    ) -> None:
        self.name = name
        self.timeout = timeout
        self.start = start
        self.expires_at = expires_at
        self.clock = clock
        self.owner: Deadline = self if owner is None else owner

    def left(self) -> float:
        """Seconds until it expires, by its clock (never negative)."""
        return max(0.0, self.expires_at - self.clock.monotonic())

    def exceeded(self, detail: str = "") -> DeadlineExceeded:
        return deadline_exceeded(self.owner, self.owner.timeout, detail)


def plan_deadline(
    name: str, timeout: float, now: float, clock: Clock, outer: Deadline | None, outer_left: float
) -> Deadline:
    """The deadline of a call starting at ``now``: its own ``timeout``, unless the deadline
    already active around it (``outer``, with ``outer_left`` seconds left) ends sooner."""
    if outer is not None and outer_left < timeout:
        return Deadline(name, timeout, now, now + outer_left, clock, outer.owner)
    return Deadline(name, timeout, now, now + timeout, clock)


_CURRENT: contextvars.ContextVar[Deadline | None] = contextvars.ContextVar(
    "stalwart_deadline", default=None
)


def remaining() -> float | None:
    """Seconds left before the innermost active deadline; None outside any timed call.

    Pass it to your client's own timeout (``httpx.get(url, timeout=remaining())``) so the
    work itself stops in time. Never negative: 0.0 once the deadline has passed."""
    deadline = _CURRENT.get()
    return None if deadline is None else deadline.left()


# -- runtime ------------------------------------------------------------------------


class Timeout(Wrapper):
    """Bounds how long a call may take, and tells the calls inside it how long they have.

    ``async def``: the work is cancelled at the deadline and ``DeadlineExceeded`` raised.
    ``def``: by default the function runs in a worker thread and the caller stops waiting
    at the deadline; Python cannot stop the thread, which runs on until the function
    returns. ``thread=False`` runs it in the caller's thread instead, and the function is
    expected to pass :func:`remaining` to its own client's timeout. Either way a result
    that arrives after the deadline (by the timeout's clock) is not returned:
    ``DeadlineExceeded`` is raised instead.
    """

    _kind = _STRATEGY

    def __init__(
        self,
        seconds: float,
        *,
        thread: bool = DEFAULT_THREAD,
        name: str | None = None,
        clock: Clock | None = None,
    ) -> None:
        self.config = TimeoutConfig(seconds=seconds, thread=thread)
        self.name = strategy_name(name, _STRATEGY)
        self._clock = strategy_clock(clock)
        self._hub = EventHub()

    @property
    def seconds(self) -> float:
        return self.config.seconds

    def describe(self) -> dict[str, Any]:
        """The timeout's kind, name and every setting."""
        return {
            "strategy": _STRATEGY,
            "name": self.name,
            "seconds": self.config.seconds,
            "thread": self.config.thread,
        }

    def __repr__(self) -> str:
        return f"Timeout({self.config.seconds!r}, name={self.name!r})"

    # -- drivers: they differ only in how the call is waited for ----------------------

    def _sync_wrapper(self, fn: Callable[P, R]) -> Callable[P, R]:
        in_thread = self.config.thread

        @functools.wraps(fn)
        def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
            deadline, token = self._begin()
            try:
                if in_thread:
                    budget = deadline.expires_at - deadline.start
                    result = run_with_deadline(deadline.owner, fn, args, kwargs, budget)
                else:
                    result = fn(*args, **kwargs)
                return self._in_time(deadline, result)
            except BaseException as exc:
                self._report(exc, deadline)
                raise
            finally:
                _CURRENT.reset(token)

        return wrapper

    def _async_wrapper(self, fn: Callable[P, Awaitable[R]]) -> Callable[P, Awaitable[R]]:
        @functools.wraps(fn)
        async def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
            deadline, token = self._begin()
            try:
                # _drivers.await_within, inlined: one coroutine frame less per call.
                watched = watch(deadline.expires_at - deadline.start)
                try:
                    result = await fn(*args, **kwargs)
                except asyncio.CancelledError as exc:
                    if is_ours(watched):
                        raise deadline.exceeded() from exc
                    raise
                finally:
                    unwatch(watched)
                return self._in_time(deadline, result)
            except BaseException as exc:
                self._report(exc, deadline)
                raise
            finally:
                _CURRENT.reset(token)

        return wrapper

    def _begin(self) -> tuple[Deadline, contextvars.Token[Deadline | None]]:
        """Make a call's deadline the active one (the wrappers reset it when the call ends).

        Explicit rather than a @contextmanager: a generator-based context costs ~0.8 µs a
        call, more than the rest of the timeout's bookkeeping together."""
        clock = self._clock
        now = clock.monotonic()
        outer = _CURRENT.get()
        outer_left = 0.0 if outer is None else outer.left()
        timeout = cap_timeout(self.config.seconds)
        assert timeout is not None
        deadline = plan_deadline(self.name, timeout, now, clock, outer, outer_left)
        if outer is not None and outer_left <= 0.0:
            exc = deadline.exceeded("no time was left when the call would have started")
            self._report(exc, deadline)
            raise exc
        return deadline, _CURRENT.set(deadline)

    def _report(self, exc: BaseException, deadline: Deadline) -> None:
        """Emit TimedOut when ``exc`` is the deadline this timeout imposed."""
        if imposed_by(exc, deadline) and self._hub._all:
            elapsed = deadline.clock.monotonic() - deadline.start
            self._hub.emit(
                TimedOut(
                    name=self.name,
                    strategy=_STRATEGY,
                    at=deadline.start + elapsed,
                    timeout=deadline.timeout,
                    elapsed=elapsed,
                )
            )

    @staticmethod
    def _in_time(deadline: Deadline, result: R) -> R:
        """The result, unless it came after the deadline by the timeout's clock (a sync call
        that could not be interrupted, or time moved on a FakeClock)."""
        now = deadline.clock.monotonic()
        if now >= deadline.expires_at:
            elapsed = now - deadline.start
            raise deadline.exceeded(f"the call returned after {elapsed:.3g} s, too late")
        return result
