"""How the demo shows itself while it runs: a live rich table on a terminal, lines elsewhere."""

from __future__ import annotations

from dataclasses import dataclass
from types import TracebackType
from typing import Protocol, TextIO

from rich.console import Console
from rich.live import Live
from rich.table import Table
from rich.text import Text

from ._plan import DemoPlan, Phase
from ._report import label
from ._stats import SideStats, percentile

__all__ = ("LineView", "LiveView", "QuietView", "SideRow", "Status", "View")


@dataclass(frozen=True, slots=True)
class SideRow:
    name: str
    breaker: str | None
    requests: int
    """Requests this side's chaos proxy accepted so far."""
    calls: int
    answered: int
    failed: int
    rejected: int | None
    in_flight: int
    p50: float | None
    p99: float | None
    worst_wait: float

    @classmethod
    def of(
        cls, name: str, stats: SideStats, now: float, breaker: str | None, requests: int
    ) -> SideRow:
        return cls(
            name=name,
            breaker=breaker,
            requests=requests,
            calls=stats.calls,
            answered=stats.run.answered,
            failed=stats.run.failed,
            rejected=stats.run.rejected if breaker is not None else None,
            in_flight=stats.in_flight,
            p50=percentile(stats.durations, 50),
            p99=percentile(stats.durations, 99),
            worst_wait=stats.worst_wait(now),
        )


@dataclass(frozen=True, slots=True)
class Status:
    """One frame of the live view."""

    plan: DemoPlan
    elapsed: float
    phase: Phase
    """The phase the proxies are in now."""
    rows: tuple[SideRow, ...]
    ops_urls: str | None = None
    """Where the ops app is served, if it is: its routes' URLs."""
    health: str | None = None
    """The ops app's /health status as of its last change."""
    poller: str | None = None
    """What a page polling the breaker's hint would do now (``poller_line``)."""


class View(Protocol):
    def event(self, text: str) -> None:
        """Something happened once: a phase change, a breaker transition."""

    def update(self, status: Status) -> None:
        """The current numbers (called a few times per second)."""


class LineView:
    """For pipes and CI: one line per event, no animation."""

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream
        self._pace: str | None = None

    def event(self, text: str) -> None:
        print(text, file=self._stream, flush=True)

    def update(self, status: Status) -> None:
        # The poller's pace, each time it changes (its reason counts down every frame).
        pace = status.poller.split(":", 1)[0] if status.poller else None
        if pace != self._pace and status.poller is not None:
            self.event(f"[{status.elapsed:6.2f} s] {status.poller}")
        self._pace = pace


_PHASE_STYLE = {
    Phase.HEALTHY: "green",
    Phase.BLACKHOLE: "bold red",
    Phase.RESET: "bold magenta",
    Phase.RECOVERY: "yellow",
}
_FAULT_SHORT = {
    Phase.HEALTHY: "forwarding",
    Phase.BLACKHOLE: "accept, never answer",
    Phase.RESET: "every connection reset",
    Phase.RECOVERY: "faults cleared",
}
_HEALTH_STYLE = {"healthy": "green", "degraded": "yellow", "unhealthy": "bold red"}
_STATE_STYLE = {"closed": "green", "open": "bold red", "half_open": "yellow"}


class LiveView:
    """For terminals: a table redrawn in place, events printed above it."""

    def __init__(self, console: Console) -> None:
        # Redrawn from the event loop (auto_refresh off): no thread reads the counters.
        self._live = Live(console=console, auto_refresh=False, redirect_stdout=False)

    def __enter__(self) -> LiveView:
        self._live.start()
        return self

    def __exit__(
        self, et: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._live.stop()

    def event(self, text: str) -> None:
        self._live.console.print(text, markup=False, highlight=False, soft_wrap=True)

    def update(self, status: Status) -> None:
        self._live.update(_table(status), refresh=True)


def _table(status: Status) -> Table:
    plan = status.plan
    phase = status.phase
    title = Text.assemble(
        "stalwart demo   fault: ",
        (label(phase), _PHASE_STYLE[phase]),
        f" ({_FAULT_SHORT[phase]})",
        f"   phase ends in {max(0.0, plan.phase_end(phase) - status.elapsed):.1f} s"
        f"   {max(0.0, plan.duration - status.elapsed):.1f} s left",
    )
    caption = (
        f"protected: breaker, {plan.call_timeout:g} s timeout   "
        f"unprotected: no breaker, {plan.unprotected_timeout:g} s timeout   "
        "sent: requests counted at each side's chaos proxy   Ctrl-C stops and prints the summary"
    )
    if status.ops_urls is not None:
        title.append(f"\nops app: {status.ops_urls}")
        health = status.health or "not checked yet"
        title.append("   /health: ")
        title.append(health, _HEALTH_STYLE.get(health, ""))
    if status.poller is not None:
        title.append(f"\n{status.poller}")
    table = Table(title=title, caption=caption)
    headers = (
        "side",
        "breaker",
        "sent",
        "calls",
        "answered",
        "failed",
        "rejected",
        "in flight",
    )
    for header in headers:
        table.add_column(header, justify="left" if header in ("side", "breaker") else "right")
    for header in ("p50", "p99", "worst wait"):
        table.add_column(header, justify="right")
    for row in status.rows:
        state = Text(row.breaker or "-", _STATE_STYLE.get(row.breaker or "", ""))
        too_long = row.breaker is not None and row.worst_wait > plan.wait_limit
        worst = Text(f"{row.worst_wait:.2f} s", "bold red" if too_long else "")
        table.add_row(
            row.name,
            state,
            str(row.requests),
            str(row.calls),
            str(row.answered),
            str(row.failed),
            "-" if row.rejected is None else str(row.rejected),
            str(row.in_flight),
            _ms(row.p50),
            _ms(row.p99),
            worst,
        )
    return table


def _ms(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value * 1000:.0f} ms" if value < 1 else f"{value:.2f} s"


class QuietView:
    """Shows nothing: for running the demo as a function (tests, embedding)."""

    def event(self, text: str) -> None:
        pass

    def update(self, status: Status) -> None:
        pass
