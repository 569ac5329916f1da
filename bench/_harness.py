"""The method shared by every benchmark in ``bench/``: time contenders side by side.

A benchmark is a :class:`Bench`: some :class:`Scenario` s, each with a bare baseline and a
table of :class:`Contender` s, plus budgets for the focus contender (stalwart).
:func:`main` runs it with the standard options (``--quick``, ``--json``, ``--rounds``,
``--scenario`` ...) and prints the usual report: machine info, one table per scenario,
the budget lines, any :class:`Extra` sections, the notes.

Method: every contender (the bare call included) is measured once per round and the rounds
are interleaved, the order rotating from round to round; a warm-up round at a tenth of the
size is run first and dropped. A contender's figure is the median over rounds of its
per-call time; its overhead is the median over rounds of (its per-call time - the bare
call's, same round). The garbage collector is off inside the timed loops (as in ``timeit``),
with a ``gc.collect()`` before each. Each contender's sanity check runs once it is built
and again after every timed run; a failing one (:class:`AdapterError`) stops the run with
exit code 1. Otherwise the report always exits 0, budgets over or not.

A whole benchmark (``bench/example.py``)::

    import sys

    import circuitbreaker
    from _harness import Bench, Contender, Scenario, main, returns

    import stalwart


    def one() -> int:
        return 1


    def scenarios() -> list[Scenario]:
        return [
            Scenario(
                "closed",
                "closed: decorated `def f(): return 1`",
                bare=one,
                contenders=[
                    Contender(
                        "stalwart",
                        lambda: stalwart.CircuitBreaker("ex")(one),
                        check=returns(1),
                    ),
                    Contender(
                        "circuitbreaker",
                        lambda: circuitbreaker.circuit(name="ex")(one),
                        check=returns(1),
                    ),
                ],
            )
        ]


    if __name__ == "__main__":
        bench = Bench(
            "stalwart example benchmark",
            "Example: stalwart and one peer.",
            packages=("stalwart", "circuitbreaker"),
            scenarios=scenarios(),
            budgets={"closed": 200},
        )
        sys.exit(main(bench))

A scenario is sync (``def`` called in a loop), async (``async def`` awaited in a loop inside
one coroutine, one event loop for the whole run) or threaded (``sizes.threads`` threads
released together by a barrier; the figure is wall time / total calls). A contender's
``make`` builds a fresh zero-argument callable once per run; ``expect`` names an exception
every call raises and the loop catches (then the bare baseline runs in the same
``try/except`` loop, never raising, so the loop cancels out).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import gc
import importlib.metadata
import inspect
import json
import os
import platform
import statistics
import sys
import threading
import time
from collections.abc import Awaitable, Callable, Coroutine, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

BARE = "bare call"
"""The name of every scenario's baseline row."""

Fn = Callable[[], Any]
"""What is timed: called (or awaited) with no arguments, once per loop iteration."""
Check = Callable[[Fn], None]
"""A sanity check of a built contender; raises :class:`AdapterError` when it misbehaves."""


class AdapterError(RuntimeError):
    """A contender did not behave as its scenario needs: the run stops."""


# -- what a benchmark declares ---------------------------------------------------------


@dataclass(frozen=True)
class Contender:
    """One row of a scenario's table."""

    name: str
    make: Callable[[], Fn] | None
    """Build the callable to time (once per run, before timing). None: N/A, see ``na``."""
    expect: type[BaseException] | None = None
    """The exception every call raises, caught by the timed loop (None: calls return)."""
    check: Check | None = None
    """Run on the built callable before timing and after every timed run."""
    na: str = ""
    """Why the contender cannot do this scenario (shown instead of figures)."""
    reference: bool = False
    """A yardstick timed like the others (a bare raise, say), not a peer: it is left out
    of the best-peer comparison and can be the denominator of a ratio budget."""


