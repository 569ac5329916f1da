"""The demo's words: event lines and the final summary as plain text (no rich needed)."""

from __future__ import annotations

from collections.abc import Callable

from ._plan import DemoPlan, Phase
from ._verdict import SideSummary, Summary, Transition

__all__ = ("PHASE_TEXT", "phase_line", "summary_lines", "transition_line")

PHASE_TEXT = {
    Phase.HEALTHY: "healthy: answers in a few ms",
    Phase.OUTAGE: "outage: accepts, reads the request, never answers",
    Phase.RECOVERY: "recovered: answers in a few ms again",
}


def _stamp(at: float) -> str:
    return f"[{at:6.2f} s]"


def phase_line(plan: DemoPlan, phase: Phase) -> str:
    start, end = plan.phase_start(phase), plan.phase_end(phase)
    return f"{_stamp(start)} upstream {PHASE_TEXT[phase]} (until {end:.1f} s)"


def transition_line(t: Transition) -> str:
    return f"{_stamp(t.at)} breaker {t.old} -> {t.new} ({t.reason})"


def _secs(value: float | None, digits: int = 3) -> str:
    return "-" if value is None else f"{value:.{digits}f} s"


def summary_lines(summary: Summary) -> list[str]:
    plan = summary.plan
    p, u = summary.protected, summary.unprotected
    verdict = summary.verdict
    head = "interrupted after" if summary.interrupted else "ran"
    rows: list[tuple[str, str, str]] = [
        (
            "requests that reached the dead upstream",
            *_pair(p, u, lambda s: s.reached_dead_upstream),
        ),
        ("worst wait of any call", _secs(p.worst_wait), _secs(u.worst_wait)),
        ("time lost in failed calls", _secs(p.failed_time, 1), _secs(u.failed_time, 1)),
        ("calls completed (answered)", *_pair(p, u, lambda s: s.answered)),
        ("calls failed", *_pair(p, u, lambda s: s.failed)),
        ("calls rejected at once by the breaker", str(p.rejected), "-"),
        ("latency p50 (answered + failed)", _secs(p.p50), _secs(u.p50)),
        ("latency p99 (answered + failed)", _secs(p.p99), _secs(u.p99)),
        ("still waiting when the run ended", *_pair(p, u, lambda s: s.in_flight_at_end)),
    ]
    width = max(len(label) for label, _, _ in rows)
    table = [f"  {'':{width}}  {'protected':>12}  {'unprotected':>12}"]
    table += [f"  {label:{width}}  {a:>12}  {b:>12}" for label, a, b in rows]
    opened = sum(1 for t in summary.transitions if t.new == "open")
    marks = {True: "[ok]  ", False: "[FAIL]"}
    return [
        "",
        f"Summary: {head} {summary.elapsed:.1f} s of {plan.duration:g} s, "
        f"{plan.workers} workers per side",
        f"  upstream: healthy until {plan.outage_start:.1f} s, hung until {plan.outage_end:.1f} s, "
        "then recovered",
        f"  protected:   CircuitBreaker(failure_threshold={plan.failure_threshold}, "
        f"recovery_timeout={plan.recovery_timeout:g}, half_open_max_calls="
        f"{plan.half_open_max_calls}, call_timeout={plan.call_timeout:g}), "
        f"httpx timeout {plan.call_timeout:g} s",
        f"  unprotected: no breaker, httpx timeout {plan.unprotected_timeout_note}",
        "",
        *table,
        "  (A hung upstream holds each unprotected caller for its whole timeout: that side sends",
        "  few requests but its callers wait. The breaker's side fails fast instead.)",
        "",
        f"  breaker: opened {opened} time(s), ended {summary.final_state}",
        "",
        f"Verdict{' on a partial run' if summary.interrupted else ''}: "
        f"{'HOLDS' if verdict.holds else 'DOES NOT HOLD'}",
        *(f"  {marks[c.ok]} {c.detail}" for c in verdict.checks),
    ]


def _pair(p: SideSummary, u: SideSummary, get: Callable[[SideSummary], int]) -> tuple[str, str]:
    return str(get(p)), str(get(u))
