"""SIGTERM and SIGINT stop a real batch process cleanly: running items finish and are
recorded, nothing new starts, the session is left paused and resumable."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from stalwart.journal import Journal, SessionStatus

CHILD = Path(__file__).with_name("pg_child.py")  # takes any journal URL or path


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_stops_the_batch_and_every_started_item_is_recorded(
    tmp_path: Path, sig: signal.Signals
) -> None:
    journal, log = tmp_path / "batch.db", tmp_path / "runs.log"
    args = [sys.executable, str(CHILD), str(journal), "s", str(log), "200", "4", "0.05"]
    child = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 30
    while not log.exists() or len(log.read_text().splitlines()) < 8:
        assert time.monotonic() < deadline
        assert child.poll() is None
        time.sleep(0.01)
    child.send_signal(sig)
    out, err = child.communicate(timeout=30)
    assert child.returncode == 0, err
    report = json.loads(out)
    assert report["stopped"] == "signal"
    assert report["status"] == "paused"
    started = {int(line.split()[1]) for line in log.read_text().splitlines()}
    with Journal(journal, create=False) as j:
        recorded = set(j.results("s"))
        info = j.session("s")
    assert recorded == started  # in flight at the signal: finished and recorded
    assert 8 <= len(recorded) < 200
    assert info.status is SessionStatus.PAUSED
    assert info.resumable
