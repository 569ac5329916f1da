"""Health-endpoint benchmark: ``GET /health`` under load with its dependency blackholed.

Run it with ``scripts/bench health`` (or ``.venv/bin/python bench/health.py``); ``--help``
lists the options. Every process runs on 127.0.0.1 and is started and stopped here:

- the dependency: a tiny HTTP server (``python -c``, asyncio) answering 200 to anything;
- the chaos proxy in front of it: ``stalwart proxy --control``, faults switched over HTTP;
- stalwart: ``stalwart serve`` with a config written to a temporary directory, one
  critical ``http`` check of the dependency through the proxy (``--timeout`` 1 s,
  ``--interval`` 2 s); ``/health`` reads the cached report;
- the naive server (``bench/_naive_health.py``): uvicorn with the same settings and a pure
  ASGI app whose ``/health`` asks the dependency through the proxy on every request
  (shared ``httpx.AsyncClient``, the whole call bounded by the same timeout), as the seeds
  did;
- the floor (``bench/_naive_health.py --constant``): the same uvicorn and a constant 200,
  checking nothing: what uvicorn alone costs here (``--no-floor`` skips it);
- this process: the load generator (asyncio, raw HTTP/1.1 keep-alive connections).

Both servers answer 200 while the dependency is up (checked first). Then the dependency is
blackholed through the proxy's control endpoint (``POST /proxies/dep/faults
{"blackhole": true}``: connections accepted, never answered), and the bench waits until
stalwart's ``/health`` says 503 (its check timed out in the background). Each server is
then loaded in turn, in two shapes:

1. closed loop: each of ``--clients`` connections sends its next request as soon as the
   last is answered. This is saturation: throughput is the server's capacity, and by
   Little's law every request waits behind the others (p50 ~ clients / throughput).
2. paced: each client sends one request every ``--period`` (0.1 s: 200 clients offer
   2,000 req/s), the way probes and dashboards poll; a client whose answer comes late
   skips the ticks it missed (counted). This is the latency a prober sees, where the
   goal (p99 <= 10 ms) applies.

Every request sent in the measured window (after ``--warmup`` seconds of the same load,
dropped) is timed from its write to its last byte; req/s = answers received within the
window / its length. A request unanswered after ``REQUEST_TIMEOUT`` counts as an error and
its connection is replaced. This is a report, not a test: it exits 0 once it has measured,
goal met or not; 1 if a sanity check fails (a server answering the wrong status).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import queue
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from _harness import machine

LOCAL = "127.0.0.1"
GOAL_MS = 10.0
"""stalwart's p99 at most, in the paced shape (issue 5)."""
REQUEST_TIMEOUT = 5.0
"""Seconds the load generator waits for an answer before counting an error."""
START_TIMEOUT = 20.0
"""Seconds a process may take to start listening."""
STOP_TIMEOUT = 10.0
"""Seconds a process may take to exit after SIGTERM, before SIGKILL."""
MAX_PER_CLIENT = 2_000_000
"""Requests one client sends at most in a run (a bound on every loop)."""
REQUEST = b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: stalwart-bench\r\n\r\n"
HERE = Path(__file__).resolve().parent

DEPENDENCY = r"""
import asyncio
BODY = b'{"status": "ok"}'
ANSWER = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s" % (
    len(BODY), BODY)
async def serve(reader, writer):
    try:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            writer.write(ANSWER)
            if b"connection: close" in head.lower():
                break
            await writer.drain()
    except (asyncio.IncompleteReadError, ConnectionError, asyncio.LimitOverrunError):
        pass
    finally:
        writer.close()
async def main():
    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    print(server.sockets[0].getsockname()[1], flush=True)
    async with server:
        await server.serve_forever()
try:
    asyncio.run(main())
except KeyboardInterrupt:
    pass
"""
"""The dependency: prints its port, answers 200 to every request until SIGTERM/SIGINT."""

SERVE_CONFIG = """\
service: bench-health
listen: 127.0.0.1:{port}
cache_max_age: 0
checks:
  dependency:
    type: http
    url: http://127.0.0.1:{proxy}/health
    timeout: {timeout}
    interval: {interval}
    critical: true
"""
"""The config ``stalwart serve`` runs: one critical http check through the proxy."""


