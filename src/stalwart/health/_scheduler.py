"""When checks run: a sans-I/O schedule, and the loop that follows it in the background.

:class:`Schedule` is told the time and answers which checks are due and when to wake next;
it never sleeps. :func:`dispatch` is the only code that waits: one asyncio task that starts a
task per due check and sleeps until the next one is due or it is woken (a check added, a
reset). :class:`ThreadRunner` runs that same loop on a private event loop in a daemon
thread, for sync apps (Flask): there is one scheduling logic, not two.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

__all__ = ("JOIN_TIMEOUT", "Schedule", "ThreadRunner", "dispatch")

JOIN_TIMEOUT = 10.0
"""Seconds leaving ``running_in_thread()`` waits for the thread's loop to stop."""


class Schedule:
    """Sans-I/O: each check's next due time. Runs are spaced start to start by the
    check's interval; a run that overruns its interval is followed by the next at once;
    a check is never started while its previous run is in flight. Not thread-safe: the
    registry locks."""

    __slots__ = ("_due", "_intervals", "_requested", "_running")

    def __init__(self) -> None:
        self._intervals: dict[str, float] = {}
        self._due: dict[str, float] = {}
        self._running: set[str] = set()
        self._requested: set[str] = set()

    def add(self, name: str, interval: float, now: float) -> None:
        """Schedule ``name`` every ``interval`` seconds, first run at ``now``."""
        self._intervals[name] = interval
        self._due[name] = now

    def remove(self, name: str) -> None:
        self._intervals.pop(name, None)
        self._due.pop(name, None)
        self._requested.discard(name)

    def restart(self, now: float) -> None:
        """Everything due at ``now`` (a scheduler starting); nothing counts as in flight."""
        self._running.clear()
        self._requested.clear()
        for name in self._due:
            self._due[name] = now

    def take_due(self, now: float) -> list[str]:
        """The checks to start now, marked in flight."""
        due = [n for n, t in self._due.items() if t <= now and n not in self._running]
        self._running.update(due)
        return due

    def finished(self, name: str, started: float, now: float) -> None:
        """The run of ``name`` that started at ``started`` ended at ``now``."""
        self._running.discard(name)
        if name not in self._intervals:
            return  # removed while running
        if name in self._requested:
            self._requested.discard(name)
            self._due[name] = now
        else:
            self._due[name] = max(started + self._intervals[name], now)

    def request(self, name: str, now: float) -> None:
        """Run ``name`` as soon as possible (right after its run in flight, if any)."""
        if name not in self._intervals:
            return
        if name in self._running:
            self._requested.add(name)
        else:
            self._due[name] = now

    def next_wake(self) -> float | None:
        """When the next check not in flight is due (None: none is waiting)."""
        waiting = [t for n, t in self._due.items() if n not in self._running]
        return min(waiting) if waiting else None


async def dispatch(
    take_due: Callable[[], tuple[list[str], float | None]],
    run: Callable[[str], Coroutine[Any, Any, None]],
    monotonic: Callable[[], float],
    wakeup: asyncio.Event,
) -> None:
    """Start due checks as tasks, then sleep until the next is due or ``wakeup`` is set.

    Runs until cancelled; then cancels the checks in flight and waits for them."""
    tasks: set[asyncio.Task[None]] = set()
    try:
        while True:
            wakeup.clear()
            names, wake_at = take_due()
            for name in names:
                task = asyncio.create_task(run(name), name=f"stalwart-health:{name}")
                tasks.add(task)
                task.add_done_callback(tasks.discard)
            delay = None if wake_at is None else max(0.0, wake_at - monotonic())
            # asyncio.timeout, not wait_for: on 3.11 wait_for can swallow a cancellation
            # that races with the event being set, and the loop would never stop.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(delay):
                    await wakeup.wait()
    finally:
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)


class ThreadRunner:
    """Runs ``main(stop)`` on a new event loop in a daemon thread until :meth:`stop`."""

    def __init__(self, name: str, main: Callable[[asyncio.Event], Awaitable[Any]]) -> None:
        self._main = main
        self._name = name
        self._ready = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def start(self) -> None:
        self._thread.start()
        if not self._ready.wait(JOIN_TIMEOUT):
            raise RuntimeError(f"{self._name}: the scheduler thread did not start")
        if self._error is not None:
            raise self._error

    def stop(self) -> None:
        loop, stop = self._loop, self._stop
        if loop is not None and stop is not None:
            with contextlib.suppress(RuntimeError):  # the loop already ended
                loop.call_soon_threadsafe(stop.set)
        self._thread.join(JOIN_TIMEOUT)
        if self._thread.is_alive():
            raise RuntimeError(f"{self._name}: the scheduler thread did not stop")

    def _run(self) -> None:
        try:
            asyncio.run(self._serve())
        except BaseException as exc:  # reported to start() if it failed early
            self._error = exc
            self._ready.set()

    async def _serve(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        self._ready.set()
        await self._main(self._stop)
