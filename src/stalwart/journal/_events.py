"""The events a batch run emits to stalwart's listeners (logging, Prometheus, the ops app).

``strategy`` is ``"journal"`` and ``name`` the session id. Progress comes once per commit
(a group of records), not once per item, so listening costs little.
"""

from __future__ import annotations

from dataclasses import dataclass

from .._events import Event

__all__ = ("BatchFinished", "BatchPaused", "BatchProgress", "BatchResumed", "BatchStarted")


@dataclass(frozen=True, slots=True, kw_only=True)
class BatchStarted(Event):
    """A run began: ``total`` items in the input, ``skipped`` already recorded."""

    total: int
    skipped: int
    """Already recorded: not run again."""
    resumed: bool


@dataclass(frozen=True, slots=True, kw_only=True)
class BatchProgress(Event):
    """Records were committed: ``done``/``failed`` in this commit, totals so far."""

    done: int
    failed: int
    recorded: int
    """Every recorded item of the session's input, skipped ones included."""
    total: int


@dataclass(frozen=True, slots=True, kw_only=True)
class BatchPaused(Event):
    """Every worker waits ``seconds`` (rate limited, or the breaker is open)."""

    seconds: float
    reason: str


@dataclass(frozen=True, slots=True, kw_only=True)
class BatchResumed(Event):
    """The workers go on after a pause of ``paused_seconds``."""

    paused_seconds: float


@dataclass(frozen=True, slots=True, kw_only=True)
class BatchFinished(Event):
    """The run ended with the session's ``status``; ``stopped`` says why, if it stopped early."""

    status: str
    done: int
    failed: int
    stopped: str | None
