"""A TCP chaos proxy: put it between a client and a real server, then break the network.

``ChaosProxy`` listens on loopback, opens a connection to ``upstream`` for every client and
forwards bytes both ways. Faults are switched while it runs, with ``set(**faults)``,
``clear()`` or ``with proxy.fault(...)``: latency (with seeded jitter), a blackhole that
accepts and never answers, connections reset with RST, refused connections, a bandwidth
limit, data cut into small delayed slices, connections closed after a timeout, and a slow
close. Stdlib and asyncio only.

The shaping decisions (how long to hold a chunk, how to cut it, when the next piece may go
under a bandwidth limit) are a sans-I/O core, :class:`_Shaper`; the proxy only does the I/O.

Data path: each socket's protocol is a :class:`_Tap` in front of the usual stream protocol.
While no fault touches a direction and nothing is queued for it, the tap writes what it
receives straight to the other side's transport (one reusable buffer, no copy into a stream,
no task switch); otherwise the bytes go through the stream to a pump task that shapes them.
"""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import contextlib
import dataclasses
import ipaddress
import math
import random
import socket
import struct
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from types import TracebackType
from typing import Any

from .._clock import Clock
from .._errors import ConfigError
from .._strategy import strategy_clock, strategy_name
from .._validate import one_of, optional_positive, positive, whole

__all__ = ("ChaosProxy", "ProxyFaults", "ProxyStats")

DIRECTIONS = ("both", "upstream", "downstream")
"""``upstream``: client to server; ``downstream``: server to client."""
DEFAULT_MAX_BUFFER = 262144
"""Largest chunk read from either side at once (bytes): 256 KiB, as much as asyncio's own
socket transport reads at once; smaller chunks cost throughput (see ``bench/proxy.py``)."""
FIRST_READ = 16384
"""The read buffer a connection starts with (bytes)."""
PACING_STEP = 0.01
"""Under a bandwidth limit, data goes in pieces worth this many seconds, so the rate holds
even for transfers of a few chunks."""

_LINGER_RST = struct.pack("ii", 1, 0)


def _keeps_views(transport: asyncio.Transport) -> bool:
    """Whether ``transport.write`` may keep a view of the data it could not send at once
    (then the buffer written must not be reused). Python 3.11's selector transport copies
    it; from 3.12 it keeps the view, and other loops may too."""
    return sys.version_info >= (3, 12) or type(transport).__module__ != "asyncio.selector_events"


_RECHECK = 0.5
"""Seconds between looks at a link whose close a blackhole holds back."""


@dataclass(frozen=True, slots=True, kw_only=True)
class ProxyFaults:
    """The faults a proxy applies; the defaults forward everything untouched."""

    latency: float = 0.0
    """Seconds added to every chunk, in each shaped direction."""
    jitter: float = 0.0
    """Up to this many more seconds per chunk, drawn uniformly from the seeded source."""
    direction: str = "both"
    """Where latency, bandwidth and slicing apply: ``both``, ``upstream`` or ``downstream``."""
    blackhole: bool = False
    """Accept and read, never forward nor answer."""
    reset: bool = False
    """Reset (RST) every connection: open ones at once, new ones right after accept."""
    refuse: bool = False
    """Stop listening: connections are refused. Cleared, listen again on the same port."""
    bandwidth: float | None = None
    """Bytes per second, per connection and shaped direction (None: unlimited)."""
    slice_size: int | None = None
    """Deliver data in pieces of at most this many bytes (None: as read)."""
    slice_delay: float = 0.0
    """Seconds to wait after each slice (needs ``slice_size``)."""
    timeout: float | None = None
    """Close each connection this many seconds after it opened (None: never)."""
    slow_close: float = 0.0
    """Seconds to wait before passing a side's close on to the other side."""

    def __post_init__(self) -> None:
        positive("latency", self.latency, allow_zero=True)
        positive("jitter", self.jitter, allow_zero=True)
        one_of("direction", self.direction, DIRECTIONS)
        for flag in ("blackhole", "reset", "refuse"):
            if not isinstance(getattr(self, flag), bool):
                raise ConfigError(flag, f"must be True or False, got {getattr(self, flag)!r}")
        optional_positive("bandwidth", self.bandwidth)
        if self.slice_size is not None:
            whole("slice_size", self.slice_size)
        positive("slice_delay", self.slice_delay, allow_zero=True)
        if self.slice_delay and self.slice_size is None:
            raise ConfigError("slice_delay", "needs slice_size: the delay comes after each slice")
        optional_positive("timeout", self.timeout)
        positive("slow_close", self.slow_close, allow_zero=True)

    def shapes(self, direction: str) -> bool:
        """Whether latency, bandwidth or slicing apply to data going ``direction``."""
        if self.direction not in ("both", direction):
            return False
        return bool(self.latency or self.jitter or self.bandwidth or self.slice_size)


