"""The demo's flaky upstream: a tiny HTTP/1.1 server on loopback that answers, hangs, recovers.

During the outage it behaves like the seed's stuck qBittorrent: it accepts the connection and
reads the request, then never answers; the connection stays open until the client gives up.
Every request is recorded with its side (the ``X-Stalwart-Side`` header) and its phase.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import Counter
from dataclasses import dataclass
from types import TracebackType

from ._plan import DemoPlan, Phase

__all__ = ("SIDE_HEADER", "FlakyUpstream", "Seen")

SIDE_HEADER = "X-Stalwart-Side"
_BODY = b'{"torrents": []}'
_RESPONSE = (
    b"HTTP/1.1 200 OK\r\n"
    b"Content-Type: application/json\r\n"
    b"Content-Length: " + str(len(_BODY)).encode() + b"\r\n\r\n" + _BODY
)


@dataclass(frozen=True, slots=True)
class Seen:
    """One request as the upstream received it."""

    at: float
    """Seconds since the run's origin."""
    side: str
    phase: Phase


class FlakyUpstream:
    """Serves on 127.0.0.1 (ephemeral port) following ``plan``'s phases from ``origin``."""

    def __init__(self, plan: DemoPlan, origin: float) -> None:
        self._plan = plan
        self._origin = origin
        self._server: asyncio.Server | None = None
        self._handlers: set[asyncio.Task[None]] = set()
        self._writers: set[asyncio.StreamWriter] = set()
        self.seen: list[Seen] = []

    async def __aenter__(self) -> FlakyUpstream:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return self

    async def __aexit__(
        self, et: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    @property
    def url(self) -> str:
        assert self._server is not None, "not started"
        host, port = self._server.sockets[0].getsockname()[:2]
        return f"http://{host}:{port}/api/torrents"

    def by_phase(self, side: str) -> dict[str, int]:
        counts = Counter(s.phase for s in self.seen if s.side == side)
        return {phase.value: counts[phase] for phase in Phase}

    async def aclose(self) -> None:
        """Stop listening and drop every connection, hung ones included."""
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
            pass  # the client went away mid-request: nothing to answer
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
            return False  # clean close between requests
        headers = _headers(head)
        length = int(headers.get("content-length", "0") or 0)
        if length:
            await reader.readexactly(length)
        elapsed = time.monotonic() - self._origin
        phase = self._plan.phase_at(elapsed)
        self.seen.append(Seen(elapsed, headers.get(SIDE_HEADER.lower(), "unknown"), phase))
        if phase is Phase.OUTAGE:
            # Hang: read (and drop) whatever comes until the client closes the connection.
            while await reader.read(65536):
                pass
            return False
        await asyncio.sleep(self._plan.upstream_latency)
        writer.write(_RESPONSE)
        await writer.drain()
        return headers.get("connection", "").lower() != "close"


def _headers(head: bytes) -> dict[str, str]:
    lines = head.decode("latin-1").split("\r\n")[1:]
    pairs = (line.split(":", 1) for line in lines if ":" in line)
    return {name.strip().lower(): value.strip() for name, value in pairs}
