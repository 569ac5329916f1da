"""The demo's callers: workers polling the upstream over httpx, with and without the breaker."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

import httpx

from .. import CircuitBreaker, CircuitOpenError
from ._stats import Outcome, SideStats
from ._upstream import SIDE_HEADER

__all__ = ("Call", "make_client", "protected_call", "unprotected_call", "work")

Call = Callable[[], Awaitable[None]]


def make_client(timeout: float, workers: int) -> httpx.AsyncClient:
    """One connection pool per side, so a side stuck on hung connections cannot starve the other.

    No keep-alive: the pool closes each connection after its response, so every call opens
    its own and the connections a side's chaos proxy accepts are exactly the requests that
    side sent. The pool closes them, not the server: a ``Connection: close`` header would
    make the upstream hang up after answering, and a blackhole that swallowed the answer
    would still pass that hang-up on, failing at once a call that should wait for its timeout.
    """
    return httpx.AsyncClient(
        timeout=httpx.Timeout(timeout),
        limits=httpx.Limits(max_connections=workers, max_keepalive_connections=0),
        trust_env=False,  # a proxy from the environment must not sit between us and loopback
    )


async def _fetch(client: httpx.AsyncClient, url: str, side: str) -> None:
    response = await client.get(url, headers={SIDE_HEADER: side})
    response.raise_for_status()


def protected_call(breaker: CircuitBreaker, client: httpx.AsyncClient, url: str) -> Call:
    async def call() -> None:
        await breaker.acall(_fetch, client, url, "protected")

    return call


def unprotected_call(client: httpx.AsyncClient, url: str) -> Call:
    async def call() -> None:
        await _fetch(client, url, "unprotected")

    return call


async def work(call: Call, stats: SideStats, *, pause: float, delay: float) -> None:
    """Call in a loop until cancelled, pausing between calls like a page polling its backend."""
    await asyncio.sleep(delay)
    while True:
        token = stats.begin(time.monotonic())
        try:
            await call()
        except CircuitOpenError:
            outcome = Outcome.REJECTED
        except Exception:  # timeouts, resets, HTTP errors: all mean "no usable answer"
            outcome = Outcome.FAILED
        else:
            outcome = Outcome.ANSWERED
        stats.end(token, time.monotonic(), outcome)
        await asyncio.sleep(pause)
