"""The bookkeeping of one batch run, without I/O: what a worker does next, pauses, counts.

:class:`BatchCore` is told the time and what happened (an item taken, an item to run again
after a pause, records committed) and answers what a worker should do now: take an item,
wait until a time, wait to be woken, or stop. The drivers in ``_runner`` hold a lock
around every call and do the waiting, calling and writing.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass
from typing import Any

__all__ = ("BatchCore", "Paused", "Resumed", "Take", "Wait")

RATE_WINDOW = 30.0
"""Seconds of recent commits the rate (and so the ETA) is measured over."""


@dataclass(frozen=True, slots=True)
class Take:
    """Run this item."""

    key: str
    item: Any


@dataclass(frozen=True, slots=True)
class Wait:
    """Nothing to run now: wait until ``until`` (monotonic), or until woken when None."""

    until: float | None


@dataclass(frozen=True, slots=True)
class Paused:
    """Every worker pauses until ``until`` (monotonic), ``seconds`` from now."""

    until: float
    seconds: float
    reason: str
    new: bool = True
    """False: an existing pause made longer."""


@dataclass(frozen=True, slots=True)
class Resumed:
    """The pause that started at ``since`` is over after ``seconds``."""

    seconds: float
    early: bool
    """Lifted before its end (the breaker closed)."""


class BatchCore:
    """One run's queue of ready items, its shared pause and its counts."""

    def __init__(
        self,
        *,
        total: int,
        skipped: int,
        max_pause: float | None,
        max_uncommitted: int,
        low_water: int,
        now: float,
    ) -> None:
        self.total = total
        self.skipped = skipped
        self.max_pause = max_pause
        self.max_uncommitted = max_uncommitted
        self.low_water = low_water
        self.started = now
        self.ready: deque[tuple[str, Any]] = deque()
        self.exhausted = False
        """The journal has no more keys to hand out."""
        self.requested = False
        """More keys were asked for and have not come yet."""
        self.in_flight = 0
        """Items taken and not yet handed to the journal."""
        self.uncommitted = 0
        """Records handed to the journal and not yet committed."""
        self.done = 0
        self.failed = 0
        self.pauses = 0
        self.paused_seconds = 0.0
        self.paused_until = -math.inf
        self.pause_reason: str | None = None
        self.pause_started: float | None = None
        self.stopped: str | None = None
        self.error: BaseException | None = None
        self._recent: deque[tuple[float, int]] = deque([(now, 0)])

    # -- workers -------------------------------------------------------------------------

    def next(self, now: float) -> Take | Wait | Resumed | None:
        """What a worker does now; None: stop. A Resumed means "the pause ended: log it,
        then ask again"."""
        if self.stopped is not None:
            return None
        if self.pause_started is not None:
            if now < self.paused_until:
                return Wait(self.paused_until)
            return self._resume(now, early=False)
        if self.uncommitted >= self.max_uncommitted:
            return Wait(None)
        if self.ready:
            key, item = self.ready.popleft()
            self.in_flight += 1
            return Take(key, item)
        if self.exhausted and self.in_flight == 0:
            return None
        return Wait(None)

    def wants_more(self) -> bool:
        """Whether to ask the journal for more keys now (at most one request at a time)."""
        if self.exhausted or self.requested or len(self.ready) >= self.low_water:
            return False
        self.requested = True
        return True

    def feed(self, pairs: list[tuple[str, Any]], *, exhausted: bool) -> None:
        self.ready.extend(pairs)
        self.requested = False
        self.exhausted = self.exhausted or exhausted

    def handed(self) -> None:
        """A taken item's record went to the journal."""
        self.in_flight -= 1
        self.uncommitted += 1

    def dropped(self) -> None:
        """A taken item ended without a record (the run is stopping)."""
        self.in_flight -= 1

    def again_after(
        self, key: str, item: Any, now: float, seconds: float, reason: str, *, counts: bool = True
    ) -> Paused | None:
        """Run ``item`` again once a pause of ``seconds`` (from now) is over; a new or
        longer pause is returned, to be logged."""
        self.in_flight -= 1
        self.ready.appendleft((key, item))
        return self.pause(now, seconds, reason, counts=counts)

    # -- pauses ----------------------------------------------------------------------------

    def pause(
        self, now: float, seconds: float, reason: str, *, counts: bool = True
    ) -> Paused | None:
        """Make every worker wait ``seconds`` from now; None if an existing pause already
        lasts that long. Going over ``max_pause`` in all stops the run instead.
        ``counts=False``: a wait for a breaker's probe to decide, part of the pause before
        it (its time is counted, not as a pause of its own)."""
        until = now + max(0.0, seconds)
        if until <= self.paused_until:
            return None
        started = self.pause_started if self.pause_started is not None else now
        limit = self.max_pause
        if limit is not None and self.paused_seconds + (until - started) > limit:
            self.stop("max_pause")
            return None
        new = self.pause_started is None
        if new:
            self.pause_started = now
            self.pauses += counts
        self.paused_until = until
        if self.pause_reason is None or reason.startswith("rate limited"):
            self.pause_reason = reason  # the cause (a 429) says more than the breaker's echo
        return Paused(until, until - now, reason, new)

    def lift(self, now: float) -> Resumed | None:
        """End the current pause now (the breaker closed)."""
        if self.pause_started is None:
            return None
        return self._resume(now, early=now < self.paused_until)

    def _resume(self, now: float, *, early: bool) -> Resumed:
        assert self.pause_started is not None
        seconds = max(0.0, min(now, self.paused_until) - self.pause_started)
        self.paused_seconds += seconds
        self.pause_started = None
        self.paused_until = -math.inf
        self.pause_reason = None
        return Resumed(seconds, early)

    # -- the journal ------------------------------------------------------------------------

    def committed(self, now: float, done: int, failed: int) -> None:
        self.done += done
        self.failed += failed
        self.uncommitted -= done + failed
        recent = self._recent
        recent.append((now, self.done + self.failed))
        while len(recent) > 2 and recent[1][0] < now - RATE_WINDOW:
            recent.popleft()

    def stop(self, reason: str, error: BaseException | None = None) -> None:
        """No item starts from now on; in-flight ones finish and are recorded."""
        if self.stopped is None:
            self.stopped = reason
        if error is not None and self.error is None:
            self.error = error

    # -- reporting ---------------------------------------------------------------------------

    @property
    def recorded(self) -> int:
        return self.skipped + self.done + self.failed

    def rate(self, now: float) -> float:
        """Items recorded per second over the last RATE_WINDOW seconds (pauses included)."""
        t0, n0 = self._recent[0]
        span = now - t0
        n = self.done + self.failed - n0
        return n / span if span > 0 and n > 0 else 0.0

    def eta(self, now: float) -> float | None:
        """Seconds until every item is recorded at the recent rate (None: unknown)."""
        left = self.total - self.recorded
        if left <= 0:
            return 0.0
        rate = self.rate(now)
        wait = max(0.0, self.paused_until - now) if self.pause_started is not None else 0.0
        return None if rate <= 0 else wait + left / rate
