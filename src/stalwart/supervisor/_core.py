"""What a supervised connection decides, without doing any I/O.

:class:`SupervisorCore` holds the rules of seed 004's agent as plain state: which endpoint
to try next (in order, wrapping), how long to wait after a round in which every endpoint
failed (the backoff series, reset once a connection has stayed up), when a heartbeat or a
ping is due, when the peer counts as dead, the bounded outbound buffer and its overflow
policy, and the statistics. Every method takes the time it should act at, read by the
driver from its :class:`~stalwart.Clock`; the core never reads a clock, sleeps or awaits,
so tests drive it with a ``FakeClock`` and no network.
"""

from __future__ import annotations

import enum
import math
import random
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, TypeAlias
from urllib.parse import urlsplit, urlunsplit

from .._backoff import Backoff
from .._errors import ConfigError, Rejected
from .._events import Event
from .._validate import optional_positive, positive, whole
from ._events import (
    Connected,
    ConnectFailed,
    Connecting,
    Disconnected,
    EndpointSkipped,
    MessagesDropped,
    PeerUnresponsive,
    ReconnectScheduled,
    SupervisorEvent,
)

__all__ = (
    "DEFAULT_CLOSE_TIMEOUT",
    "DEFAULT_CONNECT_TIMEOUT",
    "DEFAULT_MAX_BUFFER",
    "DEFAULT_MAX_INBOX",
    "DEFAULT_PING_INTERVAL",
    "DEFAULT_RESET_AFTER",
    "OVERFLOW_POLICIES",
    "ConnectionState",
    "ConnectionStats",
    "OutboxFull",
    "Overflow",
    "SupervisorCore",
    "SupervisorSettings",
    "public_endpoint",
)

DEFAULT_CONNECT_TIMEOUT = 10.0
"""Seconds an attempt may take to open (TCP, TLS and the handshake) before it fails."""
DEFAULT_PING_INTERVAL = 20.0
"""Seconds between WebSocket pings (seed 004, and the websockets library's default)."""
DEFAULT_CLOSE_TIMEOUT = 5.0
"""Seconds the graceful close may take (flush, goodbye, close handshake) before aborting."""
DEFAULT_RESET_AFTER = 10.0
"""Seconds a connection must stay up before the backoff starts again from its first
delay: a server that accepts and drops at once still gets backed off."""
DEFAULT_MAX_BUFFER = 1000
"""Outbound messages held while reconnecting."""
DEFAULT_MAX_INBOX = 1000
"""Received messages held for the application before the reader stops reading."""

Overflow: TypeAlias = Literal["reject", "drop_oldest"]
OVERFLOW_POLICIES: tuple[Overflow, ...] = ("reject", "drop_oldest")

Payload: TypeAlias = str | bytes


class ConnectionState(enum.Enum):
    """Where a supervised connection is."""

    IDLE = "idle"
    """Not started."""
    CONNECTING = "connecting"
    CONNECTED = "connected"
    WAITING = "waiting"
    """Every endpoint failed this round: waiting out a backoff delay."""
    CLOSING = "closing"
    CLOSED = "closed"


class OutboxFull(Rejected):
    """``send`` while reconnecting found the outbound buffer full (``overflow="reject"``);
    the message was not taken. ``retry_in``: None (it depends on the reconnect)."""


