"""Pipeline benchmark: retry + circuit breaker + timeout around one call, stalwart and peers.

Run it with ``scripts/bench pipeline`` (or ``.venv/bin/python bench/pipeline.py``);
``--help`` lists the options. Every contender puts, outermost first, a retry (``OSError``,
3 attempts in all), a circuit breaker (closed) and a 5 s timeout around a call that
succeeds at once. Scenarios:

1. async        ``async def f(): return 1``, awaited in a loop in one coroutine. Budgeted;
2. sync-thread  ``def f(): return 1``, the timeout enforced by running the call in another
                thread (the only way to stop waiting for a sync call);
3. sync-inline  ``def f(): return 1`` in the caller's thread: stalwart's
                ``Timeout(thread=False)`` only publishes the deadline (``remaining()``) for
                the function's own client timeout; the peers have no timeout layer, which
                is what a sync user without threads writes today.

The contenders:

* stalwart: ``Pipeline(Retry(on=OSError), CircuitBreaker(name), Timeout(5.0))`` as a
  decorator (``Timeout(5.0, thread=False)`` in sync-inline);
* pyresilience: its one combined decorator, ``resilient(retry=RetryConfig(max_attempts=3,
  retry_on=(OSError,)), circuit_breaker=CircuitBreakerConfig(), timeout=TimeoutConfig(
  seconds=5.0))`` (no ``timeout=`` in sync-inline). Its timeout is per attempt:
  ``asyncio.wait_for`` (async) or a shared thread pool (sync);
* "what users do today", stacked by hand, outermost first::

      @tenacity.retry(stop=stop_after_attempt(3), retry=retry_if_exception_type(OSError),
                      wait=wait_random_exponential(multiplier=0.5, max=10), reraise=True)
      @circuitbreaker.circuit(name=...)          # or @aiobreaker.CircuitBreaker(name=...)
      async def guarded():
          async with asyncio.timeout(5.0):
              return await f()

  In sync-thread the innermost layer is ``POOL.submit(f).result(timeout=5.0)`` on a shared
  ``ThreadPoolExecutor``; in sync-inline there is none. The tenacity wait mirrors
  stalwart's default (full jitter from 0.5 s, at most 10 s); it is never used here.

The method (interleaved rounds, medians of the overhead over the bare call, GC off) is the
shared one of ``_harness.py``. Each contender must return 1 through its stack, before and
after timing.
"""

from __future__ import annotations

import asyncio
import itertools
import sys
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import aiobreaker  # type: ignore[import-untyped]
import circuitbreaker  # type: ignore[import-untyped]
import pyresilience
import tenacity

from _harness import Bench, Contender, Fn, Scenario, Sizes, returns
from _harness import main as run_bench
from stalwart import CircuitBreaker, Pipeline, Retry, Timeout

ATTEMPTS = 3
SECONDS = 5.0
"""Every contender's timeout."""
PEER_PACKAGES = ("pyresilience", "tenacity", "circuitbreaker", "aiobreaker")
BUDGETS = {"async": 1_500}
"""ns of overhead stalwart's pipeline may add over the bare call (median)."""
SIZES = Sizes(sync_calls=10_000, async_calls=50_000)
"""Fewer calls than the harness's default: a sync timeout costs a thread hand-off, tens
of microseconds, and some async peers create a task per call."""

POOL = ThreadPoolExecutor(max_workers=4, thread_name_prefix="bench-timeout")
"""The hand-stacked sync timeout's threads (shared, as an application would)."""

Decorator = Callable[[Callable[..., Any]], Callable[..., Any]]
_names = itertools.count(1)


def unique(kind: str) -> str:
    """A breaker name of its own (circuitbreaker keeps a process-wide registry by name)."""
    return f"bench-pipeline-{kind}-{next(_names)}"


def one() -> int:
    return 1


async def aone() -> int:
    return 1


# -- stalwart --------------------------------------------------------------------------


def stalwart_pipeline(fn: Callable[..., Any], *, thread: bool = True) -> Fn:
    pipeline = Pipeline(
        Retry(on=OSError, max_attempts=ATTEMPTS),
        CircuitBreaker(unique("stalwart")),
        Timeout(SECONDS, thread=thread),
    )
    guarded: Fn = pipeline(fn)
    return guarded