NO_FAULTS = ProxyFaults()


@dataclass(frozen=True, slots=True, kw_only=True)
class ProxyStats:
    """A snapshot of a proxy's traffic."""

    open: int
    """Client connections open now."""
    total: int
    """Client connections accepted since start."""
    bytes_upstream: int
    """Bytes forwarded from clients to the upstream."""
    bytes_downstream: int
    """Bytes forwarded from the upstream to clients."""
    bytes_dropped: int
    """Bytes read and thrown away by the blackhole."""
    upstream_errors: int
    """Client connections closed because the upstream could not be reached."""


class _Shaper:
    """Sans-I/O: when and in which pieces one direction's data goes under the faults."""

    __slots__ = ("_due", "_free_at", "_rng")

    def __init__(self, rng: random.Random) -> None:
        self._rng = rng
        self._free_at = 0.0
        self._due = -math.inf

    def hold(self, faults: ProxyFaults) -> float:
        """Seconds to hold a chunk before sending it: latency plus a jitter draw."""
        if faults.jitter:
            return faults.latency + self._rng.uniform(0.0, faults.jitter)
        return faults.latency

    def due(self, faults: ProxyFaults, arrived: float) -> float:
        """When a piece that arrived at ``arrived`` may leave: its hold after arriving, and
        never before the piece ahead of it (jitter must not reorder bytes)."""
        due = max(arrived + self.hold(faults), self._due)
        self._due = due
        return due

    @staticmethod
    def piece(faults: ProxyFaults, size: int) -> int:
        """The size of the pieces a chunk of ``size`` bytes is cut into."""
        step = size
        if faults.slice_size is not None:
            step = min(step, faults.slice_size)
        if faults.bandwidth is not None:
            step = min(step, max(1, int(faults.bandwidth * PACING_STEP)))
        return step

    def pace(self, bandwidth: float | None, size: int, now: float) -> float:
        """Seconds to wait before sending ``size`` bytes at ``bandwidth`` bytes/s."""
        if bandwidth is None:
            self._free_at = now
            return 0.0
        start = max(now, self._free_at)
        self._free_at = start + size / bandwidth
        return start - now


def _host_port(field: str, address: Any, *, any_port: bool) -> tuple[str, int]:
    if not (isinstance(address, tuple) and len(address) == 2):
        raise ConfigError(field, f"must be a (host, port) tuple, got {address!r}")
    host, port = address
    low = 0 if any_port else 1
    if isinstance(port, bool) or not isinstance(port, int) or not low <= port <= 65535:
        raise ConfigError(field, f"port must be an integer in {low}..65535, got {port!r}")
    if not isinstance(host, str) or not host:
        raise ConfigError(field, f"host must be a non-empty string, got {host!r}")
    return host, port


def _check_listen(address: Any) -> tuple[str, int]:
    host, port = _host_port("listen", address, any_port=True)
    try:
        loopback = host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if not loopback:
        raise ConfigError(
            "listen", f"must be a loopback address (127.0.0.1, ::1, localhost), got {host!r}"
        )
    return host, port


