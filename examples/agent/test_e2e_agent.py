"""Seed 004 end to end: the agent and two backends as real processes; the primary is
killed, the agent moves to the fallback, and SIGTERM closes it gracefully."""

from __future__ import annotations

import json
import queue
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

pytestmark = pytest.mark.e2e
HERE = Path(__file__).parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Backend:
    """backend.py in its own process; its JSON lines land in ``lines`` as they come."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.port = free_port()
        self.proc = subprocess.Popen(
            [sys.executable, str(HERE / "backend.py"), "--port", str(self.port), "--name", name],
            stdout=subprocess.PIPE, text=True,
        )  # fmt: skip
        self.lines: queue.Queue[dict[str, Any]] = queue.Queue()
        self.seen: list[dict[str, Any]] = []
        threading.Thread(target=self._read, daemon=True).start()
        assert self.wait(lambda e: e["event"] == "listening")

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(json.loads(line))

    def wait(self, match: Callable[[dict[str, Any]], bool], within: float = 20.0) -> dict[str, Any]:
        deadline = time.monotonic() + within
        for seen in self.seen:
            if match(seen):
                return seen
        while time.monotonic() < deadline:
            try:
                entry = self.lines.get(timeout=max(0.01, deadline - time.monotonic()))
            except queue.Empty:
                break
            self.seen.append(entry)
            if match(entry):
                return entry
        raise AssertionError(f"{self.name} never saw it; saw {self.seen}")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.communicate(timeout=10)


def message(kind: str) -> Callable[[dict[str, Any]], bool]:
    return lambda e: e["event"] == "message" and e["data"].get("type") == kind


@pytest.fixture
def backends() -> Iterator[tuple[Backend, Backend]]:
    primary, backup = Backend("primary"), Backend("backup")
    yield primary, backup
    primary.stop()
    backup.stop()


def connections(base: str) -> dict[str, Any]:
    (conn,) = httpx.get(f"{base}/connections", timeout=5).json()["connections"]
    return dict(conn)


def until(check: Callable[[], bool], within: float = 20.0) -> None:
    deadline = time.monotonic() + within
    while not check():
        assert time.monotonic() < deadline, "still not true"
        time.sleep(0.05)


def test_the_agent_fails_over_reports_its_stats_and_shuts_down_cleanly(
    backends: tuple[Backend, Backend], tmp_path: Path
) -> None:
    primary, backup = backends
    config = tmp_path / "agent.yaml"
    config.write_text(
        (HERE / "agent.yaml")
        .read_text(encoding="utf-8")
        .replace("127.0.0.1:8765", f"127.0.0.1:{primary.port}")
        .replace("127.0.0.1:8766", f"127.0.0.1:{backup.port}"),
        encoding="utf-8",
    )
    ops_port = free_port()
    base = f"http://127.0.0.1:{ops_port}"
    agent = subprocess.Popen(
        [sys.executable, str(HERE / "agent.py"), "--config", str(config),
         "--ops", f"127.0.0.1:{ops_port}", "--heartbeat-interval", "0.2"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        hello = primary.wait(message("hello"))
        assert hello["data"]["agent"]
        beat = primary.wait(message("heartbeat"))["data"]
        assert 0 <= beat["cpu_usage"] <= 100 * 64
        assert 0 < beat["ram_usage"] <= 100
        assert beat["timestamp"] > 1_600_000_000_000

        def up() -> bool:
            try:
                return bool(connections(base)["connected"])
            except httpx.HTTPError:
                return False

        until(up)
        stats = connections(base)
        assert (stats["endpoint"], stats["reconnect_count"]) == ("#0", 0)
        assert stats["messages_sent"] >= 2

        primary.proc.kill()  # a crash: no close frame
        backup.wait(message("hello"))
        until(lambda: connections(base)["endpoint"] == "#1" and connections(base)["connected"])
        stats = connections(base)
        assert stats["reconnect_count"] == 1
        backup.wait(message("heartbeat"))
        # The connection check runs every second: degraded (200) while on the fallback.
        until(lambda: httpx.get(f"{base}/health", timeout=5).json()["status"] == "degraded")
        assert httpx.get(f"{base}/health", timeout=5).status_code == 200

        agent.send_signal(signal.SIGTERM)
        _, err = agent.communicate(timeout=30)
        assert agent.returncode == 0, err[-2000:]
        bye = backup.wait(message("disconnect"))
        assert bye["data"]["reason"] == "shutdown"
        closed = backup.wait(lambda e: e["event"] == "closed")
        assert closed["code"] == 1001
        assert "connected to fallback" in err
        assert "Traceback" not in err
    finally:
        if agent.poll() is None:
            agent.kill()
            agent.communicate(timeout=10)
