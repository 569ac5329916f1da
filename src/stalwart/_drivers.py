"""Drivers: the only code that runs, awaits or times the protected call.

A strategy exposes the permission-and-outcome protocol (:class:`Guard`): ``_acquire()``
answers "may a call start?" with a ticket or raises the rejection, and the ``_settle_*``
methods are told how the call ended. The drivers here adapt that protocol to every
calling form: decorator, ``call``/``acall``, ``with``/``async with``. The sync and async
variants differ only in calling versus awaiting; every decision lives in the core.

Per-call data (ticket, start time, timeout scope) lives in locals, or for ``with`` blocks
in a context variable, never on the shared strategy object.
"""

from __future__ import annotations

import asyncio
import contextvars
import inspect
import queue
import threading
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import Any, ParamSpec, Protocol, TypeGuard, TypeVar, cast

from ._clock import Clock
from ._errors import ConfigError, DeadlineExceeded, Rejected
from ._testmode import cap_timeout
from ._wrappers import build

__all__ = (
    "Guard",
    "Named",
    "aenter_block",
    "aexit_block",
    "call_async",
    "call_sync",
    "deadline_exceeded",
    "decorate",
    "enter_block",
    "exit_block",
    "imposed_by",
    "is_async_callable",
    "run_async",
    "run_sync",
    "run_with_deadline",
)

P = ParamSpec("P")
R = TypeVar("R")


class Named(Protocol):
    """Anything that imposes a deadline: it names the DeadlineExceeded it raises."""

    name: str


class CallTimer(Protocol):
    def _timed(self, fn: Callable[..., Awaitable[R]]) -> Callable[..., Awaitable[R]]:
        """``fn`` bounded by the deadline (a bare closure, made per call if need be)."""
        ...


class Guard(Protocol):
    """What a strategy offers its drivers."""

    name: str
    _clock: Clock
    _fast: int | None
    """A ticket when calls may run with no bookkeeping before them, else None."""
    _dirty: bool
    """True when a fast-path success must still be reported to the core."""
    _successes: Iterator[int]
    """Counter a fast-path success advances."""
    _refusing: bool
    """True while the drivers refuse a call without asking (plainly open, nobody listening
    for rejections); the guard turns it off when that ends, by an alarm if by time alone.
    False: ask ``_acquire``, which refuses, counts and tells the listeners itself."""
    _remaining: object
    """While refusing, the refusal's ``retry_in``: a ``Countdown`` to the end of the period."""
    _rejections: Iterator[int]
    """Counter a call the drivers refuse advances."""

    @property
    def _call_timeout(self) -> float | None: ...

    @property
    def _call_timer(self) -> CallTimer | None:
        """What bounds an async call (a ``Timeout`` raising as the guard), if anything."""
        ...

    @property
    def _Rejection(self) -> type[Rejected]:
        """What to raise when ``_acquire`` refuses."""
        ...

    def _acquire(self) -> int | float | None:
        """An int ticket if the call may start, else the rejection's ``retry_in``
        (seconds or None) for the driver to raise in the caller's frame."""
        ...

    def _settle_success(self, ticket: int, duration: float, *, counted: bool = False) -> None: ...

    def _settle_failure(
        self,
        ticket: int,
        duration: float,
        exception: BaseException | None,
        retry_after: float | None,
    ) -> None: ...

    def _settle_exception(self, ticket: int, exc: BaseException, duration: float) -> None: ...

    def _settle_result(self, ticket: int, result: Any, duration: float) -> None: ...


def decorate(guard: Guard, fn: Callable[P, R]) -> Callable[P, R]:
    """Wrap ``fn`` once, as sync or async; nothing on the call path asks which it is."""
    if not callable(fn):
        raise ConfigError("fn", f"must be a function to decorate, got {fn!r}")
    if inspect.isgeneratorfunction(fn) or inspect.isasyncgenfunction(fn):
        raise ConfigError(
            "fn",
            f"{fn!r} is a generator function: calling it runs nothing, so its outcome cannot "
            "be judged. Protect the calls it makes instead.",
        )
    is_async = is_async_callable(fn)
    run = run_async if is_async else run_sync
    return cast("Callable[P, R]", build(guard, fn, is_async=is_async, run=run, permit=_permit))


def is_async_callable(fn: object) -> TypeGuard[Callable[..., Awaitable[Any]]]:
    """An ``async def``, a partial of one, or an object whose ``__call__`` is one."""
    # The class's __call__, not callable(): an instance with `async def __call__` is
    # called like a function but returns a coroutine, so it needs the async wrapper.
    dunder_call = getattr(type(fn), "__call__", None)  # noqa: B004
    return inspect.iscoroutinefunction(fn) or inspect.iscoroutinefunction(dunder_call)