def log(text: str) -> None:
    """Progress, on stderr (stdout carries only the report)."""
    print(f"  ... {text}", file=sys.stderr, flush=True)


# -- processes -------------------------------------------------------------------------


@dataclass
class Child:
    """A process this bench started, its stdout lines in a queue, its stderr in a file."""

    name: str
    process: subprocess.Popen[bytes]
    errors: Path
    lines: queue.Queue[str | None] = field(default_factory=queue.Queue)
    port: int = 0

    def expect(self, what: Callable[[str], bool], timeout: float = START_TIMEOUT) -> str:
        """The first stdout line for which ``what`` is true, within ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            try:
                line = self.lines.get(timeout=left)
            except queue.Empty:
                break
            if line is None:
                raise SystemExit(f"{self.name} exited ({self.process.wait(1)}):\n{self.tail()}")
            if what(line):
                return line
        raise SystemExit(f"{self.name} said nothing expected within {timeout:g} s:\n{self.tail()}")

    def tail(self) -> str:
        with contextlib.suppress(OSError):
            return "\n".join(self.errors.read_text(errors="replace").splitlines()[-20:])
        return ""

    def cpu(self) -> float | None:
        """CPU seconds (user + system) the process used so far; None if unknown."""
        try:
            with open(f"/proc/{self.process.pid}/stat", encoding="ascii") as stat:
                fields = stat.read().rsplit(")", 1)[1].split()
        except OSError:
            return None
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                log(f"{self.name} ignored SIGTERM for {STOP_TIMEOUT:g} s: killing it")
                self.process.kill()
                self.process.wait(STOP_TIMEOUT)
        assert self.process.stdout is not None
        self.process.stdout.close()


@contextlib.contextmanager
def started(name: str, argv: list[str], workdir: Path) -> Iterator[Child]:
    """Start ``argv``; stop it (SIGTERM, then SIGKILL) on the way out, whatever happens."""
    errors = workdir / f"{name}.stderr"
    with errors.open("wb") as sink:
        process = subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=sink, cwd=workdir
        )
    child = Child(name, process, errors)

    def pump() -> None:
        assert process.stdout is not None
        with contextlib.suppress(ValueError, OSError):
            for raw in process.stdout:
                child.lines.put(raw.decode(errors="replace").rstrip("\n"))
        child.lines.put(None)

    threading.Thread(target=pump, name=f"{name}-stdout", daemon=True).start()
    try:
        yield child
    finally:
        child.stop()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((LOCAL, 0))
        port: int = sock.getsockname()[1]
        return port


def http(method: str, url: str, body: Any = None, timeout: float = 5.0) -> tuple[int, Any]:
    """One request with the standard library: (status, JSON body or text)."""
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method=method)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            status, raw = response.status, response.read()
    except urllib.error.HTTPError as exc:
        status, raw = exc.code, exc.read()
    try:
        return status, json.loads(raw)
    except ValueError:
        return status, raw.decode(errors="replace")


def wait_status(url: str, want: int, timeout: float, probe_timeout: float = 5.0) -> float:
    """Poll ``url`` until it answers ``want``; seconds it took (SystemExit past ``timeout``)."""
    started_at = time.monotonic()
    deadline = started_at + timeout
    last: object = None
    while time.monotonic() < deadline:
        try:
            status, body = http("GET", url, timeout=probe_timeout)
        except OSError as exc:
            last = exc
        else:
            if status == want:
                return time.monotonic() - started_at
            last = f"{status} {body}"
        time.sleep(0.05)
    raise SystemExit(f"{url} did not answer {want} within {timeout:g} s (last: {last})")


# -- the load generator ----------------------------------------------------------------


class ProtocolError(Exception):
    """An answer the generator cannot read (no Content-Length, bad status line)."""


class Conn(asyncio.Protocol):
    """One keep-alive connection: one request in flight at a time, answers parsed by hand."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.waiter: asyncio.Future[tuple[int, bool]] | None = None
        self.lost = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        waiter = self.waiter
        if waiter is None or waiter.done():
            return
        try:
            answer = self._parse()
        except (ProtocolError, ValueError) as exc:
            waiter.set_exception(ProtocolError(str(exc)))
            return
        if answer is not None:
            waiter.set_result(answer)

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True
        waiter = self.waiter
        if waiter is not None and not waiter.done():
            waiter.set_exception(ConnectionError("connection closed by the server"))

    def _parse(self) -> tuple[int, bool] | None:
        """(status, keep-alive) once a whole answer is in the buffer (then consumed)."""
        buffer = self.buffer
        end = buffer.find(b"\r\n\r\n")
        if end < 0:
            return None
        head = bytes(buffer[:end]).lower()
        at = head.find(b"\r\ncontent-length:")
        if at < 0:
            raise ProtocolError("an answer without Content-Length")
        stop = head.find(b"\r\n", at + 2)
        length = int(head[at + 17 : stop if stop >= 0 else len(head)])
        total = end + 4 + length
        if len(buffer) < total:
            return None
        if not head.startswith(b"http/1.1 "):
            raise ProtocolError(f"bad status line {head[:40]!r}")
        status = int(head[9:12])
        del buffer[:total]
        return status, b"\r\nconnection: close" not in head

    def close(self) -> None:
        if self.transport is not None:
            self.transport.abort()


