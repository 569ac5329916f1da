"""Rate-limiter benchmark: stalwart and its peers side by side, in one process.

Run it with ``scripts/bench ratelimit`` (or ``.venv/bin/python bench/ratelimit.py``);
``--help`` lists the options. Scenarios:

1. sync            ``try_acquire()`` (or the peer's non-blocking equivalent) on a limiter
                   whose rate is so high that it never refuses: the price of asking, on
                   every call that is let through. stalwart's token bucket (the default);
2. sync-gcra       the same, stalwart's GCRA next to the peer that also offers GCRA;
3. sync-rejection  the limiter exhausted (1 per day, the one token taken): every call is
                   refused with False, nothing raised;
4. async           the async API, awaited in a loop in one coroutine, never refusing:
                   stalwart's ``await aacquire()``, aiolimiter's ``has_capacity()`` then
                   ``await acquire()``, the peers' async limiters.

Budgets: stalwart's ``try_acquire`` adds at most 300 ns over the bare call in scenarios 1
and 2. The others are reported, not budgeted.

The bare call is ``def f(): return True`` (``async def`` in scenario 4): the overhead is
what asking the limiter costs beyond calling a trivial function. Each contender is the
bound method users call (stalwart's ``try_acquire``), or, where the peer needs arguments,
``functools.partial`` of it (a C-level call that adds a few ns). Before and after timing,
each contender must answer as its scenario says (True, or False when exhausted; stalwart's
``aacquire`` returns None without raising). A broken adapter stops the run.
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import aiolimiter
import limits
import limits.aio.storage
import limits.aio.strategies
import limits.storage
import limits.strategies
import pyrate_limiter as pyrate

import stalwart
from _harness import AdapterError, Bench, Contender, Fn, Scenario, call, returns
from _harness import main as run_bench

HUGE = 10**9
"""Tokens per second of a limiter that never refuses (and its burst)."""
PEER_PACKAGES = ("pyrate-limiter", "limits", "aiolimiter")
BUDGETS = {"sync": 300, "sync-gcra": 300}
"""ns of overhead stalwart's try_acquire may add over the bare call (median)."""
KEY = "bench"

Algorithm = Literal["token_bucket", "gcra"]
"""The key (pyrate's item name) every keyed limiter is asked about."""

AIOLIMITER_SYNC = (
    "async only: taking capacity is `await acquire()`; has_capacity() needs a running loop"
)
LIMITS_MOVING = (
    "no steady figure: its MemoryStorage keeps every hit of the window in a list and inserts "
    "each new one at the front, so a hit costs more the more hits the last second had"
)


def true() -> bool:
    return True


async def atrue() -> bool:
    return True


# -- the limiters ----------------------------------------------------------------------


def stalwart_limiter(algorithm: Algorithm, *, exhausted: bool = False) -> Fn:
    if exhausted:
        limiter = stalwart.RateLimiter((1, 86_400.0), algorithm=algorithm)
        limiter.try_acquire()
    else:
        limiter = stalwart.RateLimiter((HUGE, 1.0), algorithm=algorithm)
    return limiter.try_acquire


def pyrate_bucket(kind: str, rate: pyrate.Rate) -> pyrate.AbstractBucket:
    if kind == "log":
        return pyrate.InMemoryBucket([rate])
    algorithm = pyrate.TokenBucket() if kind == "token" else pyrate.GCRA()
    return pyrate.StateBucket([rate], algorithm=algorithm)


def pyrate_limiter(kind: str, *, exhausted: bool = False, is_async: bool = False) -> Fn:
    """``Limiter(bucket)``; ``log`` is what ``Limiter(Rate(...))`` builds (sliding-window
    log in an in-memory list), ``token`` and ``gcra`` its constant-state buckets."""
    if exhausted:
        rate = pyrate.Rate(1, pyrate.Duration.DAY)
    else:
        rate = pyrate.Rate(HUGE, pyrate.Duration.SECOND)
    limiter = pyrate.Limiter(pyrate_bucket(kind, rate))
    if exhausted and limiter.try_acquire(KEY, blocking=False) is not True:
        raise AdapterError("could not take the one token of the exhausted limiter")
    if is_async:
        return functools.partial(limiter.try_acquire_async, KEY, blocking=False)
    return functools.partial(limiter.try_acquire, KEY, blocking=False)


