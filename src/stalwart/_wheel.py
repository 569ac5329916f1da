"""The timer wheel behind every async deadline in stalwart.

``asyncio.timeout`` schedules and cancels a loop timer for every call (~3 µs on CPython
3.11, most of what a timed call would cost). Here each event loop gets one :class:`Wheel`
that keeps one loop timer per ``SLOT`` seconds that has deadlines in it, however many
calls share that slot, and cancels their tasks when it fires. The price: a deadline fires
up to ``SLOT`` seconds late, never early.

A timed await registers its task in a slot and takes it back when the await ends. The
one place that does so is ``Timeout``'s async path (``_timeout.py``), inlined there
because it runs on every timed call; the circuit breaker's ``call_timeout`` goes through
a ``Timeout`` too. Registering uses these pieces:

* :data:`last`: the wheel used last and its loop (weakly), so the running loop is found
  without ``asyncio.get_running_loop()``, which makes a ``getpid`` system call per use on
  CPython 3.11, when it is that loop (its ``_thread_id`` is this thread's);
* :func:`wheel_for` for any other loop; :data:`current_task` for the loop's task;
* :data:`SLOTS_PER_SECOND` and :data:`tokens` for the slot key and the entry's key.
"""

from __future__ import annotations

import asyncio
import itertools
import sys
import threading
import time
import weakref
from collections.abc import Callable
from typing import Any

__all__ = (
    "SLOT",
    "SLOTS_PER_SECOND",
    "Slot",
    "Wheel",
    "current_task",
    "get_ident",
    "last",
    "tokens",
    "wheel_for",
)

SLOT = 0.005
"""Seconds per wheel slot: an async deadline fires at most this much late."""
SLOTS_PER_SECOND = 1 / SLOT

get_ident = threading.get_ident
current_task: Callable[[asyncio.AbstractEventLoop], asyncio.Task[Any] | None] = (
    # CPython's own map of each loop's running task: asyncio.current_task(loop) minus a
    # Python-level call. From 3.14 the running task lives in the thread state instead.
    asyncio.tasks._current_tasks.get  # type: ignore[attr-defined]
    if sys.version_info < (3, 14)
    and isinstance(getattr(asyncio.tasks, "_current_tasks", None), dict)
    else asyncio.current_task
)
tokens = itertools.count()
"""Keys of the entries in a slot (one per timed await)."""


class Slot:
    """The timed awaits whose deadlines fall in one ``SLOT`` of loop time."""

    __slots__ = ("fired", "tasks")

    def __init__(self) -> None:
        self.tasks: dict[int, asyncio.Task[Any]] = {}
        self.fired = False


class Wheel:
    """Per event loop: cancels the tasks whose deadline has passed.

    It holds its loop only weakly (the loop's timers hold the wheel), so a finished loop
    and its wheel go away together."""

    __slots__ = ("__weakref__", "slots", "time")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        # The default loops' time() is time.monotonic(): call that directly.
        default_time = type(loop).time is asyncio.BaseEventLoop.time
        self.time: Callable[[], float] = time.monotonic if default_time else loop.time
        self.slots: dict[int, Slot] = {}

    def open(self, loop: asyncio.AbstractEventLoop, key: int) -> Slot:
        """A new slot for the deadlines up to ``key * SLOT`` (loop time), and its timer."""
        slot = self.slots[key] = Slot()
        loop.call_at(key * SLOT, self._fire, key)
        return slot

    def _fire(self, key: int) -> None:
        slot = self.slots.pop(key)
        slot.fired = True
        for task in slot.tasks.values():
            task.cancel()


def _no_loop() -> None:
    return None


_wheels: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Wheel] = weakref.WeakKeyDictionary()
_wheels_lock = threading.Lock()
last: tuple[Callable[[], asyncio.AbstractEventLoop | None], Any] = (_no_loop, None)
"""The wheel used last and its loop (weakly). Only for loops derived from
``asyncio.BaseEventLoop``, whose ``_thread_id`` tells whether it runs in this thread."""


def wheel_for(loop: asyncio.AbstractEventLoop) -> Wheel:
    """``loop``'s wheel, made on first use; remembered as :data:`last`."""
    global last
    with _wheels_lock:
        wheel = _wheels.get(loop)
        if wheel is None:
            wheel = _wheels[loop] = Wheel(loop)
    if isinstance(loop, asyncio.BaseEventLoop):
        last = (weakref.ref(loop), wheel)  # one tuple: consistent for other threads
    return wheel