@dataclass
class Tally:
    """What one run recorded, all clients together."""

    latencies: list[float] = field(default_factory=list)
    statuses: Counter[int] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)
    answered_in_window: int = 0
    missed_ticks: int = 0
    reconnects: int = 0


async def connect(port: int) -> Conn:
    loop = asyncio.get_running_loop()
    async with asyncio.timeout(REQUEST_TIMEOUT):
        _, conn = await loop.create_connection(Conn, LOCAL, port)
    return conn


async def ask(conn: Conn) -> tuple[int, bool]:
    """Send one request on ``conn``; its (status, keep-alive), bounded by REQUEST_TIMEOUT."""
    loop = asyncio.get_running_loop()
    waiter: asyncio.Future[tuple[int, bool]] = loop.create_future()
    conn.waiter = waiter
    assert conn.transport is not None
    conn.transport.write(REQUEST)
    expiry = loop.call_later(REQUEST_TIMEOUT, _expire, waiter)
    try:
        return await waiter
    finally:
        expiry.cancel()
        conn.waiter = None


def _expire(waiter: asyncio.Future[tuple[int, bool]]) -> None:
    if not waiter.done():
        waiter.set_exception(TimeoutError())


@dataclass(frozen=True)
class Window:
    """The run's timeline on ``time.perf_counter()``: load starts, is measured, stops."""

    begin: float
    measure: float
    end: float


async def client(
    port: int, window: Window, tally: Tally, *, period: float | None, offset: float
) -> None:
    """One client until the window ends: closed loop (``period`` None) or one request per
    ``period`` from ``window.begin + offset``."""
    clock = time.perf_counter
    conn = await _connect(port, window, tally)
    if conn is None:
        return
    tick = window.begin + offset
    try:
        for _ in range(MAX_PER_CLIENT):
            now = clock()
            if tick > now:  # the start, then (paced) each tick
                await asyncio.sleep(tick - now)
            sent = clock()
            if sent >= window.end:
                break
            try:
                status, keep = await ask(conn)
            except (ConnectionError, TimeoutError, ProtocolError) as exc:
                if sent >= window.measure:
                    tally.errors[type(exc).__name__] += 1
                keep = False
            else:
                done = clock()
                if sent >= window.measure:
                    tally.latencies.append(done - sent)
                    tally.statuses[status] += 1
                if window.measure <= done <= window.end:
                    tally.answered_in_window += 1
            if not keep or conn.lost:
                conn.close()
                tally.reconnects += 1
                fresh = await _connect(port, window, tally)
                if fresh is None:
                    break
                conn = fresh
            if period is not None:
                tick += period
                now = clock()
                if tick < now:  # late: skip the ticks missed, never burst to catch up
                    skipped = int((now - tick) / period) + 1
                    if tick >= window.measure:
                        tally.missed_ticks += skipped
                    tick += skipped * period
    finally:
        conn.close()


async def _connect(port: int, window: Window, tally: Tally) -> Conn | None:
    """A new connection; failures count as errors and are retried every 10 ms until the
    window ends (then None: the client is done)."""
    for _ in range(MAX_PER_CLIENT):
        try:
            return await connect(port)
        except (OSError, TimeoutError) as exc:
            now = time.perf_counter()
            if now >= window.measure:
                tally.errors[f"connect: {type(exc).__name__}"] += 1
            if now >= window.end:
                return None
            await asyncio.sleep(0.01)
    return None


