"""What one side's workers measured: outcomes, latencies and waits, including calls in flight."""

from __future__ import annotations

import enum
import itertools
import math
from dataclasses import dataclass, field

__all__ = ("Outcome", "SideStats", "percentile")


class Outcome(enum.Enum):
    ANSWERED = "answered"
    FAILED = "failed"
    """An error or a timeout: the call reached for the upstream and got nothing usable."""
    REJECTED = "rejected"
    """Refused by the breaker without touching the upstream."""


def percentile(values: list[float], q: float) -> float | None:
    """Nearest-rank percentile (q in 0..100); None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


@dataclass(slots=True)
class SideStats:
    """Counters of one side. Touched only from the event loop's thread."""

    calls: int = 0
    answered: int = 0
    failed: int = 0
    rejected: int = 0
    durations: list[float] = field(default_factory=list)
    """Seconds taken by each call that reached for the upstream (answered or failed)."""
    worst_finished: float = 0.0
    failed_time: float = 0.0
    """Seconds the workers spent in calls that failed: time lost to the dead upstream."""
    _in_flight: dict[int, float] = field(default_factory=dict)
    _tokens: itertools.count[int] = field(default_factory=itertools.count)

    def begin(self, now: float) -> int:
        token = next(self._tokens)
        self._in_flight[token] = now
        self.calls += 1
        return token

    def end(self, token: int, now: float, outcome: Outcome) -> None:
        waited = now - self._in_flight.pop(token)
        self.worst_finished = max(self.worst_finished, waited)
        if outcome is Outcome.REJECTED:
            self.rejected += 1
            return
        self.durations.append(waited)
        if outcome is Outcome.ANSWERED:
            self.answered += 1
        else:
            self.failed += 1
            self.failed_time += waited

    @property
    def in_flight(self) -> int:
        return len(self._in_flight)

    def worst_wait(self, now: float) -> float:
        """The longest any caller waited, counting the calls still waiting at ``now``."""
        waiting = (now - start for start in self._in_flight.values())
        return max(self.worst_finished, *waiting, 0.0)
