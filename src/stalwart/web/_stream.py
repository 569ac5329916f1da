"""Server-sent events of state changes, fanned out to bounded per-client queues.

:class:`EventStream` listens to stalwart's events (breaker ``StateTransition`` and the
health registry's changes) only while someone is subscribed, formats each event once (a
full and a redacted frame), and offers it to every :class:`Subscriber`. A subscriber whose
queue is full is dropped (its stream ends) rather than slowing anyone down. Events may come
from any thread; the transports (ASGI, WSGI) wake their writer through ``wake``.
"""

from __future__ import annotations

import itertools
import json
import re
import threading
from collections import deque
from collections.abc import Callable
from typing import Any

from .._errors import ConfigError
from .._events import Event, StateTransition, add_listener, remove_listener
from .._validate import positive, whole
from ._core import jsonable

__all__ = (
    "DEFAULT_HEARTBEAT",
    "DEFAULT_MAX_CLIENTS",
    "DEFAULT_MAX_QUEUE",
    "EventStream",
    "Subscriber",
)

DEFAULT_HEARTBEAT = 15.0
"""Seconds of silence before a comment line keeps the connection (and proxies) awake."""
DEFAULT_MAX_QUEUE = 100
"""Frames a client may have waiting; one more and it is dropped."""
DEFAULT_MAX_CLIENTS = 100
"""Event-stream clients at once; more are refused with 503 and Retry-After."""

HELLO = b": connected\nretry: 3000\n\n"
"""First bytes of every stream: the subscription is live once a client reads them."""
HEARTBEAT = b": keep-alive\n\n"

# Fields of an event that cannot hold secrets (error text, details and DSNs can).
_PUBLIC = frozenset(
    {"event", "name", "strategy", "at", "old", "new", "reason", "retry_in", "status", "critical"}
)
_CAMEL = re.compile(r"(?<!^)(?=[A-Z])")


def _kind(event: Event) -> str:
    return _CAMEL.sub("_", type(event).__name__).lower()


def _frame(number: int, kind: str, data: dict[str, Any]) -> bytes:
    text = json.dumps(jsonable(data), separators=(",", ":"))
    return f"id: {number}\nevent: {kind}\ndata: {text}\n\n".encode()


class Subscriber:
    """One client's queue of frames. ``wake`` is called (from any thread) after a put."""

    __slots__ = ("_frames", "_limit", "_lock", "dropped", "redact", "wake")

    def __init__(self, *, redact: bool, limit: int, wake: Callable[[], None]) -> None:
        self.redact = redact
        self.wake = wake
        self.dropped = False
        self._limit = limit
        self._frames: deque[bytes] = deque()
        self._lock = threading.Lock()

    def offer(self, full: bytes, redacted: bytes) -> None:
        with self._lock:
            if self.dropped:
                return
            if len(self._frames) >= self._limit:
                self.dropped = True  # a slow client must not hold memory or delay others
                self._frames.clear()
            else:
                self._frames.append(redacted if self.redact else full)
        self.wake()

    def take(self, *, idle: bool) -> bytes | None:
        """The waiting frames as one chunk; a heartbeat if ``idle`` and none wait; b"" if
        none wait yet; None once the client was dropped (end its stream)."""
        with self._lock:
            if self.dropped:
                return None
            chunk = b"".join(self._frames)
            self._frames.clear()
        return chunk or (HEARTBEAT if idle else b"")


class EventStream:
    """Fan-out of stalwart's state changes to server-sent-event clients."""

    def __init__(
        self,
        *,
        health: Any = None,
        max_queue: int = DEFAULT_MAX_QUEUE,
        heartbeat: float = DEFAULT_HEARTBEAT,
        max_clients: int = DEFAULT_MAX_CLIENTS,
    ) -> None:
        whole("max_queue", max_queue)
        positive("heartbeat", heartbeat)
        whole("max_clients", max_clients)
        if health is not None and not (
            callable(getattr(health, "add_listener", None))
            and callable(getattr(health, "remove_listener", None))
        ):
            raise ConfigError("health", f"must be a HealthRegistry or None, got {health!r}")
        self.max_queue = max_queue
        self.heartbeat = float(heartbeat)
        self.max_clients = max_clients
        self._health = health
        self._subscribers: tuple[Subscriber, ...] = ()
        self._lock = threading.Lock()
        self._ids = itertools.count(1)

    @property
    def clients(self) -> int:
        return len(self._subscribers)

    def subscribe(self, *, redact: bool, wake: Callable[[], None]) -> Subscriber | None:
        """A new client's queue, or None when ``max_clients`` are already connected."""
        sub = Subscriber(redact=redact, limit=self.max_queue, wake=wake)
        with self._lock:
            if len(self._subscribers) >= self.max_clients:
                return None
            first = not self._subscribers
            self._subscribers = (*self._subscribers, sub)
            if first:
                self._listen()
        return sub

    def unsubscribe(self, sub: Subscriber) -> None:
        with self._lock:
            before = len(self._subscribers)
            self._subscribers = tuple(s for s in self._subscribers if s is not sub)
            if before and not self._subscribers:
                self._unlisten()

    def close(self) -> None:
        """Drop every client and stop listening."""
        with self._lock:
            subs, self._subscribers = self._subscribers, ()
            if subs:
                self._unlisten()
        for sub in subs:
            with sub._lock:
                sub.dropped = True
            sub.wake()

    # Listeners are registered only while someone is connected: an idle ops app costs
    # nothing per transition. Called under the lock, so connects and leaves cannot
    # interleave a registration with a removal.
    def _listen(self) -> None:
        from ..journal._events import BatchFinished, BatchPaused, BatchResumed, BatchStarted

        add_listener(
            self.publish, StateTransition, BatchStarted, BatchPaused, BatchResumed, BatchFinished
        )
        if self._health is not None:
            self._health.add_listener(self._publish_health)

    def _unlisten(self) -> None:
        remove_listener(self.publish)
        if self._health is not None:
            self._health.remove_listener(self._publish_health)

    def publish(self, event: Event) -> None:
        """Offer ``event`` to every client (a stalwart listener)."""
        subs = self._subscribers
        if not subs:
            return
        data = event.to_dict()
        number = next(self._ids)
        kind = _kind(event)
        full = _frame(number, kind, data)
        redacted = _frame(number, kind, {k: v for k, v in data.items() if k in _PUBLIC})
        for sub in subs:
            sub.offer(full, redacted)

    def _publish_health(self, event: Event) -> None:
        # Completed runs come every interval per check: only changes are worth a push.
        if type(event).__name__ in ("HealthChanged", "CheckChanged"):
            self.publish(event)