async def load(
    port: int, clients: int, warmup: float, duration: float, period: float | None
) -> Tally:
    """``clients`` clients against ``port``: ``warmup`` s dropped, then ``duration`` s."""
    tally = Tally()
    begin = time.perf_counter() + 0.2 + clients * 0.002  # connections open before the start
    window = Window(begin, begin + warmup, begin + warmup + duration)
    tasks = [
        client(
            port,
            window,
            tally,
            period=period,
            offset=0.0 if period is None else period * i / clients,
        )
        for i in range(clients)
    ]
    async with asyncio.timeout(warmup + duration + REQUEST_TIMEOUT + 30):
        await asyncio.gather(*tasks)
    return tally


# -- the measurement -------------------------------------------------------------------


@dataclass(frozen=True)
class Figures:
    server: str
    shape: str
    seconds: float
    requests: int
    rps: float
    p50: float
    p90: float
    p99: float
    max: float
    statuses: dict[int, int]
    errors: dict[str, int]
    missed_ticks: int
    reconnects: int
    server_cpu: float | None
    """Share of one core the server process used during the run (warm-up included)."""
    generator_cpu: float
    """Share of one core this process (the load generator) used during the run."""

    def as_json(self) -> dict[str, Any]:
        out = dict(self.__dict__)
        out["statuses"] = {str(k): v for k, v in self.statuses.items()}
        return out


def percentile(ordered: list[float], q: float) -> float:
    if not ordered:
        return float("nan")
    return ordered[min(len(ordered), max(1, math.ceil(q * len(ordered)))) - 1]  # nearest rank


def measure(child: Child, name: str, shape: str, args: argparse.Namespace) -> Figures:
    period = None if shape == "closed" else args.period
    log(f"{name}: {shape}, {args.clients} clients, {args.warmup:g} s + {args.duration:g} s")
    cpu_before, own_before, wall_before = child.cpu(), time.process_time(), time.perf_counter()
    tally = asyncio.run(load(child.port, args.clients, args.warmup, args.duration, period))
    wall = time.perf_counter() - wall_before
    cpu_after, own_after = child.cpu(), time.process_time()
    ordered = sorted(tally.latencies)
    server_cpu = None
    if cpu_before is not None and cpu_after is not None:
        server_cpu = (cpu_after - cpu_before) / wall
    return Figures(
        server=name,
        shape=shape,
        seconds=args.duration,
        requests=len(ordered) + sum(tally.errors.values()),
        rps=tally.answered_in_window / args.duration,
        p50=percentile(ordered, 0.50) * 1e3,
        p90=percentile(ordered, 0.90) * 1e3,
        p99=percentile(ordered, 0.99) * 1e3,
        max=(ordered[-1] if ordered else float("nan")) * 1e3,
        statuses=dict(sorted(tally.statuses.items())),
        errors=dict(tally.errors),
        missed_ticks=tally.missed_ticks,
        reconnects=tally.reconnects,
        server_cpu=server_cpu,
        generator_cpu=(own_after - own_before) / wall,
    )


@dataclass
class Setup:
    """What the run found before loading anything."""

    unhealthy_after: float = 0.0
    """Seconds from the blackhole to stalwart's first 503."""
    naive_answer: float = 0.0
    """Seconds the naive /health took to answer 503 once, unloaded, blackholed."""
    load_before: tuple[float, float, float] = (0.0, 0.0, 0.0)
    load_after: tuple[float, float, float] = (0.0, 0.0, 0.0)


