"""Real websockets servers on loopback for the supervisor's tests: they record what they
receive and how each connection ended, and can be killed like a crashed process."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from typing import Any

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed
from websockets.sync.server import ServerConnection as SyncConnection
from websockets.sync.server import serve as sync_serve

Handler = Callable[["Peer", ServerConnection, str | bytes], Awaitable[None]]


async def record_only(peer: Peer, ws: ServerConnection, message: str | bytes) -> None:
    return None


async def echo(peer: Peer, ws: ServerConnection, message: str | bytes) -> None:
    await ws.send(message)


def free_port() -> int:
    """A loopback port nothing listens on (connections to it are refused)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Peer:
    """One websockets server; ``received`` and ``closes`` (code, reason) per connection."""

    def __init__(self, on_message: Handler = record_only, port: int = 0) -> None:
        self.on_message = on_message
        self.port = port
        self.received: list[str | bytes] = []
        self.closes: list[tuple[int | None, str | None]] = []
        self.connections = 0
        self.open: set[ServerConnection] = set()
        self._server: Server | None = None
        self.on_open: Callable[[ServerConnection], Awaitable[None]] | None = None

    @property
    def address(self) -> tuple[str, int]:
        return ("127.0.0.1", self.port)

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/ws"

    async def start(self) -> Peer:
        self._server = await serve(self._handle, "127.0.0.1", self.port)
        self.port = int(self._server.sockets[0].getsockname()[1])
        return self

    async def __aenter__(self) -> Peer:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def stop(self) -> None:
        """Shut down gracefully: close frames (1001) to every client."""
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None

    async def kill(self) -> None:
        """Stop as a crashed process would: no close frame, connections just drop."""
        if self._server is not None:
            self._server.close(close_connections=False)
            for ws in list(self.open):
                ws.transport.abort()
            await self._server.wait_closed()
            self._server = None

    async def _handle(self, ws: ServerConnection) -> None:
        self.connections += 1
        self.open.add(ws)
        try:
            if self.on_open is not None:
                await self.on_open(ws)
            async for message in ws:
                self.received.append(message)
                await self.on_message(self, ws, message)
        except ConnectionClosed:
            pass
        finally:
            self.open.discard(ws)
            self.closes.append((ws.close_code, ws.close_reason))

    def texts(self) -> list[Any]:
        import json

        return [json.loads(m) for m in self.received]


async def until(predicate: Callable[[], object], within: float = 10.0) -> None:
    """Wait (polling the loop) until ``predicate()`` holds; fail after ``within`` s."""
    deadline = time.monotonic() + within
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"still false after {within} s: {predicate}")
        await asyncio.sleep(0.005)


@contextmanager
def sync_echo() -> Iterator[str]:
    """An echoing websockets server on a thread of its own (for blocking code); its URL."""

    def handler(ws: SyncConnection) -> None:
        for message in ws:
            ws.send(message)

    with sync_serve(handler, "127.0.0.1", 0) as server:
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        try:
            yield f"ws://127.0.0.1:{server.socket.getsockname()[1]}/ws"
        finally:
            server.shutdown()
            thread.join(5)
