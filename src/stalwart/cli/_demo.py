"""`stalwart demo`: the outage scenario end to end: upstream, both sides, live view, verdict."""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import sys
import time

from rich.console import Console

from .. import CircuitBreaker, Event, StateTransition
from ._callers import Call, make_client, protected_call, unprotected_call, work
from ._plan import DemoPlan, Phase
from ._report import phase_line, summary_lines, transition_line
from ._stats import SideStats
from ._upstream import FlakyUpstream
from ._verdict import SideSummary, Summary, Transition, judge
from ._view import LineView, LiveView, QuietView, SideRow, Status, View

__all__ = ("command", "run_demo")

TICK = 0.25
"""Seconds between two frames of the live view."""
EXIT_INTERRUPTED = 130


def command(duration: float, workers: int, *, as_json: bool) -> int:
    """Run the demo as the CLI does; the exit status says whether the verdict holds."""
    plan = DemoPlan.for_run(duration, workers)
    console = Console(soft_wrap=True)
    view: View
    with contextlib.ExitStack() as stack:
        if as_json:
            view = LineView(sys.stderr)  # stdout carries the JSON only
        elif console.is_terminal:
            view = stack.enter_context(LiveView(console))
        else:
            view = LineView(sys.stdout)
        try:
            summary = asyncio.run(_run_interruptible(plan, view))
        except KeyboardInterrupt:  # only where the loop cannot catch SIGINT itself
            print("interrupted", file=sys.stderr)
            return EXIT_INTERRUPTED
    if as_json:
        print(json.dumps(summary.to_dict(), indent=2))
    else:
        for line in summary_lines(summary):
            console.print(line, markup=False, highlight=False)
    if summary.interrupted:
        return EXIT_INTERRUPTED
    return 0 if summary.verdict.holds else 1


async def _run_interruptible(plan: DemoPlan, view: View) -> Summary:
    """Ctrl-C ends the run early but still shuts down cleanly and reports what it saw."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    try:
        loop.add_signal_handler(signal.SIGINT, stop.set)
    except (NotImplementedError, RuntimeError, ValueError):  # Windows, or not the main thread
        return await run_demo(plan, view, stop)
    try:
        return await run_demo(plan, view, stop)
    finally:
        loop.remove_signal_handler(signal.SIGINT)


async def run_demo(
    plan: DemoPlan, view: View | None = None, stop: asyncio.Event | None = None
) -> Summary:
    """Run the scenario for ``plan.duration`` seconds (or until ``stop`` is set) and judge it."""
    view = view or QuietView()
    stop = stop or asyncio.Event()
    stats = {"protected": SideStats(), "unprotected": SideStats()}
    transitions: list[Transition] = []
    breaker = CircuitBreaker(
        "demo-upstream",
        failure_threshold=plan.failure_threshold,
        success_threshold=plan.success_threshold,
        half_open_max_calls=plan.half_open_max_calls,
        recovery_timeout=plan.recovery_timeout,
        call_timeout=plan.call_timeout,
    )
    # Clients first: building one loads TLS certificates, tens of ms the run should not pay.
    async with (
        make_client(plan.call_timeout, plan.workers) as protected_client,
        make_client(plan.unprotected_timeout, plan.workers) as unprotected_client,
    ):
        # The breaker's default clock is time.monotonic too, so its event times and the
        # upstream's request times share this origin.
        origin = time.monotonic()

        def on_transition(event: Event) -> None:
            assert isinstance(event, StateTransition)
            moved = Transition(event.at - origin, event.old.value, event.new.value, event.reason)
            transitions.append(moved)
            view.event(transition_line(moved))

        breaker.add_listener(on_transition, StateTransition)
        async with FlakyUpstream(plan, origin) as upstream:
            workers = _start_workers(
                plan,
                stats,
                protected_call(breaker, protected_client, upstream.url),
                unprotected_call(unprotected_client, upstream.url),
            )
            try:
                end = await _watch(plan, origin, breaker, stats, workers, view, stop)
                # Taken before the workers are cancelled: calls still waiting count as waiting.
                summary = _conclude(
                    plan, origin, end, breaker, stats, upstream, transitions, stop.is_set()
                )
            finally:
                breaker.remove_listener(on_transition)
                for task in workers:
                    task.cancel()
                await asyncio.gather(*workers, return_exceptions=True)
    return summary


def _start_workers(
    plan: DemoPlan, stats: dict[str, SideStats], protected: Call, unprotected: Call
) -> list[asyncio.Task[None]]:
    calls = {"protected": protected, "unprotected": unprotected}
    return [
        # Staggered starts, so the workers do not call in lockstep.
        asyncio.create_task(
            work(calls[side], stats[side], pause=plan.pause, delay=i * plan.pause / plan.workers)
        )
        for side in calls
        for i in range(plan.workers)
    ]


def _conclude(
    plan: DemoPlan,
    origin: float,
    end: float,
    breaker: CircuitBreaker,
    stats: dict[str, SideStats],
    upstream: FlakyUpstream,
    transitions: list[Transition],
    interrupted: bool,
) -> Summary:
    final_state = breaker.state.value
    sides = {
        side: SideSummary.from_stats(stats[side], end, upstream.by_phase(side)) for side in stats
    }
    outage_requests = [
        s.at for s in upstream.seen if s.side == "protected" and s.phase is Phase.OUTAGE
    ]
    return Summary(
        plan=plan,
        elapsed=end - origin,
        interrupted=interrupted,
        protected=sides["protected"],
        unprotected=sides["unprotected"],
        transitions=tuple(transitions),
        final_state=final_state,
        breaker=breaker.snapshot().to_dict(),
        verdict=judge(
            plan, outage_requests, transitions, final_state, sides["protected"].worst_wait
        ),
    )


async def _watch(
    plan: DemoPlan,
    origin: float,
    breaker: CircuitBreaker,
    stats: dict[str, SideStats],
    workers: list[asyncio.Task[None]],
    view: View,
    stop: asyncio.Event,
) -> float:
    """Announce phases and redraw the view until the run is over; returns the end time."""
    phase: Phase | None = None
    while True:
        now = time.monotonic()
        elapsed = now - origin
        if elapsed >= plan.duration or stop.is_set():
            return now
        for task in workers:
            if task.done():
                task.result()  # a worker died of a bug: fail loudly rather than run short-handed
        if (current := plan.phase_at(elapsed)) is not phase:
            phase = current
            view.event(phase_line(plan, phase))
        rows = (
            SideRow.of("protected", stats["protected"], now, breaker.state.value),
            SideRow.of("unprotected", stats["unprotected"], now, None),
        )
        view.update(Status(plan, elapsed, rows))
        # Wake at the phase boundary too, so its line is printed when the phase changes.
        wake = min(TICK, plan.phase_end(phase) - elapsed)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), max(wake, 0.001))
