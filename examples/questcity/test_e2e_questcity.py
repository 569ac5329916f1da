"""Seed 003 end to end: the app as a uvicorn process on a real PostgreSQL and moto's S3
server, each behind the chaos proxy, blackholed in turn. Every request made during a fault
is timed against the bound the app was started with."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
from local_s3 import running_s3

from servers import free_port, running_postgres
from stalwart.chaos import ProxyThread, ThreadedProxy
from waiting import until

pytestmark = pytest.mark.e2e

HERE = Path(__file__).parent
ADMIN_KEY = "questcity-admin-key-0123456789"
WAIT = 20.0
SETTINGS = {
    "db-timeout": 1.0,
    "s3-timeout": 1.0,
    "request-timeout": 2.5,
    "recovery-timeout": 5.0,
    "check-interval": 0.5,
    "check-timeout": 0.5,
}
"""The app's settings in the test: the seed's bounds scaled down (10 s calls, 30 s open)."""
BOUND = SETTINGS["request-timeout"] + 0.5
"""No request may take longer: the request deadline, plus the HTTP round trip's slack."""
PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(64))


@dataclass
class App:
    http: httpx.Client
    postgres: ThreadedProxy
    s3: ThreadedProxy
    waits: list[tuple[str, float]] = field(default_factory=list)

    def timed(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """A request, its wait recorded (and checked against the bound at once)."""
        started = time.perf_counter()
        response = self.http.request(method, path, **kwargs)
        took = time.perf_counter() - started
        self.waits.append((f"{method} {path}", took))
        assert took < BOUND, f"{method} {path} waited {took:.2f} s (bound {BOUND} s)"
        return response


@pytest.fixture(scope="module")
def app() -> Iterator[App]:
    port = free_port()
    with running_postgres() as postgres_server, running_s3() as s3_url, ProxyThread() as chaos:
        with psycopg.connect(postgres_server.dsn, autocommit=True) as conn:
            conn.execute("CREATE DATABASE questcity")
        postgres = chaos.add((postgres_server.host, postgres_server.port))
        s3 = chaos.add(("127.0.0.1", int(s3_url.rsplit(":", 1)[1])))
        database_url = (
            f"postgresql://postgres@{postgres.address[0]}:{postgres.address[1]}/questcity"
        )
        options = [item for name, value in SETTINGS.items() for item in (f"--{name}", str(value))]
        process = subprocess.Popen(
            [
                sys.executable,
                str(HERE / "questcity.py"),
                "--port",
                str(port),
                "--database-url",
                database_url,
                "--s3",
                f"http://{s3.address[0]}:{s3.address[1]}",
                *options,
            ],
            env={**os.environ, "QUESTCITY_ADMIN_KEY": ADMIN_KEY},
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        try:
            with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=WAIT) as http:

                def started() -> bool:
                    if process.poll() is not None:
                        pytest.fail(f"the app exited:\n{process.communicate()[0][-3000:]}")
                    try:
                        return http.get("/api/v1/health/ready").status_code == 200
                    except httpx.TransportError:
                        return False

                until(started, "the app ready")
                app = App(http, postgres, s3)
                yield app
                slowest = sorted(app.waits, key=lambda wait: -wait[1])[:5]
                print(f"{len(app.waits)} timed requests; slowest:",
                      ", ".join(f"{what} {took:.3f} s" for what, took in slowest))  # fmt: skip
        finally:
            process.terminate()
            try:
                output = process.communicate(timeout=10)[0]
            except subprocess.TimeoutExpired:
                process.kill()
                output = process.communicate()[0]
            print(output[-5000:])  # the app's log, shown when a test failed


def breaker(app: App, name: str) -> str:
    state: str = app.http.get(f"/api/v1/breakers/{name}").json()["state"]
    return state


def all_healthy(app: App) -> bool:
    summary = app.http.get("/api/v1/health/").json()
    return bool(summary["status"] == "healthy")


def test_the_healthy_system_serves_everything(app: App) -> None:
    made = app.http.post("/api/v1/quests", json={"title": "Old town", "city": "Tallinn"})
    assert made.status_code == 201, made.text
    quest = made.json()
    assert quest["title"] == "Old town"
    listed = app.http.get("/api/v1/quests").json()
    assert listed["source"] == "database"
    assert quest in listed["quests"]
    assert app.http.get(f"/api/v1/quests/{quest['id']}").json()["city"] == "Tallinn"
    assert app.http.get("/api/v1/quests/999999").status_code == 404
    assert app.http.post("/api/v1/quests", json={"title": ""}).status_code == 422

    uploaded = app.http.put(
        "/api/v1/users/7/avatar", content=PNG, headers={"Content-Type": "image/png"}
    )
    assert uploaded.json() == {"user_id": 7, "bytes": len(PNG), "content_type": "image/png"}
    got = app.http.get("/api/v1/users/7/avatar")
    assert got.content == PNG
    assert got.headers["content-type"] == "image/png"
    none_yet = app.http.get("/api/v1/users/8/avatar")
    assert none_yet.headers["x-avatar"] == "default"
    assert (
        app.http.put(
            "/api/v1/users/7/avatar", content=b"x", headers={"Content-Type": "text/plain"}
        ).status_code
        == 415
    )

    summary = until(
        lambda: (s := app.http.get("/api/v1/health/").json())["status"] == "healthy" and s,
        "healthy",
    )
    assert summary["services"] == {
        "total": 3, "healthy": 3, "degraded": 0, "unhealthy": 0, "unknown": 0
    }  # fmt: skip
    assert summary["message"] == "All systems operational"
    detailed = app.http.get("/api/v1/health/detailed").json()
    assert set(detailed["checks"]) == {"database", "s3", "database_pool"}
    assert detailed["checks"]["database_pool"]["details"] == {}  # redacted without the key
    admin = {"Authorization": f"Bearer {ADMIN_KEY}"}
    detailed = app.http.get("/api/v1/health/detailed", headers=admin).json()
    assert detailed["checks"]["database_pool"]["details"]["capacity"] == 50  # 20 + 30 overflow
    for probe in ("live", "ready", "services/database", "services/s3"):
        assert app.http.get(f"/api/v1/health/{probe}").status_code == 200, probe


def test_postgres_blackholed_writes_get_503_and_cached_reads_go_on(app: App) -> None:
    quest = app.http.post("/api/v1/quests", json={"title": "Harbour", "city": "Riga"}).json()
    listed = app.http.get("/api/v1/quests").json()["quests"]  # read once: now cached
    app.http.get(f"/api/v1/quests/{quest['id']}")
    app.postgres.set(blackhole=True)
    try:
        writes = [
            app.timed("POST", "/api/v1/quests", json={"title": "x", "city": "y"}) for _ in range(4)
        ]
        assert [w.status_code for w in writes] == [503] * 4
        assert writes[-1].json()["detail"] == "the database is unavailable: writes are paused"
        assert int(writes[-1].headers["retry-after"]) >= 1
        until(lambda: breaker(app, "database") == "open", "the database breaker open")
        refused = app.timed("POST", "/api/v1/quests", json={"title": "x", "city": "y"})
        assert refused.status_code == 503
        assert app.waits[-1][1] < 0.5  # the open breaker answers at once
        assert 1 <= int(refused.headers["retry-after"]) <= SETTINGS["recovery-timeout"]

        cached = app.timed("GET", "/api/v1/quests")
        assert cached.status_code == 200
        assert cached.json()["source"] == "cache"
        assert cached.json()["quests"] == listed
        assert "age" in cached.headers
        one = app.timed("GET", f"/api/v1/quests/{quest['id']}")
        assert one.json()["source"] == "cache"
        assert one.json()["title"] == "Harbour"
        never_read = app.timed("GET", "/api/v1/quests", params={"city": "Vilnius"})
        assert never_read.status_code == 503
        assert app.timed("GET", "/api/v1/users/7/avatar").content == PNG  # S3 is fine

        ready = app.timed("GET", "/api/v1/health/ready")
        assert ready.status_code == 503
        assert app.timed("GET", "/api/v1/health/live").status_code == 200
        summary = app.timed("GET", "/api/v1/health/")
        assert summary.status_code == 503
        assert summary.json()["status"] == "unhealthy"
        service = app.timed("GET", "/api/v1/health/services/database").json()
        assert service["status"] == "unhealthy"
    finally:
        app.postgres.set(blackhole=False)
    # Back without a restart: the health check probes the breaker after its 5 s open.
    until(lambda: app.http.get("/api/v1/health/ready").status_code == 200, "ready again")
    until(lambda: breaker(app, "database") == "closed", "the database breaker closed")
    again = app.timed("POST", "/api/v1/quests", json={"title": "After", "city": "Riga"})
    assert again.status_code == 201
    fresh = app.timed("GET", "/api/v1/quests").json()
    assert fresh["source"] == "database"
    assert again.json() in fresh["quests"]
    until(lambda: all_healthy(app), "everything healthy")


def test_s3_blackholed_uploads_get_503_avatars_fall_back_the_rest_goes_on(app: App) -> None:
    app.http.put("/api/v1/users/9/avatar", content=PNG, headers={"Content-Type": "image/png"})
    assert app.http.get("/api/v1/users/9/avatar").content == PNG  # read once: now cached
    app.s3.set(blackhole=True)
    try:
        upload = app.timed(
            "PUT", "/api/v1/users/9/avatar", content=PNG, headers={"Content-Type": "image/png"}
        )
        assert upload.status_code == 503
        assert upload.json()["detail"] == "file storage is unavailable: uploads are paused"
        assert int(upload.headers["retry-after"]) >= 1
        last_good = app.timed("GET", "/api/v1/users/9/avatar")
        assert last_good.status_code == 200
        assert last_good.content == PNG
        assert "age" in last_good.headers
        unknown = app.timed("GET", "/api/v1/users/10/avatar")
        assert unknown.status_code == 200
        assert unknown.headers["x-avatar"] == "default"
        assert unknown.headers["content-type"] == "image/svg+xml"

        summary = until(
            lambda: (r := app.timed("GET", "/api/v1/health/")).json()["status"] == "degraded" and r,
            "health degraded",
        )
        assert summary.status_code == 200
        assert summary.json()["services"]["unhealthy"] + summary.json()["services"]["degraded"] == 1
        assert app.timed("GET", "/api/v1/health/ready").status_code == 200
        assert app.timed("GET", "/api/v1/health/services/s3").json()["status"] != "healthy"
        made = app.timed("POST", "/api/v1/quests", json={"title": "No S3", "city": "Oslo"})
        assert made.status_code == 201
        assert app.timed("GET", "/api/v1/quests").json()["source"] == "database"
        until(lambda: breaker(app, "s3") == "open", "the s3 breaker open")
        refused = app.timed(
            "PUT", "/api/v1/users/9/avatar", content=PNG, headers={"Content-Type": "image/png"}
        )
        assert refused.status_code == 503
        assert app.waits[-1][1] < 0.5
    finally:
        app.s3.set(blackhole=False)
    new = PNG + b"v2"
    until(
        lambda: (
            app.http.put(
                "/api/v1/users/9/avatar", content=new, headers={"Content-Type": "image/png"}
            ).status_code
            == 200
        ),
        "uploads again",
    )
    assert app.timed("GET", "/api/v1/users/9/avatar").content == new
    until(lambda: all_healthy(app), "everything healthy")


def test_resetting_the_database_breaker_needs_the_admin_key(app: App) -> None:
    app.postgres.set(blackhole=True)
    try:
        until(lambda: breaker(app, "database") == "open", "the database breaker open")
    finally:
        app.postgres.set(blackhole=False)
    path = "/api/v1/health/services/database/reset"
    for headers in ({}, {"Authorization": "Bearer wrong-key-0123456789abcdef"}):
        refused = app.timed("POST", path, headers=headers)
        assert refused.status_code == 401
        assert refused.json()["status"] == 401
    assert breaker(app, "database") == "open"  # 5 s open: the reset comes well before
    done = app.timed("POST", path, headers={"Authorization": f"Bearer {ADMIN_KEY}"})
    assert done.status_code == 200, done.text
    assert done.json()["reset"] == "database"
    assert breaker(app, "database") == "closed"
    made = app.timed("POST", "/api/v1/quests", json={"title": "Reset", "city": "Turku"})
    assert made.status_code == 201
    until(lambda: all_healthy(app), "everything healthy")
