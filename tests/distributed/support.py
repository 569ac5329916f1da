"""Small helpers for the shared-state tests."""

from __future__ import annotations

import time
from collections.abc import Callable

WAIT = 5.0
"""Seconds a background effect (a flush, a published change) may take before a test fails;
they take about a millisecond on loopback."""


def until(condition: Callable[[], bool], what: str, timeout: float = WAIT) -> float:
    """Wait (briefly sleeping) until ``condition()``; the seconds it took. Fails after
    ``timeout``: this waits for background I/O, never for timing logic."""
    start = time.monotonic()
    while not condition():
        if time.monotonic() - start > timeout:
            raise AssertionError(f"not within {timeout} s: {what}")
        time.sleep(0.001)
    return time.monotonic() - start


class Down(ConnectionError):
    """The dependency's failure in these tests."""


def failing() -> None:
    raise Down("dependency down")


def working() -> str:
    return "ok"
