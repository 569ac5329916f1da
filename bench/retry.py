"""Retry benchmark: stalwart and its peers side by side, in one process.

Run it with ``scripts/bench retry`` (or ``.venv/bin/python bench/retry.py``); ``--help``
lists the options. Scenarios (budgeted):

1. sync    ``def f(): return 1`` decorated, called in a loop: the call succeeds at once, so
           this is the price of the retry wrapper on every call that needs no retry;
2. async   the same with ``async def f(): return 1``, awaited in a loop in one coroutine.

Every contender retries ``OSError``, at most 3 attempts in all, with its own default
backoff. Then, not budgeted, an extra section of two tables: a call that fails once with
``OSError`` and then succeeds, with every contender's sleeping disabled, so that the retry
machinery itself is compared (the baseline is the hand-written ``try: f() except OSError:
f()``). How each peer's sleeping is disabled is in ``FAIL_ONCE_HOW`` below and in the notes
of the report.

The method (interleaved rounds, medians of the overhead over the bare call, GC off) is the
shared one of ``_harness.py``. Each contender is checked before and after timing: the
success-path wrappers must return 1; the fail-once wrappers must return 1 after running the
function exactly twice, without sleeping.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import textwrap
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, SupportsIndex

import backoff
import pyresilience
import stamina
import stamina.instrumentation
import tenacity

import stalwart
import stalwart.testing
from _harness import (
    AdapterError,
    Bench,
    Contender,
    Entry,
    Extra,
    Fn,
    Report,
    Result,
    Run,
    Scenario,
    Sizes,
    as_json,
    call,
    measure,
    render_table,
    returns,
)
from _harness import main as run_bench

ATTEMPTS = 3
"""Attempts in all, the first included, for every contender."""
PEER_PACKAGES = ("tenacity", "stamina", "backoff", "pyresilience")
BUDGETS = {"sync": 300, "async": 400}
"""ns of overhead stalwart may add over the bare call (median)."""

Decorator = Callable[[Callable[..., Any]], Callable[..., Any]]


# -- the functions under test ----------------------------------------------------------


def one() -> int:
    return 1


async def aone() -> int:
    return 1


@dataclass
class Flaky:
    """A function that fails with OSError on every other run (so each call through a
    retry fails once, then succeeds), and how often it really ran."""

    fn: Callable[[], Any]
    runs: list[int]


def flaky(is_async: bool) -> Flaky:
    runs = [0]

    def sync_flaky() -> int:
        runs[0] += 1
        if runs[0] % 2:
            raise OSError("flaky")
        return 1

    async def async_flaky() -> int:
        runs[0] += 1
        if runs[0] % 2:
            raise OSError("flaky")
        return 1

    return Flaky(async_flaky if is_async else sync_flaky, runs)


def hand_written_retry(is_async: bool) -> Fn:
    """The fail-once baseline: one failure caught by hand and the call made again."""
    body = flaky(is_async)
    fn = body.fn

    def sync_retry() -> Any:
        try:
            return fn()
        except OSError:
            return fn()

    async def async_retry() -> Any:
        try:
            return await fn()
        except OSError:
            return await fn()

    return async_retry if is_async else sync_retry


# -- the peers -------------------------------------------------------------------------


@dataclass(frozen=True)
class Peer:
    """A retry library: its decorator as users write it, and with sleeping disabled."""

    name: str
    decorator: Callable[[], Decorator]
    """Retry ``OSError``, ``ATTEMPTS`` attempts, the library's default backoff."""
    no_sleep: Callable[[], Decorator]
    """The same, its waits made 0 (the global test modes are switched on around it)."""
    how: str
    """How its sleeping is disabled in the fail-once tables."""


def _tenacity(wait: tenacity.wait.wait_base | None = None) -> Decorator:
    options: dict[str, Any] = {} if wait is None else {"wait": wait}
    decorator: Decorator = tenacity.retry(
        stop=tenacity.stop_after_attempt(ATTEMPTS),
        retry=tenacity.retry_if_exception_type(OSError),
        reraise=True,
        **options,
    )
    return decorator


def _backoff(zero: bool = False) -> Decorator:
    if zero:
        decorator: Decorator = backoff.on_exception(
            backoff.constant, OSError, max_tries=ATTEMPTS, interval=0, jitter=None, logger=None
        )
    else:
        decorator = backoff.on_exception(backoff.expo, OSError, max_tries=ATTEMPTS)
    return decorator


