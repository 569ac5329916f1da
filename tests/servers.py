"""Real PostgreSQL and redis servers for the end-to-end tests, one private instance per session.

Loaded as a pytest plugin from ``conftest.py``. Each server gets a temporary directory and a
free loopback port, so it never touches an instance the system runs on 5432 or 6379. A missing
binary fails the test with the command that installs it (``scripts/check`` installs both):
the end-to-end tests are not optional.

PostgreSQL refuses to run as root; as root, the cluster runs as the ``postgres`` system user.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

LOCAL = "127.0.0.1"
INSTALL = "scripts/check installs it, or: apt-get install -y --no-install-recommends {package}"
START_TIMEOUT = 30.0
STOP_TIMEOUT = 10.0
INITDB = ("--locale=C", "--no-sync", "--no-instructions")
POSTGRES = (
    *("-c", f"listen_addresses={LOCAL}", "-c", "fsync=off", "-c", "synchronous_commit=off"),
    *("-c", "full_page_writes=off", "-c", "max_connections=50", "-c", "shared_buffers=32MB"),
)
"""A throwaway cluster: durability off, small memory."""
REDIS = ("--bind", LOCAL, "--save", "", "--appendonly", "no", "--daemonize", "no")


@dataclass(frozen=True, slots=True)
class PostgresServer:
    host: str
    port: int
    dsn: str
    """``postgresql://postgres@127.0.0.1:PORT/postgres``: trust authentication on loopback."""


@dataclass(frozen=True, slots=True)
class RedisServer:
    host: str
    port: int
    url: str
    """``redis://127.0.0.1:PORT/0``."""


def free_port() -> int:
    """A port nothing listens on now (the kernel's pick for 127.0.0.1:0)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOCAL, 0))
        port: int = sock.getsockname()[1]
        return port


def postgres_bin(name: str) -> str:
    found = sorted(
        glob.glob(f"/usr/lib/postgresql/*/bin/{name}"),
        key=lambda path: int(Path(path).parts[-3]) if Path(path).parts[-3].isdigit() else 0,
    )
    path = found[-1] if found else shutil.which(name)
    if path is None:
        pytest.fail(f"PostgreSQL's {name} not found; {INSTALL.format(package='postgresql')}")
    return path


def redis_binary() -> str:
    path = shutil.which("redis-server")
    if path is None:
        pytest.fail(f"redis-server not found; {INSTALL.format(package='redis-server')}")
    return path


def _tail(path: Path, lines: int = 20) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def _wait_ready(
    process: subprocess.Popen[bytes], ready: Callable[[], bool], what: str, log: Path
) -> None:
    """Poll ``ready`` until it is true; fail if the process exits or START_TIMEOUT passes."""
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"{what} exited with {process.returncode}:\n{_tail(log)}")
        if ready():
            return
        time.sleep(0.05)
    pytest.fail(f"{what} not ready after {START_TIMEOUT} s:\n{_tail(log)}")


def _stop(process: subprocess.Popen[bytes], sig: signal.Signals) -> None:
    if process.poll() is None:
        process.send_signal(sig)
        try:
            process.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(STOP_TIMEOUT)


@contextmanager
def _scratch(prefix: str, owner: str | None) -> Iterator[Path]:
    root = Path(tempfile.mkdtemp(prefix=prefix))
    try:
        if owner is not None:
            user = pwd.getpwnam(owner)
            os.chown(root, user.pw_uid, user.pw_gid)
        yield root
    finally:
        shutil.rmtree(root, ignore_errors=True)


def _postgres_user() -> str | None:
    """The user to run PostgreSQL as: ``postgres`` when we are root, else ourselves."""
    if os.geteuid() != 0:
        return None
    try:
        pwd.getpwnam("postgres")
    except KeyError:
        pytest.fail("running as root and there is no 'postgres' user to run PostgreSQL as")
    return "postgres"


def _pg_ready(dsn: str) -> Callable[[], bool]:
    import psycopg

    def ready() -> bool:
        try:
            with psycopg.connect(dsn, connect_timeout=1) as conn:
                conn.execute("SELECT 1")
        except psycopg.OperationalError:
            return False
        return True

    return ready


@contextmanager
def running_postgres() -> Iterator[PostgresServer]:
    """A private PostgreSQL cluster on a free loopback port, trust auth, fsync off."""
    initdb, postgres = postgres_bin("initdb"), postgres_bin("postgres")
    user = _postgres_user()
    with _scratch("stalwart-pg-", user) as root:
        data, sockets, log = root / "data", root / "sockets", root / "postgres.log"
        groups: list[str] | None = [] if user else None  # drop root's extra groups too
        env = {**os.environ, "LC_ALL": "C", "LANG": "C"}
        init = subprocess.run(
            [initdb, "-D", str(data), "-U", "postgres", "--auth=trust", "-E", "UTF8", *INITDB],
            capture_output=True,
            env=env,
            cwd=root,
            timeout=120,
            check=False,
            user=user,
            group=user,
            extra_groups=groups,
        )
        if init.returncode != 0:
            pytest.fail(f"initdb failed:\n{init.stdout.decode()}\n{init.stderr.decode()}")
        sockets.mkdir()
        if user:
            shutil.chown(sockets, user, user)
        port = free_port()
        dsn = f"postgresql://postgres@{LOCAL}:{port}/postgres"
        with open(log, "wb") as out:
            process = subprocess.Popen(
                [postgres, "-D", str(data), "-p", str(port), "-k", str(sockets), *POSTGRES],
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=env,
                cwd=root,
                user=user,
                group=user,
                extra_groups=groups,
            )
        try:
            _wait_ready(process, _pg_ready(dsn), f"postgres on port {port}", log)
            yield PostgresServer(LOCAL, port, dsn)
        finally:
            _stop(process, signal.SIGINT)  # fast shutdown: disconnects clients, then exits


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """One cluster for the session's tests (see :func:`running_postgres`)."""
    with running_postgres() as server:
        yield server


def _redis_ready(port: int, *, password: bool = False) -> Callable[[], bool]:
    import redis

    def ready() -> bool:
        client = redis.Redis(host=LOCAL, port=port, socket_timeout=1, socket_connect_timeout=1)
        try:
            return bool(client.ping())
        except redis.AuthenticationError:
            return password  # it answers: it wants a password
        except redis.ConnectionError:
            return False
        finally:
            client.close()

    return ready


@contextmanager
def running_redis(*options: str, port: int | None = None) -> Iterator[RedisServer]:
    """A private redis-server on a free (or the given) loopback port, no persistence,
    stopped on exit: for tests that kill and restart one, or need ``--requirepass``."""
    binary = redis_binary()
    with _scratch("stalwart-redis-", None) as root:
        port, log = port or free_port(), root / "redis.log"
        with open(log, "wb") as out:
            process = subprocess.Popen(
                [binary, "--port", str(port), "--dir", str(root), *REDIS, *options],
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                cwd=root,
            )
        try:
            ready = _redis_ready(port, password="--requirepass" in options)
            _wait_ready(process, ready, f"redis-server on port {port}", log)
            yield RedisServer(LOCAL, port, f"redis://{LOCAL}:{port}/0")
        finally:
            _stop(process, signal.SIGTERM)


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    """A private redis-server on a free loopback port, no persistence."""
    with running_redis() as server:
        yield server
