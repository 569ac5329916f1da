"""The SQLite journal: one file, WAL, one runner per session at a time.

Every write is one transaction (``BEGIN IMMEDIATE`` ... ``COMMIT``), so after a crash at
any point the file holds every committed record and nothing half-written. The runner's
journal thread batches what completed meanwhile into each transaction (group commit).
A session is owned by one runner through a heartbeat lease; a second runner on the same
session is refused while the first is alive (use PostgreSQL for several runners).
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from .._errors import ConfigError
from ._model import (
    ItemRecord,
    JournalError,
    JournalEvent,
    SessionInfo,
    SessionNotFound,
    SessionStatus,
    decode_key,
)
from ._store import DEFAULT_LEASE, Begun, EventRow, ItemRow, owner_alive

__all__ = ("DEFAULT_SYNCHRONOUS", "SYNCHRONOUS_LEVELS", "SqliteBackend")

SYNCHRONOUS_LEVELS = ("off", "normal", "full", "extra")
DEFAULT_SYNCHRONOUS = "full"
"""Each commit is on disk (fsync) before it counts: survives a power loss, not only a
crash of the process. See docs/journal.md for the other levels."""
BUSY_TIMEOUT = 10.0
"""Seconds a connection waits for another's write lock before failing."""
SCHEMA_VERSION = 1
_APP = "stalwart.journal"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS stalwart_journal (name TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS sessions (
    id TEXT PRIMARY KEY,
    status TEXT NOT NULL,
    stage TEXT,
    metadata TEXT NOT NULL DEFAULT '{}',
    total INTEGER NOT NULL DEFAULT 0,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL,
    finished_at REAL,
    runs INTEGER NOT NULL DEFAULT 0,
    owner TEXT,
    heartbeat_at REAL
);
CREATE TABLE IF NOT EXISTS items (
    session TEXT NOT NULL,
    key TEXT NOT NULL,
    ok INTEGER NOT NULL,
    result TEXT,
    error TEXT,
    attempts INTEGER NOT NULL,
    finished_at REAL NOT NULL,
    duration REAL NOT NULL,
    PRIMARY KEY (session, key)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS events (
    id INTEGER PRIMARY KEY,
    session TEXT NOT NULL,
    at REAL NOT NULL,
    kind TEXT NOT NULL,
    key TEXT,
    detail TEXT NOT NULL DEFAULT '{}'
);
CREATE INDEX IF NOT EXISTS events_by_session ON events (session, id);
"""

# A done item is never overwritten; a failed one gives way to a later attempt's record.
_RECORD = """
INSERT INTO items (session, key, ok, result, error, attempts, finished_at, duration)
VALUES (?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (session, key) DO UPDATE SET
    ok = excluded.ok, result = excluded.result, error = excluded.error,
    attempts = excluded.attempts, finished_at = excluded.finished_at,
    duration = excluded.duration
WHERE items.ok = 0
"""


class SqliteBackend:
    """A journal in one SQLite file (created on first use)."""

    shared = False

    def __init__(self, path: Path, *, synchronous: str | None = None) -> None:
        level = DEFAULT_SYNCHRONOUS if synchronous is None else synchronous
        if not isinstance(level, str) or level.lower() not in SYNCHRONOUS_LEVELS:
            raise ConfigError(
                "synchronous", f"must be one of {', '.join(SYNCHRONOUS_LEVELS)}, got {level!r}"
            )
        self.path = path
        self.synchronous = level.lower()
        self.url = f"sqlite:///{path}"
        self._checked = False
        self._lock = threading.Lock()

    def connect(self) -> SqliteConnection:
        with self._lock:  # the first connection checks the file and creates the schema
            conn = SqliteConnection(self, check=not self._checked)
            self._checked = True
            return conn


class SqliteConnection:
    def __init__(self, backend: SqliteBackend, *, check: bool) -> None:
        self.backend = backend
        self._pending: list[str] = []
        path = backend.path
        if path.is_dir():
            raise JournalError(f"{path} is a directory, not a journal file")
        if not path.parent.is_dir():
            raise JournalError(f"cannot create the journal {path}: {path.parent} does not exist")
        try:
            self._db = sqlite3.connect(
                path, timeout=BUSY_TIMEOUT, isolation_level=None, check_same_thread=False
            )
        except sqlite3.Error as exc:
            raise JournalError(f"cannot open the journal {path}: {exc}") from None
        try:
            if check:
                self._check()
            self._db.execute(f"PRAGMA synchronous={backend.synchronous}")
            self._db.execute("PRAGMA foreign_keys=OFF")
        except sqlite3.DatabaseError as exc:
            self._db.close()
            raise self._error(exc) from None
        except BaseException:
            self._db.close()
            raise

    def _error(self, exc: sqlite3.Error) -> JournalError:
        text = str(exc)
        if isinstance(exc, sqlite3.DatabaseError) and (
            "not a database" in text or "malformed" in text or "corrupt" in text
        ):
            return JournalError(
                f"{self.backend.path} is damaged or not a SQLite file ({text}); it was left "
                "as it is: restore it from a copy, or move it away to start a new journal"
            )
        return JournalError(f"journal {self.backend.path}: {text}")

    def _check(self) -> None:
        """Refuse a damaged file or a database that is not a journal, before writing to it."""
        db = self._db
        tables = {row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        if tables and "stalwart_journal" not in tables:
            shown = ", ".join(sorted(tables)[:5])
            raise JournalError(
                f"{self.backend.path} is a SQLite database but not a stalwart journal "
                f"(its tables: {shown}); give the journal a file of its own"
            )
        if tables:
            problem = db.execute("PRAGMA quick_check(1)").fetchone()[0]
            if problem != "ok":
                raise JournalError(
                    f"{self.backend.path} is damaged ({problem}); it was left as it is: "
                    "restore it from a copy, or move it away to start a new journal"
                )
            row = db.execute("SELECT value FROM stalwart_journal WHERE name = 'schema'").fetchone()
            if row is None or row[0] != str(SCHEMA_VERSION):
                found = None if row is None else row[0]
                raise JournalError(
                    f"{self.backend.path} has journal schema {found}; this stalwart reads "
                    f"schema {SCHEMA_VERSION}"
                )
        mode = db.execute("PRAGMA journal_mode=WAL").fetchone()[0]
        if str(mode).lower() != "wal":
            raise JournalError(f"{self.backend.path}: cannot switch to WAL mode (got {mode})")
        if not tables:
            db.execute("BEGIN IMMEDIATE")
            try:
                for statement in _SCHEMA.split(";"):  # executescript would commit first
                    if statement.strip():
                        db.execute(statement)
                db.execute(
                    "INSERT OR IGNORE INTO stalwart_journal VALUES ('schema', ?), ('app', ?)",
                    (str(SCHEMA_VERSION), _APP),
                )
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise

    # -- transactions ------------------------------------------------------------------

    def _tx(self, *, read: bool = False) -> _Transaction:
        return _Transaction(self, read=read)

    # -- a run ---------------------------------------------------------------------------

    def begin(
        self,
        session: str,
        keys: Sequence[str],
        *,
        owner: str,
        now: float,
        lease: float,
        metadata: dict[str, Any] | None,
        stage: str | None,
        retry_failed: bool,
    ) -> Begun:
        with self._tx() as db:
            row = db.execute(
                "SELECT status, owner, heartbeat_at, metadata FROM sessions WHERE id = ?",
                (session,),
            ).fetchone()
            created = row is None
            if created:
                db.execute(
                    "INSERT INTO sessions (id, status, stage, metadata, total, created_at, "
                    "updated_at, runs, owner, heartbeat_at) VALUES (?, ?, ?, ?, ?, ?, ?, 1, ?, ?)",
                    (
                        session,
                        SessionStatus.RUNNING.value,
                        stage,
                        json.dumps(metadata or {}),
                        len(keys),
                        now,
                        now,
                        owner,
                        now,
                    ),
                )
            else:
                status, holder, beat, stored = row
                if status == SessionStatus.RUNNING.value and _held(holder, beat, now, lease):
                    raise JournalError(
                        f"session {session!r} is being run by {holder} (heartbeat "
                        f"{now - beat:.0f} s ago); wait for it to end, or use a PostgreSQL "
                        "journal to run one session from several processes"
                    )
                merged = {**json.loads(stored), **(metadata or {})}
                db.execute(
                    "UPDATE sessions SET status = ?, stage = COALESCE(?, stage), metadata = ?, "
                    "total = ?, updated_at = ?, finished_at = NULL, runs = runs + 1, "
                    "owner = ?, heartbeat_at = ? WHERE id = ?",
                    (
                        SessionStatus.RUNNING.value,
                        stage,
                        json.dumps(merged),
                        len(keys),
                        now,
                        owner,
                        now,
                        session,
                    ),
                )
            recorded = {
                key
                for key, ok in db.execute("SELECT key, ok FROM items WHERE session = ?", (session,))
                if ok or not retry_failed
            }
        self._pending = [key for key in keys if key not in recorded]
        return Begun(skipped=len(keys) - len(self._pending), created=created)

    def claim(
        self, session: str, owner: str, limit: int, now: float, lease: float
    ) -> tuple[list[str], bool]:
        # One runner owns the session: its claims are the pending keys, in input order.
        taken = self._pending[:limit]
        del self._pending[:limit]
        return taken, not self._pending

    def release(self, session: str, owner: str, keys: Sequence[str]) -> None:
        self._pending[:0] = keys

    def write(
        self, session: str, owner: str, items: Sequence[ItemRow], events: Sequence[EventRow]
    ) -> None:
        with self._tx() as db:
            if items:
                db.executemany(
                    _RECORD,
                    [
                        (
                            session,
                            i.key,
                            int(i.ok),
                            i.result,
                            i.error,
                            i.attempts,
                            i.finished_at,
                            i.duration,
                        )
                        for i in items
                    ],
                )
            if events:
                db.executemany(
                    "INSERT INTO events (session, at, kind, key, detail) VALUES (?, ?, ?, ?, ?)",
                    [(session, e.at, e.kind, e.key, e.detail) for e in events],
                )

    def heartbeat(self, session: str, owner: str, now: float, lease: float) -> None:
        with self._tx() as db:
            db.execute(
                "UPDATE sessions SET heartbeat_at = ?, updated_at = ? WHERE id = ? AND owner = ?",
                (now, now, session, owner),
            )

    def finish(self, session: str, owner: str, now: float, *, complete: bool) -> SessionStatus:
        with self._tx() as db:
            # Completeness comes from the runner: the session may hold items of an earlier,
            # different input, so its counts alone cannot tell.
            _, failed = _counts(db, session)
            status = _final_status(complete, failed)
            db.execute(
                "UPDATE sessions SET status = ?, updated_at = ?, finished_at = ?, owner = NULL, "
                "heartbeat_at = NULL WHERE id = ? AND owner = ?",
                (
                    status.value,
                    now,
                    now if status is not SessionStatus.PAUSED else None,
                    session,
                    owner,
                ),
            )
        return status

    # -- reading ---------------------------------------------------------------------------

    def sessions(self, now: float) -> list[SessionInfo]:
        with self._tx(read=True) as db:
            counts: dict[str, tuple[int, int]] = {}
            for sid, ok, n in db.execute(
                "SELECT session, ok, count(*) FROM items GROUP BY session, ok"
            ):
                done, failed = counts.get(sid, (0, 0))
                counts[sid] = (done + n, failed) if ok else (done, failed + n)
            rows = db.execute(f"{_SESSION_COLUMNS} ORDER BY created_at, id").fetchall()
        return [_info(row, counts.get(row[0], (0, 0)), now) for row in rows]

    def session(self, session: str, now: float) -> SessionInfo:
        with self._tx(read=True) as db:
            row = db.execute(f"{_SESSION_COLUMNS} WHERE id = ?", (session,)).fetchone()
            if row is None:
                raise SessionNotFound(f"no session {session!r} in {self.backend.path}")
            return _info(row, _counts(db, session), now)

    def items(self, session: str) -> Iterator[ItemRecord]:
        self.session(session, 0.0)
        cursor = self._db.execute(
            "SELECT key, ok, result, error, attempts, finished_at, duration FROM items "
            "WHERE session = ? ORDER BY finished_at, key",
            (session,),
        )
        try:
            for key, ok, result, error, attempts, finished_at, duration in cursor:
                yield ItemRecord(
                    key=decode_key(key),
                    ok=bool(ok),
                    result=None if result is None else json.loads(result),
                    error=error,
                    attempts=attempts,
                    finished_at=finished_at,
                    duration=duration,
                )
        except sqlite3.DatabaseError as exc:
            raise self._error(exc) from None
        finally:
            cursor.close()

    def events(self, session: str, limit: int | None) -> list[JournalEvent]:
        self.session(session, 0.0)
        with self._tx(read=True) as db:
            rows = db.execute(
                "SELECT at, kind, key, detail FROM (SELECT * FROM events WHERE session = ? "
                "ORDER BY id DESC LIMIT ?) ORDER BY id",
                (session, -1 if limit is None else limit),
            ).fetchall()
        return [
            JournalEvent(
                at=at, kind=kind, key=None if key is None else decode_key(key), detail=json.loads(d)
            )
            for at, kind, key, d in rows
        ]

    def delete(self, sessions: Sequence[str]) -> int:
        with self._tx() as db:
            removed = 0
            for sid in sessions:
                db.execute("DELETE FROM items WHERE session = ?", (sid,))
                db.execute("DELETE FROM events WHERE session = ?", (sid,))
                removed += db.execute("DELETE FROM sessions WHERE id = ?", (sid,)).rowcount
        return removed

    def close(self) -> None:
        self._db.close()


_SESSION_COLUMNS = (
    "SELECT id, status, stage, metadata, total, created_at, updated_at, finished_at, runs, "
    "owner, heartbeat_at FROM sessions"
)


class _Transaction:
    """``with conn._tx() as db``: one transaction; sqlite errors become JournalErrors."""

    def __init__(self, conn: SqliteConnection, *, read: bool = False) -> None:
        self.conn = conn
        self.read = read

    def __enter__(self) -> sqlite3.Connection:
        db = self.conn._db
        try:
            db.execute("BEGIN" if self.read else "BEGIN IMMEDIATE")
        except sqlite3.Error as exc:
            raise self.conn._error(exc) from None
        return db

    def __exit__(self, et: Any, exc: BaseException | None, tb: Any) -> None:
        db = self.conn._db
        if exc is None:
            try:
                db.execute("COMMIT")
            except sqlite3.Error as error:
                db.execute("ROLLBACK")
                raise self.conn._error(error) from None
            return
        if db.in_transaction:
            db.execute("ROLLBACK")
        if isinstance(exc, sqlite3.Error):
            raise self.conn._error(exc) from None


def _held(holder: str | None, beat: float | None, now: float, lease: float) -> bool:
    """Whether another runner still holds the session."""
    if holder is None or beat is None:
        return False
    alive = owner_alive(holder)
    if alive is not None:  # on this host we know for sure
        return alive
    return now - beat < lease


def _counts(db: sqlite3.Connection, session: str) -> tuple[int, int]:
    done = failed = 0
    for ok, n in db.execute(
        "SELECT ok, count(*) FROM items WHERE session = ? GROUP BY ok", (session,)
    ):
        if ok:
            done = n
        else:
            failed = n
    return done, failed


def _final_status(complete: bool, failed: int) -> SessionStatus:
    if not complete:
        return SessionStatus.PAUSED
    return SessionStatus.FAILED if failed else SessionStatus.COMPLETED


def _info(row: Sequence[Any], counts: tuple[int, int], now: float) -> SessionInfo:
    sid, status, stage, metadata, total, created, updated, finished, runs, owner, beat = row
    active = status == SessionStatus.RUNNING.value and _held(owner, beat, now, DEFAULT_LEASE)
    return SessionInfo(
        id=sid,
        status=SessionStatus(status),
        stage=stage,
        metadata=json.loads(metadata),
        total=total,
        done=counts[0],
        failed=counts[1],
        created_at=created,
        updated_at=updated,
        finished_at=finished,
        runs=runs,
        active=active,
    )
