"""Sliding windows of call outcomes for the failure-rate and slow-call-rate breaker modes.

Both windows are O(1) per recorded call and keep running totals, so reading the rates
costs nothing. They are plain bookkeeping: the caller holds the breaker's lock.
"""

from __future__ import annotations

import math
from typing import Protocol

__all__ = ("CountWindow", "TimeWindow", "Window")

_FAILED = 1
_SLOW = 2


class Window(Protocol):
    def record(self, now: float, failed: bool, slow: bool) -> None: ...

    def totals(self, now: float) -> tuple[int, int, int]:
        """(calls, failures, slow calls) currently inside the window."""
        ...

    def clear(self) -> None: ...


class CountWindow:
    """The last ``size`` calls, as a ring of outcome codes."""

    __slots__ = ("_calls", "_failures", "_next", "_ring", "_slow", "size")

    def __init__(self, size: int) -> None:
        self.size = size
        self._ring = [-1] * size  # -1: empty slot
        self.clear()

    def clear(self) -> None:
        self._ring[:] = [-1] * self.size
        self._next = 0
        self._calls = self._failures = self._slow = 0

    def record(self, now: float, failed: bool, slow: bool) -> None:
        code = (_FAILED if failed else 0) | (_SLOW if slow else 0)
        i = self._next
        old = self._ring[i]
        if old < 0:
            self._calls += 1
        else:
            self._failures -= old & _FAILED
            self._slow -= (old & _SLOW) >> 1
        self._ring[i] = code
        self._failures += code & _FAILED
        self._slow += (code & _SLOW) >> 1
        self._next = (i + 1) % self.size

    def totals(self, now: float) -> tuple[int, int, int]:
        return self._calls, self._failures, self._slow


class TimeWindow:
    """The calls of the last ``duration`` seconds, aggregated in fixed-width buckets.

    One-second buckets (resilience4j's choice) for windows of 10 s to 300 s; shorter
    windows get 10 finer buckets and longer ones 300 coarser buckets, so memory and the
    catch-up after an idle period stay bounded.
    """

    __slots__ = ("_calls", "_failures", "_head", "_slow", "_totals", "buckets", "duration", "width")

    def __init__(self, duration: float) -> None:
        self.duration = duration
        self.buckets = min(max(math.ceil(duration), 10), 300)
        self.width = duration / self.buckets
        self._calls = [0] * self.buckets
        self._failures = [0] * self.buckets
        self._slow = [0] * self.buckets
        self.clear()

    def clear(self) -> None:
        n = self.buckets
        self._calls[:] = [0] * n
        self._failures[:] = [0] * n
        self._slow[:] = [0] * n
        self._totals = [0, 0, 0]
        self._head: int | None = None  # absolute index of the newest bucket

    def _advance(self, now: float) -> int:
        """Move the head to ``now``'s bucket, emptying the buckets that fell out."""
        index = math.floor(now / self.width)
        head = self._head
        if head is None:
            self._head = index
            return index % self.buckets
        if index > head:
            # Only the buckets between the old head and the new one expire; after a long
            # idle period that is every bucket, which is at most `buckets` steps.
            for absolute in range(head + 1, min(index, head + self.buckets) + 1):
                self._drop(absolute % self.buckets)
            self._head = index
            head = index
        # A time before the head (a clock read taken before another thread's record)
        # lands in the head bucket: close enough, and the totals stay consistent.
        return head % self.buckets

    def _drop(self, slot: int) -> None:
        totals = self._totals
        totals[0] -= self._calls[slot]
        totals[1] -= self._failures[slot]
        totals[2] -= self._slow[slot]
        self._calls[slot] = self._failures[slot] = self._slow[slot] = 0

    def record(self, now: float, failed: bool, slow: bool) -> None:
        slot = self._advance(now)
        totals = self._totals
        self._calls[slot] += 1
        totals[0] += 1
        if failed:
            self._failures[slot] += 1
            totals[1] += 1
        if slow:
            self._slow[slot] += 1
            totals[2] += 1

    def totals(self, now: float) -> tuple[int, int, int]:
        if self._head is not None:
            self._advance(now)
        calls, failures, slow = self._totals
        return calls, failures, slow
