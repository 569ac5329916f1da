"""`stalwart demo`: the outage scenario end to end: upstream, both sides, live view, verdict."""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import sys
import time
import webbrowser
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace

from rich.console import Console

from .. import CircuitBreaker
from ..events import Event, StateTransition
from ._callers import Call, make_client, protected_call, unprotected_call, work
from ._ops import HEALTH_SIDE, OPS_SWITCHED_OFF, OpsServer, OpsUnavailable, urls_text
from ._plan import PHASES, DemoPlan, Phase
from ._report import (
    dashboard_line,
    ops_line,
    phase_line,
    poller_line,
    summary_lines,
    transition_line,
)
from ._stats import SideStats, Timeline
from ._upstream import Proxies, Upstream
from ._verdict import Summary, Transition, judge, side_summary
from ._view import LineView, LiveView, QuietView, SideRow, Status, View

__all__ = ("command", "run_demo")

TICK = 0.25
"""Seconds between two frames of the live view."""
EXIT_INTERRUPTED = 130
SIDES = ("protected", "unprotected")


def command(
    duration: float,
    workers: int,
    *,
    as_json: bool,
    ops_port: int | None = 0,
    open_dashboard: bool = False,
) -> int:
    """Run the demo as the CLI does; the exit status says whether the verdict holds.

    ``ops_port``: serve the ops app on 127.0.0.1 at this port while the demo runs (0 picks
    a free one); None runs without it. ``open_dashboard``: open its dashboard in the
    desktop's browser as the outage begins.
    """
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
            summary = asyncio.run(_run_interruptible(plan, view, ops_port, open_dashboard))
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


async def _run_interruptible(
    plan: DemoPlan, view: View, ops_port: int | None, open_dashboard: bool = False
) -> Summary:
    """Ctrl-C ends the run early but still shuts down cleanly and reports what it saw."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    try:
        loop.add_signal_handler(signal.SIGINT, stop.set)
    except (NotImplementedError, RuntimeError, ValueError):  # Windows, or not the main thread
        return await run_demo(plan, view, stop, ops_port=ops_port, open_dashboard=open_dashboard)
    try:
        return await run_demo(plan, view, stop, ops_port=ops_port, open_dashboard=open_dashboard)
    finally:
        loop.remove_signal_handler(signal.SIGINT)


async def run_demo(
    plan: DemoPlan,
    view: View | None = None,
    stop: asyncio.Event | None = None,
    *,
    ops_port: int | None = None,
    open_dashboard: bool = False,
) -> Summary:
    """Run the scenario for ``plan.duration`` seconds (or until ``stop`` is set) and judge it.

    With ``ops_port`` (0: a free port), the ops app is served on 127.0.0.1 meanwhile;
    ``open_dashboard`` opens its dashboard in the desktop's browser as the outage begins.
    """
    view = view or QuietView()
    stop = stop or asyncio.Event()
    stats = {side: SideStats() for side in SIDES}
    timeline = Timeline()
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
    # The ops app too: its thread, lifespan and socket are ready before the clock starts.
    async with (
        make_client(plan.call_timeout, plan.workers) as protected_client,
        make_client(plan.unprotected_timeout, plan.workers) as unprotected_client,
        _ops_server(breaker, plan, ops_port, view) as (ops, ops_off),
    ):
        # The breaker's default clock is time.monotonic too, so its event times and the
        # phase switches share this origin.
        origin = time.monotonic()
        async with (
            Upstream(plan.upstream_latency, origin) as upstream,
            # One proxy per side, so each side's requests are counted on their own; the
            # health check gets its own too, so its requests count against neither side.
            Proxies(upstream.address, SIDES if ops is None else (*SIDES, HEALTH_SIDE)) as proxies,
        ):
            run = _Run(plan, origin, view, stats, timeline, proxies, ops, open_dashboard)
            if ops is not None:
                ops.watch(proxies.url(HEALTH_SIDE), origin)

            def on_transition(event: Event) -> None:
                assert isinstance(event, StateTransition)
                moved = Transition(
                    event.at - origin, event.old.value, event.new.value, event.reason
                )
                transitions.append(moved)
                # Read the proxy's counter now, so the recovery periods count exactly.
                proxies.read(moved.at, "protected")
                phase = timeline.phase_at(moved.at) or Phase.HEALTHY
                view.event(transition_line(moved, phase.value))
                if ops is not None and moved.new == "open":
                    ops.breaker_opened(time.monotonic() - origin, phase)

            breaker.add_listener(on_transition, StateTransition)
            workers = _start_workers(
                plan,
                stats,
                protected_call(breaker, protected_client, proxies.url("protected")),
                unprotected_call(unprotected_client, proxies.url("unprotected")),
            )
            try:
                end = await _watch(run, breaker, workers, stop)
                # Taken before the workers are cancelled: calls still waiting count as waiting.
                summary = _conclude(run, end, breaker, upstream, transitions, stop.is_set())
                if ops is not None:
                    await ops.settle()  # the readings taken at the end
                    summary = replace(summary, ops=ops.record(summary.elapsed))
            finally:
                breaker.remove_listener(on_transition)
                for task in workers:
                    task.cancel()
                await asyncio.gather(*workers, return_exceptions=True)
                if ops is not None:
                    await ops.stop()  # before the proxies close, or the check fails at the end
    return replace(summary, ops_off=ops_off)


@contextlib.asynccontextmanager
async def _ops_server(
    breaker: CircuitBreaker, plan: DemoPlan, port: int | None, view: View
) -> AsyncIterator[tuple[OpsServer | None, str | None]]:
    """The ops app serving for the block's duration, or None and why not."""
    if port is None:
        yield None, OPS_SWITCHED_OFF
        return
    try:
        ops = OpsServer(breaker, plan, port)
        await ops.start()
    except OpsUnavailable as exc:
        view.event(str(exc))
        yield None, str(exc)
        return
    view.event(ops_line(urls_text(ops.url, ops.served)))
    try:
        yield ops, None
    finally:
        await ops.stop()


