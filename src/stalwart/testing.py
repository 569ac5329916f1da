"""Helpers for testing code that uses stalwart, without real waiting.

``FakeClock`` replaces the system clock in any strategy (``clock=``): time stands still
until advanced by hand or by sleeping on it, and sleeping returns at once. Alarms set on
it (``call_at``) run in the thread that moves time past them.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from . import _testmode, _validate
from ._testmode import TestMode

__all__ = ("FakeClock", "TestMode", "set_testing")


class FakeClock:
    """A clock that moves only when told to, or when slept on (instantly).

    Monotonic time starts at ``start`` (0.0); wall time starts at ``wall_start`` and moves
    with it. ``sleeps`` lists every duration slept, in order, sync and async alike.
    Safe to share between threads.

    ``call_at(deadline, callback)`` sets an alarm: it runs in whichever thread's
    ``advance`` or sleep moves time to ``deadline`` or past it, in deadline order, once
    that move is done. This is how an open breaker learns its open period has ended.
    """

    def __init__(self, start: float = 0.0, *, wall_start: float = 1_700_000_000.0) -> None:
        self._now = float(start)
        self._wall_offset = wall_start - self._now
        self._lock = threading.Lock()
        self._alarms: list[tuple[float, int, Callable[[], None]]] = []
        self._order = itertools.count()
        self.sleeps: list[float] = []

    def monotonic(self) -> float:
        return self._now

    def time(self) -> float:
        return self._now + self._wall_offset

    def advance(self, seconds: float) -> None:
        """Move time forward by ``seconds`` (>= 0)."""
        if seconds < 0:
            raise ValueError(f"a clock cannot go back: advance({seconds})")
        with self._lock:
            self._now += seconds
        self._ring()

    def call_at(self, deadline: float, callback: Callable[[], None]) -> None:
        """Run ``callback()`` when time next moves to ``deadline`` or beyond (an alarm
        already due runs at the next move, even ``advance(0)``, never inside this call)."""
        with self._lock:
            heapq.heappush(self._alarms, (deadline, next(self._order), callback))

    def _ring(self) -> None:
        """Run the alarms that are due, outside the lock (they may set new ones)."""
        while True:
            with self._lock:
                if not self._alarms or self._alarms[0][0] > self._now:
                    return
                callback = heapq.heappop(self._alarms)[2]
            callback()

    def sleep(self, seconds: float) -> None:
        """Record the sleep and advance by it, returning at once (negative: ValueError,
        as :func:`time.sleep`)."""
        if seconds < 0:
            raise ValueError("sleep length must be non-negative")
        with self._lock:
            self.sleeps.append(seconds)
            self._now += seconds
        self._ring()

    async def asleep(self, seconds: float) -> None:
        """Record and advance like :meth:`sleep` (negative counts as 0, as
        :func:`asyncio.sleep`), then yield once so other tasks run, as a real sleep would."""
        seconds = max(0.0, seconds)
        with self._lock:
            self.sleeps.append(seconds)
            self._now += seconds
        self._ring()
        await asyncio.sleep(0)

    def __repr__(self) -> str:
        return f"FakeClock(monotonic={self._now!r}, slept={len(self.sleeps)})"


@contextmanager
def set_testing(*, attempts: int | None = None, timeout: float | None = None) -> Iterator[TestMode]:
    """Make every stalwart strategy stop sleeping, for your own test suite.

    Inside the block, retry backoff, rate-limiter waits and hedge delays return at once
    (``mode.sleeps`` lists what they would have slept), retries and hedges make at most
    ``attempts`` attempts, and timeouts wait at most ``timeout`` seconds. Process-wide;
    blocks nest, the innermost wins.
    """
    # Named like stamina's switch; not test_*, so pytest never collects it from your tests.
    if attempts is not None:
        _validate.whole("attempts", attempts)
    _validate.optional_positive("timeout", timeout)
    mode = TestMode(attempts=attempts, timeout=timeout)
    previous = _testmode.activate(mode)
    try:
        yield mode
    finally:
        _testmode.activate(previous)
