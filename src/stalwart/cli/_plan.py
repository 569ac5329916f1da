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
"""Below this the blackhole is shorter than one call timeout plus the workers' stagger, and
the recovery shorter than one recovery period plus a probe."""
MAX_DURATION = 3600.0
DEFAULT_WORKERS = 8
MAX_WORKERS = 256

SHARES = {"healthy": 0.15, "blackhole": 0.40, "reset": 0.15}
"""Each phase's share of the run; the rest (30%) is recovery: long enough for the breaker to
wait out one recovery period after the last reset and close again on its first probe."""
PAUSE = 0.2
"""Seconds each worker waits between two calls."""

SEED_PRE_FIX_WAIT = 30.0
"""Seed 000's site waited 30+ s (the HTTP library's default) per call before its fix."""
UNPROTECTED_TIMEOUT_CAP = 10.0
UNPROTECTED_MARGIN = 2 * PAUSE
"""The unprotected timeout is the blackhole less this: every worker starts a call within one
pause of the blackhole's start, so those calls' timeouts fire inside it."""


class Phase(enum.StrEnum):
    """What the chaos proxies in front of the upstream do to requests that arrive now."""

    HEALTHY = "healthy"
    BLACKHOLE = "blackhole"
    RESET = "reset"
    RECOVERY = "recovery"

    @property
    def fault(self) -> str:
        """The fault's name as the view and the report show it."""
        return _FAULT_NAMES[self]

    @property
    def failing(self) -> bool:
        """Whether the proxies fail the calls that arrive in this phase."""
        return self in (Phase.BLACKHOLE, Phase.RESET)

    @property
    def proxy_faults(self) -> dict[str, bool]:
        """The ChaosProxy.set() arguments for this phase; all False means clear()."""
        return {"blackhole": self is Phase.BLACKHOLE, "reset": self is Phase.RESET}


_FAULT_NAMES = {
    Phase.HEALTHY: "none",
    Phase.BLACKHOLE: "blackhole",
    Phase.RESET: "reset",
    Phase.RECOVERY: "recovered",
}
PHASES = tuple(Phase)
FAILING = tuple(p for p in PHASES if p.failing)


@dataclass(frozen=True, slots=True, kw_only=True)
class DemoPlan:
    """Everything one demo run is configured with. Build it with :meth:`for_run`."""

    duration: float
    workers: int
    """Workers per side."""
    recovery_timeout: float
    unprotected_timeout: float
    pause: float = PAUSE
    """Seconds each worker waits between two calls (after a rejection too)."""
    upstream_latency: float = 0.003
    failure_threshold: int = 3
    success_threshold: int = 1
    half_open_max_calls: int = 1
    call_timeout: float = 1.0
    """The protected side's deadline; its httpx timeout is the same."""
    tolerance: float = 0.25
    """Scheduling slack allowed on top of call_timeout before a wait counts as too long."""
    health_interval: float = 0.5
    """Seconds between two runs of the ops app's health check (start to start): at least
    one run fits in the shortest reset (0.75 s at the minimum duration)."""
    health_timeout: float = 0.8
    """The health check's timeout: a blackholed run fails after this long, well inside the
    shortest blackhole (2 s)."""

    def __post_init__(self) -> None:
        if not (math.isfinite(self.duration) and self.duration >= MIN_DURATION):
            raise ValueError(f"duration must be >= {MIN_DURATION:g} s, got {self.duration}")
        if not 1 <= self.workers <= MAX_WORKERS:
            raise ValueError(f"workers must be in 1..{MAX_WORKERS}, got {self.workers}")

    @classmethod
    def for_run(
        cls, duration: float = DEFAULT_DURATION, workers: int = DEFAULT_WORKERS
    ) -> DemoPlan:
        blackhole = duration * SHARES["blackhole"]
        return cls(
            duration=duration,
            workers=workers,
            # 3 s on the default run; shorter runs still fit several recovery periods.
            recovery_timeout=min(3.0, max(0.5, duration / 10)),
            unprotected_timeout=round(
                min(UNPROTECTED_TIMEOUT_CAP, blackhole - UNPROTECTED_MARGIN), 3
            ),
        )

    def phase_start(self, phase: Phase) -> float:
        start = 0.0
        for each in PHASES:
            if each is phase:
                return start
            start += self.duration * SHARES[each.value]
        raise AssertionError(phase)  # every Phase is in PHASES

    def phase_end(self, phase: Phase) -> float:
        if phase is Phase.RECOVERY:
            return self.duration
        return self.phase_start(phase) + self.duration * SHARES[phase.value]

    def phase_at(self, elapsed: float) -> Phase:
        for phase in PHASES:
            if elapsed < self.phase_end(phase):
                return phase
        return Phase.RECOVERY

    @property
    def outage_start(self) -> float:
        """When the proxies start failing calls (the blackhole begins)."""
        return self.phase_start(Phase.BLACKHOLE)

    @property
    def outage_end(self) -> float:
        """When the proxies stop failing calls (the faults are cleared)."""
        return self.phase_start(Phase.RECOVERY)

    @property
    def wait_limit(self) -> float:
        """The longest a protected call may keep its caller waiting."""
        return self.call_timeout + self.tolerance

    @property
    def per_period_bound(self) -> int:
        """Requests the protected side may send into the faults per recovery period."""
        return self.failure_threshold + self.half_open_max_calls

    @property
    def detection_bound(self) -> int:
        """Requests it may send before the breaker first opens: the failures that open it,
        plus one call per other worker admitted while it still had no evidence."""
        return self.failure_threshold + self.workers - 1

    @property
    def unprotected_timeout_note(self) -> str:
        why = (
            f"capped at {UNPROTECTED_TIMEOUT_CAP:g} s"
            if self.unprotected_timeout >= UNPROTECTED_TIMEOUT_CAP
            else f"the blackhole less {UNPROTECTED_MARGIN:g} s, so those callers' timeouts fire "
            "inside it"
        )
        return (
            f"{self.unprotected_timeout:g} s: a stand-in for the seed's "
            f"{SEED_PRE_FIX_WAIT:g}+ s wait before its fix, {why}"
        )
