"""The supervisor against real websockets servers on loopback (and the chaos proxy)."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from websockets.asyncio.server import ServerConnection

from stalwart import Backoff, CircuitBreaker
from stalwart.chaos import ChaosProxy
from stalwart.events import Event
from stalwart.supervisor import (
    Connected,
    ConnectFailed,
    Disconnected,
    EndpointSkipped,
    MessagesDropped,
    OutboxFull,
    PeerUnresponsive,
    ReconnectScheduled,
    Supervisor,
    SupervisorClosed,
    SupervisorClosedError,
)
from stalwart.testing import FakeClock
from supervisor.peers import Peer, echo, free_port, until

EXACT = Backoff(base_delay=1.0, multiplier=2.0, max_delay=60.0, jitter="none")
QUICK = Backoff(base_delay=0.01, max_delay=0.05, jitter="none")


def watch(sup: Supervisor) -> list[Event]:
    events: list[Event] = []
    sup.add_listener(events.append)
    return events


def test_a_refusing_primary_fails_over_to_the_fallback_without_waiting() -> None:
    async def main() -> None:
        clock = FakeClock()
        async with Peer() as backup:
            sup = Supervisor(
                [f"ws://127.0.0.1:{free_port()}/ws", backup.url],
                clock=clock,
                ping_interval=None,
                backoff=EXACT,
            )
            events = watch(sup)
            async with sup:
                assert await sup.wait_connected(10)
                stats = sup.stats()
                assert (stats.endpoint, stats.endpoint_index) == (backup.url, 1)
                assert clock.sleeps == []  # straight on to the fallback, no backoff wait
                kinds = [type(e) for e in events if isinstance(e, ConnectFailed | Connected)]
                assert kinds == [ConnectFailed, Connected]
                [connected] = [e for e in events if isinstance(e, Connected)]
                assert connected.fallback
                assert not connected.reconnect

    asyncio.run(main())


def test_a_killed_primary_gives_way_to_the_next_endpoint_and_the_stream_goes_on() -> None:
    async def stream(peer: Peer, ws: ServerConnection, message: str | bytes) -> None:
        request = json.loads(message)
        if request.get("type") == "count":
            for n in range(request["from"], request["to"]):
                await ws.send(json.dumps({"n": n, "from": peer.port}))

    async def main() -> None:
        async with Peer(stream) as primary, Peer(stream) as backup:
            sup = Supervisor(
                [primary.url, backup.url],
                hello={"type": "hello"},
                backoff=QUICK,
                ping_interval=None,
            )
            events = watch(sup)
            async with sup:
                await sup.send({"type": "count", "from": 0, "to": 5})
                got = [await sup.recv() for _ in range(5)]
                assert [m["from"] for m in got] == [primary.port] * 5
                await primary.kill()
                await until(lambda: sup.stats().endpoint == backup.url and sup.connected)
                await sup.send({"type": "count", "from": 5, "to": 10})
                async for message in sup:  # the same iterator, across the reconnect
                    got.append(message)
                    if len(got) == 10:
                        break
                assert [m["n"] for m in got] == list(range(10))
                assert [m["from"] for m in got[5:]] == [backup.port] * 5
                stats = sup.stats()
                assert stats.reconnect_count == 1
                assert stats.messages_received == 10
                assert stats.messages_sent == 4  # two hellos, two requests
            [lost] = [e for e in events if isinstance(e, Disconnected) and not e.by_us]
            assert lost.endpoint == primary.url
            assert lost.code is None  # a crash sends no close frame
            assert [m["type"] for m in backup.texts()] == ["hello", "count"]

    asyncio.run(main())


def test_when_every_endpoint_is_down_the_waits_follow_the_backoff_and_reset_later() -> None:
    async def main() -> None:
        clock = FakeClock()
        ports = [free_port(), free_port()]
        sup = Supervisor(
            [f"ws://127.0.0.1:{p}/ws" for p in ports],
            clock=clock,
            backoff=EXACT,
            ping_interval=None,
            reset_after=10.0,
        )
        events = watch(sup)
        async with sup:
            await until(lambda: len(clock.sleeps) >= 8)
            assert clock.sleeps[:8] == [1, 2, 4, 8, 16, 32, 60, 60]  # one wait per round
            failed = [e for e in events if isinstance(e, ConnectFailed)]
            assert [e.endpoint for e in failed[:4]] == [
                sup.settings.endpoints[i] for i in (0, 1) * 2
            ]
            async with Peer(port=ports[1]) as peer:
                await until(lambda: sup.connected)
                waited = len(clock.sleeps)
                clock.advance(10.0)  # it stayed up for reset_after
                await peer.kill()
                await until(lambda: len(clock.sleeps) >= waited + 3)
            assert clock.sleeps[waited : waited + 3] == [1, 2, 4]  # a fresh series
            scheduled = [e for e in events if isinstance(e, ReconnectScheduled)]
            assert scheduled[0].failures == 2

    asyncio.run(main())


def test_a_blackholed_peer_is_found_dead_by_its_missing_pong() -> None:
    async def main() -> None:
        async with Peer() as primary, Peer() as backup, ChaosProxy(primary.address) as proxy:
            host, port = proxy.address
            sup = Supervisor(
                [f"ws://{host}:{port}/ws", backup.url],
                ping_interval=0.1,
                ping_timeout=0.2,
                dead_after=60.0,
                backoff=QUICK,
            )
            events = watch(sup)
            async with sup:
                await until(lambda: sup.connected and sup.stats().ping_rtt is not None)
                proxy.set(blackhole=True)
                await until(lambda: sup.connected and sup.stats().endpoint == backup.url)
                [dead] = [e for e in events if isinstance(e, PeerUnresponsive)]
                assert dead.cause == "ping"
                assert dead.silent_for >= 0.2  # the pong timeout (dead_after is a minute)
                [lost] = [e for e in events if isinstance(e, Disconnected)]
                assert "unresponsive" in lost.reason
            proxy.clear()

    asyncio.run(main())


def test_a_silent_peer_is_found_dead_after_dead_after() -> None:
    async def main() -> None:
        async with Peer() as primary, Peer(echo) as backup, ChaosProxy(primary.address) as proxy:
            host, port = proxy.address
            sup = Supervisor(
                [f"ws://{host}:{port}/ws", backup.url],
                ping_interval=None,
                dead_after=0.3,
                backoff=QUICK,
            )
            events = watch(sup)
            async with sup:
                await until(lambda: sup.connected)
                proxy.set(blackhole=True)
                await until(lambda: sup.stats().endpoint == backup.url and sup.connected)
                [dead] = [e for e in events if isinstance(e, PeerUnresponsive)]
                assert dead.cause == "silence"
                assert dead.silent_for >= 0.3
            proxy.clear()

    asyncio.run(main())


def test_a_heartbeat_carries_its_payload_and_keeps_an_echoing_peer_alive() -> None:
    beats = 0

    def payload() -> dict[str, Any]:
        nonlocal beats
        beats += 1
        return {"type": "heartbeat", "n": beats}

    async def main() -> None:
        async with Peer(echo) as peer:
            sup = Supervisor([peer.url], heartbeat=payload, heartbeat_interval=0.05, dead_after=0.5)
            events = watch(sup)
            async with sup:
                await until(lambda: sup.stats().heartbeats_sent >= 12)  # > 0.5 s of beats
            assert not [e for e in events if isinstance(e, PeerUnresponsive)]
            assert sup.stats().reconnect_count == 0
            ns = [m["n"] for m in peer.texts()]
            assert ns == list(range(1, len(ns) + 1))

    asyncio.run(main())


def test_messages_sent_while_disconnected_go_out_in_order_once_connected() -> None:
    async def main() -> None:
        port = free_port()
        sup = Supervisor([f"ws://127.0.0.1:{port}/ws"], backoff=QUICK, ping_interval=None)
        async with sup:
            for n in range(5):
                await sup.send({"n": n})
            sup.send_nowait({"n": 5})
            assert sup.stats().buffered == 6
            async with Peer(port=port) as peer:
                await until(lambda: len(peer.received) == 6)
                assert [m["n"] for m in peer.texts()] == list(range(6))
                assert sup.stats().buffered == 0
                await sup.send({"n": 6})  # connected: straight out
                await until(lambda: len(peer.received) == 7)

    asyncio.run(main())


def test_a_full_buffer_rejects_and_loses_nothing_it_accepted() -> None:
    async def main() -> None:
        port = free_port()
        sup = Supervisor(
            [f"ws://127.0.0.1:{port}/ws"], backoff=QUICK, ping_interval=None, max_buffer=3
        )
        async with sup:
            for n in range(3):
                await sup.send(n)
            with pytest.raises(OutboxFull):
                await sup.send(3)
            with pytest.raises(OutboxFull):
                sup.send_nowait(3)
            async with Peer(port=port) as peer:
                await until(lambda: len(peer.received) == 3)
                assert peer.texts() == [0, 1, 2]

    asyncio.run(main())


def test_drop_oldest_says_what_it_dropped_and_close_says_what_was_left() -> None:
    async def main() -> None:
        sup = Supervisor(
            [f"ws://127.0.0.1:{free_port()}/ws"],
            backoff=QUICK,
            ping_interval=None,
            max_buffer=2,
            overflow="drop_oldest",
        )
        events = watch(sup)
        async with sup:
            for n in range(5):
                await sup.send(n)
        dropped = [e for e in events if isinstance(e, MessagesDropped)]
        assert [e.count for e in dropped] == [1, 1, 1, 2]  # three overflows, two unsent
        [closed] = [e for e in events if isinstance(e, SupervisorClosed)]
        assert closed.unsent == 2
        assert sup.stats().dropped == 5
        with pytest.raises(SupervisorClosedError):
            await sup.send(6)

    asyncio.run(main())


def test_leaving_the_block_says_goodbye_and_sends_a_close_frame() -> None:
    async def main() -> None:
        async with Peer() as peer:
            sup = Supervisor(
                [peer.url],
                hello={"type": "hello"},
                goodbye={"type": "disconnect"},
                heartbeat={"type": "heartbeat"},
                heartbeat_interval=0.02,
            )
            events = watch(sup)
            async with sup:
                await until(lambda: sup.stats().heartbeats_sent >= 2)
                await sup.send({"type": "data"})
            await until(lambda: len(peer.closes) == 1)
            kinds = [m["type"] for m in peer.texts()]
            assert kinds[0] == "hello"
            assert kinds[-2:] == ["data", "disconnect"]  # no heartbeat after the goodbye
            assert peer.closes == [(1000, "")]
            assert sup.closed
            [end] = [e for e in events if isinstance(e, Disconnected)]
            assert end.by_us
            assert not [e for e in events if isinstance(e, ConnectFailed)]  # no reconnect
            with pytest.raises(SupervisorClosedError):
                await sup.recv()

    asyncio.run(main())


def test_a_peer_that_closes_is_reconnected_and_its_close_code_reported() -> None:
    async def close_at_once(ws: ServerConnection) -> None:
        await ws.close(1011, "internal error")

    async def main() -> None:
        async with Peer(echo) as peer:
            peer.on_open = close_at_once
            sup = Supervisor([peer.url], backoff=QUICK, ping_interval=None)
            events = watch(sup)
            async with sup:
                await until(lambda: peer.connections >= 2)
                peer.on_open = None
                await until(lambda: peer.connections >= 3 and sup.connected)
                await sup.send("still here")
                assert await sup.recv() == "still here"
            lost = [e for e in events if isinstance(e, Disconnected) and not e.by_us]
            assert lost[0].code == 1011
            assert "1011" in lost[0].reason

    asyncio.run(main())


def test_the_callback_form_receives_every_message() -> None:
    async def main() -> None:
        got: list[Any] = []
        async with Peer(echo) as peer, Supervisor([peer.url], on_message=got.append) as sup:
            for n in range(3):
                await sup.send({"n": n})
            await until(lambda: len(got) == 3)
        assert got == [{"n": 0}, {"n": 1}, {"n": 2}]

    asyncio.run(main())


def test_a_breaker_per_endpoint_skips_one_that_keeps_failing() -> None:
    async def main() -> None:
        clock = FakeClock()
        dead = f"ws://127.0.0.1:{free_port()}/ws"
        async with Peer() as backup:
            breakers = {
                dead: CircuitBreaker("dead", failure_threshold=1, recovery_timeout=30, clock=clock),
                backup.url: CircuitBreaker("backup", clock=clock),
            }
            sup = Supervisor([dead, backup.url], breakers=breakers, clock=clock, ping_interval=None)
            events = watch(sup)
            async with sup:
                await until(lambda: sup.connected)
                await backup.kill()
                await until(lambda: any(isinstance(e, EndpointSkipped) for e in events))
            [skipped, *_] = [e for e in events if isinstance(e, EndpointSkipped)]
            assert skipped.endpoint == dead
            assert skipped.retry_in is not None
            assert skipped.retry_in > 0

    asyncio.run(main())


def test_the_health_check_reports_the_connection() -> None:
    async def main() -> None:
        port = free_port()
        async with Peer() as backup:
            sup = Supervisor([f"ws://127.0.0.1:{port}/ws", backup.url], backoff=QUICK)
            check = sup.health_check()
            with pytest.raises(ConnectionError, match="not connected"):
                await check()
            async with sup:
                await until(lambda: sup.connected)
                result = await check()
                assert result.status.value == "degraded"
                assert "fallback" in (result.error or "")
                async with Peer(port=port) as primary:
                    await backup.kill()
                    await until(lambda: sup.connected and sup.stats().endpoint == primary.url)
                    result = await check()
                    assert result.status.value == "healthy"

    asyncio.run(main())


def test_a_tight_send_loop_right_after_connecting_waits_for_the_buffer_not_overflows() -> None:
    async def main() -> None:
        async with Peer() as peer:
            sup = Supervisor([peer.url], max_buffer=10, hello={"n": -1})
            async with sup:
                assert await sup.wait_connected(10)
                for n in range(500):  # far more than max_buffer, without a pause
                    await sup.send({"n": n})
                await until(lambda: len(peer.received) == 501)
            assert [m["n"] for m in peer.texts()] == list(range(-1, 500))

    asyncio.run(main())
