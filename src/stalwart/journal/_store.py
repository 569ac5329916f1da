"""The storage seam: what a journal backend does, and which backend a URL names.

A :class:`Backend` makes :class:`Connection` objects; each is used by one thread at a time
(the runner's journal thread, or the reader behind :class:`~stalwart.journal.Journal`).
Every method is one transaction. Backends: SQLite (``_sqlite``, the default) and
PostgreSQL (``_postgres``, for several runners).
"""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlsplit

from .._errors import ConfigError
from ._model import ItemRecord, JournalEvent, SessionInfo, SessionStatus

__all__ = (
    "DEFAULT_LEASE",
    "Backend",
    "Begun",
    "Connection",
    "EventRow",
    "ItemRow",
    "new_owner",
    "open_backend",
    "redact_url",
)

DEFAULT_LEASE = 30.0
"""Seconds a runner's claim on a session (SQLite) or on items (PostgreSQL) lasts without a
heartbeat; heartbeats come every third of it."""


@dataclass(frozen=True, slots=True)
class ItemRow:
    """A completed item on its way to the journal."""

    key: str
    """The encoded key (``encode_key``)."""
    ok: bool
    result: str | None
    """The encoded result (``encode_result``) when ok."""
    error: str | None
    attempts: int
    finished_at: float
    duration: float


@dataclass(frozen=True, slots=True)
class EventRow:
    at: float
    kind: str
    key: str | None
    detail: str
    """JSON object text."""


@dataclass(frozen=True, slots=True)
class Begun:
    """What starting a run found."""

    skipped: int
    """Items of the input already recorded (not run again)."""
    created: bool
    """The session is new."""


class Connection(Protocol):
    # -- a run ------------------------------------------------------------------------
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
    ) -> Begun: ...
    def claim(
        self, session: str, owner: str, limit: int, now: float, lease: float
    ) -> tuple[list[str], bool]:
        """Up to ``limit`` keys for this runner to run, and whether that was the last of
        them (nothing left unrecorded that another runner could give up)."""
        ...

    def write(
        self, session: str, owner: str, items: Sequence[ItemRow], events: Sequence[EventRow]
    ) -> None:
        """Record ``items`` and ``events`` in one transaction; a done item is never
        overwritten, a failed one may be (by a retry of it)."""
        ...

    def release(self, session: str, owner: str, keys: Sequence[str]) -> None:
        """Give back claimed keys that will not be run by this runner."""
        ...

    def heartbeat(self, session: str, owner: str, now: float, lease: float) -> None: ...
    def finish(self, session: str, owner: str, now: float, *, complete: bool) -> SessionStatus:
        """End this runner's part; returns the session's status afterwards. ``complete``:
        every item of this runner's input is recorded."""
        ...

    # -- reading and housekeeping -----------------------------------------------------
    def sessions(self, now: float) -> list[SessionInfo]: ...
    def session(self, session: str, now: float) -> SessionInfo: ...
    def items(self, session: str) -> Iterator[ItemRecord]: ...
    def events(self, session: str, limit: int | None) -> list[JournalEvent]: ...
    def delete(self, sessions: Sequence[str]) -> int: ...
    def close(self) -> None: ...


class Backend(Protocol):
    url: str
    """Where the journal lives, with any password masked."""
    shared: bool
    """Several runners may work on one session at once (claims per item)."""

    def connect(self) -> Connection: ...


def open_backend(target: str | os.PathLike[str], *, synchronous: str | None) -> Backend:
    """The backend ``target`` names: a file path or ``sqlite:///path`` (SQLite), or
    ``postgresql://...`` (PostgreSQL). A ConfigError for anything else."""
    if isinstance(target, os.PathLike):
        target = os.fspath(target)
    if not isinstance(target, str) or not target.strip():
        raise ConfigError(
            "journal", f"must be a file path, sqlite:///PATH or postgresql://..., got {target!r}"
        )
    scheme = target.split("://", 1)[0].lower() if "://" in target else ""
    if scheme in ("postgresql", "postgres") or scheme.startswith("postgresql+"):
        from ._postgres import PostgresBackend

        if synchronous is not None:
            raise ConfigError(
                "synchronous", "is a SQLite setting; PostgreSQL's is synchronous_commit"
            )
        return PostgresBackend(_postgres_dsn(target))
    from ._sqlite import SqliteBackend

    if scheme == "sqlite":
        path = _sqlite_path(target)
    elif scheme:
        raise ConfigError(
            "journal",
            f"unknown scheme {scheme!r} in {redact_url(target)!r}: use a file path, "
            "sqlite:///PATH or postgresql://USER@HOST/DB",
        )
    else:
        path = target
    return SqliteBackend(Path(path), synchronous=synchronous)


def _sqlite_path(url: str) -> str:
    # SQLAlchemy's (and DBOS's) form: sqlite:///relative.db, sqlite:////absolute.db
    rest = url.split("://", 1)[1]
    if not rest.startswith("/") or rest == "/":
        raise ConfigError("journal", f"a SQLite URL is sqlite:///PATH (three slashes), got {url!r}")
    path = rest[1:].split("?", 1)[0]
    if not path or path == ":memory:":
        raise ConfigError(
            "journal", f"needs a file: {url!r} names none (an in-memory journal is not durable)"
        )
    return path


def _postgres_dsn(url: str) -> str:
    rest = url.split("://", 1)[1]
    dsn = f"postgresql://{rest}"  # drop a SQLAlchemy driver suffix (postgresql+psycopg)
    parts = urlsplit(dsn)
    try:
        parts.port  # noqa: B018  (raises ValueError on a bad port)
    except ValueError as exc:
        raise ConfigError("journal", f"bad PostgreSQL URL {redact_url(url)!r}: {exc}") from None
    if not parts.hostname and "host=" not in parts.query:
        raise ConfigError(
            "journal",
            f"a PostgreSQL URL needs a host: postgresql://USER@HOST/DB, got {redact_url(url)!r}",
        )
    return dsn


def redact_url(url: str) -> str:
    """``url`` with its password replaced by ``***``."""
    if "://" not in url:
        return url
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return parts._replace(netloc=netloc).geturl()


def new_owner() -> str:
    """A runner's identity: host, pid and a random part (pids are reused)."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def owner_alive(owner: str | None) -> bool | None:
    """Whether the runner ``owner`` still runs: True/False on this host, None elsewhere."""
    if not owner:
        return False
    host, _, rest = owner.partition(":")
    pid_text = rest.partition(":")[0]
    if host != socket.gethostname() or not pid_text.isdigit():
        return None
    pid = int(pid_text)
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