def run(args: argparse.Namespace) -> tuple[list[Figures], Setup]:
    setup = Setup()
    python = sys.executable
    naive_py = str(HERE / "_naive_health.py")
    timeout = f"{args.timeout:g}"
    figures: list[Figures] = []
    with (
        tempfile.TemporaryDirectory(prefix="stalwart-bench-health-") as tmp,
        contextlib.ExitStack() as stack,
    ):
        work = Path(tmp)
        dep = stack.enter_context(started("dependency", [python, "-c", DEPENDENCY], work))
        dep.port = int(dep.expect(str.isdigit))
        control_port = free_port()
        proxy = stack.enter_context(
            started(
                "proxy",
                [
                    python, "-m", "stalwart.cli", "proxy",
                    "--listen", f"{LOCAL}:0",
                    "--upstream", f"{LOCAL}:{dep.port}",
                    "--control", f"{LOCAL}:{control_port}",
                    "--name", "dep",
                ],
                work,
            )
        )  # fmt: skip
        line = proxy.expect(lambda text: text.startswith("proxy "))
        proxy.port = int(line.split(" -> ")[0].rsplit(":", 1)[1])
        control = proxy.expect(lambda text: text.startswith("control: ")).split(": ", 1)[1]
        dep_url = f"http://{LOCAL}:{proxy.port}/health"

        config = work / "health.yaml"
        port = free_port()
        config.write_text(
            SERVE_CONFIG.format(
                port=port, proxy=proxy.port, timeout=timeout, interval=f"{args.interval:g}"
            )
        )
        servers: dict[str, Child] = {}
        stalwart = stack.enter_context(
            started("stalwart", [python, "-m", "stalwart.cli", "serve", str(config)], work)
        )
        stalwart.port = port
        servers["stalwart"] = stalwart
        naive_port = free_port()
        naive = stack.enter_context(
            started(
                "naive",
                [
                    python,
                    naive_py,
                    "--port",
                    str(naive_port),
                    "--url",
                    dep_url,
                    "--timeout",
                    timeout,
                    "--max-connections",
                    str(args.naive_pool),
                ],
                work,
            )
        )
        naive.port = naive_port
        naive.expect(lambda text: text == "ready")
        servers["naive"] = naive
        if args.floor:
            floor_port = free_port()
            floor = stack.enter_context(
                started("floor", [python, naive_py, "--port", str(floor_port), "--constant"], work)
            )
            floor.port = floor_port
            floor.expect(lambda text: text == "ready")
            servers["floor"] = floor

        log("dependency up: both servers must say 200")
        for name in ("stalwart", "naive"):
            wait_status(f"http://{LOCAL}:{servers[name].port}/health", 200, START_TIMEOUT)
        status, faults = http("POST", f"{control}/faults", {"blackhole": True})
        if status != 200 or not isinstance(faults, dict) or faults.get("blackhole") is not True:
            raise SystemExit(f"the control endpoint refused the blackhole: {status} {faults}")
        log("dependency blackholed: waiting for stalwart's check to time out")
        bound = args.interval + args.timeout + 10
        setup.unhealthy_after = wait_status(
            f"http://{LOCAL}:{port}/health", 503, bound, probe_timeout=1.0
        )
        setup.naive_answer = wait_status(
            f"http://{LOCAL}:{naive_port}/health", 503, args.timeout + 10, probe_timeout=5.0
        )
        setup.load_before = os.getloadavg()
        for shape in args.shapes:
            for name, child in servers.items():
                figures.append(measure(child, name, shape, args))
                if child.process.poll() is not None:
                    raise SystemExit(f"{name} died under load:\n{child.tail()}")
                if name == "naive":  # its requests to the dependency end within the timeout
                    time.sleep(args.timeout + 0.5)
        setup.load_after = os.getloadavg()
        status, body = http("GET", f"http://{LOCAL}:{port}/health")
        if status != 503:
            raise SystemExit(f"stalwart's /health says {status} after the run: {body}")
        http("DELETE", f"{control}/faults")
    return figures, setup


# -- the report ------------------------------------------------------------------------


SHAPES = {
    "closed": "closed loop: {clients} clients, each sends its next request as soon as the last "
    "is answered (saturation)",
    "paced": "paced: {clients} clients, each polls every {period_ms:g} ms "
    "({offered:,.0f} req/s offered), the latency a prober sees",
}


def ms(value: float) -> str:
    return f"{value:,.1f}" if value < 100 else f"{value:,.0f}"


