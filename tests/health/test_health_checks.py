"""The built-in checks against real things on loopback: an HTTP server, a TCP listener, a
SQLAlchemy engine on SQLite, the local disk. Their settings are validated like any config."""

from __future__ import annotations

import asyncio
import http.server
import json
import socket
import subprocess
import sys
from collections.abc import Coroutine, Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy

from servers import free_port
from stalwart import ConfigError
from stalwart.health import (
    CheckResult,
    HealthRegistry,
    HealthStatus,
    disk_check,
    http_check,
    postgres_check,
    redis_check,
    sqlalchemy_pool_check,
    tcp_check,
)
from threads import serving

HEALTHY, DEGRADED, UNHEALTHY = HealthStatus.HEALTHY, HealthStatus.DEGRADED, HealthStatus.UNHEALTHY
LOCAL = "127.0.0.1"


def run(coro: Coroutine[Any, Any, Any]) -> Any:
    async def bounded() -> Any:
        return await asyncio.wait_for(coro, 15)

    return asyncio.run(bounded())


def outcome(check: Any, **options: Any) -> Any:
    """Run ``check`` once in a registry and return its snapshot."""
    registry = HealthRegistry("api")
    registry.add("dep", check, **options)
    run(registry.run_once())
    return registry.get("dep")


# -- HTTP ---------------------------------------------------------------------------------


class _Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        if self.path == "/health":
            self._answer(200, {"status": "pass"})
        elif self.path == "/sick":
            self._answer(200, {"status": "fail"})
        elif self.path == "/down":
            self._answer(503, {"status": "fail"})
        elif self.path == "/moved":
            self.send_response(302)
            self.send_header("Location", "/health")
            self.send_header("Content-Length", "0")
            self.end_headers()
        else:
            self._answer(404, {})

    def do_HEAD(self) -> None:
        self.send_response(204)
        self.end_headers()

    def _answer(self, code: int, body: dict[str, Any]) -> None:
        data = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture(scope="module")
def web() -> Iterator[str]:
    server = http.server.ThreadingHTTPServer((LOCAL, 0), _Handler)
    server.daemon_threads = True
    with serving(server) as (host, port):
        yield f"http://{host}:{port}"


def test_http_check_passes_on_2xx_with_the_code_in_details(web: str) -> None:
    snap = outcome(http_check(f"{web}/health"))
    assert snap.status is HEALTHY
    assert snap.details == {"status_code": 200}


def test_http_check_fails_on_a_code_outside_the_expected_set(web: str) -> None:
    snap = outcome(http_check(f"{web}/down"))
    assert snap.status is UNHEALTHY
    assert snap.error == f"HTTP 503 from GET {web}/down"


def test_http_check_counts_3xx_as_up_like_a_kubernetes_probe(web: str) -> None:
    assert outcome(http_check(f"{web}/moved")).details == {"status_code": 302}


def test_http_check_takes_an_expected_set_and_a_method(web: str) -> None:
    assert outcome(http_check(f"{web}/moved", expected_status={200})).status is UNHEALTHY
    assert outcome(http_check(f"{web}/", method="head", expected_status={204})).status is HEALTHY


def test_http_check_body_predicate_decides_on_the_response(web: str) -> None:
    def says_pass(response: Any) -> bool:
        return bool(response.json()["status"] == "pass")

    assert outcome(http_check(f"{web}/health", predicate=says_pass)).status is HEALTHY
    snap = outcome(http_check(f"{web}/sick", predicate=says_pass))
    assert snap.status is UNHEALTHY
    assert "did not satisfy the predicate" in snap.error


def test_http_check_fails_when_nothing_listens() -> None:
    snap = outcome(http_check(f"http://{LOCAL}:{free_port()}/health"))
    assert snap.status is UNHEALTHY
    assert snap.error.startswith("ConnectError")


def test_http_check_never_shows_a_password_in_the_url(web: str) -> None:
    url = web.replace("http://", "http://user:hunter2@") + "/down"
    check = http_check(url)
    snap = outcome(check)
    assert "hunter2" not in repr(check)
    assert "hunter2" not in (snap.error or "")


