"""The demo's summary and the acceptance rule it is judged by.

The rule: while the proxies fail calls (blackhole, then resets) the protected side sends at
most ``failure_threshold + half_open_max_calls`` requests per recovery period, none of its
calls keeps a caller waiting past ``call_timeout`` plus a small scheduling tolerance, the
breaker does not close while the faults are on, and it closes again once they are cleared.

Requests are counted at the chaos proxy, not at the upstream: during a blackhole or a reset
the upstream never sees them. Each side has its own proxy and every call opens its own
connection (no keep-alive), so the connections a side's proxy accepted are the requests that
side sent. The proxy's counter is read at every phase switch and every breaker transition,
which makes the count in any stretch between two of those moments exact; a request belongs
to the stretch in which the proxy accepted its connection.

A recovery period runs from one opening of the breaker to the next, as the breaker's own
StateTransition events tell. The stretch before the first opening is not a recovery period:
the breaker has no evidence yet, so every worker may already have a call in flight. It is
judged against its own bound, ``failure_threshold + workers - 1`` (the failures that open
it, plus one call per other worker), and reported separately.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

from ._ops import OpsRecord, disabled
from ._plan import FAILING, PHASES, DemoPlan, Phase
from ._stats import SideStats, Tally, Timeline, percentile

__all__ = (
    "COUNTING",
    "Check",
    "Period",
    "PhaseFigures",
    "SideSummary",
    "Summary",
    "Transition",
    "Verdict",
    "judge",
    "side_summary",
)

COUNTING = (
    "requests are counted at each side's own chaos proxy: every call opens its own connection "
    "(no keep-alive), so the connections a proxy accepted are the requests its side sent, "
    "including those the blackhole swallowed and the resets cut, which the upstream never saw"
)


@dataclass(frozen=True, slots=True)
class Transition:
    """A breaker state change, at seconds since the run's origin."""

    at: float
    old: str
    new: str
    reason: str


@dataclass(frozen=True, slots=True)
class PhaseFigures:
    """One side's figures for one phase (calls by the phase they started in)."""

    requests: int
    """Requests its proxy accepted in the phase."""
    upstream_saw: int
    """Requests the upstream itself received in the phase."""
    answered: int
    failed: int
    rejected: int
    worst_wait: float
    failed_time: float

    def to_dict(self) -> dict[str, Any]:
        return {
            "requests": self.requests,
            "upstream_saw": self.upstream_saw,
            "answered": self.answered,
            "failed": self.failed,
            "rejected": self.rejected,
            "worst_wait_s": _round(self.worst_wait),
            "failed_time_s": _round(self.failed_time),
        }


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
    phases: dict[Phase, PhaseFigures]
    proxy: dict[str, int]
    """The side's proxy's own counters at the end (ProxyStats)."""

    @property
    def requests(self) -> dict[str, int]:
        """Requests this side's proxy accepted, by phase."""
        return {phase.value: figures.requests for phase, figures in self.phases.items()}

    @property
    def reached_dead_upstream(self) -> int:
        """Requests sent while the proxy failed them (blackhole and reset)."""
        return sum(self.phases[phase].requests for phase in FAILING)

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
            "requests_by_phase": self.requests,
            "reached_dead_upstream": self.reached_dead_upstream,
            "upstream_saw_by_phase": {
                phase.value: figures.upstream_saw for phase, figures in self.phases.items()
            },
            "phases": {phase.value: figures.to_dict() for phase, figures in self.phases.items()},
            "proxy": dict(self.proxy),
        }


def side_summary(
    stats: SideStats,
    now: float,
    *,
    elapsed: float,
    sent: Tally,
    timeline: Timeline,
    upstream_saw: Sequence[float],
    proxy: dict[str, int],
) -> SideSummary:
    """One side's figures at the end of the run.

    ``now`` is the monotonic time the side's stats were taken at; ``elapsed`` the same moment
    in seconds since the run's origin, the time base of ``sent``, ``timeline`` and
    ``upstream_saw`` (when the upstream received each of this side's requests).
    """
    phases = {}
    for phase in PHASES:
        window = timeline.window(phase, elapsed)
        in_phase = stats.phases[phase]
        phases[phase] = PhaseFigures(
            requests=sent.between(*window) if window else 0,
            upstream_saw=sum(1 for at in upstream_saw if timeline.phase_at(at) is phase),
            answered=in_phase.answered,
            failed=in_phase.failed,
            rejected=in_phase.rejected,
            worst_wait=stats.worst_wait_in(phase, now),
            failed_time=in_phase.failed_time,
        )
    return SideSummary(
        calls=stats.calls,
        answered=stats.run.answered,
        failed=stats.run.failed,
        rejected=stats.run.rejected,
        in_flight_at_end=stats.in_flight,
        p50=percentile(stats.durations, 50),
        p99=percentile(stats.durations, 99),
        worst_wait=stats.worst_wait(now),
        failed_time=stats.run.failed_time,
        phases=phases,
        proxy=proxy,
    )


@dataclass(frozen=True, slots=True)
class Period:
    """One recovery period: from an opening of the breaker to the next one."""

    opened_at: float
    reason: str
    phase: str
    """The phase the breaker opened in."""
    requests: int
    """Requests the protected side's proxy accepted in this period while it failed them."""


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
    outage: tuple[float, float]
    """From the first fault to the clearing of the faults, seconds since the origin."""
    closed_after_outage: float | None
    """Seconds from the clearing of the faults to the breaker's last closing, if it closed."""

    @property
    def holds(self) -> bool:
        return all(check.ok for check in self.checks)


