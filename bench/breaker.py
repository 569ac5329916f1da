"""Circuit-breaker benchmark: stalwart and its peers side by side, in one process.

Run it with ``scripts/bench`` (or ``.venv/bin/python bench/breaker.py``); ``--help`` lists
the options. Scenarios:

1. sync closed       ``def f(): return 1`` decorated, breaker closed, called in a loop;
2. sync rejection    breaker opened by real failures, called in a loop catching the rejection;
3. async closed      ``async def f(): return 1`` decorated, awaited in a loop in one coroutine;
4. async rejection   the same, opened;
5. threads           8 threads call one decorated function on ONE shared breaker, started
                     together behind a barrier; the figure is wall time / total calls.

Method: every contender (the bare call, stalwart, each peer) is measured once per round and
the rounds are interleaved, the order rotating from round to round; a warm-up round is run
first and dropped. A contender's figure is the median over rounds of its per-call time; its
overhead is the median over rounds of (its per-call time - the bare call's, same round).
The garbage collector is off inside the timed loops (as in ``timeit``).

Before timing, each contender is checked: a closed breaker must return 1 through the
wrapper, an open one must raise its own rejection without running the function. After
timing the open function must still not have run once. A broken adapter stops the run.
This is a report, not a test: it always exits 0 once it has measured.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import gc
import importlib.metadata
import json
import os
import platform
import statistics
import sys
import threading
import time
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

import aiobreaker
import circuitbreaker
import purgatory
import pybreaker
import pyresilience
from purgatory.domain.model import OpenedState

import stalwart

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


class AdapterError(RuntimeError):
    """A contender did not behave as its scenario needs: the run stops."""


# -- the contenders ------------------------------------------------------------------


@dataclass(frozen=True)
class Contender:
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


CONTENDERS: tuple[Contender, ...] = (
    Contender(
        "stalwart",
        stalwart.CircuitOpenError,
        lambda name, _: stalwart.CircuitBreaker(
            name, failure_threshold=THRESHOLD, recovery_timeout=HUGE
        ),
    ),
    Contender(
        "pybreaker",
        pybreaker.CircuitBreakerError,
        lambda name, _: pybreaker.CircuitBreaker(fail_max=THRESHOLD, reset_timeout=HUGE, name=name),
        no_async="decorator does not await an async def (asyncio unsupported; Tornado only)",
    ),
    Contender(
        "circuitbreaker",
        circuitbreaker.CircuitBreakerError,
        lambda name, _: circuitbreaker.circuit(
            failure_threshold=THRESHOLD, recovery_timeout=HUGE, name=name
        ),
    ),
    Contender(
        "aiobreaker",
        aiobreaker.CircuitBreakerError,
        lambda name, _: aiobreaker.CircuitBreaker(
            fail_max=THRESHOLD, timeout_duration=dt.timedelta(seconds=HUGE), name=name
        ),
    ),
    Contender("purgatory", OpenedState, _purgatory),
    Contender(
        "pyresilience",
        pyresilience.CircuitOpenError,
        lambda name, _: pyresilience.resilient(
            circuit_breaker=pyresilience.CircuitBreakerConfig(
                failure_threshold=THRESHOLD, recovery_timeout=HUGE
            )
        ),
    ),
)
BARE = "bare call"
STALWART = "stalwart"


# -- the functions under test --------------------------------------------------------


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


# -- timed loops (each returns ns per call) ------------------------------------------


def _timed(run: Callable[[], int], calls: int) -> float:
    gc.collect()
    gc.disable()
    try:
        elapsed = run()
    finally:
        gc.enable()
    return elapsed / calls


def loop_sync(fn: Callable[[], Any], n: int) -> int:
    start = time.perf_counter_ns()
    for _ in range(n):
        fn()
    return time.perf_counter_ns() - start


def loop_sync_rejected(fn: Callable[[], Any], n: int, rejection: type[BaseException]) -> int:
    start = time.perf_counter_ns()
    for _ in range(n):
        try:  # noqa: SIM105 (contextlib.suppress would add its own cost to the loop)
            fn()
        except rejection:
            pass
    return time.perf_counter_ns() - start


async def loop_async(fn: Callable[[], Awaitable[Any]], n: int) -> int:
    start = time.perf_counter_ns()
    for _ in range(n):
        await fn()
    return time.perf_counter_ns() - start


async def loop_async_rejected(
    fn: Callable[[], Awaitable[Any]], n: int, rejection: type[BaseException]
) -> int:
    start = time.perf_counter_ns()
    for _ in range(n):
        try:  # noqa: SIM105 (contextlib.suppress would add its own cost to the loop)
            await fn()
        except rejection:
            pass
    return time.perf_counter_ns() - start


def loop_threads(fn: Callable[[], Any], per_thread: int, threads: int) -> int:
    """Wall time of ``threads`` threads each calling ``fn`` ``per_thread`` times."""
    barrier = threading.Barrier(threads + 1)

    def work() -> None:
        barrier.wait()
        for _ in range(per_thread):
            fn()

    workers = [threading.Thread(target=work, daemon=True) for _ in range(threads)]
    for worker in workers:
        worker.start()
    barrier.wait()
    start = time.perf_counter_ns()
    for worker in workers:
        worker.join()
    return time.perf_counter_ns() - start


# -- scenarios -----------------------------------------------------------------------


@dataclass(frozen=True)
class Scenario:
    key: str
    title: str
    budget_ns: float
    is_async: bool = False
    opened: bool = False
    threaded: bool = False


SCENARIOS: tuple[Scenario, ...] = (
    Scenario("sync-closed", "sync closed: decorated `def f(): return 1`, breaker closed", 200),
    Scenario("sync-rejection", "sync rejection: breaker open, rejection caught", 450, opened=True),
    Scenario("async-closed", "async closed: decorated `async def`, awaited", 300, is_async=True),
    Scenario(
        "async-rejection",
        "async rejection: breaker open, rejection caught",
        500,
        is_async=True,
        opened=True,
    ),
    Scenario("threads", "threads: one shared breaker, all threads calling", 400, threaded=True),
)


@dataclass(frozen=True)
class Sizes:
    rounds: int
    sync_calls: int
    async_calls: int
    thread_calls: int
    """Calls per thread."""
    threads: int


@dataclass
class Entry:
    """One contender in one scenario: how to time it once, and what it measured."""

    name: str
    measure: Callable[[int], float] | None
    """calls -> ns per call; None when the contender cannot do the scenario."""
    verify: Callable[[], None] = lambda: None
    """Checked after timing (e.g. the open function never ran)."""
    na: str = ""
    samples: list[float] = field(default_factory=list)
    overheads: list[float] = field(default_factory=list)


class Bench:
    def __init__(self, sizes: Sizes, runner: asyncio.Runner) -> None:
        self.sizes = sizes
        self.runner = runner
        self.notes: list[str] = []

    def calls(self, scenario: Scenario) -> int:
        if scenario.threaded:
            return self.sizes.thread_calls
        return self.sizes.async_calls if scenario.is_async else self.sizes.sync_calls

    # Building a scenario's entries ----------------------------------------------------

    def entries(self, scenario: Scenario) -> list[Entry]:
        bare = aone if scenario.is_async else one
        entries = [Entry(BARE, self.timer(scenario, bare, Boom))]
        for contender in CONTENDERS:
            if scenario.is_async and contender.no_async:
                entries.append(Entry(contender.name, None, na=contender.no_async))
                continue
            entries.append(self.entry(scenario, contender))
        return entries

    def entry(self, scenario: Scenario, contender: Contender) -> Entry:
        name = f"bench-{contender.name}-{scenario.key}"
        decorate = contender.make(name, scenario.is_async)
        where = f"{contender.name} / {scenario.key}"
        if not scenario.opened:
            fn = decorate(aone if scenario.is_async else one)
            self.check_closed(where, fn)
            return Entry(
                contender.name,
                self.timer(scenario, fn, contender.rejection),
                verify=lambda: self.check_closed(where, fn),
            )
        body = failing(scenario.is_async)
        fn = decorate(body.fn)
        self.open_by_failures(where, fn)
        if body.count != THRESHOLD:
            raise AdapterError(f"{where}: {body.count} failures ran, expected {THRESHOLD}")
        self.check_rejects(where, fn, contender.rejection, body)

        def verify() -> None:
            self.check_rejects(where, fn, contender.rejection, body)
            self.drop_traceback(fn, contender.rejection)

        return Entry(contender.name, self.timer(scenario, fn, contender.rejection), verify)

    def timer(
        self, scenario: Scenario, fn: Callable[[], Any], rejection: type[BaseException]
    ) -> Callable[[int], float]:
        threads = self.sizes.threads
        if scenario.threaded:
            return lambda n: _timed(lambda: loop_threads(fn, n, threads), n * threads)
        if scenario.is_async:
            if scenario.opened:
                return lambda n: _timed(lambda: self.run(loop_async_rejected(fn, n, rejection)), n)
            return lambda n: _timed(lambda: self.run(loop_async(fn, n)), n)
        if scenario.opened:
            return lambda n: _timed(lambda: loop_sync_rejected(fn, n, rejection), n)
        return lambda n: _timed(lambda: loop_sync(fn, n), n)

    # Sanity checks ----------------------------------------------------------------------

    def run(self, coro: Coroutine[Any, Any, int]) -> int:
        return self.runner.run(coro)

    def call(self, fn: Callable[[], Any]) -> Any:
        """Call ``fn`` once; if it gave an awaitable, await it (async scenarios)."""
        result = fn()
        if asyncio.iscoroutine(result):

            async def wait() -> Any:
                return await result

            result = self.run(wait())
        return result

    def check_closed(self, where: str, fn: Callable[[], Any]) -> None:
        if fn is one or fn is aone:
            raise AdapterError(f"{where}: the decorator returned the bare function")
        result = self.call(fn)
        if result != 1:
            raise AdapterError(f"{where}: closed breaker returned {result!r}, expected 1")

    def open_by_failures(self, where: str, fn: Callable[[], Any]) -> None:
        for _ in range(THRESHOLD):
            try:
                self.call(fn)
            except Exception:
                continue
            raise AdapterError(f"{where}: a failing call did not raise")

    def check_rejects(
        self, where: str, fn: Callable[[], Any], rejection: type[BaseException], body: Failing
    ) -> None:
        runs = body.count
        errors: list[BaseException] = []
        for _ in range(2):
            try:
                self.call(fn)
            except rejection as exc:
                errors.append(exc)
            except BaseException as exc:
                raise AdapterError(
                    f"{where}: open breaker raised {type(exc).__name__}, "
                    f"expected {rejection.__name__}"
                ) from exc
            else:
                raise AdapterError(f"{where}: open breaker let a call through")
        if body.count != runs or body.count != THRESHOLD:
            raise AdapterError(f"{where}: the function ran while the breaker was open")
        if errors[0] is errors[1]:
            self.note(
                f"{where}: every rejection re-raises ONE exception instance, "
                "whose __traceback__ grows by a few frames per rejected call (memory grows "
                "while open; the bench clears it after each timed run)"
            )

    def drop_traceback(self, fn: Callable[[], Any], rejection: type[BaseException]) -> None:
        """Free the traceback chain of a peer that re-raises one exception instance."""
        try:
            self.call(fn)
        except rejection as exc:
            exc.__traceback__ = None

    def note(self, text: str) -> None:
        if text not in self.notes:
            self.notes.append(text)


# -- measuring -----------------------------------------------------------------------


@dataclass
class Result:
    scenario: Scenario
    calls: int
    entries: list[Entry]


def measure(bench: Bench, scenarios: list[Scenario], log: Callable[[str], None]) -> list[Result]:
    results = [Result(s, bench.calls(s), bench.entries(s)) for s in scenarios]
    rounds = bench.sizes.rounds
    for r in range(-1, rounds):  # round -1 warms up and is dropped
        warm = r < 0
        log("warm-up round" if warm else f"round {r + 1}/{rounds}")
        for result in results:
            entries = [e for e in result.entries if e.measure is not None]
            shift = max(r, 0) % len(entries)
            order = entries[shift:] + entries[:shift]
            calls = max(result.calls // 10, 1) if warm else result.calls
            figures: dict[str, float] = {}
            for entry in order:
                assert entry.measure is not None
                figures[entry.name] = entry.measure(calls)
                entry.verify()
            if warm:
                continue
            bare = figures[BARE]
            for entry in entries:
                entry.samples.append(figures[entry.name])
                entry.overheads.append(figures[entry.name] - bare)
    return results


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
    for contender in CONTENDERS:
        functions[contender.name] = contender.make(f"bench-{contender.name}-probe", False)(slow)
    in_flight: dict[str, float] = {}
    for name, fn in functions.items():
        if fn() != 1:
            raise AdapterError(f"{name} / probe: closed breaker did not return 1")
        best = min(loop_threads(fn, 1, threads) for _ in range(3))
        in_flight[name] = threads * PROBE_SLEEP * 1e9 / best
    return in_flight


# -- reporting -----------------------------------------------------------------------


def machine() -> dict[str, Any]:
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as info:
            for line in info:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None
    return {
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "cpu": cpu,
        "cores": os.cpu_count(),
        "usable_cores": usable,
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "platform": platform.platform(),
        "gil": getattr(sys, "_is_gil_enabled", lambda: True)(),
        "versions": {
            name: importlib.metadata.version(name) for name in ("stalwart", *PEER_PACKAGES)
        },
    }


def median(values: list[float]) -> float:
    return statistics.median(values)


@dataclass(frozen=True)
class Summary:
    overhead: float | None
    best_peer: str | None
    best_overhead: float | None

    @property
    def ratio(self) -> float | None:
        if self.overhead is None or self.best_overhead is None or self.best_overhead <= 0:
            return None
        return self.overhead / self.best_overhead


def summarise(result: Result) -> Summary:
    measured = {e.name: median(e.overheads) for e in result.entries if e.overheads}
    peers = {k: v for k, v in measured.items() if k not in (BARE, STALWART)}
    best = min(peers, key=peers.__getitem__) if peers else None
    return Summary(measured.get(STALWART), best, peers[best] if best else None)


@dataclass
class Report:
    info: dict[str, Any]
    sizes: Sizes
    command: str
    results: list[Result]
    notes: list[str]
    in_flight: dict[str, float] | None
    """Concurrency probe: calls in flight at once per contender (None: not run)."""


def plural(count: int, noun: str) -> str:
    return f"{count} {noun}{'' if count == 1 else 's'}"


def _ns(value: float) -> str:
    return f"{value:,.0f}" if abs(value) >= 100 else f"{value:,.1f}"


def render(report: Report) -> str:
    info, sizes, results = report.info, report.sizes, report.results
    out: list[str] = []
    add = out.append
    add("stalwart circuit-breaker benchmark")
    add(f"  date     {info['date']}")
    cores = info["cores"]
    if info["usable_cores"] not in (None, cores):
        cores = f"{cores} ({info['usable_cores']} usable)"
    add(f"  machine  {info['cpu']}, {cores} cores, {info['platform']}")
    add(f"  python   {info['python']} (GIL {'on' if info['gil'] else 'off'})")
    add("  versions " + ", ".join(f"{k} {v}" for k, v in info["versions"].items()))
    add(f"  command  {report.command}")
    add(
        f"  method   {plural(sizes.rounds, 'interleaved round')} after a warm-up, GC off in the "
        "loops; per call = median over rounds;"
    )
    add(
        "           overhead = median over rounds of (contender - bare call);"
        " x stalwart = overhead / stalwart's"
    )
    for index, result in enumerate(results, 1):
        scenario = result.scenario
        title = scenario.title
        if scenario.threaded:
            title = f"{sizes.threads} {title}"
            size = f"{sizes.threads} threads x {result.calls:,} calls"
        else:
            size = f"{result.calls:,} calls"
        add("")
        add(f"{index}. {title}  [{size}, {plural(sizes.rounds, 'round')}]")
        head = f"  {'contender':<15} {'per call ns':>12} {'overhead ns':>12} {'range':>17}"
        add(f"{head} {'x stalwart':>11}")
        add("  " + "-" * (len(head) + 10))
        summary = summarise(result)
        for entry in result.entries:
            if not entry.samples:
                add(f"  {entry.name:<15} {'N/A':>12}   {entry.na}")
                continue
            per_call = _ns(median(entry.samples))
            if entry.name == BARE:
                add(f"  {entry.name:<15} {per_call:>12} {'-':>12}")
                continue
            overhead = median(entry.overheads)
            spread = f"{_ns(min(entry.overheads))}..{_ns(max(entry.overheads))}"
            times = ""
            if summary.overhead and summary.overhead > 0 and entry.name != STALWART:
                times = f"{overhead / summary.overhead:.1f}x"
            add(f"  {entry.name:<15} {per_call:>12} {_ns(overhead):>12} {spread:>17} {times:>11}")
        if summary.ratio is not None:
            add(
                f"  stalwart overhead / best peer overhead ({summary.best_peer}, "
                f"{_ns(summary.best_overhead or 0)} ns) = {summary.ratio:.2f}"
            )
    add("")
    add("budgets: stalwart overhead over the bare call (median)")
    for result in results:
        summary = summarise(result)
        scenario = result.scenario
        if summary.overhead is None:
            continue
        verdict = "pass" if summary.overhead <= scenario.budget_ns else "OVER"
        label = f"{sizes.threads} threads" if scenario.threaded else scenario.key
        add(
            f"  {label:<16} {_ns(summary.overhead):>8} ns  <= {scenario.budget_ns:>4.0f} ns  "
            f"{verdict}"
        )
    if report.in_flight is not None:
        add("")
        add(
            f"concurrency probe: {sizes.threads} threads each make one call that sleeps "
            f"{PROBE_SLEEP * 1000:.0f} ms through one shared closed breaker"
        )
        for name, flying in report.in_flight.items():
            verdict = "  <- serialises the protected calls" if flying < 1.5 else ""
            add(f"  {name:<15} {flying:>5.1f} calls in flight{verdict}")
    if report.notes:
        add("")
        add("notes from the sanity checks:")
        out.extend(f"  - {note}" for note in report.notes)
    return "\n".join(line.rstrip() for line in out)


def as_json(report: Report) -> dict[str, Any]:
    sizes = report.sizes
    scenarios = []
    for result in report.results:
        summary = summarise(result)
        contenders = {
            e.name: (
                {
                    "per_call_ns": median(e.samples),
                    "overhead_ns": median(e.overheads),
                    "samples_ns": e.samples,
                    "overheads_ns": e.overheads,
                }
                if e.samples
                else {"na": e.na}
            )
            for e in result.entries
        }
        scenarios.append(
            {
                "scenario": result.scenario.key,
                "title": result.scenario.title,
                "calls": result.calls,
                "threads": sizes.threads if result.scenario.threaded else 1,
                "contenders": contenders,
                "stalwart_overhead_ns": summary.overhead,
                "best_peer": summary.best_peer,
                "best_peer_overhead_ns": summary.best_overhead,
                "ratio_to_best_peer": summary.ratio,
                "budget_ns": result.scenario.budget_ns,
                "within_budget": summary.overhead is not None
                and summary.overhead <= result.scenario.budget_ns,
            }
        )
    return {
        "machine": report.info,
        "command": report.command,
        "rounds": sizes.rounds,
        "scenarios": scenarios,
        "concurrency_probe_in_flight": report.in_flight,
        "notes": report.notes,
    }


# -- command line --------------------------------------------------------------------


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Circuit-breaker overhead: stalwart and its peers, side by side."
    )
    parser.add_argument("--quick", action="store_true", help="3 rounds, a tenth of the calls")
    parser.add_argument("--json", action="store_true", help="print JSON instead of the tables")
    parser.add_argument("--rounds", type=int, help="measured rounds (default 7, quick 3)")
    parser.add_argument("--sync-calls", type=int, help="calls per sync loop (default 200000)")
    parser.add_argument("--async-calls", type=int, help="awaits per async loop (default 100000)")
    parser.add_argument(
        "--thread-calls", type=int, help="calls per thread in the threads scenario (default 50000)"
    )
    parser.add_argument("--threads", type=int, default=8, help="threads (default 8)")
    parser.add_argument(
        "--no-probe", action="store_true", help="skip the concurrency probe (threads scenario)"
    )
    parser.add_argument(
        "--scenario",
        action="append",
        choices=[s.key for s in SCENARIOS],
        help="run only this scenario (repeatable)",
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    scale = 10 if args.quick else 1
    sizes = Sizes(
        rounds=args.rounds or (3 if args.quick else 7),
        sync_calls=args.sync_calls or 200_000 // scale,
        async_calls=args.async_calls or 100_000 // scale,
        thread_calls=args.thread_calls or 50_000 // scale,
        threads=args.threads,
    )
    if min(sizes.rounds, sizes.sync_calls, sizes.async_calls, sizes.thread_calls) < 1:
        raise SystemExit("rounds and call counts must be >= 1")
    if sizes.threads < 1:
        raise SystemExit("--threads must be >= 1")
    scenarios = [s for s in SCENARIOS if not args.scenario or s.key in args.scenario]

    def log(text: str) -> None:
        print(f"  ... {text}", file=sys.stderr, flush=True)

    command = " ".join(["bench/breaker.py", *sys.argv[1:]])
    with asyncio.Runner() as runner:
        bench = Bench(sizes, runner)
        try:
            results = measure(bench, scenarios, log)
            in_flight = None
            if any(s.threaded for s in scenarios) and not args.no_probe:
                log("concurrency probe")
                in_flight = probe_concurrency(sizes.threads)
        except AdapterError as exc:
            raise SystemExit(f"sanity check failed: {exc}") from exc
    report = Report(machine(), sizes, command, results, bench.notes, in_flight)
    print(json.dumps(as_json(report), indent=2) if args.json else render(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
