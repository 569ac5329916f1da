"""Distributed benchmark: stalwart's Redis-backed breaker and rate limiter next to peers.

Run it with ``scripts/bench distributed`` (or ``.venv/bin/python bench/distributed.py``);
``--help`` lists the options. The benchmark starts its own ``redis-server`` on a free
loopback port (no persistence, ``--bind 127.0.0.1``) and stops it at the end. Four
measurements, the contenders side by side in one run:

1. closed path: ``def f(): return 1`` decorated, breaker closed, called in a loop.
   stalwart in memory, stalwart with ``store=RedisStore(...)`` (outcomes gathered locally
   and flushed by a background thread), pybreaker in memory, and pybreaker with its
   ``CircuitRedisStorage`` (Redis on every call). Interleaved rounds, the order rotating,
   GC off in the loops; per call = median over rounds. The Redis-per-call peer gets fewer
   calls per round (``--redis-calls``), the others ``--calls``. Goal: stalwart+redis
   <= 2 us per call and > 100x faster than pybreaker redis.
2. Redis commands per protected call: ``CONFIG RESETSTAT``, the calls, a pause for
   background flushes to settle (0.2 s), then ``INFO commandstats``; every command but
   ``INFO`` and ``CONFIG`` counts, background ones (flushes, periodic syncs) included.
3. state propagation across processes: ``--workers`` worker processes (this file with
   ``--worker``) each hold a breaker of the same name on the same Redis and poll its
   state every ``--poll-ms``; this process opens it (stalwart ``force_open()``, pybreaker
   ``open()``), each worker reports the ``time.monotonic()`` (system-wide on Linux) at
   which it first saw the change; then it is closed (``reset()`` / ``close()``) the same
   way. Latency = report - the moment just before the call, pooled over workers and
   ``--trials``. Goal: stalwart p99 <= 100 ms, both ways.
4. shared rate limiter: acquires per second from one thread of one process, every one
   let through (1,000,000/second): stalwart ``RateLimiter(..., store=store).try_acquire()``
   next to limits' moving and fixed windows over its ``RedisStorage``, with a bare
   redis-py ``PING`` (one round trip) as the floor.

Until ``stalwart.redis`` is importable, its rows are shown as skipped and the peers are
still measured. Every loop and wait is bounded; worker processes are stopped on the way
out (their stdin closes) and end on their own after ``--worker-lifetime`` seconds anyway.
This is a report, not a test: it exits 0 once it has measured, goals met or not; a
contender that answers wrongly (a closed breaker not returning 1, a limiter refusing)
stops it with exit code 1.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import gc
import json
import queue
import random
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import limits
import limits.storage
import limits.strategies
import pybreaker

try:
    import redis
except ImportError as exc:  # not in every venv: the redis extra brings it
    raise SystemExit(
        "bench/distributed.py needs the redis client: .venv/bin/pip install -e '.[bench,redis]'"
    ) from exc

import stalwart
from _harness import loop_sync, machine, timed

LOCAL = "127.0.0.1"
REDIS_SERVER = "/usr/bin/redis-server"
THRESHOLD = 5
RECOVERY = 30.0
"""Seconds; no breaker here reaches its recovery timeout during a run."""
RATE = "1000000/second"
"""Every limiter's rate: so high that no acquire is ever refused."""
SETTLE = 0.2
"""Seconds to wait after the calls before reading INFO commandstats (background flushes)."""
PER_CALL_GOAL_NS = 2_000.0
SPEEDUP_GOAL = 100.0
PROPAGATION_GOAL_MS = 100.0
TRANSITION_DEADLINE = 2.0
"""Seconds every worker has to see one change before it counts as missed."""
SCENARIOS = ("closed", "commands", "propagation", "limiter")
PACKAGES = ("stalwart", "pybreaker", "limits", "redis")

Fn = Callable[[], Any]


class Broken(RuntimeError):
    """A contender answered wrongly: the run stops (exit 1)."""


def log(text: str) -> None:
    """Progress, on stderr (stdout carries only the report)."""
    print(f"  ... {text}", file=sys.stderr, flush=True)


def one() -> int:
    return 1


def stalwart_redis() -> tuple[ModuleType | None, str]:
    """``stalwart.redis``, or None and why not."""
    try:
        import stalwart.redis as module
    except ImportError as exc:
        return None, f"skipped: stalwart.redis is not importable yet ({exc})"
    return module, ""


# -- the private redis-server ------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((LOCAL, 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass(frozen=True)
class Server:
    port: int
    version: str

    @property
    def url(self) -> str:
        return f"redis://{LOCAL}:{self.port}"

    def client(self) -> redis.Redis:
        """A plain client (bytes replies, as pybreaker's storage wants)."""
        return redis.Redis(host=LOCAL, port=self.port, socket_timeout=10)


def _die_with_parent() -> None:
    """In the child, before exec: SIGTERM when this process dies, even by SIGKILL (Linux)."""
    with contextlib.suppress(Exception):
        import ctypes

        ctypes.CDLL(None).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)


