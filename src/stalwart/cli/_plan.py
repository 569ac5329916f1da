"""The demo's scenario: phase lengths and every timeout, derived from --duration and --workers.

All scaling rules live here so the live view, the verdict and the test read one source.
"""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass

__all__ = (
    "DEFAULT_DURATION",
    "DEFAULT_WORKERS",
    "MAX_DURATION",
    "MAX_WORKERS",
    "MIN_DURATION",
    "SEED_PRE_FIX_WAIT",
    "DemoPlan",
    "Phase",
)

DEFAULT_DURATION = 30.0
MIN_DURATION = 5.0
"""Below this the outage is shorter than one call timeout plus one recovery period."""
MAX_DURATION = 3600.0
DEFAULT_WORKERS = 8
MAX_WORKERS = 256

HEALTHY_SHARE = 0.25
OUTAGE_SHARE = 0.35
# The rest (40%) is recovery: long enough for a probe that hung at the very end of the
# outage to time out, the breaker to wait out one recovery period and close again.

SEED_PRE_FIX_WAIT = 30.0
"""Seed 000's site waited 30+ s (the HTTP library's default) per call before its fix."""
UNPROTECTED_TIMEOUT_CAP = 10.0


class Phase(enum.StrEnum):
    """What the upstream does to requests that arrive now."""

    HEALTHY = "healthy"
    OUTAGE = "outage"
    RECOVERY = "recovery"


@dataclass(frozen=True, slots=True, kw_only=True)
class DemoPlan:
    """Everything one demo run is configured with. Build it with :meth:`for_run`."""

    duration: float
    workers: int
    """Workers per side."""
    recovery_timeout: float
    unprotected_timeout: float
    pause: float = 0.2
    """Seconds each worker waits between two calls (after a rejection too)."""
    upstream_latency: float = 0.003
    failure_threshold: int = 3
    success_threshold: int = 1
    half_open_max_calls: int = 1
    call_timeout: float = 1.0
    """The protected side's deadline; its httpx timeout is the same."""
    tolerance: float = 0.25
    """Scheduling slack allowed on top of call_timeout before a wait counts as too long."""

    def __post_init__(self) -> None:
        if not (math.isfinite(self.duration) and self.duration >= MIN_DURATION):
            raise ValueError(f"duration must be >= {MIN_DURATION:g} s, got {self.duration}")
        if not 1 <= self.workers <= MAX_WORKERS:
            raise ValueError(f"workers must be in 1..{MAX_WORKERS}, got {self.workers}")

    @classmethod
    def for_run(
        cls, duration: float = DEFAULT_DURATION, workers: int = DEFAULT_WORKERS
    ) -> DemoPlan:
        return cls(
            duration=duration,
            workers=workers,
            # 3 s on the default run; shorter runs still fit several recovery periods.
            recovery_timeout=min(3.0, max(0.5, duration / 10)),
            # Half the run at most, so the calls hung at the start of the outage end in it.
            unprotected_timeout=min(UNPROTECTED_TIMEOUT_CAP, duration / 2),
        )

    @property
    def outage_start(self) -> float:
        return self.duration * HEALTHY_SHARE

    @property
    def outage_end(self) -> float:
        return self.duration * (HEALTHY_SHARE + OUTAGE_SHARE)

    @property
    def wait_limit(self) -> float:
        """The longest a protected call may keep its caller waiting."""
        return self.call_timeout + self.tolerance

    @property
    def per_period_bound(self) -> int:
        """Requests the protected side may send the dead upstream per recovery period."""
        return self.failure_threshold + self.half_open_max_calls

    @property
    def detection_bound(self) -> int:
        """Requests it may send before the breaker first opens: the failures that open it,
        plus one call per other worker admitted while it still had no evidence."""
        return self.failure_threshold + self.workers - 1

    def phase_at(self, elapsed: float) -> Phase:
        if elapsed < self.outage_start:
            return Phase.HEALTHY
        if elapsed < self.outage_end:
            return Phase.OUTAGE
        return Phase.RECOVERY

    def phase_end(self, phase: Phase) -> float:
        ends = {
            Phase.HEALTHY: self.outage_start,
            Phase.OUTAGE: self.outage_end,
            Phase.RECOVERY: self.duration,
        }
        return ends[phase]

    def phase_start(self, phase: Phase) -> float:
        starts = {Phase.HEALTHY: 0.0, Phase.OUTAGE: self.outage_start}
        return starts.get(phase, self.outage_end)

    @property
    def unprotected_timeout_note(self) -> str:
        why = (
            f"capped at {UNPROTECTED_TIMEOUT_CAP:g} s"
            if self.unprotected_timeout >= UNPROTECTED_TIMEOUT_CAP
            else "half of --duration, so calls hung at the start of the outage end in the run"
        )
        return (
            f"{self.unprotected_timeout:g} s: a stand-in for the seed's "
            f"{SEED_PRE_FIX_WAIT:g}+ s wait before its fix, {why}"
        )