@dataclass(frozen=True)
class Scenario:
    """One table: a bare baseline and the contenders, timed in the same kind of loop."""

    key: str
    """Short name: ``--scenario KEY``, the budget lines, the JSON."""
    title: str
    """Heading of the table; ``{threads}`` is replaced by the thread count."""
    bare: Fn
    """The unprotected call, the baseline of every overhead."""
    contenders: Sequence[Contender]
    is_async: bool = False
    """``bare`` and every made callable return awaitables, awaited in the loop."""
    threaded: bool = False
    """Timed under ``sizes.threads`` threads at once (sync callables only)."""
    label: str = ""
    """Name on the budget line (default: ``key``); ``{threads}`` as in ``title``."""

    def __post_init__(self) -> None:
        if self.is_async and self.threaded:
            raise ValueError(f"{self.key}: a scenario is async or threaded, not both")
        names = [c.name for c in self.contenders]
        if len(set(names)) != len(names) or BARE in names:
            raise ValueError(f"{self.key}: contender names must be unique and not {BARE!r}")

    @property
    def expects(self) -> bool:
        """Is the loop a ``try/except`` one (some contender raises on every call)?"""
        return any(c.expect is not None for c in self.contenders)


@dataclass(frozen=True)
class Sizes:
    rounds: int = 7
    sync_calls: int = 200_000
    async_calls: int = 100_000
    """Awaits per async loop."""
    thread_calls: int = 50_000
    """Calls per thread."""
    threads: int = 8

    def calls(self, scenario: Scenario) -> int:
        if scenario.threaded:
            return self.thread_calls
        return self.async_calls if scenario.is_async else self.sync_calls

    def quick(self) -> Sizes:
        """``--quick``: 3 rounds, a tenth of the calls."""
        return Sizes(
            rounds=3,
            sync_calls=max(self.sync_calls // 10, 1),
            async_calls=max(self.async_calls // 10, 1),
            thread_calls=max(self.thread_calls // 10, 1),
            threads=self.threads,
        )


@dataclass(frozen=True)
class Run:
    """The run in progress, as extras and option hooks see it."""

    bench: Bench
    sizes: Sizes
    scenarios: Sequence[Scenario]
    """The scenarios selected by ``--scenario`` (all by default)."""
    args: argparse.Namespace
    log: Callable[[str], None]


@dataclass(frozen=True)
class Extra:
    """A section of the report that is not a timing table (e.g. a concurrency probe).

    It runs after the timing, inside the same event loop; its text follows the budget lines.
    """

    key: str
    """JSON key of its figures (null when it did not run)."""
    measure: Callable[[Run], Any]
    """Return JSON-able figures, or None to skip (the section is then left out)."""
    render: Callable[[Any, Run], list[str]]
    """The text lines of the figures."""


@dataclass(frozen=True)
class Bench:
    title: str
    """First line of the report, e.g. ``stalwart circuit-breaker benchmark``."""
    description: str
    """``--help`` description."""
    packages: Sequence[str]
    """Distributions whose versions the report lists (the focus first)."""
    scenarios: Sequence[Scenario]
    budgets: Mapping[str, float] = field(default_factory=dict)
    """scenario key -> the most ns of overhead the focus contender may add."""
    ratio_budgets: Mapping[str, tuple[str, float]] = field(default_factory=dict)
    """scenario key -> (a reference contender, the most the focus contender's overhead may
    be as a multiple of that reference's overhead; median of the per-round ratios)."""
    focus: str = "stalwart"
    """The contender compared with the best of the others (the peers)."""
    sizes: Sizes = Sizes()
    """Default sizes (``--quick`` divides the calls by 10 and makes 3 rounds)."""
    extras: Sequence[Extra] = ()
    options: Callable[[argparse.ArgumentParser], None] | None = None
    """Adds the benchmark's own command-line options (read them in ``Run.args``)."""

    def __post_init__(self) -> None:
        keys = [s.key for s in self.scenarios]
        if len(set(keys)) != len(keys):
            raise ValueError("scenario keys must be unique")
        if unknown := set(self.budgets) - set(keys):
            raise ValueError(f"budgets for unknown scenarios: {sorted(unknown)}")
        by_key = {s.key: s for s in self.scenarios}
        for key, (reference, _) in self.ratio_budgets.items():
            if key not in by_key:
                raise ValueError(f"ratio budget for an unknown scenario: {key!r}")
            if not any(c.name == reference and c.reference for c in by_key[key].contenders):
                raise ValueError(f"{key}: {reference!r} is not a reference contender")


# -- helpers for adapters and checks ---------------------------------------------------


class _Session:
    """What checks reach without being passed it: the event loop and the notes."""

    def __init__(self) -> None:
        self.runner: asyncio.Runner | None = None
        self.notes: list[str] = []
        self.where = ""


_session = _Session()


def run(coro: Coroutine[Any, Any, Any]) -> Any:
    """Run ``coro`` on the benchmark's event loop (one loop for the whole run)."""
    if _session.runner is None:
        return asyncio.run(coro)
    return _session.runner.run(coro)


def call(fn: Fn) -> Any:
    """Call ``fn`` once; if it gave an awaitable, await it on the benchmark's event loop."""
    result = fn()
    if inspect.isawaitable(result):
        awaitable: Awaitable[Any] = result

        async def wait() -> Any:
            return await awaitable

        result = run(wait())
    return result


def note(text: str) -> None:
    """Add a line to the report's notes, once (prefixed with the contender / scenario
    whose ``make`` or ``check`` is running)."""
    if _session.where:
        text = f"{_session.where}: {text}"
    if text not in _session.notes:
        _session.notes.append(text)


def returns(value: object) -> Check:
    """A check: one call gives ``value``."""

    def check(fn: Fn) -> None:
        result = call(fn)
        if result != value:
            raise AdapterError(f"returned {result!r}, expected {value!r}")

    return check


@contextlib.contextmanager
def _about(where: str) -> Iterator[None]:
    """Name the contender in notes and in the message of a failed check."""
    _session.where = where
    try:
        yield
    except AdapterError as exc:
        raise AdapterError(f"{where}: {exc}") from exc
    finally:
        _session.where = ""


# -- timed loops (each returns elapsed ns) ---------------------------------------------


class _NeverRaised(Exception):
    """Caught by the bare baseline's ``try/except`` loop, never raised."""


def timed(run: Callable[[], int], calls: int) -> float:
    """ns per call of ``run()`` (elapsed ns of ``calls`` calls), with the GC off."""
    gc.collect()
    gc.disable()
    try:
        elapsed = run()
    finally:
        gc.enable()
    return elapsed / calls


def loop_sync(fn: Fn, n: int) -> int:
    start = time.perf_counter_ns()
    for _ in range(n):
        fn()
    return time.perf_counter_ns() - start


def loop_sync_expecting(fn: Fn, n: int, expect: type[BaseException]) -> int:
    start = time.perf_counter_ns()
    for _ in range(n):
        try:  # noqa: SIM105 (contextlib.suppress would add its own cost to the loop)
            fn()
        except expect:
            pass
    return time.perf_counter_ns() - start


async def loop_async(fn: Callable[[], Awaitable[Any]], n: int) -> int:
    start = time.perf_counter_ns()
    for _ in range(n):
        await fn()
    return time.perf_counter_ns() - start


async def loop_async_expecting(
    fn: Callable[[], Awaitable[Any]], n: int, expect: type[BaseException]
) -> int:
    start = time.perf_counter_ns()
    for _ in range(n):
        try:  # noqa: SIM105 (contextlib.suppress would add its own cost to the loop)
            await fn()
        except expect:
            pass
    return time.perf_counter_ns() - start


def loop_threads(
    fn: Fn, per_thread: int, threads: int, expect: type[BaseException] | None = None
) -> int:
    """Wall time of ``threads`` threads each calling ``fn`` ``per_thread`` times."""
    barrier = threading.Barrier(threads + 1)

    def work() -> None:
        barrier.wait()
        for _ in range(per_thread):
            fn()

    def work_expecting() -> None:
        assert expect is not None
        barrier.wait()
        for _ in range(per_thread):
            try:  # noqa: SIM105 (contextlib.suppress would add its own cost to the loop)
                fn()
            except expect:
                pass

    target = work if expect is None else work_expecting
    workers = [threading.Thread(target=target, daemon=True) for _ in range(threads)]
    for worker in workers:
        worker.start()
    barrier.wait()
    start = time.perf_counter_ns()
    for worker in workers:
        worker.join()
    return time.perf_counter_ns() - start


def timer(
    scenario: Scenario, fn: Fn, expect: type[BaseException] | None, threads: int
) -> Callable[[int], float]:
    """calls -> ns per call of ``fn`` in the scenario's kind of loop."""
    if scenario.threaded:
        return lambda n: timed(lambda: loop_threads(fn, n, threads, expect), n * threads)
    if scenario.is_async:
        if expect is not None:
            caught = expect
            return lambda n: timed(lambda: run(loop_async_expecting(fn, n, caught)), n)
        return lambda n: timed(lambda: run(loop_async(fn, n)), n)
    if expect is not None:
        caught = expect
        return lambda n: timed(lambda: loop_sync_expecting(fn, n, caught), n)
    return lambda n: timed(lambda: loop_sync(fn, n), n)


# -- measuring -------------------------------------------------------------------------


@dataclass
class Entry:
    """One row in one scenario: how to time it once, and what it measured."""

    name: str
    measure: Callable[[int], float] | None
    """calls -> ns per call; None when the contender cannot do the scenario."""
    verify: Callable[[], None] = lambda: None
    """Checked after every timed run."""
    na: str = ""
    samples: list[float] = field(default_factory=list)
    """ns per call, one per measured round."""
    reference: bool = False
    overheads: list[float] = field(default_factory=list)
    """ns per call minus the bare call's of the same round, one per measured round."""


@dataclass
class Result:
    scenario: Scenario
    calls: int
    entries: list[Entry]


def entries(scenario: Scenario, sizes: Sizes) -> list[Entry]:
    """Build (and check) every contender of ``scenario``."""
    bare_expect = _NeverRaised if scenario.expects else None
    rows = [Entry(BARE, timer(scenario, scenario.bare, bare_expect, sizes.threads))]
    references = {c.name for c in scenario.contenders if c.reference}
    for contender in scenario.contenders:
        if contender.make is None:
            rows.append(Entry(contender.name, None, na=contender.na))
            continue
        where = f"{contender.name} / {scenario.key}"
        with _about(where):
            fn = contender.make()
            if fn is scenario.bare:
                raise AdapterError("make() returned the bare function itself")
            if contender.check is not None:
                contender.check(fn)
        rows.append(
            Entry(
                contender.name,
                timer(scenario, fn, contender.expect, sizes.threads),
                _verifier(where, fn, contender.check),
                reference=contender.name in references,
            )
        )
    return rows


def _verifier(where: str, fn: Fn, check: Check | None) -> Callable[[], None]:
    if check is None:
        return lambda: None

    def verify() -> None:
        with _about(where):
            check(fn)

    return verify


def measure(
    scenarios: Sequence[Scenario], sizes: Sizes, log: Callable[[str], None]
) -> list[Result]:
    """Build every contender, then time them all in interleaved rounds (see the module)."""
    results = [Result(s, sizes.calls(s), entries(s, sizes)) for s in scenarios]
    rounds = sizes.rounds
    for r in range(-1, rounds):  # round -1 warms up and is dropped
        warm = r < 0
        log("warm-up round" if warm else f"round {r + 1}/{rounds}")
        for result in results:
            timed_entries = [e for e in result.entries if e.measure is not None]
            shift = max(r, 0) % len(timed_entries)
            order = timed_entries[shift:] + timed_entries[:shift]
            calls = max(result.calls // 10, 1) if warm else result.calls
            figures: dict[str, float] = {}
            for entry in order:
                assert entry.measure is not None
                figures[entry.name] = entry.measure(calls)
                entry.verify()
            if warm:
                continue
            bare = figures[BARE]
            for entry in timed_entries:
                entry.samples.append(figures[entry.name])
                entry.overheads.append(figures[entry.name] - bare)
    return results


def median(values: Sequence[float]) -> float:
    return statistics.median(values)


@dataclass(frozen=True)
class Summary:
    """The focus contender's overhead against the best peer's, in one scenario."""

    overhead: float | None
    best_peer: str | None
    best_overhead: float | None

    @property
    def ratio(self) -> float | None:
        if self.overhead is None or self.best_overhead is None or self.best_overhead <= 0:
            return None
        return self.overhead / self.best_overhead


def summarise(result: Result, focus: str) -> Summary:
    measured = {e.name: median(e.overheads) for e in result.entries if e.overheads}
    references = {e.name for e in result.entries if e.reference}
    peers = {k: v for k, v in measured.items() if k not in (BARE, focus, *references)}
    best = min(peers, key=peers.__getitem__) if peers else None
    return Summary(measured.get(focus), best, peers[best] if best else None)


# -- reporting -------------------------------------------------------------------------


def machine(packages: Sequence[str]) -> dict[str, Any]:
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
        "versions": {name: importlib.metadata.version(name) for name in packages},
    }


@dataclass
class Report:
    bench: Bench
    info: dict[str, Any]
    sizes: Sizes
    command: str
    results: list[Result]
    notes: list[str]
    extras: dict[str, Any]
    """Extra key -> its figures (None: it did not run)."""


def plural(count: int, noun: str) -> str:
    return f"{count} {noun}{'' if count == 1 else 's'}"


def ns(value: float) -> str:
    """A figure in ns: thousands separators, one decimal below 100."""
    return f"{value:,.0f}" if abs(value) >= 100 else f"{value:,.1f}"


def _threads(text: str, sizes: Sizes) -> str:
    return text.replace("{threads}", str(sizes.threads))


def title(scenario: Scenario, sizes: Sizes) -> str:
    return _threads(scenario.title, sizes)


def label(scenario: Scenario, sizes: Sizes) -> str:
    return _threads(scenario.label or scenario.key, sizes)


def render_header(report: Report) -> list[str]:
    info, sizes, focus = report.info, report.sizes, report.bench.focus
    cores = info["cores"]
    if info["usable_cores"] not in (None, cores):
        cores = f"{cores} ({info['usable_cores']} usable)"
    return [
        report.bench.title,
        f"  date     {info['date']}",
        f"  machine  {info['cpu']}, {cores} cores, {info['platform']}",
        f"  python   {info['python']} (GIL {'on' if info['gil'] else 'off'})",
        "  versions " + ", ".join(f"{k} {v}" for k, v in info["versions"].items()),
        f"  command  {report.command}",
        f"  method   {plural(sizes.rounds, 'interleaved round')} after a warm-up, GC off in the "
        "loops; per call = median over rounds;",
        "           overhead = median over rounds of (contender - bare call);"
        f" x {focus} = overhead / {focus}'s",
    ]


def render_table(index: int, result: Result, report: Report) -> list[str]:
    sizes, focus = report.sizes, report.bench.focus
    scenario = result.scenario
    if scenario.threaded:
        size = f"{sizes.threads} threads x {result.calls:,} calls"
    else:
        size = f"{result.calls:,} calls"
    head = f"  {'contender':<15} {'per call ns':>12} {'overhead ns':>12} {'range':>17}"
    out = [
        "",
        f"{index}. {title(scenario, sizes)}  [{size}, {plural(sizes.rounds, 'round')}]",
        f"{head} {'x ' + focus:>11}",
        "  " + "-" * (len(head) + 10),
    ]
    summary = summarise(result, focus)
    for entry in result.entries:
        if not entry.samples:
            out.append(f"  {entry.name:<15} {'N/A':>12}   {entry.na}")
            continue
        per_call = ns(median(entry.samples))
        if entry.name == BARE:
            out.append(f"  {entry.name:<15} {per_call:>12} {'-':>12}")
            continue
        overhead = median(entry.overheads)
        spread = f"{ns(min(entry.overheads))}..{ns(max(entry.overheads))}"
        times = ""
        if summary.overhead and summary.overhead > 0 and entry.name != focus:
            times = f"{overhead / summary.overhead:.1f}x"
        out.append(f"  {entry.name:<15} {per_call:>12} {ns(overhead):>12} {spread:>17} {times:>11}")
    if summary.ratio is not None:
        out.append(
            f"  {focus} overhead / best peer overhead ({summary.best_peer}, "
            f"{ns(summary.best_overhead or 0)} ns) = {summary.ratio:.2f}"
        )
    return out


def render_budgets(report: Report) -> list[str]:
    budgets, focus = report.bench.budgets, report.bench.focus
    out = ["", f"budgets: {focus} overhead over the bare call (median)"]
    for result in report.results:
        summary = summarise(result, focus)
        budget = budgets.get(result.scenario.key)
        if summary.overhead is None or budget is None:
            continue
        verdict = "pass" if summary.overhead <= budget else "OVER"
        name = label(result.scenario, report.sizes)
        out.append(f"  {name:<16} {ns(summary.overhead):>8} ns  <= {budget:>4.0f} ns  {verdict}")
    out.extend(render_ratio_budgets(report))
    return out if len(out) > 2 else []


def ratio_to(result: Result, focus: str, reference: str) -> float | None:
    """Median over rounds of (focus overhead / reference overhead), same round."""
    rows = {e.name: e.overheads for e in result.entries}
    mine, theirs = rows.get(focus), rows.get(reference)
    if not mine or not theirs:
        return None
    ratios = [a / b for a, b in zip(mine, theirs, strict=True) if b > 0]
    return median(ratios) if ratios else None


def render_ratio_budgets(report: Report) -> list[str]:
    focus, out = report.bench.focus, []
    for result in report.results:
        budget = report.bench.ratio_budgets.get(result.scenario.key)
        if budget is None:
            continue
        reference, most = budget
        ratio = ratio_to(result, focus, reference)
        if ratio is None:
            continue
        verdict = "pass" if ratio <= most else "OVER"
        name = label(result.scenario, report.sizes)
        out.append(f"  {name:<16} {ratio:>8.2f} x {reference} <= {most:.2f} x  {verdict}")
    return out


def render(report: Report, run: Run) -> str:
    out = render_header(report)
    for index, result in enumerate(report.results, 1):
        out.extend(render_table(index, result, report))
    out.extend(render_budgets(report))
    for extra in report.bench.extras:
        figures = report.extras.get(extra.key)
        if figures is not None:
            out.append("")
            out.extend(extra.render(figures, run))
    if report.notes:
        out.append("")
        out.append("notes from the sanity checks:")
        out.extend(f"  - {text}" for text in report.notes)
    return "\n".join(line.rstrip() for line in out)


def as_json(report: Report) -> dict[str, Any]:
    sizes, focus = report.sizes, report.bench.focus
    scenarios = []
    for result in report.results:
        summary = summarise(result, focus)
        budget = report.bench.budgets.get(result.scenario.key)
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
                "title": title(result.scenario, sizes),
                "calls": result.calls,
                "threads": sizes.threads if result.scenario.threaded else 1,
                "contenders": contenders,
                f"{focus}_overhead_ns": summary.overhead,
                "best_peer": summary.best_peer,
                "best_peer_overhead_ns": summary.best_overhead,
                "ratio_to_best_peer": summary.ratio,
                "budget_ns": budget,
                "within_budget": None
                if budget is None
                else summary.overhead is not None and summary.overhead <= budget,
                **_ratio_json(report, result),
            }
        )
    return {
        "machine": report.info,
        "command": report.command,
        "rounds": sizes.rounds,
        "scenarios": scenarios,
        **report.extras,
        "notes": report.notes,
    }


def _ratio_json(report: Report, result: Result) -> dict[str, Any]:
    budget = report.bench.ratio_budgets.get(result.scenario.key)
    if budget is None:
        return {}
    reference, most = budget
    ratio = ratio_to(result, report.bench.focus, reference)
    return {
        "ratio_reference": reference,
        "ratio_to_reference": ratio,
        "ratio_budget": most,
        "within_ratio_budget": ratio is not None and ratio <= most,
    }


# -- command line ----------------------------------------------------------------------


def parser(bench: Bench) -> argparse.ArgumentParser:
    """The standard options; the sizes ones only when some scenario uses them."""
    kinds = {
        ("threads" if s.threaded else "async" if s.is_async else "sync") for s in bench.scenarios
    }
    default = bench.sizes
    quick = default.quick()
    p = argparse.ArgumentParser(description=bench.description)
    p.add_argument("--quick", action="store_true", help="3 rounds, a tenth of the calls")
    p.add_argument("--json", action="store_true", help="print JSON instead of the tables")
    p.add_argument(
        "--rounds",
        type=int,
        help=f"measured rounds (default {default.rounds}, quick {quick.rounds})",
    )
    if "sync" in kinds:
        p.add_argument(
            "--sync-calls", type=int, help=f"calls per sync loop (default {default.sync_calls})"
        )
    if "async" in kinds:
        p.add_argument(
            "--async-calls",
            type=int,
            help=f"awaits per async loop (default {default.async_calls})",
        )
    if "threads" in kinds:
        p.add_argument(
            "--thread-calls",
            type=int,
            help=f"calls per thread in the threads scenario (default {default.thread_calls})",
        )
        p.add_argument(
            "--threads",
            type=int,
            default=default.threads,
            help=f"threads (default {default.threads})",
        )
    if bench.options is not None:
        bench.options(p)
    p.add_argument(
        "--scenario",
        action="append",
        choices=[s.key for s in bench.scenarios],
        help="run only this scenario (repeatable)",
    )
    return p


def sizes_from(bench: Bench, args: argparse.Namespace) -> Sizes:
    base = bench.sizes.quick() if args.quick else bench.sizes
    sizes = Sizes(
        rounds=args.rounds or base.rounds,
        sync_calls=getattr(args, "sync_calls", None) or base.sync_calls,
        async_calls=getattr(args, "async_calls", None) or base.async_calls,
        thread_calls=getattr(args, "thread_calls", None) or base.thread_calls,
        threads=getattr(args, "threads", base.threads),
    )
    if min(sizes.rounds, sizes.sync_calls, sizes.async_calls, sizes.thread_calls) < 1:
        raise SystemExit("rounds and call counts must be >= 1")
    if sizes.threads < 1:
        raise SystemExit("--threads must be >= 1")
    return sizes


def log(text: str) -> None:
    """Progress, on stderr (stdout carries only the report)."""
    print(f"  ... {text}", file=sys.stderr, flush=True)


def main(bench: Bench, argv: Sequence[str] | None = None) -> int:
    """Run ``bench`` with the standard options (``argv``: default ``sys.argv[1:]``)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parser(bench).parse_args(argv)
    sizes = sizes_from(bench, args)
    scenarios = [s for s in bench.scenarios if not args.scenario or s.key in args.scenario]
    command = " ".join([f"bench/{Path(sys.argv[0]).name}", *argv])
    current = Run(bench, sizes, scenarios, args, log)
    _session.notes = []
    extras: dict[str, Any] = {}
    with asyncio.Runner() as runner:
        _session.runner = runner
        try:
            results = measure(scenarios, sizes, log)
            for extra in bench.extras:
                extras[extra.key] = extra.measure(current)
        except AdapterError as exc:
            raise SystemExit(f"sanity check failed: {exc}") from exc
        finally:
            _session.runner = None
    report = Report(bench, machine(bench.packages), sizes, command, results, _session.notes, extras)
    print(json.dumps(as_json(report), indent=2) if args.json else render(report, current))
    return 0
