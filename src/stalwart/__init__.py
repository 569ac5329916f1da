"""stalwart: fault tolerance for Python services.

Circuit breakers, retries, timeouts, fallbacks, bulkheads, rate limiters, hedging and
adaptive throttling that hold their limits across threads and asyncio tasks, compose in a
``Pipeline`` you can read, report every change as a typed event, and are tested without
real sleeping. Optional parts live in subpackages (``stalwart.testing``,
``stalwart.presets``, ...).

Names are loaded on first use (PEP 562), so ``import stalwart`` costs almost nothing: the
pytest plugin and the command line import it on every start.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ._backoff import Backoff as Backoff
    from ._backoff import parse_retry_after as parse_retry_after
    from ._backoff import retry_after_from_response as retry_after_from_response
    from ._breaker import BreakerConfig as BreakerConfig
    from ._breaker import BreakerSnapshot as BreakerSnapshot
    from ._breaker import CircuitBreaker as CircuitBreaker
    from ._breaker import PollHint as PollHint
    from ._breaker import PollIntervals as PollIntervals
    from ._breaker import circuit_breaker as circuit_breaker
    from ._breaker import circuit_breakers as circuit_breakers
    from ._bulkhead import Bulkhead as Bulkhead
    from ._bulkhead import BulkheadEntered as BulkheadEntered
    from ._cache import CacheFallback as CacheFallback
    from ._cache import StaleServed as StaleServed
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
    from ._fallback import Fallback as Fallback
    from ._fallback import FallbackUsed as FallbackUsed
    from ._hedge import Hedge as Hedge
    from ._hedge import HedgeStarted as HedgeStarted
    from ._hedge import HedgeWon as HedgeWon
    from ._pipeline import Pipeline as Pipeline
    from ._ratelimit import RateLimiter as RateLimiter
    from ._ratelimit import RateLimitWaited as RateLimitWaited
    from ._retry import Retry as Retry
    from ._retry import RetryAttempt as RetryAttempt
    from ._retry import RetryBudget as RetryBudget
    from ._retry import RetryBudgetExhausted as RetryBudgetExhausted
    from ._retry import RetryGaveUp as RetryGaveUp
    from ._retry import RetrySucceeded as RetrySucceeded
    from ._retry import retry as retry
    from ._throttle import AdaptiveThrottle as AdaptiveThrottle
    from ._timeout import TimedOut as TimedOut
    from ._timeout import Timeout as Timeout
    from ._timeout import remaining as remaining
    from ._types import State as State

__version__ = "0.1.0.dev0"

__all__ = (
    "AdaptiveThrottle",
    "Backoff",
    "BreakerConfig",
    "BreakerSnapshot",
    "Bulkhead",
    "BulkheadEntered",
    "BulkheadFullError",
    "CacheFallback",
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
    "Fallback",
    "FallbackUsed",
    "Hedge",
    "HedgeStarted",
    "HedgeWon",
    "LoggingListener",
    "Pipeline",
    "PollHint",
    "PollIntervals",
    "RateLimitWaited",
    "RateLimitedError",
    "RateLimiter",
    "Rejected",
    "Retry",
    "RetryAttempt",
    "RetryBudget",
    "RetryBudgetExhausted",
    "RetryGaveUp",
    "RetrySucceeded",
    "SlowCall",
    "StaleServed",
    "StalwartError",
    "State",
    "StateTransition",
    "SystemClock",
    "TimedOut",
    "Timeout",
    "add_listener",
    "circuit_breaker",
    "circuit_breakers",
    "parse_retry_after",
    "remaining",
    "remove_listener",
    "retry",
    "retry_after_from_response",
)

_HOMES: dict[str, str] = {
    "Backoff": "_backoff",
    "parse_retry_after": "_backoff",
    "retry_after_from_response": "_backoff",
    "BreakerConfig": "_breaker",
    "BreakerSnapshot": "_breaker",
    "CircuitBreaker": "_breaker",
    "PollHint": "_breaker",
    "PollIntervals": "_breaker",
    "circuit_breaker": "_breaker",
    "circuit_breakers": "_breaker",
    "Bulkhead": "_bulkhead",
    "BulkheadEntered": "_bulkhead",
    "Clock": "_clock",
    "SystemClock": "_clock",
    "BulkheadFullError": "_errors",
    "CircuitOpenError": "_errors",
    "ConfigError": "_errors",
    "DeadlineExceeded": "_errors",
    "RateLimitedError": "_errors",
    "Rejected": "_errors",
    "StalwartError": "_errors",
    "CallFailed": "_events",
    "CallIgnored": "_events",
    "CallRejected": "_events",
    "CallSucceeded": "_events",
    "Event": "_events",
    "LoggingListener": "_events",
    "SlowCall": "_events",
    "StateTransition": "_events",
    "add_listener": "_events",
    "remove_listener": "_events",
    "CacheFallback": "_cache",
    "StaleServed": "_cache",
    "Fallback": "_fallback",
    "FallbackUsed": "_fallback",
    "Hedge": "_hedge",
    "HedgeStarted": "_hedge",
    "HedgeWon": "_hedge",
    "Pipeline": "_pipeline",
    "RateLimiter": "_ratelimit",
    "RateLimitWaited": "_ratelimit",
    "Retry": "_retry",
    "RetryAttempt": "_retry",
    "RetryBudget": "_retry",
    "RetryBudgetExhausted": "_retry",
    "RetryGaveUp": "_retry",
    "RetrySucceeded": "_retry",
    "retry": "_retry",
    "AdaptiveThrottle": "_throttle",
    "TimedOut": "_timeout",
    "Timeout": "_timeout",
    "remaining": "_timeout",
    "State": "_types",
}
"""Where each public name lives (its private module)."""


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{home}"), name)
    globals()[name] = value  # from now on a plain module attribute
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
