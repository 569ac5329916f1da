"""Hedging: when a call is slow, start a copy of it and keep whichever succeeds first.

Shape: :class:`HedgeConfig` (frozen, validated), :class:`HedgeCore` (which copies to start
and when the call has failed for good, told only what happened: never reads a clock,
sleeps or awaits), and :class:`Hedge`, the async driver that runs the copies as tasks.

Hedging sends the same request more than once (a copy starts while the first may still be
running, and a cancelled loser may already have taken effect), so a Hedge refuses to exist
unless the operation is declared idempotent.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Literal, ParamSpec, TypeAlias, TypeVar, cast

from . import _testmode
from ._clock import Clock
from ._drivers import is_async_callable
from ._errors import ConfigError
from ._events import Event, EventHub
from ._strategy import Observable, strategy_clock, strategy_name
from ._validate import positive, whole

__all__ = (
    "DEFAULT_MAX_HEDGED",
    "Hedge",
    "HedgeConfig",
    "HedgeCore",
    "HedgeStarted",
    "HedgeWon",
    "Trigger",
)

P = ParamSpec("P")
R = TypeVar("R")
E = TypeVar("E", bound=Event)
EventT = TypeVar("EventT", "HedgeStarted", "HedgeWon")

DEFAULT_MAX_HEDGED = 1
"""Extra copies at most: one hedge doubles the load of a slow call, never more."""

_STRATEGY = "hedge"

Trigger: TypeAlias = Literal["primary", "delay", "failure"]
"""Why a copy started: the call itself, ``delay`` elapsed, or an earlier copy failed."""


@dataclass(frozen=True, slots=True, kw_only=True)
class HedgeConfig:
    """Validated settings of a hedge. See docs/hedge.md."""

    delay: float
    """Seconds without a result before the next copy starts (0: all copies at once)."""
    max_hedged: int = DEFAULT_MAX_HEDGED
    """Extra copies at most, besides the first call."""
    idempotent: bool = False
    """Must be True: you declare that running the operation twice is safe."""

    def __post_init__(self) -> None:
        positive("delay", self.delay, allow_zero=True)
        whole("max_hedged", self.max_hedged)
        if self.idempotent is not True:
            raise ConfigError(
                "idempotent",
                "hedging sends the same request more than once: a copy starts while the "
                "first may still be running, and a cancelled loser may already have taken "
                "effect. Pass idempotent=True only for operations that are safe to repeat "
                f"(reads, PUTs of the same body, requests with an idempotency key); "
                f"got {self.idempotent!r}",
            )


class HedgeCore:
    """One hedged call's bookkeeping: which copies to start now, and whether it is lost.

    It starts with the first copy due. ``delay_elapsed`` and ``failed`` make the next one
    due (if any are left); ``lost`` is True once every copy has started and failed.
    """

    __slots__ = ("attempts", "due", "running", "started")

    def __init__(self, attempts: int, *, delay: float) -> None:
        self.attempts = attempts
        """Copies allowed in all, the first call included."""
        self.started = 0
        self.running = 0
        self.due: deque[Trigger] = deque(["primary"])
        if delay == 0:
            self.due.extend(["delay"] * (attempts - 1))

    def next_start(self) -> Trigger | None:
        """Why the next copy should start now (and count it started), or None."""
        if not self.due or self.started >= self.attempts:
            return None
        self.started += 1
        self.running += 1
        return self.due.popleft()

    @property
    def waiting_for_delay(self) -> bool:
        """True when the next copy waits for the delay to elapse."""
        return not self.due and self.started < self.attempts

    def delay_elapsed(self) -> None:
        if self.waiting_for_delay:
            self.due.append("delay")

    def failed(self) -> None:
        """A copy failed: the next one (if any is left) starts at once."""
        self.running -= 1
        if self.started + len(self.due) < self.attempts:
            self.due.append("failure")

    @property
    def lost(self) -> bool:
        return self.running == 0 and self.started >= self.attempts


@dataclass(frozen=True, slots=True, kw_only=True)
class HedgeStarted(Event):
    """Copy number ``attempt`` (2 for the first hedge) started ``after`` seconds into the
    call, because of ``trigger`` ("delay" or "failure")."""

    attempt: int
    after: float
    trigger: Trigger


@dataclass(frozen=True, slots=True, kw_only=True)
class HedgeWon(Event):
    """Copy number ``attempt`` (1: the first call) succeeded ``after`` seconds into a call
    in which ``started`` copies ran; the others were cancelled. Only for hedged calls."""

    attempt: int
    after: float
    started: int


class Hedge(Observable):
    """Starts another copy of a slow (or failed) async call; the first success wins.

    Losers are cancelled and awaited before the result is returned, so nothing outlives the
    call. If every copy fails, the exception of the copy that failed last is raised as is.
    """

    def __init__(
        self,
        *,
        delay: float,
        max_hedged: int = DEFAULT_MAX_HEDGED,
        idempotent: bool = False,
        name: str | None = None,
        clock: Clock | None = None,
    ) -> None:
        self.config = HedgeConfig(delay=delay, max_hedged=max_hedged, idempotent=idempotent)
        self.name = strategy_name(name, _STRATEGY)
        self._clock: Clock = strategy_clock(clock)
        self._hub = EventHub()
        self._hub.watch(self._listeners_changed)
        self._listeners_changed()

    def __call__(self, fn: Callable[P, R]) -> Callable[P, R]:
        """Decorate an ``async def``; the wrapper keeps its signature."""
        if not is_async_callable(fn):
            raise ConfigError(
                "fn",
                f"{fn!r} is not async: a hedge runs copies side by side as asyncio tasks, "
                "which needs an `async def` (a sync call cannot be cancelled once started)",
            )
        if inspect.isasyncgenfunction(fn):
            raise ConfigError("fn", f"{fn!r} is an async generator function: hedge its calls")
        return cast("Callable[P, R]", self._wrap(fn))

    def _wrap(self, fn: Callable[P, Awaitable[R]]) -> Callable[P, Awaitable[R]]:
        @functools.wraps(fn)
        async def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
            return await self._run(fn, args, kwargs)

        return wrapper

    async def acall(self, fn: Callable[P, Awaitable[R]], /, *args: P.args, **kwargs: P.kwargs) -> R:
        """Await ``fn(*args, **kwargs)`` hedged; ``fn`` must be async."""
        if not is_async_callable(fn):
            raise TypeError(f"{fn!r} is not async: a hedge can only run async calls")
        return await self._run(fn, args, kwargs)

    def describe(self) -> dict[str, Any]:
        """The hedge's kind, name and every setting."""
        return {
            "strategy": _STRATEGY,
            "name": self.name,
            "delay": self.config.delay,
            "max_hedged": self.config.max_hedged,
            "idempotent": self.config.idempotent,
        }

    def __repr__(self) -> str:
        return (
            f"Hedge(delay={self.config.delay!r}, max_hedged={self.config.max_hedged}, "
            f"name={self.name!r})"
        )

    # -- the driver ------------------------------------------------------------------

    async def _run(
        self, fn: Callable[..., Awaitable[R]], args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> R:
        clock, hub = self._clock, self._hub
        core = HedgeCore(
            _testmode.cap_attempts(1 + self.config.max_hedged), delay=self.config.delay
        )
        start = clock.monotonic()
        copies: dict[asyncio.Task[R], int] = {}
        # Copies in the order they ended: several can end between two looks, and the
        # first success (or the last failure) is the one that came first (or last).
        ended: deque[asyncio.Task[R]] = deque()
        timer: asyncio.Task[None] | None = None
        stale: list[asyncio.Task[None]] = []  # timers cancelled early, awaited at the end
        last_error: BaseException | None = None

        async def attempt() -> R:
            return await fn(*args, **kwargs)

        try:
            while True:
                while (trigger := core.next_start()) is not None:
                    task = asyncio.create_task(attempt())
                    task.add_done_callback(ended.append)
                    copies[task] = core.started
                    if timer is not None:
                        # The delay counts from the latest start.
                        timer.cancel()
                        stale.append(timer)
                        timer = None
                    if trigger != "primary" and self._listened:
                        hub.emit(
                            self._event(HedgeStarted, start, attempt=core.started, trigger=trigger)
                        )
                if timer is None and core.waiting_for_delay:
                    timer = asyncio.create_task(_testmode.asleep(clock, self.config.delay))
                waiting: set[asyncio.Future[Any]] = set(copies)
                if timer is not None:
                    waiting.add(timer)
                await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
                if timer is not None and timer.done():
                    timer = None
                    core.delay_elapsed()
                while ended:
                    task = ended.popleft()
                    number = copies.pop(task)
                    error = asyncio.CancelledError() if task.cancelled() else task.exception()
                    if error is None:
                        if core.started > 1 and self._listened:
                            hub.emit(
                                self._event(HedgeWon, start, attempt=number, started=core.started)
                            )
                        return task.result()
                    if not isinstance(error, Exception | asyncio.CancelledError):
                        raise error  # KeyboardInterrupt, SystemExit: no more copies
                    last_error = error
                    core.failed()
                if core.lost:
                    assert last_error is not None
                    raise last_error
        finally:
            await _cancel_all([*copies, *stale, *([timer] if timer is not None else [])])

    def _listeners_changed(self) -> None:
        # Called by the hub whenever this hedge's or the global listeners change.
        self._listened = any(s.wants(HedgeStarted) or s.wants(HedgeWon) for s in self._hub._all)

    def _event(self, kind: type[EventT], start: float, **fields: Any) -> EventT:
        now = self._clock.monotonic()
        return kind(name=self.name, strategy=_STRATEGY, at=now, after=now - start, **fields)


async def _cancel_all(tasks: list[asyncio.Task[Any]]) -> None:
    """Cancel the copies still running and wait until they have finished (their
    ``finally`` blocks included), so none outlives the call or warns at shutdown."""
    pending = [t for t in tasks if not t.done()]
    for task in pending:
        task.cancel()
    if pending:
        await asyncio.wait(pending)
    for task in tasks:
        if task.done() and not task.cancelled():
            task.exception()  # retrieved: a loser's failure is not worth a loop warning