def _pyresilience(delay: float | None = None) -> Decorator:
    options: dict[str, Any] = {} if delay is None else {"delay": delay}
    config = pyresilience.RetryConfig(max_attempts=ATTEMPTS, retry_on=(OSError,), **options)
    decorator: Decorator = pyresilience.resilient(retry=config)
    return decorator


PEERS: tuple[Peer, ...] = (
    Peer(
        "stalwart",
        lambda: stalwart.retry(on=OSError, max_attempts=ATTEMPTS),
        lambda: stalwart.retry(on=OSError, max_attempts=ATTEMPTS),
        "stalwart.testing.set_testing() (waits are recorded, not slept; no time.sleep call)",
    ),
    Peer(
        "tenacity",
        _tenacity,
        lambda: _tenacity(tenacity.wait_none()),
        "wait=wait_none() (it still calls its sleep(0.0): time.sleep / asyncio.sleep)",
    ),
    Peer(
        "stamina",
        lambda: stamina.retry(on=OSError, attempts=ATTEMPTS),
        lambda: stamina.retry(on=OSError, attempts=ATTEMPTS),
        f"stamina.set_testing(True, attempts={ATTEMPTS}) (its default, attempts=1, would not "
        "retry at all) and instrumentation off: set_on_retry_hooks([]) (its default hook logs "
        "a WARNING per retry); its backoff is then 0, and tenacity under it still calls "
        "time.sleep(0) / asyncio.sleep(0)",
    ),
    Peer(
        "backoff",
        _backoff,
        lambda: _backoff(zero=True),
        "backoff.constant with interval=0 and jitter=None (a wait generator yielding 0), "
        "logger=None (its default logs an INFO record per retry); time.sleep(0) / "
        "asyncio.sleep(0) still called",
    ),
    Peer(
        "pyresilience",
        _pyresilience,
        lambda: _pyresilience(delay=0.0),
        "RetryConfig(delay=0.0) (its jitter of 0 is 0); time.sleep(0) / asyncio.sleep(0) "
        "still called",
    ),
)


# -- scenarios -------------------------------------------------------------------------


def success(peer: Peer, is_async: bool) -> Contender:
    def make() -> Fn:
        fn: Fn = peer.decorator()(aone if is_async else one)
        return fn

    return Contender(peer.name, make, check=returns(1))


def scenarios() -> list[Scenario]:
    return [
        Scenario(
            "sync",
            "sync: decorated `def f(): return 1`, succeeds at once",
            one,
            [success(peer, False) for peer in PEERS],
        ),
        Scenario(
            "async",
            "async: decorated `async def f(): return 1`, awaited, succeeds at once",
            aone,
            [success(peer, True) for peer in PEERS],
            is_async=True,
        ),
    ]


# -- the fail-once tables (an extra section: the test modes are global switches) -------

SLEPT_TOO_LONG = 0.05
"""Seconds: a fail-once call slower than this has slept for real (a broken adapter)."""

_real_sleep = time.sleep
_slept: list[float] = []
"""Every non-zero time.sleep while the fail-once tables run (must stay empty)."""


def _sleep_unless_zero(seconds: float | SupportsIndex) -> None:
    if seconds:
        _slept.append(float(seconds))
        _real_sleep(seconds)


@contextlib.contextmanager
def sleeping_disabled() -> Iterator[None]:
    """Every contender's switches, plus ``time.sleep(0)`` made a no-op.

    On this kind of VM ``time.sleep(0)`` is a real timer sleep of tens of microseconds,
    which would hide the machinery of every peer that still sleeps 0 s (all but stalwart,
    whose test mode does not call it). The replacement returns at once for 0 and sleeps
    otherwise; tenacity, backoff and pyresilience look ``time.sleep`` up at each call.
    """
    time.sleep = _sleep_unless_zero
    stamina.instrumentation.set_on_retry_hooks([])
    try:
        with (
            stalwart.testing.set_testing(),
            stamina.set_testing(True, attempts=ATTEMPTS),
        ):
            yield
    finally:
        stamina.instrumentation.set_on_retry_hooks(None)
        time.sleep = _real_sleep


def check_fail_once(body: Flaky) -> Callable[[Fn], None]:
    def check(fn: Fn) -> None:
        runs, slept = body.runs[0], len(_slept)
        start = time.perf_counter()
        result = call(fn)
        took = time.perf_counter() - start
        if result != 1:
            raise AdapterError(f"returned {result!r}, expected 1")
        if body.runs[0] - runs != 2:
            raise AdapterError(f"the function ran {body.runs[0] - runs} times, expected 2")
        if len(_slept) != slept or took > SLEPT_TOO_LONG:
            raise AdapterError(f"slept for real ({took:.3f} s): its waits are not disabled")

    return check


