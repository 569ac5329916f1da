"""The events a supervisor emits to stalwart's listeners (logging, Prometheus, the ops app).

``strategy`` is ``"supervisor"`` and ``name`` the supervisor's name. Each event is one
transition of the connection, never one per message, so listening costs little.
"""

from __future__ import annotations

from dataclasses import dataclass

from .._events import Event

__all__ = (
    "ConnectFailed",
    "Connected",
    "Connecting",
    "Disconnected",
    "EndpointSkipped",
    "MessagesDropped",
    "PeerUnresponsive",
    "ReconnectScheduled",
    "SupervisorClosed",
    "SupervisorEvent",
)


@dataclass(frozen=True, slots=True, kw_only=True)
class SupervisorEvent(Event):
    """Something one supervised connection did; ``endpoint`` is scrubbed of secrets."""

    endpoint: str | None


@dataclass(frozen=True, slots=True, kw_only=True)
class Connecting(SupervisorEvent):
    """An attempt to open ``endpoint`` began (``attempt`` counts from 1 since the last
    connection that stayed up)."""

    attempt: int


@dataclass(frozen=True, slots=True, kw_only=True)
class Connected(SupervisorEvent):
    """The connection is open. ``reconnect``: not the first one of this supervisor."""

    attempt: int
    reconnect: bool
    fallback: bool
    """Not the first (primary) endpoint."""


@dataclass(frozen=True, slots=True, kw_only=True)
class ConnectFailed(SupervisorEvent):
    """An attempt failed: refused, timed out, a bad handshake."""

    attempt: int
    error: str


@dataclass(frozen=True, slots=True, kw_only=True)
class EndpointSkipped(SupervisorEvent):
    """The endpoint's breaker is open: not tried this round."""

    retry_in: float | None


@dataclass(frozen=True, slots=True, kw_only=True)
class ReconnectScheduled(SupervisorEvent):
    """Every endpoint failed this round: waiting ``delay`` seconds before the next
    (``endpoint``: the one tried next)."""

    delay: float
    failures: int
    """Failed attempts since the last connection that stayed up."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Disconnected(SupervisorEvent):
    """An open connection ended: lost, closed by the peer, declared dead, or closed by us."""

    reason: str
    code: int | None
    """The close code the peer sent (WebSocket), if any."""
    uptime: float
    """Seconds the connection was open."""
    by_us: bool = False
    """True when the supervisor closed it (``aclose`` or a signal): no reconnect follows."""


@dataclass(frozen=True, slots=True, kw_only=True)
class PeerUnresponsive(SupervisorEvent):
    """The peer was declared dead: no pong within ``ping_timeout`` (``cause="ping"``) or
    no message within ``dead_after`` (``cause="silence"``)."""

    cause: str
    silent_for: float


@dataclass(frozen=True, slots=True, kw_only=True)
class MessagesDropped(SupervisorEvent):
    """Outbound messages that will never be sent: the oldest dropped from a full buffer,
    or what was still buffered when the supervisor closed."""

    count: int
    reason: str


@dataclass(frozen=True, slots=True, kw_only=True)
class SupervisorClosed(SupervisorEvent):
    """The supervisor stopped for good; ``unsent`` buffered messages were left behind."""

    code: int
    unsent: int
