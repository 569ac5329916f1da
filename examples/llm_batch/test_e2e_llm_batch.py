"""Seed 002 end to end: the official openai client, a local chat-completions server that
rate-limits (429 + Retry-After), a SQLite journal, real processes and signals."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

pytestmark = pytest.mark.e2e
HERE = Path(__file__).parent
ITEMS = 25  # 5 products x 5 criteria


@pytest.fixture
def api(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[tuple[str, Path]]:
    """The local API in its own process; yields its base URL and its request log."""
    burst, cooldown, latency = getattr(request, "param", (12, 2.0, 0.05))
    log = tmp_path / "requests.jsonl"
    server = subprocess.Popen(
        [sys.executable, str(HERE / "local_llm.py"), "--port", "0", "--burst", str(burst),
         "--cooldown", str(cooldown), "--latency", str(latency), "--request-log", str(log)],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert server.stdout is not None
        line = server.stdout.readline()
        assert "http://127.0.0.1:" in line, line
        yield line.split()[-1], log
    finally:
        server.terminate()
        server.communicate(timeout=10)  # also closes its stdout


def pipeline(base_url: str, journal: Path, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, str(HERE / "pipeline.py"), "--base-url", base_url,
         "--journal", str(journal), "--breaker-timeout", "1", *args],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "OPENAI_API_KEY": "test"},
    )  # fmt: skip


def requests(log: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in log.read_text().splitlines()]


def max_overlap(spans: list[tuple[float, float]]) -> int:
    edges = sorted([(a, 1) for a, _ in spans] + [(b, -1) for _, b in spans])
    now = peak = 0
    for _, step in edges:
        now += step
        peak = max(peak, now)
    return peak


@pytest.mark.slow
def test_a_rate_limit_pauses_every_worker_and_no_request_reaches_the_api_meanwhile(
    api: tuple[str, Path], tmp_path: Path
) -> None:
    base_url, log = api
    run = pipeline(base_url, tmp_path / "j.db", "--session-id", "e2e", "--concurrency", "4")
    out, err = run.communicate(timeout=120)
    assert run.returncode == 0, err
    assert f"{ITEMS} done, 0 failed" in out
    assert "paused until" in err
    assert "(rate limited)" in err
    seen = requests(log)
    limited = [r for r in seen if r["status"] == 429]
    assert limited, "the server never rate-limited: nothing was tested"
    t0 = min(float(r["arrived"]) for r in limited)  # type: ignore[arg-type]
    pause = float(limited[0]["retry_after"])  # type: ignore[arg-type]
    during = [r for r in seen if t0 < float(r["arrived"]) < t0 + pause]  # type: ignore[arg-type]
    # Only requests already on their way when the 429 went out may arrive just after it
    # (a loaded 2-core CI machine may take a while to log them: 0.25 s of the 2 s pause).
    late = [r for r in during if float(r["arrived"]) > t0 + 0.25]  # type: ignore[arg-type]
    assert late == [], f"requests reached the API during the pause: {late}"
    assert len(during) <= 3
    after = [
        (float(r["arrived"]), float(r["ended"])) for r in seen if float(r["arrived"]) >= t0 + pause
    ]  # type: ignore[arg-type]
    assert max_overlap(after) == 4, "not every worker resumed after the pause"
    ok = Counter(r["prompt"] for r in seen if r["status"] == 200)
    assert len(ok) == ITEMS
    assert set(ok.values()) == {1}


@pytest.mark.slow
@pytest.mark.parametrize("api", [(0, 0.0, 0.2)], indirect=True)
def test_sigint_stops_cleanly_and_resume_session_finishes_without_asking_twice(
    api: tuple[str, Path], tmp_path: Path
) -> None:
    base_url, log = api
    journal = tmp_path / "j.db"
    first = pipeline(base_url, journal, "--session-id", "nightly", "--concurrency", "2")
    deadline = time.monotonic() + 30
    while not log.exists() or len(requests(log)) < 4:
        assert time.monotonic() < deadline
        assert first.poll() is None
        time.sleep(0.02)
    first.send_signal(signal.SIGINT)
    out, err = first.communicate(timeout=30)
    assert first.returncode == 130, err
    assert "resume with: --resume-session nightly" in out
    listing = pipeline(base_url, journal, "--list-resumable")
    listed, _ = listing.communicate(timeout=30)
    assert "nightly" in listed
    assert "--resume-session nightly" in listed
    resumed = pipeline(
        base_url, journal, "--resume-session", "nightly", "--export", str(tmp_path / "out.jsonl")
    )
    out, err = resumed.communicate(timeout=60)
    assert resumed.returncode == 0, err
    assert "skipped" in out
    asked = Counter(r["prompt"] for r in requests(log))
    assert len(asked) == ITEMS
    assert set(asked.values()) == {1}, "an item recorded before the stop was asked again"
    exported = [json.loads(line) for line in (tmp_path / "out.jsonl").read_text().splitlines()]
    assert len(exported) == ITEMS
    assert all(e["status"] == "done" and e["result"]["text"] for e in exported)


def test_an_unknown_session_to_resume_is_a_clear_error(
    api: tuple[str, Path], tmp_path: Path
) -> None:
    base_url, _ = api
    run = pipeline(base_url, tmp_path / "j.db", "--resume-session", "nope")
    _, err = run.communicate(timeout=30)
    assert run.returncode != 0
    assert "no session 'nope'" in err
