"""``stalwart sessions`` and the argparse flags for users' own scripts."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest

from stalwart import CircuitBreaker
from stalwart.cli import main
from stalwart.journal import (
    Journal,
    SessionNotFound,
    add_arguments,
    batch_options,
    list_resumable,
    run_batch,
)
from stalwart.testing import FakeClock


@pytest.fixture
def path(tmp_path: Path) -> Path:
    path = tmp_path / "batch.db"
    with Journal(path) as j:
        run_batch(range(4), lambda n: {"n": n}, journal=j, session="done-one")
        run_batch(range(3), lambda n: 1 // (n - 1), journal=j, session="with-failure")
    return path


def test_list_shows_every_session_and_resumable_only_the_unfinished(
    path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["sessions", "--journal", str(path), "list"]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0].split() == [
        "ID",
        "STATUS",
        "DONE",
        "FAILED",
        "TOTAL",
        "RUNS",
        "UPDATED",
    ]
    assert "done-one" in out
    assert "with-failure" in out
    assert main(["sessions", "--journal", str(path), "list", "--resumable", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert [s["id"] for s in listed] == ["with-failure"]
    assert listed[0]["status"] == "failed"
    assert listed[0]["done"] == 2


def test_show_prints_counts_and_events(path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["sessions", "--journal", str(path), "show", "with-failure"]) == 0
    out = capsys.readouterr().out
    assert "failed: 1" in out
    assert "item_failed 1" in out
    assert "ZeroDivisionError" in out


def test_export_writes_every_item_as_jsonl_or_json(
    path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["sessions", "--journal", str(path), "export", "done-one"]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert sorted(line["key"] for line in lines) == [0, 1, 2, 3]
    assert main(["sessions", "--journal", str(path), "export", "done-one", "--format", "json"]) == 0
    document = json.loads(capsys.readouterr().out)
    assert document["session"]["id"] == "done-one"
    assert len(document["items"]) == 4


def test_clean_removes_old_sessions_and_dry_run_removes_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    clock = FakeClock(wall_start=1_700_000_000.0)
    path = tmp_path / "batch.db"
    with Journal(path, clock=clock) as j:
        run_batch([1], str, journal=j, session="old", clock=clock)
        clock.advance(8 * 86400)
        run_batch([1], str, journal=j, session="new", clock=clock)
        assert j.clean("7d", dry_run=True) == ["old"]
        assert [s.id for s in j.sessions()] == ["old", "new"]
        assert j.clean("7d") == ["old"]
        assert [s.id for s in j.sessions()] == ["new"]
    assert main(["sessions", "--journal", str(path), "clean", "--older-than", "0s"]) == 0
    assert "removed 1 session(s): new" in capsys.readouterr().out


def test_errors_are_one_line_and_exit_2(path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["sessions", "--journal", str(path), "show", "nope"]) == 2
    assert "no session 'nope'" in capsys.readouterr().err
    missing = path.with_name("typo.db")
    assert main(["sessions", "--journal", str(missing), "list"]) == 2
    assert "no journal at" in capsys.readouterr().err
    assert not missing.exists()
    assert main(["sessions", "--journal", "mysql://x/y", "list"]) == 2
    assert "unknown scheme" in capsys.readouterr().err
    assert main(["sessions", "--journal", str(path), "clean", "--older-than", "soon"]) == 2


def test_seed_002_flags_become_run_batch_options(path: Path) -> None:
    parser = add_arguments(argparse.ArgumentParser(), journal=str(path))
    llm = CircuitBreaker("llm")
    with Journal(path) as j:
        args = parser.parse_args(
            ["--resume-session", "with-failure", "--retry-failed", "--max-concurrent", "3"]
        )
        assert batch_options(args, j, breaker=llm) == {
            "session": "with-failure", "concurrency": 3, "breaker": llm, "retry_failed": True,
        }  # fmt: skip
        off = batch_options(parser.parse_args(["--disable-circuit-breaker"]), j, breaker=llm)
        assert off["breaker"] is None
        assert off["session"].startswith("run-")
        with pytest.raises(SessionNotFound):
            batch_options(parser.parse_args(["--resume-session", "nope"]), j, breaker=llm)
    with pytest.raises(SystemExit):
        parser.parse_args(["--concurrency", "0"])
    with pytest.raises(SystemExit):
        parser.parse_args(["--resume-session", "a", "--session-id", "b"])


def test_list_resumable_prints_the_flag_to_resume_with(
    path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with Journal(path) as j:
        assert list_resumable(j) == 0
    out = capsys.readouterr().out
    assert "--resume-session with-failure" in out
    assert "done-one" not in out
