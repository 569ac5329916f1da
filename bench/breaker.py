"""Circuit-breaker benchmark: stalwart and its peers side by side, in one process.

Run it with ``scripts/bench`` (or ``.venv/bin/python bench/breaker.py``); ``--help`` lists
the options. Scenarios:

1. sync closed       ``def f(): return 1`` decorated, breaker closed, called in a loop;
2. sync rejection    breaker opened by real failures, called in a loop catching the rejection;
3. async closed      ``async def f(): return 1`` decorated, awaited in a loop in one coroutine;
4. async rejection   the same, opened;
5. threads           8 threads call one decorated function on ONE shared breaker, started
                     together behind a barrier; the figure is wall time / total calls.

The method (interleaved rounds, medians of the overhead over the bare call, GC off) is the
shared one of ``_harness.py``. This file holds only what is about breakers: the peer
adapters, the scenarios and their sanity checks, the budgets, and a concurrency probe.

Before timing, each contender is checked: a closed breaker must return 1 through the
wrapper, an open one must raise its own rejection without running the function. After
timing the open function must still not have run once. A broken adapter stops the run.
This is a report, not a test: it always exits 0 once it has measured.
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import aiobreaker  # type: ignore[import-untyped]
import circuitbreaker  # type: ignore[import-untyped]
import purgatory
import pybreaker
import pyresilience
from purgatory.domain.model import OpenedState

import stalwart
from _harness import (
    BARE,
    AdapterError,
    Bench,
    Contender,
    Extra,
    Fn,
    Run,
    Scenario,
    call,
    loop_threads,
    note,
)
from _harness import main as run_bench

HUGE = 1_000_000.0
"""Recovery timeout (seconds) of every breaker: an opened one stays open for the run."""
THRESHOLD = 5
"""Consecutive failures that open every breaker."""
PEER_PACKAGES = ("pybreaker", "circuitbreaker", "aiobreaker", "purgatory", "pyresilience")

Decorator = Callable[[Callable[..., Any]], Callable[..., Any]]
MakeDecorator = Callable[[str, bool], Decorator]
"""(unique breaker name, decorating an ``async def``?) -> a decorator over a fresh breaker."""


class Boom(Exception):
    """The failure that opens the breakers."""


# -- the peers -------------------------------------------------------------------------


@dataclass(frozen=True)
class Peer:
    """A breaker library, as every scenario uses it."""

    name: str
    rejection: type[BaseException]
    """What the breaker raises when open."""
    make: MakeDecorator
    no_async: str = ""
    """Why ``async def`` is not supported (empty: it is)."""


def _purgatory(name: str, is_async: bool) -> Decorator:
    factory = (
        purgatory.AsyncCircuitBreakerFactory if is_async else purgatory.SyncCircuitBreakerFactory
    )
    decorator: Decorator = factory(default_threshold=THRESHOLD, default_ttl=HUGE)(name)
    return decorator


PEERS: tuple[Peer, ...] = (
    Peer(
        "stalwart",
        stalwart.CircuitOpenError,
        lambda name, _: stalwart.CircuitBreaker(
            name, failure_threshold=THRESHOLD, recovery_timeout=HUGE
        ),
    ),
    Peer(
        "pybreaker",
        pybreaker.CircuitBreakerError,
        lambda name, _: pybreaker.CircuitBreaker(fail_max=THRESHOLD, reset_timeout=HUGE, name=name),
        no_async="decorator does not await an async def (asyncio unsupported; Tornado only)",
    ),
    Peer(
        "circuitbreaker",
        circuitbreaker.CircuitBreakerError,
        lambda name, _: circuitbreaker.circuit(
            failure_threshold=THRESHOLD, recovery_timeout=HUGE, name=name
        ),
    ),
    Peer(
        "aiobreaker",
        aiobreaker.CircuitBreakerError,
        lambda name, _: aiobreaker.CircuitBreaker(
            fail_max=THRESHOLD, timeout_duration=dt.timedelta(seconds=HUGE), name=name
        ),
    ),
    Peer("purgatory", OpenedState, _purgatory),
    Peer(
        "pyresilience",
        pyresilience.CircuitOpenError,
        lambda name, _: pyresilience.resilient(
            circuit_breaker=pyresilience.CircuitBreakerConfig(
                failure_threshold=THRESHOLD, recovery_timeout=HUGE
            )
        ),
    ),
)


# -- the functions under test ----------------------------------------------------------


def one() -> int:
    return 1


async def aone() -> int:
    return 1


@dataclass
class Failing:
    """A function that always fails, and how often it really ran."""

    fn: Callable[[], Any]
    runs: list[int]

    @property
    def count(self) -> int:
        return self.runs[0]


def failing(is_async: bool) -> Failing:
    # Plain functions, not bound methods: aiobreaker's decorator accepts only functions.
    runs = [0]

    def sync_fail() -> int:
        runs[0] += 1
        raise Boom

    async def async_fail() -> int:
        runs[0] += 1
        raise Boom

    return Failing(async_fail if is_async else sync_fail, runs)


# -- sanity checks (AdapterError; the harness names the contender and scenario) --------


def check_closed(fn: Fn) -> None:
    result = call(fn)
    if result != 1:
        raise AdapterError(f"closed breaker returned {result!r}, expected 1")


def open_by_failures(fn: Fn, body: Failing) -> None:
    for _ in range(THRESHOLD):
        try:
            call(fn)
        except Exception:
            continue
        raise AdapterError("a failing call did not raise")
    if body.count != THRESHOLD:
        raise AdapterError(f"{body.count} failures ran, expected {THRESHOLD}")


def check_rejects(fn: Fn, rejection: type[BaseException], body: Failing) -> None:
    runs = body.count
    errors: list[BaseException] = []
    for _ in range(2):
        try:
            call(fn)
        except rejection as exc:
            errors.append(exc)
        except BaseException as exc:
            raise AdapterError(
                f"open breaker raised {type(exc).__name__}, expected {rejection.__name__}"
            ) from exc
        else:
            raise AdapterError("open breaker let a call through")
    if body.count != runs or body.count != THRESHOLD:
        raise AdapterError("the function ran while the breaker was open")
    if errors[0] is errors[1]:
        note(
            "every rejection re-raises ONE exception instance, "
            "whose __traceback__ grows by a few frames per rejected call (memory grows "
            "while open; the bench clears it after each timed run)"
        )


def drop_traceback(fn: Fn, rejection: type[BaseException]) -> None:
    """Free the traceback chain of a peer that re-raises one exception instance."""
    try:
        call(fn)
    except rejection as exc:
        exc.__traceback__ = None


# -- scenarios -------------------------------------------------------------------------


def closed(peer: Peer, key: str, is_async: bool) -> Contender:
    def make() -> Fn:
        decorate = peer.make(f"bench-{peer.name}-{key}", is_async)
        fn: Fn = decorate(aone if is_async else one)
        return fn

    return Contender(peer.name, make, check=check_closed)


def opened(peer: Peer, key: str, is_async: bool) -> Contender:
    """Opened by ``THRESHOLD`` real failures; every timed call is a rejection."""
    body = failing(is_async)

    def make() -> Fn:
        decorate = peer.make(f"bench-{peer.name}-{key}", is_async)
        fn: Fn = decorate(body.fn)
        open_by_failures(fn, body)
        return fn

    def check(fn: Fn) -> None:
        check_rejects(fn, peer.rejection, body)
        drop_traceback(fn, peer.rejection)

    return Contender(peer.name, make, expect=peer.rejection, check=check)


BARE_RAISE = "bare raise"
"""The reference row of sync rejection: a fresh rejection raised through one frame."""


def bare_raise() -> int:
    raise stalwart.CircuitOpenError("bench", 1.0)


def check_fresh(fn: Fn) -> None:
    errors = []
    for _ in range(2):
        try:
            fn()
        except stalwart.CircuitOpenError as exc:
            errors.append(exc)
    if len(errors) != 2 or errors[0] is errors[1]:
        raise AdapterError("the bare raise must raise a fresh CircuitOpenError per call")


def raising() -> Contender:
    """What any raising design pays at least: build, raise and catch the rejection."""
    return Contender(
        BARE_RAISE,
        lambda: bare_raise,
        expect=stalwart.CircuitOpenError,
        check=check_fresh,
        reference=True,
    )


def scenario(
    key: str,
    title: str,
    *,
    is_async: bool = False,
    open_: bool = False,
    threaded: bool = False,
    references: tuple[Contender, ...] = (),
) -> Scenario:
    contenders = list(references)
    for peer in PEERS:
        if is_async and peer.no_async:
            contenders.append(Contender(peer.name, None, na=peer.no_async))
        else:
            contenders.append((opened if open_ else closed)(peer, key, is_async))
    return Scenario(
        key,
        title,
        aone if is_async else one,
        contenders,
        is_async=is_async,
        threaded=threaded,
        label="{threads} threads" if threaded else "",
    )


def scenarios() -> list[Scenario]:
    return [
        scenario("sync-closed", "sync closed: decorated `def f(): return 1`, breaker closed"),
        scenario(
            "sync-rejection",
            "sync rejection: breaker open, rejection caught",
            open_=True,
            references=(raising(),),
        ),
        scenario("async-closed", "async closed: decorated `async def`, awaited", is_async=True),
        scenario(
            "async-rejection",
            "async rejection: breaker open, rejection caught",
            is_async=True,
            open_=True,
        ),
        scenario(
            "threads", "{threads} threads: one shared breaker, all threads calling", threaded=True
        ),
    ]


BUDGETS = {
    "sync-closed": 100,  # issue 15's goal (was 200)
    "sync-rejection": 450,
    "async-closed": 300,
    "async-rejection": 500,
    "threads": 400,
}
"""ns of overhead stalwart may add over the bare call (median)."""

RATIO_BUDGETS = {"sync-rejection": (BARE_RAISE, 1.3)}
"""Issue 15: a rejection costs at most 1.3 x a bare raise and catch (their overheads)."""


# -- concurrency probe -----------------------------------------------------------------

PROBE_SLEEP = 0.02
"""Seconds each call of the concurrency probe sleeps (the breaker's lock is not needed)."""


def probe_concurrency(threads: int) -> dict[str, float]:
    """Calls in flight at once when ``threads`` threads each make one slow call.

    Not a timing of the breaker: it shows whether a breaker holds a lock around the
    protected call, which would serialise slow I/O through one shared breaker.
    """

    def slow() -> int:
        time.sleep(PROBE_SLEEP)
        return 1

    functions: dict[str, Callable[[], Any]] = {BARE: slow}
    for peer in PEERS:
        functions[peer.name] = peer.make(f"bench-{peer.name}-probe", False)(slow)
    in_flight: dict[str, float] = {}
    for name, fn in functions.items():
        if fn() != 1:
            raise AdapterError(f"{name} / probe: closed breaker did not return 1")
        best = min(loop_threads(fn, 1, threads) for _ in range(3))
        in_flight[name] = threads * PROBE_SLEEP * 1e9 / best
    return in_flight


def run_probe(run: Run) -> dict[str, float] | None:
    if run.args.no_probe or not any(s.threaded for s in run.scenarios):
        return None
    run.log("concurrency probe")
    return probe_concurrency(run.sizes.threads)


def render_probe(in_flight: dict[str, float], run: Run) -> list[str]:
    out = [
        f"concurrency probe: {run.sizes.threads} threads each make one call that sleeps "
        f"{PROBE_SLEEP * 1000:.0f} ms through one shared closed breaker"
    ]
    for name, flying in in_flight.items():
        verdict = "  <- serialises the protected calls" if flying < 1.5 else ""
        out.append(f"  {name:<15} {flying:>5.1f} calls in flight{verdict}")
    return out


def options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--no-probe", action="store_true", help="skip the concurrency probe (threads scenario)"
    )


# -- the benchmark ---------------------------------------------------------------------


def bench() -> Bench:
    return Bench(
        "stalwart circuit-breaker benchmark",
        "Circuit-breaker overhead: stalwart and its peers, side by side.",
        packages=("stalwart", *PEER_PACKAGES),
        scenarios=scenarios(),
        budgets=BUDGETS,
        ratio_budgets=RATIO_BUDGETS,
        extras=[Extra("concurrency_probe_in_flight", run_probe, render_probe)],
        options=options,
    )


def main(argv: list[str] | None = None) -> int:
    return run_bench(bench(), argv)


if __name__ == "__main__":
    sys.exit(main())
