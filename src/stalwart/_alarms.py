"""Alarms: callbacks run at (or just after) a monotonic deadline, by one shared thread.

An open breaker refuses calls without reading the clock; an alarm at the end of its open
period tells it to look again (see ``CircuitBreaker._wake``). One daemon thread serves
every breaker in the process. It starts on the first alarm and sleeps on a condition
until the earliest deadline, so an idle process pays nothing but the parked thread.

A callback runs on the alarm thread; it must be quick and must not raise (an exception
is logged and the thread goes on). The thread may run late by up to the interpreter's
switch interval (5 ms) when other threads hold the GIL.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import os
import threading
import time
from collections.abc import Callable

__all__ = ("SYSTEM_ALARMS", "Alarms")

_log = logging.getLogger("stalwart")


class Alarms:
    """A heap of (deadline, callback) and the daemon thread that runs them when due."""

    def __init__(self, monotonic: Callable[[], float] = time.monotonic) -> None:
        self._monotonic = monotonic
        self._cond = threading.Condition(threading.Lock())
        self._heap: list[tuple[float, int, Callable[[], None]]] = []
        self._order = itertools.count()  # ties run in the order they were set
        self._thread: threading.Thread | None = None

    def call_at(self, deadline: float, callback: Callable[[], None]) -> None:
        """Run ``callback()`` on the alarm thread once ``monotonic() >= deadline``."""
        with self._cond:
            heapq.heappush(self._heap, (deadline, next(self._order), callback))
            if self._thread is None:
                self._start()
            elif self._heap[0][0] == deadline:
                self._cond.notify()  # a new earliest deadline: wait less

    @property
    def pending(self) -> int:
        """How many alarms have not run yet."""
        with self._cond:
            return len(self._heap)

    def _start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="stalwart-alarms", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while True:
            with self._cond:
                while True:
                    if not self._heap:
                        self._cond.wait()
                        continue
                    delay = self._heap[0][0] - self._monotonic()
                    if delay <= 0:
                        callback = heapq.heappop(self._heap)[2]
                        break
                    self._cond.wait(delay)
            try:
                callback()
            except BaseException:
                _log.exception("stalwart: an alarm callback raised (ignored)")
            del callback

    def _after_fork(self) -> None:
        # The thread did not survive the fork, and the lock may have been held by it. The
        # alarms themselves did: a breaker open in the parent still waits for its wake-up.
        self._cond = threading.Condition(threading.Lock())
        self._thread = None
        if self._heap:
            self._start()


SYSTEM_ALARMS = Alarms()
os.register_at_fork(after_in_child=SYSTEM_ALARMS._after_fork)