def render(
    figures: list[Figures],
    setup: Setup,
    args: argparse.Namespace,
    info: dict[str, Any],
    command: str,
) -> str:
    cores = info["cores"]
    if info["usable_cores"] not in (None, cores):
        cores = f"{cores} ({info['usable_cores']} usable)"
    offered = args.clients / args.period
    pool = f"pool limit {args.naive_pool}" if args.naive_pool else "no pool limit"
    out = [
        "stalwart health-endpoint benchmark: GET /health with its dependency blackholed",
        f"  date     {info['date']}",
        f"  machine  {info['cpu']}, {cores} cores, {info['platform']}",
        f"  python   {info['python']} (GIL {'on' if info['gil'] else 'off'})",
        "  versions " + ", ".join(f"{k} {v}" for k, v in info["versions"].items()),
        f"  command  {command}",
        "  method   dependency, chaos proxy (stalwart proxy), stalwart serve, naive server"
        + (", floor server" if args.floor else "")
        + ": one process each on 127.0.0.1;",
        "           this process generates the load (asyncio, raw HTTP/1.1 keep-alive, "
        f"{args.clients} connections); each server in turn,",
        f"           {args.warmup:g} s of warm-up dropped, then {args.duration:g} s measured; "
        "latency = write of the request to the last byte of the answer",
        f"  check    http, timeout {args.timeout:g} s, interval {args.interval:g} s, critical; "
        f"blackholed -> stalwart said 503 after {setup.unhealthy_after:.1f} s;",
        f"           the naive /health, unloaded, answered 503 in {setup.naive_answer:.2f} s",
        "  load avg {:.2f} {:.2f} {:.2f} before, {:.2f} {:.2f} {:.2f} after".format(
            *setup.load_before, *setup.load_after
        ),
        "  servers  stalwart: stalwart serve (reads the cached report);"
        " naive: asks the dependency on each request,",
        f"           shared httpx.AsyncClient ({pool}), whole call bounded by "
        f"{args.timeout:g} s;"
        + (" floor: uvicorn + a constant 200, no check" if args.floor else ""),
    ]
    by = {(f.server, f.shape): f for f in figures}
    for index, shape in enumerate(args.shapes, 1):
        heading = SHAPES[shape].format(
            clients=args.clients, period_ms=args.period * 1e3, offered=offered
        )
        head = (
            f"  {'server':<9} {'req/s':>8} {'p50 ms':>8} {'p90 ms':>8} {'p99 ms':>8} "
            f"{'max ms':>8} {'errors':>7} {'server CPU':>10} {'gen CPU':>8}  statuses"
        )
        out += [
            "",
            f"{index}. {heading}  [{args.duration:g} s]",
            head,
            "  " + "-" * (len(head) + 4),
        ]
        rows = [f for f in figures if f.shape == shape]
        for f in rows:
            cpu = "n/a" if f.server_cpu is None else f"{f.server_cpu:.0%}"
            statuses = ", ".join(f"{code} x{count:,}" for code, count in f.statuses.items())
            errors = sum(f.errors.values())
            out.append(
                f"  {f.server:<9} {f.rps:>8,.0f} {ms(f.p50):>8} {ms(f.p90):>8} {ms(f.p99):>8} "
                f"{ms(f.max):>8} {errors:>7,} {cpu:>10} {f.generator_cpu:>8.0%}  {statuses}"
            )
            if f.errors:
                out.append(
                    "            errors: " + ", ".join(f"{k} x{v:,}" for k, v in f.errors.items())
                )
            if shape == "paced" and f.missed_ticks:
                out.append(
                    f"            {f.missed_ticks:,} polls skipped: a late answer delayed "
                    "the client past its next tick"
                )
        s, n = by.get(("stalwart", shape)), by.get(("naive", shape))
        if s is None:
            continue
        if n is not None and s.p99 > 0 and s.rps > 0 and n.rps > 0:
            out.append(
                f"  stalwart vs naive: p99 {n.p99 / s.p99:,.0f}x lower "
                f"({ms(s.p99)} vs {ms(n.p99)} ms), req/s {s.rps / n.rps:,.1f}x higher "
                f"({s.rps:,.0f} vs {n.rps:,.0f}"
                + (", stalwart's capped by the offered rate)" if shape == "paced" else ")")
            )
        if n is not None:
            bounded = n.p99 <= args.timeout * 1e3 * 1.5
            out.append(
                f"  naive p99 {ms(n.p99)} ms: "
                + (
                    f"bounded by its {args.timeout:g} s timeout, as expected"
                    if bounded
                    else f"over its {args.timeout:g} s timeout (queueing on top of it)"
                )
            )
        if shape == "closed":
            little = args.clients / s.rps * 1e3 if s.rps else float("nan")
            out.append(
                f"  Little's law: at saturation a request waits behind the others, "
                f"{args.clients} clients / {s.rps:,.0f} req/s = {ms(little)} ms on average;"
            )
            out.append(
                f"  the {GOAL_MS:g} ms goal would need {args.clients / GOAL_MS * 1e3:,.0f} req/s "
                f"here, so it does not apply to this shape: stalwart p99 {ms(s.p99)} ms "
                f"({'within' if s.p99 <= GOAL_MS else 'over'} {GOAL_MS:g} ms), shown, not judged"
            )
        else:
            verdict = "pass" if s.p99 <= GOAL_MS else "MISSED"
            achieved = s.rps / offered if offered else 0.0
            out.append(
                f"  goal: stalwart p99 <= {GOAL_MS:g} ms at {offered:,.0f} req/s offered: "
                f"p99 {ms(s.p99)} ms, {s.rps:,.0f} req/s served ({achieved:.0%} of offered)  "
                f"{verdict}"
            )
    return "\n".join(line.rstrip() for line in out)


