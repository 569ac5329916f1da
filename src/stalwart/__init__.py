"""stalwart: fault tolerance for Python services.

Circuit breakers, retries, timeouts, fallbacks, bulkheads, rate limiters, hedging and
adaptive throttling that hold their limits across threads and asyncio tasks, compose in a
``Pipeline`` you can read, report every change as a typed event, and are tested without
real sleeping. Optional parts live in subpackages (``stalwart.testing``,
``stalwart.presets``, ...); the event types in ``stalwart.events``. docs/api.md lists every
public name.

Names are loaded on first use (PEP 562), so ``import stalwart`` costs almost nothing: the
pytest plugin and the command line import it on every start.
"""

from __future__ import annotations

import importlib
import warnings
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
    from ._cache import CacheFallback as CacheFallback
    from ._clock import Clock as Clock
    from ._clock import SystemClock as SystemClock
    from ._errors import BulkheadFullError as BulkheadFullError
    from ._errors import CircuitOpenError as CircuitOpenError
    from ._errors import ConfigError as ConfigError
    from ._errors import DeadlineExceeded as DeadlineExceeded
    from ._errors import RateLimitedError as RateLimitedError
    from ._errors import Rejected as Rejected
    from ._errors import StalwartError as StalwartError
    from ._events import add_listener as add_listener
    from ._events import remove_listener as remove_listener
    from ._fallback import Fallback as Fallback
    from ._hedge import Hedge as Hedge
    from ._pipeline import Pipeline as Pipeline
    from ._ratelimit import RateLimiter as RateLimiter
    from ._retry import Retry as Retry
    from ._retry import RetryBudget as RetryBudget
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
    "BulkheadFullError",
    "CacheFallback",
    "CircuitBreaker",
    "CircuitOpenError",
    "Clock",
    "ConfigError",
    "DeadlineExceeded",
    "Fallback",
    "Hedge",
    "Pipeline",
    "PollHint",
    "PollIntervals",
    "RateLimitedError",
    "RateLimiter",
    "Rejected",
    "Retry",
    "RetryBudget",
    "StalwartError",
    "State",
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
    "Clock": "_clock",
    "SystemClock": "_clock",
    "BulkheadFullError": "_errors",
    "CircuitOpenError": "_errors",
    "ConfigError": "_errors",
    "DeadlineExceeded": "_errors",
    "RateLimitedError": "_errors",
    "Rejected": "_errors",
    "StalwartError": "_errors",
    "add_listener": "_events",
    "remove_listener": "_events",
    "CacheFallback": "_cache",
    "Fallback": "_fallback",
    "Hedge": "_hedge",
    "Pipeline": "_pipeline",
    "RateLimiter": "_ratelimit",
    "Retry": "_retry",
    "RetryBudget": "_retry",
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
        moved = _moved(name)
        if moved is None:
            raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
        return moved
    value = getattr(importlib.import_module(f"{__name__}.{home}"), name)
    globals()[name] = value  # from now on a plain module attribute
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})


def _moved(name: str) -> Any:
    """An event type that left the root for ``stalwart.events``, with a warning; None for
    any other name. Not cached in globals(): every old-style import warns until changed."""
    if not name[:1].isupper():
        return None  # a submodule being imported, or a dunder: never an event type (a class)
    events = importlib.import_module(f"{__name__}.events")
    if name not in events.__all__:
        return None
    warnings.warn(
        f"stalwart.{name} moved to stalwart.events: import it from there"
        f" (from stalwart.events import {name})",
        DeprecationWarning,
        stacklevel=3,
    )
    return getattr(events, name)
