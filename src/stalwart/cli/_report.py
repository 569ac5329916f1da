"""The demo's words: event lines and the final summary as plain text (no rich needed)."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any

from ..poller import PollAnswer, PollSettings, decide
from ._plan import PHASES, DemoPlan, Phase
from ._verdict import SideSummary, Summary, Transition

__all__ = (
    "PHASE_TEXT",
    "dashboard_line",
    "label",
    "ops_line",
    "phase_line",
    "poller_line",
    "summary_lines",
    "transition_line",
)

PHASE_TEXT = {
    Phase.HEALTHY: "the proxies forward, the upstream answers in a few ms",
    Phase.BLACKHOLE: "the proxies accept and never answer, so the callers' timeouts fire",
    Phase.RESET: "the proxies reset every connection, so calls fail at once",
    Phase.RECOVERY: "faults cleared, the upstream answers in a few ms again",
}


def label(phase: Phase) -> str:
    """How the view and the report name a phase: by its fault, "healthy" before any."""
    return phase.value if phase is Phase.HEALTHY else phase.fault


def _stamp(at: float) -> str:
    return f"[{at:6.2f} s]"


def phase_line(plan: DemoPlan, phase: Phase, at: float) -> str:
    """The line announcing that ``phase`` began at ``at`` (seconds since the origin)."""
    return f"{_stamp(at)} {label(phase)}: {PHASE_TEXT[phase]} (until {plan.phase_end(phase):.1f} s)"


def ops_line(urls: str) -> str:
    """The line saying where the ops app is served while the demo runs (``urls_text``)."""
    return f"ops app: {urls}  (open /dashboard, or watch /health and /breakers change)"


def dashboard_line(url: str) -> str:
    """The line pointing at the live dashboard as the outage begins."""
    return f"the outage is on: watch it live at {url}/dashboard"


def poller_line(hint: Mapping[str, Any]) -> str:
    """What a page polling the breaker (stalwart-poller.js, AdaptivePoller) does now, and why:
    the poller's own decision on the breaker's hint."""
    decision = decide(
        PollAnswer(200, body=hint), errors=0, settings=_POLLER, random=0.5, now=time.time()
    )
    return f"a page polling it waits {decision.delay:g} s: {decision.reason}"


_POLLER = PollSettings()


def transition_line(t: Transition, phase: str) -> str:
    return f"{_stamp(t.at)} breaker {t.old} -> {t.new} ({t.reason}) during {phase}"


def _secs(value: float | None, digits: int = 3) -> str:
    return "-" if value is None else f"{value:.{digits}f} s"


def _phases_line(summary: Summary) -> str:
    """The phases as they ran (planned times for those the run did not reach)."""
    plan, started = summary.plan, summary.timeline.started
    starts = [started.get(phase, plan.phase_start(phase)) for phase in PHASES]
    parts = [
        f"{label(phase)} {start:.1f}-{stop:.1f} s"
        for phase, start, stop in zip(PHASES, starts, starts[1:], strict=False)
    ]
    parts.append(f"{Phase.RECOVERY.fault} from {starts[-1]:.1f} s")
    return "  faults: " + ", ".join(parts)


def _phase_table(summary: Summary) -> list[str]:
    header = (
        "phase",
        "side",
        "requests",
        "upstream saw",
        "answered",
        "failed",
        "rejected",
        "worst wait",
    )
    rows: list[tuple[str, ...]] = []
    for phase in PHASES:
        for name, side in (("protected", summary.protected), ("unprotected", summary.unprotected)):
            f = side.phases[phase]
            rows.append(
                (
                    label(phase) if name == "protected" else "",
                    name,
                    str(f.requests),
                    str(f.upstream_saw),
                    str(f.answered),
                    str(f.failed),
                    str(f.rejected) if name == "protected" else "-",
                    _secs(f.worst_wait),
                )
            )
    widths = [max(len(r[i]) for r in (header, *rows)) for i in range(len(header))]

    def line(cells: tuple[str, ...]) -> str:
        left = [f"{c:<{w}}" for c, w in zip(cells[:2], widths[:2], strict=True)]
        right = [f"{c:>{w}}" for c, w in zip(cells[2:], widths[2:], strict=True)]
        return "  " + "  ".join(left + right)

    return [line(header), *(line(r) for r in rows)]


def summary_lines(summary: Summary) -> list[str]:
    plan = summary.plan
    p, u = summary.protected, summary.unprotected
    verdict = summary.verdict
    head = "interrupted after" if summary.interrupted else "ran"
    rows: list[tuple[str, str, str]] = [
        (
            "requests sent into the faults (at the proxy)",
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
        f"  upstream: a real HTTP server on {summary.upstream}, healthy throughout; each side "
        "calls it through its own ChaosProxy",
        _phases_line(summary),
        f"  protected:   CircuitBreaker(failure_threshold={plan.failure_threshold}, "
        f"recovery_timeout={plan.recovery_timeout:g}, half_open_max_calls="
        f"{plan.half_open_max_calls}, call_timeout={plan.call_timeout:g}), "
        f"httpx timeout {plan.call_timeout:g} s",
        f"  unprotected: no breaker, httpx timeout {plan.unprotected_timeout_note}",
        *_ops_lines(summary),
        "",
        *table,
        "  (A blackhole holds each unprotected caller for its whole timeout; resets fail fast but",
        "  every unprotected call still hits the failing path. The breaker's side is rejected at",
        "  once instead, and lets one probe through per recovery period.)",
        "",
        "  By phase (calls by the phase they started in; requests by when the side's proxy",
        "  accepted them, so a call started just before a switch may count on either side of it):",
        *_phase_table(summary),
        "",
        *COUNTING_LINES,
        "",
        f"  breaker: opened {opened} time(s), ended {summary.final_state}",
        "",
        f"Verdict{' on a partial run' if summary.interrupted else ''}: "
        f"{'HOLDS' if verdict.holds else 'DOES NOT HOLD'}",
        *(f"  {marks[c.ok]} {c.detail}" for c in verdict.checks),
    ]


def _ops_lines(summary: Summary) -> list[str]:
    if summary.ops is None:
        return [f"  ops app: not served, {summary.ops_off or 'not asked for'}"]
    return summary.ops.lines(label, summary.phase_of)


COUNTING_LINES = (
    "  Counting: every call opens its own connection (no keep-alive) and each side has its own",
    "  proxy, so the connections a side's proxy accepted are the requests that side sent, those",
    "  the blackhole swallowed and the resets cut included: the upstream never sees those. The",
    "  proxy's counter is read at every phase switch and every breaker transition, so each",
    "  recovery period's count is exact.",
)


def _pair(p: SideSummary, u: SideSummary, get: Callable[[SideSummary], int]) -> tuple[str, str]:
    return str(get(p)), str(get(u))