def _terminated(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    p.add_argument("--quick", action="store_true", help="3 s measured per run, 0.5 s warm-up")
    p.add_argument("--json", action="store_true", help="print JSON instead of the tables")
    p.add_argument("--clients", type=int, default=200, help="concurrent clients (default 200)")
    p.add_argument("--duration", type=float, help="seconds measured per run (default 10)")
    p.add_argument("--warmup", type=float, help="seconds of load dropped first (default 1)")
    p.add_argument(
        "--period", type=float, default=0.1, help="paced: seconds between a client's polls (0.1)"
    )
    p.add_argument(
        "--timeout", type=float, default=1.0, help="the check's and the naive call's timeout (1)"
    )
    p.add_argument("--interval", type=float, default=2.0, help="stalwart's check interval (2)")
    p.add_argument(
        "--shape",
        dest="shapes",
        action="append",
        choices=("closed", "paced"),
        help="run only this load shape (repeatable; default both)",
    )
    p.add_argument(
        "--naive-pool",
        type=int,
        default=0,
        metavar="N",
        help="the naive server's httpx pool limit (default 0: none; httpx's own default is "
        "100, and then httpcore's pool bookkeeping makes the naive answer later than its "
        "timeout)",
    )
    p.add_argument(
        "--no-floor",
        dest="floor",
        action="store_false",
        help="skip the floor server (uvicorn + a constant answer)",
    )
    args = p.parse_args(argv)
    args.duration = args.duration or (3.0 if args.quick else 10.0)
    args.warmup = args.warmup if args.warmup is not None else (0.5 if args.quick else 1.0)
    args.shapes = args.shapes or ["closed", "paced"]
    if args.clients < 1 or args.duration <= 0 or args.warmup < 0 or args.period <= 0:
        raise SystemExit("--clients >= 1, --duration > 0, --warmup >= 0, --period > 0 please")
    if args.naive_pool < 0:
        raise SystemExit("--naive-pool >= 0 please (0: no limit)")
    if not 0 < args.timeout < REQUEST_TIMEOUT - 1 or args.interval <= 0:
        raise SystemExit(f"--timeout in (0, {REQUEST_TIMEOUT - 1:g}) s, --interval > 0 please")
    signal.signal(signal.SIGTERM, _terminated)  # stop the children on the way out, as Ctrl-C
    try:
        figures, setup = run(args)
    except KeyboardInterrupt:
        log("interrupted: every process this bench started is stopped")
        return 130
    info = machine(("stalwart", "uvicorn", "h11", "httpx"))
    command = " ".join(["bench/health.py", *argv])
    if args.json:
        report = {
            "machine": info,
            "command": command,
            "settings": {
                k: getattr(args, k)
                for k in (
                    "clients",
                    "duration",
                    "warmup",
                    "period",
                    "timeout",
                    "interval",
                    "naive_pool",
                )
            },
            "setup": setup.__dict__,
            "goal_p99_ms": GOAL_MS,
            "runs": [f.as_json() for f in figures],
        }
        print(json.dumps(report, indent=2))
    else:
        print(render(figures, setup, args, info, command))
    return 0


if __name__ == "__main__":
    sys.exit(main())