def _drop(writer: asyncio.StreamWriter | None, *, rst: bool) -> None:
    """Close at once, without flushing; with ``rst``, the peer gets a reset, not a FIN."""
    if writer is None:
        return
    transport = writer.transport
    if rst:
        sock = transport.get_extra_info("socket")
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _LINGER_RST)
    transport.abort()


class _Arrivals:
    """Sans-I/O: the arrival times of the bytes a stream holds, oldest first, so the pump
    can tell when each piece of what it reads came in."""

    __slots__ = ("_runs",)

    def __init__(self) -> None:
        self._runs: collections.deque[list[float]] = collections.deque()  # [size, at]

    def add(self, size: int, at: float) -> None:
        self._runs.append([size, at])

    def take(self, size: int, now: float) -> list[tuple[int, float]]:
        """The next ``size`` bytes as (run size, arrival time) pieces; bytes with no record
        count as arriving ``now``."""
        pieces: list[tuple[int, float]] = []
        runs = self._runs
        while size > 0 and runs:
            run = runs[0]
            part = min(size, int(run[0]))
            pieces.append((part, run[1]))
            size -= part
            run[0] -= part
            if not run[0]:
                runs.popleft()
        if size > 0:
            pieces.append((size, now))
        return pieces


class _Tap(asyncio.BufferedProtocol):
    """One socket's protocol: a fast path in front of its :class:`asyncio.StreamReaderProtocol`.

    Bytes received go straight to the peer tap's transport when :meth:`ChaosProxy._untouched`
    says no fault applies to them, the pump of this direction is waiting on an empty stream
    (``idle``, nothing ``pending``), and the peer transport is open; else they go to the
    stream, for the pump. So bytes leave in the order they came, whichever path each took.
    Back-pressure: while the peer transport's write buffer is over its high-water mark, this
    socket stops reading (the stream's own flow control covers the pump's path).
    """

    __slots__ = (
        "arrivals",
        "direction",
        "idle",
        "inner",
        "paused",
        "peer",
        "pending",
        "proxy",
        "transport",
        "view",
    )

    def __init__(
        self, proxy: ChaosProxy, inner: asyncio.StreamReaderProtocol, direction: str
    ) -> None:
        self.proxy = proxy
        self.inner = inner
        self.direction = direction
        """Where the bytes this socket receives go: ``upstream`` (client socket) or
        ``downstream`` (upstream socket)."""
        self.view = memoryview(bytearray(min(proxy.max_buffer, FIRST_READ)))
        """Where the next read goes: grows by doubling, up to ``max_buffer``, while reads
        fill it, so a connection that only exchanges small messages keeps a small one."""
        self.transport: asyncio.Transport | None = None
        self.peer: _Tap | None = None
        """The tap of the other socket of the link, once both are connected."""
        self.pending = 0
        """Bytes handed to the stream that the pump has not read yet."""
        self.idle = False
        """The pump waits in ``read()`` (it holds no data)."""
        self.paused = False
        """Reading paused by this tap for the peer transport's back-pressure."""
        self.arrivals = _Arrivals()
        """When the pending bytes arrived, for latency counted from arrival."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        self.inner.connection_made(transport)

    def get_buffer(self, sizehint: int) -> memoryview:
        return self.view

    def buffer_updated(self, nbytes: int) -> None:
        view = self.view
        if nbytes == len(view) < self.proxy.max_buffer:  # a full read: take more next time
            self.view = memoryview(bytearray(min(2 * nbytes, self.proxy.max_buffer)))
        peer = self.peer
        if (
            peer is not None
            and self.idle
            and not self.pending
            and peer.transport is not None
            and not peer.transport.is_closing()
            and self.proxy._untouched(self.direction)
        ):
            out = peer.transport
            out.write(view[:nbytes])
            if self.view is view and out.get_write_buffer_size() and _keeps_views(out):
                self.view = memoryview(bytearray(len(view)))  # that one is the transport's
            self.proxy._count(self.direction, nbytes)
            return
        self.pending += nbytes
        self.arrivals.add(nbytes, self.proxy._clock.monotonic())
        self.inner.data_received(bytes(view[:nbytes]))

    def eof_received(self) -> bool | None:
        return self.inner.eof_received()

    def connection_lost(self, exc: Exception | None) -> None:
        self.inner.connection_lost(exc)
        if self.peer is not None:
            self.peer._release()  # its bytes will find this side gone, through the pump

    def pause_writing(self) -> None:
        self.inner.pause_writing()  # the pump's drain() waits
        if self.peer is not None:
            self.peer._hold()  # and the fast path into this transport stops reading

    def resume_writing(self) -> None:
        self.inner.resume_writing()
        if self.peer is not None:
            self.peer._release()

    def _hold(self) -> None:
        # With bytes pending, the stream is in charge of pausing this socket: leave it be.
        if not self.paused and not self.pending and self.transport is not None:
            self.paused = True
            self.transport.pause_reading()

    def _release(self) -> None:
        if self.paused and self.transport is not None:
            self.paused = False
            self.transport.resume_reading()


class _Link:
    """One client connection and its upstream connection."""

    __slots__ = ("client", "connecting", "opened", "pumps", "timer", "upstream")

    def __init__(self, client: asyncio.StreamWriter, opened: float) -> None:
        self.client = client
        self.upstream: asyncio.StreamWriter | None = None
        self.opened = opened
        self.pumps: tuple[asyncio.Task[None], ...] = ()
        self.timer: asyncio.Task[None] | None = None
        self.connecting: asyncio.Task[Any] | None = None

    def drop(self, *, rst: bool) -> None:
        _drop(self.client, rst=rst)
        _drop(self.upstream, rst=rst)

    def close(self) -> None:
        """A normal close (FIN) of both sides, as a server that hangs up would."""
        self.client.close()
        if self.upstream is not None:
            self.upstream.close()


class ChaosProxy:
    """A TCP proxy on loopback whose faults can be switched while it runs.

    Use it from the event loop that started it (``async with ChaosProxy(...) as proxy``);
    ``set`` / ``clear`` / ``fault`` may also be called from another thread, and then wait
    until the loop has applied the change.
    """

    def __init__(
        self,
        upstream: tuple[str, int],
        *,
        listen: tuple[str, int] = ("127.0.0.1", 0),
        name: str | None = None,
        clock: Clock | None = None,
        seed: int | None = None,
        max_buffer: int = DEFAULT_MAX_BUFFER,
    ) -> None:
        self.upstream = _host_port("upstream", upstream, any_port=False)
        self._listen = _check_listen(listen)
        self.name = strategy_name(name, "chaos_proxy")
        self._clock = strategy_clock(clock)
        whole("max_buffer", max_buffer)
        self.max_buffer = max_buffer
        self._rng = random.Random(seed)
        self._faults = NO_FAULTS
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: asyncio.Server | None = None
        self._reopening: asyncio.Task[None] | None = None
        self._address: tuple[str, int] | None = None
        self._closed = False
        self._links: set[_Link] = set()
        self._switched: set[asyncio.Future[None]] = set()
        self._handlers: set[asyncio.Task[Any]] = set()
        self._total = self._up = self._down = self._dropped = self._upstream_errors = 0

    # -- lifecycle ------------------------------------------------------------------------

    @property
    def address(self) -> tuple[str, int]:
        """The (host, port) the proxy listens on (the real port when 0 was asked)."""
        if self._address is None:
            raise RuntimeError(f"chaos proxy {self.name!r} is not started")
        return self._address

    async def start(self) -> None:
        if self._loop is not None:
            raise RuntimeError(f"chaos proxy {self.name!r} is already started")
        self._loop = asyncio.get_running_loop()
        sock = self._bind(self._listen)
        self._address = sock.getsockname()[:2]
        if self._faults.refuse:
            sock.close()
        else:
            await self._serve(sock)

    async def aclose(self) -> None:
        """Stop listening and drop every connection; returns once all are gone."""
        if self._closed:
            return
        self._closed = True
        if self._reopening is not None:
            await self._reopening
        if self._server is not None:
            self._server.close()
        for link in list(self._links):
            link.drop(rst=False)
            if link.connecting is not None:
                link.connecting.cancel()
            for task in (*link.pumps, link.timer):
                if task is not None:
                    task.cancel()
        # Handlers end through their pumps; cancelling the handler tasks themselves makes
        # Python 3.11's stream callback log a spurious CancelledError.
        if self._handlers:
            await asyncio.wait(list(self._handlers))
        if self._server is not None:
            await self._server.wait_closed()
            self._server = None

    async def __aenter__(self) -> ChaosProxy:
        await self.start()
        return self

    async def __aexit__(
        self, et: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    # -- faults ---------------------------------------------------------------------------

    @property
    def faults(self) -> ProxyFaults:
        """The faults in force now."""
        return self._faults

    def set(self, **faults: Any) -> None:
        """Change the given faults (the others stay); see :class:`ProxyFaults`."""
        fields = {f.name for f in dataclasses.fields(ProxyFaults)}
        for key in faults:
            if key not in fields:
                raise ConfigError(key, f"is not a proxy fault; the faults are {sorted(fields)}")
        self._apply(lambda now: dataclasses.replace(now, **faults))

    def clear(self) -> None:
        """Remove every fault: forward everything untouched again."""
        self._apply(lambda _: NO_FAULTS)

    @contextlib.contextmanager
    def fault(self, **faults: Any) -> Iterator[ProxyFaults]:
        """Add ``faults`` for the block, then restore the settings from before it."""
        before = self._faults
        self.set(**faults)
        try:
            yield self._faults
        finally:
            self._apply(lambda _: before)

    def _apply(self, change: Callable[[ProxyFaults], ProxyFaults]) -> None:
        """Apply ``change`` to the faults in force, on the proxy's loop when it runs (so
        two threads setting faults at once both get their change), before returning."""
        loop = self._loop
        if loop is not None and not self._closed and loop.is_running():
            try:
                running = asyncio.get_running_loop()
            except RuntimeError:
                running = None
            if running is not loop:
                done: concurrent.futures.Future[None] = concurrent.futures.Future()

                def apply() -> None:
                    try:
                        self._switch(change(self._faults))
                    except BaseException as exc:
                        done.set_exception(exc)
                    else:
                        done.set_result(None)

                loop.call_soon_threadsafe(apply)
                done.result()
                return
        self._switch(change(self._faults))

    def _switch(self, new: ProxyFaults) -> None:
        old = self._faults
        if self._loop is None or self._closed:
            self._faults = new
            return
        if new.refuse and not old.refuse and self._server is not None:
            self._server.close()  # closes the listening socket now: connects are refused
            self._server = None
        elif old.refuse and not new.refuse and self._server is None and self._reopening is None:
            # Bind and listen now, so connects succeed as soon as this returns. If the port
            # was taken meanwhile, this raises and the faults stay as they were.
            sock = self._bind(self.address)
            self._reopening = self._loop.create_task(self._serve(sock))
        self._faults = new
        for waiter in self._switched:  # closes held back by a blackhole look again
            if not waiter.done():
                waiter.set_result(None)
        if new.reset:
            for link in list(self._links):
                link.drop(rst=True)
        elif new.timeout != old.timeout:
            for link in self._links:
                self._arm_timer(link)

    def stats(self) -> ProxyStats:
        return ProxyStats(
            open=len(self._links),
            total=self._total,
            bytes_upstream=self._up,
            bytes_downstream=self._down,
            bytes_dropped=self._dropped,
            upstream_errors=self._upstream_errors,
        )

    def describe(self) -> dict[str, Any]:
        return {
            "strategy": "chaos_proxy",
            "name": self.name,
            "listen": self._address or self._listen,
            "upstream": self.upstream,
            "max_buffer": self.max_buffer,
            **dataclasses.asdict(self._faults),
        }

    def __repr__(self) -> str:
        return f"ChaosProxy({self.name!r}, {self._address or self._listen} -> {self.upstream})"

    # -- I/O ------------------------------------------------------------------------------

    @staticmethod
    def _bind(address: tuple[str, int]) -> socket.socket:
        host, port = address
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        return socket.create_server((host, port), family=family)

    def _client_protocol(self) -> _Tap:
        """What ``asyncio.start_server`` builds per connection, behind a tap."""
        reader = asyncio.StreamReader(limit=self.max_buffer)
        inner = asyncio.StreamReaderProtocol(reader, self._handle)
        return _Tap(self, inner, "upstream")

    async def _serve(self, sock: socket.socket) -> None:
        assert self._loop is not None
        server = await self._loop.create_server(self._client_protocol, sock=sock)
        self._reopening = None
        if self._closed or self._faults.refuse:
            server.close()  # refused or closed again while this was starting
        else:
            self._server = server

    async def _handle(self, creader: asyncio.StreamReader, cwriter: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        if self._closed:
            _drop(cwriter, rst=False)
            return
        self._handlers.add(task)
        link = _Link(cwriter, self._clock.monotonic())
        self._links.add(link)
        self._total += 1
        try:
            if self._faults.reset:
                link.drop(rst=True)
                return
            # What asyncio.open_connection does, with a tap in front of the stream protocol.
            assert self._loop is not None
            ureader = asyncio.StreamReader(limit=self.max_buffer)
            uinner = asyncio.StreamReaderProtocol(ureader)
            utap = _Tap(self, uinner, "downstream")
            connect = self._loop.create_task(
                self._loop.create_connection(lambda: utap, *self.upstream)
            )
            link.connecting = connect
            try:
                utransport, _ = await connect
            except asyncio.CancelledError:
                if not connect.cancelled() or task.cancelling():
                    raise
                link.drop(rst=False)  # closed or reset while connecting: give up on it
                return
            except OSError:
                self._upstream_errors += 1
                link.drop(rst=False)
                return
            uwriter = asyncio.StreamWriter(utransport, uinner, ureader, self._loop)
            link.upstream = uwriter
            if self._stopping():  # reset or closed while connecting upstream
                link.drop(rst=not self._closed)
                return
            self._arm_timer(link)
            ctap = cwriter.transport.get_protocol()
            taps: tuple[_Tap | None, _Tap | None] = (None, None)
            if isinstance(ctap, _Tap):  # linked only now: until here, every byte is pending
                ctap.peer, utap.peer = utap, ctap
                taps = (ctap, utap)
            link.pumps = (
                asyncio.create_task(self._pump(link, creader, uwriter, "upstream", taps[0])),
                asyncio.create_task(self._pump(link, ureader, cwriter, "downstream", taps[1])),
            )
            await asyncio.wait(link.pumps)
            for pump in link.pumps:
                if not pump.cancelled():
                    pump.result()
        finally:
            self._links.discard(link)  # first: a fault switched meanwhile arms no new timer
            if link.timer is not None:
                link.timer.cancel()
                await asyncio.wait({link.timer})
            link.drop(rst=False)
            self._handlers.discard(task)

    async def _pump(
        self,
        link: _Link,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        direction: str,
        tap: _Tap | None,
    ) -> None:
        """Forward what the fast path left in the stream, shaped by the faults in force."""
        shaper = _Shaper(self._rng)
        clock = self._clock
        upstream = direction == "upstream"
        try:
            while True:
                if tap is not None:
                    tap.idle = True  # the tap may send what comes next itself
                    try:
                        data = await reader.read(self.max_buffer)
                    finally:
                        tap.idle = False
                    tap.pending -= len(data)
                    arrivals = tap.arrivals.take(len(data), clock.monotonic())
                else:
                    data = await reader.read(self.max_buffer)
                    arrivals = [(len(data), clock.monotonic())]
                if not data:
                    break
                faults = self._faults
                if faults.blackhole:
                    self._dropped += len(data)
                    continue
                if faults.shapes(direction):
                    # Each piece leaves its latency after it *arrived*, as on a network link:
                    # pieces that waited in the stream meanwhile are not delayed once more.
                    sent, offset = 0, 0
                    for size, arrived in arrivals:
                        wait = shaper.due(faults, arrived) - clock.monotonic()
                        if wait > 0:
                            await clock.asleep(wait)
                        piece = data[offset : offset + size]
                        offset += size
                        sent += await self._shaped(shaper, self._faults, piece, writer, direction)
                else:
                    writer.write(data)
                    await writer.drain()
                    sent = len(data)
                if upstream:
                    self._up += sent
                else:
                    self._down += sent
            await self._while_blackholed(writer)  # a blackhole swallows the close too
            if writer.is_closing():
                return  # the link was dropped: nothing to pass on
            if self._faults.slow_close:
                await clock.asleep(self._faults.slow_close)
            if writer.can_write_eof() and not writer.is_closing():
                writer.write_eof()
        except OSError:
            await self._while_blackholed(writer)
            link.drop(rst=False)  # one side failed: the other learns at once

    async def _while_blackholed(self, writer: asyncio.StreamWriter) -> None:
        """Hold on while a blackhole is in force and the link is up: the other side must
        not learn of a close or an error through it (a real blackhole drops the FIN too).
        Lifting the blackhole (any fault change) lets it through; a link dropped
        meanwhile (timeout fault, shutdown) is noticed within ``_RECHECK`` seconds."""
        while self._faults.blackhole and not writer.is_closing():
            waiter = asyncio.get_running_loop().create_future()
            self._switched.add(waiter)
            try:
                await asyncio.wait((waiter,), timeout=_RECHECK)
            finally:
                self._switched.discard(waiter)

    async def _shaped(
        self,
        shaper: _Shaper,
        faults: ProxyFaults,
        data: bytes,
        writer: asyncio.StreamWriter,
        direction: str,
    ) -> int:
        """Send ``data`` in paced pieces; returns the bytes sent (a blackhole may cut it)."""
        clock = self._clock
        view = memoryview(data)
        step = shaper.piece(faults, len(view))
        for start in range(0, len(view), step):
            faults = self._faults  # a fault switched mid-chunk applies to the next piece
            if faults.blackhole:
                self._dropped += len(view) - start
                return start
            piece = view[start : start + step]
            bandwidth = faults.bandwidth if faults.shapes(direction) else None
            wait = shaper.pace(bandwidth, len(piece), clock.monotonic())
            if wait > 0:
                await clock.asleep(wait)
            writer.write(piece)
            await writer.drain()
            if faults.slice_delay and faults.shapes(direction):
                await clock.asleep(faults.slice_delay)
        return len(view)

    def _untouched(self, direction: str) -> bool:
        """Whether data going ``direction`` now passes as it is (the taps' fast path)."""
        faults = self._faults
        return faults is NO_FAULTS or not (faults.blackhole or faults.shapes(direction))

    def _count(self, direction: str, size: int) -> None:
        if direction == "upstream":
            self._up += size
        else:
            self._down += size

    def _stopping(self) -> bool:
        return self._closed or self._faults.reset

    def _arm_timer(self, link: _Link) -> None:
        if link.timer is not None:
            link.timer.cancel()
            link.timer = None
        timeout = self._faults.timeout
        if timeout is not None and self._loop is not None:
            left = link.opened + timeout - self._clock.monotonic()
            link.timer = self._loop.create_task(self._expire(link, left))

    async def _expire(self, link: _Link, left: float) -> None:
        if left > 0:
            await self._clock.asleep(left)
        link.close()
