"""The demo's summary and the acceptance rule it is judged by.

The rule: during the outage the protected side sends the dead upstream at most
``failure_threshold + half_open_max_calls`` requests per recovery period, and none of its
calls keeps a caller waiting past ``call_timeout`` plus a small scheduling tolerance.

A recovery period runs from one opening of the breaker to the next, as the breaker's own
StateTransition events tell; requests are placed in periods by when the upstream saw them.
The stretch before the first opening is not a recovery period: the breaker has no evidence
yet, so every worker may already have a call in flight. It is judged against its own bound,
``failure_threshold + workers - 1`` (the failures that open it, plus one call per other
worker), and reported separately.
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

from ._plan import DemoPlan, Phase
from ._stats import SideStats, percentile

__all__ = ("Check", "Period", "SideSummary", "Summary", "Transition", "Verdict", "judge")


@dataclass(frozen=True, slots=True)
class Transition:
    """A breaker state change, at seconds since the run's origin."""

    at: float
    old: str
    new: str
    reason: str


@dataclass(frozen=True, slots=True)
class SideSummary:
    calls: int
    answered: int
    failed: int
    rejected: int
    in_flight_at_end: int
    p50: float | None
    p99: float | None
    worst_wait: float
    failed_time: float
    requests: dict[str, int]
    """Requests the upstream received from this side, by phase."""

    @property
    def reached_dead_upstream(self) -> int:
        return self.requests[Phase.OUTAGE.value]

    @classmethod
    def from_stats(cls, stats: SideStats, now: float, requests: dict[str, int]) -> SideSummary:
        return cls(
            calls=stats.calls,
            answered=stats.answered,
            failed=stats.failed,
            rejected=stats.rejected,
            in_flight_at_end=stats.in_flight,
            p50=percentile(stats.durations, 50),
            p99=percentile(stats.durations, 99),
            worst_wait=stats.worst_wait(now),
            failed_time=stats.failed_time,
            requests=requests,
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "calls": self.calls,
            "answered": self.answered,
            "failed": self.failed,
            "rejected": self.rejected,
            "in_flight_at_end": self.in_flight_at_end,
            "latency_p50_s": _round(self.p50),
            "latency_p99_s": _round(self.p99),
            "worst_wait_s": _round(self.worst_wait),
            "failed_time_s": _round(self.failed_time),
            "requests_by_phase": dict(self.requests),
            "reached_dead_upstream": self.reached_dead_upstream,
        }


@dataclass(frozen=True, slots=True)
class Period:
    """One recovery period: from an opening of the breaker to the next one."""

    opened_at: float
    reason: str
    requests: int
    """Requests the upstream saw from the protected side in this period, during the outage."""


@dataclass(frozen=True, slots=True)
class Check:
    name: str
    ok: bool
    detail: str


@dataclass(frozen=True, slots=True)
class Verdict:
    checks: tuple[Check, ...]
    periods: tuple[Period, ...]
    before_first_opening: int
    closed_after_outage: float | None
    """Seconds from the end of the outage to the breaker's last closing, if it closed."""

    @property
    def holds(self) -> bool:
        return all(check.ok for check in self.checks)