def call_sync(guard: Guard, fn: Callable[..., R], args: Any, kwargs: Any) -> R:
    """The full protocol for a sync call: acquire, time, run (with a deadline), settle."""
    return run_sync(guard, fn, _permit(guard), args, kwargs)


def _permit(guard: Guard) -> int:
    permit = guard._acquire()
    if type(permit) is not int:
        raise guard._Rejection(guard.name, permit)
    return permit


async def call_async(guard: Guard, fn: Callable[..., Awaitable[R]], args: Any, kwargs: Any) -> R:
    """The full protocol for an async call; ``call_timeout`` cancels the awaited work."""
    return await run_async(guard, fn, _permit(guard), args, kwargs)


def run_sync(guard: Guard, fn: Callable[..., R], ticket: int, args: Any, kwargs: Any) -> R:
    """Run a permitted sync call, timed and with its deadline, and report how it ended."""
    clock = guard._clock
    timeout = cap_timeout(guard._call_timeout)
    start = clock.monotonic()
    try:
        if timeout is None:
            result = fn(*args, **kwargs)
        else:
            result = run_with_deadline(guard, fn, args, kwargs, timeout)
    except BaseException as exc:
        _settle_raised(guard, ticket, exc, clock.monotonic() - start)
        raise
    _settle_returned(guard, ticket, result, clock.monotonic() - start)
    return result


async def run_async(
    guard: Guard, fn: Callable[..., Awaitable[R]], ticket: int, args: Any, kwargs: Any
) -> R:
    """Await a permitted call, timed and with its deadline, and report how it ended.

    The deadline is the guard's ``_call_timer``: a ``Timeout`` whose DeadlineExceeded is
    the guard's own (see ``imposed_by``), so async deadlines have one implementation."""
    clock = guard._clock
    timer = guard._call_timer
    start = clock.monotonic()
    try:
        if timer is None:
            result = await fn(*args, **kwargs)
        else:
            result = await timer._timed(fn)(*args, **kwargs)
    except BaseException as exc:
        _settle_raised(guard, ticket, exc, clock.monotonic() - start)
        raise
    _settle_returned(guard, ticket, result, clock.monotonic() - start)
    return result


def _settle_raised(guard: Guard, ticket: int, exc: BaseException, duration: float) -> None:
    if imposed_by(exc, guard):
        # The deadline this guard imposed: a failure whatever record/ignore say. Anyone
        # else's DeadlineExceeded (an inner guard's) is classified like any exception.
        guard._settle_failure(ticket, duration, exc, None)
    else:
        guard._settle_exception(ticket, exc, duration)


def _settle_returned(guard: Guard, ticket: int, result: Any, duration: float) -> None:
    timeout = guard._call_timeout
    if timeout is not None and duration >= timeout:
        # Finished, but later than allowed by the guard's own clock: a sync block that
        # could not be interrupted, or a call timed on a FakeClock. The value is still
        # returned; the overrun counts as a failure on every path alike.
        overrun = deadline_exceeded(guard, timeout, f"ran {duration:.3g} s (limit {timeout:g} s)")
        guard._settle_failure(ticket, duration, overrun, None)
    elif result is _NO_VALUE:
        guard._settle_success(ticket, duration)
    else:
        guard._settle_result(ticket, result, duration)


_NO_VALUE: Any = object()  # what a `with` block "returns": nothing to judge


def deadline_exceeded(owner: Named, timeout: float, detail: str = "") -> DeadlineExceeded:
    """The DeadlineExceeded ``owner`` raises, marked as its own (see ``imposed_by``)."""
    exc = DeadlineExceeded(owner.name, None, detail or f"call did not finish within {timeout:g} s")
    exc._imposed_by = owner  # type: ignore[attr-defined]
    return exc


def imposed_by(exc: BaseException, owner: Named) -> bool:
    """True if ``exc`` is the deadline ``owner`` itself imposed (not an inner one's)."""
    return getattr(exc, "_imposed_by", None) is owner


def run_with_deadline(
    owner: Named, fn: Callable[..., R], args: Any, kwargs: Any, timeout: float
) -> R:
    """Run a sync call in a worker thread and stop waiting for it after ``timeout``.

    Python cannot stop a thread from outside, so a call that overruns goes on running
    in its (daemon) thread until it returns by itself; its result is then dropped. What
    the caller gets is the guarantee of not waiting longer than ``timeout``.
    """
    job = _Job(owner.name, fn, args, kwargs, contextvars.copy_context())
    _WORKERS.run(job)
    if not job.done.acquire(timeout=timeout):
        raise deadline_exceeded(
            owner, timeout, f"call did not finish within {timeout:g} s (its thread runs on)"
        )
    if job.error is not None:
        raise job.error
    return cast("R", job.result)


