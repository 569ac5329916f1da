"""stalwart serve: the YAML file is checked key by key, and the served app follows its checks."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import tomllib
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest
import yaml
from packaging.requirements import Requirement

from stalwart import ConfigError
from stalwart.cli._config import load, parse
from stalwart.cli._serve import _uvicorn_config

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "ops.yaml"
ENV = {
    "DATABASE_URL": "postgresql://app:s3cret@db.internal:5432/orders",
    "REDIS_URL": "redis://cache.internal:6379/0",
    "STALWART_API_KEY": "admin-key",
}


def config(**top: Any) -> dict[str, Any]:
    return {"service": "svc", **top}


def tcp(**extra: Any) -> dict[str, Any]:
    return {"type": "tcp", "host": "127.0.0.1", "port": 5432, **extra}


def http(**extra: Any) -> dict[str, Any]:
    return {"type": "http", "url": "http://127.0.0.1:9000/health", **extra}


# -- the file ------------------------------------------------------------------------


def test_the_example_config_builds_every_check_it_describes() -> None:
    served = load(EXAMPLE, ENV)
    assert served.service == "orders-api"
    assert (served.host, served.port) == ("127.0.0.1", 8080)
    assert served.api_key == "admin-key"
    assert served.registry.names() == ("database", "cache", "payments", "queue", "disk")
    database = served.registry.get("database")
    assert database.critical
    assert database.groups == frozenset({"ready", "startup"})
    assert served.registry.get("cache").critical is False
    assert served.registry.get("disk").groups == frozenset({"live"})
    breaker = served.registry.breaker("database")
    assert breaker is not None
    assert breaker.config.failure_threshold == 3
    assert served.breakers == (breaker,)


def test_secrets_never_appear_in_what_check_prints() -> None:
    served = load(EXAMPLE, ENV)
    shown = json.dumps(served.checks)
    assert "s3cret" not in shown
    assert "db.internal" not in shown
    assert "admin-key" not in shown


@pytest.mark.parametrize(
    ("data", "field", "says"),
    [
        (config(listn="127.0.0.1:1"), "listn", "allowed here: service, listen"),
        (config(checks={"db": tcp(intervall=5)}), "checks.db.intervall", "allowed here"),
        (config(checks={"db": {"type": "pg"}}), "checks.db.type", "http, tcp, postgres"),
        (config(checks={"db": tcp(timeout=-1)}), "checks.db.timeout", ""),
        (config(checks={"db": tcp(port=70000)}), "checks.db.port", "1..65535"),
        (config(checks={"db": tcp(groups=["alive"])}), "checks.db.groups", "live"),
        (
            config(checks={"db": tcp(breaker={"failure_threshold": 0})}),
            "checks.db.breaker.failure_threshold",
            "",
        ),
        (
            config(checks={"db": tcp(breaker={"threshold": 3})}),
            "checks.db.breaker.threshold",
            "failure_threshold",
        ),
        (config(checks={"db": "tcp"}), "checks.db", "mapping"),
        (config(checks=["db"]), "checks", "mapping"),
        (config(listen="localhost"), "listen", "HOST:PORT"),
        (config(listen="127.0.0.1:99999"), "listen", "HOST:PORT"),
        (config(cache_max_age=-1), "cache_max_age", ">= 0"),
        (config(api_key_env="NOT_SET_ANYWHERE"), "api_key_env", "NOT_SET_ANYWHERE"),
        (
            config(checks={"c": {"type": "redis", "url_env": "NOT_SET_ANYWHERE"}}),
            "checks.c.url_env",
            "not set",
        ),
        (
            config(checks={"c": {"type": "redis", "url": "redis://x", "url_env": "REDIS_URL"}}),
            "checks.c.url_env",
            "not both",
        ),
        ("just text", "config", "mapping"),
        (config(checks={"db": {"type": "tcp", "port": 5432}}), "checks.db.host", "required"),
        (config(checks={"db": {"type": ["tcp"]}}), "checks.db.type", "one of"),
        (config(checks={"api": http(headers=[1, 2])}), "checks.api.headers", "mapping"),
        (config(checks={"api": http(headers={"X-Retries": 3})}), "checks.api.headers", "strings"),
        (config(checks={"api": http(verify="no")}), "checks.api.verify", "true or false"),
        (config(cache_max_age=float("nan")), "cache_max_age", ""),
        (config(cache_max_age=float("inf")), "cache_max_age", ""),
        (config(checks={"db": tcp(breaker=False)}), "checks.db.breaker", "mapping"),
        (config(listen="a]:80"), "listen", "HOST:PORT"),
    ],
)
def test_a_bad_key_or_value_is_an_error_naming_it(data: Any, field: str, says: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse(data, ENV)
    assert info.value.field == field
    assert says in info.value.problem


def test_two_checks_with_one_name_cannot_happen_but_a_reused_name_in_yaml_is_caught(
    tmp_path: Path,
) -> None:
    # YAML keeps the last of two equal keys; the file itself is still read and checked.
    path = tmp_path / "ops.yaml"
    path.write_text("service: s\nchecks:\n  db: {type: tcp, host: 127.0.0.1, port: 1}\n")
    assert load(path, {}).registry.names() == ("db",)


def test_an_unreadable_or_malformed_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        load(tmp_path / "missing.yaml", {})
    bad = tmp_path / "bad.yaml"
    bad.write_text("checks: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load(bad, {})


# -- the command ----------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def run_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "stalwart.cli", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, **(env or {})},
        check=False,
    )


def get(url: str) -> tuple[int, dict[str, Any]]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def test_check_prints_the_plan_and_a_bad_file_exits_2_naming_the_key(tmp_path: Path) -> None:
    done = run_cli("serve", str(EXAMPLE), "--check", env=ENV)
    assert done.returncode == 0, done.stderr
    plan = json.loads(done.stdout)
    assert [check["name"] for check in plan["checks"]] == [
        "database",
        "cache",
        "payments",
        "queue",
        "disk",
    ]
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(config(checks={"db": tcp(intervall=5)})))
    done = run_cli("serve", str(bad))
    assert done.returncode == 2
    assert "checks.db.intervall: unknown key" in done.stderr


def test_served_health_follows_a_real_dependency_and_sigterm_stops_cleanly(
    tmp_path: Path,
) -> None:
    dependency = socket.create_server(("127.0.0.1", 0))
    dep_port = dependency.getsockname()[1]
    port = free_port()
    path = tmp_path / "ops.yaml"
    path.write_text(
        yaml.safe_dump(
            config(
                listen=f"127.0.0.1:{port}",
                checks={"dep": tcp(port=dep_port, interval=0.1, timeout=0.5)},
            )
        )
    )
    server = subprocess.Popen(
        [sys.executable, "-m", "stalwart.cli", "serve", str(path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert wait_for_status(f"http://127.0.0.1:{port}/health", "healthy") == 200
        dependency.close()  # connections are now refused
        assert wait_for_status(f"http://127.0.0.1:{port}/health", "unhealthy") == 503
        status, body = get(f"http://127.0.0.1:{port}/health/live")
        assert (status, body["status"]) == (200, "healthy")  # liveness ignores the dependency
    finally:
        server.send_signal(signal.SIGTERM)
        out, err = server.communicate(timeout=30)
    assert server.returncode == 0, err
    assert f"http://127.0.0.1:{port}/health" in out


def wait_for_status(url: str, wanted: str, limit: float = 20.0) -> int:
    deadline = time.monotonic() + limit
    seen: Any = None
    while time.monotonic() < deadline:
        try:
            status, body = get(url)
        except (OSError, ValueError) as exc:  # not listening yet
            seen = exc
        else:
            if body.get("status") == wanted:
                return status
            seen = body
        time.sleep(0.05)
    raise AssertionError(f"{url} never said {wanted!r}; last: {seen!r}")


def test_serve_runs_in_process_twice(capsys: pytest.CaptureFixture[str]) -> None:
    # Importing stalwart.cli._serve must not shadow the dispatch (a function of that name
    # on the package would be replaced by the submodule after the first run).
    from stalwart.cli import main

    for _ in range(2):
        with pytest.MonkeyPatch.context() as patch:
            for key, value in ENV.items():
                patch.setenv(key, value)
            assert main(["serve", str(EXAMPLE), "--check"]) == 0
    assert capsys.readouterr().out.count('"service": "orders-api"') == 2


def test_an_ipv6_listen_address_in_brackets_is_read() -> None:
    served = parse(config(listen="[::1]:8081"), ENV)
    assert (served.host, served.port) == ("::1", 8081)


def test_serve_gets_uvloop_and_httptools_from_the_web_extra() -> None:
    pyproject = tomllib.loads((EXAMPLE.parents[1] / "pyproject.toml").read_text())
    web = [Requirement(r) for r in pyproject["project"]["optional-dependencies"]["web"]]
    assert any(r.name == "uvicorn" and "standard" in r.extras for r in web)
    if sys.platform == "win32" or sys.implementation.name != "cpython":
        pytest.skip("uvloop is for CPython on Unix")
    served = _uvicorn_config(object(), parse(config(), ENV))
    served.load()
    assert served.http_protocol_class.__name__ == "HttpToolsProtocol"
    loop = served.get_loop_factory()()
    try:
        assert type(loop).__module__.startswith("uvloop")
    finally:
        loop.close()
