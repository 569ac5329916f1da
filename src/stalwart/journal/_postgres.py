"""The PostgreSQL journal: several runners, on several hosts, share one session.

Every key of the input is a row; a runner claims a few at a time with
``FOR UPDATE SKIP LOCKED``, so no two runners hold one item at once. A claim is a lease:
it lasts ``lease`` seconds past the runner's last heartbeat, and ends at once when the
runner's database connection is gone (its backend pid left ``pg_stat_activity``: the
process died), so the others take its items over within a claim poll. A done item is
never overwritten. Needs psycopg 3 (the ``postgres`` extra).
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from typing import Any

from ._model import (
    ItemRecord,
    JournalError,
    JournalEvent,
    SessionInfo,
    SessionNotFound,
    SessionStatus,
    decode_key,
)
from ._store import Begun, EventRow, ItemRow, redact_url

__all__ = ("PostgresBackend",)

SCHEMA_VERSION = 1
CONNECT_TIMEOUT = 10
_DDL_LOCK = 0x5354_4A4E  # "STJN": one schema creation at a time

_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS stalwart_journal (name text PRIMARY KEY, value text NOT NULL)",
    """CREATE TABLE IF NOT EXISTS stalwart_sessions (
        id text PRIMARY KEY,
        status text NOT NULL,
        stage text,
        metadata jsonb NOT NULL DEFAULT '{}',
        total integer NOT NULL DEFAULT 0,
        created_at double precision NOT NULL,
        updated_at double precision NOT NULL,
        finished_at double precision,
        runs integer NOT NULL DEFAULT 0)""",
    """CREATE TABLE IF NOT EXISTS stalwart_runners (
        session text NOT NULL,
        owner text NOT NULL,
        pid integer NOT NULL,
        heartbeat_at timestamptz NOT NULL,
        PRIMARY KEY (session, owner))""",
    """CREATE TABLE IF NOT EXISTS stalwart_items (
        session text NOT NULL,
        key text NOT NULL,
        seq integer NOT NULL,
        status text NOT NULL,
        result text,
        error text,
        attempts integer,
        finished_at double precision,
        duration double precision,
        claimed_by text,
        claimed_pid integer,
        lease_until timestamptz,
        PRIMARY KEY (session, key))""",
    """CREATE INDEX IF NOT EXISTS stalwart_items_open ON stalwart_items (session, seq)
        WHERE status IN ('pending', 'claimed')""",
    """CREATE TABLE IF NOT EXISTS stalwart_events (
        id bigserial PRIMARY KEY,
        session text NOT NULL,
        at double precision NOT NULL,
        kind text NOT NULL,
        key text,
        detail text NOT NULL DEFAULT '{}')""",
    "CREATE INDEX IF NOT EXISTS stalwart_events_session ON stalwart_events (session, id)",
)

# A claim another runner can no longer be holding: its lease ran out, or its connection
# (and so, almost always, its process) is gone.
_ABANDONED = """(i.lease_until < clock_timestamp()
    OR NOT EXISTS (SELECT 1 FROM pg_stat_activity a WHERE a.pid = i.claimed_pid))"""

_CLAIM = f"""
WITH picked AS (
    SELECT i.key FROM stalwart_items i
    WHERE i.session = %(s)s
      AND (i.status = 'pending'
           OR (i.status = 'claimed' AND i.claimed_by <> %(o)s AND {_ABANDONED}))
    ORDER BY i.seq
    LIMIT %(n)s
    FOR UPDATE SKIP LOCKED)
UPDATE stalwart_items t SET status = 'claimed', claimed_by = %(o)s, claimed_pid = pg_backend_pid(),
    lease_until = clock_timestamp() + make_interval(secs => %(lease)s)
