"""The chaos proxy in front of a real redis-server, driven by redis-py's asyncio client.

The server is a private instance started once per session (``tests/servers.py``). Clients are
made with retries off, so each fault reaches the test as the client's first error. Real I/O,
so real time: each wait is a fraction of a second or the client's own socket timeout.
"""

from __future__ import annotations

import asyncio
import errno
import hashlib
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import TypeVar

import pytest
import redis.asyncio as aredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

import servers
from servers import RedisServer
from stalwart.chaos import ChaosProxy

T = TypeVar("T")


def run(main: Callable[[], Awaitable[T]], limit: float = 30) -> T:
    async def bounded() -> T:
        return await asyncio.wait_for(main(), limit)

    return asyncio.run(bounded())


def upstream(server: RedisServer) -> tuple[str, int]:
    return (server.host, server.port)


@asynccontextmanager
async def client(
    address: tuple[str, int], *, socket_timeout: float | None = 5.0
) -> AsyncIterator[aredis.Redis]:
    """One client, one connection, no retries: a fault is seen as it happens."""
    host, port = address
    conn = aredis.Redis(
        host=host,
        port=port,
        socket_timeout=socket_timeout,
        socket_connect_timeout=socket_timeout,
        retry=Retry(NoBackoff(), 0),
        single_connection_client=True,
    )
    try:
        yield conn
    finally:
        await conn.aclose()


async def round_trip(conn: aredis.Redis) -> float:
    started = time.monotonic()
    assert await conn.ping()
    return time.monotonic() - started


async def poll(condition: Callable[[], bool], limit: float = 5.0) -> None:
    """Wait until ``condition()`` holds, checking every 10 ms, for at most ``limit`` seconds."""
    deadline = time.monotonic() + limit
    while not condition():
        assert time.monotonic() < deadline, "condition not reached in time"
        await asyncio.sleep(0.01)


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_without_faults_a_large_value_round_trip_is_intact(redis_server: RedisServer) -> None:
    value = random.Random(4).randbytes(4_000_000)

    async def main() -> None:
        async with ChaosProxy(upstream(redis_server)) as proxy, client(proxy.address) as conn:
            await conn.set("blob:intact", value)
            got = await conn.get("blob:intact")
            assert got is not None
            assert sha(got) == sha(value)
            stats = proxy.stats()
            assert stats.bytes_upstream > len(value)
            assert stats.bytes_downstream > len(value)

    run(main)


def test_latency_adds_its_delay_to_a_command_round_trip(redis_server: RedisServer) -> None:
    latency = 0.05

    async def main() -> None:
        async with ChaosProxy(upstream(redis_server)) as proxy, client(proxy.address) as conn:
            base = min([await round_trip(conn) for _ in range(5)])
            proxy.set(latency=latency)  # the open connection gets it too
            slow = min([await round_trip(conn) for _ in range(3)])
            assert 2 * latency <= slow < 2 * latency + base + 0.05
            proxy.set(direction="upstream")
            one_way = await round_trip(conn)
            assert latency <= one_way < latency + base + 0.05

    run(main)


def test_blackhole_makes_a_command_hit_the_clients_socket_timeout(
    redis_server: RedisServer,
) -> None:
    timeout = 0.3

    async def main() -> None:
        async with ChaosProxy(upstream(redis_server)) as proxy:
            async with client(proxy.address, socket_timeout=timeout) as conn:
                await round_trip(conn)
                proxy.set(blackhole=True)
                started = time.monotonic()
                with pytest.raises(RedisTimeoutError):
                    await conn.get("anything")
                assert timeout <= time.monotonic() - started < timeout + 0.5
            # A new client times out too: the handshake or the first command goes unanswered.
            async with client(proxy.address, socket_timeout=timeout) as conn:
                with pytest.raises(RedisTimeoutError):
                    await conn.ping()
            assert proxy.stats().bytes_dropped > 0
            proxy.clear()
            async with client(proxy.address) as conn:
                await round_trip(conn)

    run(main)


def test_reset_gives_a_connection_error_caused_by_connection_reset(
    redis_server: RedisServer,
) -> None:
    async def main() -> None:
        async with ChaosProxy(upstream(redis_server)) as proxy:
            async with client(proxy.address) as conn:
                await round_trip(conn)
                proxy.set(reset=True)
                with pytest.raises(RedisConnectionError) as caught:
                    await conn.ping()
                assert_reset(caught.value)
            async with client(proxy.address) as conn:
                with pytest.raises(RedisConnectionError) as caught:
                    await conn.ping()
                assert_reset(caught.value)
            proxy.clear()
            async with client(proxy.address) as conn:
                await round_trip(conn)

    run(main)


def assert_reset(error: BaseException) -> None:
    """redis-py wraps the OSError; the reset is what it wraps (asyncio's 'Connection lost',
    without an errno, when the RST arrived while idle; ECONNRESET when it cut a read)."""
    cause = error.__cause__ or error.__context__
    assert isinstance(cause, ConnectionResetError), repr(error)
    assert cause.errno in (errno.ECONNRESET, None), repr(cause)