def fail_once(peer: Peer, is_async: bool) -> Contender:
    body = flaky(is_async)

    def make() -> Fn:
        fn: Fn = peer.no_sleep()(body.fn)
        return fn

    return Contender(peer.name, make, check=check_fail_once(body))


def fail_once_scenarios() -> list[Scenario]:
    title = "fails once with OSError, then succeeds; sleeping disabled"
    return [
        Scenario(
            f"fail-once-{kind}",
            f"{kind} {title}",
            hand_written_retry(is_async),
            [fail_once(peer, is_async) for peer in PEERS],
            is_async=is_async,
        )
        for kind, is_async in (("sync", False), ("async", True))
    ]


FAIL_ONCE_DIVISOR = 10
"""The fail-once loops make a tenth of the calls of the budgeted ones (each call raises,
and the exceptions' reference cycles pile up while the GC is off)."""


def sleep_zero_ns() -> float:
    """What one real ``time.sleep(0)`` costs here (ns, best of 3 x 100)."""
    best = float("inf")
    for _ in range(3):
        start = time.perf_counter_ns()
        for _ in range(100):
            _real_sleep(0)
        best = min(best, (time.perf_counter_ns() - start) / 100)
    return best


def run_fail_once(run: Run) -> dict[str, Any] | None:
    if run.args.no_fail_once:
        return None
    sizes = Sizes(
        rounds=run.sizes.rounds,
        sync_calls=max(run.sizes.sync_calls // FAIL_ONCE_DIVISOR, 1),
        async_calls=max(run.sizes.async_calls // FAIL_ONCE_DIVISOR, 1),
    )
    run.log("fail-once tables")
    with sleeping_disabled():
        results = measure(fail_once_scenarios(), sizes, run.log)
    report = Report(run.bench, {}, sizes, "", results, [], {})
    tables: list[dict[str, Any]] = as_json(report)["scenarios"]
    for figures in tables:
        del figures["budget_ns"], figures["within_budget"], figures["threads"]
        figures["rounds"] = sizes.rounds
    return {
        "how_sleeping_is_disabled": {peer.name: peer.how for peer in PEERS},
        "real_time_sleep_0_ns": sleep_zero_ns(),
        "tables": tables,
    }


def render_fail_once(figures: dict[str, Any], run: Run) -> list[str]:
    """The fail-once tables, in the harness's table format (rebuilt from the JSON)."""
    sleep0 = figures["real_time_sleep_0_ns"] / 1000
    out = [
        "not budgeted: a call that fails once with OSError, then succeeds; sleeping disabled.",
        "  baseline: the hand-written `try: f() except OSError: f()`, so the raise and catch",
        "  of the first attempt cancel out. For these tables time.sleep returns at once for",
        f"  0 s (a real time.sleep(0) takes {sleep0:,.1f} µs here); asyncio.sleep(0) is left",
        "  as it is (one pass of the event loop per retry, for every contender). Per peer:",
    ]
    for name, how in figures["how_sleeping_is_disabled"].items():
        out.extend(
            textwrap.wrap(how, 88, initial_indent=f"  {name:<13} ", subsequent_indent=" " * 16)
        )
    by_key = {s.key: s for s in fail_once_scenarios()}
    for index, table in enumerate(figures["tables"], len(run.scenarios) + 1):
        entries = []
        for name, numbers in table["contenders"].items():
            entry = Entry(name, None, na=numbers.get("na", ""))
            entry.samples = numbers.get("samples_ns", [])
            entry.overheads = numbers.get("overheads_ns", [])
            entries.append(entry)
        report = Report(run.bench, {}, Sizes(rounds=table["rounds"]), "", [], [], {})
        result = Result(by_key[table["scenario"]], table["calls"], entries)
        out.extend(render_table(index, result, report))
    return out


def options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--no-fail-once", action="store_true", help="skip the (unbudgeted) fail-once tables"
    )


# -- the benchmark ---------------------------------------------------------------------


def bench() -> Bench:
    return Bench(
        "stalwart retry benchmark",
        "Retry overhead on a call that succeeds at once: stalwart and its peers, side by side.",
        packages=("stalwart", *PEER_PACKAGES),
        scenarios=scenarios(),
        budgets=BUDGETS,
        extras=[Extra("fail_once", run_fail_once, render_fail_once)],
        options=options,
    )


def main(argv: list[str] | None = None) -> int:
    return run_bench(bench(), argv)


if __name__ == "__main__":
    sys.exit(main())
