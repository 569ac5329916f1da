"""The shared table of poller decisions (cases.json), read by the Python and the browser tests."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from starlette.responses import Response

from stalwart import CircuitBreaker, CircuitOpenError
from stalwart.poller import PollAnswer, PollSettings
from stalwart.testing import FakeClock

NOW = 1_700_000_000.0
"""The Unix time every case is decided at (Retry-After dates are relative to it)."""

CASES: list[dict[str, Any]] = json.loads((Path(__file__).parent / "cases.json").read_text())[
    "cases"
]
IDS = [case["name"] for case in CASES]
HOLD = 10.0
"""The longest a held request waits for its release."""


def answer_of(case: dict[str, Any]) -> PollAnswer:
    raw = case["answer"]
    return PollAnswer(
        raw["status"], body=raw.get("body"), headers=raw.get("headers", {}), error=raw.get("error")
    )


def settings_of(case: dict[str, Any]) -> PollSettings:
    return PollSettings(**case.get("settings", {}))


def js_settings(case: dict[str, Any]) -> dict[str, Any]:
    """The same settings under stalwart-poller.js's names (camelCase)."""
    settings = settings_of(case)
    return {
        "interval": settings.interval,
        "errorInterval": settings.error_interval,
        "minInterval": settings.min_interval,
        "maxInterval": settings.max_interval,
        "timeout": settings.timeout,
        "jitter": settings.jitter,
    }


# -- seed 000's status route, and a server-side count of requests ----------------------------


def seed_breaker(clock: FakeClock) -> CircuitBreaker:
    """Seed 000's qBittorrent breaker: 2 failures, 60 s open, 2 successes."""
    return CircuitBreaker(
        "qbittorrent", failure_threshold=2, recovery_timeout=60.0, success_threshold=2, clock=clock
    )


@dataclass
class Seed000:
    """The status route of seed 000's site: the dependency through the breaker, then the hint
    (200 when the call worked, 503 when it failed or was rejected)."""

    clock: FakeClock = field(default_factory=FakeClock)
    up: bool = True

    def __post_init__(self) -> None:
        self.breaker = seed_breaker(self.clock)

    def qbittorrent(self) -> None:
        if not self.up:
            raise ConnectionError("qBittorrent is down")

    def status(self) -> tuple[int, dict[str, Any]]:
        try:
            self.breaker.call(self.qbittorrent)
        except (ConnectionError, CircuitOpenError):
            return 503, dict(self.breaker.poll_hint())
        return 200, dict(self.breaker.poll_hint())


@dataclass
class Counted:
    """Counts the requests a route serves and how many overlap; ``hold`` cleared keeps each
    request waiting (bounded) until it is set again."""

    hold: threading.Event = field(default_factory=threading.Event)
    requests: int = 0
    in_flight: int = 0
    most_in_flight: int = 0

    def __post_init__(self) -> None:
        self.hold.set()
        self._lock = threading.Lock()

    async def serve(self, respond: Callable[[], Response]) -> Response:
        with self._lock:
            self.requests += 1
            self.in_flight += 1
            self.most_in_flight = max(self.most_in_flight, self.in_flight)
        try:
            await asyncio.to_thread(self.hold.wait, HOLD)
            return respond()
        finally:
            with self._lock:
                self.in_flight -= 1