def judge(
    plan: DemoPlan,
    outage_requests: Sequence[float],
    transitions: Sequence[Transition],
    final_state: str,
    worst_wait: float,
) -> Verdict:
    """Apply the acceptance rule to the protected side's run.

    ``outage_requests``: when (seconds since origin) the upstream saw each protected request
    that arrived during the outage.
    """
    openings = [t for t in transitions if t.new == "open"]
    starts = [t.at for t in openings]
    counts = [0] * len(openings)
    before = 0
    for at in outage_requests:
        i = bisect.bisect_right(starts, at) - 1
        if i < 0:
            before += 1
        else:
            counts[i] += 1
    # Openings after the outage have no outage requests to count.
    periods = tuple(
        Period(t.at, t.reason, n)
        for t, n in zip(openings, counts, strict=True)
        if t.at < plan.outage_end
    )
    in_outage = [t for t in openings if plan.outage_start <= t.at < plan.outage_end]
    closings = [t for t in transitions if t.new == "closed"]
    closed_after = None
    if final_state == "closed" and closings and closings[-1].at >= plan.outage_end:
        closed_after = closings[-1].at - plan.outage_end

    bound = plan.per_period_bound
    seen = ", ".join(str(p.requests) for p in periods) or "none"
    checks = (
        Check(
            "opened",
            bool(in_outage),
            f"the breaker opened {len(in_outage)} time(s) during the outage, first "
            f"{in_outage[0].at - plan.outage_start:.2f} s into it"
            if in_outage
            else f"the breaker did not open during the outage: {before} protected calls reached "
            f"the dead upstream, failure_threshold is {plan.failure_threshold}",
        ),
        Check(
            "per_period",
            bool(periods) and all(p.requests <= bound for p in periods),
            f"requests to the dead upstream per recovery period: {seen}; allowed "
            f"failure_threshold + half_open_max_calls = {plan.failure_threshold} + "
            f"{plan.half_open_max_calls} = {bound}",
        ),
        Check(
            "before_first_opening",
            before <= plan.detection_bound,
            f"before the first opening: {before} requests "
            f"({_detection_split(plan, before, openings)}); allowed failure_threshold + "
            f"workers - 1 = {plan.failure_threshold} + {plan.workers - 1} = {plan.detection_bound}",
        ),
        Check(
            "worst_wait",
            worst_wait <= plan.wait_limit,
            f"worst protected wait {worst_wait:.3f} s; allowed call_timeout + tolerance = "
            f"{plan.call_timeout:g} + {plan.tolerance:g} = {plan.wait_limit:g} s",
        ),
        Check(
            "recovered",
            closed_after is not None,
            f"the breaker closed again {closed_after:.2f} s after the upstream recovered"
            if closed_after is not None
            else f"the breaker did not close again after the outage (ends {final_state})",
        ),
    )
    return Verdict(checks, periods, before, closed_after)


def _detection_split(plan: DemoPlan, before: int, openings: Sequence[Transition]) -> str:
    if not openings:
        return "the breaker never opened"
    # Nothing succeeds during the outage, so exactly failure_threshold calls finished before
    # the opening; the rest were already admitted and in flight when it came.
    counted = min(before, plan.failure_threshold)
    return f"{counted} failures that opened it, {before - counted} admitted before it knew"


@dataclass(frozen=True, slots=True)
class Summary:
    """Everything the demo reports at the end, as text or as JSON."""

    plan: DemoPlan
    elapsed: float
    interrupted: bool
    protected: SideSummary
    unprotected: SideSummary
    transitions: tuple[Transition, ...]
    final_state: str
    breaker: dict[str, Any]
    """The breaker's own snapshot at the end (BreakerSnapshot.to_dict())."""
    verdict: Verdict

    def to_dict(self) -> dict[str, Any]:
        plan = self.plan
        verdict = self.verdict
        return {
            "duration_s": plan.duration,
            "elapsed_s": _round(self.elapsed),
            "interrupted": self.interrupted,
            "workers_per_side": plan.workers,
            "phases_s": {
                phase.value: [_round(plan.phase_start(phase)), _round(plan.phase_end(phase))]
                for phase in Phase
            },
            "protected": {
                "breaker_settings": {
                    "failure_threshold": plan.failure_threshold,
                    "success_threshold": plan.success_threshold,
                    "half_open_max_calls": plan.half_open_max_calls,
                    "recovery_timeout_s": plan.recovery_timeout,
                    "call_timeout_s": plan.call_timeout,
                },
                "http_timeout_s": plan.call_timeout,
                **self.protected.to_dict(),
            },
            "unprotected": {
                "http_timeout_s": plan.unprotected_timeout,
                "http_timeout_note": plan.unprotected_timeout_note,
                **self.unprotected.to_dict(),
            },
            "breaker": {
                "final_state": self.final_state,
                "opened": sum(1 for t in self.transitions if t.new == "open"),
                "transitions": [
                    {**asdict(t), "at": _round(t.at), "phase": plan.phase_at(t.at).value}
                    for t in self.transitions
                ],
                "snapshot": self.breaker,
            },
            "verdict": {
                "holds": verdict.holds,
                "per_period_bound": plan.per_period_bound,
                "periods": [
                    {"opened_at_s": _round(p.opened_at), "reason": p.reason, "requests": p.requests}
                    for p in verdict.periods
                ],
                "before_first_opening": {
                    "requests": verdict.before_first_opening,
                    "bound": plan.detection_bound,
                },
                "worst_wait_s": _round(self.protected.worst_wait),
                "wait_limit_s": plan.wait_limit,
                "closed_after_outage_s": _round(verdict.closed_after_outage),
                "checks": [asdict(c) for c in verdict.checks],
            },
        }


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 4)
