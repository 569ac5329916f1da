"""ProxyThread: chaos proxies for synchronous code, against a real echo server on loopback.

Real I/O, so real time: waits are fractions of a second, every loop is bounded.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import socketserver
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from stalwart._errors import ConfigError
from stalwart.chaos import ProxyThread, ThreadedProxy
from stalwart.chaos._runner import parse_address
from threads import serving

LOCAL = "127.0.0.1"


class _Echo(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        with contextlib.suppress(OSError):
            while data := self.request.recv(65536):
                self.request.sendall(data)


class _EchoServer(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True
    block_on_close = False

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # clients reset by the proxy on purpose


@contextlib.contextmanager
def echo_server() -> Iterator[tuple[str, int]]:
    """A threaded TCP echo server on loopback; yields its (host, port)."""
    with serving(_EchoServer((LOCAL, 0), _Echo)) as address:
        yield address


@pytest.fixture
def echo() -> Iterator[tuple[str, int]]:
    with echo_server() as address:
        yield address


def round_trip(address: tuple[str, int], payload: bytes = b"ping", timeout: float = 2.0) -> bytes:
    """Connect, send ``payload``, read it back in full."""
    with socket.create_connection(address, timeout=timeout) as sock:
        sock.sendall(payload)
        got = b""
        while len(got) < len(payload):
            chunk = sock.recv(65536)
            if not chunk:
                break
            got += chunk
        return got


def eventually(check: Callable[[], bool], within: float = 3.0) -> bool:
    """Poll ``check`` until it holds, at most ``within`` seconds."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.01)
    return check()


def loop_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("test-chaos")]


# -- data and faults from synchronous code --------------------------------------------------


def test_threaded_proxy_forwards_data_for_sync_clients(echo: tuple[str, int]) -> None:
    with ProxyThread() as chaos:
        proxy = chaos.add(echo)
        assert round_trip(proxy.address, b"x" * 200_000) == b"x" * 200_000
        stats = proxy.stats()
        assert (stats.total, stats.bytes_upstream, stats.bytes_downstream) == (
            1,
            200_000,
            200_000,
        )


def test_blackhole_set_from_another_thread_makes_the_client_time_out(
    echo: tuple[str, int],
) -> None:
    with ProxyThread() as chaos:
        proxy = chaos.add(echo)
        proxy.set(blackhole=True)
        with pytest.raises(TimeoutError):
            round_trip(proxy.address, timeout=0.2)
        assert proxy.faults.blackhole
        proxy.clear()
        assert round_trip(proxy.address) == b"ping"


def test_reset_is_in_force_when_set_returns(echo: tuple[str, int]) -> None:
    with ProxyThread() as chaos:
        proxy = chaos.add(echo)
        with socket.create_connection(proxy.address, timeout=2) as sock:
            sock.sendall(b"a")
            assert sock.recv(1) == b"a"
            proxy.set(reset=True)
            with pytest.raises(ConnectionResetError):
                sock.recv(1)


def test_refuse_makes_connects_fail_and_clearing_it_accepts_again(echo: tuple[str, int]) -> None:
    with ProxyThread() as chaos:
        proxy = chaos.add(echo)
        proxy.set(refuse=True)
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(proxy.address, timeout=1).close()
        proxy.set(refuse=False)
        assert round_trip(proxy.address) == b"ping"


def test_fault_block_restores_the_faults_from_before_it(echo: tuple[str, int]) -> None:
    with ProxyThread() as chaos:
        proxy = chaos.add(echo)
        proxy.set(latency=0.01)
        with proxy.fault(blackhole=True) as inside:
            assert inside.blackhole
            assert inside.latency == 0.01
            with pytest.raises(TimeoutError):
                round_trip(proxy.address, timeout=0.2)
        assert not proxy.faults.blackhole
        assert proxy.faults.latency == 0.01
        assert round_trip(proxy.address) == b"ping"


def test_bad_fault_raises_config_error_in_the_calling_thread(echo: tuple[str, int]) -> None:
    with ProxyThread() as chaos:
        proxy = chaos.add(echo)
        with pytest.raises(ConfigError) as bad:
            proxy.set(latency=-1)
        assert bad.value.field == "latency"
        with pytest.raises(ConfigError) as unknown:
            proxy.set(latncy=1)
        assert unknown.value.field == "latncy"
        assert proxy.faults.latency == 0.0


def test_concurrent_sets_from_many_threads_are_all_applied(echo: tuple[str, int]) -> None:
    # Each thread sets its own field; a read-modify-write outside the loop would lose some.
    fields: list[dict[str, Any]] = [
        {"latency": 0.001},
        {"jitter": 0.001},
        {"slow_close": 0.001},
        {"timeout": 30.0},
        {"bandwidth": 1e9},
        {"slice_size": 65536},
    ]
    with ProxyThread() as chaos:
        proxy = chaos.add(echo)
        for _ in range(20):
            proxy.clear()
            barrier = threading.Barrier(len(fields))

            def setter(faults: dict[str, Any], barrier: threading.Barrier = barrier) -> None:
                barrier.wait(5)
                proxy.set(**faults)

            threads = [threading.Thread(target=setter, args=(f,)) for f in fields]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(5)
            now = proxy.faults
            assert all(getattr(now, k) == v for f in fields for k, v in f.items()), now


