"""Seed 001 end to end: three uvicorn processes, a real redis-server, faults from the chaos
proxy between the core service and the other two, and one service killed and restarted."""

from __future__ import annotations

import itertools
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from servers import free_port, running_redis
from stalwart.chaos import ProxyThread, ThreadedProxy
from waiting import until

pytestmark = pytest.mark.e2e

HERE = Path(__file__).parent
KEY = "core-service-key-0123456789"
WAIT = 20.0
RECOVERY = 2.0
"""The breakers' recovery_timeout in the test (the seed's is 60 s)."""


@dataclass
class System:
    core: httpx.Client
    music_proxy: ThreadedProxy
    storage_proxy: ThreadedProxy
    start_music: Callable[[], subprocess.Popen[str]]
    processes: dict[str, subprocess.Popen[str]]


def start(service: str, port: int, *args: str) -> subprocess.Popen[str]:
    process = subprocess.Popen(
        [sys.executable, str(HERE / "services.py"), service, "--port", str(port), *args],
        env={**os.environ, "MUSIC_API_KEYS": f"{KEY},other-key-0123456789abc"},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    deadline = time.monotonic() + WAIT
    while True:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code < 500:
                return process
        except httpx.TransportError:
            pass
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            out = process.communicate()[0]
            pytest.fail(f"{service} did not start:\n{out[-2000:]}")
        time.sleep(0.05)  # a condition wait: the next probe of the starting server


def stop(process: subprocess.Popen[str]) -> None:
    """SIGTERM (SIGKILL after 10 s); reads what is left of its output, closing the pipe."""
    if process.poll() is None:
        process.terminate()
    try:
        process.communicate(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.communicate(timeout=10)


@pytest.fixture(scope="module")
def system() -> Iterator[System]:
    ports = {name: free_port() for name in ("core", "music", "storage")}
    processes: dict[str, subprocess.Popen[str]] = {}
    with running_redis() as redis, ProxyThread() as chaos:
        music_proxy = chaos.add(("127.0.0.1", ports["music"]))
        storage_proxy = chaos.add(("127.0.0.1", ports["storage"]))

        def start_music() -> subprocess.Popen[str]:
            processes["music"] = start("music", ports["music"])
            return processes["music"]

        try:
            processes["storage"] = start("storage", ports["storage"], "--redis", redis.url)
            start_music()
            via = {name: f"http://{p.address[0]}:{p.address[1]}" for name, p in
                   (("music", music_proxy), ("storage", storage_proxy))}  # fmt: skip
            processes["core"] = start(
                "core", ports["core"], "--music", via["music"], "--storage", via["storage"],
                "--recovery-timeout", str(RECOVERY),
            )  # fmt: skip
            headers = {"Authorization": f"Bearer {KEY}"}
            with httpx.Client(
                base_url=f"http://127.0.0.1:{ports['core']}", headers=headers, timeout=WAIT
            ) as core:
                yield System(core, music_proxy, storage_proxy, start_music, processes)
        finally:
            for process in processes.values():
                stop(process)


_CLIENTS = itertools.count()


def client(name: str = "") -> dict[str, str]:
    """Headers of a client of its own (the core limits each to 10 requests a minute)."""
    return {"X-Client-Id": name or f"probe-{next(_CLIENTS)}"}


def timed(call: Callable[[], httpx.Response]) -> tuple[httpx.Response, float]:
    started = time.perf_counter()
    response = call()
    return response, time.perf_counter() - started


def test_search_goes_to_the_music_service_then_to_the_cache(system: System) -> None:
    system.core.headers.update(client("search"))
    first = system.core.get("/search", params={"q": "Imagine Dragons"})
    assert first.status_code == 200
    assert first.json()["source"] == "music"
    assert len(first.json()["results"]) == 5
    again = system.core.get("/search", params={"q": "imagine dragons "})
    assert again.json()["source"] == "cache"
    assert again.json()["results"] == first.json()["results"]
    track = first.json()["results"][0]["track_id"]
    download = system.core.post("/download", json={"track_id": track})
    assert download.json() == {"track_id": track, "status": "done", "file": f"{track}.mp3"}
    health = system.core.get("/health").json()
    assert health == {
        "service": "core",
        "status": "healthy",
        "checks": {"music": "healthy", "storage": "healthy"},
    }


def test_storage_blackholed_search_fails_fast_and_health_says_degraded(system: System) -> None:
    system.core.headers.update(client("storage-down"))
    system.storage_proxy.set(blackhole=True)
    try:
        waits = []
        for n in range(5):
            response, took = timed(lambda n=n: system.core.get("/search", params={"q": f"q{n}"}))
            waits.append(took)
            assert response.status_code == 200
            assert response.json()["source"] == "music"  # the cache cannot be asked
        # Each request waits at most the storage timeouts (1 s for the read, 1 s for the
        # write) until the storage breaker opens after 3 failures; then not at all.
        assert max(waits) < 2.0 + 1.0, waits
        assert waits[-1] < 0.5, waits
        health = until(
            lambda: (h := system.core.get("/health").json())["status"] == "degraded" and h,
            "/health degraded",
        )
        assert health["checks"] == {"music": "healthy", "storage": "degraded"}  # not critical
    finally:
        system.storage_proxy.set(blackhole=False)
    until(lambda: system.core.get("/health").json()["status"] == "healthy", "healthy again")
    # The storage breaker closes on the probes of searches (after its 2 s open period).
    until(
        lambda: (
            system.core.get("/search", params={"q": "probe"}, headers=client()).json()
            and system.core.get("/ops/breakers/storage").json()["state"] == "closed"
        ),
        "the storage breaker closed",
    )


def test_music_killed_the_breaker_opens_and_downloads_fail_at_once(system: System) -> None:
    system.core.headers.update(client("music-down"))
    stop(system.processes["music"])
    try:
        codes = []
        for _ in range(5):  # the 5 failures that open the breaker
            response, took = timed(lambda: system.core.post("/download", json={"track_id": "abc"}))
            codes.append(response.status_code)
            assert took < 2.0
        assert codes == [503] * 5
        refused, took = timed(lambda: system.core.post("/download", json={"track_id": "abc"}))
        assert took < 0.5, took
        assert refused.status_code == 503
        assert refused.json()["detail"] == "the music service is unavailable, try again later"
        assert int(refused.headers["retry-after"]) >= 1
        state = system.core.get("/ops/breakers/music").json()["state"]
        assert state == "open"
        # A search already answered is still answered (storage's cache) while music is down.
        cached = system.core.get("/search", params={"q": "Imagine Dragons"})
        assert cached.json()["source"] == "cache"
    finally:
        system.start_music()  # back on the same port; the core service is not restarted
    ok = until(
        lambda: (
            (r := system.core.post("/download", json={"track_id": "abc"}, headers=client()))
            and r.status_code == 200
            and r
        ),
        "a download after recovery",
    )
    assert ok.json()["status"] == "done"
    until(lambda: system.core.get("/ops/breakers/music").json()["state"] == "closed", "closed")


def test_the_11th_request_in_a_minute_gets_429(system: System) -> None:
    flood = {"X-Client-Id": "flood"}
    answers = [system.core.get("/search", params={"q": "x"}, headers=flood) for _ in range(11)]
    assert [a.status_code for a in answers] == [200] * 10 + [429]
    refused = answers[10]
    assert refused.headers["retry-after"] == "6"
    assert refused.json()["detail"].startswith("rate limit 10/minute exceeded for this client")
    other = system.core.get("/search", params={"q": "x"}, headers={"X-Client-Id": "calm"})
    assert other.status_code == 200


@pytest.mark.parametrize("authorization", [None, "Bearer not-a-key-0123456789"])
def test_a_missing_or_wrong_key_gets_401_with_a_json_body(
    system: System, authorization: str | None
) -> None:
    headers = {"Authorization": authorization} if authorization else {}
    with httpx.Client(base_url=str(system.core.base_url), headers=headers, timeout=5) as stranger:
        response = stranger.get("/search", params={"q": "x"})
        probe = stranger.get("/health")
    assert response.status_code == 401
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["status"] == 401
    assert probe.status_code == 200  # probes need no key


def test_the_cli_searches_through_the_core_service(system: System) -> None:
    done = subprocess.run(
        [sys.executable, str(HERE / "cli.py"), "--core", str(system.core.base_url), "search",
         "Imagine Dragons"],
        env={**os.environ, "MUSIC_API_KEYS": KEY}, capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[0] == "5 results from cache:"
