"""How an ended call counts: success, failure or ignored, decided from user settings."""

from __future__ import annotations

import enum
import inspect
import math
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from ._errors import ConfigError
from ._types import ExceptionFilter

__all__ = ("Outcome", "compile_filter", "normalize_filter", "normalize_hint")


class Outcome(enum.Enum):
    SUCCESS = "success"
    FAILURE = "failure"
    IGNORED = "ignored"


def normalize_filter(spec: ExceptionFilter) -> ExceptionFilter:
    """One spelling per filter: a class or a list of classes becomes a tuple."""
    if isinstance(spec, type):
        return (spec,)
    if isinstance(spec, list | set | frozenset):
        return tuple(spec)
    return spec


def compile_filter(field: str, spec: ExceptionFilter) -> Callable[[BaseException], bool]:
    """Turn a class, a tuple of classes or a predicate into one predicate, validating it."""
    spec = normalize_filter(spec)
    if isinstance(spec, tuple):
        for item in spec:
            if not (isinstance(item, type) and issubclass(item, BaseException)):
                raise ConfigError(
                    field, f"must be exception classes or a predicate, got {item!r} in {spec!r}"
                )
        classes = spec
        if not classes:
            return _never
        return lambda exc: isinstance(exc, classes)
    if callable(spec) and not inspect.isclass(spec):
        return spec
    raise ConfigError(field, f"must be exception classes or a predicate, got {spec!r}")


def _never(exc: BaseException) -> bool:
    return False


def normalize_hint(hint: Any) -> float | None:
    """Seconds from a server-given pause: a number or a timedelta, negatives clamped to 0.

    Anything else (text, NaN, infinity, booleans) is no hint at all: a pause nobody can
    reason about should not stop every caller.
    """
    if isinstance(hint, timedelta):
        hint = hint.total_seconds()
    if isinstance(hint, bool) or not isinstance(hint, int | float) or not math.isfinite(hint):
        return None
    return max(0.0, float(hint))
