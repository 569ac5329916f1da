"""The event types of stalwart's strategies, for listeners.

Every state change and call outcome is a frozen event object, delivered to listeners
registered on one instance (``breaker.add_listener``) or on all of them
(``stalwart.add_listener``), optionally for some event classes only::

    from stalwart import add_listener
    from stalwart.events import RetryGaveUp, StateTransition

    add_listener(page_someone, StateTransition, RetryGaveUp)

The subsystems keep their own events next to them: ``stalwart.health`` (``CheckChanged``,
...), ``stalwart.journal`` (``BatchPaused``, ...), ``stalwart.supervisor`` (``Connected``,
...), ``stalwart.poller`` and ``stalwart.redis``. All of them are ``Event`` subclasses.
"""

from __future__ import annotations

from ._bulkhead import BulkheadEntered
from ._cache import StaleServed
from ._events import (
    CallFailed,
    CallIgnored,
    CallRejected,
    CallSucceeded,
    Event,
    LoggingListener,
    SlowCall,
    StateTransition,
    add_listener,
    remove_listener,
)
from ._fallback import FallbackUsed
from ._hedge import HedgeStarted, HedgeWon
from ._ratelimit import RateLimitWaited
from ._retry import RetryAttempt, RetryBudgetExhausted, RetryGaveUp, RetrySucceeded

__all__ = (
    "BulkheadEntered",
    "CallFailed",
    "CallIgnored",
    "CallRejected",
    "CallSucceeded",
    "Event",
    "FallbackUsed",
    "HedgeStarted",
    "HedgeWon",
    "LoggingListener",
    "RateLimitWaited",
    "RetryAttempt",
    "RetryBudgetExhausted",
    "RetryGaveUp",
    "RetrySucceeded",
    "SlowCall",
    "StaleServed",
    "StateTransition",
    "add_listener",
    "remove_listener",
)