# -- pyresilience ----------------------------------------------------------------------


def pyresilience_stack(fn: Callable[..., Any], *, timeout: bool = True) -> Fn:
    decorate = pyresilience.resilient(
        retry=pyresilience.RetryConfig(max_attempts=ATTEMPTS, retry_on=(OSError,)),
        circuit_breaker=pyresilience.CircuitBreakerConfig(),
        timeout=pyresilience.TimeoutConfig(seconds=SECONDS) if timeout else None,
    )
    guarded: Fn = decorate(fn)
    return guarded


# -- by hand: tenacity + a breaker + a timeout -----------------------------------------


def tenacity_retry() -> Decorator:
    decorator: Decorator = tenacity.retry(
        stop=tenacity.stop_after_attempt(ATTEMPTS),
        retry=tenacity.retry_if_exception_type(OSError),
        wait=tenacity.wait_random_exponential(multiplier=0.5, max=10),
        reraise=True,
    )
    return decorator


def breaker(kind: str) -> Decorator:
    if kind == "aiobreaker":
        aio: Decorator = aiobreaker.CircuitBreaker(name=unique(kind))
        return aio
    cb: Decorator = circuitbreaker.circuit(name=unique(kind))
    return cb


def asyncio_timeout(fn: Callable[[], Awaitable[Any]]) -> Callable[[], Awaitable[Any]]:
    async def timed() -> Any:
        async with asyncio.timeout(SECONDS):
            return await fn()

    return timed


def pool_timeout(fn: Callable[[], Any]) -> Callable[[], Any]:
    def timed() -> Any:
        return POOL.submit(fn).result(timeout=SECONDS)

    return timed


def by_hand(kind: str, timeout: Callable[[Any], Any] | None, fn: Callable[..., Any]) -> Fn:
    inner = fn if timeout is None else timeout(fn)
    guarded: Fn = tenacity_retry()(breaker(kind)(inner))
    return guarded


# -- scenarios -------------------------------------------------------------------------


def contender(name: str, make: Callable[[], Fn]) -> Contender:
    return Contender(name, make, check=returns(1))


def scenarios() -> list[Scenario]:
    return [
        Scenario(
            "async",
            "async: retry + breaker + timeout around `async def f(): return 1`, awaited",
            aone,
            [
                contender("stalwart", lambda: stalwart_pipeline(aone)),
                contender("pyresilience", lambda: pyresilience_stack(aone)),
                contender("tenacity+cb", lambda: by_hand("circuitbreaker", asyncio_timeout, aone)),
                contender("tenacity+aiobr", lambda: by_hand("aiobreaker", asyncio_timeout, aone)),
            ],
            is_async=True,
        ),
        Scenario(
            "sync-thread",
            "sync, timeout by a worker thread: retry + breaker + timeout around `def f()`",
            one,
            [
                contender("stalwart", lambda: stalwart_pipeline(one)),
                contender("pyresilience", lambda: pyresilience_stack(one)),
                contender("tenacity+cb", lambda: by_hand("circuitbreaker", pool_timeout, one)),
            ],
        ),
        Scenario(
            "sync-inline",
            "sync, in the caller's thread: stalwart publishes the deadline; peers: no timeout",
            one,
            [
                contender("stalwart", lambda: stalwart_pipeline(one, thread=False)),
                contender("pyresilience", lambda: pyresilience_stack(one, timeout=False)),
                contender("tenacity+cb", lambda: by_hand("circuitbreaker", None, one)),
            ],
        ),
    ]


# -- the benchmark ---------------------------------------------------------------------


def bench() -> Bench:
    return Bench(
        "stalwart pipeline benchmark",
        "Retry + circuit breaker + timeout around one call: stalwart's Pipeline and its peers.",
        packages=("stalwart", *PEER_PACKAGES),
        scenarios=scenarios(),
        budgets=BUDGETS,
        sizes=SIZES,
    )


def main(argv: list[str] | None = None) -> int:
    return run_bench(bench(), argv)


if __name__ == "__main__":
    sys.exit(main())