def judge(
    plan: DemoPlan,
    timeline: Timeline,
    end: float,
    sent: Tally,
    transitions: Sequence[Transition],
    final_state: str,
    worst_wait: float,
) -> Verdict:
    """Apply the acceptance rule to the protected side's run.

    ``end``: when the run ended; ``sent``: the protected side's proxy counter, read at
    every phase switch and breaker transition; all times in seconds since the origin.
    """
    start, stop = timeline.outage(end)
    openings = [t for t in transitions if t.new == "open"]
    in_outage = [t for t in openings if start <= t.at < stop]
    first = openings[0].at if openings else stop
    before = sent.between(start, min(max(first, start), stop))
    ends = [t.at for t in openings[1:]] + [stop]
    periods = tuple(
        Period(
            t.at,
            t.reason,
            _phase_name(plan, timeline, t.at),
            sent.between(max(t.at, start), min(ends[i], stop)),
        )
        for i, t in enumerate(openings)
        if t.at < stop
    )
    probes = sum(1 for t in transitions if t.new == "half_open" and start <= t.at < stop)
    closed_in_outage = [
        t for t in transitions if t.new == "closed" and in_outage and in_outage[0].at < t.at < stop
    ]
    closings = [t for t in transitions if t.new == "closed"]
    closed_after = None
    recovered = Phase.RECOVERY in timeline.started and final_state == "closed"
    if recovered and closings and closings[-1].at >= stop:
        closed_after = closings[-1].at - stop

    bound = plan.per_period_bound
    seen = ", ".join(str(p.requests) for p in periods) or "none"
    checks = (
        Check(
            "opened",
            bool(in_outage),
            f"the breaker opened {len(in_outage)} time(s) while the proxy failed calls, first "
            f"{in_outage[0].at - start:.2f} s into the faults (during the "
            f"{_phase_name(plan, timeline, in_outage[0].at)})"
            if in_outage
            else f"the breaker did not open while the proxy failed calls: {before} protected "
            f"requests went into the faults, failure_threshold is {plan.failure_threshold}",
        ),
        Check(
            "per_period",
            bool(periods) and all(p.requests <= bound for p in periods),
            f"requests sent into the faults per recovery period (counted at the proxy): {seen}; "
            f"allowed failure_threshold + half_open_max_calls = {plan.failure_threshold} + "
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
            "held_open",
            bool(in_outage) and not closed_in_outage,
            f"the breaker closed at {closed_in_outage[0].at:.2f} s while the proxy still "
            "failed calls"
            if closed_in_outage
            else f"the breaker stayed open through the faults: {probes} probe(s) let through, "
            "none succeeded"
            if in_outage
            else "the breaker never opened, so it could not stay open",
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
            f"the breaker closed again {closed_after:.2f} s after the faults were cleared"
            if closed_after is not None
            else f"the breaker did not close again after the faults were cleared "
            f"(ends {final_state})",
        ),
    )
    return Verdict(checks, periods, before, (start, stop), closed_after)


def _phase_name(plan: DemoPlan, timeline: Timeline, at: float) -> str:
    phase = timeline.phase_at(at) or plan.phase_at(at)
    return phase.value


def _detection_split(plan: DemoPlan, before: int, openings: Sequence[Transition]) -> str:
    if not openings:
        return "the breaker never opened"
    # Nothing succeeds during the faults, so exactly failure_threshold calls finished before
    # the opening; the rest were already admitted and in flight when it came.
    counted = min(before, plan.failure_threshold)
    return f"{counted} failures that opened it, {before - counted} admitted before it knew"


@dataclass(frozen=True, slots=True)
class Summary:
    """Everything the demo reports at the end, as text or as JSON."""

    plan: DemoPlan
    elapsed: float
    interrupted: bool
    upstream: str
    """The upstream's address, host:port."""
    timeline: Timeline
    protected: SideSummary
    unprotected: SideSummary
    transitions: tuple[Transition, ...]
    final_state: str
    breaker: dict[str, Any]
    """The breaker's own snapshot at the end (BreakerSnapshot.to_dict())."""
    verdict: Verdict
    ops: OpsRecord | None = None
    """What the ops app served during the run, and what its /health and /breakers said."""
    ops_off: str | None = None
    """Why the ops app was not served (when ``ops`` is None)."""

    def phase_of(self, at: float) -> str:
        return _phase_name(self.plan, self.timeline, at)

    def to_dict(self) -> dict[str, Any]:
        plan = self.plan
        verdict = self.verdict
        return {
            "duration_s": plan.duration,
            "elapsed_s": _round(self.elapsed),
            "interrupted": self.interrupted,
            "workers_per_side": plan.workers,
            "upstream": self.upstream,
            "phases_s": {
                phase.value: [_round(plan.phase_start(phase)), _round(plan.phase_end(phase))]
                for phase in PHASES
            },
            "phases": [
                {
                    "name": phase.value,
                    "fault": phase.fault,
                    "planned_s": [_round(plan.phase_start(phase)), _round(plan.phase_end(phase))],
                    "began_at_s": _round(self.timeline.started.get(phase)),
                }
                for phase in PHASES
            ],
            "counting": COUNTING,
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
                    {**asdict(t), "at": _round(t.at), "phase": self.phase_of(t.at)}
                    for t in self.transitions
                ],
                "snapshot": self.breaker,
            },
            "verdict": {
                "holds": verdict.holds,
                "outage_s": [_round(verdict.outage[0]), _round(verdict.outage[1])],
                "per_period_bound": plan.per_period_bound,
                "periods": [
                    {
                        "opened_at_s": _round(p.opened_at),
                        "reason": p.reason,
                        "phase": p.phase,
                        "requests": p.requests,
                    }
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
            "ops": (
                disabled(self.ops_off or "not served")
                if self.ops is None
                else self.ops.to_dict(self.phase_of)
            ),
        }


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 4)
