"""Typed events and their delivery to listeners.

Every state change and call outcome of a strategy is a frozen event object. Listeners are
plain callables registered on one instance (``breaker.add_listener``) or globally
(``stalwart.add_listener``), optionally for some event classes only. An instance whose
hub has no listener for per-call events never builds them: the hot path pays one
attribute read.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar, overload

from ._errors import ConfigError
from ._types import State

__all__ = (
    "CallFailed",
    "CallIgnored",
    "CallRejected",
    "CallSucceeded",
    "Event",
    "EventHub",
    "Listener",
    "LoggingListener",
    "SlowCall",
    "StateTransition",
    "add_listener",
    "remove_listener",
)

_log = logging.getLogger("stalwart")


@dataclass(frozen=True, slots=True, kw_only=True)
class Event:
    """Something a strategy instance did. ``at`` is the instance clock's monotonic time."""

    name: str
    strategy: str
    at: float

    def to_dict(self) -> dict[str, Any]:
        """A JSON-friendly dict: enums become their values, exceptions their type and text."""
        out: dict[str, Any] = {"event": type(self).__name__}
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            if isinstance(value, State):
                value = value.value
            elif isinstance(value, BaseException):
                value = f"{type(value).__name__}: {value}"
            out[field.name] = value
        return out


@dataclass(frozen=True, slots=True, kw_only=True)
class StateTransition(Event):
    """The instance moved from ``old`` to ``new`` state for ``reason``."""

    old: State
    new: State
    reason: str
    retry_in: float | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class CallSucceeded(Event):
    """A permitted call ended and counted as a success."""

    duration: float


@dataclass(frozen=True, slots=True, kw_only=True)
class CallFailed(Event):
    """A permitted call ended and counted as a failure (an exception, or a value judged one)."""

    duration: float
    exception: BaseException | None = None
    retry_after: float | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class CallIgnored(Event):
    """A permitted call raised an exception that counts as neither success nor failure."""

    duration: float
    exception: BaseException


@dataclass(frozen=True, slots=True, kw_only=True)
class CallRejected(Event):
    """A call was refused without running."""

    state: State | None = None
    retry_in: float | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class SlowCall(Event):
    """A permitted call took at least ``threshold`` seconds."""

    duration: float
    threshold: float


Listener = Callable[[Event], object]
E = TypeVar("E", bound=Event)

# Events emitted once per permitted call. Wanting any of them turns an instance's
# no-listener fast path off, because they need the call timed.
PER_CALL_EVENTS: tuple[type[Event], ...] = (CallSucceeded, CallFailed, CallIgnored, SlowCall)


@dataclass(frozen=True, slots=True)
class _Subscription:
    listener: Listener
    types: tuple[type[Event], ...]

    def wants(self, cls: type[Event]) -> bool:
        return any(issubclass(cls, t) or issubclass(t, cls) for t in self.types)


def _subscription(listener: Listener, types: tuple[type[Event], ...]) -> _Subscription:
    if not callable(listener):
        raise ConfigError("listener", f"must be callable, got {listener!r}")
    # A listener may declare what it wants (LoggingListener does), so registering it
    # without types does not switch on per-call events it would only drop.
    types = types or tuple(getattr(listener, "event_types", ()))
    for t in types:
        if not (isinstance(t, type) and issubclass(t, Event)):
            raise ConfigError("types", f"must be Event subclasses, got {t!r}")
    return _Subscription(listener, types or (Event,))


class _GlobalListeners:
    """Process-wide listeners; pushes every change to the live hubs so they never poll."""

    def __init__(self) -> None:
        self.subs: tuple[_Subscription, ...] = ()
        self._hubs: weakref.WeakSet[EventHub] = weakref.WeakSet()
        self._lock = threading.Lock()

    def attach(self, hub: EventHub) -> None:
        with self._lock:
            self._hubs.add(hub)

    def change(
        self, update: Callable[[tuple[_Subscription, ...]], tuple[_Subscription, ...]]
    ) -> None:
        with self._lock:  # read-modify-write: two threads adding at once both count
            self.subs = update(self.subs)
            hubs = list(self._hubs)
        for hub in hubs:
            hub.refresh()


