"""Per-check statistics over a bounded history: the sans-I/O bookkeeping behind snapshots.

A :class:`CheckStats` is told each completed run and keeps the last ``size`` of them, the
failure streak, and the aggregates (availability, average and p95 duration) recomputed once
per run, so reading them for a report costs nothing.
"""

from __future__ import annotations

import math
from collections import deque

from ._model import CheckResult

__all__ = ("CheckStats", "percentile")


def percentile(values: list[float], q: float) -> float:
    """The nearest-rank ``q`` percentile (0 < q <= 100) of ``values``; 0.0 when empty."""
    if not values:
        return 0.0
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100.0 * len(ordered)))
    return ordered[rank - 1]


class CheckStats:
    """One check's last runs and what they add up to. Not thread-safe: the owner locks."""

    __slots__ = (
        "availability",
        "avg_duration",
        "consecutive_failures",
        "history",
        "last",
        "p95_duration",
        "total_failures",
        "total_runs",
    )

    def __init__(self, size: int) -> None:
        self.history: deque[CheckResult] = deque(maxlen=size)
        self.last: CheckResult | None = None
        self.consecutive_failures = 0
        self.total_runs = 0
        self.total_failures = 0
        self.availability = 0.0
        self.avg_duration = 0.0
        self.p95_duration = 0.0

    def record(self, result: CheckResult) -> None:
        """Count a completed run (a warning is not a failure)."""
        self.history.append(result)
        self.last = result
        self.total_runs += 1
        if result.ok:
            self.consecutive_failures = 0
        else:
            self.consecutive_failures += 1
            self.total_failures += 1
        runs = len(self.history)
        durations = [r.duration for r in self.history]
        self.availability = sum(1 for r in self.history if r.ok) / runs
        self.avg_duration = sum(durations) / runs
        self.p95_duration = percentile(durations, 95.0)

    def reset_streak(self) -> None:
        self.consecutive_failures = 0
