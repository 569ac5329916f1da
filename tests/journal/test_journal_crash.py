"""Crash safety: a batch SIGKILLed at random points, resumed each time, loses nothing.

Each round starts the batch in a subprocess and kills it with SIGKILL after a random
delay (while it runs items and commits groups of records), then reads the journal. Across
the rounds: no recorded result is ever lost or changed, no recorded item runs again, and
the final results equal a clean run's. An item runs again only if it was in flight
(started, not yet committed) at a kill.
"""

from __future__ import annotations

import random
import signal
import sqlite3
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path

import pytest

from stalwart.journal import Journal, SessionStatus

CHILD = Path(__file__).with_name("crash_child.py")
ITEMS = 2000
KILLS = 50


def expected(n: int) -> dict[str, object]:
    return {"n": n, "square": n * n, "text": f"item-{n}"}


def run_child(journal: Path, log: Path, mode: str, kill_after: float | None) -> tuple[int, bool]:
    """Start the batch; kill it after ``kill_after`` s. Returns (pid, killed mid-run)."""
    args = [sys.executable, str(CHILD), str(journal), "crash", str(log), str(ITEMS), "8", mode]
    child = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    if kill_after is None:
        _, err = child.communicate(timeout=120)
        assert child.returncode == 0, err.decode()
        return child.pid, False
    time.sleep(kill_after)
    running = child.poll() is None
    if running:
        child.send_signal(signal.SIGKILL)
    _, err = child.communicate(timeout=60)
    if not running:
        assert child.returncode == 0, err.decode()
    return child.pid, running


def recorded(journal: Path) -> dict[object, object]:
    if not journal.exists():
        return {}
    with Journal(journal, create=False) as j:
        try:
            return j.results("crash")
        except LookupError:  # killed before the session's first commit
            return {}


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["threads", "async"])
def test_sigkill_at_random_points_loses_nothing_and_runs_nothing_recorded_twice(
    tmp_path: Path, mode: str
) -> None:
    rng = random.Random(20261206)
    journal, log = tmp_path / "crash.db", tmp_path / "runs.log"
    seen: dict[object, object] = {}
    killed_pids: set[int] = set()
    committed_before: dict[int, dict[object, object]] = {}
    kills = rounds = 0
    order: list[int] = []
    fresh_file: set[int] = set()
    mid_commit = 0  # kills after which some but not all items were recorded
    while kills < KILLS:
        rounds += 1
        assert rounds < KILLS * 3, "the batch keeps finishing before the kill"
        committed_before_run = dict(seen)
        fresh = not journal.exists()
        pid, killed = run_child(journal, log, mode, rng.uniform(0.08, 0.4))
        committed_before[pid] = committed_before_run
        order.append(pid)
        if fresh:
            fresh_file.add(pid)
        now = recorded(journal)
        lost = {k: v for k, v in seen.items() if now.get(k) != v}
        assert lost == {}, f"recorded results lost or changed after round {rounds}: {lost}"
        seen = now
        if killed:
            kills += 1
            killed_pids.add(pid)
            mid_commit += 0 < len(now) < ITEMS
        if len(now) == ITEMS:  # done: start again on a fresh file so every kill tests a run
            journal.unlink()
            for extra in ("-wal", "-shm"):
                Path(f"{journal}{extra}").unlink(missing_ok=True)
            seen = {}
    fresh = not journal.exists()
    pid, _ = run_child(journal, log, mode, None)
    committed_before[pid] = dict(seen)
    order.append(pid)
    if fresh:
        fresh_file.add(pid)
    final = recorded(journal)
    assert final == {n: expected(n) for n in range(ITEMS)}

    # No item recorded before a run started was run by it again; reruns only follow kills.
    runs: dict[int, list[int]] = defaultdict(list)
    for line in log.read_text().splitlines():
        p, key = line.split()
        runs[int(p)].append(int(key))
    rerun_of_recorded = {
        p: sorted(set(keys) & set(committed_before.get(p, {}))) for p, keys in runs.items()
    }
    assert {p: ks for p, ks in rerun_of_recorded.items() if ks} == {}
    with sqlite3.connect(journal) as db:
        rows, distinct = db.execute(
            "SELECT count(*), count(DISTINCT key) FROM items WHERE session = 'crash'"
        ).fetchone()
    assert rows == distinct == ITEMS
    with Journal(journal, create=False) as j:
        assert j.session("crash").status is SessionStatus.COMPLETED
    # Reruns: keys a run started that an earlier run of the same file had started too.
    reruns, started = 0, set[int]()
    for p in order:
        if p in fresh_file:
            started = set()
        reruns += len(set(runs[p]) & started)
        started |= set(runs[p])
    print(
        f"\ncrash test ({mode}): {kills} SIGKILLs in {rounds} rounds, {mid_commit} with "
        f"part of the batch recorded; 0 recorded results lost, 0 keys recorded twice, "
        f"0 recorded items run again ({reruns} in-flight items ran again after a kill); "
        f"final results equal a clean run's ({ITEMS} items)"
    )
    assert mid_commit >= KILLS // 2, "too few kills landed mid-batch to prove anything"