@dataclass(frozen=True, slots=True)
class _Run:
    """What the watch loop and the conclusion share for one run."""

    plan: DemoPlan
    origin: float
    view: View
    stats: dict[str, SideStats]
    timeline: Timeline
    proxies: Proxies
    ops: OpsServer | None = None
    open_dashboard: bool = False
    """Open the dashboard in the desktop's browser as the outage begins."""

    def switch(self, ending: Phase | None, phase: Phase, now: float) -> None:
        """Put the proxies in ``phase``'s faults and count what comes next in ``phase``;
        ask the ops app what it says as ``ending`` ends."""
        at = now - self.origin
        if self.ops is not None and ending is not None:
            self.ops.read(at, ending, "end")
        self.proxies.switch(phase, at)
        for stats in self.stats.values():
            stats.phase = phase
        self.timeline.begin(phase, at)
        self.view.event(phase_line(self.plan, phase, at))
        if phase is Phase.BLACKHOLE and self.ops is not None and "dashboard" in self.ops.served:
            self.view.event(dashboard_line(self.ops.url))
            if self.open_dashboard:
                webbrowser.open(f"{self.ops.url}/dashboard")


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
    run: _Run,
    end: float,
    breaker: CircuitBreaker,
    upstream: Upstream,
    transitions: list[Transition],
    interrupted: bool,
) -> Summary:
    plan, elapsed = run.plan, end - run.origin
    final_state = breaker.state.value
    run.proxies.read(elapsed)
    sides = {
        side: side_summary(
            run.stats[side],
            end,
            elapsed=elapsed,
            sent=run.proxies.sent[side],
            timeline=run.timeline,
            upstream_saw=[at for at, who in upstream.seen if who == side],
            proxy=run.proxies.stats(side),
        )
        for side in SIDES
    }
    host, port = upstream.address
    return Summary(
        plan=plan,
        elapsed=elapsed,
        interrupted=interrupted,
        upstream=f"{host}:{port}",
        timeline=run.timeline,
        protected=sides["protected"],
        unprotected=sides["unprotected"],
        transitions=tuple(transitions),
        final_state=final_state,
        breaker=breaker.snapshot().to_dict(),
        verdict=judge(
            plan,
            run.timeline,
            elapsed,
            run.proxies.sent["protected"],
            transitions,
            final_state,
            sides["protected"].worst_wait,
        ),
    )


async def _watch(
    run: _Run, breaker: CircuitBreaker, workers: list[asyncio.Task[None]], stop: asyncio.Event
) -> float:
    """Switch the faults and redraw the view until the run is over; returns the end time."""
    plan = run.plan
    phase: Phase | None = None
    while True:
        now = time.monotonic()
        elapsed = now - run.origin
        if elapsed >= plan.duration or stop.is_set():
            if run.ops is not None and phase is not None:
                run.ops.read(elapsed, phase, "end")
            return now
        for task in workers:
            if task.done():
                task.result()  # a worker died of a bug: fail loudly rather than run short-handed
        due = plan.phase_at(elapsed)
        # In order, even if the loop woke too late for a whole phase: none is skipped.
        while phase is not due:
            ending, phase = phase, PHASES[0 if phase is None else PHASES.index(phase) + 1]
            run.switch(ending, phase, now)
        rows = tuple(
            SideRow.of(
                side,
                run.stats[side],
                now,
                breaker.state.value if side == "protected" else None,
                run.proxies.total(side),
            )
            for side in SIDES
        )
        ops = run.ops
        pace = poller_line(breaker.poll_hint())
        if ops is None:
            run.view.update(Status(plan, elapsed, phase, rows, poller=pace))
        else:
            urls = urls_text(ops.url, ops.served)
            run.view.update(Status(plan, elapsed, phase, rows, urls, ops.health_now, pace))
        # Wake at the phase boundary too, so the faults switch when the phase changes.
        wake = min(TICK, plan.phase_end(phase) - elapsed)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), max(wake, 0.001))
