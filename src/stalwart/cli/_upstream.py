"""The demo's upstream, a tiny always healthy HTTP/1.1 server on loopback, and the chaos
proxies in front of it.

The upstream never fails on its own: the outage comes from the proxies, one per side, that
the callers go through. It records every request it answers, with its side (the
``X-Stalwart-Side`` header), so the report can show what really reached it.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import time
from collections.abc import Sequence
from types import TracebackType

from ..chaos import ChaosProxy, ProxyFaults
from ._plan import Phase
from ._stats import Tally

__all__ = ("SIDE_HEADER", "Proxies", "Upstream")

SIDE_HEADER = "X-Stalwart-Side"
PATH = "/api/torrents"
_BODY = b'{"torrents": []}'
_RESPONSE = (
    b"HTTP/1.1 200 OK\r\n"
    b"Content-Type: application/json\r\n"
    b"Content-Length: " + str(len(_BODY)).encode() + b"\r\n\r\n" + _BODY
)


class Upstream:
    """Serves on 127.0.0.1 (ephemeral port), answering every request after ``latency`` s."""

    def __init__(self, latency: float, origin: float) -> None:
        self._latency = latency
        self._origin = origin
        self._server: asyncio.Server | None = None
        self._handlers: set[asyncio.Task[None]] = set()
        self._writers: set[asyncio.StreamWriter] = set()
        self.seen: list[tuple[float, str]] = []
        """(seconds since the run's origin, side) of every request received."""

    async def __aenter__(self) -> Upstream:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return self

    async def __aexit__(
        self, et: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    @property
    def address(self) -> tuple[str, int]:
        assert self._server is not None, "not started"
        host, port = self._server.sockets[0].getsockname()[:2]
        return host, port

    async def aclose(self) -> None:
        """Stop listening and drop every connection."""
        if self._server is None:
            return
        self._server.close()
        # Closing the transports ends each handler through EOF. Cancelling the handler tasks
        # instead makes Python 3.11's stream callback log a spurious CancelledError.
        for writer in self._writers:
            writer.close()
        # Python 3.11's wait_closed() does not wait for connections: wait for them here.
        await asyncio.gather(*self._handlers)
        await self._server.wait_closed()
        self._server = None

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._handlers.add(task)
        self._writers.add(writer)
        try:
            while await self._answer_one(reader, writer):
                pass
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            pass  # the client (the proxy) went away mid-request: nothing to answer
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()
            self._writers.discard(writer)
            self._handlers.discard(task)

    async def _answer_one(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
        """Handle one request on a kept-alive connection; False when the connection is done."""
        try:
            head = await reader.readuntil(b"\r\n\r\n")
        except asyncio.IncompleteReadError:
            return False  # closed between requests, or (blackhole) before sending one
        headers = _headers(head)
        length = int(headers.get("content-length", "0") or 0)
        if length:
            await reader.readexactly(length)
        self.seen.append((time.monotonic() - self._origin, headers.get(SIDE_HEADER.lower(), "")))
        await asyncio.sleep(self._latency)
        writer.write(_RESPONSE)
        await writer.drain()
        return headers.get("connection", "").lower() != "close"


def _headers(head: bytes) -> dict[str, str]:
    lines = head.decode("latin-1").split("\r\n")[1:]
    pairs = (line.split(":", 1) for line in lines if ":" in line)
    return {name.strip().lower(): value.strip() for name, value in pairs}


class Proxies:
    """One ChaosProxy per side in front of ``upstream``, and each one's counter readings.

    A side's proxy accepts one connection per request (the callers do not keep connections
    alive), so its ``stats().total`` counts that side's requests, including those the
    faults swallow. :meth:`read` records it at a given moment into the side's Tally.
    """

    def __init__(self, upstream: tuple[str, int], sides: Sequence[str]) -> None:
        self._proxies = {side: ChaosProxy(upstream, name=f"demo-{side}") for side in sides}
        self.sent = {side: Tally() for side in sides}
        """Each side's accepted connections, read at the moments :meth:`read` was called."""
        self._stack = contextlib.AsyncExitStack()

    async def __aenter__(self) -> Proxies:
        async with contextlib.AsyncExitStack() as stack:
            for proxy in self._proxies.values():
                await stack.enter_async_context(proxy)
            self._stack = stack.pop_all()
        return self

    async def __aexit__(
        self, et: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self._stack.aclose()

    def url(self, side: str) -> str:
        host, port = self._proxies[side].address
        return f"http://{host}:{port}{PATH}"

    def total(self, side: str) -> int:
        """Requests ``side`` sent so far."""
        return self._proxies[side].stats().total

    def stats(self, side: str) -> dict[str, int]:
        return dataclasses.asdict(self._proxies[side].stats())

    def read(self, at: float, side: str | None = None) -> None:
        """Record the counter of ``side`` (default: every side) as of ``at``."""
        for each in self._proxies if side is None else (side,):
            self.sent[each].mark(at, self.total(each))

    def switch(self, phase: Phase, at: float) -> None:
        """Read every counter, then put every proxy in ``phase``'s faults."""
        self.read(at)
        faults = phase.proxy_faults
        for proxy in self._proxies.values():
            if any(faults.values()):
                proxy.set(**faults)
            else:
                proxy.clear()

    def faults(self, side: str) -> ProxyFaults:
        """The faults ``side``'s proxy applies now."""
        return self._proxies[side].faults
