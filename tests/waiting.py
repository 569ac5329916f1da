"""Waiting for a running system in the end-to-end tests: probe it until it says so."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")

WAIT = 20.0
"""Seconds a real system (a process starting, a breaker recovering) may take."""
PAUSE = 0.1


def until(probe: Callable[[], T], what: str, within: float = WAIT) -> T:
    """Ask ``probe`` again, every ``PAUSE`` seconds, until it returns something truthy, and
    return that; fail after ``within`` seconds. A condition wait between probes of a running
    system, never a wait for timing logic."""
    deadline = time.monotonic() + within
    while not (found := probe()):
        assert time.monotonic() < deadline, f"not within {within} s: {what}"
        time.sleep(PAUSE)
    return found
