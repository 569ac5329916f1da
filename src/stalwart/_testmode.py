"""The switch behind ``stalwart.testing.set_testing``: strategies stop sleeping, cap attempts.

Every strategy sleeps through :func:`sleep` / :func:`asleep` here and asks
:func:`cap_attempts` / :func:`cap_timeout` on its slow path (never on a call that succeeds
at once), so the switch costs nothing in production. It is process-wide, like stamina's
``set_testing``, because the code under test may run in other threads.
"""

from __future__ import annotations

import asyncio
import threading
from dataclasses import dataclass, field

from ._clock import Clock

__all__ = ("TestMode", "asleep", "cap_attempts", "cap_timeout", "current", "sleep")


@dataclass(slots=True)
class TestMode:
    """What a test switched on, and the sleeps stalwart skipped meanwhile."""

    attempts: int | None = None
    """Most attempts any retry or hedge makes (None: as configured)."""
    timeout: float | None = None
    """Longest wait any timeout allows (None: as configured)."""
    sleeps: list[float] = field(default_factory=list)
    """Every sleep a strategy would have made, in order."""


_lock = threading.Lock()
_active: TestMode | None = None


def current() -> TestMode | None:
    return _active


def activate(mode: TestMode | None) -> TestMode | None:
    """Switch to ``mode`` (None: off); returns the previous one, for nesting."""
    global _active
    with _lock:
        previous, _active = _active, mode
    return previous


def sleep(clock: Clock, seconds: float) -> None:
    mode = _active
    if mode is None:
        clock.sleep(seconds)
    else:
        mode.sleeps.append(seconds)


async def asleep(clock: Clock, seconds: float) -> None:
    mode = _active
    if mode is None:
        await clock.asleep(seconds)
    else:
        mode.sleeps.append(seconds)
        await asyncio.sleep(0)  # still a suspension point, as a real sleep is


def cap_attempts(attempts: int) -> int:
    mode = _active
    if mode is None or mode.attempts is None:
        return attempts
    return min(attempts, mode.attempts)


def cap_timeout(timeout: float | None) -> float | None:
    mode = _active
    if mode is None or mode.timeout is None:
        return timeout
    return mode.timeout if timeout is None else min(timeout, mode.timeout)
