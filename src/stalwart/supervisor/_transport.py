"""How a supervisor opens and talks over one connection: a small protocol and two transports.

A :class:`Transport` opens a :class:`Link` to an endpoint; the supervisor does everything
else (failover, backoff, liveness, buffering, stats) the same way for any of them.
:class:`WebSocketTransport` uses the ``websockets`` library (imported when used);
:class:`TcpTransport` speaks newline-delimited frames over a plain TCP stream. Anything
else (a Redis pub/sub, a serial line) is a class with ``connect`` returning a ``Link``.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Mapping
from typing import Any, Protocol, runtime_checkable
from urllib.parse import urlsplit

from .._errors import ConfigError
from .._validate import whole

__all__ = (
    "Link",
    "LinkClosed",
    "TcpTransport",
    "Transport",
    "WebSocketTransport",
)


class LinkClosed(ConnectionError):
    """The link ended; ``code`` and ``reason`` are what the peer said, when it said."""

    def __init__(self, reason: str, code: int | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.code = code


@runtime_checkable
class Link(Protocol):
    """One open connection, as the supervisor uses it."""

    async def send(self, data: str | bytes) -> None:
        """Send one message; raise (any exception) if the link is closed or breaks."""
        ...

    async def recv(self) -> str | bytes:
        """The next message; raise :class:`LinkClosed` (or any exception) when it ends."""
        ...

    async def ping(self) -> Awaitable[float] | None:
        """Send a ping; return an awaitable that completes with the round trip in seconds
        when the pong arrives, or None if the transport has no ping."""
        ...

    async def close(self, code: int, reason: str) -> None:
        """Close gracefully (a close frame for WebSocket); the caller bounds the time."""
        ...

    def abort(self) -> None:
        """Tear the connection down at once, without a goodbye (a dead peer)."""
        ...


@runtime_checkable
class Transport(Protocol):
    """Opens links. ``connect`` may take as long as it needs: the supervisor cancels it at
    its ``connect_timeout``. A transport that cannot carry some messages (a TCP line with
    a newline in it) may also define ``validate(data)``, raising ValueError: ``send``
    then refuses such a message at once instead of buffering what can never go."""

    def check(self, endpoint: str) -> None:
        """Raise ConfigError if ``endpoint`` is not one this transport can open."""
        ...

    async def connect(self, endpoint: str) -> Link: ...


# -- WebSocket ---------------------------------------------------------------------------


class WebSocketTransport:
    """WebSocket links through the ``websockets`` library (``pip install 'stalwart[websockets]'``).

    ``headers`` are sent with the opening handshake (an ``Authorization``, say); ``options``
    go to ``websockets.asyncio.client.connect`` as they are (``max_size``, ``compression``,
    ``ssl``, ``proxy`` ...). Pings are the supervisor's, so the library's own keepalive is off.
    """

    def __init__(self, *, headers: Mapping[str, str] | None = None, **options: Any) -> None:
        for own in ("open_timeout", "ping_interval", "ping_timeout", "additional_headers"):
            if own in options:
                raise ConfigError(
                    own,
                    "is the supervisor's to set (connect_timeout, ping_interval, ping_timeout, "
                    "headers=)",
                )
        self.headers = dict(headers or {})
        self.options = options

    def check(self, endpoint: str) -> None:
        _check_url(endpoint, ("ws", "wss"))

    async def connect(self, endpoint: str) -> Link:
        try:
            from websockets.asyncio.client import connect
        except ImportError as exc:
            raise ImportError(
                f"WebSocket endpoints need websockets: pip install 'stalwart[websockets]' ({exc})"
            ) from exc
        options: dict[str, Any] = {"close_timeout": None, **self.options}
        ws = await connect(
            endpoint,
            open_timeout=None,  # the supervisor's connect_timeout bounds the whole attempt
            ping_interval=None,
            ping_timeout=None,
            additional_headers=self.headers or None,
            **options,
        )
        return _WebSocketLink(ws)

    def __repr__(self) -> str:
        return "WebSocketTransport()"


class _WebSocketLink:
    __slots__ = ("_closed", "_ws")

    def __init__(self, ws: Any) -> None:
        from websockets.exceptions import ConnectionClosed

        self._ws = ws
        self._closed = ConnectionClosed

    async def send(self, data: str | bytes) -> None:
        try:
            await self._ws.send(data)
        except self._closed as exc:
            raise _link_closed(exc) from exc

    async def recv(self) -> str | bytes:
        try:
            data: str | bytes = await self._ws.recv()
        except self._closed as exc:
            raise _link_closed(exc) from exc
        return data

    async def ping(self) -> Awaitable[float] | None:
        try:
            waiter: Awaitable[float] = await self._ws.ping()
        except self._closed as exc:
            raise _link_closed(exc) from exc
        return waiter

    async def close(self, code: int, reason: str) -> None:
        await self._ws.close(code, reason)

    def abort(self) -> None:
        transport = getattr(self._ws, "transport", None)
        if transport is not None:
            transport.abort()


def _link_closed(exc: Any) -> LinkClosed:
    frame = getattr(exc, "rcvd", None)
    if frame is None:
        return LinkClosed("connection lost (no close frame)")
    reason = f"closed by the peer ({frame.code}{': ' + frame.reason if frame.reason else ''})"
    return LinkClosed(reason, frame.code)


# -- TCP ---------------------------------------------------------------------------------


class TcpTransport:
    """Newline-delimited messages over a plain TCP stream (``tcp://host:port``).

    Each message is one line: ``send`` appends ``\\n`` (a message may not contain one);
    ``recv`` returns a line without it, decoded with ``encoding`` (None: bytes). Lines
    longer than ``max_line`` bytes end the link.
    """

    def __init__(self, *, encoding: str | None = "utf-8", max_line: int = 1 << 20) -> None:
        if encoding is not None:
            try:
                "".encode(encoding)
            except (LookupError, TypeError) as exc:
                raise ConfigError("encoding", f"is not a known codec: {encoding!r}") from exc
        whole("max_line", max_line)
        self.encoding = encoding
        self.max_line = max_line

    def check(self, endpoint: str) -> None:
        _check_url(endpoint, ("tcp",), need_port=True)

    def validate(self, data: str | bytes) -> None:
        """A message is one line: it may not contain a newline."""
        has_newline = b"\n" in data if isinstance(data, bytes) else "\n" in data
        if has_newline:
            raise ValueError("a TCP line message cannot contain a newline")

    async def connect(self, endpoint: str) -> Link:
        parts = urlsplit(endpoint)
        assert parts.hostname is not None
        assert parts.port is not None
        reader, writer = await asyncio.open_connection(
            parts.hostname, parts.port, limit=self.max_line + 1
        )
        return _TcpLink(reader, writer, self.encoding)

    def __repr__(self) -> str:
        return f"TcpTransport(encoding={self.encoding!r})"


class _TcpLink:
    __slots__ = ("_encoding", "_reader", "_writer")

    def __init__(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, encoding: str | None
    ) -> None:
        self._reader = reader
        self._writer = writer
        self._encoding = encoding

    async def send(self, data: str | bytes) -> None:
        raw = data.encode(self._encoding or "utf-8") if isinstance(data, str) else data
        if b"\n" in raw:
            raise ValueError("a TCP line message cannot contain a newline")
        if self._writer.is_closing():
            raise LinkClosed("connection closed")
        self._writer.write(raw + b"\n")
        await self._writer.drain()

    async def recv(self) -> str | bytes:
        try:
            line = await self._reader.readuntil(b"\n")
        except asyncio.IncompleteReadError as exc:
            raise LinkClosed("closed by the peer") from exc
        except asyncio.LimitOverrunError as exc:
            raise LinkClosed("a line longer than max_line arrived") from exc
        body = line[:-1]
        return body if self._encoding is None else body.decode(self._encoding)

    async def ping(self) -> Awaitable[float] | None:
        return None

    async def close(self, code: int, reason: str) -> None:
        self._writer.close()
        with contextlib.suppress(OSError):
            await self._writer.wait_closed()

    def abort(self) -> None:
        transport = self._writer.transport
        transport.abort()


def _check_url(endpoint: str, schemes: tuple[str, ...], *, need_port: bool = False) -> None:
    try:
        parts = urlsplit(endpoint)
        port = parts.port
    except ValueError as exc:
        raise ConfigError("endpoints", f"is not a valid URL: {endpoint!r} ({exc})") from exc
    allowed = " or ".join(f"{s}://" for s in schemes)
    if parts.scheme not in schemes:
        raise ConfigError("endpoints", f"must start with {allowed}, got {endpoint!r}")
    if not parts.hostname:
        raise ConfigError("endpoints", f"has no host: {endpoint!r}")
    if need_port and port is None:
        raise ConfigError("endpoints", f"needs a port ({schemes[0]}://host:port): {endpoint!r}")
