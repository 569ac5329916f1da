"""How a run shows its progress: a rich bar on a terminal, plain lines elsewhere, or nothing.

The bar shows done/total, items/s, the ETA and, while every worker waits, "paused until
HH:MM:SS (rate limited)". Plain lines (a log file, CI) come at most every
``LINE_EVERY`` seconds, plus one per pause, resume and the end.
"""

from __future__ import annotations

import sys
import time
from contextlib import suppress
from datetime import datetime
from typing import Any, Protocol, TextIO

from ._model import BatchReport

__all__ = ("LINE_EVERY", "Display", "display_for")

LINE_EVERY = 10.0
"""Seconds between plain progress lines at most."""


class Display(Protocol):
    def start(self, total: int, skipped: int) -> None: ...
    def progress(
        self, recorded: int, total: int, done: int, failed: int, rate: float, eta: float | None
    ) -> None: ...
    def paused(self, until_wall: float, reason: str) -> None: ...
    def resumed(self) -> None: ...
    def note(self, text: str) -> None: ...
    def finish(self, report: BatchReport) -> None: ...


def display_for(progress: bool, session: str, stream: TextIO | None = None) -> Display:
    """``progress=False``: nothing; True: a rich bar on a terminal, else plain lines."""
    if not progress:
        return _Silent()
    out = stream if stream is not None else sys.stderr
    if out.isatty():
        try:
            return _RichBar(session, out)
        except ImportError:  # rich is in the cli extra
            pass
    return _Lines(session, out)


class _Silent:
    def start(self, total: int, skipped: int) -> None:
        pass

    def progress(
        self, recorded: int, total: int, done: int, failed: int, rate: float, eta: float | None
    ) -> None:
        pass

    def paused(self, until_wall: float, reason: str) -> None:
        pass

    def resumed(self) -> None:
        pass

    def note(self, text: str) -> None:
        pass

    def finish(self, report: BatchReport) -> None:
        pass


class _Lines:
    """One line at a time, for logs: ``nightly: 500/10000 (5%), 2 failed, 310/s, ETA 0:00:30``."""

    def __init__(self, session: str, out: TextIO) -> None:
        self.session = session
        self.out = out
        self._last = -float("inf")
        self._line = ""

    def _say(self, text: str) -> None:
        with suppress(OSError, ValueError):  # a closed stream must not stop the batch
            print(f"{self.session}: {text}", file=self.out, flush=True)

    def start(self, total: int, skipped: int) -> None:
        already = f", {skipped} already recorded (skipped)" if skipped else ""
        self._say(f"{total} items{already}")

    def progress(
        self, recorded: int, total: int, done: int, failed: int, rate: float, eta: float | None
    ) -> None:
        self._line = _summary(recorded, total, failed, rate, eta)
        now = time.monotonic()  # display pacing only: no logic depends on it
        if now - self._last >= LINE_EVERY:
            self._last = now
            self._say(self._line)

    def paused(self, until_wall: float, reason: str) -> None:
        self._say(f"paused until {_clock_time(until_wall)} ({reason})")

    def resumed(self) -> None:
        self._say("resumed")

    def note(self, text: str) -> None:
        self._say(text)

    def finish(self, report: BatchReport) -> None:
        self._say(_finished(report))


class _RichBar:
    def __init__(self, session: str, out: TextIO) -> None:
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

        self.session = session
        self._bar = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[rate]}"),
            TextColumn("{task.fields[eta]}"),
            TextColumn("{task.fields[status]}"),
            console=Console(file=out),
            refresh_per_second=4,
        )
        self._task: Any = None
        self._failed = 0
        self._pause = ""

    def start(self, total: int, skipped: int) -> None:
        self._bar.start()
        self._task = self._bar.add_task(
            self.session, total=total, completed=skipped, rate="", eta="", status=""
        )
        if skipped:
            self._bar.console.print(f"{self.session}: {skipped} items already recorded (skipped)")

    def progress(
        self, recorded: int, total: int, done: int, failed: int, rate: float, eta: float | None
    ) -> None:
        self._failed = failed
        status = self._pause or (f"[red]{failed} failed" if failed else "")
        self._bar.update(
            self._task, completed=recorded, rate=f"{rate:.1f}/s", eta=_eta(eta), status=status
        )

    def paused(self, until_wall: float, reason: str) -> None:
        self._pause = f"[yellow]paused until {_clock_time(until_wall)} ({reason})"
        self._bar.update(self._task, status=self._pause)

    def resumed(self) -> None:
        self._pause = ""
        self._bar.update(self._task, status=f"[red]{self._failed} failed" if self._failed else "")

    def note(self, text: str) -> None:
        self._bar.console.print(text)

    def finish(self, report: BatchReport) -> None:
        self._bar.stop()
        self._bar.console.print(_finished(report))


def _summary(recorded: int, total: int, failed: int, rate: float, eta: float | None) -> str:
    share = f" ({100 * recorded / total:.0f}%)" if total else ""
    failures = f", {failed} failed" if failed else ""
    return f"{recorded}/{total}{share}{failures}, {rate:.1f}/s, {_eta(eta)}"


def _finished(report: BatchReport) -> str:
    parts = [f"{report.status.value}: {report.done} done, {report.failed} failed"]
    if report.skipped:
        parts.append(f"{report.skipped} skipped")
    if report.remaining:
        parts.append(f"{report.remaining} left")
    if report.pauses:
        parts.append(f"{report.pauses} pauses ({report.paused_seconds:.1f} s)")
    parts.append(f"in {report.duration:.1f} s")
    if report.stopped:
        parts.append(f"stopped: {report.stopped}")
    return ", ".join(parts)


def _eta(seconds: float | None) -> str:
    if seconds is None:
        return "ETA -:--:--"
    whole = int(seconds + 0.5)
    return f"ETA {whole // 3600}:{whole // 60 % 60:02d}:{whole % 60:02d}"


def _clock_time(wall: float) -> str:
    return datetime.fromtimestamp(wall).strftime("%H:%M:%S")