@pytest.mark.parametrize(
    ("args", "options", "field"),
    [
        (("ftp://x",), {}, "url"),
        (("",), {}, "url"),
        (("http://x",), {"expected_status": ()}, "expected_status"),
        (("http://x",), {"expected_status": "200"}, "expected_status"),
        (("http://x",), {"expected_status": {99}}, "expected_status"),
        (("http://x",), {"expected_status": {True}}, "expected_status"),
        (("http://x",), {"predicate": "json"}, "predicate"),
        (("http://x",), {"method": ""}, "method"),
    ],
)
def test_http_check_settings_are_validated(
    args: tuple[Any, ...], options: dict[str, Any], field: str
) -> None:
    with pytest.raises(ConfigError) as info:
        http_check(*args, **options)
    assert info.value.field == field


# -- TCP ----------------------------------------------------------------------------------


def test_tcp_check_passes_when_a_connection_opens_and_fails_when_refused() -> None:
    with socket.socket() as listener:
        listener.bind((LOCAL, 0))
        listener.listen()
        port = listener.getsockname()[1]
        assert outcome(tcp_check(LOCAL, port)).status is HEALTHY
    snap = outcome(tcp_check(LOCAL, port))
    assert snap.status is UNHEALTHY
    assert snap.error.startswith("ConnectionRefusedError")


@pytest.mark.parametrize(
    ("host", "port", "field"),
    [("", 80, "host"), (LOCAL, 0, "port"), (LOCAL, 70000, "port"), (LOCAL, True, "port")],
)
def test_tcp_check_settings_are_validated(host: Any, port: Any, field: str) -> None:
    with pytest.raises(ConfigError) as info:
        tcp_check(host, port)
    assert info.value.field == field


# -- SQLAlchemy pools ----------------------------------------------------------------------


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[sqlalchemy.Engine]:
    engine = sqlalchemy.create_engine(
        f"sqlite:///{tmp_path / 'app.db'}",
        poolclass=sqlalchemy.QueuePool,
        pool_size=2,
        max_overflow=2,
        pool_timeout=0.1,
    )
    try:
        yield engine
    finally:
        engine.dispose()


def test_pool_check_reports_size_checked_out_and_overflow(engine: sqlalchemy.Engine) -> None:
    with engine.connect(), engine.connect():
        snap = outcome(sqlalchemy_pool_check(engine))
    assert snap.status is HEALTHY
    assert snap.details == {
        "pool": "QueuePool",
        "size": 2,
        "checked_out": 2,
        "overflow": 0,
        "max_overflow": 2,
        "capacity": 4,
        "utilization": 0.5,
    }
    assert snap.component_type == "datastore"


def test_pool_check_warns_when_nearly_exhausted_and_fails_when_exhausted(
    engine: sqlalchemy.Engine,
) -> None:
    check = sqlalchemy_pool_check(engine, warn_at=0.75)
    with engine.connect(), engine.connect(), engine.connect():
        snap = outcome(check)
        assert snap.status is DEGRADED
        assert snap.error == "pool nearly exhausted: 3 of 4 connections checked out"
        with engine.connect():
            snap = outcome(check)
            assert snap.status is UNHEALTHY
            assert snap.error == "pool exhausted: 4 of 4 connections checked out"
            assert snap.details["overflow"] == 2
            with pytest.raises(sqlalchemy.exc.TimeoutError):
                engine.connect()  # what the check warned about
    assert outcome(check).status is HEALTHY


def test_pool_check_passes_pools_without_a_size(tmp_path: Path) -> None:
    engine = sqlalchemy.create_engine(
        f"sqlite:///{tmp_path / 'x.db'}", poolclass=sqlalchemy.NullPool
    )
    snap = outcome(sqlalchemy_pool_check(engine))
    assert snap.status is HEALTHY
    assert snap.details == {"pool": "NullPool", "status": "NullPool"}


@pytest.mark.parametrize(
    ("engine", "options", "field"),
    [
        ("sqlite://", {}, "engine"),
        (None, {"warn_at": 0}, "warn_at"),
        (None, {"warn_at": 1.5}, "warn_at"),
    ],
)
def test_pool_check_settings_are_validated(
    engine: Any, options: dict[str, Any], field: str, tmp_path: Path
) -> None:
    real = sqlalchemy.create_engine(f"sqlite:///{tmp_path / 'y.db'}")
    with pytest.raises(ConfigError) as info:
        sqlalchemy_pool_check(engine if engine is not None else real, **options)
    assert info.value.field == field


