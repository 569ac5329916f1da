"""The ``chaos_proxy`` fixture, as a user gets it: pytest runs a user's test file (pytester)."""

from __future__ import annotations

import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from importlib.metadata import entry_points
from typing import Any

import pytest

from test_chaos_runner import echo_server

pytest_plugins = ["pytester"]

THREAD = "stalwart-chaos-pytest"


@pytest.fixture
def upstream() -> Iterator[tuple[str, int]]:
    with echo_server() as address:
        yield address


def plugin_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == THREAD]


def refused(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    except ConnectionRefusedError:
        return True
    return False


def user_file(pytester: pytest.Pytester, upstream: tuple[str, int], body: str) -> None:
    header = (
        "import asyncio, socket\n"
        "import pytest\n"
        f"UPSTREAM = ('127.0.0.1', {upstream[1]})\n"
        "PORTS = []\n"
        "def round_trip(address, timeout=2.0):\n"
        "    with socket.create_connection(address, timeout=timeout) as sock:\n"
        "        sock.sendall(b'ping')\n"
        "        return sock.recv(4)\n"
    )
    pytester.makepyfile(test_user=header + body)


def test_plugin_is_registered_as_a_pytest11_entry_point() -> None:
    (plugin,) = [e for e in entry_points(group="pytest11") if e.name == "stalwart"]
    assert plugin.value == "stalwart.pytest_plugin"


def test_chaos_proxy_fixture_proxies_and_switches_faults_in_a_sync_test(
    pytester: pytest.Pytester, upstream: tuple[str, int]
) -> None:
    user_file(
        pytester,
        upstream,
        "def test_through_the_proxy(chaos_proxy):\n"
        "    by_text = chaos_proxy(f'127.0.0.1:{UPSTREAM[1]}')\n"
        "    by_tuple = chaos_proxy(UPSTREAM, name='db')\n"
        "    assert round_trip(by_text.address) == b'ping'\n"
        "    assert round_trip(by_tuple.address) == b'ping'\n"
        "    by_tuple.set(blackhole=True)\n"
        "    with pytest.raises(TimeoutError):\n"
        "        round_trip(by_tuple.address, timeout=0.2)\n"
        "    assert round_trip(by_text.address) == b'ping'\n"
        "def test_faults_given_at_creation(chaos_proxy):\n"
        "    proxy = chaos_proxy(UPSTREAM, blackhole=True)\n"
        "    assert proxy.faults.blackhole\n"
        "    with pytest.raises(TimeoutError):\n"
        "        round_trip(proxy.address, timeout=0.2)\n",
    )
    result = pytester.runpytest("-W", "error", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=2)
    assert not plugin_threads()


def test_chaos_proxy_fixture_works_in_tests_that_call_asyncio_run(
    pytester: pytest.Pytester, upstream: tuple[str, int]
) -> None:
    user_file(
        pytester,
        upstream,
        "async def client(address):\n"
        "    reader, writer = await asyncio.open_connection(*address)\n"
        "    try:\n"
        "        writer.write(b'ping')\n"
        "        return await asyncio.wait_for(reader.readexactly(4), 0.2)\n"
        "    finally:\n"
        "        writer.transport.abort()\n"
        "def test_async_client(chaos_proxy):\n"
        "    proxy = chaos_proxy(UPSTREAM)\n"
        "    assert asyncio.run(client(proxy.address)) == b'ping'\n"
        "    with proxy.fault(blackhole=True):\n"
        "        with pytest.raises(TimeoutError):\n"
        "            asyncio.run(client(proxy.address))\n"
        "    assert asyncio.run(client(proxy.address)) == b'ping'\n",
    )
    result = pytester.runpytest("-W", "error", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)


class Recorder:
    """A plugin handing the user's test a list that outlives the run."""

    def __init__(self) -> None:
        self.items: list[Any] = []

    @pytest.fixture
    def recorder(self) -> list[Any]:
        return self.items


def test_every_proxy_is_torn_down_when_the_test_fails(
    pytester: pytest.Pytester, upstream: tuple[str, int]
) -> None:
    user_file(
        pytester,
        upstream,
        "def test_fails_midway(chaos_proxy, recorder):\n"
        "    for _ in range(3):\n"
        "        recorder.append(chaos_proxy(UPSTREAM).address[1])\n"
        "    sock = socket.create_connection(('127.0.0.1', recorder[0]), timeout=2)\n"
        "    recorder.append(sock)\n"
        "    assert round_trip(('127.0.0.1', recorder[1])) == b'ping'\n"
        "    assert False, 'the app under test broke'\n",
    )
    recorder = Recorder()
    result = pytester.runpytest("-W", "error", "-p", "no:cacheprovider", plugins=[recorder])
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*the app under test broke*"])
    *ports, sock = recorder.items
    try:
        assert sock.recv(1) == b""  # the open connection was closed by the teardown
    finally:
        sock.close()
    assert len(ports) == 3
    assert all(refused(port) for port in ports)
    assert not plugin_threads()


def test_bad_upstream_is_a_config_error_in_the_users_test(
    pytester: pytest.Pytester, upstream: tuple[str, int]
) -> None:
    user_file(
        pytester,
        upstream,
        "from stalwart import ConfigError\n"
        "def test_bad(chaos_proxy):\n"
        "    with pytest.raises(ConfigError, match='HOST:PORT'):\n"
        "        chaos_proxy('5432')\n"
        "    with pytest.raises(ConfigError) as bad:\n"
        "        chaos_proxy(UPSTREAM, latency=-1)\n"
        "    assert bad.value.field == 'latency'\n",
    )
    result = pytester.runpytest("-W", "error", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)


def test_loading_the_plugin_imports_no_chaos_machinery() -> None:
    code = (
        "import sys\n"
        "import stalwart.pytest_plugin\n"
        "print(sorted(m for m in sys.modules if m.startswith('stalwart.chaos')))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=30
    ).stdout.strip()
    assert out == "[]"
