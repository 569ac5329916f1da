"""Small shared types: breaker states and the shapes of user-supplied hooks."""

from __future__ import annotations

import enum
from collections.abc import Callable
from typing import Any, TypeAlias

__all__ = ("ExceptionFilter", "RetryAfterFrom", "State")


class State(enum.StrEnum):
    """Where a circuit breaker is; the value is what dashboards and JSON show."""

    CLOSED = "closed"
    """Calls run; outcomes are counted."""
    OPEN = "open"
    """Calls are rejected until the recovery timeout ends."""
    HALF_OPEN = "half_open"
    """A limited number of probe calls run to test recovery."""
    DISABLED = "disabled"
    """Pass-through: every call runs, outcomes only feed the totals."""
    FORCED_OPEN = "forced_open"
    """Rejects every call until ``reset()``."""


ExceptionFilter: TypeAlias = (
    type[BaseException]
    | tuple[type[BaseException], ...]
    | list[type[BaseException]]
    | Callable[[BaseException], bool]
)
"""Which exceptions a setting applies to: a class, a tuple or list of classes, or a predicate."""

RetryAfterFrom: TypeAlias = Callable[[Any], "float | None"]
"""Extracts a server-given pause (seconds) from an exception or a returned value."""