def limits_limiter(strategy: str, *, exhausted: bool = False) -> Fn:
    """``limits``' strategy over its in-process ``MemoryStorage``, ``.hit(item)``."""
    storage = limits.storage.MemoryStorage()
    limiter: limits.strategies.RateLimiter
    if strategy == "moving":
        limiter = limits.strategies.MovingWindowRateLimiter(storage)
    else:
        limiter = limits.strategies.FixedWindowRateLimiter(storage)
    item: limits.RateLimitItem
    if exhausted:
        item = limits.RateLimitItemPerDay(1)
        if not limiter.hit(item):
            raise AdapterError("could not take the one hit of the exhausted limiter")
    else:
        item = limits.RateLimitItemPerSecond(HUGE)
    return functools.partial(limiter.hit, item)


def limits_async_fixed() -> Fn:
    limiter = limits.aio.strategies.FixedWindowRateLimiter(limits.aio.storage.MemoryStorage())
    return functools.partial(limiter.hit, limits.RateLimitItemPerSecond(HUGE))


def aiolimiter_take() -> Fn:
    """aiolimiter's try-and-take: ``has_capacity()``, then ``await acquire()``."""
    limiter = aiolimiter.AsyncLimiter(HUGE, 1.0)
    has_capacity, acquire = limiter.has_capacity, limiter.acquire

    async def take() -> bool:
        if has_capacity():
            await acquire()
            return True
        return False

    return take


def stalwart_async() -> Fn:
    return stalwart.RateLimiter((HUGE, 1.0)).aacquire


# -- scenarios -------------------------------------------------------------------------


@dataclass(frozen=True)
class Row:
    name: str
    make: Callable[[], Fn] | None
    na: str = ""


def contenders(rows: list[Row], answer: object) -> list[Contender]:
    return [
        Contender(row.name, row.make, check=returns(answer))
        if row.make is not None
        else Contender(row.name, None, na=row.na)
        for row in rows
    ]


def check_stalwart_async(fn: Fn) -> None:
    try:
        result = call(fn)
    except stalwart.RateLimitedError as exc:
        raise AdapterError(f"refused a call ({exc})") from exc
    if result is not None:
        raise AdapterError(f"aacquire() returned {result!r}, expected None")


def scenarios() -> list[Scenario]:
    sync = [
        Row("stalwart", lambda: stalwart_limiter("token_bucket")),
        Row("pyrate-limiter", lambda: pyrate_limiter("log")),
        Row("pyrate token", lambda: pyrate_limiter("token")),
        Row("limits moving", None, LIMITS_MOVING),
        Row("limits fixed", lambda: limits_limiter("fixed")),
        Row("aiolimiter", None, AIOLIMITER_SYNC),
    ]
    gcra = [
        Row("stalwart", lambda: stalwart_limiter("gcra")),
        Row("pyrate gcra", lambda: pyrate_limiter("gcra")),
    ]
    rejection = [
        Row("stalwart", lambda: stalwart_limiter("token_bucket", exhausted=True)),
        Row("pyrate-limiter", lambda: pyrate_limiter("log", exhausted=True)),
        Row("pyrate token", lambda: pyrate_limiter("token", exhausted=True)),
        Row("limits moving", lambda: limits_limiter("moving", exhausted=True)),
        Row("limits fixed", lambda: limits_limiter("fixed", exhausted=True)),
        Row("aiolimiter", None, AIOLIMITER_SYNC),
    ]
    async_rows = [
        Row("pyrate-limiter", lambda: pyrate_limiter("log", is_async=True)),
        Row("pyrate token", lambda: pyrate_limiter("token", is_async=True)),
        Row("limits moving", None, LIMITS_MOVING),
        Row("limits fixed", limits_async_fixed),
        Row("aiolimiter", aiolimiter_take),
    ]
    return [
        Scenario(
            "sync",
            "sync: try_acquire() on a limiter that never refuses (stalwart: token bucket)",
            true,
            contenders(sync, True),
        ),
        Scenario(
            "sync-gcra",
            "sync GCRA: try_acquire() on a GCRA limiter that never refuses",
            true,
            contenders(gcra, True),
        ),
        Scenario(
            "sync-rejection",
            "sync rejection: the limiter exhausted, try_acquire() answers False",
            true,
            contenders(rejection, False),
        ),
        Scenario(
            "async",
            "async: the async API awaited, never refusing (stalwart: await aacquire())",
            atrue,
            [
                Contender("stalwart", stalwart_async, check=check_stalwart_async),
                *contenders(async_rows, True),
            ],
            is_async=True,
        ),
    ]


# -- the benchmark ---------------------------------------------------------------------


def bench() -> Bench:
    return Bench(
        "stalwart rate-limiter benchmark",
        "Rate-limiter overhead (try_acquire): stalwart and its peers, side by side.",
        packages=("stalwart", *PEER_PACKAGES),
        scenarios=scenarios(),
        budgets=BUDGETS,
    )


def main(argv: list[str] | None = None) -> int:
    return run_bench(bench(), argv)


if __name__ == "__main__":
    sys.exit(main())