def public_endpoint(url: str) -> str:
    """``url`` without credentials, query or fragment: safe to log, show and label with."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        port = parts.port
    except ValueError:
        return "<invalid url>"
    if ":" in host:
        host = f"[{host}]"
    netloc = host if port is None else f"{host}:{port}"
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


@dataclass(frozen=True, slots=True, kw_only=True)
class SupervisorSettings:
    """The validated settings of a supervisor (see :class:`~stalwart.supervisor.Supervisor`)."""

    endpoints: tuple[str, ...]
    connect_timeout: float = DEFAULT_CONNECT_TIMEOUT
    heartbeat_interval: float | None = None
    dead_after: float | None = None
    ping_interval: float | None = DEFAULT_PING_INTERVAL
    ping_timeout: float | None = None
    """Seconds to wait for a pong (default: ``ping_interval``)."""
    close_timeout: float = DEFAULT_CLOSE_TIMEOUT
    reset_after: float = DEFAULT_RESET_AFTER
    backoff: Backoff = field(default_factory=Backoff)
    max_buffer: int = DEFAULT_MAX_BUFFER
    overflow: Overflow = "reject"
    max_inbox: int = DEFAULT_MAX_INBOX

    def __post_init__(self) -> None:
        endpoints: Any = self.endpoints
        if isinstance(endpoints, str | bytes) or not isinstance(endpoints, Sequence):
            raise ConfigError("endpoints", f"must be a list of URLs, got {endpoints!r}")
        if not endpoints:
            raise ConfigError("endpoints", "must name at least one endpoint")
        for i, url in enumerate(endpoints):
            if not isinstance(url, str) or not url.strip():
                raise ConfigError(f"endpoints[{i}]", f"must be a non-empty string, got {url!r}")
        if len(set(endpoints)) != len(endpoints):
            raise ConfigError("endpoints", "lists the same endpoint twice")
        positive("connect_timeout", self.connect_timeout)
        optional_positive("heartbeat_interval", self.heartbeat_interval)
        optional_positive("dead_after", self.dead_after)
        optional_positive("ping_interval", self.ping_interval)
        optional_positive("ping_timeout", self.ping_timeout)
        if self.ping_timeout is not None and self.ping_interval is None:
            raise ConfigError("ping_timeout", "needs ping_interval: no pings are sent without it")
        positive("close_timeout", self.close_timeout)
        positive("reset_after", self.reset_after, allow_zero=True)
        if not isinstance(self.backoff, Backoff):
            raise ConfigError(
                "backoff", f"must be a stalwart.Backoff (or a preset), got {self.backoff!r}"
            )
        whole("max_buffer", self.max_buffer, minimum=0)
        if self.overflow not in OVERFLOW_POLICIES:
            raise ConfigError(
                "overflow", f"must be one of {', '.join(OVERFLOW_POLICIES)}, got {self.overflow!r}"
            )
        whole("max_inbox", self.max_inbox)

    @property
    def effective_ping_timeout(self) -> float | None:
        if self.ping_interval is None:
            return None
        return self.ping_interval if self.ping_timeout is None else self.ping_timeout


@dataclass(frozen=True, slots=True, kw_only=True)
class ConnectionStats:
    """A snapshot of one supervised connection. Times are wall-clock Unix seconds."""

    name: str
    state: ConnectionState
    endpoint: str | None
    """The endpoint connected to, or being tried (scrubbed of credentials and query)."""
    endpoint_index: int | None
    connected: bool
    connected_at: float | None
    last_message_at: float | None
    """When the last message arrived (on any connection)."""
    reconnect_count: int
    """Connections opened after the first."""
    messages_sent: int
    messages_received: int
    bytes_sent: int
    bytes_received: int
    uptime: float
    """Seconds the current connection has been open (0 while disconnected)."""
    total_uptime: float
    attempts: int
    """Connection attempts in all."""
    failures: int
    """Failed attempts since the last connection that stayed up."""
    retry_in: float | None
    """Seconds until the next attempt, while waiting out a backoff delay."""
    last_error: str | None
    buffered: int
    """Outbound messages waiting for a connection."""
    dropped: int
    """Outbound messages dropped from a full buffer or left unsent at close."""
    heartbeats_sent: int
    ping_rtt: float | None
    """Seconds the last ping took to be answered."""
    started_at: float | None
    endpoints: tuple[str, ...]

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "state": self.state.value,
            "endpoint": self.endpoint,
            "endpoint_index": self.endpoint_index,
            "connected": self.connected,
            "connected_at": self.connected_at,
            "last_message_at": self.last_message_at,
            "reconnect_count": self.reconnect_count,
            "messages_sent": self.messages_sent,
            "messages_received": self.messages_received,
            "bytes_sent": self.bytes_sent,
            "bytes_received": self.bytes_received,
            "uptime": self.uptime,
            "total_uptime": self.total_uptime,
            "attempts": self.attempts,
            "failures": self.failures,
            "retry_in": self.retry_in,
            "last_error": self.last_error,
            "buffered": self.buffered,
            "dropped": self.dropped,
            "heartbeats_sent": self.heartbeats_sent,
            "ping_rtt": self.ping_rtt,
            "started_at": self.started_at,
            "endpoints": list(self.endpoints),
        }


@dataclass(frozen=True, slots=True)
class Attempt:
    """The next thing to do: wait ``delay`` seconds, then try endpoint ``index``."""

    index: int
    delay: float


Action: TypeAlias = Literal["heartbeat", "ping"]


class SupervisorCore:
    """The decisions and the counters of one supervised connection (see the module doc).

    Single-threaded: the async driver calls it from its event loop only; ``stats`` may be
    read from other threads (it only reads numbers).
    """

    def __init__(
        self,
        name: str,
        settings: SupervisorSettings,
        *,
        emit: Callable[[Event], None],
        wall_offset: Callable[[], float],
        rng: random.Random | None = None,
    ) -> None:
        self.name = name
        self.settings = settings
        self._emit = emit
        self._wall_offset = wall_offset  # wall time minus monotonic time, for display
        self._series = settings.backoff.delays(rng)
        self._public = tuple(public_endpoint(url) for url in settings.endpoints)
        self.state = ConnectionState.IDLE
        self._index = 0
        self._round_failures = 0
        self._round_tried = False
        self._skip_floor = math.inf
        self.failures = 0
        self.attempts = 0
        self.connections = 0
        self.last_error: str | None = None
        self._opened_at: float | None = None
        self._started_at: float | None = None
        self._wait_until: float | None = None
        self._uptime_before = 0.0
        # traffic
        self.messages_sent = 0
        self.messages_received = 0
        self.bytes_sent = 0
        self.bytes_received = 0
        self.heartbeats_sent = 0
        self._last_rx: float | None = None
        # liveness of the current connection
        self._silent_since = 0.0
        self._next_heartbeat: float | None = None
        self._next_ping: float | None = None
        self._ping_out: float | None = None
        self.ping_rtt: float | None = None
        self.reader_blocked = False
        # outbound buffer
        self.outbox: deque[Payload] = deque()
        self.dropped = 0

    # -- endpoints and backoff -----------------------------------------------------------

    @property
    def endpoint_index(self) -> int:
        return self._index

    def endpoint(self, index: int | None = None) -> str:
        return self.settings.endpoints[self._index if index is None else index]

    def public(self, index: int | None = None) -> str:
        return self._public[self._index if index is None else index]

    def start(self, now: float) -> None:
        self._started_at = now

    def connecting(self, now: float) -> int:
        """An attempt on the current endpoint begins; returns its index."""
        self.state = ConnectionState.CONNECTING
        self._wait_until = None
        self.attempts += 1
        self._event(Connecting, now, attempt=self.failures + 1)
        return self._index

    def connected(self, now: float) -> None:
        self.state = ConnectionState.CONNECTED
        self._opened_at = now
        self.connections += 1
        self.last_error = None
        self._silent_since = now
        self.reader_blocked = False
        self._ping_out = None
        s = self.settings
        self._next_heartbeat = None if s.heartbeat_interval is None else now + s.heartbeat_interval
        self._next_ping = None if s.ping_interval is None else now + s.ping_interval
        self._event(
            Connected,
            now,
            attempt=self.failures + 1,
            reconnect=self.connections > 1,
            fallback=self._index != 0,
        )

    def connect_failed(self, now: float, error: str) -> Attempt:
        """The attempt failed; returns what to do next."""
        self.last_error = error
        self._event(ConnectFailed, now, attempt=self.failures + 1, error=error)
        return self._failed(now)

    def skipped(self, now: float, retry_in: float | None) -> Attempt:
        """The current endpoint's breaker refused the attempt."""
        self._event(EndpointSkipped, now, retry_in=retry_in)
        return self._failed(now, skipped_for=0.0 if retry_in is None else retry_in)

    def disconnected(self, now: float, reason: str, code: int | None = None) -> Attempt:
        """The open connection ended (for any reason but our own close)."""
        uptime = self._close_connection(now)
        self.last_error = reason
        self._event(Disconnected, now, reason=reason, code=code, uptime=uptime)
        if uptime >= self.settings.reset_after:
            self._stable()
        return self._failed(now)

    def closed_by_us(self, now: float, reason: str, code: int | None) -> None:
        uptime = self._close_connection(now)
        self._event(Disconnected, now, reason=reason, code=code, uptime=uptime, by_us=True)

    def closing(self) -> None:
        self.state = ConnectionState.CLOSING
        self._wait_until = None

    def closed(self) -> None:
        self.state = ConnectionState.CLOSED

    def _close_connection(self, now: float) -> float:
        opened = self._opened_at
        uptime = 0.0 if opened is None else max(0.0, now - opened)
        self._uptime_before += uptime
        self._opened_at = None
        self._next_heartbeat = self._next_ping = self._ping_out = None
        return uptime

    def _stable(self) -> None:
        self.failures = 0
        self._round_failures = 0
        self._round_tried = False
        self._skip_floor = math.inf
        self._series.reset()

    def _failed(self, now: float, *, skipped_for: float | None = None) -> Attempt:
        # Fail over at once to the next endpoint; wait only after a whole round failed.
        self.failures += 1
        self._round_failures += 1
        if skipped_for is None:
            self._round_tried = True
        else:
            self._skip_floor = min(self._skip_floor, skipped_for)
        self._index = (self._index + 1) % len(self.settings.endpoints)
        delay = 0.0
        if self._round_failures >= len(self.settings.endpoints):
            delay = next(self._series)
            if not self._round_tried:
                # Every breaker was open: nothing is worth trying before one may let through.
                delay = max(delay, self._skip_floor)
            self._round_failures = 0
            self._round_tried = False
            self._skip_floor = math.inf
            self.state = ConnectionState.WAITING
            self._wait_until = now + delay
            self._event(ReconnectScheduled, now, delay=delay, failures=self.failures)
        return Attempt(self._index, delay)

    # -- traffic -------------------------------------------------------------------------

    def sent(self, size: int) -> None:
        self.messages_sent += 1
        self.bytes_sent += size

    def received(self, now: float, size: int) -> None:
        self.messages_received += 1
        self.bytes_received += size
        self._last_rx = now
        self._silent_since = now

    def unblocked(self, now: float) -> None:
        """The reader could hand its message over at last: silence counts from now."""
        self.reader_blocked = False
        self._silent_since = max(self._silent_since, now)

    # -- liveness ------------------------------------------------------------------------

    def due(self, now: float) -> tuple[list[Action], str | None, float | None]:
        """What the connection needs at ``now``: actions to take, a cause if the peer is
        to be declared dead (``"ping"`` or ``"silence"``), and when to look again."""
        if self.state is not ConnectionState.CONNECTED:
            return [], None, None
        s = self.settings
        ping_timeout = s.effective_ping_timeout
        if (
            self._ping_out is not None
            and ping_timeout is not None
            and now - self._ping_out >= ping_timeout
        ):
            return [], self._dead(now, "ping", now - self._ping_out), None
        if (
            s.dead_after is not None
            and not self.reader_blocked
            and now - self._silent_since >= s.dead_after
        ):
            return [], self._dead(now, "silence", now - self._silent_since), None
        actions: list[Action] = []
        if self._next_heartbeat is not None and now >= self._next_heartbeat:
            actions.append("heartbeat")
            self._next_heartbeat = _after(self._next_heartbeat, s.heartbeat_interval, now)
        if self._next_ping is not None and now >= self._next_ping and self._ping_out is None:
            actions.append("ping")
            self._ping_out = now
            self._next_ping = _after(self._next_ping, s.ping_interval, now)
        wakes = [self._next_heartbeat, self._next_ping]
        if self._ping_out is not None and ping_timeout is not None:
            wakes.append(self._ping_out + ping_timeout)
        if s.dead_after is not None:
            wakes.append(self._silent_since + s.dead_after)
        upcoming = [w for w in wakes if w is not None]
        return actions, None, min(upcoming) if upcoming else None

    def _dead(self, now: float, cause: str, silent_for: float) -> str:
        self._event(PeerUnresponsive, now, cause=cause, silent_for=silent_for)
        return cause

    def heartbeat_sent(self) -> None:
        self.heartbeats_sent += 1

    def no_pings(self) -> None:
        """The transport has no ping (plain TCP): stop asking for them on this connection."""
        self._next_ping = None
        self._ping_out = None

    def pong(self, rtt: float) -> None:
        self._ping_out = None
        self.ping_rtt = rtt

    # -- outbound buffer -----------------------------------------------------------------

    def buffer(self, now: float, data: Payload) -> None:
        """Hold ``data`` until a connection is open, under the overflow policy."""
        s = self.settings
        if len(self.outbox) >= s.max_buffer:
            if s.overflow == "reject" or s.max_buffer == 0:
                raise OutboxFull(
                    self.name, None, f"the outbound buffer is full ({s.max_buffer} messages)"
                )
            self.outbox.popleft()
            self.dropped += 1
            self._event(MessagesDropped, now, count=1, reason="outbound buffer full")
        self.outbox.append(data)

    def refused(self, now: float, reason: str) -> None:
        """The link refused the first buffered message: it is dropped, with an event."""
        self.outbox.popleft()
        self.dropped += 1
        self._event(MessagesDropped, now, count=1, reason=reason)

    def abandon(self, now: float, reason: str) -> int:
        """Give up on whatever is still buffered (the supervisor closes); returns the count."""
        count = len(self.outbox)
        if count:
            self.outbox.clear()
            self.dropped += count
            self._event(MessagesDropped, now, count=count, reason=reason)
        return count

    # -- reporting -----------------------------------------------------------------------

    def stats(self, now: float) -> ConnectionStats:
        offset = self._wall_offset()
        opened = self._opened_at
        uptime = 0.0 if opened is None else max(0.0, now - opened)
        failures = self.failures
        if uptime >= self.settings.reset_after:
            failures = 0  # the series resets at the next disconnect; show it already
        waiting = self._wait_until
        state = self.state
        index = self._index if state is not ConnectionState.IDLE else None
        return ConnectionStats(
            name=self.name,
            state=state,
            endpoint=None if index is None else self._public[index],
            endpoint_index=index,
            connected=opened is not None,
            connected_at=None if opened is None else opened + offset,
            last_message_at=None if self._last_rx is None else self._last_rx + offset,
            reconnect_count=max(0, self.connections - 1),
            messages_sent=self.messages_sent,
            messages_received=self.messages_received,
            bytes_sent=self.bytes_sent,
            bytes_received=self.bytes_received,
            uptime=uptime,
            total_uptime=self._uptime_before + uptime,
            attempts=self.attempts,
            failures=failures,
            retry_in=None if waiting is None else max(0.0, waiting - now),
            last_error=self.last_error,
            buffered=len(self.outbox),
            dropped=self.dropped,
            heartbeats_sent=self.heartbeats_sent,
            ping_rtt=self.ping_rtt,
            started_at=None if self._started_at is None else self._started_at + offset,
            endpoints=self._public,
        )

    def _event(self, kind: type[SupervisorEvent], now: float, **fields: Any) -> None:
        self._emit(
            kind(
                name=self.name,
                strategy="supervisor",
                at=now,
                endpoint=self._public[self._index],
                **fields,
            )
        )


def _after(last: float, interval: float | None, now: float) -> float:
    """The next tick of a period after ``now``, skipping ticks missed (no bursts)."""
    assert interval is not None
    due = last + interval
    if due <= now:
        due = now + interval
    return due