def test_several_proxies_share_one_thread_with_distinct_names(echo: tuple[str, int]) -> None:
    with ProxyThread(name="test-chaos-several") as chaos:
        first = chaos.add(echo)
        second = chaos.add(echo)
        named = chaos.add(echo, name="db")
        assert [first.name, second.name, named.name] == ["chaos_proxy", "chaos_proxy-2", "db"]
        assert len({first.address, second.address, named.address}) == 3
        second.set(blackhole=True)
        assert round_trip(first.address) == b"ping"
        assert round_trip(named.address) == b"ping"
        assert sorted(chaos.proxies) == ["chaos_proxy", "chaos_proxy-2", "db"]
        assert len(loop_threads()) == 1
        with pytest.raises(ConfigError) as dup:
            chaos.add(echo, name="db")
        assert dup.value.field == "name"


def test_close_drops_open_connections_and_joins_the_thread(echo: tuple[str, int]) -> None:
    chaos = ProxyThread(name="test-chaos-close").start()
    proxy = chaos.add(echo)
    sock = socket.create_connection(proxy.address, timeout=2)
    try:
        sock.sendall(b"a")
        assert sock.recv(1) == b"a"
        assert proxy.stats().open == 1
        chaos.close()
        assert not loop_threads()
        assert sock.recv(1) == b""  # closed by the proxy, not left hanging
    finally:
        sock.close()
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(proxy.address, timeout=1).close()
    with pytest.raises(RuntimeError, match="not running"):
        proxy.set(blackhole=True)
    with pytest.raises(RuntimeError, match="closed"):
        chaos.add(echo)
    chaos.close()  # twice is fine


def test_closing_one_proxy_keeps_the_others(echo: tuple[str, int]) -> None:
    with ProxyThread() as chaos:
        gone = chaos.add(echo)
        kept = chaos.add(echo)
        gone.close()
        gone.close()
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(gone.address, timeout=1).close()
        assert round_trip(kept.address) == b"ping"
        assert list(chaos.proxies) == [kept.name]


def test_proxies_work_for_code_that_runs_its_own_event_loop(echo: tuple[str, int]) -> None:
    async def client(address: tuple[str, int]) -> bytes:
        reader, writer = await asyncio.open_connection(*address)
        try:
            writer.write(b"hello")
            return await reader.readexactly(5)
        finally:
            writer.transport.abort()

    with ProxyThread() as chaos:
        proxy = chaos.add(echo)
        assert asyncio.run(client(proxy.address)) == b"hello"
        proxy.set(blackhole=True)

        async def bounded() -> bytes:
            return await asyncio.wait_for(client(proxy.address), 0.2)

        with pytest.raises(TimeoutError):
            asyncio.run(bounded())


def test_calling_the_handle_from_the_loop_thread_fails_instead_of_deadlocking(
    echo: tuple[str, int],
) -> None:
    with ProxyThread() as chaos:
        proxy = chaos.add(echo)
        assert chaos.call(lambda: proxy.faults.blackhole) is False  # direct on the loop

        def from_loop() -> None:
            proxy.close()

        with pytest.raises(RuntimeError, match="loop's own thread"):
            chaos.call(from_loop)


def test_repr_names_the_proxy_and_its_addresses(echo: tuple[str, int]) -> None:
    with ProxyThread() as chaos:
        proxy = chaos.add(echo, name="db")
        assert isinstance(proxy, ThreadedProxy)
        assert repr(proxy) == f"ThreadedProxy('db', {proxy.address} -> {echo})"
        assert proxy.describe()["name"] == "db"


# -- configuration --------------------------------------------------------------------------


def test_call_timeout_must_be_positive() -> None:
    with pytest.raises(ConfigError) as bad:
        ProxyThread(call_timeout=0)
    assert bad.value.field == "call_timeout"


def test_bad_proxy_arguments_raise_config_error_and_start_nothing(echo: tuple[str, int]) -> None:
    with ProxyThread() as chaos:
        with pytest.raises(ConfigError) as bad:
            chaos.add(echo, listen=("10.0.0.1", 0))
        assert bad.value.field == "listen"
        assert chaos.proxies == {}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("127.0.0.1:5432", ("127.0.0.1", 5432)),
        ("localhost:0", ("localhost", 0)),
        ("[::1]:8474", ("::1", 8474)),
        ("db.internal:5432", ("db.internal", 5432)),
    ],
)
def test_parse_address_reads_host_and_port(text: str, expected: tuple[str, int]) -> None:
    assert parse_address(text, field="upstream") == expected


@pytest.mark.parametrize(
    "text", ["5432", "127.0.0.1:", ":5432", "127.0.0.1:x", "h:70000", "h:\u00b2", "h:\uff15"]
)
def test_parse_address_rejects_malformed_text(text: str) -> None:
    with pytest.raises(ConfigError, match="HOST:PORT") as bad:
        parse_address(text, field="upstream")
    assert bad.value.field == "upstream"


def test_parse_address_can_require_loopback() -> None:
    assert parse_address("[::1]:1", field="listen", loopback=True) == ("::1", 1)
    with pytest.raises(ConfigError, match="loopback"):
        parse_address("0.0.0.0:1", field="listen", loopback=True)
    with pytest.raises(ConfigError, match="loopback"):
        parse_address("example.com:1", field="listen", loopback=True)


def test_first_use_from_several_threads_at_once_waits_for_the_loop(echo: tuple[str, int]) -> None:
    # The second caller of start() used to return before the loop was up, and its add()
    # failed with "not running".
    errors: list[BaseException] = []

    def add(chaos: ProxyThread) -> None:
        try:
            chaos.add(echo)
        except BaseException as exc:
            errors.append(exc)

    for _ in range(20):
        with ProxyThread() as chaos:
            threads = [threading.Thread(target=add, args=(chaos,)) for _ in range(4)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(10)
    assert errors == []
