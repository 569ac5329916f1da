"""Supervised WebSocket against the bare ``websockets`` client: messages/s and failover time.

- **throughput**: ``--messages`` JSON messages sent to a local websockets server that counts
  them; the clock stops when the server has the last one. ``bare`` is
  ``websockets.asyncio.client.connect`` with ``ws.send(json.dumps(m))``; ``stalwart`` is
  ``Supervisor.send(m)`` on the same server (heartbeat and pings on, as in seed 004).
  Goal: stalwart >= 0.9 x bare.
- **failover**: the primary refuses (nothing listens on its port); the time from
  ``start()`` to connected on the fallback. Goal: <= 100 ms (no backoff wait before the
  fallback: the wait comes only after a whole round failed).

``scripts/bench supervisor`` runs it (``--quick`` for fewer messages and rounds).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import platform
import socket
import statistics
import sys
import time

import websockets
from websockets.asyncio.client import connect
from websockets.asyncio.server import ServerConnection, serve

from stalwart.supervisor import Supervisor


class Sink:
    def __init__(self) -> None:
        self.count = 0
        self.target = 0
        self.done = asyncio.Event()

    async def handler(self, ws: ServerConnection) -> None:
        async for _ in ws:
            self.count += 1
            if self.count == self.target:
                self.done.set()

    def expect(self, n: int) -> None:
        self.count = 0
        self.target = n
        self.done = asyncio.Event()


MESSAGE = {"type": "telemetry", "cpu": 12.5, "ram": 48.0, "seq": 0}


async def bare(url: str, sink: Sink, n: int) -> float:
    async with connect(url) as ws:
        sink.expect(n)
        start = time.perf_counter()
        for i in range(n):
            await ws.send(json.dumps({**MESSAGE, "seq": i}, separators=(",", ":")))
        await sink.done.wait()
        return time.perf_counter() - start


async def supervised(url: str, sink: Sink, n: int) -> float:
    async with Supervisor([url], heartbeat_interval=30.0, heartbeat={"type": "hb"}) as sup:
        await sup.wait_connected()
        sink.expect(n)
        start = time.perf_counter()
        for i in range(n):
            await sup.send({**MESSAGE, "seq": i})
        await sink.done.wait()
        return time.perf_counter() - start


def refused_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def failover(url: str) -> float:
    sup = Supervisor([f"ws://127.0.0.1:{refused_port()}/ws", url], ping_interval=None)
    start = time.perf_counter()
    await sup.start()
    await sup.wait_connected()
    elapsed = time.perf_counter() - start
    await sup.aclose()
    return elapsed


async def main(messages: int, rounds: int) -> None:
    sink = Sink()
    async with serve(sink.handler, "127.0.0.1", 0) as server:
        url = f"ws://127.0.0.1:{server.sockets[0].getsockname()[1]}/ws"
        await bare(url, sink, 1000)  # warm up both paths
        await supervised(url, sink, 1000)
        times: dict[str, list[float]] = {"bare websockets": [], "stalwart Supervisor": []}
        for _ in range(rounds):  # interleaved, so drift hits both alike
            times["bare websockets"].append(await bare(url, sink, messages))
            times["stalwart Supervisor"].append(await supervised(url, sink, messages))
        switch = [await failover(url) for _ in range(rounds * 4)]

    print(f"# supervisor: {messages} messages x {rounds} rounds, median")
    print(f"# python {platform.python_version()}, websockets {websockets.__version__}")
    rates = {name: messages / statistics.median(t) for name, t in times.items()}
    for name, rate in rates.items():
        print(f"{name:<22} {rate:>12,.0f} msg/s")
    ratio = rates["stalwart Supervisor"] / rates["bare websockets"]
    print(f"ratio supervised/bare  {ratio:>12.2f}   (goal >= 0.9)")
    print(
        f"refused primary -> fallback connected: median {statistics.median(switch) * 1000:.1f} ms,"
        f" max {max(switch) * 1000:.1f} ms over {len(switch)} runs   (goal <= 100 ms)"
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    if args.quick:
        args.messages, args.rounds = 2_000, 3
    logging.disable(logging.WARNING)  # the refused primary logs every failover
    asyncio.run(main(args.messages, args.rounds))
    sys.exit(0)
