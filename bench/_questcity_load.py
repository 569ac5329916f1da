"""Seed 003's example under load: do the healthy routes keep their throughput while S3 is down?

The questcity app runs as its own uvicorn process on a private PostgreSQL cluster and moto's
S3 server, both behind the chaos proxy (as in its e2e test). In each phase, ``HEALTHY``
clients read quests (``GET /api/v1/quests/{id}``, and one in ten ``/api/v1/health/``) while
``S3_CLIENTS`` clients keep asking for avatars and uploading them, until the healthy
clients have made their requests. The phases alternate for ``ROUNDS`` rounds: the healthy
routes alone (no S3 traffic), S3 up, S3 blackholed; the medians are compared. The S3
breaker is open (warmed up) before an outage phase is timed: what is measured is the
steady state of the outage, not its first seconds. Goal (issue 14): the healthy routes
keep >= 90 % of their requests/s.
"""

from __future__ import annotations

import asyncio
import contextlib
import glob
import os
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples" / "questcity"
HEALTHY = 8
S3_CLIENTS = 4
REQUESTS = 300
"""Requests per healthy client per phase."""
S3_PACE = 0.05
"""Seconds between the starts of an S3 client's requests: the same offered load whether S3
answers in 20 ms, fails fast or hangs (a closed loop would send more the faster it fails)."""
ROUNDS = 3
GOAL = 0.90
PNG = b"\x89PNG\r\n\x1a\n" + bytes(64)


def available() -> str | None:
    """Why the load test cannot run here, or None."""
    if not (glob.glob("/usr/lib/postgresql/*/bin/initdb") or shutil.which("initdb")):
        return "PostgreSQL is not installed (scripts/check installs it)"
    for module in ("boto3", "moto", "sqlalchemy", "psycopg", "fastapi", "uvicorn", "httpx"):
        try:
            __import__(module)
        except ImportError:
            return f"{module} is not installed (pip install -e '.[bench]')"
    return None


