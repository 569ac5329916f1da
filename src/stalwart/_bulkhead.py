"""Bulkhead: at most N calls inside at once, a bounded FIFO queue for the rest.

Shape (the same for every stalwart strategy):

* :class:`BulkheadConfig`, a frozen, validated config;
* :class:`BulkheadCore`, the counts and the FIFO of waiters. It is told "a call wants in",
  "a call left", "a waiter gave up" and answers who holds which slot. It never reads a
  clock, locks, sleeps, awaits or calls user code;
* :class:`Bulkhead`, which pairs the core with a ``threading.Lock`` held for bookkeeping
  only, and waits: a thread on a ``threading.Event``, an asyncio task on a future of its
  own loop (woken with ``call_soon_threadsafe``). So one instance serves threads and tasks
  of any number of event loops at the same time;
* its events: :class:`~stalwart.events.CallRejected` (``strategy="bulkhead"``) and
  :class:`BulkheadEntered`.

Hand-off. A slot that comes free while callers wait is given to the first waiter
directly, under the lock (``granted``), before it is woken: a newcomer can never take it
first, and a wake-up cannot be lost. A waiter that gives up (its wait timed out, its task
was cancelled) settles under the same lock: if the slot reached it first, a timed-out
waiter uses it and a cancelled one passes it on, so no slot is ever lost.
"""

from __future__ import annotations

import asyncio
import functools
import threading
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Generic, ParamSpec, Protocol, TypeVar

from ._clock import Clock
from ._errors import BulkheadFullError, ConfigError
from ._events import CallRejected, Event, EventHub
from ._strategy import (
    Wrapper,
    strategy_clock,
    strategy_name,
)
from ._testmode import cap_timeout
from ._validate import optional_positive, whole

__all__ = (
    "DEFAULT_MAX_QUEUE",
    "DEFAULT_MAX_WAIT",
    "Bulkhead",
    "BulkheadConfig",
    "BulkheadCore",
    "BulkheadEntered",
)

P = ParamSpec("P")
R = TypeVar("R")

DEFAULT_MAX_QUEUE = 0
"""Callers that may wait for a slot: none, a full bulkhead refuses at once."""
DEFAULT_MAX_WAIT: float | None = None
"""Seconds a queued caller waits: unbounded in time, the queue itself is bounded."""

_STRATEGY = "bulkhead"


@dataclass(frozen=True, slots=True, kw_only=True)
class BulkheadConfig:
    """Validated settings of a bulkhead. See docs/bulkhead.md."""

    max_concurrent: int
    """Calls inside at once."""
    max_queue: int = DEFAULT_MAX_QUEUE
    """Callers waiting for a slot at once (FIFO); more are refused at once."""
    max_wait: float | None = DEFAULT_MAX_WAIT
    """Seconds a queued caller waits before it is refused (None: until a slot frees)."""

    def __post_init__(self) -> None:
        whole("max_concurrent", self.max_concurrent)
        whole("max_queue", self.max_queue, minimum=0)
        optional_positive("max_wait", self.max_wait)
        if self.max_wait is not None and self.max_queue == 0:
            raise ConfigError("max_wait", "only applies with max_queue > 0; set max_queue")


@dataclass(frozen=True, slots=True, kw_only=True)
class BulkheadEntered(Event):
    """A call got a slot; ``waited`` is how long it queued for it (0.0: at once)."""

    waited: float


class Waiter(Protocol):
    """A queued caller, as the core sees it. Both flags change only under the owner's lock."""

    queued: bool
    """In the queue, waiting."""
    granted: bool
    """A slot was handed to it: it must use the slot or pass it on."""

    def wake(self) -> bool:
        """Tell the waiter its slot is there; False if it can never take it (dead loop)."""
        ...


W = TypeVar("W", bound=Waiter)