_GLOBAL = _GlobalListeners()


@overload
def add_listener(listener: Listener) -> None: ...
@overload
def add_listener(listener: Callable[[E], object], kind: type[E], /, *kinds: type[E]) -> None: ...
def add_listener(listener: Callable[[Any], object], *types: type[Event]) -> None:
    """Deliver events of every stalwart instance (of ``types`` only, if given) to ``listener``.

    Without types the listener gets every event, so it must accept any Event."""
    sub = _subscription(listener, types)
    _GLOBAL.change(lambda subs: (*subs, sub))


def remove_listener(listener: Callable[[E], object]) -> None:
    """Stop delivering events to a global listener (no error if it was not registered)."""
    _GLOBAL.change(lambda subs: tuple(s for s in subs if s.listener != listener))


class EventHub:
    """One instance's listeners plus the global ones, with precomputed "anyone wants X" flags."""

    __slots__ = ("__weakref__", "_all", "_lock", "_on_change", "_own", "calls", "rejections")

    def __init__(self) -> None:
        self._own: tuple[_Subscription, ...] = ()
        self._all: tuple[_Subscription, ...] = ()
        self._on_change: Callable[[], None] | None = None
        self._lock = threading.Lock()
        self.calls = False
        """Someone wants per-call events (success, failure, ignored, slow)."""
        self.rejections = False
        """Someone wants CallRejected events."""
        _GLOBAL.attach(self)
        self.refresh()

    def watch(self, on_change: Callable[[], None]) -> None:
        """Call ``on_change`` whenever the flags may have changed (the owner's fast path)."""
        self._on_change = on_change

    def add(self, listener: Listener, types: tuple[type[Event], ...]) -> None:
        sub = _subscription(listener, types)
        with self._lock:
            self._own = (*self._own, sub)
        self.refresh()

    def remove(self, listener: Listener) -> None:
        with self._lock:
            self._own = tuple(s for s in self._own if s.listener != listener)
        self.refresh()

    def refresh(self) -> None:
        # Read and write under the lock, from the current lists: a refresh that started
        # earlier can never overwrite a later one with flags from stale lists.
        with self._lock:
            subs = self._own + _GLOBAL.subs
            self._all = subs
            self.calls = any(s.wants(t) for s in subs for t in PER_CALL_EVENTS)
            self.rejections = any(s.wants(CallRejected) for s in subs)
        if self._on_change is not None:
            self._on_change()

    def emit(self, event: Event) -> None:
        """Deliver to every interested listener; a failing listener is logged, never raised."""
        for sub in self._all:
            if isinstance(event, sub.types):
                try:
                    sub.listener(event)
                except Exception:
                    _log.exception("stalwart listener %r failed on %r", sub.listener, event)


class LoggingListener:
    """Logs one structured line per state transition (and, if asked, per rejection).

    The message is ``key=value`` pairs so it greps and parses; the same data is attached as
    ``record.stalwart`` (a dict) for JSON formatters. Opening is a WARNING, other
    transitions INFO, rejections DEBUG.
    """

    def __init__(self, logger: logging.Logger | None = None, *, rejections: bool = False) -> None:
        self.logger = logger or _log
        self.rejections = rejections
        self.event_types: tuple[type[Event], ...] = (
            (StateTransition, CallRejected) if rejections else (StateTransition,)
        )

    def __call__(self, event: Event) -> None:
        if isinstance(event, StateTransition):
            opening = event.new in (State.OPEN, State.FORCED_OPEN)
            level = logging.WARNING if opening else logging.INFO
            retry = "" if event.retry_in is None else f" retry_in={event.retry_in:.3f}"
            self.logger.log(
                level,
                "%s name=%s transition=%s->%s reason=%s%s",
                event.strategy,
                event.name,
                event.old.value,
                event.new.value,
                event.reason,
                retry,
                extra={"stalwart": event.to_dict()},
            )
        elif isinstance(event, CallRejected):
            self.logger.debug(
                "%s name=%s rejected retry_in=%s",
                event.strategy,
                event.name,
                event.retry_in,
                extra={"stalwart": event.to_dict()},
            )
