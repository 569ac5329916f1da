"""What the demo measured: each side's outcomes, latencies and waits (including calls in
flight), per phase too; when each phase began; and counters read at chosen moments."""

from __future__ import annotations

import bisect
import enum
import itertools
import math
from dataclasses import dataclass, field

from ._plan import PHASES, Phase

__all__ = ("Outcome", "Outcomes", "SideStats", "Tally", "Timeline", "percentile")


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
class Outcomes:
    """How a set of calls ended: the whole run's, or those that started in one phase."""

    answered: int = 0
    failed: int = 0
    rejected: int = 0
    worst_wait: float = 0.0
    """The longest a finished call waited."""
    failed_time: float = 0.0
    """Seconds spent in calls that failed: time lost to the failing upstream."""

    def record(self, waited: float, outcome: Outcome) -> None:
        self.worst_wait = max(self.worst_wait, waited)
        if outcome is Outcome.REJECTED:
            self.rejected += 1
        elif outcome is Outcome.ANSWERED:
            self.answered += 1
        else:
            self.failed += 1
            self.failed_time += waited


@dataclass(slots=True)
class SideStats:
    """Counters of one side. Touched only from the event loop's thread."""

    calls: int = 0
    run: Outcomes = field(default_factory=Outcomes)
    phases: dict[Phase, Outcomes] = field(
        default_factory=lambda: {phase: Outcomes() for phase in PHASES}
    )
    """By the phase each call started in."""
    durations: list[float] = field(default_factory=list)
    """Seconds taken by each call that reached for the upstream (answered or failed)."""
    phase: Phase = Phase.HEALTHY
    """The phase now: calls are counted in the phase they start in."""
    _in_flight: dict[int, tuple[float, Phase]] = field(default_factory=dict)
    _tokens: itertools.count[int] = field(default_factory=itertools.count)

    def begin(self, now: float) -> int:
        token = next(self._tokens)
        self._in_flight[token] = (now, self.phase)
        self.calls += 1
        return token

    def end(self, token: int, now: float, outcome: Outcome) -> None:
        start, phase = self._in_flight.pop(token)
        waited = now - start
        self.run.record(waited, outcome)
        self.phases[phase].record(waited, outcome)
        if outcome is not Outcome.REJECTED:
            self.durations.append(waited)

    @property
    def in_flight(self) -> int:
        return len(self._in_flight)

    def worst_wait(self, now: float) -> float:
        """The longest any caller waited, counting the calls still waiting at ``now``."""
        waiting = (now - start for start, _ in self._in_flight.values())
        return max(self.run.worst_wait, *waiting, 0.0)

    def worst_wait_in(self, phase: Phase, now: float) -> float:
        """As :meth:`worst_wait`, for the calls that started in ``phase``."""
        waiting = (now - start for start, began in self._in_flight.values() if began is phase)
        return max(self.phases[phase].worst_wait, *waiting, 0.0)


@dataclass(slots=True)
class Timeline:
    """When each phase really began (seconds since the run's origin), as the run switched it."""

    started: dict[Phase, float] = field(default_factory=dict)

    def begin(self, phase: Phase, at: float) -> None:
        self.started[phase] = at

    def window(self, phase: Phase, end: float) -> tuple[float, float] | None:
        """The stretch ``phase`` lasted, up to ``end`` (the run's end); None if it never began."""
        start = self.started.get(phase)
        if start is None:
            return None
        later = [self.started[p] for p in PHASES[PHASES.index(phase) + 1 :] if p in self.started]
        return start, min([end, *later])

    def phase_at(self, at: float) -> Phase | None:
        """The phase in force at ``at``; None before the first one began."""
        current = None
        for phase in PHASES:
            start = self.started.get(phase)
            if start is not None and start <= at:
                current = phase
        return current

    def outage(self, end: float) -> tuple[float, float]:
        """From the first fault to the clearing of the faults (or ``end``); empty at ``end``
        when no fault was switched on before the run ended."""
        start = self.started.get(Phase.BLACKHOLE, self.started.get(Phase.RESET, end))
        stop = self.started.get(Phase.RECOVERY, end)
        return min(start, stop), stop


@dataclass(slots=True)
class Tally:
    """A growing counter (a proxy's accepted connections) read at chosen moments.

    Reading it at every moment that bounds a stretch to count (phase switches, breaker
    transitions, the end) makes the count over any such stretch exact.
    """

    marks: list[tuple[float, int]] = field(default_factory=list)

    def mark(self, at: float, value: int) -> None:
        bisect.insort(self.marks, (at, value))

    def at(self, when: float) -> int:
        """The counter's value at the last reading at or before ``when`` (0 before any)."""
        i = bisect.bisect_right(self.marks, (when, math.inf))
        return self.marks[i - 1][1] if i else 0

    def between(self, start: float, stop: float) -> int:
        """How much the counter grew from ``start`` to ``stop``."""
        if stop <= start:
            return 0
        return self.at(stop) - self.at(start)