@contextlib.contextmanager
def redis_server(binary: str) -> Iterator[Server]:
    """A private ``redis-server`` on a free loopback port, no persistence; stopped after."""
    if not (Path(binary).is_file() or shutil.which(binary)):
        raise SystemExit(f"no redis-server at {binary} (--redis-server PATH)")
    with tempfile.TemporaryDirectory(prefix="stalwart-bench-redis-") as workdir:
        logfile = Path(workdir) / "redis.log"
        for _ in range(5):  # another process may take the free port before the server does
            port = free_port()
            with open(logfile, "wb") as out:
                process = subprocess.Popen(
                    [binary, "--port", str(port), "--bind", LOCAL, "--save", "",
                     "--appendonly", "no", "--dir", workdir],
                    stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                    preexec_fn=_die_with_parent if sys.platform == "linux" else None,
                )  # fmt: skip
            try:
                client = redis.Redis(host=LOCAL, port=port, socket_timeout=1)
                deadline = time.monotonic() + 10
                version = ""
                while process.poll() is None and time.monotonic() < deadline:
                    try:
                        version = str(client.info("server")["redis_version"])
                        break
                    except redis.ConnectionError:
                        time.sleep(0.02)
                client.close()
                if version:
                    yield Server(port, version)
                    return
            finally:
                _stop(process)
        tail = logfile.read_text(errors="replace")[-2000:]
        raise SystemExit(f"redis-server did not start on loopback; its log:\n{tail}")


# -- the breakers and limiters -------------------------------------------------------------


@dataclass
class Resources:
    """Stores and clients to close at the end of a section."""

    closers: list[Callable[[], None]] = field(default_factory=list)

    def add(self, close: Callable[[], None]) -> None:
        self.closers.append(close)

    def close(self) -> None:
        for close in reversed(self.closers):
            with contextlib.suppress(Exception):
                close()
        self.closers.clear()


def stalwart_store(
    sr: ModuleType, server: Server, namespace: str, res: Resources, **options: Any
) -> Any:
    store = sr.RedisStore(redis.Redis.from_url(server.url), namespace=namespace, **options)
    res.add(store.close)
    return store


def stalwart_limiter(
    sr: ModuleType, server: Server, namespace: str, name: str, res: Resources, **options: Any
) -> Fn:
    """A shared stalwart limiter's try_acquire (its store closed with ``res``)."""
    store = stalwart_store(sr, server, namespace, res, **options)
    return stalwart.RateLimiter(RATE, store=store, name=name).try_acquire


def limits_limiter(
    server: Server, kind: type[limits.strategies.RateLimiter], key: str
) -> Callable[[Resources], Fn]:
    """A maker of limits' ``hit`` on its Redis storage, one key per strategy."""

    def make(res: Resources) -> Fn:
        storage = limits.storage.RedisStorage(server.url)
        return functools.partial(kind(storage).hit, limits.parse(RATE), f"{key}-{kind.__name__}")

    return make


def stalwart_breaker(name: str, store: Any = None) -> stalwart.CircuitBreaker:
    breaker = stalwart.CircuitBreaker(
        name, failure_threshold=THRESHOLD, recovery_timeout=RECOVERY, store=store
    )
    if store is not None and breaker.shared is None:
        raise Broken(f"stalwart breaker {name!r} with store= is not shared")
    return breaker


def pybreaker_redis(server: Server, namespace: str, res: Resources) -> pybreaker.CircuitBreaker:
    client = server.client()
    res.add(client.close)
    storage = pybreaker.CircuitRedisStorage(pybreaker.STATE_CLOSED, client, namespace=namespace)
    return pybreaker.CircuitBreaker(
        fail_max=THRESHOLD, reset_timeout=RECOVERY, state_storage=storage, name=namespace
    )


def pybreaker_memory(name: str) -> pybreaker.CircuitBreaker:
    return pybreaker.CircuitBreaker(fail_max=THRESHOLD, reset_timeout=RECOVERY, name=name)


# -- 1. the closed path --------------------------------------------------------------------


@dataclass
class Row:
    """One contender of a timed table: how to build it and what it measured."""

    name: str
    make: Callable[[Resources], Fn] | None
    na: str = ""
    slow: bool = False
    """Redis on every call: timed with the smaller call count."""
    samples: list[float] = field(default_factory=list)
    """ns per call (section 1) or acquires per second (section 4), one per round."""


def closed_rows(server: Server, sr: ModuleType | None, why: str) -> list[Row]:
    def stalwart_memory(res: Resources) -> Fn:
        return stalwart_breaker("closed-memory")(one)

    def stalwart_shared(res: Resources) -> Fn:
        assert sr is not None
        store = stalwart_store(sr, server, "bench-closed", res)
        breaker = stalwart_breaker("closed-redis", store)
        return breaker(one)

    return [
        Row("stalwart", stalwart_memory),
        Row("stalwart+redis", stalwart_shared if sr is not None else None, why),
        Row("pybreaker", lambda res: pybreaker_memory("closed-memory")(one)),
        Row(
            "pybreaker redis",
            lambda res: pybreaker_redis(server, "bench-closed", res)(one),
            slow=True,
        ),
    ]


