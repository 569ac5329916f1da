"""Timeout: a deadline for a call, and the budget it leaves for the calls made inside it.

Shape (the same for every stalwart strategy):

* :class:`TimeoutConfig`, a frozen, validated config;
* :class:`Deadline`, one timed call's deadline, and the rule that makes it
  (:meth:`Timeout._begin`): the call's own timeout, unless the deadline already active
  around it ends sooner, in which case that one binds it;
* :class:`Timeout`, the runtime object: a decorator for ``def`` and ``async def`` plus
  ``call`` / ``acall``;
* :class:`TimedOut`, its event.

The active deadline travels in a context variable, so every call made inside a timed call
(in the same thread, in a task it starts, or in the worker thread of a sync timeout) sees
it through :func:`remaining`, and nested timeouts never outlive an outer one.

An async timed call is watched by its loop's timer wheel (``_wheel.py``), not by
``asyncio.timeout``; the circuit breaker's ``call_timeout`` is a ``Timeout`` too, so this
is the one async deadline in stalwart. The costs that shaped it are in bench/RESULTS.md.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, ParamSpec, TypeVar

from . import _testmode, _wheel
from ._clock import Clock
from ._drivers import Named, deadline_exceeded, imposed_by, run_with_deadline
from ._errors import ConfigError, DeadlineExceeded
from ._events import Event, EventHub
from ._strategy import (
    Wrapper,
    strategy_clock,
    strategy_name,
)
from ._testmode import cap_timeout
from ._validate import positive
from ._wheel import SLOTS_PER_SECOND as PER_SECOND
from ._wheel import current_task, get_ident, tokens, wheel_for

__all__ = (
    "DEFAULT_GRACE",
    "DEFAULT_THREAD",
    "Deadline",
    "TimedOut",
    "Timeout",
    "TimeoutConfig",
    "remaining",
)

P = ParamSpec("P")
R = TypeVar("R")
E = TypeVar("E", bound=Event)

DEFAULT_THREAD = True
"""Sync functions run in a worker thread the caller stops waiting for at the deadline."""
DEFAULT_GRACE: float | None = None
"""Async calls are waited for until their cancellation has unwound."""

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
    grace: float | None = DEFAULT_GRACE
    """``async def`` only: how long the caller waits, after the deadline, for the cancelled
    work to unwind. None waits until it has; a number walks away after that many seconds
    and leaves the work to finish its clean-up in the background (Polly's "pessimistic"
    timeout), for clients whose cancellation is slow (psycopg waits up to 10 s)."""

    def __post_init__(self) -> None:
        positive("seconds", self.seconds)
        if not isinstance(self.thread, bool):
            raise ConfigError("thread", f"must be True or False, got {self.thread!r}")
        if self.grace is not None:
            positive("grace", self.grace, allow_zero=True)


@dataclass(frozen=True, slots=True, kw_only=True)
class TimedOut(Event):
    """The timeout's deadline ran out before the call returned (DeadlineExceeded raised).

    ``timeout`` is the deadline's length in seconds, ``elapsed`` how long the call had run
    by the timeout's clock. Emitted by the timeout whose deadline it was, also when it ran
    out inside a nested call that it bounded."""

    timeout: float
    elapsed: float


class Deadline:
    """One timed call's deadline. ``owner`` is the deadline that binds it: the outer one
    when that leaves less time, else None (it binds itself: see :meth:`binding`). A
    DeadlineExceeded is raised as the binding deadline's (``_drivers.imposed_by``), so the
    timeout that set it reports it.

    Made by :meth:`Timeout._begin` without a Python ``__init__``: one is made per timed
    call, and a constructor call cost twice as much as setting the slots directly."""

    __slots__ = ("clock", "expires_at", "imposer", "name", "owner", "start", "timeout")
    clock: Clock
    expires_at: float
    imposer: Named | None
    """Who raises its DeadlineExceeded, when not the deadline itself (a breaker's
    ``call_timeout``: the breaker)."""
    name: str
    owner: Deadline | None
    start: float
    timeout: float

    def binding(self) -> Deadline:
        """The deadline whose expiry ends this call: itself or an outer one."""
        return self if self.owner is None else self.owner

    def left(self) -> float:
        """Seconds until it expires, by its clock (never negative)."""
        return max(0.0, self.expires_at - self.clock.monotonic())

    def source(self) -> Named:
        """Whose DeadlineExceeded it is when it ends the call (see ``imposed_by``)."""
        binding = self.binding()
        return binding if binding.imposer is None else binding.imposer

    def exceeded(self, detail: str = "") -> DeadlineExceeded:
        return deadline_exceeded(self.source(), self.binding().timeout, detail)


_new_deadline = object.__new__


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
        grace: float | None = DEFAULT_GRACE,
        name: str | None = None,
        clock: Clock | None = None,
    ) -> None:
        self.config = TimeoutConfig(seconds=seconds, thread=thread, grace=grace)
        self.name = strategy_name(name, _STRATEGY)
        self._clock = strategy_clock(clock)
        self._hub = EventHub()
        # Set by a circuit breaker for its call_timeout: the deadlines raise as the
        # breaker, and a late result is returned (the breaker counts it as a failure).
        self._imposer: Named | None = None
        self._returns_late = False

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
            "grace": self.config.grace,
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
                    result = run_with_deadline(deadline.source(), fn, args, kwargs, budget)
                else:
                    result = fn(*args, **kwargs)
                if deadline.clock.monotonic() >= deadline.expires_at:
                    raise self._late(deadline)
                return result
            except BaseException as exc:
                self._report(exc, deadline)
                raise
            finally:
                _CURRENT.reset(token)

        return wrapper

    def _async_wrapper(self, fn: Callable[P, Awaitable[R]]) -> Callable[P, Awaitable[R]]:
        if self.config.grace is not None:
            return functools.wraps(fn)(self._walked_away_from(fn, self.config.grace))
        return functools.wraps(fn)(self._timed(fn))

    def _walked_away_from(
        self, fn: Callable[P, Awaitable[R]], grace: float
    ) -> Callable[P, Awaitable[R]]:
        """``fn`` run in a task of its own and awaited through a shield, so that at the
        deadline the caller stops waiting ``grace`` seconds after cancelling it, however
        long the work takes to unwind. The deadline itself is ``_timed``'s; the task copies
        the caller's context, so calls inside it see the deadline."""

        async def detached(*args: P.args, **kwargs: P.kwargs) -> R:
            work = asyncio.ensure_future(fn(*args, **kwargs))
            try:
                return await asyncio.shield(work)
            except asyncio.CancelledError:  # the deadline, or the caller cancelled
                work.cancel()
                if grace > 0.0:
                    await asyncio.wait((work,), timeout=grace)
                _let_go(work)
                raise

        return self._timed(detached)

    def _timed(self, fn: Callable[P, Awaitable[R]]) -> Callable[P, Awaitable[R]]:
        """``fn`` awaited within the deadline: cancelled when it passes, and
        DeadlineExceeded raised from the cancellation (the call's own TimeoutError passes
        through). A bare closure, so a breaker's call_timeout can make one per call."""

        async def timed(*args: P.args, **kwargs: P.kwargs) -> R:
            deadline, token = self._begin()
            try:
                # Registered with the loop's timer wheel, inline: see _wheel.py for why
                # each step is done the way it is.
                loop_ref, wheel = _wheel.last
                loop = loop_ref()
                if loop is None or loop._thread_id != get_ident():  # type: ignore[attr-defined]
                    loop = asyncio.get_running_loop()
                    wheel = wheel_for(loop)
                task = current_task(loop)
                if task is None:
                    raise RuntimeError("stalwart's async deadlines need an asyncio task")
                # The slot ending after the deadline (int() + 1: never early, at most
                # one slot late), opened with its loop timer if it is new.
                at = int((wheel.time() + deadline.expires_at - deadline.start) * PER_SECOND) + 1
                slot = wheel.slots.get(at) or wheel.open(loop, at)
                key = next(tokens)
                slot.tasks[key] = task
                cancelling = task.cancelling()  # cancellations already asked for are not ours
                settled = False
                try:
                    result = await fn(*args, **kwargs)
                except asyncio.CancelledError as exc:
                    if slot.fired:
                        settled = True
                        if task.uncancel() <= cancelling:  # the cancellation is ours alone
                            raise deadline.exceeded() from exc
                    raise
                finally:
                    del slot.tasks[key]
                    if slot.fired and not settled:
                        task.uncancel()  # the call swallowed our cancellation: take it back
                if deadline.clock.monotonic() >= deadline.expires_at and not self._returns_late:
                    raise self._late(deadline)
                return result
            except BaseException as exc:
                self._report(exc, deadline)
                raise
            finally:
                _CURRENT.reset(token)

        return timed

    def _begin(self) -> tuple[Deadline, contextvars.Token[Deadline | None]]:
        """Make a call's deadline and the active one (the wrappers reset it when the call
        ends): this timeout's own, unless the deadline already active around the call
        leaves less time; then that one binds the call (``owner``).

        One plain method rather than a @contextmanager (~0.8 µs a call) or a constructor
        plus a planning function: it runs on every timed call."""
        clock = self._clock
        now = clock.monotonic()
        timeout = self.config.seconds
        if _testmode._active is not None:  # an attribute read, not a call, on the hot path
            timeout = cap_timeout(timeout) or timeout
        deadline: Deadline = _new_deadline(Deadline)
        deadline.name = self.name
        deadline.timeout = timeout
        deadline.start = now
        deadline.clock = clock
        deadline.owner = None
        deadline.imposer = self._imposer
        deadline.expires_at = now + timeout
        outer = _CURRENT.get()
        if outer is not None:
            left = outer.expires_at - now if outer.clock is clock else outer.left()
            if left < timeout:
                deadline.expires_at = now + left
                deadline.owner = outer.binding()
                if left <= 0.0:
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
    def _late(deadline: Deadline) -> DeadlineExceeded:
        """A result came after the deadline by the timeout's clock (a sync call that could
        not be interrupted, or time moved on a FakeClock): it is not returned."""
        elapsed = deadline.clock.monotonic() - deadline.start
        return deadline.exceeded(f"the call returned after {elapsed:.3g} s, too late")


_UNWINDING: set[asyncio.Future[Any]] = set()
"""Cancelled work the caller walked away from (``grace``), kept until it has unwound: the
loop holds tasks only weakly."""


def _let_go(work: asyncio.Future[Any]) -> None:
    """Nobody waits for ``work`` any more: keep it until it has unwound."""
    if work.done():
        _retrieved(work)
        return
    _UNWINDING.add(work)
    work.add_done_callback(_retrieved)


def _retrieved(work: asyncio.Future[Any]) -> None:
    """Drop it, and read its outcome, which no one waits for any more (asyncio would log
    "exception was never retrieved")."""
    _UNWINDING.discard(work)
    if not work.cancelled():
        work.exception()
