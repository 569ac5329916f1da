"""stalwart: fault tolerance for Python services.

Circuit breakers that hold their limits across threads and asyncio tasks, cost a few
hundred nanoseconds per call, report every change as a typed event, and are tested
without real sleeping. Optional parts live in subpackages (``stalwart.testing``, ...).
"""

from ._breaker import BreakerConfig as BreakerConfig
from ._breaker import BreakerSnapshot as BreakerSnapshot
from ._breaker import CircuitBreaker as CircuitBreaker
from ._breaker import PollHint as PollHint
from ._breaker import PollIntervals as PollIntervals
from ._breaker import circuit_breaker as circuit_breaker
from ._breaker import circuit_breakers as circuit_breakers
from ._clock import Clock as Clock
from ._clock import SystemClock as SystemClock
from ._errors import BulkheadFullError as BulkheadFullError
from ._errors import CircuitOpenError as CircuitOpenError
from ._errors import ConfigError as ConfigError
from ._errors import DeadlineExceeded as DeadlineExceeded
from ._errors import RateLimitedError as RateLimitedError
from ._errors import Rejected as Rejected
from ._errors import StalwartError as StalwartError
from ._events import CallFailed as CallFailed
from ._events import CallIgnored as CallIgnored
from ._events import CallRejected as CallRejected
from ._events import CallSucceeded as CallSucceeded
from ._events import Event as Event
from ._events import LoggingListener as LoggingListener
from ._events import SlowCall as SlowCall
from ._events import StateTransition as StateTransition
from ._events import add_listener as add_listener
from ._events import remove_listener as remove_listener
from ._types import State as State

__version__ = "0.1.0.dev0"

__all__ = (
    "BreakerConfig",
    "BreakerSnapshot",
    "BulkheadFullError",
    "CallFailed",
    "CallIgnored",
    "CallRejected",
    "CallSucceeded",
    "CircuitBreaker",
    "CircuitOpenError",
    "Clock",
    "ConfigError",
    "DeadlineExceeded",
    "Event",
    "LoggingListener",
    "PollHint",
    "PollIntervals",
    "RateLimitedError",
    "Rejected",
    "SlowCall",
    "StalwartError",
    "State",
    "StateTransition",
    "SystemClock",
    "add_listener",
    "circuit_breaker",
    "circuit_breakers",
    "remove_listener",
)