def check_returns_one(name: str, fn: Fn) -> None:
    result = fn()
    if result != 1:
        raise Broken(f"{name}: closed breaker returned {result!r}, expected 1")


@dataclass(frozen=True)
class ClosedFigures:
    rounds: int
    calls: int
    redis_calls: int
    bare: list[float]
    rows: list[Row]

    def per_call(self, name: str) -> float | None:
        for row in self.rows:
            if row.name == name and row.samples:
                return statistics.median(row.samples)
        return None

    def overhead(self, row: Row) -> float:
        return statistics.median(s - b for s, b in zip(row.samples, self.bare, strict=True))


def measure_closed(
    server: Server, sr: ModuleType | None, why: str, rounds: int, calls: int, redis_calls: int
) -> ClosedFigures:
    res = Resources()
    rows = closed_rows(server, sr, why)
    bare: list[float] = []
    try:
        built: list[tuple[Row, Fn]] = []
        for row in rows:
            if row.make is None:
                continue
            try:
                fn = row.make(res)
            except Exception as exc:  # stalwart.redis may be half-written: show why
                if not row.name.startswith("stalwart"):
                    raise
                row.make, row.na = None, f"could not build it: {type(exc).__name__}: {exc}"
                continue
            check_returns_one(row.name, fn)
            built.append((row, fn))
        time.sleep(SETTLE)  # stalwart's store: threads started, first flush done
        timed_rows: list[tuple[Row | None, Fn]] = [(None, one), *built]
        for r in range(-1, rounds):  # round -1 warms up and is dropped
            log("closed path: warm-up round" if r < 0 else f"closed path: round {r + 1}/{rounds}")
            shift = max(r, 0) % len(timed_rows)
            figures: dict[str, float] = {}
            for entry, fn in timed_rows[shift:] + timed_rows[:shift]:
                n = redis_calls if entry is not None and entry.slow else calls
                if r < 0:
                    n = max(n // 10, 1)
                figures[entry.name if entry else ""] = timed(functools.partial(loop_sync, fn, n), n)
                if entry is not None:
                    check_returns_one(entry.name, fn)
            if r >= 0:
                bare.append(figures[""])
                for row, _ in built:
                    row.samples.append(figures[row.name])
        return ClosedFigures(rounds, calls, redis_calls, bare, rows)
    finally:
        res.close()


# -- 2. Redis commands per protected call ----------------------------------------------------


@dataclass(frozen=True)
class Commands:
    name: str
    calls: int
    counts: dict[str, int]
    """Server side: INFO commandstats (commands run inside a Lua script count too)."""
    sends: int = 0
    """Client side: writes of one command or one pipeline by redis-py in this process."""
    na: str = ""

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    @property
    def per_call(self) -> float:
        return self.total / self.calls if self.calls else 0.0

    @property
    def sends_per_call(self) -> float:
        return self.sends / self.calls if self.calls else 0.0


def command_counts(stats: redis.Redis) -> dict[str, int]:
    info: dict[str, Any] = stats.info("commandstats")
    counts = {}
    for key, value in info.items():
        command = key.removeprefix("cmdstat_")
        if command == "info" or command.startswith("config"):
            continue  # the benchmark's own
        counts[command] = int(value["calls"])
    return counts


@contextlib.contextmanager
def counting_sends() -> Iterator[list[int]]:
    """Count round trips on the client side: every ``send_packed_command`` of redis-py (one
    command, or a whole pipeline) in this process, whichever client or thread makes it."""
    cls = redis.connection.AbstractConnection
    original: Callable[..., None] = cls.send_packed_command
    sent = [0]
    lock = threading.Lock()

    def send(self: Any, command: Any, check_health: bool = True) -> None:
        with lock:
            sent[0] += 1
        original(self, command, check_health)

    cls.send_packed_command = send  # type: ignore[method-assign]
    try:
        yield sent
    finally:
        cls.send_packed_command = original  # type: ignore[method-assign]


def count_commands(
    stats: redis.Redis, name: str, fn: Fn, calls: int, answer: object, idle: float = 0.0
) -> Commands:
    """Redis commands while ``fn`` is called ``calls`` times (plus SETTLE s after); with
    ``calls=0``, what the store does on its own in ``idle`` seconds."""
    if fn() != answer:  # warm-up: scripts loaded, connections open, threads running
        raise Broken(f"{name}: the warm-up call did not return {answer!r}")
    time.sleep(SETTLE)
    stats.config_resetstat()
    with counting_sends() as sent:
        for _ in range(calls):
            if fn() != answer:
                raise Broken(f"{name}: a call did not return {answer!r}")
        time.sleep(SETTLE if calls else idle)
        sends = sent[0]
    return Commands(name, calls, command_counts(stats), sends)


IDLE = "stalwart+redis idle"
"""The row of a store with one linked breaker and no calls: its background traffic."""


@dataclass(frozen=True)
class Variant:
    name: str
    make: Callable[[Resources], Fn]
    calls: int
    answer: object = True
    stalwart: bool = False


def measure_commands(
    server: Server, sr: ModuleType | None, why: str, calls: int, redis_calls: int, idle: float
) -> list[Commands]:
    stats = server.client()
    stats.ping()
    out: list[Commands] = []

    def stalwart_breaker_fn(res: Resources) -> Fn:
        assert sr is not None
        return stalwart_breaker("commands", stalwart_store(sr, server, "bench-cmd", res))(one)

    def stalwart_limiter_fn(res: Resources) -> Fn:
        assert sr is not None
        return stalwart_limiter(sr, server, "bench-cmd", "commands", res)

    def limits_fn(kind: type[limits.strategies.RateLimiter]) -> Callable[[Resources], Fn]:
        return limits_limiter(server, kind, "commands")

    pybreaker_fn: Callable[[Resources], Fn] = lambda res: pybreaker_redis(  # noqa: E731
        server, "bench-cmd", res
    )(one)
    variants = [
        Variant("stalwart+redis breaker", stalwart_breaker_fn, calls, 1, stalwart=True),
        Variant("pybreaker redis", pybreaker_fn, redis_calls, 1),
        Variant("stalwart+redis limiter", stalwart_limiter_fn, redis_calls, True, stalwart=True),
        Variant("limits moving", limits_fn(limits.strategies.MovingWindowRateLimiter), redis_calls),
        Variant("limits fixed", limits_fn(limits.strategies.FixedWindowRateLimiter), redis_calls),
        Variant(IDLE, stalwart_breaker_fn, 0, 1, stalwart=True),
    ]
    try:
        for v in variants:
            if v.stalwart and sr is None:
                out.append(Commands(v.name, 0, {}, na=why))
                continue
            log(f"commands: {v.name}")
            res = Resources()  # one variant's clients at a time: nothing else talks to Redis
            try:
                try:
                    fn = v.make(res)
                except Exception as exc:
                    if not v.stalwart:
                        raise
                    out.append(Commands(v.name, 0, {}, na=f"could not build it: {exc!r}"))
                    continue
                out.append(count_commands(stats, v.name, fn, v.calls, v.answer, idle))
            finally:
                res.close()
    finally:
        stats.close()
    return out


# -- 3. state propagation across processes -------------------------------------------------


def worker_main(kind: str, port: int, name: str, poll: float, lifetime: float) -> int:
    """One worker: report every change of the shared breaker's state as
    ``STATE MONOTONIC`` on stdout (the first line: the initial state); stop when stdin
    closes or after ``lifetime`` seconds."""
    stop = threading.Event()

    def watch_stdin() -> None:
        with contextlib.suppress(Exception):
            sys.stdin.read()
        stop.set()

    threading.Thread(target=watch_stdin, daemon=True).start()
    end = time.monotonic() + lifetime
    server = Server(port, "")
    res = Resources()
    try:
        read: Callable[[], str]
        if kind == "stalwart":
            sr, why = stalwart_redis()
            if sr is None:
                print(f"error {why}", flush=True)
                return 1
            breaker = stalwart_breaker(name, stalwart_store(sr, server, "bench-prop", res))

            def read() -> str:
                value = str(breaker.state.value)
                return "open" if value in ("open", "forced_open") else value
        else:
            peer = pybreaker_redis(server, f"bench-prop-{name}", res)

            def read() -> str:
                return str(peer.current_state)

        last = ""
        while not stop.is_set() and time.monotonic() < end:
            state = read()
            if state != last:
                now = time.monotonic()
                print(f"{state} {now!r}", flush=True)
                last = state
            time.sleep(poll)
        return 0
    except BrokenPipeError:
        return 0
    finally:
        res.close()


@dataclass
class Propagation:
    name: str
    workers: int
    trials: int = 0
    latencies: dict[str, list[float]] = field(default_factory=lambda: {"open": [], "close": []})
    """ms from just before the call to each worker's report, pooled."""
    missed: dict[str, int] = field(default_factory=lambda: {"open": 0, "close": 0})
    call_ms: dict[str, list[float]] = field(default_factory=lambda: {"open": [], "close": []})
    """ms the opening / closing call itself took in this process."""
    na: str = ""
    stopped: str = ""


class Workers:
    """The worker processes and one reader thread each, feeding one queue."""

    def __init__(self, kind: str, count: int, port: int, name: str, poll: float, life: float):
        self.reports: queue.Queue[tuple[int, str | None, float]] = queue.Queue()
        self.last: dict[int, str] = {}
        self.processes: list[subprocess.Popen[str]] = []
        for index in range(count):
            process = subprocess.Popen(
                [sys.executable, str(Path(__file__).resolve()), "--worker", kind, str(port),
                 name, str(poll), str(life)],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
            )  # fmt: skip
            self.processes.append(process)
            threading.Thread(target=self._read, args=(index, process), daemon=True).start()

    def _read(self, index: int, process: subprocess.Popen[str]) -> None:
        assert process.stdout is not None
        for line in process.stdout:
            state, _, stamp = line.strip().partition(" ")
            if state == "error":
                self.reports.put((index, None, 0.0))
                return
            with contextlib.suppress(ValueError):
                self.reports.put((index, state, float(stamp)))
        self.reports.put((index, None, 0.0))

    def next(self, until: float) -> tuple[int, str, float] | None:
        """The next report before ``until`` (monotonic), or None at the deadline."""
        left = until - time.monotonic()
        if left <= 0:
            return None
        try:
            index, state, stamp = self.reports.get(timeout=left)
        except queue.Empty:
            return None
        if state is None:
            code = self.processes[index].poll()
            raise Broken(f"propagation worker {index} ended (exit code {code})")
        self.last[index] = state
        return index, state, stamp

    def settle(self, state: str, until: float) -> bool:
        """Wait until every worker's last report is ``state``."""
        while any(self.last.get(i) != state for i in range(len(self.processes))):
            if self.next(until) is None:
                return False
        return True

    def stop(self) -> None:
        for process in self.processes:
            with contextlib.suppress(Exception):
                assert process.stdin is not None
                process.stdin.close()
        deadline = time.monotonic() + 5
        for process in self.processes:
            try:
                process.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(5)


def subscribed(server: Server, store: Any, count: int) -> bool:
    """Wait until Redis counts ``count`` subscribers on the store's channel: every worker's
    store listens, so no trial starts inside a store's start-up (see RESULTS.md)."""
    channel = getattr(store, "channel", None)
    if not isinstance(channel, str):
        time.sleep(1.5)  # no channel to ask about: outwait one periodic sync instead
        return True
    client = server.client()
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            ((_, subscribers),) = client.pubsub_numsub(channel)
            if int(subscribers) >= count:
                return True
            time.sleep(0.01)
        return False
    finally:
        client.close()


def measure_propagation(
    kind: str,
    server: Server,
    sr: ModuleType | None,
    why: str,
    workers: int,
    trials: int,
    poll: float,
    lifetime: float,
) -> Propagation:
    label = "stalwart+redis" if kind == "stalwart" else "pybreaker redis"
    figures = Propagation(label, workers)
    if kind == "stalwart" and sr is None:
        figures.na = why
        return figures
    name = f"payments-{kind}"
    res = Resources()
    actions: dict[str, Callable[[], object]]
    if kind == "stalwart":
        assert sr is not None
        try:
            store = stalwart_store(sr, server, "bench-prop", res)
            breaker = stalwart_breaker(name, store)
        except Exception as exc:  # stalwart.redis may be half-written: show why
            res.close()
            figures.na = f"could not build it: {type(exc).__name__}: {exc}"
            return figures
        actions = {"open": breaker.force_open, "close": breaker.reset}
    else:
        peer = pybreaker_redis(server, f"bench-prop-{name}", res)
        actions = {"open": peer.open, "close": peer.close}
    want = {"open": "open", "close": "closed"}
    rng = random.Random(42)
    log(f"propagation: starting {workers} {label} workers")
    pool = Workers(kind, workers, server.port, name, poll, lifetime)
    try:
        if not pool.settle("closed", time.monotonic() + 60):
            figures.stopped = "the workers did not report a closed breaker within 60 s"
            return figures
        if kind == "stalwart" and not subscribed(server, store, workers + 1):
            figures.stopped = "the workers' stores did not subscribe within 30 s"
            return figures
        for trial in range(trials):
            for change in ("open", "close"):
                started = time.monotonic()
                actions[change]()
                figures.call_ms[change].append((time.monotonic() - started) * 1e3)
                seen: dict[int, float] = {}
                until = started + TRANSITION_DEADLINE
                while len(seen) < workers:
                    report = pool.next(until)
                    if report is None:
                        break
                    index, state, stamp = report
                    if state == want[change] and stamp >= started and index not in seen:
                        seen[index] = stamp
                figures.latencies[change].extend((t - started) * 1e3 for t in seen.values())
                figures.missed[change] += workers - len(seen)
                if len(seen) < workers and not pool.settle(want[change], until + 2.0):
                    figures.stopped = (
                        f"stopped after {trial} trials: a worker never saw the breaker "
                        f"{want[change]} (within {TRANSITION_DEADLINE + 2:.0f} s)"
                    )
                    return figures
                time.sleep(rng.uniform(0.002, 0.010))  # off the workers' polling phase
            figures.trials = trial + 1
            if (trial + 1) % 25 == 0:
                log(f"propagation: {label} {trial + 1}/{trials} trials")
        return figures
    except Broken as exc:  # a worker died (its traceback went to stderr): report, go on
        figures.stopped = f"stopped after {figures.trials} trials: {exc}"
        return figures
    finally:
        pool.stop()
        res.close()


# -- 4. the shared rate limiter ------------------------------------------------------------


def limiter_rows(server: Server, sr: ModuleType | None, why: str) -> list[Row]:

    def ping(res: Resources) -> Fn:
        client = server.client()
        res.add(client.close)
        return client.ping

    def shared(res: Resources) -> Fn:
        assert sr is not None
        return stalwart_limiter(sr, server, "bench-limit", "api", res)

    def batched(res: Resources) -> Fn:
        assert sr is not None
        return stalwart_limiter(sr, server, "bench-batch", "api", res, permit_batch=10)

    return [
        Row("redis-py PING", ping),
        Row("stalwart+redis", shared if sr is not None else None, why),
        Row("stalwart batch 10", batched if sr is not None else None, why),
        Row(
            "limits moving",
            limits_limiter(server, limits.strategies.MovingWindowRateLimiter, "limit"),
        ),
        Row(
            "limits fixed",
            limits_limiter(server, limits.strategies.FixedWindowRateLimiter, "limit"),
        ),
    ]


def acquires_per_second(name: str, fn: Fn, n: int) -> float:
    gc.collect()
    gc.disable()
    try:
        granted = 0
        start = time.perf_counter()
        for _ in range(n):
            if fn():
                granted += 1
        elapsed = time.perf_counter() - start
    finally:
        gc.enable()
    if granted != n:
        raise Broken(f"{name}: {n - granted} of {n} acquires refused (the rate is {RATE})")
    return n / elapsed


def measure_limiter(
    server: Server, sr: ModuleType | None, why: str, rounds: int, calls: int
) -> list[Row]:
    res = Resources()
    rows = limiter_rows(server, sr, why)
    try:
        built: list[tuple[Row, Fn]] = []
        for row in rows:
            if row.make is None:
                continue
            try:
                fn = row.make(res)
            except Exception as exc:
                if not row.name.startswith("stalwart"):
                    raise
                row.make, row.na = None, f"could not build it: {type(exc).__name__}: {exc}"
                continue
            if fn() is not True:
                raise Broken(f"{row.name}: the first acquire was refused")
            built.append((row, fn))
        for r in range(-1, rounds):
            log("limiter: warm-up round" if r < 0 else f"limiter: round {r + 1}/{rounds}")
            shift = max(r, 0) % len(built)
            for row, fn in built[shift:] + built[:shift]:
                rate = acquires_per_second(row.name, fn, max(calls // 10, 1) if r < 0 else calls)
                if r >= 0:
                    row.samples.append(rate)
        return rows
    finally:
        res.close()


# -- the report ----------------------------------------------------------------------------


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def ns(value: float) -> str:
    return f"{value:,.0f}" if abs(value) >= 100 else f"{value:,.1f}"


def verdict(ok: bool) -> str:
    return "ok" if ok else "MISSED"


def render_closed(f: ClosedFigures) -> list[str]:
    focus = f.per_call("stalwart+redis")
    head = f"  {'contender':<17} {'per call ns':>12} {'overhead ns':>12} {'range ns':>19}"
    out = [
        "",
        f"1. closed path: decorated `def f(): return 1`, breaker closed  [{f.calls:,} calls "
        f"({f.redis_calls:,} for Redis-per-call peers) x {f.rounds} rounds]",
        f"{head} {'x stalwart+redis':>17}",
        "  " + "-" * (len(head) + 16),
        f"  {'bare call':<17} {ns(statistics.median(f.bare)):>12} {'-':>12}",
    ]
    for row in f.rows:
        if not row.samples:
            out.append(f"  {row.name:<17} {'N/A':>12}   {row.na}")
            continue
        per_call = statistics.median(row.samples)
        spread = f"{ns(min(row.samples))}..{ns(max(row.samples))}"
        times = f"{per_call / focus:.1f}x" if focus and row.name != "stalwart+redis" else ""
        out.append(
            f"  {row.name:<17} {ns(per_call):>12} {ns(f.overhead(row)):>12} {spread:>19} "
            f"{times:>16}"
        )
    peer = f.per_call("pybreaker redis")
    if focus is None:
        out.append("  goals: not checked (stalwart+redis did not run)")
    else:
        out.append(
            f"  goal: stalwart+redis <= {PER_CALL_GOAL_NS / 1000:.0f} us per call: "
            f"{ns(focus)} ns  {verdict(focus <= PER_CALL_GOAL_NS)}"
        )
        if peer is not None:
            ratio = peer / focus
            out.append(
                f"  goal: pybreaker redis / stalwart+redis > {SPEEDUP_GOAL:.0f}x: {ratio:,.0f}x  "
                f"{verdict(ratio > SPEEDUP_GOAL)}"
            )
    return out


def render_commands(rows: list[Commands], idle: float) -> list[str]:
    out = [
        "",
        "2. Redis commands per protected call: INFO commandstats after CONFIG RESETSTAT, read "
        f"{SETTLE:.1f} s after the last call",
        "  (commands = server side, those run inside a Lua script included; round trips = "
        "redis-py writes in this process)",
        f"  {'contender':<23} {'calls':>7} {'commands':>9} {'per call':>9} {'round trips':>12}"
        "  breakdown (commands)",
        "  " + "-" * 90,
    ]
    for row in rows:
        if row.na:
            out.append(f"  {row.name:<23} {'N/A':>7}   {row.na}")
            continue
        parts = sorted(row.counts.items(), key=lambda kv: (-kv[1], kv[0]))
        breakdown = ", ".join(f"{k} {v:,}" for k, v in parts) or "none"
        if row.calls == 0:
            out.append(
                f"  {row.name:<23} {'none':>7} {row.total:>9,} {'in ' + f'{idle:g} s':>9} "
                f"{row.sends:>12,}  {breakdown}"
            )
            continue
        out.append(
            f"  {row.name:<23} {row.calls:>7,} {row.total:>9,} {row.per_call:>9.4g} "
            f"{row.sends_per_call:>12.4g}  {breakdown}"
        )
    return out


def render_propagation(rows: list[Propagation], poll: float) -> list[str]:
    if not rows:
        return []
    workers = rows[0].workers
    out = [
        "",
        f"3. state propagation: this process opens, then closes, the breaker; {workers} worker "
        f"processes poll its state every {poll * 1000:g} ms",
        "  latency = a worker's first sight of the change - the moment just before the call "
        "(time.monotonic, pooled over workers);",
        "  trials start once every worker reported a closed breaker and, for stalwart, Redis "
        "counts every store subscribed",
        f"  {'contender':<17} {'change':<7} {'trials':>6} {'p50 ms':>8} {'p99 ms':>8} "
        f"{'max ms':>8} {'missed':>7} {'call p50 ms':>12}",
        "  " + "-" * 81,
    ]
    for row in rows:
        if row.na:
            out.append(f"  {row.name:<17} {'N/A':<7}   {row.na}")
            continue
        for change in ("open", "close"):
            lat = row.latencies[change]
            if not lat:
                out.append(f"  {row.name:<17} {change:<7} {row.trials:>6}   no worker saw it")
                continue
            out.append(
                f"  {row.name:<17} {change:<7} {row.trials:>6} {percentile(lat, 0.5):>8.2f} "
                f"{percentile(lat, 0.99):>8.2f} {max(lat):>8.2f} {row.missed[change]:>7} "
                f"{statistics.median(row.call_ms[change]):>12.2f}"
            )
        if row.stopped:
            out.append(f"  {row.name}: {row.stopped}")
    for row in rows:
        if row.name == "stalwart+redis" and not row.na:
            worst = [percentile(row.latencies[c], 0.99) for c in ("open", "close")
                     if row.latencies[c]]  # fmt: skip
            ok = (
                len(worst) == 2
                and max(worst) <= PROPAGATION_GOAL_MS
                and not any(row.missed.values())
                and not row.stopped
            )
            shown = f"{max(worst):.2f} ms" if worst else "n/a"
            out.append(
                f"  goal: stalwart+redis p99 <= {PROPAGATION_GOAL_MS:.0f} ms both ways, none "
                f"missed: {shown}  {verdict(ok)}"
            )
    return out


def render_limiter(rows: list[Row], calls: int, rounds: int) -> list[str]:
    focus = next((statistics.median(r.samples) for r in rows
                  if r.name == "stalwart+redis" and r.samples), None)  # fmt: skip
    out = [
        "",
        f"4. shared rate limiter ({RATE}, never refusing): acquires per second, one thread  "
        f"[{calls:,} acquires x {rounds} rounds]",
        f"  {'contender':<17} {'acquires/s':>11} {'us each':>8} {'range /s':>17} "
        f"{'stalwart / this':>16}",
        "  " + "-" * 73,
    ]
    for row in rows:
        if not row.samples:
            out.append(f"  {row.name:<17} {'N/A':>11}   {row.na}")
            continue
        rate = statistics.median(row.samples)
        spread = f"{min(row.samples):,.0f}..{max(row.samples):,.0f}"
        ratio = f"{focus / rate:.2f}" if focus and row.name != "stalwart+redis" else ""
        out.append(f"  {row.name:<17} {rate:>11,.0f} {1e6 / rate:>8.1f} {spread:>17} {ratio:>16}")
    return out


def render(report: dict[str, Any], args: argparse.Namespace) -> str:
    info = report["machine"]
    cores = info["cores"]
    if info["usable_cores"] not in (None, cores):
        cores = f"{cores} ({info['usable_cores']} usable)"
    out = [
        "stalwart distributed benchmark (Redis on loopback)",
        f"  date     {info['date']}",
        f"  machine  {info['cpu']}, {cores} cores, {info['platform']}",
        f"  python   {info['python']} (GIL {'on' if info['gil'] else 'off'})",
        "  versions "
        + ", ".join(f"{k} {v}" for k, v in info["versions"].items())
        + f", redis-server {report['redis_server']}",
        f"  command  {report['command']}",
        "  method   a private redis-server on 127.0.0.1 (no persistence); interleaved rounds "
        "after a warm-up,",
        "           the order rotating, GC off in the loops; per call = median over rounds",
    ]
    if report.get("skipped"):
        out.append(f"  stalwart.redis: {report['skipped']}")
    out.extend(report.pop("_lines"))
    return "\n".join(line.rstrip() for line in out)


# -- command line ------------------------------------------------------------------------


@dataclass(frozen=True)
class Sizes:
    rounds: int
    calls: int
    redis_calls: int
    trials: int
    limiter_calls: int
    idle: float


def sizes(args: argparse.Namespace) -> Sizes:
    quick = args.quick
    s = Sizes(
        rounds=args.rounds or (3 if quick else 5),
        calls=args.calls or (20_000 if quick else 200_000),
        redis_calls=args.redis_calls or (300 if quick else 2_000),
        trials=args.trials or (20 if quick else 100),
        limiter_calls=args.limiter_calls or (500 if quick else 3_000),
        idle=1.2 if quick else 2.2,
    )
    if min(s.rounds, s.calls, s.redis_calls, s.trials, s.limiter_calls, args.workers) < 1:
        raise SystemExit("every count must be >= 1")
    if not 0 < args.poll_ms <= 100:
        raise SystemExit("--poll-ms must be in (0, 100]")
    return s


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="3 rounds, a tenth of the calls, 20 trials")
    p.add_argument("--json", action="store_true", help="print JSON instead of the tables")
    p.add_argument("--rounds", type=int, help="rounds of the timed tables (default 5, quick 3)")
    p.add_argument("--calls", type=int, help="closed-path calls per round (default 200,000)")
    p.add_argument(
        "--redis-calls",
        type=int,
        help="calls per round of contenders that go to Redis on every call (default 2,000)",
    )
    p.add_argument("--workers", type=int, default=3, help="propagation worker processes (3)")
    p.add_argument("--trials", type=int, help="propagation trials, open + close (default 100)")
    p.add_argument("--poll-ms", type=float, default=0.5, help="workers' polling period (0.5)")
    p.add_argument("--limiter-calls", type=int, help="acquires per round (default 3,000)")
    p.add_argument("--redis-server", default=REDIS_SERVER, help=f"binary ({REDIS_SERVER})")
    p.add_argument(
        "--worker-lifetime",
        type=float,
        default=300.0,
        help="seconds after which a propagation worker ends on its own (300)",
    )
    p.add_argument(
        "--scenario", action="append", choices=SCENARIOS, help="run only this one (repeatable)"
    )
    p.add_argument("--worker", nargs=5, help=argparse.SUPPRESS)
    return p


def run(args: argparse.Namespace, argv: list[str]) -> int:
    size = sizes(args)
    chosen = args.scenario or list(SCENARIOS)
    sr, why = stalwart_redis()
    if sr is None:
        log(why)
    poll = args.poll_ms / 1000
    lines: list[str] = []
    report: dict[str, Any] = {"skipped": why or None}
    with redis_server(args.redis_server) as server:
        log(f"redis-server {server.version} on {LOCAL}:{server.port}")
        if "closed" in chosen:
            closed = measure_closed(server, sr, why, size.rounds, size.calls, size.redis_calls)
            lines.extend(render_closed(closed))
            report["closed"] = {
                "calls": closed.calls,
                "redis_calls": closed.redis_calls,
                "bare_ns": closed.bare,
                "contenders": {
                    r.name: {"per_call_ns": r.samples, "overhead_ns": closed.overhead(r)}
                    if r.samples
                    else {"na": r.na}
                    for r in closed.rows
                },
            }
        if "commands" in chosen:
            commands = measure_commands(
                server, sr, why, size.calls // 2, size.redis_calls, size.idle
            )
            lines.extend(render_commands(commands, size.idle))
            report["commands_per_call"] = {
                c.name: {"na": c.na}
                if c.na
                else {
                    "calls": c.calls,
                    "commands": c.counts,
                    "per_call": c.per_call,
                    "round_trips": c.sends,
                    "round_trips_per_call": c.sends_per_call,
                    "idle_seconds": size.idle if c.calls == 0 else None,
                }
                for c in commands
            }
        if "propagation" in chosen:
            props = [
                measure_propagation(
                    kind, server, sr, why, args.workers, size.trials, poll, args.worker_lifetime
                )
                for kind in ("stalwart", "pybreaker")
            ]
            lines.extend(render_propagation(props, poll))
            report["propagation_ms"] = {
                p.name: {"na": p.na}
                if p.na
                else {
                    "workers": p.workers,
                    "trials": p.trials,
                    "latencies_ms": p.latencies,
                    "missed": p.missed,
                    "call_ms": p.call_ms,
                    "stopped": p.stopped or None,
                }
                for p in props
            }
        if "limiter" in chosen:
            rows = measure_limiter(server, sr, why, size.rounds, size.limiter_calls)
            lines.extend(render_limiter(rows, size.limiter_calls, size.rounds))
            report["limiter_acquires_per_s"] = {
                r.name: r.samples if r.samples else {"na": r.na} for r in rows
            }
        report["redis_server"] = server.version
    report["machine"] = machine(PACKAGES)
    report["command"] = " ".join(["bench/distributed.py", *argv])
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        report["_lines"] = lines
        print(render(report, args))
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parser().parse_args(argv)
    if args.worker:
        kind, port, name, poll, lifetime = args.worker
        return worker_main(kind, int(port), name, float(poll), float(lifetime))

    def terminated(signum: int, frame: object) -> None:
        raise SystemExit(128 + signum)  # run the finally blocks: workers, redis-server

    signal.signal(signal.SIGTERM, terminated)
    try:
        return run(args, argv)
    except Broken as exc:
        print(f"sanity check failed: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
