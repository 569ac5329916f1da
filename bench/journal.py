"""Durable records per second: stalwart's journal against a seed-002 JSON state file and DBOS.

Every contender runs the same batch: ``--items`` trivial items (``n * 2``) on
``--concurrency`` threads, each result recorded durably before the item counts as done:

- **stalwart**: ``run_batch`` on a SQLite journal, default settings (WAL, group commit,
  ``synchronous=full``: every commit fsynced);
- **stalwart normal**: the same with ``synchronous="normal"`` (survives a crash of the
  process, not of the machine);
- **json rewrite**: seed 002's state manager: after every item, under a lock, the whole
  state (every result so far) is dumped to a temporary file that replaces the old one;
- **dbos**: DBOS Transact on SQLite, one workflow with one step per item, started from a
  thread pool of the same size (skipped when ``dbos`` is not installed);
- **bare pool**: a ``ThreadPoolExecutor`` that records nothing, for run_batch's per-item
  overhead.

Prints records/s, the ratios to stalwart, and the overhead per item over the bare pool.
``scripts/bench journal`` runs it (``--quick`` for 1,000 items).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from stalwart.journal import Journal, run_batch


def work(n: int) -> int:
    return n * 2


def bare_pool(items: int, concurrency: int, workdir: Path) -> float:
    start = time.perf_counter()
    with ThreadPoolExecutor(concurrency) as pool:
        results = list(pool.map(work, range(items)))
    elapsed = time.perf_counter() - start
    assert results[-1] == (items - 1) * 2
    return elapsed


def stalwart_journal(synchronous: str | None) -> Callable[[int, int, Path], float]:
    def run(items: int, concurrency: int, workdir: Path) -> float:
        with Journal(workdir / "journal.db", synchronous=synchronous) as journal:
            start = time.perf_counter()
            report = run_batch(
                range(items), work, journal=journal, session="bench", concurrency=concurrency
            )
            elapsed = time.perf_counter() - start
            assert report.done == items, report
            assert len(journal.results("bench")) == items
        return elapsed

    return run


def json_rewrite(items: int, concurrency: int, workdir: Path) -> float:
    """Seed 002's StateManager: save the whole state after every item (atomic replace)."""
    path, state, lock = workdir / "state.json", {"results": {}}, threading.Lock()

    def record(n: int) -> None:
        result = work(n)
        with lock:
            state["results"][str(n)] = result  # type: ignore[index]
            tmp = path.with_suffix(".tmp")
            with open(tmp, "w") as f:
                json.dump(state, f)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)

    start = time.perf_counter()
    with ThreadPoolExecutor(concurrency) as pool:
        list(pool.map(record, range(items)))
    elapsed = time.perf_counter() - start
    assert len(json.loads(path.read_text())["results"]) == items
    return elapsed


def dbos_workflows(items: int, concurrency: int, workdir: Path) -> float:
    from dbos import DBOS

    DBOS(
        config={
            "name": "bench",
            "system_database_url": f"sqlite:///{workdir}/dbos.sqlite",
            "log_level": "ERROR",
        }
    )

    @DBOS.step()
    def step(n: int) -> int:
        return work(n)

    @DBOS.workflow()
    def one(n: int) -> int:
        return step(n)

    DBOS.launch()
    try:
        start = time.perf_counter()
        with ThreadPoolExecutor(concurrency) as pool:
            results = list(pool.map(one, range(items)))
        elapsed = time.perf_counter() - start
    finally:
        DBOS.destroy(destroy_registry=True)
    assert results == [work(n) for n in range(items)]
    return elapsed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--items", type=int, default=10_000)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=3, help="rounds for the fast contenders")
    parser.add_argument("--quick", action="store_true", help="1,000 items, 1 round")
    parser.add_argument("--no-dbos", action="store_true")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    items, rounds = (1000, 1) if args.quick else (args.items, args.rounds)
    contenders: list[tuple[str, Callable[[int, int, Path], float], int]] = [
        ("bare pool", bare_pool, rounds),
        ("stalwart", stalwart_journal(None), rounds),
        ("stalwart normal", stalwart_journal("normal"), rounds),
        ("json rewrite", json_rewrite, 1),  # quadratic: one round is plenty
    ]
    try:
        import dbos  # noqa: F401

        if not args.no_dbos:
            contenders.append(("dbos", dbos_workflows, 1))
    except ImportError:
        print("dbos is not installed: skipped", file=sys.stderr)
    times: dict[str, float] = {}
    for name, run, n_rounds in contenders:
        samples = []
        for _ in range(n_rounds):
            with tempfile.TemporaryDirectory(prefix="stalwart-bench-") as workdir:
                samples.append(run(items, args.concurrency, Path(workdir)))
        times[name] = statistics.median(samples)
        print(f"  {name}: {items / times[name]:,.0f} records/s", file=sys.stderr, flush=True)
    rates = {name: items / t for name, t in times.items()}
    focus = rates["stalwart"]
    overhead_us = (times["stalwart"] - times["bare pool"]) / items * 1e6
    if args.json:
        summary = {"items": items, "concurrency": args.concurrency, "records_per_second": rates}
        print(json.dumps({**summary, "run_batch_overhead_us_per_item": overhead_us}))
        return 0
    print(f"journal benchmark: {items:,} items, concurrency {args.concurrency}, "
          f"Python {platform.python_version()}, {os.cpu_count()} CPUs")  # fmt: skip
    print(f"{'contender':<18}{'records/s':>14}{'stalwart is':>16}")
    for name, rate in rates.items():
        peer = name in ("json rewrite", "dbos")
        ratio = f"{focus / rate:,.1f}x faster" if peer else ""
        print(f"{name:<18}{rate:>14,.0f}{ratio:>16}")
    print(f"run_batch overhead over a bare thread pool: {overhead_us:.1f} us per item "
          "(durable record included)")  # fmt: skip
    goals = [
        ("records/s >= 5,000", focus >= 5000),
        ("50x the JSON rewrite", focus >= 50 * rates["json rewrite"]),
    ]
    if "dbos" in rates:
        goals.append(("ahead of DBOS", focus > rates["dbos"]))
    for goal, met in goals:
        print(f"goal {goal}: {'met' if met else 'NOT met'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
