"""What the journal stores and reports: sessions, items, events, run reports, errors.

Keys and results are JSON: a key is a string or an integer (stored as its JSON text, so
``5`` and ``"5"`` stay apart), a result any JSON value. Times are wall-clock seconds since
the epoch (``Clock.time()``), for people and for ``clean --older-than``.
"""

from __future__ import annotations

import enum
import json
import math
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from .._errors import ConfigError, StalwartError

__all__ = (
    "BatchReport",
    "ItemRecord",
    "JournalError",
    "JournalEvent",
    "Key",
    "ResultNotSerializable",
    "SessionInfo",
    "SessionNotFound",
    "SessionStatus",
    "decode_key",
    "encode_key",
    "encode_result",
    "iso",
)

Key = str | int
"""An item's key: what names it in the journal across runs."""


class JournalError(StalwartError):
    """The journal cannot be opened or used as asked: the message says why and what to do."""


class SessionNotFound(JournalError, LookupError):
    """No session of that id in this journal."""


class ResultNotSerializable(JournalError, TypeError):
    """An item's result is not a JSON value, so it cannot be recorded (nothing was)."""


class SessionStatus(enum.Enum):
    """Where a session is: running, paused, completed, failed (its value is what JSON shows)."""

    RUNNING = "running"
    """A runner is at work (or died without saying so: see ``SessionInfo.active``)."""
    PAUSED = "paused"
    """Stopped before the end (a signal, an interruption, the pause limit): resumable."""
    COMPLETED = "completed"
    """Every item is recorded as done."""
    FAILED = "failed"
    """Every item is recorded, some as failed after their retries: resumable with
    ``retry_failed=True``."""


@dataclass(frozen=True, slots=True, kw_only=True)
class SessionInfo:
    """One session as the journal holds it."""

    id: str
    status: SessionStatus
    stage: str | None
    metadata: dict[str, Any]
    total: int
    """Items in the latest run's input."""
    done: int
    failed: int
    created_at: float
    updated_at: float
    finished_at: float | None
    runs: int
    """How many runs started on this session (1 + resumes)."""
    active: bool
    """A runner's heartbeat is fresh: it is being worked on right now."""

    @property
    def remaining(self) -> int:
        return max(0, self.total - self.done - self.failed)

    @property
    def resumable(self) -> bool:
        """Worth resuming: not completed and nobody is running it."""
        return self.status is not SessionStatus.COMPLETED and not self.active

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "status": self.status.value,
            "stage": self.stage,
            "metadata": self.metadata,
            "total": self.total,
            "done": self.done,
            "failed": self.failed,
            "remaining": self.remaining,
            "created_at": iso(self.created_at),
            "updated_at": iso(self.updated_at),
            "finished_at": iso(self.finished_at),
            "runs": self.runs,
            "active": self.active,
            "resumable": self.resumable,
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class ItemRecord:
    """One recorded item: its result, or the error it ended with after its retries."""

    key: Key
    ok: bool
    result: Any
    error: str | None
    attempts: int
    finished_at: float
    duration: float

    def to_dict(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "status": "done" if self.ok else "failed",
            "result": self.result,
            "error": self.error,
            "attempts": self.attempts,
            "finished_at": iso(self.finished_at),
            "duration": self.duration,
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class JournalEvent:
    """An entry of a session's event log (breaker opened, paused, resumed, item failed ...)."""

    at: float
    kind: str
    key: Key | None = None
    detail: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"at": iso(self.at), "kind": self.kind, "key": self.key, **self.detail}


@dataclass(frozen=True, slots=True, kw_only=True)
class BatchReport:
    """What one ``run_batch`` did."""

    session: str
    status: SessionStatus
    total: int
    done: int
    """Items recorded as done in this run."""
    failed: int
    """Items recorded as failed (after their retries) in this run."""
    skipped: int
    """Items already recorded before this run started (not run again)."""
    remaining: int
    """Items not recorded when the run ended (a stop, a signal, the pause limit)."""
    duration: float
    pauses: int
    """Times every worker paused together (rate limit, open breaker)."""
    paused_seconds: float
    stopped: str | None = None
    """Why the run ended early: ``"signal"``, ``"interrupted"``, ``"max_pause"`` or None."""

    @property
    def rate(self) -> float:
        """Items recorded per second of this run."""
        return (self.done + self.failed) / self.duration if self.duration > 0 else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "session": self.session,
            "status": self.status.value,
            "total": self.total,
            "done": self.done,
            "failed": self.failed,
            "skipped": self.skipped,
            "remaining": self.remaining,
            "duration": self.duration,
            "pauses": self.pauses,
            "paused_seconds": self.paused_seconds,
            "stopped": self.stopped,
        }


def encode_key(key: Any) -> str:
    """The stored form of a key; a ConfigError for anything but a string or an integer."""
    if isinstance(key, bool) or not isinstance(key, str | int):
        raise ConfigError(
            "key", f"must give each item a str or int key, got {type(key).__name__} {key!r:.80}"
        )
    return json.dumps(key, ensure_ascii=False)


def decode_key(text: str) -> Key:
    value = json.loads(text)
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise JournalError(f"a stored key is not a str or int: {text!r:.80}")
    return value


def encode_result(key: Key, result: Any) -> str:
    """``result`` as JSON text, or :class:`ResultNotSerializable` naming the key."""
    try:
        return json.dumps(result, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
    except (TypeError, ValueError, RecursionError) as exc:
        raise ResultNotSerializable(
            f"the result of item {key!r} is not JSON-serialisable ({exc}); return plain "
            "data (dict, list, str, int, float, bool, None), e.g. model.model_dump() or "
            "dataclasses.asdict(obj)"
        ) from None


def iso(at: float | None) -> str | None:
    """Wall time as ISO 8601 UTC, to the millisecond."""
    if at is None or not math.isfinite(at):
        return None
    stamp = datetime.fromtimestamp(at, UTC).isoformat(timespec="milliseconds")
    return stamp.replace("+00:00", "Z")
