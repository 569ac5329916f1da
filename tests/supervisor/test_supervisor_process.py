"""Shutdown by signal, the blocking facade and the plain TCP transport, for real."""

from __future__ import annotations

import asyncio
import json
import signal
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from stalwart import Backoff, ConfigError
from stalwart.supervisor import (
    BlockingSupervisor,
    Disconnected,
    Supervisor,
    SupervisorClosedError,
    TcpTransport,
)
from supervisor.peers import Peer, free_port, sync_echo, until

CHILD = Path(__file__).with_name("signal_child.py")
QUICK = Backoff(base_delay=0.01, max_delay=0.05, jitter="none")


@pytest.mark.parametrize("mode", ["async", "blocking"])
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_closes_the_agent_gracefully_and_it_exits_0(
    mode: str, signum: signal.Signals
) -> None:
    async def main() -> None:
        async with Peer() as peer:
            child = await asyncio.create_subprocess_exec(
                sys.executable,
                str(CHILD),
                mode,
                peer.url,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
            )
            assert child.stdout is not None
            try:
                line = await asyncio.wait_for(child.stdout.readline(), 30)
                assert line == b"connected\n"
                await until(lambda: len(peer.received) >= 2)  # heartbeats flowing
                child.send_signal(signum)
                out, err = await asyncio.wait_for(child.communicate(), 30)
            finally:
                if child.returncode is None:
                    child.kill()
                    await child.wait()
            assert child.returncode == 0, err.decode()
            assert out == b"exited cleanly\n"
            await until(lambda: len(peer.closes) == 1)
            assert peer.closes == [(1001, "shutdown")]
            messages = peer.texts()
            assert messages[-1] == {"type": "disconnect", "reason": "shutdown"}
            assert {m["type"] for m in messages[:-1]} == {"heartbeat"}
            assert b"Traceback" not in err

    asyncio.run(main())


@pytest.fixture
def echo_url() -> Iterator[str]:
    with sync_echo() as url:
        yield url


def test_the_blocking_facade_sends_receives_and_closes(echo_url: str) -> None:
    dead = f"ws://127.0.0.1:{free_port()}/ws"
    with BlockingSupervisor([dead, echo_url], backoff=QUICK) as sup:
        assert sup.wait_connected(10)
        assert sup.stats().endpoint == echo_url
        sup.send({"n": 1})
        sup.send({"n": 2})
        assert sup.recv(timeout=10) == {"n": 1}
        assert next(iter(sup)) == {"n": 2}
        with pytest.raises(TimeoutError, match="nothing received"):
            sup.recv(timeout=0.05)
        sup.send({"n": 3})  # the message that arrives after the timeout is not lost
        assert sup.recv(timeout=10) == {"n": 3}
    assert sup.supervisor.closed
    assert list(sup) == []
    with pytest.raises(SupervisorClosedError):
        sup.send({"n": 4})


def test_the_blocking_facade_refuses_coroutine_callbacks() -> None:
    async def on_message(message: object) -> None:
        return None

    with pytest.raises(ConfigError, match="on_message"):
        BlockingSupervisor(["ws://127.0.0.1:1/"], on_message=on_message)


def test_a_plain_tcp_line_stream_is_supervised_the_same_way() -> None:
    async def main() -> None:
        lines: list[bytes] = []
        writers: list[asyncio.StreamWriter] = []

        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            writers.append(writer)
            while line := await reader.readline():
                lines.append(line)
                writer.write(line)
                await writer.drain()
            writer.close()

        first = await asyncio.start_server(handle, "127.0.0.1", 0)
        second = await asyncio.start_server(handle, "127.0.0.1", 0)
        ports = [s.sockets[0].getsockname()[1] for s in (first, second)]
        sup = Supervisor(
            [f"tcp://127.0.0.1:{p}" for p in ports],
            ping_interval=5.0,  # TCP has no ping: asked once, then no more
            backoff=QUICK,
            goodbye={"bye": True},
        )
        events: list[object] = []
        sup.add_listener(events.append)
        async with sup:
            await sup.send({"n": 1})
            assert await sup.recv() == {"n": 1}
            first.close()
            for writer in writers:
                writer.transport.abort()
            await until(lambda: sup.connected and sup.stats().endpoint_index == 1)
            await sup.send({"n": 2})
            assert await sup.recv() == {"n": 2}
        await until(lambda: len(lines) == 3)
        assert [json.loads(line) for line in lines] == [{"n": 1}, {"n": 2}, {"bye": True}]
        assert sum(isinstance(e, Disconnected) and not e.by_us for e in events) == 1
        second.close()
        await second.wait_closed()

    asyncio.run(main())


def test_a_tcp_frame_with_a_newline_is_refused_not_sent_broken() -> None:
    async def main() -> None:
        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await reader.read()
            writer.close()

        server = await asyncio.start_server(handle, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        async with Supervisor(
            [f"tcp://127.0.0.1:{port}"], transport=TcpTransport(), codec="raw"
        ) as sup:
            await sup.wait_connected(10)
            with pytest.raises(ValueError, match="newline"):
                await sup.send("two\nlines")
        server.close()
        await server.wait_closed()

    asyncio.run(main())


@pytest.mark.parametrize(
    ("endpoints", "field"),
    [
        (["http://h/"], "endpoints"),
        (["ws://h/", "tcp://h:1"], "endpoints"),
        (["tcp://h"], "endpoints[0]"),
        (["ws:///nohost"], "endpoints[0]"),
    ],
)
def test_bad_endpoints_name_the_field(endpoints: list[str], field: str) -> None:
    with pytest.raises(ConfigError) as caught:
        Supervisor(endpoints)
    assert caught.value.field == field