class _Job:
    """One call handed to a worker; ``done`` is released when it has ended."""

    __slots__ = ("args", "context", "done", "error", "fn", "kwargs", "name", "result")

    def __init__(self, name: str, fn: Any, args: Any, kwargs: Any, context: Any) -> None:
        self.name = f"stalwart:{name}"
        self.fn, self.args, self.kwargs, self.context = fn, args, kwargs, context
        self.result: Any = None
        self.error: BaseException | None = None
        self.done = threading.Lock()
        self.done.acquire()

    def run(self) -> None:
        try:
            self.result = self.context.run(self.fn, *self.args, **self.kwargs)
        except BaseException as exc:
            self.error = exc
        finally:
            self.fn = self.args = self.kwargs = self.context = None  # free them now
            self.done.release()


class _Workers:
    """Daemon threads for sync deadlines, reused while idle: a thread per call cost
    ~70 µs. Unbounded on purpose: a call that hangs keeps its thread, so a bounded pool
    could fill with hung calls and make every later call wait; a new thread is started
    whenever none is idle. An idle thread exits after ``KEEP_ALIVE`` seconds."""

    KEEP_ALIVE = 30.0

    def __init__(self) -> None:
        self._idle: list[queue.SimpleQueue[_Job | None]] = []
        self._lock = threading.Lock()

    def run(self, job: _Job) -> None:
        with self._lock:
            inbox = self._idle.pop() if self._idle else None
        if inbox is None:
            inbox = queue.SimpleQueue()
            thread = threading.Thread(target=self._work, args=(inbox,), daemon=True)
            thread.start()
        inbox.put(job)

    def _work(self, inbox: queue.SimpleQueue[_Job | None]) -> None:
        me = threading.current_thread()
        while True:
            try:
                job = inbox.get(timeout=self.KEEP_ALIVE)
            except queue.Empty:
                with self._lock:
                    if inbox in self._idle:  # nobody is handing us a job: retire
                        self._idle.remove(inbox)
                        return
                continue  # a job is on its way: it was taken from the idle list
            if job is None:
                return
            me.name = job.name
            job.run()
            with self._lock:
                self._idle.append(inbox)


_WORKERS = _Workers()


# -- with / async with -------------------------------------------------------------


@dataclass(slots=True)
class _Block:
    guard: Guard
    ticket: int
    start: float
    scope: asyncio.Timeout | None = None


# A stack, so the same breaker can guard nested blocks; a context variable, so every
# thread and every asyncio task sees only its own blocks.
_BLOCKS: contextvars.ContextVar[tuple[_Block, ...]] = contextvars.ContextVar(
    "stalwart_blocks", default=()
)


def _push(block: _Block) -> None:
    _BLOCKS.set((*_BLOCKS.get(), block))


def _pop(guard: Guard) -> _Block:
    stack = _BLOCKS.get()
    for i in range(len(stack) - 1, -1, -1):
        if stack[i].guard is guard:
            _BLOCKS.set(stack[:i] + stack[i + 1 :])
            return stack[i]
    raise RuntimeError(f"{guard.name!r}: block exited that was not entered in this context")


def enter_block(guard: Guard) -> None:
    ticket = _permit(guard)
    _push(_Block(guard, ticket, guard._clock.monotonic()))


def exit_block(guard: Guard, exc: BaseException | None) -> None:
    _settle_block(_pop(guard), exc)


def _settle_block(block: _Block, exc: BaseException | None) -> None:
    duration = block.guard._clock.monotonic() - block.start
    if exc is None:
        # A block has no value for failure_if to judge: only an overrun can fail it.
        _settle_returned(block.guard, block.ticket, _NO_VALUE, duration)
    else:
        _settle_raised(block.guard, block.ticket, exc, duration)


async def aenter_block(guard: Guard) -> None:
    ticket = _permit(guard)
    timeout = guard._call_timeout
    scope = None
    if timeout is not None:
        scope = asyncio.timeout(timeout)
        await scope.__aenter__()
    _push(_Block(guard, ticket, guard._clock.monotonic(), scope))


async def aexit_block(guard: Guard, exc: BaseException | None) -> None:
    block = _pop(guard)
    scope = block.scope
    if scope is not None:
        try:
            tb = exc.__traceback__ if exc is not None else None
            await scope.__aexit__(type(exc) if exc is not None else None, exc, tb)
        except TimeoutError as timeout_exc:
            # Our deadline cancelled the block: report and raise it as stalwart's own.
            assert guard._call_timeout is not None
            deadline = deadline_exceeded(guard, guard._call_timeout)
            duration = guard._clock.monotonic() - block.start
            guard._settle_failure(block.ticket, duration, deadline, None)
            raise deadline from timeout_exc
    _settle_block(block, exc)