class BulkheadCore(Generic[W]):
    """Slot counts and the FIFO of waiters. Not thread-safe: the owner calls it under its lock.

    Invariant: waiters queue only while every slot is taken, so a freed slot always goes
    to the first waiter, and ``in_flight`` counts the slots held, handed-over ones included.
    """

    __slots__ = ("in_flight", "max_concurrent", "max_queue", "rejected", "waiters")

    def __init__(self, max_concurrent: int, max_queue: int) -> None:
        self.max_concurrent = max_concurrent
        self.max_queue = max_queue
        self.in_flight = 0
        self.waiters: deque[W] = deque()
        self.rejected = 0

    def try_enter(self) -> bool:
        """Take a slot now if one is free (then nobody waits: freed slots go to waiters)."""
        if self.in_flight < self.max_concurrent:
            self.in_flight += 1
            return True
        return False

    def try_queue(self, waiter: W) -> bool:
        """Queue ``waiter`` if there is room; False means refuse the call."""
        if len(self.waiters) < self.max_queue:
            self.waiters.append(waiter)
            waiter.queued = True
            return True
        self.rejected += 1
        return False

    def release(self) -> W | None:
        """A slot holder left: the slot goes to the first waiter (returned, to be woken),
        or back to the pool."""
        if self.waiters:
            waiter = self.waiters.popleft()
            waiter.queued, waiter.granted = False, True
            return waiter
        if self.in_flight <= 0:
            raise RuntimeError("bulkhead slot released that was never taken")
        self.in_flight -= 1
        return None

    def withdraw(self, waiter: W) -> bool:
        """``waiter`` stops waiting: True if it left the queue holding nothing, False if a
        slot had already been handed to it (it must use it or release it)."""
        if waiter.granted:
            return False
        if waiter.queued:
            self.waiters.remove(waiter)
            waiter.queued = False
        return True

    def pass_on(self, waiter: W) -> W | None:
        """``waiter`` was handed a slot it can never take: the slot goes on, as
        :meth:`release` (``waiter`` holds nothing afterwards)."""
        waiter.granted = False
        return self.release()

    def time_out(self, waiter: W) -> bool:
        """``waiter``'s wait ran out: True if it leaves refused, False if its slot came."""
        if self.withdraw(waiter):
            self.rejected += 1
            return True
        return False


class _ThreadWaiter:
    __slots__ = ("event", "granted", "queued", "since")

    def __init__(self) -> None:
        self.queued = self.granted = False
        self.since: float | None = None
        self.event = threading.Event()

    def wake(self) -> bool:
        self.event.set()
        return True


class _TaskWaiter:
    __slots__ = ("future", "granted", "loop", "queued", "since")

    def __init__(self) -> None:
        self.queued = self.granted = False
        self.since: float | None = None  # when it asked, if BulkheadEntered is wanted
        self.loop = asyncio.get_running_loop()
        self.future: asyncio.Future[None] = self.loop.create_future()

    def wake(self) -> bool:
        if asyncio._get_running_loop() is self.loop:
            self._resolve()  # released from the waiter's own loop thread
            return True
        try:
            self.loop.call_soon_threadsafe(self._resolve)
        except RuntimeError:  # the loop is closed: its task will never come for the slot
            return False
        return True

    def _resolve(self) -> None:
        if not self.future.done():  # a cancelled wait has cancelled the future already
            self.future.set_result(None)


_AnyWaiter = _ThreadWaiter | _TaskWaiter
WA = TypeVar("WA", _ThreadWaiter, _TaskWaiter)


