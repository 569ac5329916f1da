"""The one seam through which stalwart reads time and sleeps.

Every strategy takes ``clock=`` and never calls :mod:`time` or :func:`asyncio.sleep`
itself, so tests can swap in :class:`stalwart.testing.FakeClock` and run timing logic
without waiting.
"""

from __future__ import annotations

import asyncio
import time as _time
from typing import Protocol, runtime_checkable

__all__ = ("SYSTEM_CLOCK", "Clock", "SystemClock")


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


class SystemClock:
    """The real clock. The methods are the C functions themselves: no extra frame per read."""

    __slots__ = ()

    monotonic = staticmethod(_time.monotonic)
    time = staticmethod(_time.time)
    sleep = staticmethod(_time.sleep)

    async def asleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)

    def __repr__(self) -> str:
        return "SystemClock()"


SYSTEM_CLOCK: Clock = SystemClock()
