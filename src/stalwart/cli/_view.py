"""How the demo shows itself while it runs: a live rich table on a terminal, lines elsewhere."""

from __future__ import annotations

from dataclasses import dataclass
from types import TracebackType
from typing import Protocol, TextIO

from rich import box
from rich.console import Console
from rich.live import Live
from rich.table import Table
from rich.text import Text

from ._fit import middle, pack
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
        self._live.update(_table(status, self._live.console.width), refresh=True)


_COLUMNS = (
    # (header, header when the terminal is narrow, a note for the caption when it is)
    ("side", "side", None),
    ("breaker", "breaker", None),
    ("sent", "sent", None),
    ("calls", "calls", None),
    ("answered", "ok", "ok: answered"),
    ("failed", "failed", None),
    ("rejected", "refused", "refused: rejected by the breaker"),
    ("in flight", "in\nflight", None),
    ("p50", "p50", None),
    ("p99", "p99", None),
    ("worst wait", "worst\nwait", None),
)
_WIDE_BORDERS = 3 * len(_COLUMNS) + 1
"""What the boxed table adds to its cells: a rule and a space each side of every cell."""
_SIDE_MIN = 7
_DROPPED_FIRST = (3, 8)
"""When even that is too wide: calls (the sum of the columns after it), then p50."""


def _widest(header: str) -> str:
    return max(header.split("\n"), key=len)


def _table(status: Status, width: int = 200) -> Table:
    """The live table, laid out for a terminal ``width`` columns wide.

    When the boxed table does not fit, it drops its box, takes shorter headers (explained
    in the caption) and shortens the side names in the middle, so that 80 columns hold it
    without a cell cut into a stub."""
    plan = status.plan
    cells = [_cells(row, plan) for row in status.rows]
    longest = [max([0, *(len(row[i].plain) for row in cells)]) for i in range(len(_COLUMNS))]
    natural = [max(len(header), n) for (header, _, _), n in zip(_COLUMNS, longest, strict=True)]
    wide = sum(natural) + _WIDE_BORDERS <= width
    head = _head(status, width)
    caption = [
        f"protected: breaker, {plan.call_timeout:g} s timeout",
        f"unprotected: no breaker, {plan.unprotected_timeout:g} s timeout",
        "sent: requests counted at each side's chaos proxy",
    ]
    headers = [header for header, _, _ in _COLUMNS]
    shown = list(range(len(_COLUMNS)))
    if wide:
        table = Table(title=head, caption="   ".join([*caption, _STOP]))
    else:
        caption += [note for _, _, note in _COLUMNS if note] + [_STOP]
        headers = [narrow for _, narrow, _ in _COLUMNS]
        taken = [max(len(_widest(h)), n) for h, n in zip(headers, longest, strict=True)]

        def need(gap: int) -> int:  # every shown column but the side's, and the gaps
            return sum(taken[i] for i in shown[1:]) + gap * (len(shown) - 1)

        # Each column gets its widest line, two spaces apart, or one when that is too
        # much; then the least telling columns go; the side names give up the rest.
        gap = 2 if need(2) + taken[0] <= width else 1
        for column in _DROPPED_FIRST:
            if need(gap) + _SIDE_MIN <= width:
                break
            shown.remove(column)
        room = max(_SIDE_MIN, width - need(gap))
        for row in cells:
            row[0] = Text(middle(row[0].plain, room), row[0].style)
        table = Table(
            title=head,
            caption="\n".join(pack(caption, width)),
            box=box.SIMPLE_HEAD,
            show_edge=False,
            pad_edge=False,
            padding=(0, gap - 1, 0, 0),
            title_justify="left",
            caption_justify="left",
        )
    for i in shown:
        table.add_column(headers[i], justify="left" if i < 2 else "right", no_wrap=True)
    for row in cells:
        table.add_row(*(row[i] for i in shown))
    return table


_STOP = "Ctrl-C stops and prints the summary"


def _head(status: Status, width: int) -> Text:
    """The title: the fault now and the time left, the ops app, the poller's pace."""
    phase = status.phase
    plan = status.plan
    timing = (
        f"phase ends in {max(0.0, plan.phase_end(phase) - status.elapsed):.1f} s"
        f"   {max(0.0, plan.duration - status.elapsed):.1f} s left"
    )
    title = Text.assemble(
        "stalwart demo   fault: ",
        (label(phase), _PHASE_STYLE[phase]),
        f" ({_FAULT_SHORT[phase]})",
    )
    title.append("   " if len(title) + 3 + len(timing) <= width else "\n")
    title.append(timing)
    if status.ops_urls is not None:
        urls = status.ops_urls.split("  ")
        title.append("\n" + "\n".join(pack([f"ops app: {urls[0]}", *urls[1:]], width, sep="  ")))
        health = status.health or "not checked yet"
        title.append("\n/health: ")
        title.append(health, _HEALTH_STYLE.get(health, ""))
    if status.poller is not None:
        title.append("\n" + middle(status.poller, width))
    return title


def _cells(row: SideRow, plan: DemoPlan) -> list[Text]:
    state = Text(row.breaker or "-", _STATE_STYLE.get(row.breaker or "", ""))
    too_long = row.breaker is not None and row.worst_wait > plan.wait_limit
    return [
        Text(row.name),
        state,
        Text(str(row.requests)),
        Text(str(row.calls)),
        Text(str(row.answered)),
        Text(str(row.failed)),
        Text("-" if row.rejected is None else str(row.rejected)),
        Text(str(row.in_flight)),
        Text(_ms(row.p50)),
        Text(_ms(row.p99)),
        Text(f"{row.worst_wait:.2f} s", "bold red" if too_long else ""),
    ]


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
