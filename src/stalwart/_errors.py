"""The exceptions stalwart raises itself.

stalwart never wraps the caller's own exceptions: after the last attempt they pass
through unchanged. It owns only its rejections and configuration errors::

    StalwartError
    ├── ConfigError            (also a ValueError)  invalid configuration; names the field
    └── Rejected                                    a call was not run or not waited for
        ├── CircuitOpenError                        the breaker is open
        ├── BulkheadFullError                       no concurrency slot and no queue room
        ├── RateLimitedError                        no token within the allowed wait
        └── DeadlineExceeded   (also a TimeoutError) the time budget ran out

Every rejection carries ``name`` (the strategy instance that refused) and ``retry_in``
(seconds until it is worth trying again, or ``None`` when unknown). An open breaker
raises its rejections with a ``Countdown`` in that place, read (once) when asked.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

__all__ = (
    "BulkheadFullError",
    "CircuitOpenError",
    "ConfigError",
    "Countdown",
    "DeadlineExceeded",
    "RateLimitedError",
    "Rejected",
    "StalwartError",
)


class StalwartError(Exception):
    """Root of every exception stalwart raises itself."""


class ConfigError(StalwartError, ValueError):
    """Invalid configuration: ``field`` names the setting, the message says what is allowed."""

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(field, problem)
        self.field = field
        self.problem = problem

    def __str__(self) -> str:
        return f"{self.field}: {self.problem}"


class Rejected(StalwartError):
    """A call that stalwart refused to run, or stopped waiting for.

    Built as ``Rejected(name, retry_in=None, detail="")`` (positional). Rejections are
    raised on hot paths (an open breaker refuses every call), so there is no Python-level
    constructor: the fields are read from ``args`` and the message is built on demand.
    """

    @property
    def name(self) -> str:
        """The strategy instance that refused."""
        return str(self.args[0]) if self.args else ""

    @property
    def retry_in(self) -> float | None:
        """Seconds until trying again is worthwhile; None when unknown."""
        value = self.args[1] if len(self.args) > 1 else None
        if type(value) is Countdown:
            # Raised with the open period's countdown rather than a clock read: worked out
            # on first reading, then kept, so the value no longer moves.
            value = float(value)
            self.args = (self.args[0], value, *self.args[2:])
        return None if value is None else float(value)

    @property
    def detail(self) -> str:
        return str(self.args[2]) if len(self.args) > 2 else ""

    def __str__(self) -> str:
        text = f"{self._what()} ({self.name!r})"
        if self.detail:
            text += f": {self.detail}"
        if self.retry_in is not None:
            text += f"; retry in {self.retry_in:.3g} s"
        return text

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r}, retry_in={self.retry_in!r})"

    def _what(self) -> str:
        return "call rejected"


class CircuitOpenError(Rejected):
    """The circuit breaker is open (or forced open) and did not run the call."""

    def _what(self) -> str:
        return "circuit open"


class BulkheadFullError(Rejected):
    """The bulkhead had no free slot and no room (or time) to queue."""

    def _what(self) -> str:
        return "bulkhead full"


class RateLimitedError(Rejected):
    """The rate limiter had no token within the allowed wait."""

    def _what(self) -> str:
        return "rate limited"


class DeadlineExceeded(Rejected, TimeoutError):
    """The call's time budget ran out; stalwart stopped waiting for it."""

    def __init__(self, name: str, retry_in: float | None = None, detail: str = "") -> None:
        # TimeoutError is an OSError, which would read three arguments as errno, strerror
        # and filename. Deadlines are not a hot path, so a Python constructor is fine here.
        self.args = (name, retry_in, detail)

    def _what(self) -> str:
        return "deadline exceeded"


class Countdown:
    """Seconds left until ``deadline`` on ``monotonic``, worked out when read (never < 0).

    An open breaker builds one per open period; its rejections carry it as ``retry_in``
    instead of reading the clock on every refused call. It pickles as a plain float.
    """

    __slots__ = ("_monotonic", "deadline")

    def __init__(self, deadline: float, monotonic: Callable[[], float]) -> None:
        self.deadline = deadline
        self._monotonic = monotonic

    def __float__(self) -> float:
        return max(0.0, self.deadline - self._monotonic())

    def __repr__(self) -> str:
        return repr(float(self))

    def __reduce__(self) -> tuple[Any, ...]:
        return (float, (float(self),))
