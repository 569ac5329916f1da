"""Bad input gets a clear error and leaves the journal as it was."""

from __future__ import annotations

import hashlib
import sqlite3
from pathlib import Path

import pytest

from stalwart import ConfigError
from stalwart.journal import Journal, JournalError, SessionNotFound, run_batch


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def a_journal(tmp_path: Path, items: int = 500) -> Path:
    path = tmp_path / "batch.db"
    with Journal(path) as j:
        run_batch(range(items), lambda n: {"n": n, "pad": "x" * 200}, journal=j, session="s")
    # Fold the WAL into the main file so the file alone is the journal.
    with sqlite3.connect(path) as db:
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    return path


def test_a_file_of_garbage_is_refused_and_left_as_it_was(tmp_path: Path) -> None:
    path = tmp_path / "batch.db"
    path.write_bytes(b"this is not a database\n" * 200)
    before = digest(path)
    with pytest.raises(JournalError, match="damaged or not a SQLite file"):
        Journal(path)
    assert digest(path) == before
    assert not Path(f"{path}-wal").exists()


def test_a_truncated_journal_is_refused_and_left_as_it_was(tmp_path: Path) -> None:
    path = a_journal(tmp_path)
    size = path.stat().st_size
    with open(path, "r+b") as f:
        f.truncate(size // 2)
    before = digest(path)
    with pytest.raises(JournalError, match="damaged"):
        Journal(path)
    assert digest(path) == before


def test_a_journal_with_damaged_pages_is_refused(tmp_path: Path) -> None:
    path = a_journal(tmp_path)
    data = bytearray(path.read_bytes())
    page = 4096
    for offset in range(page * 2, len(data), page * 3):  # scribble over some b-tree pages
        data[offset : offset + 64] = b"\xff" * 64
    path.write_bytes(bytes(data))
    before = digest(path)
    with pytest.raises(JournalError, match="damaged"):
        Journal(path)
    assert digest(path) == before


def test_a_sqlite_database_that_is_not_a_journal_is_refused_untouched(tmp_path: Path) -> None:
    path = tmp_path / "app.db"
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT)")
        db.execute("INSERT INTO users VALUES (1, 'ada')")
    before = digest(path)
    with pytest.raises(JournalError, match=r"not a stalwart journal .*users"):
        Journal(path)
    assert digest(path) == before


def test_a_journal_of_another_schema_version_is_refused(tmp_path: Path) -> None:
    path = a_journal(tmp_path, items=3)
    with sqlite3.connect(path) as db:
        db.execute("UPDATE stalwart_journal SET value = '99' WHERE name = 'schema'")
    with pytest.raises(JournalError, match="schema 99"):
        Journal(path)


def test_an_unknown_session_is_a_lookup_error_naming_it(tmp_path: Path) -> None:
    with Journal(tmp_path / "batch.db") as j:
        for read in (j.session, j.results, j.events, j.failures):
            with pytest.raises(SessionNotFound, match="no session 'nope'"):
                read("nope")
        assert j.sessions() == []


@pytest.mark.parametrize(
    "target",
    [
        "",
        "   ",
        "mysql://user@host/db",
        "http://127.0.0.1/journal",
        "sqlite://relative.db",
        "sqlite:///",
        "sqlite:///:memory:",
        "postgresql://user@127.0.0.1:notaport/db",
        "postgresql:///db",
    ],
)
def test_a_bad_journal_url_is_a_config_error_naming_the_journal(target: str) -> None:
    with pytest.raises(ConfigError) as info:
        Journal(target)
    assert info.value.field == "journal"


def test_a_password_never_shows_in_an_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        Journal("postgresql://user:s3cret@127.0.0.1:bad/db")
    assert "s3cret" not in str(info.value)
    with pytest.raises(JournalError) as failed:
        Journal("postgresql://user:s3cret@127.0.0.1:1/db")  # nothing listens on port 1
    assert "s3cret" not in str(failed.value)
    assert "***" in str(failed.value)


def test_a_missing_directory_or_a_directory_is_a_journal_error(tmp_path: Path) -> None:
    with pytest.raises(JournalError, match="does not exist"):
        Journal(tmp_path / "missing" / "batch.db")
    with pytest.raises(JournalError, match="is a directory"):
        Journal(tmp_path)


def test_create_false_refuses_a_missing_file_and_creates_nothing(tmp_path: Path) -> None:
    with pytest.raises(JournalError, match="no journal at"):
        Journal(tmp_path / "typo.db", create=False)
    assert list(tmp_path.iterdir()) == []


def test_bad_settings_are_config_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="synchronous"):
        Journal(tmp_path / "a.db", synchronous="sometimes")
    with pytest.raises(ConfigError, match="lease"):
        Journal(tmp_path / "a.db", lease=0)
    with pytest.raises(ConfigError, match="synchronous"):
        Journal("postgresql://u@127.0.0.1/db", synchronous="full")
    with Journal(tmp_path / "a.db") as j:
        with pytest.raises(ConfigError, match="older_than"):
            j.clean("a week")
        with open(tmp_path / "x", "w") as out, pytest.raises(ConfigError, match="format"):
            j.export("s", out, format="xml")  # type: ignore[arg-type]


def test_a_non_serialisable_result_leaves_the_recorded_ones_unchanged(tmp_path: Path) -> None:
    path = a_journal(tmp_path, items=20)
    with Journal(path) as j:
        before = j.results("s")
        with pytest.raises(TypeError, match="item 20 is not JSON-serialisable"):
            run_batch(range(21), lambda n: object(), journal=j, session="s")
        assert j.results("s") == before
        nan = float("nan")
        with pytest.raises(TypeError, match="not JSON-serialisable"):
            run_batch(["x"], lambda n: nan, journal=j, session="t")
        assert j.results("t") == {}