class Bulkhead(Wrapper):
    """Lets at most ``max_concurrent`` calls in at once; up to ``max_queue`` more wait their
    turn (first come, first served), each at most ``max_wait`` seconds; anything beyond is
    refused with :class:`~stalwart.BulkheadFullError`.

    One instance limits sync threads and asyncio tasks (of any event loop) together. Use it
    as a decorator (``def`` and ``async def``), a ``with`` / ``async with`` block, or
    through ``call`` / ``acall``. The lock is held for bookkeeping only.
    """

    _kind = _STRATEGY

    def __init__(
        self,
        max_concurrent: int,
        *,
        max_queue: int = DEFAULT_MAX_QUEUE,
        max_wait: float | None = DEFAULT_MAX_WAIT,
        name: str | None = None,
        clock: Clock | None = None,
    ) -> None:
        self.config = BulkheadConfig(
            max_concurrent=max_concurrent, max_queue=max_queue, max_wait=max_wait
        )
        self.name = strategy_name(name, _STRATEGY)
        self._clock = strategy_clock(clock)
        self._core: BulkheadCore[_AnyWaiter] = BulkheadCore(max_concurrent, max_queue)
        self._lock = threading.Lock()
        self._hub = EventHub()
        self._entries = False
        """Someone wants BulkheadEntered events."""
        self._hub.watch(self._refresh)
        self._refresh()

    # -- public surface ------------------------------------------------------------

    def __enter__(self) -> Bulkhead:
        self._acquire()
        return self

    def __exit__(self, et: type[BaseException] | None, exc: BaseException | None, tb: Any) -> None:
        self._release()

    async def __aenter__(self) -> Bulkhead:
        await self._aacquire()
        return self

    async def __aexit__(
        self, et: type[BaseException] | None, exc: BaseException | None, tb: Any
    ) -> None:
        self._release()

    @property
    def in_flight(self) -> int:
        """Slots held now (calls inside, plus slots just handed to a waiter)."""
        return self._core.in_flight

    @property
    def queued(self) -> int:
        """Callers waiting for a slot now."""
        return len(self._core.waiters)

    def snapshot(self) -> dict[str, Any]:
        """Gauges and settings in one consistent view (JSON-friendly)."""
        core = self._core
        with self._lock:
            in_flight, queued, rejected = core.in_flight, len(core.waiters), core.rejected
        return {
            "name": self.name,
            "max_concurrent": self.config.max_concurrent,
            "max_queue": self.config.max_queue,
            "max_wait": self.config.max_wait,
            "in_flight": in_flight,
            "queued": queued,
            "free": self.config.max_concurrent - in_flight,
            "total_rejected": rejected,
        }

    def describe(self) -> dict[str, Any]:
        """The bulkhead's kind, name and every setting."""
        config = self.config
        return {
            "strategy": _STRATEGY,
            "name": self.name,
            "max_concurrent": config.max_concurrent,
            "max_queue": config.max_queue,
            "max_wait": config.max_wait,
        }

    def __repr__(self) -> str:
        return (
            f"Bulkhead(name={self.name!r}, in_flight={self.in_flight}/"
            f"{self.config.max_concurrent}, queued={self.queued}/{self.config.max_queue})"
        )

    # -- drivers: they differ only in how a queued caller waits -----------------------

    def _sync_wrapper(self, fn: Callable[P, R]) -> Callable[P, R]:
        acquire, release = self._acquire, self._release

        @functools.wraps(fn)
        def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
            acquire()
            try:
                return fn(*args, **kwargs)
            finally:
                release()

        return wrapper

    def _async_wrapper(self, fn: Callable[P, Awaitable[R]]) -> Callable[P, Awaitable[R]]:
        acquire, release = self._aacquire, self._release

        @functools.wraps(fn)
        async def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
            await acquire()
            try:
                return await fn(*args, **kwargs)
            finally:
                release()

        return wrapper

    def _acquire(self) -> None:
        waiter = self._admit(_ThreadWaiter)
        if waiter is None:
            return
        limit = cap_timeout(self.config.max_wait)
        try:
            woken = waiter.event.wait(limit)
        except BaseException:
            self._abandon(waiter)
            raise
        self._waited(waiter, woken, limit)

    async def _aacquire(self) -> None:
        waiter = self._admit(_TaskWaiter)
        if waiter is None:
            return
        limit = cap_timeout(self.config.max_wait)
        try:
            async with asyncio.timeout(limit):
                await waiter.future
            woken = True
        except TimeoutError:
            woken = False
        except BaseException:  # cancelled while waiting
            self._abandon(waiter)
            raise
        self._waited(waiter, woken, limit)

    def _admit(self, make: Callable[[], WA]) -> WA | None:
        """Take a slot now (None), or queue a new waiter to wait on; else refuse."""
        core = self._core
        # The clock is read only for BulkheadEntered, and before the lock: never under it.
        now = self._clock.monotonic() if self._entries else None
        with self._lock:
            if core.try_enter():
                waiter = None
            elif core.try_queue(waiter := make()):
                waiter.since = now
                return waiter
            else:
                refused = f"{core.in_flight} calls in flight, {len(core.waiters)} waiting"
        if waiter is not None:  # listeners run outside the lock
            raise self._refused(refused)
        if now is not None:
            self._hub.emit(self._entered(now, 0.0))
        return None

    def _waited(self, waiter: _AnyWaiter, woken: bool, limit: float | None) -> None:
        """Settle a finished wait: the slot came (return), or it did not (refuse)."""
        if not woken:
            with self._lock:
                refused = self._core.time_out(waiter)
            if refused:
                raise self._refused(f"no slot came free within {limit:g} s")
        if self._entries and waiter.since is not None:  # (not if listening began meanwhile)
            now = self._clock.monotonic()
            self._hub.emit(self._entered(now, now - waiter.since))

    def _abandon(self, waiter: _AnyWaiter) -> None:
        """A waiter interrupted (cancelled): leave the queue, or pass on a slot it got."""
        with self._lock:
            if self._core.withdraw(waiter):
                return
        self._release()

    def _release(self) -> None:
        """Give the slot back: to the first waiter that can still take it, else the pool."""
        lock, core = self._lock, self._core
        with lock:
            waiter = core.release()
        while waiter is not None and not waiter.wake():
            with lock:
                waiter = core.pass_on(waiter)

    # -- events ----------------------------------------------------------------------

    def _refused(self, detail: str) -> BulkheadFullError:
        if self._hub.rejections:
            at = self._clock.monotonic()
            self._hub.emit(CallRejected(name=self.name, strategy=_STRATEGY, at=at))
        return BulkheadFullError(self.name, None, detail)

    def _entered(self, at: float, waited: float) -> BulkheadEntered:
        return BulkheadEntered(name=self.name, strategy=_STRATEGY, at=at, waited=waited)

    def _refresh(self) -> None:
        self._entries = any(sub.wants(BulkheadEntered) for sub in self._hub._all)
