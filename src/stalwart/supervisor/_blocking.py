"""The supervisor for synchronous code: an event loop on a background thread.

Every method hands its work to that loop and waits for the answer, so a blocking program
(a Flask app, a script, a Celery worker) gets the same supervisor, not a second
implementation of it.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import signal
import threading
import time
from collections.abc import Callable, Coroutine, Iterator, Sequence
from types import FrameType
from typing import Any, TypeVar

from .._errors import ConfigError
from ._core import ConnectionState, ConnectionStats
from ._supervisor import GOING_AWAY, NORMAL_CLOSURE, Supervisor, SupervisorClosedError

__all__ = ("BlockingSupervisor",)

T = TypeVar("T")

_LOOK = 0.1
"""Seconds between looks at whether the loop thread is still alive, while waiting on it."""


class BlockingSupervisor:
    """A :class:`Supervisor` driven from synchronous code; takes the same arguments.

    ``with BlockingSupervisor([...]) as sup:`` starts it on its own thread;
    ``sup.send(message)``, ``sup.recv(timeout)``, ``for message in sup``, ``sup.stats()``;
    leaving the block closes gracefully. With ``handle_signals=True`` (main thread only)
    SIGTERM/SIGINT start the graceful close and end the iteration.
    """

    def __init__(self, endpoints: Sequence[str] | str, **options: Any) -> None:
        handle_signals = options.pop("handle_signals", False)
        if not isinstance(handle_signals, bool):
            raise ConfigError("handle_signals", f"must be True or False, got {handle_signals!r}")
        for callback in ("on_message", "on_connect"):
            fn = options.get(callback)
            if fn is not None and asyncio.iscoroutinefunction(fn):
                raise ConfigError(callback, "must be a plain function here (it runs on the loop)")
        self.supervisor = Supervisor(endpoints, **options)
        self._handle_signals = handle_signals
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._previous: dict[int, Any] = {}

    @property
    def name(self) -> str:
        return self.supervisor.name

    def start(self) -> BlockingSupervisor:
        if self._thread is not None:
            raise SupervisorClosedError(f"supervisor {self.name!r} was already started")
        started = threading.Event()
        failure: list[BaseException] = []

        def main() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            try:
                loop.run_until_complete(self._serve(started, failure))
            finally:
                loop.close()

        self._thread = threading.Thread(target=main, name=f"stalwart-supervisor-{self.name}")
        self._thread.daemon = True
        self._thread.start()
        started.wait()
        if failure:
            raise failure[0]
        if self._handle_signals and threading.current_thread() is threading.main_thread():
            for signum in (signal.SIGINT, signal.SIGTERM):
                self._previous[signum] = signal.signal(signum, self._signalled)
        return self

    async def _serve(self, started: threading.Event, failure: list[BaseException]) -> None:
        try:
            await self.supervisor.start()
        except BaseException as exc:
            failure.append(exc)
            started.set()
            return
        started.set()
        await self.supervisor.wait_closed()
        # Let the calls still on the loop (the aclose that closed it) hand back their
        # answers before the loop stops; cancel whatever would outlive that.
        others = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        if others:
            _, pending = await asyncio.wait(others, timeout=1.0)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)

    def __enter__(self) -> BlockingSupervisor:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _call(self, coro: Coroutine[Any, Any, T], timeout: float | None = None) -> T:
        loop, thread = self._loop, self._thread
        if loop is None or thread is None or loop.is_closed():
            coro.close()
            raise SupervisorClosedError(f"supervisor {self.name!r} is not running")
        try:
            future = asyncio.run_coroutine_threadsafe(coro, loop)
        except RuntimeError:  # the loop closed in between
            coro.close()
            raise SupervisorClosedError(f"supervisor {self.name!r} is not running") from None
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            # Look up now and then: a loop that stopped (closed by a signal) would never
            # answer, and waiting on it forever would hang the caller.
            step = _LOOK if deadline is None else max(0.0, min(_LOOK, deadline - time.monotonic()))
            try:
                return future.result(step)
            except concurrent.futures.TimeoutError:
                if future.done():
                    raise  # the coroutine's own TimeoutError (TimeoutError is both in 3.11)
            if not thread.is_alive():
                future.cancel()
                raise SupervisorClosedError(f"supervisor {self.name!r} is not running")
            if deadline is not None and time.monotonic() >= deadline:
                future.cancel()
                raise TimeoutError(f"no answer from supervisor {self.name!r} in {timeout} s")

    def send(self, message: Any, timeout: float | None = None) -> None:
        """Send now if connected, else buffer (see :meth:`Supervisor.send`)."""
        self._call(self.supervisor.send(message), timeout)

    def recv(self, timeout: float | None = None) -> Any:
        """The next message; TimeoutError after ``timeout`` seconds, SupervisorClosedError
        once closed."""
        # The timeout runs on the loop: a message taken just as it expires is returned,
        # never lost between the two threads.
        return self._call(_within(timeout, self.supervisor.recv))

    def __iter__(self) -> Iterator[Any]:
        while True:
            try:
                yield self.recv()
            except SupervisorClosedError:
                return

    def stats(self) -> ConnectionStats:
        return self.supervisor.stats()

    @property
    def state(self) -> ConnectionState:
        return self.supervisor.state

    @property
    def connected(self) -> bool:
        return self.supervisor.connected

    def wait_connected(self, timeout: float | None = None) -> bool:
        """Block until connected; False if ``timeout`` seconds pass first."""
        return self._call(self.supervisor.wait_connected(timeout))

    def wait_closed(self, timeout: float | None = None) -> bool:
        thread = self._thread
        if thread is None:
            return True
        thread.join(timeout)
        return not thread.is_alive()

    def close(self, code: int = NORMAL_CLOSURE, reason: str = "") -> None:
        """Close gracefully (see :meth:`Supervisor.aclose`) and stop the thread."""
        loop, thread = self._loop, self._thread
        self._restore_signals()
        if loop is None or thread is None or not thread.is_alive():
            return
        if self.supervisor.closed:  # a signal closed it already: the thread is ending
            thread.join()
            return
        with contextlib.suppress(SupervisorClosedError, RuntimeError):
            self._call(self.supervisor.aclose(code, reason))
        thread.join()

    def _signalled(self, signum: int, frame: FrameType | None) -> None:
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        if self.supervisor._closing:  # a second signal: close at once
            loop.call_soon_threadsafe(self.supervisor._signalled, signum)
            return
        with contextlib.suppress(RuntimeError):
            asyncio.run_coroutine_threadsafe(self.supervisor.aclose(GOING_AWAY, "shutdown"), loop)

    def _restore_signals(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        self._previous.clear()

    def __repr__(self) -> str:
        return f"<BlockingSupervisor {self.name!r} {self.supervisor.state.value}>"


async def _within(seconds: float | None, make: Callable[[], Coroutine[Any, Any, T]]) -> T:
    try:
        async with asyncio.timeout(seconds):
            return await make()
    except TimeoutError:
        raise TimeoutError(f"nothing received in {seconds} s") from None
