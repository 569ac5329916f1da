"""The one seam through which stalwart reads time and sleeps.

Every strategy takes ``clock=`` and never calls :mod:`time` or :func:`asyncio.sleep`
itself, so tests can swap in :class:`stalwart.testing.FakeClock` and run timing logic
without waiting.

A clock may also offer ``call_at(deadline, callback)`` (:class:`Alarms`): an open breaker
then refuses calls without reading the time, and is woken when its open period ends. The
system clock and ``FakeClock`` offer it; on a clock without it, nothing changes but speed.
"""

from __future__ import annotations

import asyncio
import time as _time
from collections.abc import Callable
from typing import Protocol, runtime_checkable

from ._alarms import SYSTEM_ALARMS

__all__ = ("SYSTEM_CLOCK", "Alarms", "Clock", "SystemClock", "alarms_of")


@runtime_checkable
class Clock(Protocol):
    """Monotonic time for intervals, wall time for display, and both kinds of sleep."""

    def monotonic(self) -> float:
        """Seconds on a clock that never goes back; only differences mean anything."""
        ...

    def time(self) -> float:
        """Wall-clock seconds since the Unix epoch, for timestamps shown to people."""
        ...

    def sleep(self, seconds: float) -> None:
        """Block the calling thread for ``seconds``."""
        ...

    async def asleep(self, seconds: float) -> None:
        """Suspend the calling task for ``seconds``."""
        ...


@runtime_checkable
class Alarms(Protocol):
    """What a clock offers when it can call back at a time of its own."""

    def call_at(self, deadline: float, callback: Callable[[], None]) -> None:
        """Call ``callback()`` once ``monotonic() >= deadline``, from any thread but never
        from inside ``call_at`` itself (the caller may hold a lock the callback takes)."""
        ...


def alarms_of(clock: Clock) -> Callable[[float, Callable[[], None]], None] | None:
    """The clock's ``call_at``, or None when it has none."""
    return clock.call_at if isinstance(clock, Alarms) else None


class SystemClock:
    """The real clock. The methods are the C functions themselves: no extra frame per read.
    Alarms run on one shared daemon thread (:mod:`stalwart._alarms`)."""

    __slots__ = ()

    monotonic = staticmethod(_time.monotonic)
    time = staticmethod(_time.time)
    sleep = staticmethod(_time.sleep)
    call_at = staticmethod(SYSTEM_ALARMS.call_at)

    async def asleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)

    def __repr__(self) -> str:
        return "SystemClock()"


SYSTEM_CLOCK: Clock = SystemClock()
