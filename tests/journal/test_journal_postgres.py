"""PostgreSQL: several runner processes share one session; each item is processed once,
and a runner killed mid-run leaves its claimed items to the others."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter, defaultdict
from pathlib import Path

import pytest

from servers import PostgresServer
from stalwart.journal import Journal, SessionStatus, run_batch

CHILD = Path(__file__).with_name("pg_child.py")


def start_runner(
    pg: PostgresServer, session: str, log: Path, items: int, delay: float
) -> subprocess.Popen[bytes]:
    args = [sys.executable, str(CHILD), pg.dsn, session, str(log), str(items), "4", str(delay)]
    return subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def starts(log: Path) -> dict[int, list[int]]:
    by_pid: dict[int, list[int]] = defaultdict(list)
    for line in log.read_text().splitlines():
        pid, key = line.split()
        by_pid[int(pid)].append(int(key))
    return by_pid


def test_one_process_records_and_resumes_like_sqlite(postgres_server: PostgresServer) -> None:
    session = f"single-{uuid.uuid4().hex[:6]}"
    with Journal(postgres_server.dsn) as j:
        report = run_batch(range(100), lambda n: n * 3, journal=j, session=session)
        assert (report.done, report.status) == (100, SessionStatus.COMPLETED)
        again = run_batch(range(120), lambda n: n * 3, journal=j, session=session)
        assert (again.done, again.skipped) == (20, 100)
        assert j.results(session) == {n: n * 3 for n in range(120)}
        info = j.session(session)
        assert (info.done, info.failed, info.runs, info.active) == (120, 0, 2, False)
        assert [e.kind for e in j.events(session)][:1] == ["started"]
        assert j.delete(session) == 1
        assert session not in {s.id for s in j.sessions()}


@pytest.mark.slow
def test_three_runners_share_a_session_and_process_each_item_exactly_once(
    postgres_server: PostgresServer, tmp_path: Path
) -> None:
    session, log, items = f"three-{uuid.uuid4().hex[:6]}", tmp_path / "runs.log", 300
    # 20 ms per item: long enough that a runner starting last still finds items to claim.
    runners = [start_runner(postgres_server, session, log, items, 0.02) for _ in range(3)]
    reports = []
    for runner in runners:
        out, err = runner.communicate(timeout=120)
        assert runner.returncode == 0, err.decode()
        reports.append(json.loads(out))
    counts = Counter(key for keys in starts(log).values() for key in keys)
    assert sorted(counts) == list(range(items))
    assert set(counts.values()) == {1}, "an item was processed twice"
    assert len(starts(log)) == 3, "a runner did no work: nothing was shared"
    assert sum(r["done"] for r in reports) == items
    with Journal(postgres_server.dsn) as j:
        assert j.results(session) == {n: {"n": n, "double": 2 * n} for n in range(items)}
        assert j.session(session).status is SessionStatus.COMPLETED


@pytest.mark.slow
def test_a_killed_runners_claimed_items_are_finished_by_the_others(
    postgres_server: PostgresServer, tmp_path: Path
) -> None:
    session, log, items = f"kill-{uuid.uuid4().hex[:6]}", tmp_path / "runs.log", 300
    runners = [start_runner(postgres_server, session, log, items, 0.01) for _ in range(3)]
    victim = runners[0]
    deadline = time.monotonic() + 30
    # Kill it once it is well into its work (several items started), not at a set time.
    while not log.exists() or len(starts(log).get(victim.pid, ())) < 5:
        assert time.monotonic() < deadline, "the runner never got going"
        time.sleep(0.02)
    victim.send_signal(signal.SIGKILL)
    victim.communicate(timeout=30)
    killed_at = starts(log)[victim.pid]
    with Journal(postgres_server.dsn) as j:
        recorded_then = set(j.results(session))
    for runner in runners[1:]:
        _, err = runner.communicate(timeout=120)
        assert runner.returncode == 0, err.decode()
    by_pid = starts(log)
    counts = Counter(key for keys in by_pid.values() for key in keys)
    assert sorted(counts) == list(range(items))
    twice = {key for key, n in counts.items() if n > 1}
    # Only what the dead runner had started and not recorded ran again.
    assert twice <= set(killed_at) - recorded_then
    assert all(n <= 2 for n in counts.values())
    with Journal(postgres_server.dsn) as j:
        assert j.results(session) == {n: {"n": n, "double": 2 * n} for n in range(items)}
        info = j.session(session)
        assert info.status is SessionStatus.COMPLETED
        assert not info.active
    print(
        f"\npostgres: runner killed after {len(killed_at)} items; {len(twice)} in flight ran again"
    )
