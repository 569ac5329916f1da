"""The async supervisor: one long-lived connection that never gives up.

The decisions live in :class:`~._core.SupervisorCore`; this module only does the I/O on
one event loop: a run task that connects, fails over and waits; per connection a reader
task and a liveness task (heartbeats, pings, dead-peer detection); ``send`` writing
directly while connected and buffering otherwise; and the graceful close.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import random
import signal
import weakref
from collections import deque
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

from .. import presets
from .._backoff import Backoff
from .._breaker import CircuitBreaker
from .._clock import Clock
from .._errors import CircuitOpenError, ConfigError, StalwartError
from .._events import Event, EventHub
from .._strategy import Observable, strategy_clock
from ._codec import Codec, check, decode, encode, size
from ._core import (
    DEFAULT_CLOSE_TIMEOUT,
    DEFAULT_CONNECT_TIMEOUT,
    DEFAULT_MAX_BUFFER,
    DEFAULT_MAX_INBOX,
    DEFAULT_PING_INTERVAL,
    DEFAULT_RESET_AFTER,
    ConnectionState,
    ConnectionStats,
    Overflow,
    SupervisorCore,
    SupervisorSettings,
    public_endpoint,
)
from ._events import (
    Connected,
    ConnectFailed,
    Connecting,
    Disconnected,
    EndpointSkipped,
    MessagesDropped,
    PeerUnresponsive,
    ReconnectScheduled,
    SupervisorClosed,
)
from ._transport import Link, LinkClosed, TcpTransport, Transport, WebSocketTransport

__all__ = (
    "DEFAULT_HEARTBEAT_INTERVAL",
    "GOING_AWAY",
    "NORMAL_CLOSURE",
    "Supervisor",
    "SupervisorClosedError",
    "live_supervisors",
)

_log = logging.getLogger("stalwart.supervisor")

DEFAULT_HEARTBEAT_INTERVAL = 30.0
"""Seconds between heartbeats when a ``heartbeat`` payload is given without an interval."""
NORMAL_CLOSURE = 1000
GOING_AWAY = 1001
"""The close code sent when a signal shuts the supervisor down (RFC 6455 §7.4.1)."""

_LIVE: weakref.WeakSet[Supervisor] = weakref.WeakSet()

MessageSource = Any
"""A message, or a function (sync or async) returning one, evaluated at each use."""


def live_supervisors() -> list[Supervisor]:
    """The supervisors running in this process (started, not yet closed), by name."""
    return sorted(_LIVE, key=lambda s: s.name)


class SupervisorClosedError(StalwartError):
    """The supervisor is closed: nothing more can be sent or received."""


class Supervisor(Observable):
    """Keeps one connection open to the first of ``endpoints`` that answers, forever.

    Use it as ``async with Supervisor([...]) as sup:``; it connects in the background,
    ``await sup.send(message)`` sends (or buffers while reconnecting), ``async for message
    in sup`` receives across reconnects, and leaving the block closes gracefully. See
    ``docs/supervisor.md`` for every setting; the defaults are safe: gRPC's reconnect
    backoff, a 10 s connect timeout, a ping every 20 s, a bounded buffer that refuses
    rather than drops.
    """

    def __init__(
        self,
        endpoints: Sequence[str] | str,
        *,
        name: str | None = None,
        transport: Transport | None = None,
        connect_timeout: float = DEFAULT_CONNECT_TIMEOUT,
        heartbeat_interval: float | None = None,
        heartbeat: MessageSource = None,
        dead_after: float | None = None,
        ping_interval: float | None = DEFAULT_PING_INTERVAL,
        ping_timeout: float | None = None,
        backoff: Backoff = presets.GRPC,
        reset_after: float = DEFAULT_RESET_AFTER,
        close_timeout: float = DEFAULT_CLOSE_TIMEOUT,
        hello: MessageSource = None,
        goodbye: MessageSource = None,
        on_message: Callable[[Any], Any] | None = None,
        on_connect: Callable[[Supervisor], Any] | None = None,
        codec: Codec = "json",
        max_buffer: int = DEFAULT_MAX_BUFFER,
        overflow: Overflow = "reject",
        max_inbox: int = DEFAULT_MAX_INBOX,
        breakers: bool | Mapping[str, CircuitBreaker] | Callable[[str], CircuitBreaker] = False,
        handle_signals: bool = False,
        clock: Clock | None = None,
        rng: random.Random | None = None,
    ) -> None:
        if isinstance(endpoints, str):
            endpoints = [endpoints]
        if heartbeat is not None and heartbeat_interval is None:
            heartbeat_interval = DEFAULT_HEARTBEAT_INTERVAL
        self.settings = SupervisorSettings(
            endpoints=tuple(endpoints) if isinstance(endpoints, Sequence) else endpoints,
            connect_timeout=connect_timeout,
            heartbeat_interval=heartbeat_interval,
            dead_after=dead_after,
            ping_interval=ping_interval,
            ping_timeout=ping_timeout,
            close_timeout=close_timeout,
            reset_after=reset_after,
            backoff=backoff,
            max_buffer=max_buffer,
            overflow=overflow,
            max_inbox=max_inbox,
        )
        if name is None:
            name = public_endpoint(self.settings.endpoints[0])
        if not isinstance(name, str) or not name:
            raise ConfigError("name", f"must be a non-empty string, got {name!r}")
        self.name = name
        self.transport = _transport_for(self.settings.endpoints, transport)
        for label, fn in (("on_message", on_message), ("on_connect", on_connect)):
            if fn is not None and not callable(fn):
                raise ConfigError(label, f"must be callable or None, got {fn!r}")
        if not isinstance(handle_signals, bool):
            raise ConfigError("handle_signals", f"must be True or False, got {handle_signals!r}")
        self._codec = check(codec)
        self._validate: Callable[[str | bytes], None] | None = getattr(
            self.transport, "validate", None
        )
        self._heartbeat = heartbeat
        self._hello = hello
        self._goodbye = goodbye
        self._on_message = on_message
        self._on_connect = on_connect
        self._breakers = _breakers(self.name, self.settings.endpoints, breakers)
        self._handle_signals = handle_signals
        self._clock = strategy_clock(clock)
        self._hub = EventHub()
        clk = self._clock
        self._core = SupervisorCore(
            self.name,
            self.settings,
            emit=self._emit,
            wall_offset=lambda: clk.time() - clk.monotonic(),
            rng=rng,
        )
        self._inbox = _Mailbox(self.settings.max_inbox)
        self._link: Link | None = None
        self._flushing_now = False
        self._drained = asyncio.Event()
        self._drained.set()
        self._lost: asyncio.Event | None = None
        self._lost_reason: tuple[str, int | None] = ("", None)
        self._run_task: asyncio.Task[None] | None = None
        self._close_task: asyncio.Task[None] | None = None
        self._closing = False
        self._close_code = NORMAL_CLOSURE
        self._close_reason = ""
        self._hurry = False
        self._signal_close: asyncio.Future[None] | None = None
        self._done = asyncio.Event()
        self._connected = asyncio.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._signals: tuple[int, ...] = ()

    # -- lifecycle -----------------------------------------------------------------------

    async def start(self) -> Supervisor:
        """Begin connecting in the background (``async with`` calls it)."""
        if self._run_task is not None or self._closing:
            raise SupervisorClosedError(f"supervisor {self.name!r} was already started")
        self._loop = asyncio.get_running_loop()
        self._core.start(self._clock.monotonic())
        _LIVE.add(self)
        if self._handle_signals:
            self._install_signals()
        self._run_task = asyncio.create_task(self._run(), name=f"stalwart-supervisor-{self.name}")
        return self

    async def __aenter__(self) -> Supervisor:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self, code: int = NORMAL_CLOSURE, reason: str = "") -> None:
        """Close for good: stop the heartbeat and pings, send what is buffered and the
        goodbye, close with ``code``, all within ``close_timeout``; then release
        everything. Buffered messages that could not go are reported (an event and a log
        line), never dropped silently. Safe to call more than once."""
        if not self._closing:
            self._closing = True
            self._close_code = code
            self._close_reason = reason
            self._core.closing()
            self._close_task = asyncio.create_task(self._shutdown())
        if self._close_task is not None:
            await asyncio.shield(self._close_task)
        else:  # never started
            self._core.closed()
            self._done.set()

    async def wait_closed(self) -> None:
        """Wait until the supervisor has closed (a signal, or ``aclose`` elsewhere)."""
        await self._done.wait()

    async def wait_connected(self, timeout: float | None = None) -> bool:  # noqa: ASYNC109
        """Wait until a connection is open; False if ``timeout`` seconds pass first."""
        try:
            async with asyncio.timeout(timeout):
                await self._connected.wait()
        except TimeoutError:
            return False
        return True

    @property
    def state(self) -> ConnectionState:
        return self._core.state

    @property
    def connected(self) -> bool:
        return self._core.state is ConnectionState.CONNECTED

    @property
    def closed(self) -> bool:
        return self._done.is_set()

    def stats(self) -> ConnectionStats:
        """A snapshot of the connection and its counters (cheap; safe from any thread)."""
        return self._core.stats(self._clock.monotonic())

    def health_check(self) -> Callable[[], Awaitable[Any]]:
        """A check for :class:`stalwart.health.HealthRegistry`: healthy while connected to
        the primary, degraded (a warning) on a fallback, failing while disconnected."""
        from ..health._model import CheckResult

        async def connection() -> CheckResult:
            stats = self.stats()
            details = {
                "endpoint": stats.endpoint,
                "uptime": round(stats.uptime, 3),
                "reconnect_count": stats.reconnect_count,
                "buffered": stats.buffered,
            }
            if not stats.connected:
                wait = "" if stats.retry_in is None else f", next attempt in {stats.retry_in:.1f} s"
                raise ConnectionError(
                    f"not connected ({stats.state.value}, {stats.failures} failed attempts"
                    f"{wait}); last error: {stats.last_error}"
                )
            if stats.endpoint_index:
                return CheckResult.warned(
                    f"on fallback endpoint #{stats.endpoint_index} {stats.endpoint}", **details
                )
            return CheckResult.passed(**details)

        connection.component_type = "connection"  # type: ignore[attr-defined]
        return connection

    # -- messages ------------------------------------------------------------------------

    async def send(self, message: Any) -> None:
        """Send ``message`` now if connected, else hold it until the next connection.

        Raises :class:`OutboxFull` when the buffer is full under ``overflow="reject"``,
        :class:`SupervisorClosedError` once closing, TypeError if the codec cannot encode
        it. A message written when the connection dies may be lost in flight: see the
        docs for acknowledging messages."""
        if self._closing:
            raise SupervisorClosedError(f"supervisor {self.name!r} is closed")
        data = self._encode(message)
        link = self._link
        core = self._core
        while link is not None and (self._flushing or core.outbox):
            # Connected, but the buffer goes first: wait for it to drain rather than pile
            # on (a tight send loop right after connecting would otherwise fill it).
            await self._drained.wait()
            if self._closing:  # closed while it waited: the goodbye may have gone already
                raise SupervisorClosedError(f"supervisor {self.name!r} is closed")
            link = self._link
            if link is not None and not self._flushing and core.outbox:
                self.send_nowait(message)  # something was left behind: queue after it
                return
        if link is None:
            core.buffer(self._clock.monotonic(), data)
            return
        try:
            await link.send(data)
        except (TypeError, ValueError):
            raise  # the transport refused this message (a newline in a TCP line, say)
        except Exception as exc:
            # Not written: it goes first on the next connection.
            core.outbox.appendleft(data)
            self._lose(link, _describe(exc), getattr(exc, "code", None))
            return
        core.sent(size(data))

    def send_nowait(self, message: Any) -> None:
        """Queue ``message`` behind anything buffered; it goes out as soon as possible."""
        if self._closing:
            raise SupervisorClosedError(f"supervisor {self.name!r} is closed")
        data = self._encode(message)
        self._core.buffer(self._clock.monotonic(), data)
        link = self._link
        if link is not None and not self._flushing and self._loop is not None:
            self._flushing = True
            self._loop.create_task(self._flush_task(link))

    @property
    def _flushing(self) -> bool:
        """True while the buffer is being written out on the open link."""
        return self._flushing_now

    @_flushing.setter
    def _flushing(self, value: bool) -> None:
        self._flushing_now = value
        if value:
            self._drained.clear()
        else:
            self._drained.set()

    def _encode(self, message: Any) -> str | bytes:
        data = encode(self._codec, message)
        if self._validate is not None:
            self._validate(data)  # refused now, not buffered for a link that cannot carry it
        return data

    async def recv(self) -> Any:
        """The next message received (waits across reconnects); raises
        :class:`SupervisorClosedError` once closed and nothing is left."""
        try:
            return await self._inbox.get()
        except StopAsyncIteration:
            raise SupervisorClosedError(f"supervisor {self.name!r} is closed") from None

    def __aiter__(self) -> Supervisor:
        return self

    async def __anext__(self) -> Any:
        return await self._inbox.get()

    # -- the run task --------------------------------------------------------------------

    async def _run(self) -> None:
        core = self._core
        clock = self._clock
        delay = 0.0
        while not self._closing:
            if delay > 0:
                await clock.asleep(delay)
                delay = 0.0
                continue  # closed while waiting? the loop's test says
            index = core.endpoint_index
            breaker = self._breakers[index] if self._breakers else None
            core.connecting(clock.monotonic())
            try:
                link = await self._open(core.endpoint(), breaker)
            except CircuitOpenError as exc:
                delay = core.skipped(clock.monotonic(), exc.retry_in).delay
                continue
            except Exception as exc:
                delay = core.connect_failed(clock.monotonic(), _describe(exc)).delay
                continue
            delay = await self._session(link)

    async def _open(self, endpoint: str, breaker: CircuitBreaker | None) -> Link:
        async def attempt() -> Link:
            async with asyncio.timeout(self.settings.connect_timeout):
                return await self.transport.connect(endpoint)

        if breaker is None:
            return await attempt()
        return await breaker.acall(attempt)

    async def _session(self, link: Link) -> float:
        """Serve one open connection until it ends; returns the delay before the next try."""
        core = self._core
        clock = self._clock
        lost = self._lost = asyncio.Event()
        self._lost_reason = ("", None)
        self._flushing = True
        self._link = link
        core.connected(clock.monotonic())
        self._connected.set()
        tasks = [
            asyncio.create_task(self._read(link)),
            asyncio.create_task(self._watch(link)),
            asyncio.create_task(self._greet(link)),
        ]
        graceful = False
        try:
            await lost.wait()
            if self._closing:
                tasks[1].cancel()  # no heartbeat or ping from here on
                graceful = await self._goodbye_on(link, tasks[2])
                return 0.0
        finally:
            self._link = None
            self._lost = None
            self._flushing = False
            self._connected.clear()
            for task in tasks:
                task.cancel()
            for task in tasks:
                with contextlib.suppress(BaseException):
                    await task
            if not graceful:
                link.abort()
        reason, code = self._lost_reason
        return core.disconnected(clock.monotonic(), reason, code).delay

    def _lose(self, link: Link, reason: str, code: int | None = None) -> None:
        """End the session of ``link`` (first reason wins)."""
        lost = self._lost
        if lost is None or self._link is not link or lost.is_set():
            return
        self._lost_reason = (reason, code)
        lost.set()

    async def _greet(self, link: Link) -> None:
        try:
            if self._hello is not None:
                hello = await _evaluate(self._hello)
                if hello is not None:
                    await self._write(link, encode(self._codec, hello))
            if self._on_connect is not None:
                result = self._on_connect(self)
                if inspect.isawaitable(result):
                    await result
            await self._flush(link)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self._lose(link, _describe(exc), getattr(exc, "code", None))

    async def _flush_task(self, link: Link) -> None:
        try:
            await self._flush(link)
        except Exception as exc:
            self._lose(link, _describe(exc), getattr(exc, "code", None))

    async def _flush(self, link: Link) -> None:
        # Messages leave the buffer only once written; a failure keeps them for the next try.
        outbox = self._core.outbox
        try:
            while outbox and self._link is link:
                data = outbox[0]
                try:
                    await link.send(data)
                except (TypeError, ValueError) as exc:
                    # The link refuses this message: it never will take it, so say so
                    # and go on with the next rather than lose the connection over it.
                    if outbox and outbox[0] is data:
                        self._core.refused(self._clock.monotonic(), f"refused: {exc}")
                    continue
                if outbox and outbox[0] is data:
                    outbox.popleft()
                self._core.sent(size(data))
        finally:
            if self._link is link:
                self._flushing = False

    async def _write(self, link: Link, data: str | bytes) -> None:
        await link.send(data)
        self._core.sent(size(data))

    async def _read(self, link: Link) -> None:
        core = self._core
        monotonic = self._clock.monotonic
        codec = self._codec
        inbox = self._inbox
        on_message = self._on_message
        try:
            while True:
                data = await link.recv()
                core.received(monotonic(), size(data))
                message = decode(codec, data)
                if on_message is not None:
                    try:
                        result = on_message(message)
                        if inspect.isawaitable(result):
                            await result
                    except Exception:
                        _log.exception("%s: on_message failed on %.200r", self.name, message)
                elif not inbox.offer(message):
                    core.reader_blocked = True
                    await inbox.put(message)
                    core.unblocked(monotonic())
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self._lose(link, _describe(exc), getattr(exc, "code", None))

    async def _watch(self, link: Link) -> None:
        core = self._core
        clock = self._clock
        pongs: list[asyncio.Task[None]] = []
        try:
            while True:
                actions, dead, wake = core.due(clock.monotonic())
                if dead is not None:
                    self._lose(link, f"peer unresponsive ({dead} timeout)")
                    return
                for action in actions:
                    if action == "heartbeat":
                        await self._beat(link)
                    else:
                        waiter = await link.ping()
                        if waiter is None:
                            core.no_pings()
                        else:
                            pongs = [p for p in pongs if not p.done()]
                            pongs.append(asyncio.create_task(self._pong(waiter)))
                if wake is None:
                    return
                await clock.asleep(max(0.0, wake - clock.monotonic()))
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self._lose(link, _describe(exc), getattr(exc, "code", None))
        finally:
            for p in pongs:
                p.cancel()

    async def _pong(self, waiter: Awaitable[float]) -> None:
        with contextlib.suppress(Exception):
            self._core.pong(float(await waiter))

    async def _beat(self, link: Link) -> None:
        try:
            payload = await _evaluate(self._heartbeat)
        except Exception:
            _log.exception("%s: the heartbeat payload function failed; skipping one", self.name)
            return
        if payload is None:
            payload = {"type": "heartbeat", "timestamp": int(self._clock.time() * 1000)}
        await self._write(link, encode(self._codec, payload))
        self._core.heartbeat_sent()

    # -- shutdown ------------------------------------------------------------------------

    async def _shutdown(self) -> None:
        try:
            lost = self._lost
            if lost is not None and self._run_task is not None:
                lost.set()  # the session says goodbye and returns
                with contextlib.suppress(BaseException):
                    await self._run_task
            elif self._run_task is not None:
                self._run_task.cancel()
                with contextlib.suppress(BaseException):
                    await self._run_task
        finally:
            now = self._clock.monotonic()
            unsent = self._core.abandon(now, "the supervisor closed before they could be sent")
            if unsent:
                _log.warning(
                    "%s: closed with %d message(s) unsent (see MessagesDropped)", self.name, unsent
                )
            self._core.closed()
            self._inbox.close()
            self._restore_signals()
            _LIVE.discard(self)
            self._emit(
                SupervisorClosed(
                    name=self.name,
                    strategy="supervisor",
                    at=now,
                    endpoint=None,
                    code=self._close_code,
                    unsent=unsent,
                )
            )
            self._done.set()

    async def _goodbye_on(self, link: Link, greeting: asyncio.Task[None]) -> bool:
        """The graceful end of an open connection; True if the close handshake finished."""
        core = self._core
        code = self._close_code
        try:
            async with asyncio.timeout(0 if self._hurry else self.settings.close_timeout):
                with contextlib.suppress(asyncio.CancelledError):
                    await greeting  # hello and the buffered messages first, in order
                await self._flush(link)
                if self._goodbye is not None:
                    goodbye = await _evaluate(self._goodbye)
                    if goodbye is not None:
                        await self._write(link, encode(self._codec, goodbye))
                await link.close(code, self._close_reason)
        except Exception as exc:
            core.closed_by_us(
                self._clock.monotonic(), f"closed, not gracefully: {_describe(exc)}", code
            )
            return False
        core.closed_by_us(self._clock.monotonic(), "closed by us", code)
        return True

    # -- signals -------------------------------------------------------------------------

    def _install_signals(self) -> None:
        loop = self._loop
        assert loop is not None
        installed = []
        for signum in (signal.SIGINT, signal.SIGTERM):
            try:
                loop.add_signal_handler(signum, self._signalled, signum)
            except (NotImplementedError, RuntimeError, ValueError):
                continue  # not the main thread, or a platform without them
            installed.append(int(signum))
        self._signals = tuple(installed)

    def _signalled(self, signum: int) -> None:
        name = signal.Signals(signum).name
        if self._closing:
            _log.warning("%s: %s again: closing at once", self.name, name)
            self._hurry = True
            link = self._link
            if link is not None:
                link.abort()
            return
        _log.info("%s: %s: closing gracefully (a second one closes at once)", self.name, name)
        self._signal_close = asyncio.ensure_future(self.aclose(GOING_AWAY, "shutdown"))

    def _restore_signals(self) -> None:
        loop = self._loop
        for signum in self._signals:
            with contextlib.suppress(Exception):
                assert loop is not None
                loop.remove_signal_handler(signum)
        self._signals = ()

    # -- events --------------------------------------------------------------------------

    def _emit(self, event: Event) -> None:
        _log_event(event)
        self._hub.emit(event)

    def __repr__(self) -> str:
        return f"<Supervisor {self.name!r} {self._core.state.value}>"


class _Mailbox:
    """A bounded FIFO of received messages that can be closed (``asyncio.Queue`` cannot
    before 3.13): ``get`` then ends the iteration once it is empty."""

    __slots__ = ("_closed", "_getters", "_items", "_maxsize", "_putters")

    def __init__(self, maxsize: int) -> None:
        self._items: deque[Any] = deque()
        self._maxsize = maxsize
        self._getters: deque[asyncio.Future[None]] = deque()
        self._putters: deque[asyncio.Future[None]] = deque()
        self._closed = False

    def offer(self, item: Any) -> bool:
        """Add ``item`` if there is room; False if the reader must wait (``put``)."""
        if len(self._items) >= self._maxsize and not self._closed:
            return False
        self._items.append(item)
        _wake(self._getters)
        return True

    async def put(self, item: Any) -> None:
        while len(self._items) >= self._maxsize and not self._closed:
            waiter = asyncio.get_running_loop().create_future()
            self._putters.append(waiter)
            try:
                await waiter
            except asyncio.CancelledError:
                _drop(self._putters, waiter)
                raise
        self._items.append(item)
        _wake(self._getters)

    async def get(self) -> Any:
        while not self._items:
            if self._closed:
                raise StopAsyncIteration
            waiter = asyncio.get_running_loop().create_future()
            self._getters.append(waiter)
            try:
                await waiter
            except asyncio.CancelledError:
                if not _drop(self._getters, waiter) and self._items:
                    _wake(self._getters)  # it was woken for an item it will not take
                raise
        item = self._items.popleft()
        _wake(self._putters)
        return item

    def close(self) -> None:
        self._closed = True
        for waiters in (self._getters, self._putters):
            while waiters:
                waiter = waiters.popleft()
                if not waiter.done():
                    waiter.set_result(None)


def _wake(waiters: deque[asyncio.Future[None]]) -> None:
    while waiters:
        waiter = waiters.popleft()
        if not waiter.done():
            waiter.set_result(None)
            return


def _drop(waiters: deque[asyncio.Future[None]], waiter: asyncio.Future[None]) -> bool:
    try:
        waiters.remove(waiter)
    except ValueError:
        return False
    return True


async def _evaluate(source: MessageSource) -> Any:
    if callable(source):
        value = source()
        if inspect.isawaitable(value):
            value = await value
        return value
    return source


def _describe(exc: BaseException) -> str:
    if isinstance(exc, LinkClosed):
        return exc.reason
    if isinstance(exc, TimeoutError):
        return "timed out"
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _transport_for(endpoints: tuple[str, ...], transport: Transport | None) -> Transport:
    if transport is None:
        schemes = {e.partition(":")[0].lower() for e in endpoints}
        if schemes <= {"ws", "wss"}:
            transport = WebSocketTransport()
        elif schemes == {"tcp"}:
            transport = TcpTransport()
        else:
            raise ConfigError(
                "endpoints",
                "must all be ws:// or wss:// URLs, or all tcp://host:port (or pass transport=), "
                f"got {', '.join(public_endpoint(e) for e in endpoints)}",
            )
    elif not (callable(getattr(transport, "connect", None)) and hasattr(transport, "check")):
        raise ConfigError(
            "transport", f"must implement stalwart.supervisor.Transport, got {transport!r}"
        )
    for i, endpoint in enumerate(endpoints):
        try:
            transport.check(endpoint)
        except ConfigError as exc:
            raise ConfigError(f"endpoints[{i}]", exc.problem) from exc
    return transport


def _breakers(
    name: str, endpoints: tuple[str, ...], given: Any
) -> tuple[CircuitBreaker, ...] | None:
    """One breaker per endpoint, or None (``breakers=False``)."""
    if given is False or given is None:
        return None
    if given is True:
        return tuple(
            CircuitBreaker(
                f"{name}:{public_endpoint(e)}", failure_threshold=3, recovery_timeout=30.0
            )
            for e in endpoints
        )
    if isinstance(given, Mapping):
        found = []
        for e in endpoints:
            breaker = given.get(e)
            if not isinstance(breaker, CircuitBreaker):
                raise ConfigError("breakers", f"has no CircuitBreaker for {public_endpoint(e)!r}")
            found.append(breaker)
        return tuple(found)
    if callable(given):
        made = tuple(given(e) for e in endpoints)
        for breaker in made:
            if not isinstance(breaker, CircuitBreaker):
                raise ConfigError(
                    "breakers", f"the factory returned {breaker!r}, not a CircuitBreaker"
                )
        return made
    raise ConfigError(
        "breakers",
        f"must be True, False, a mapping of endpoint to breaker or a factory, got {given!r}",
    )


def _log_event(event: Event) -> None:
    # The seed's log lines: one per transition, never one per message.
    if isinstance(event, Connecting):
        _log.info("%s: connecting to %s (attempt %d)", event.name, event.endpoint, event.attempt)
    elif isinstance(event, Connected):
        where = "fallback " if event.fallback else ""
        _log.info("%s: connected to %s%s", event.name, where, event.endpoint)
    elif isinstance(event, ConnectFailed):
        _log.warning("%s: could not connect to %s: %s", event.name, event.endpoint, event.error)
    elif isinstance(event, EndpointSkipped):
        _log.info("%s: skipping %s (its breaker is open)", event.name, event.endpoint)
    elif isinstance(event, ReconnectScheduled):
        _log.warning(
            "%s: every endpoint failed (%d in a row); next attempt in %.1f s",
            event.name,
            event.failures,
            event.delay,
        )
    elif isinstance(event, Disconnected):
        _log.log(
            logging.INFO if event.by_us else logging.WARNING,
            "%s: disconnected from %s after %.1f s: %s",
            event.name,
            event.endpoint,
            event.uptime,
            event.reason,
        )
    elif isinstance(event, PeerUnresponsive):
        _log.warning(
            "%s: %s is unresponsive (%s, silent for %.1f s)",
            event.name,
            event.endpoint,
            event.cause,
            event.silent_for,
        )
    elif isinstance(event, MessagesDropped):
        _log.warning(
            "%s: %d outbound message(s) dropped: %s", event.name, event.count, event.reason
        )