FROM picked WHERE t.session = %(s)s AND t.key = picked.key
RETURNING t.key, t.seq
"""

_LIVE_RUNNER = """EXISTS (SELECT 1 FROM stalwart_runners r
    WHERE r.session = {session}
      AND r.heartbeat_at > clock_timestamp() - make_interval(secs => {lease})
      AND EXISTS (SELECT 1 FROM pg_stat_activity a WHERE a.pid = r.pid){extra})"""


class PostgresBackend:
    """A journal in a PostgreSQL database (tables ``stalwart_*``, created on first use)."""

    shared = True

    def __init__(self, dsn: str) -> None:
        self.dsn = dsn
        self.url = redact_url(dsn)
        self._ready = False

    def connect(self) -> PostgresConnection:
        conn = PostgresConnection(self, create=not self._ready)
        self._ready = True
        return conn


class PostgresConnection:
    def __init__(self, backend: PostgresBackend, *, create: bool) -> None:
        try:
            import psycopg
        except ModuleNotFoundError as exc:
            raise JournalError(
                "a PostgreSQL journal needs psycopg 3: pip install 'stalwart[postgres]'"
            ) from exc
        self._psycopg = psycopg
        self.backend = backend
        self.lease = 30.0
        try:
            self._db = psycopg.connect(
                backend.dsn, autocommit=True, connect_timeout=CONNECT_TIMEOUT
            )
        except psycopg.Error as exc:
            raise JournalError(
                f"cannot connect to the journal {backend.url}: {self._text(exc)}"
            ) from None
        try:
            if create:
                self._create()
            else:
                self._check()
        except BaseException:
            self._db.close()
            raise

    def _text(self, exc: BaseException) -> str:
        text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        password = _password(self.backend.dsn)
        return text.replace(password, "***") if password else text

    def _run(self, fn: Any) -> Any:
        """``fn(cursor)`` in one transaction; database errors become JournalErrors."""
        try:
            with self._db.transaction(), self._db.cursor() as cur:
                return fn(cur)
        except self._psycopg.Error as exc:
            raise JournalError(f"journal {self.backend.url}: {self._text(exc)}") from None

    def _create(self) -> None:
        def create(cur: Any) -> None:
            cur.execute("SELECT pg_advisory_xact_lock(%s)", (_DDL_LOCK,))
            for statement in _SCHEMA:
                cur.execute(statement)
            cur.execute(
                "INSERT INTO stalwart_journal VALUES ('schema', %s) ON CONFLICT DO NOTHING",
                (str(SCHEMA_VERSION),),
            )

        self._run(create)
        self._check()

    def _check(self) -> None:
        def read(cur: Any) -> Any:
            cur.execute("SELECT to_regclass('stalwart_journal') IS NOT NULL")
            if not cur.fetchone()[0]:
                return None
            cur.execute("SELECT value FROM stalwart_journal WHERE name = 'schema'")
            row = cur.fetchone()
            return None if row is None else row[0]

        found = self._run(read)
        if found != str(SCHEMA_VERSION):
            raise JournalError(
                f"{self.backend.url} has journal schema {found}; this stalwart reads schema "
                f"{SCHEMA_VERSION}"
            )

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
        self.lease = lease
        keys = list(keys)

        def begin(cur: Any) -> Begun:
            cur.execute(
                """INSERT INTO stalwart_sessions AS s
                       (id, status, stage, metadata, total, created_at, updated_at, runs)
                   VALUES (%s, 'running', %s, %s::jsonb, %s, %s, %s, 1)
                   ON CONFLICT (id) DO UPDATE SET status = 'running',
                       stage = COALESCE(EXCLUDED.stage, s.stage),
                       metadata = s.metadata || EXCLUDED.metadata,
                       total = GREATEST(s.total, EXCLUDED.total), updated_at = EXCLUDED.updated_at,
                       finished_at = NULL, runs = s.runs + 1
                   RETURNING (xmax = 0)""",
                (session, stage, json.dumps(metadata or {}), len(keys), now, now),
            )
            created = bool(cur.fetchone()[0])
            cur.execute(
                "DELETE FROM stalwart_runners r WHERE r.session = %s AND NOT EXISTS "
                "(SELECT 1 FROM pg_stat_activity a WHERE a.pid = r.pid)",
                (session,),
            )
            cur.execute(
                "INSERT INTO stalwart_runners VALUES (%s, %s, pg_backend_pid(), clock_timestamp())",
                (session, owner),
            )
            cur.execute(
                "INSERT INTO stalwart_items (session, key, seq, status) "
                "SELECT %s, k, n, 'pending' FROM unnest(%s::text[]) WITH ORDINALITY AS u(k, n) "
                "ON CONFLICT DO NOTHING",
                (session, keys),
            )
            if retry_failed:
                cur.execute(
                    "UPDATE stalwart_items SET status = 'pending' "
                    "WHERE session = %s AND status = 'failed'",
                    (session,),
                )
            cur.execute(
                "SELECT count(*) FROM stalwart_items WHERE session = %s AND key = ANY(%s) "
                "AND status IN ('done', 'failed')",
                (session, keys),
            )
            return Begun(skipped=int(cur.fetchone()[0]), created=created)

        result: Begun = self._run(begin)
        return result

    def claim(
        self, session: str, owner: str, limit: int, now: float, lease: float
    ) -> tuple[list[str], bool]:
        def claim(cur: Any) -> tuple[list[str], bool]:
            cur.execute(_CLAIM, {"s": session, "o": owner, "n": limit, "lease": lease})
            keys = [k for k, _ in sorted(cur.fetchall(), key=lambda row: row[1])]
            if len(keys) == limit:
                return keys, False
            # Short of the limit: the last ones, unless others hold some they may give up.
            cur.execute(
                "SELECT EXISTS (SELECT 1 FROM stalwart_items WHERE session = %s AND "
                "(status = 'pending' OR (status = 'claimed' AND claimed_by <> %s)))",
                (session, owner),
            )
            return keys, not cur.fetchone()[0]

        result: tuple[list[str], bool] = self._run(claim)
        return result

    def release(self, session: str, owner: str, keys: Sequence[str]) -> None:
        self._run(
            lambda cur: cur.execute(
                "UPDATE stalwart_items SET status = 'pending', claimed_by = NULL, "
                "claimed_pid = NULL, lease_until = NULL WHERE session = %s AND key = ANY(%s) "
                "AND claimed_by = %s AND status = 'claimed'",
                (session, list(keys), owner),
            )
        )

    def write(
        self, session: str, owner: str, items: Sequence[ItemRow], events: Sequence[EventRow]
    ) -> None:
        def write(cur: Any) -> None:
            if items:
                cur.executemany(
                    "UPDATE stalwart_items SET status = %s, result = %s, error = %s, "
                    "attempts = %s, finished_at = %s, duration = %s, claimed_by = NULL, "
                    "claimed_pid = NULL, lease_until = NULL "
                    "WHERE session = %s AND key = %s AND status <> 'done'",
                    [
                        (
                            "done" if i.ok else "failed",
                            i.result,
                            i.error,
                            i.attempts,
                            i.finished_at,
                            i.duration,
                            session,
                            i.key,
                        )
                        for i in items
                    ],
                )
            if events:
                cur.executemany(
                    "INSERT INTO stalwart_events (session, at, kind, key, detail) "
                    "VALUES (%s, %s, %s, %s, %s)",
                    [(session, e.at, e.kind, e.key, e.detail) for e in events],
                )

        self._run(write)

    def heartbeat(self, session: str, owner: str, now: float, lease: float) -> None:
        def beat(cur: Any) -> None:
            cur.execute(
                "UPDATE stalwart_runners SET heartbeat_at = clock_timestamp() "
                "WHERE session = %s AND owner = %s",
                (session, owner),
            )
            cur.execute(
                "UPDATE stalwart_items "
                "SET lease_until = clock_timestamp() + make_interval(secs => %s) "
                "WHERE session = %s AND claimed_by = %s AND status = 'claimed'",
                (lease, session, owner),
            )
            cur.execute(
                "UPDATE stalwart_sessions SET updated_at = %s WHERE id = %s", (now, session)
            )

        self._run(beat)

    def finish(self, session: str, owner: str, now: float, *, complete: bool) -> SessionStatus:
        # Every runner's keys are rows here: the table itself says whether all are recorded.
        def finish(cur: Any) -> SessionStatus:
            cur.execute("SELECT 1 FROM stalwart_sessions WHERE id = %s FOR UPDATE", (session,))
            cur.execute(
                "UPDATE stalwart_items SET status = 'pending', claimed_by = NULL, "
                "claimed_pid = NULL, lease_until = NULL "
                "WHERE session = %s AND claimed_by = %s AND status = 'claimed'",
                (session, owner),
            )
            cur.execute(
                "DELETE FROM stalwart_runners WHERE session = %s AND owner = %s", (session, owner)
            )
            others = _LIVE_RUNNER.format(session="%(s)s", lease="%(lease)s", extra="")
            cur.execute(
                f"""SELECT count(*) FILTER (WHERE status IN ('pending', 'claimed')),
                           count(*) FILTER (WHERE status = 'failed'), {others}
                    FROM stalwart_items WHERE session = %(s)s""",
                {"s": session, "lease": self.lease},
            )
            open_items, failed, others_alive = cur.fetchone()
            if open_items == 0:
                status = SessionStatus.FAILED if failed else SessionStatus.COMPLETED
            elif others_alive:
                status = SessionStatus.RUNNING
            else:
                status = SessionStatus.PAUSED
            finished = now if status in (SessionStatus.COMPLETED, SessionStatus.FAILED) else None
            cur.execute(
                "UPDATE stalwart_sessions SET status = %s, updated_at = %s, finished_at = %s "
                "WHERE id = %s",
                (status.value, now, finished, session),
            )
            return status

        result: SessionStatus = self._run(finish)
        return result

    # -- reading ---------------------------------------------------------------------------

    def _select_sessions(self, cur: Any, where: str, params: dict[str, Any]) -> list[SessionInfo]:
        live = _LIVE_RUNNER.format(session="s.id", lease="%(lease)s", extra="")
        cur.execute(
            f"""SELECT s.id, s.status, s.stage, s.metadata, s.total, s.created_at, s.updated_at,
                       s.finished_at, s.runs,
                       (SELECT count(*) FROM stalwart_items i
                        WHERE i.session = s.id AND i.status = 'done'),
                       (SELECT count(*) FROM stalwart_items i
                        WHERE i.session = s.id AND i.status = 'failed'),
                       {live}
                FROM stalwart_sessions s {where} ORDER BY s.created_at, s.id""",
            {"lease": self.lease, **params},
        )
        return [
            SessionInfo(
                id=row[0],
                status=SessionStatus(row[1]),
                stage=row[2],
                metadata=row[3] if isinstance(row[3], dict) else json.loads(row[3]),
                total=row[4],
                created_at=row[5],
                updated_at=row[6],
                finished_at=row[7],
                runs=row[8],
                done=int(row[9]),
                failed=int(row[10]),
                active=row[1] == SessionStatus.RUNNING.value and bool(row[11]),
            )
            for row in cur.fetchall()
        ]

    def sessions(self, now: float) -> list[SessionInfo]:
        result: list[SessionInfo] = self._run(lambda cur: self._select_sessions(cur, "", {}))
        return result

    def session(self, session: str, now: float) -> SessionInfo:
        found: list[SessionInfo] = self._run(
            lambda cur: self._select_sessions(cur, "WHERE s.id = %(id)s", {"id": session})
        )
        if not found:
            raise SessionNotFound(f"no session {session!r} in {self.backend.url}")
        return found[0]

    def items(self, session: str) -> Iterator[ItemRecord]:
        self.session(session, 0.0)

        def read(cur: Any) -> list[Any]:
            cur.execute(
                "SELECT key, status, result, error, attempts, finished_at, duration "
                "FROM stalwart_items WHERE session = %s AND status IN ('done', 'failed') "
                "ORDER BY finished_at, key",
                (session,),
            )
            rows: list[Any] = cur.fetchall()
            return rows

        for key, status, result, error, attempts, finished_at, duration in self._run(read):
            yield ItemRecord(
                key=decode_key(key),
                ok=status == "done",
                result=None if result is None else json.loads(result),
                error=error,
                attempts=attempts or 1,
                finished_at=finished_at,
                duration=duration or 0.0,
            )

    def events(self, session: str, limit: int | None) -> list[JournalEvent]:
        self.session(session, 0.0)

        def read(cur: Any) -> list[Any]:
            cur.execute(
                "SELECT at, kind, key, detail FROM (SELECT * FROM stalwart_events "
                "WHERE session = %s ORDER BY id DESC LIMIT %s) e ORDER BY id",
                (session, limit),
            )
            rows: list[Any] = cur.fetchall()
            return rows

        return [
            JournalEvent(
                at=at, kind=kind, key=None if key is None else decode_key(key), detail=json.loads(d)
            )
            for at, kind, key, d in self._run(read)
        ]

    def delete(self, sessions: Sequence[str]) -> int:
        def delete(cur: Any) -> int:
            ids = list(sessions)
            cur.execute("DELETE FROM stalwart_items WHERE session = ANY(%s)", (ids,))
            cur.execute("DELETE FROM stalwart_events WHERE session = ANY(%s)", (ids,))
            cur.execute("DELETE FROM stalwart_runners WHERE session = ANY(%s)", (ids,))
            cur.execute("DELETE FROM stalwart_sessions WHERE id = ANY(%s)", (ids,))
            removed: int = cur.rowcount
            return removed

        result: int = self._run(delete)
        return result

    def close(self) -> None:
        self._db.close()


def _password(dsn: str) -> str | None:
    from urllib.parse import urlsplit

    try:
        return urlsplit(dsn).password
    except ValueError:
        return None
