"""Long-lived connections that never give up (seed 004): failover, reconnect, liveness, stats.

:class:`Supervisor` keeps one connection open to the first of an ordered list of endpoints
that answers, wrapping around; reconnects forever with capped, jittered exponential
backoff (gRPC's by default), reset once a connection has stayed up; sends heartbeats and
pings and declares a silent peer dead; buffers what is sent while reconnecting (bounded,
with a stated overflow policy); closes gracefully (goodbye, close frame) on ``aclose`` or
SIGTERM; and reports live :class:`ConnectionStats`. WebSocket (``websockets``) and plain
TCP transports are built in; any other is a small :class:`Transport` class.
:class:`BlockingSupervisor` runs one on a background thread for synchronous code;
:func:`load_config` reads seed 004's YAML.
"""

from ._blocking import BlockingSupervisor as BlockingSupervisor
from ._config import AgentConfig as AgentConfig
from ._config import load_config as load_config
from ._config import parse_config as parse_config
from ._core import ConnectionState as ConnectionState
from ._core import ConnectionStats as ConnectionStats
from ._core import OutboxFull as OutboxFull
from ._core import SupervisorSettings as SupervisorSettings
from ._events import Connected as Connected
from ._events import ConnectFailed as ConnectFailed
from ._events import Connecting as Connecting
from ._events import Disconnected as Disconnected
from ._events import EndpointSkipped as EndpointSkipped
from ._events import MessagesDropped as MessagesDropped
from ._events import PeerUnresponsive as PeerUnresponsive
from ._events import ReconnectScheduled as ReconnectScheduled
from ._events import SupervisorClosed as SupervisorClosed
from ._events import SupervisorEvent as SupervisorEvent
from ._heartbeat import system_heartbeat as system_heartbeat
from ._supervisor import Supervisor as Supervisor
from ._supervisor import SupervisorClosedError as SupervisorClosedError
from ._supervisor import live_supervisors as live_supervisors
from ._transport import Link as Link
from ._transport import LinkClosed as LinkClosed
from ._transport import TcpTransport as TcpTransport
from ._transport import Transport as Transport
from ._transport import WebSocketTransport as WebSocketTransport

__all__ = (
    "AgentConfig",
    "BlockingSupervisor",
    "ConnectFailed",
    "Connected",
    "Connecting",
    "ConnectionState",
    "ConnectionStats",
    "Disconnected",
    "EndpointSkipped",
    "Link",
    "LinkClosed",
    "MessagesDropped",
    "OutboxFull",
    "PeerUnresponsive",
    "ReconnectScheduled",
    "Supervisor",
    "SupervisorClosed",
    "SupervisorClosedError",
    "SupervisorEvent",
    "SupervisorSettings",
    "TcpTransport",
    "Transport",
    "WebSocketTransport",
    "live_supervisors",
    "load_config",
    "parse_config",
    "system_heartbeat",
)
