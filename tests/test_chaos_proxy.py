"""The TCP chaos proxy against real servers on loopback: a stdlib HTTP server and an echo server.

Real I/O, so real time: waits are kept to fractions of a second, and every loop is bounded.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import http.client
import http.server
import random
import socket
import sys
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager
from typing import Any, TypeVar

import pytest

from stalwart._errors import ConfigError
from stalwart.chaos._proxy import PACING_STEP, ChaosProxy, ProxyFaults, _Shaper
from threads import serving

T = TypeVar("T")
LOCAL = "127.0.0.1"


def run(main: Callable[[], Awaitable[T]]) -> T:
    async def bounded() -> T:
        return await asyncio.wait_for(main(), 15)

    return asyncio.run(bounded())


# -- servers --------------------------------------------------------------------------------


class _Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        if self.path.startswith("/blob/"):
            body = pattern(int(self.path.removeprefix("/blob/")))
        else:
            body = b"hello"
        self._answer(body)

    def do_POST(self) -> None:
        self._answer(self.rfile.read(int(self.headers["Content-Length"])))

    def _answer(self, body: bytes) -> None:
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


class _HTTPServer(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # clients reset by the proxy on purpose


def pattern(size: int) -> bytes:
    return random.Random(size).randbytes(size)


@pytest.fixture
def http_server() -> Iterator[tuple[str, int]]:
    with serving(_HTTPServer((LOCAL, 0), _Handler)) as address:
        yield address


@asynccontextmanager
async def echo_server() -> AsyncIterator[tuple[str, int]]:
    """Echoes every byte back; half-closes when the client does."""
    writers: set[asyncio.StreamWriter] = set()
    handlers: set[asyncio.Task[Any]] = set()

    async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        handlers.add(task)
        writers.add(writer)
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
            writer.write_eof()
        except OSError:
            pass
        finally:
            writer.close()
            writers.discard(writer)
            handlers.discard(task)

    server = await asyncio.start_server(echo, LOCAL, 0)
    try:
        yield server.sockets[0].getsockname()[:2]
    finally:
        server.close()
        for writer in list(writers):
            writer.transport.abort()
        if handlers:
            await asyncio.wait(list(handlers))
        await server.wait_closed()


@asynccontextmanager
async def connect(address: tuple[str, int]) -> AsyncIterator[tuple[Any, Any]]:
    reader, writer = await asyncio.open_connection(*address)
    try:
        yield reader, writer
    finally:
        writer.transport.abort()


async def round_trip(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> float:
    started = time.monotonic()
    writer.write(b"ping")
    await writer.drain()
    assert await reader.readexactly(4) == b"ping"
    return time.monotonic() - started


async def echo_all(address: tuple[str, int], payload: bytes) -> bytes:
    """Send ``payload`` while reading the echo, then half-close; returns what came back."""
    async with connect(address) as (reader, writer):

        async def send() -> None:
            for start in range(0, len(payload), 100_000):
                writer.write(payload[start : start + 100_000])
                await writer.drain()
            writer.write_eof()

        sender = asyncio.create_task(send())
        received = await reader.read(-1)
        await sender
        return bytes(received)


async def http_get(address: tuple[str, int], path: str) -> bytes:
    """The body of a GET, read to EOF over a raw connection (HTTP/1.0 closes after it)."""
    async with connect(address) as (reader, writer):
        writer.write(f"GET {path} HTTP/1.0\r\n\r\n".encode())
        await writer.drain()
        response = await reader.read(-1)
    head, _, body = response.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.0 200"), head[:100]
    return bytes(body)


def sync_request(
    address: tuple[str, int], method: str, path: str, body: bytes = b"", timeout: float = 5
) -> bytes:
    conn = http.client.HTTPConnection(*address, timeout=timeout)
    try:
        conn.request(method, path, body=body or None)
        response = conn.getresponse()
        assert response.status == 200
        return response.read()
    finally:
        conn.close()


# -- forwarding -------------------------------------------------------------------------------


def test_without_faults_a_large_echo_comes_back_intact_both_ways() -> None:
    payload = pattern(1_500_000)

    async def main() -> None:
        async with echo_server() as upstream, ChaosProxy(upstream) as proxy:
            assert await echo_all(proxy.address, payload) == payload
            stats = proxy.stats()
            assert stats.bytes_upstream == stats.bytes_downstream == len(payload)
            assert stats.total == 1

    run(main)


def test_without_faults_http_post_and_get_pass_intact(http_server: tuple[str, int]) -> None:
    payload = pattern(1_000_000)

    async def main() -> None:
        async with ChaosProxy(http_server) as proxy:
            echoed = await asyncio.to_thread(sync_request, proxy.address, "POST", "/echo", payload)
            assert echoed == payload
            got = await asyncio.to_thread(sync_request, proxy.address, "GET", "/blob/2000000")
            assert got == pattern(2_000_000)

    run(main)


def test_serves_many_connections_at_once() -> None:
    async def main() -> None:
        async with echo_server() as upstream, ChaosProxy(upstream) as proxy:
            payloads = [pattern(50_000 + i) for i in range(20)]
            echoed = await asyncio.gather(*(echo_all(proxy.address, p) for p in payloads))
            assert echoed == payloads
            assert proxy.stats().total == 20

    run(main)


def test_a_small_max_buffer_still_forwards_everything() -> None:
    payload = pattern(200_000)

    async def main() -> None:
        async with echo_server() as upstream, ChaosProxy(upstream, max_buffer=1000) as proxy:
            assert await echo_all(proxy.address, payload) == payload

    run(main)


def test_an_unreachable_upstream_closes_the_client_connection() -> None:
    with socket.create_server((LOCAL, 0)) as sock:
        dead = sock.getsockname()[:2]  # closed below: nothing listens there afterwards

    async def main() -> None:
        async with ChaosProxy(dead) as proxy, connect(proxy.address) as (reader, _):
            assert await reader.read() == b""
            assert proxy.stats().upstream_errors == 1

    run(main)


# -- faults ---------------------------------------------------------------------------------


def test_latency_adds_its_delay_to_each_direction_of_a_round_trip() -> None:
    async def main() -> None:
        async with (
            echo_server() as upstream,
            ChaosProxy(upstream) as proxy,
            connect(proxy.address) as (reader, writer),
        ):
            base = min([await round_trip(reader, writer) for _ in range(3)])
            proxy.set(latency=0.1)  # an open connection gets it too
            both = await round_trip(reader, writer)
            assert 0.2 <= both < 0.2 + base + 0.08
            proxy.set(direction="upstream")
            one = await round_trip(reader, writer)
            assert 0.1 <= one < 0.1 + base + 0.08

    run(main)


def test_latency_delays_a_large_answer_once_not_once_per_chunk(
    http_server: tuple[str, int],
) -> None:
    # Like a network link: each byte leaves `latency` after it arrived. A 4 MB answer
    # comes in dozens of reads; holding each read in turn would take dozens of latencies.
    size = 4_000_000

    async def main() -> None:
        async with ChaosProxy(http_server) as proxy:
            proxy.set(latency=0.3, direction="downstream")
            started = time.monotonic()
            assert await http_get(proxy.address, f"/blob/{size}") == pattern(size)
            took = time.monotonic() - started
            assert 0.3 <= took < 2.0, took  # per-read holds would take 16 x 0.3 s at least

    run(main)


def test_pieces_leave_their_hold_after_arriving_and_in_order() -> None:
    faults = ProxyFaults(latency=0.1, jitter=0.05)
    shaper = _Shaper(random.Random(1))
    arrived = [0.0, 0.0, 0.01, 0.5]
    dues = [shaper.due(faults, at) for at in arrived]
    previous = 0.0
    for at, due in zip(arrived, dues, strict=True):
        assert due >= at + 0.1  # the latency, counted from its arrival
        assert due <= max(at + 0.15, previous)  # plus jitter, or waiting for the one ahead
        previous = due
    assert dues == sorted(dues)  # jitter never lets a later piece overtake an earlier one


def test_arrivals_split_a_read_into_the_runs_that_came_in() -> None:
    from stalwart.chaos._proxy import _Arrivals

    arrivals = _Arrivals()
    arrivals.add(100, 1.0)
    arrivals.add(50, 2.0)
    assert arrivals.take(120, now=9.0) == [(100, 1.0), (20, 2.0)]
    assert arrivals.take(40, now=9.0) == [(30, 2.0), (10, 9.0)]  # unrecorded bytes: now
    assert arrivals.take(5, now=9.5) == [(5, 9.5)]


def test_jitter_draws_are_bounded_and_repeat_with_the_seed() -> None:
    faults = ProxyFaults(latency=0.1, jitter=0.05)
    first = [_Shaper(random.Random(3)).hold(faults) for _ in range(1)]
    a, b = _Shaper(random.Random(3)), _Shaper(random.Random(3))
    holds = [a.hold(faults) for _ in range(50)]
    assert holds == [b.hold(faults) for _ in range(50)]
    assert holds[0] == first[0]
    assert all(0.1 <= h <= 0.15 for h in holds)
    assert len(set(holds)) > 1


def test_bandwidth_pacing_core_spaces_pieces_by_size_over_rate() -> None:
    shaper = _Shaper(random.Random(0))
    faults = ProxyFaults(bandwidth=1000.0)
    assert shaper.piece(faults, 65536) == int(1000 * PACING_STEP)
    assert shaper.pace(1000.0, 10, now=5.0) == 0.0
    assert shaper.pace(1000.0, 10, now=5.0) == pytest.approx(0.01)
    assert shaper.pace(1000.0, 10, now=6.0) == 0.0  # idle time is not saved up as a burst
    assert shaper.pace(None, 10, now=6.0) == 0.0
    assert ProxyFaults(slice_size=7).shapes("upstream")
    assert not ProxyFaults(slice_size=7, direction="downstream").shapes("upstream")
    assert not ProxyFaults().shapes("upstream")


def test_blackhole_accepts_reads_and_never_answers() -> None:
    async def main() -> None:
        async with echo_server() as upstream, ChaosProxy(upstream) as proxy:
            proxy.set(blackhole=True)
            async with connect(proxy.address) as (reader, writer):
                writer.write(b"anyone there?")
                await writer.drain()
                with pytest.raises(TimeoutError):
                    await asyncio.wait_for(reader.read(1), 0.2)
            assert proxy.stats().bytes_dropped == len(b"anyone there?")
            proxy.clear()
            async with connect(proxy.address) as (reader, writer):
                assert await round_trip(reader, writer) < 1

    run(main)


def test_blackhole_makes_an_http_client_time_out(http_server: tuple[str, int]) -> None:
    async def main() -> None:
        async with ChaosProxy(http_server) as proxy:
            with proxy.fault(blackhole=True), pytest.raises(TimeoutError):
                await asyncio.to_thread(sync_request, proxy.address, "GET", "/", timeout=0.2)
            assert await http_get(proxy.address, "/hello") == b"hello"

    run(main)


def test_reset_resets_open_connections_at_once_and_new_ones_after_accept() -> None:
    async def main() -> None:
        async with echo_server() as upstream, ChaosProxy(upstream) as proxy:
            async with connect(proxy.address) as (reader, writer):
                await round_trip(reader, writer)
                proxy.set(reset=True)
                with pytest.raises(ConnectionResetError):
                    await reader.read(1)
            async with connect(proxy.address) as (reader, writer):
                with pytest.raises(ConnectionResetError):
                    await reader.read(1)
            assert proxy.stats().open == 0
            proxy.clear()
            async with connect(proxy.address) as (reader, writer):
                await round_trip(reader, writer)

    run(main)


def test_reset_gives_an_http_client_connection_reset(http_server: tuple[str, int]) -> None:
    async def main() -> None:
        async with ChaosProxy(http_server) as proxy:
            proxy.set(reset=True)
            # What http.client really raises: the RST arrives before the response, so reading
            # the status line fails with ECONNRESET (not RemoteDisconnected, its subclass
            # for a plain close, which is what a close without SO_LINGER 0 would give).
            with pytest.raises(ConnectionResetError) as caught:
                await asyncio.to_thread(sync_request, proxy.address, "GET", "/hello")
            assert caught.value.errno == errno.ECONNRESET

    run(main)


def test_refuse_refuses_connections_and_clearing_listens_again_on_the_same_port() -> None:
    async def main() -> None:
        async with echo_server() as upstream, ChaosProxy(upstream) as proxy:
            address = proxy.address
            async with connect(address) as (reader, writer):
                proxy.set(refuse=True)
                with pytest.raises(ConnectionRefusedError):
                    await asyncio.open_connection(*address)
                await round_trip(reader, writer)  # open connections carry on
                proxy.clear()
                async with connect(address) as (reader2, writer2):
                    await round_trip(reader2, writer2)
            assert proxy.address == address

    run(main)


def test_a_proxy_started_refusing_listens_once_cleared() -> None:
    async def main() -> None:
        async with echo_server() as upstream:
            proxy = ChaosProxy(upstream)
            proxy.set(refuse=True)
            async with proxy:
                with pytest.raises(ConnectionRefusedError):
                    await asyncio.open_connection(*proxy.address)
                proxy.set(refuse=False)
                async with connect(proxy.address) as (reader, writer):
                    await round_trip(reader, writer)

    run(main)


def test_bandwidth_limit_holds_within_twenty_percent(http_server: tuple[str, int]) -> None:
    size, rate = 256_000, 1_000_000

    async def main() -> None:
        async with ChaosProxy(http_server) as proxy:
            proxy.set(bandwidth=rate, direction="downstream")
            started = time.monotonic()
            body = await http_get(proxy.address, f"/blob/{size}")
            elapsed = time.monotonic() - started
            assert body == pattern(size)
            assert 0.8 * size / rate <= elapsed <= 1.2 * size / rate

    run(main)


def test_slices_deliver_data_in_small_delayed_pieces() -> None:
    payload = pattern(10_000)

    async def main() -> None:
        async with echo_server() as upstream, ChaosProxy(upstream) as proxy:
            proxy.set(slice_size=1000, slice_delay=0.01, direction="downstream")
            started = time.monotonic()
            assert await echo_all(proxy.address, payload) == payload
            assert time.monotonic() - started >= 10 * 0.01

    run(main)


def test_timeout_closes_a_connection_that_long_after_it_opened() -> None:
    async def main() -> None:
        async with echo_server() as upstream, ChaosProxy(upstream) as proxy:
            async with connect(proxy.address) as (reader, writer):
                await round_trip(reader, writer)
                started = time.monotonic()
                proxy.set(timeout=0.15)  # counted from when the connection opened
                assert await reader.read() == b""
                assert time.monotonic() - started < 0.15 + 0.1
            async with connect(proxy.address) as (reader, writer):
                started = time.monotonic()
                assert await reader.read() == b""
                assert 0.15 <= time.monotonic() - started < 0.15 + 0.1
            proxy.set(timeout=None)
            async with connect(proxy.address) as (reader, writer):
                with pytest.raises(TimeoutError):
                    await asyncio.wait_for(reader.read(), 0.25)

    run(main)


def test_slow_close_holds_back_the_close(http_server: tuple[str, int]) -> None:
    async def main() -> None:
        async with ChaosProxy(http_server) as proxy:
            proxy.set(slow_close=0.2)
            async with connect(proxy.address) as (reader, writer):
                writer.write(b"GET /hello HTTP/1.0\r\n\r\n")
                started = time.monotonic()
                response = await reader.readuntil(b"hello")
                answered = time.monotonic() - started
                assert await reader.read() == b""  # the server's close, held back
                closed = time.monotonic() - started
            assert response.startswith(b"HTTP/1.0 200")
            assert answered < 0.15
            assert closed >= 0.2

    run(main)


# -- live switching ---------------------------------------------------------------------------


def test_clearing_a_bandwidth_limit_speeds_up_a_transfer_in_flight(
    http_server: tuple[str, int],
) -> None:
    size = 300_000

    async def main() -> None:
        async with ChaosProxy(http_server) as proxy:
            proxy.set(bandwidth=30_000)  # would take 10 s
            started = time.monotonic()
            transfer = asyncio.create_task(http_get(proxy.address, f"/blob/{size}"))
            # Wait until the limited transfer is visibly under way (bounded), not a fixed time.
            for _ in range(200):
                if proxy.stats().bytes_downstream > 0:
                    break
                await asyncio.sleep(0.01)
            assert 0 < proxy.stats().bytes_downstream < size
            proxy.clear()
            assert await transfer == pattern(size)
            assert time.monotonic() - started < 5.0  # half the limited time, even under load

    run(main)


def test_latency_switched_on_mid_stream_slows_later_round_trips_only() -> None:
    async def main() -> None:
        async with (
            echo_server() as upstream,
            ChaosProxy(upstream) as proxy,
            connect(proxy.address) as (reader, writer),
        ):
            before = [await round_trip(reader, writer) for _ in range(3)]
            with proxy.fault(latency=0.05, direction="downstream") as faults:
                assert faults.latency == 0.05
                during = [await round_trip(reader, writer) for _ in range(3)]
            after = [await round_trip(reader, writer) for _ in range(3)]
            assert max(before) < 0.05 <= min(during)
            assert max(after) < 0.05
            assert proxy.faults == ProxyFaults()

    run(main)


def test_fault_block_restores_the_settings_from_before_it() -> None:
    proxy = ChaosProxy((LOCAL, 1))
    proxy.set(latency=0.5, bandwidth=10.0)
    with proxy.fault(latency=0.1, blackhole=True):
        assert proxy.faults == ProxyFaults(latency=0.1, bandwidth=10.0, blackhole=True)
    assert proxy.faults == ProxyFaults(latency=0.5, bandwidth=10.0)
    proxy.clear()
    assert proxy.faults == ProxyFaults()


def test_faults_set_from_another_thread_apply_before_set_returns() -> None:
    async def main() -> None:
        async with echo_server() as upstream, ChaosProxy(upstream) as proxy:
            await asyncio.to_thread(proxy.set, refuse=True)
            with pytest.raises(ConnectionRefusedError):
                await asyncio.open_connection(*proxy.address)
            with pytest.raises(ConfigError):
                await asyncio.to_thread(proxy.set, latency=-1)
            await asyncio.to_thread(proxy.clear)
            async with connect(proxy.address) as (reader, writer):
                await round_trip(reader, writer)

    run(main)


def test_faults_set_from_two_threads_at_once_both_apply() -> None:
    async def main() -> None:
        async with echo_server() as upstream, ChaosProxy(upstream) as proxy:

            def together() -> None:
                barrier = threading.Barrier(2)

                def slow() -> None:
                    barrier.wait()
                    proxy.set(bandwidth=1000.0)

                def late() -> None:
                    barrier.wait()
                    proxy.set(latency=0.5)

                threads = [threading.Thread(target=slow), threading.Thread(target=late)]
                for thread in threads:
                    thread.start()
                for thread in threads:
                    thread.join(5)

            previous = sys.getswitchinterval()
            sys.setswitchinterval(1e-6)
            try:
                for _ in range(30):
                    await asyncio.to_thread(together)
                    assert (proxy.faults.bandwidth, proxy.faults.latency) == (1000.0, 0.5)
                    proxy.clear()
            finally:
                sys.setswitchinterval(previous)

    run(main)


def test_a_blackhole_swallows_the_upstreams_close_until_it_is_lifted() -> None:
    async def main() -> None:
        go_away = asyncio.Event()

        async def hang_up(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await reader.read(1)  # the client's hello
            await go_away.wait()
            writer.close()

        server = await asyncio.start_server(hang_up, LOCAL, 0)
        try:
            async with (
                ChaosProxy(server.sockets[0].getsockname()[:2]) as proxy,
                connect(proxy.address) as (reader, writer),
            ):
                writer.write(b"hello")
                await writer.drain()
                for _ in range(200):  # until the hello is through (bounded)
                    if proxy.stats().bytes_upstream:
                        break
                    await asyncio.sleep(0.005)
                proxy.set(blackhole=True)
                go_away.set()
                # The upstream hangs up; through a blackhole the client must not learn it.
                with pytest.raises(TimeoutError):
                    await asyncio.wait_for(reader.read(1), 0.3)
                proxy.clear()
                assert await asyncio.wait_for(reader.read(1), 5) == b""  # now it does
        finally:
            server.close()
            await server.wait_closed()

    run(main)


def test_lifting_refuse_on_a_port_taken_meanwhile_fails_and_keeps_refusing() -> None:
    async def main() -> None:
        async with echo_server() as upstream, ChaosProxy(upstream) as proxy:
            proxy.set(refuse=True)
            squatter = socket.socket()
            try:
                squatter.bind(proxy.address)
                squatter.listen()
                with pytest.raises(OSError):
                    proxy.clear()
                assert proxy.faults.refuse  # still what the proxy does
            finally:
                squatter.close()
            proxy.clear()
            async with connect(proxy.address) as (reader, writer):
                await round_trip(reader, writer)

    run(main)


# -- several proxies, shutdown ----------------------------------------------------------------


def test_several_proxies_run_side_by_side_and_in_a_chain(http_server: tuple[str, int]) -> None:
    async def main() -> None:
        async with (
            echo_server() as upstream,
            ChaosProxy(upstream, name="echo") as slow,
            ChaosProxy(http_server, name="web") as web,
            ChaosProxy(web.address, name="front") as front,
        ):
            slow.set(latency=0.05)
            payloads = [pattern(30_000 + i) for i in range(5)]
            echoes = asyncio.gather(*(echo_all(slow.address, p) for p in payloads))
            bodies = asyncio.gather(*(http_get(front.address, f"/blob/{n}") for n in (1, 2, 3)))
            assert await echoes == payloads
            assert await bodies == [pattern(1), pattern(2), pattern(3)]
            assert {slow.address, web.address, front.address}.__len__() == 3
            assert front.stats().total == web.stats().total == 3
            assert web.faults == ProxyFaults()

    run(main)


def test_closing_drops_every_open_connection_and_leaves_no_task() -> None:
    async def main() -> None:
        async with echo_server() as upstream:
            proxy = ChaosProxy(upstream)
            await proxy.start()
            proxy.set(latency=30.0, bandwidth=10_000, timeout=30.0)
            clients = [await asyncio.open_connection(*proxy.address) for _ in range(4)]
            for _, writer in clients:
                writer.write(pattern(50_000))  # in flight, held for 30 s
            await asyncio.sleep(0.1)
            assert proxy.stats().open == 4
            started = time.monotonic()
            await proxy.aclose()
            assert time.monotonic() - started < 0.5
            assert proxy.stats().open == 0
            left = [t for t in asyncio.all_tasks() if "ChaosProxy" in repr(t.get_coro())]
            assert left == []
            for reader, writer in clients:
                await reader.read()  # EOF: the proxy is gone
                writer.transport.abort()
            with pytest.raises(ConnectionRefusedError):
                await asyncio.open_connection(*proxy.address)
            await proxy.aclose()  # twice is fine

    run(main)


# -- configuration ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("field", "faults"),
    [
        ("latency", {"latency": -1}),
        ("latency", {"latency": float("nan")}),
        ("jitter", {"jitter": "a"}),
        ("direction", {"direction": "sideways"}),
        ("blackhole", {"blackhole": 1}),
        ("reset", {"reset": "yes"}),
        ("refuse", {"refuse": None}),
        ("bandwidth", {"bandwidth": 0}),
        ("slice_size", {"slice_size": 0}),
        ("slice_size", {"slice_size": 1.5}),
        ("slice_delay", {"slice_delay": -0.1, "slice_size": 1}),
        ("slice_delay", {"slice_delay": 0.1}),
        ("timeout", {"timeout": 0}),
        ("slow_close", {"slow_close": -1}),
        ("colour", {"colour": "red"}),
    ],
)
def test_bad_faults_raise_config_error_naming_the_field(field: str, faults: dict[str, Any]) -> None:
    proxy = ChaosProxy((LOCAL, 1))
    with pytest.raises(ConfigError) as caught:
        proxy.set(**faults)
    assert caught.value.field == field
    assert proxy.faults == ProxyFaults()  # nothing half-applied


@pytest.mark.parametrize(
    ("field", "kwargs"),
    [
        ("listen", {"listen": ("0.0.0.0", 0)}),
        ("listen", {"listen": ("192.168.1.1", 0)}),
        ("listen", {"listen": ("example.com", 0)}),
        ("listen", {"listen": (LOCAL, 70000)}),
        ("listen", {"listen": "127.0.0.1:0"}),
        ("upstream", {"upstream": (LOCAL, 0)}),
        ("upstream", {"upstream": ("", 80)}),
        ("name", {"name": ""}),
        ("clock", {"clock": object()}),
        ("max_buffer", {"max_buffer": 0}),
    ],
)
def test_bad_settings_raise_config_error_naming_the_field(
    field: str, kwargs: dict[str, Any]
) -> None:
    settings: dict[str, Any] = {"upstream": (LOCAL, 1), **kwargs}
    with pytest.raises(ConfigError) as caught:
        ChaosProxy(**settings)
    assert caught.value.field == field


def test_loopback_listen_addresses_are_accepted() -> None:
    for host in ("127.0.0.1", "127.0.0.2", "::1", "localhost"):
        ChaosProxy((LOCAL, 1), listen=(host, 0))


def test_describe_lists_every_setting_and_the_live_faults() -> None:
    proxy = ChaosProxy((LOCAL, 5432), name="db")
    proxy.set(latency=0.2)
    described = proxy.describe()
    assert described["strategy"] == "chaos_proxy"
    assert described["name"] == "db"
    assert described["upstream"] == (LOCAL, 5432)
    assert described["latency"] == 0.2
    assert described["blackhole"] is False
    with pytest.raises(RuntimeError):
        _ = proxy.address


# -- found in review -------------------------------------------------------------------------


def test_closing_does_not_wait_for_a_connect_to_an_upstream_that_drops_syns() -> None:
    async def main() -> None:
        # An upstream whose accept queue is full: the kernel drops further SYNs, so a
        # connect to it hangs for minutes.
        upstream = socket.socket()
        upstream.bind((LOCAL, 0))
        upstream.listen(0)
        fillers = []
        for _ in range(3):
            filler = socket.socket()
            filler.setblocking(False)
            with contextlib.suppress(BlockingIOError):
                filler.connect(upstream.getsockname())
            fillers.append(filler)
        try:
            proxy = ChaosProxy(upstream.getsockname()[:2])
            await proxy.start()
            _, writer = await asyncio.open_connection(*proxy.address)
            for _ in range(200):  # until the proxy is connecting upstream (bounded)
                if proxy.stats().open:
                    break
                await asyncio.sleep(0.005)
            await asyncio.wait_for(proxy.aclose(), 5)  # before: ~2 min, the connect timeout
            writer.transport.abort()
        finally:
            for sock in (*fillers, upstream):
                sock.close()

    run(main)


def test_refuse_switched_on_and_off_twice_in_one_turn_listens_again() -> None:
    async def main() -> None:
        async with echo_server() as upstream, ChaosProxy(upstream) as proxy:
            for _ in range(2):
                with proxy.fault(refuse=True):
                    pass  # no await: the first re-listen is still pending
            assert not proxy.faults.refuse
            async with connect(proxy.address) as (reader, writer):
                await round_trip(reader, writer)

    run(main)