@contextlib.contextmanager
def questcity() -> Iterator[tuple[str, Any]]:
    """The app with its dependencies; yields its URL and the S3 proxy."""
    import httpx
    import psycopg

    sys.path[:0] = [str(ROOT / "tests"), str(EXAMPLE)]
    from local_s3 import running_s3

    from servers import free_port, running_postgres
    from stalwart.chaos import ProxyThread

    port = free_port()
    with running_postgres() as pg, running_s3() as s3_url, ProxyThread() as chaos:
        with psycopg.connect(pg.dsn, autocommit=True) as conn:
            conn.execute("CREATE DATABASE questcity")
        s3 = chaos.add(("127.0.0.1", int(s3_url.rsplit(":", 1)[1])))
        process = subprocess.Popen(
            [sys.executable, str(EXAMPLE / "questcity.py"), "--port", str(port),
             "--database-url", f"postgresql://postgres@{pg.host}:{pg.port}/questcity",
             "--s3", f"http://{s3.address[0]}:{s3.address[1]}", "--s3-timeout", "1",
             "--recovery-timeout", "3", "--check-interval", "1", "--check-timeout", "1"],
            env={**os.environ, "QUESTCITY_ADMIN_KEY": "bench-admin-key-0123456789"},
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        url = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 30
            while True:
                with contextlib.suppress(httpx.TransportError):
                    if httpx.get(f"{url}/api/v1/health/ready", timeout=1).status_code == 200:
                        break
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("the questcity app did not start")
                time.sleep(0.05)  # a condition wait: the next probe of the starting app
            yield url, s3
        finally:
            process.terminate()
            process.wait(10)


async def phase(url: str, quest_ids: list[int], s3_clients: int = S3_CLIENTS) -> dict[str, float]:
    """One phase: healthy requests/s, and what the S3 clients saw meanwhile."""
    import httpx

    done = asyncio.Event()
    s3_waits: list[float] = []
    s3_codes: dict[int, int] = {}
    limits = httpx.Limits(max_connections=HEALTHY + s3_clients)
    async with httpx.AsyncClient(base_url=url, timeout=30, limits=limits) as http:

        async def healthy(n: int) -> None:
            for i in range(REQUESTS):
                path = "/api/v1/health/" if i % 10 == 9 else f"/api/v1/quests/{quest_ids[i % 20]}"
                response = await http.get(path)
                assert response.status_code == 200, (path, response.status_code)

        async def s3_user(n: int) -> None:
            loop = asyncio.get_running_loop()
            due = loop.time()
            for i in range(100_000):  # bounded; ends when the healthy clients are done
                if done.is_set():
                    return
                due += S3_PACE
                started = time.perf_counter()
                if i % 2:
                    response = await http.get(f"/api/v1/users/{n}/avatar")
                else:
                    response = await http.put(f"/api/v1/users/{n}/avatar", content=PNG,
                                              headers={"Content-Type": "image/png"})  # fmt: skip
                s3_waits.append(time.perf_counter() - started)
                s3_codes[response.status_code] = s3_codes.get(response.status_code, 0) + 1
                with contextlib.suppress(asyncio.TimeoutError):  # the pace, cut short at the end
                    await asyncio.wait_for(done.wait(), max(0.0, due - loop.time()))

        others = [asyncio.create_task(s3_user(n)) for n in range(s3_clients)]
        started = time.perf_counter()
        await asyncio.gather(*(healthy(n) for n in range(HEALTHY)))
        elapsed = time.perf_counter() - started
        done.set()
        await asyncio.gather(*others)
    return {
        "healthy_rps": HEALTHY * REQUESTS / elapsed,
        "s3_requests": len(s3_waits),
        "s3_p50_ms": statistics.median(s3_waits) * 1000 if s3_waits else 0.0,
        "s3_max_ms": max(s3_waits) * 1000 if s3_waits else 0.0,
        "s3_503": s3_codes.get(503, 0),
    }


async def wait_for(http: Any, path: str, field: str, value: str) -> None:
    for _ in range(600):  # at most 60 s
        if (await http.get(path)).json().get(field) == value:
            return
        await asyncio.sleep(0.1)  # a condition wait between probes of the running app
    raise RuntimeError(f"{path} never had {field}={value!r}: {(await http.get(path)).text}")


async def measure_async(url: str, s3: Any, log: Any) -> dict[str, Any]:
    import httpx

    async with httpx.AsyncClient(base_url=url, timeout=30) as http:
        ids = []
        for n in range(20):
            made = await http.post("/api/v1/quests", json={"title": f"q{n}", "city": "Tallinn"})
            ids.append(made.json()["id"])
    rounds: dict[str, list[dict[str, float]]] = {"alone": [], "healthy": [], "s3_down": []}
    for n in range(ROUNDS):
        log(f"questcity load, round {n + 1}/{ROUNDS}: the healthy routes alone")
        rounds["alone"].append(await phase(url, ids, s3_clients=0))
        log(f"questcity load, round {n + 1}/{ROUNDS}: S3 healthy")
        rounds["healthy"].append(await phase(url, ids))
        s3.set(blackhole=True)
        async with httpx.AsyncClient(base_url=url, timeout=30) as http:
            for user in range(S3_CLIENTS):  # warm-up: the failures that open the breaker
                await http.put(f"/api/v1/users/{user}/avatar", content=PNG,
                               headers={"Content-Type": "image/png"})  # fmt: skip
            await wait_for(http, "/api/v1/breakers/s3", "state", "open")
            log(f"questcity load, round {n + 1}/{ROUNDS}: S3 blackholed")
            rounds["s3_down"].append(await phase(url, ids))
            s3.set(blackhole=False)
            await wait_for(http, "/api/v1/health/", "status", "healthy")
    alone, healthy, down = (
        statistics.median(r["healthy_rps"] for r in rounds[key])
        for key in ("alone", "healthy", "s3_down")
    )
    return {
        "alone_rps": round(alone, 1),
        "healthy_rps": round(healthy, 1),
        "s3_down_rps": round(down, 1),
        "kept": round(down / healthy, 3),
        "kept_vs_alone": round(down / alone, 3),
        "rounds": rounds,
    }


def measure(run: Any) -> dict[str, Any] | None:
    from _harness import note
    from _harness import run as on_loop

    if (why := available()) is not None:
        note(f"questcity load skipped: {why}")
        return None
    with questcity() as (url, s3):
        figures: dict[str, Any] = on_loop(measure_async(url, s3, run.log))
    return figures


def render(figures: dict[str, Any], run: Any) -> list[str]:
    kept = figures["kept"]
    verdict = "meets" if kept >= GOAL else "MISSES"
    down = figures["rounds"]["s3_down"]
    return [
        f"questcity under load ({HEALTHY} clients x {REQUESTS} reads per phase; {S3_CLIENTS} "
        f"clients on the S3 routes meanwhile, {1 / S3_PACE:.0f} requests/s each; "
        f"median of {ROUNDS} rounds):",
        f"  healthy routes alone (no S3 traffic)   {figures['alone_rps']:>8.1f} requests/s",
        f"  healthy routes, S3 up                  {figures['healthy_rps']:>8.1f} requests/s",
        f"  healthy routes, S3 blackholed          {figures['s3_down_rps']:>8.1f} requests/s",
        f"  kept: {kept:.1%} of S3 up ({verdict} the {GOAL:.0%} goal), "
        f"{figures['kept_vs_alone']:.1%} of alone",
        f"  S3 routes while blackholed: {sum(r['s3_requests'] for r in down)} requests, "
        f"{sum(r['s3_503'] for r in down)} answered 503 (uploads), median "
        f"{statistics.median(r['s3_p50_ms'] for r in down):.1f} ms, slowest "
        f"{max(r['s3_max_ms'] for r in down):.0f} ms",
    ]
