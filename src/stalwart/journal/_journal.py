"""``Journal``: where a batch's sessions, results and events live, and how to read them."""

from __future__ import annotations

import json
import os
import re
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import IO, Any, Literal

from .._clock import Clock
from .._errors import ConfigError
from .._strategy import strategy_clock
from .._validate import positive
from ._model import ItemRecord, JournalError, JournalEvent, Key, SessionInfo, SessionStatus
from ._store import DEFAULT_LEASE, Backend, Connection, open_backend

__all__ = ("Journal", "parse_age")

_AGE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw]?)\s*$")
_UNIT = {"": 1.0, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0}


class Journal:
    """A durable record of batch sessions: SQLite (a path or ``sqlite:///path``; one file,
    WAL) or PostgreSQL (``postgresql://...``; several runners on one session).

    Opening checks the file (a damaged one, or a database that is not a journal, is a
    :class:`JournalError` and is left untouched) and creates it unless ``create=False``.
    ``synchronous`` is SQLite's durability level (default ``"full"``: see docs/journal.md).
    """

    def __init__(
        self,
        target: str | os.PathLike[str],
        *,
        synchronous: str | None = None,
        create: bool = True,
        lease: float = DEFAULT_LEASE,
        clock: Clock | None = None,
    ) -> None:
        positive("lease", lease)
        self.backend: Backend = open_backend(target, synchronous=synchronous)
        self.url = self.backend.url
        self.lease = float(lease)
        self.clock = strategy_clock(clock)
        path = getattr(self.backend, "path", None)
        if not create and isinstance(path, Path) and not path.exists():
            raise JournalError(f"no journal at {path} (nothing was created)")
        self._lock = threading.Lock()
        self._conn: Connection | None = self.backend.connect()

    # -- reading -------------------------------------------------------------------------

    def sessions(self, *, resumable: bool = False) -> list[SessionInfo]:
        """Every session, oldest first (only those worth resuming, if asked)."""
        with self._reader() as conn:
            found = conn.sessions(self.clock.time())
        return [s for s in found if s.resumable] if resumable else found

    def session(self, session: str) -> SessionInfo:
        """One session; :class:`SessionNotFound` if there is none of that id."""
        with self._reader() as conn:
            return conn.session(session, self.clock.time())

    def results(self, session: str) -> dict[Key, Any]:
        """``{key: result}`` of every item recorded as done."""
        return {r.key: r.result for r in self.items(session) if r.ok}

    def failures(self, session: str) -> dict[Key, str]:
        """``{key: error}`` of every item recorded as failed after its retries."""
        return {r.key: r.error or "" for r in self.items(session) if not r.ok}

    def items(self, session: str) -> Iterator[ItemRecord]:
        """Every recorded item, in the order they completed."""
        with self._reader() as conn:
            records = list(conn.items(session))
        return iter(records)

    def events(self, session: str, *, limit: int | None = None) -> list[JournalEvent]:
        """The session's event log, oldest first (the last ``limit`` only, if given)."""
        if limit is not None and (
            isinstance(limit, bool) or not isinstance(limit, int) or limit < 0
        ):
            raise ConfigError("limit", f"must be an integer >= 0 or None, got {limit!r}")
        with self._reader() as conn:
            return conn.events(session, limit)

    def export(
        self, session: str, out: IO[str], *, format: Literal["jsonl", "json"] = "jsonl"
    ) -> int:
        """Write every recorded item to ``out``: one JSON object per line, or one JSON
        document (the session and its items). Returns the number of items."""
        if format not in ("jsonl", "json"):
            raise ConfigError("format", f"must be 'jsonl' or 'json', got {format!r}")
        info = self.session(session)
        records = [r.to_dict() for r in self.items(session)]
        if format == "jsonl":
            for record in records:
                out.write(json.dumps(record, ensure_ascii=False) + "\n")
        else:
            json.dump(
                {"session": info.to_dict(), "items": records}, out, ensure_ascii=False, indent=2
            )
            out.write("\n")
        return len(records)

    # -- housekeeping ------------------------------------------------------------------------

    def delete(self, *sessions: str) -> int:
        """Remove sessions with their items and events; returns how many there were.
        A session being run right now is refused."""
        for sid in sessions:
            if self.session(sid).active:
                raise JournalError(f"session {sid!r} is being run right now; stop it first")
        with self._reader() as conn:
            return conn.delete(list(sessions))

    def clean(
        self,
        older_than: float | str,
        *,
        statuses: Sequence[SessionStatus | str] | None = None,
        dry_run: bool = False,
    ) -> list[str]:
        """Remove sessions not updated for ``older_than`` (seconds, or ``"7d"``, ``"12h"``,
        ``"30m"``), of ``statuses`` only if given; never one being run. Returns their ids."""
        age = parse_age(older_than)
        wanted = None if statuses is None else {SessionStatus(s) for s in statuses}
        cutoff = self.clock.time() - age
        old = [
            s.id
            for s in self.sessions()
            if s.updated_at < cutoff and not s.active and (wanted is None or s.status in wanted)
        ]
        if old and not dry_run:
            with self._reader() as conn:
                conn.delete(old)
        return old

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    def __enter__(self) -> Journal:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Journal({self.url!r})"

    def _reader(self) -> _Reader:
        return _Reader(self)


class _Reader:
    """The journal's own connection, one caller at a time."""

    def __init__(self, journal: Journal) -> None:
        self.journal = journal

    def __enter__(self) -> Connection:
        self.journal._lock.acquire()
        conn = self.journal._conn
        if conn is None:
            self.journal._lock.release()
            raise JournalError(f"{self.journal.url} is closed")
        return conn

    def __exit__(self, *exc: object) -> None:
        self.journal._lock.release()


def parse_age(value: float | str) -> float:
    """Seconds from a number or ``"7d"`` / ``"12h"`` / ``"30m"`` / ``"90s"`` / ``"2w"``."""
    if isinstance(value, str):
        m = _AGE.match(value)
        if m is None:
            raise ConfigError(
                "older_than",
                f"must be seconds or a number with s, m, h, d or w (7d), got {value!r}",
            )
        return float(m.group(1)) * _UNIT[m.group(2)]
    positive("older_than", value, allow_zero=True)
    return float(value)