def test_refuse_gives_a_connection_error_caused_by_connection_refused(
    redis_server: RedisServer,
) -> None:
    async def main() -> None:
        async with ChaosProxy(upstream(redis_server)) as proxy:
            async with client(proxy.address) as open_conn:
                await round_trip(open_conn)
                proxy.set(refuse=True)
                async with client(proxy.address) as conn:
                    with pytest.raises(RedisConnectionError) as caught:
                        await conn.ping()
                cause = caught.value.__cause__ or caught.value.__context__
                assert isinstance(cause, ConnectionRefusedError), repr(caught.value)
                await round_trip(open_conn)  # connections already open carry on
                proxy.clear()
            async with client(proxy.address) as conn:
                await round_trip(conn)

    run(main)


def test_bandwidth_limit_holds_within_twenty_percent_on_a_large_value(
    redis_server: RedisServer,
) -> None:
    size, rate = 1_500_000, 1_000_000.0
    value = random.Random(5).randbytes(size)

    async def main() -> None:
        async with ChaosProxy(upstream(redis_server)) as proxy, client(proxy.address) as conn:
            await conn.set("blob:bandwidth", value)
            proxy.set(bandwidth=rate, direction="downstream")
            before = proxy.stats().bytes_downstream
            started = time.monotonic()
            got = await conn.get("blob:bandwidth")
            elapsed = time.monotonic() - started
            sent = proxy.stats().bytes_downstream - before
            assert got == value
            assert sent >= size
            assert 0.8 * rate <= sent / elapsed <= 1.2 * rate

    run(main)


def test_a_blackhole_switched_on_mid_transfer_stalls_the_reply_into_a_timeout(
    redis_server: RedisServer,
) -> None:
    size, rate = 2_000_000, 1_000_000.0
    value = random.Random(6).randbytes(size)

    async def main() -> None:
        async with ChaosProxy(upstream(redis_server)) as proxy:
            async with client(proxy.address, socket_timeout=0.5) as conn:
                await conn.set("blob:switch", value)
                proxy.set(bandwidth=rate, direction="downstream")
                before = proxy.stats().bytes_downstream
                reply = asyncio.create_task(conn.get("blob:switch"))
                await poll(lambda: proxy.stats().bytes_downstream - before > 200_000)
                assert not reply.done()
                proxy.set(blackhole=True)
                with pytest.raises(RedisTimeoutError):
                    await reply
                assert proxy.stats().bytes_downstream - before < size
            proxy.clear()
            async with client(proxy.address) as conn:
                assert await conn.get("blob:switch") == value

    run(main)


def test_a_reset_mid_transfer_fails_the_command_in_flight(redis_server: RedisServer) -> None:
    size, rate = 2_000_000, 1_000_000.0
    value = random.Random(7).randbytes(size)

    async def main() -> None:
        async with ChaosProxy(upstream(redis_server)) as proxy:
            async with client(proxy.address) as conn:
                await conn.set("blob:reset", value)
                proxy.set(bandwidth=rate, direction="downstream")
                before = proxy.stats().bytes_downstream
                reply = asyncio.create_task(conn.get("blob:reset"))
                await poll(lambda: proxy.stats().bytes_downstream - before > 200_000)
                proxy.set(reset=True)
                with pytest.raises(RedisConnectionError) as caught:
                    await reply
                assert_reset(caught.value)
            await poll(lambda: proxy.stats().open == 0)

    run(main)


def test_faults_switched_on_and_off_during_a_large_reply_keep_it_intact(
    redis_server: RedisServer,
) -> None:
    """Bytes alternate between the proxy's fast path and its shaping pump: order must hold."""
    value = random.Random(8).randbytes(4_000_000)

    async def main() -> None:
        async with (
            ChaosProxy(upstream(redis_server), max_buffer=16_384) as proxy,  # many small reads
            client(proxy.address) as conn,
        ):
            await conn.set("blob:toggle", value)
            for _ in range(3):
                reply = asyncio.create_task(conn.get("blob:toggle"))
                for _ in range(200):  # bounded: a few dozen switches before the reply is in
                    if reply.done():
                        break
                    proxy.set(bandwidth=40e6, direction="downstream")
                    await asyncio.sleep(0.003)
                    proxy.clear()  # the fast path takes over once the pump is idle
                    await asyncio.sleep(0.001)
                proxy.clear()
                got = await reply
                assert got is not None
                assert sha(got) == sha(value)

    run(main)


def test_a_missing_redis_server_fails_the_test_with_the_install_command(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(servers.shutil, "which", lambda name: None)
    with pytest.raises(pytest.fail.Exception, match=r"apt-get install .*redis-server"):
        servers.redis_binary()
