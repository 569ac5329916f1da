"""Validation helpers for frozen configs: each failure is a ConfigError naming the field."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from ._errors import ConfigError


def positive(field: str, value: Any, *, allow_zero: bool = False) -> None:
    """A finite number of seconds (or units) above zero, or at least zero."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ConfigError(field, f"must be a finite number, got {value!r}")
    if value < 0 or (value == 0 and not allow_zero):
        bound = ">= 0" if allow_zero else "> 0"
        raise ConfigError(field, f"must be {bound}, got {value!r}")


def optional_positive(field: str, value: Any) -> None:
    if value is not None:
        positive(field, value)


def whole(field: str, value: Any, *, minimum: int = 1) -> None:
    """An integer of at least ``minimum``."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(field, f"must be an integer >= {minimum}, got {value!r}")
    if value < minimum:
        raise ConfigError(field, f"must be an integer >= {minimum}, got {value!r}")


def ratio(field: str, value: Any, *, allow_zero: bool = False) -> None:
    """A fraction in (0, 1], or [0, 1] when zero is allowed."""
    low = "[0" if allow_zero else "(0"
    try:
        positive(field, value, allow_zero=allow_zero)
    except ConfigError as exc:
        raise ConfigError(field, f"must be a ratio in {low}, 1], got {value!r}") from exc
    if value > 1:
        raise ConfigError(field, f"must be a ratio in {low}, 1], got {value!r}")


def callable_required(field: str, value: Any) -> None:
    if not callable(value):
        raise ConfigError(field, f"must be callable, got {value!r}")


def callable_or_none(field: str, value: Any) -> None:
    if value is not None and not callable(value):
        raise ConfigError(field, f"must be callable or None, got {value!r}")


def one_of(field: str, value: Any, allowed: tuple[Any, ...]) -> None:
    if value not in allowed:
        shown = ", ".join(repr(a) for a in allowed)
        raise ConfigError(field, f"must be one of {shown}, got {value!r}")


Check = Callable[[str, Any], None]