# -- disk ---------------------------------------------------------------------------------


def test_disk_check_reports_free_space_and_fails_below_the_limits(tmp_path: Path) -> None:
    snap = outcome(disk_check(str(tmp_path), min_free_ratio=0.0))
    assert snap.status is HEALTHY
    assert snap.details["path"] == str(tmp_path)
    assert snap.details["free_bytes"] > 0
    assert 0.0 < snap.details["free_ratio"] <= 1.0
    assert snap.component_type == "system"
    too_much = outcome(disk_check(str(tmp_path), min_free_bytes=2**62, min_free_ratio=None))
    assert too_much.status is UNHEALTHY
    assert "bytes free, below" in too_much.error
    all_of_it = outcome(disk_check(str(tmp_path), min_free_ratio=1.0))
    assert all_of_it.status is UNHEALTHY
    assert "free, below 100.0%" in all_of_it.error


def test_disk_check_fails_on_a_missing_path(tmp_path: Path) -> None:
    snap = outcome(disk_check(str(tmp_path / "nope")))
    assert snap.error.startswith("FileNotFoundError")


@pytest.mark.parametrize(
    ("options", "field"),
    [
        ({"path": ""}, "path"),
        ({"min_free_bytes": -1}, "min_free_bytes"),
        ({"min_free_bytes": 1.5}, "min_free_bytes"),
        ({"min_free_ratio": 2.0}, "min_free_ratio"),
    ],
)
def test_disk_check_settings_are_validated(options: dict[str, Any], field: str) -> None:
    with pytest.raises(ConfigError) as info:
        disk_check(**options)
    assert info.value.field == field


# -- PostgreSQL and Redis settings (the real servers are in test_health_servers.py) ---------


@pytest.mark.parametrize(
    ("call", "field"),
    [
        (lambda: postgres_check(), "dsn"),
        (lambda: postgres_check("postgresql://x", connect=lambda: None), "dsn"),
        (lambda: postgres_check(""), "dsn"),
        (lambda: postgres_check("postgresql://x", query=""), "query"),
        (lambda: postgres_check(connect="dsn"), "connect"),
        (lambda: redis_check(), "url"),
        (lambda: redis_check("redis://x", client=object()), "url"),
        (lambda: redis_check("http://x"), "url"),
        (lambda: redis_check(client=object()), "client"),
    ],
)
def test_datastore_check_settings_are_validated(call: Any, field: str) -> None:
    with pytest.raises(ConfigError) as info:
        call()
    assert info.value.field == field


def test_importing_stalwart_health_imports_nothing_outside_the_standard_library() -> None:
    code = (
        "import sys, stalwart.health\n"
        "extra = {m.split('.')[0] for m in sys.modules} - set(sys.stdlib_module_names)\n"
        "extra -= {'stalwart', '__main__', '_distutils_hack', 'sitecustomize', 'usercustomize'}\n"
        "assert not extra, sorted(extra)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr


def test_a_built_in_check_can_be_called_directly() -> None:
    with socket.socket() as listener:
        listener.bind((LOCAL, 0))
        listener.listen()
        assert run(tcp_check(LOCAL, listener.getsockname()[1])()) is None
    assert isinstance(disk_check("/", min_free_ratio=0.0)(), CheckResult)


def test_http_check_loads_no_certificates_for_plain_http_and_once_for_https(
    web: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Loading the CA bundle costs ~20 ms of CPU on the event loop: never per run.
    import ssl

    made: list[object] = []
    real = ssl.create_default_context

    def counting(*args: object, **kwargs: object) -> ssl.SSLContext:
        made.append(args)
        return real(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(ssl, "create_default_context", counting)
    check = http_check(f"{web}/health")
    for _ in range(2):
        assert run(check()).ok
    assert made == []
    http_check("https://127.0.0.1:1/health")
    assert len(made) == 1  # made when the check is built, then reused by every run
