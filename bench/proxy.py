"""Chaos-proxy benchmark: what the TCP proxy costs on loopback with no fault set.

Run it with ``scripts/bench proxy`` (or ``.venv/bin/python bench/proxy.py``); ``--help``
lists the options. Three processes, so that no two share an event loop or a GIL:

- an upstream (``python -c``, blocking sockets, a thread per connection) that either sends
  N bytes on request (the source) or echoes (the ping-pong peer);
- the proxy (``python -c`` starting ``stalwart.chaos.ChaosProxy`` in front of the upstream,
  no fault set, on its own event loop);
- this process, the client, with blocking sockets.

Two measurements, each against a direct connection to the same upstream:

1. bulk transfer: the client asks for ``--megabytes`` MB and reads them into one buffer;
   throughput = bytes / time. Rounds alternate direct and proxied; the figure is each
   path's median, and the goal is proxied / direct >= 0.5.
2. request/response: ``--pings`` round trips of a 64-byte message on one connection
   (TCP_NODELAY everywhere); the added latency is proxied - direct, at p50 and p99 of the
   per-round-trip times (pooled over rounds). Goal: p50 <= 150 us.

The client checks what it reads (the byte count and a marker at each end of every bulk
transfer; the echoed bytes of every ping), so a proxy that loses data fails the run
(exit 1). This is a report, not a test: it exits 0 once it has measured, goals met or not.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import struct
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from _harness import machine

LOCAL = "127.0.0.1"
CHUNK = 1 << 20
THROUGHPUT_GOAL = 0.5
"""Proxied throughput / direct throughput, at least."""
LATENCY_GOAL_US = 150.0
"""Added p50 round-trip latency, at most (microseconds)."""
PING = 64
"""Bytes in each ping-pong message."""

UPSTREAM = r"""
import socket, struct, sys, threading
CHUNK = 1 << 20
block = bytearray(b"\xab" * CHUNK)
def serve(conn):
    with conn:
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        mode = conn.recv(1)
        if mode == b"S":  # source: per 8-byte request N, send N bytes (first and last = marks)
            view = memoryview(block)
            while head := conn.recv(8, socket.MSG_WAITALL):
                (n,) = struct.unpack("!Q", head)
                left = n
                while left:
                    step = min(left, CHUNK)
                    block[0] = 0x01 if left == n else 0xAB
                    block[step - 1] = 0x02 if left == step else 0xAB
                    conn.sendall(view[:step])
                    left -= step
                block[0] = block[CHUNK - 1] = 0xAB
        elif mode == b"E":  # echo
            while data := conn.recv(65536):
                conn.sendall(data)
def accept(server):
    while True:
        conn, _ = server.accept()
        threading.Thread(target=serve, args=(conn,), daemon=True).start()
server = socket.create_server(("127.0.0.1", 0))
print(server.getsockname()[1], flush=True)
threading.Thread(target=accept, args=(server,), daemon=True).start()
sys.stdin.read()
"""
"""The upstream: prints its port, serves until its stdin closes."""

PROXY = r"""
import asyncio, sys
from stalwart.chaos import ChaosProxy
async def main():
    kw = {"max_buffer": int(sys.argv[2])} if len(sys.argv) > 2 else {}
    async with ChaosProxy(("127.0.0.1", int(sys.argv[1])), **kw) as proxy:
        print(proxy.address[1], flush=True)
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
asyncio.run(main())
"""
"""The proxy, no fault set: prints its port, runs until its stdin closes."""


@dataclass(frozen=True)
class Child:
    port: int
    pid: int

    def cpu(self) -> float | None:
        """CPU seconds (user + system) the process used so far; None if unknown (not Linux)."""
        try:
            with open(f"/proc/{self.pid}/stat", encoding="ascii") as stat:
                fields = stat.read().rsplit(")", 1)[1].split()
        except OSError:
            return None
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@contextmanager
def child(code: str, *args: str) -> Iterator[Child]:
    """Start ``python -c code args``; yield it once it printed its port; stop it by closing
    its stdin."""
    process = subprocess.Popen(
        [sys.executable, "-c", code, *args], stdin=subprocess.PIPE, stdout=subprocess.PIPE
    )
    assert process.stdin is not None
    assert process.stdout is not None
    try:
        line = process.stdout.readline()
        if not line:
            raise SystemExit(f"child process exited with {process.wait(10)} before its port")
        yield Child(int(line), process.pid)
    finally:
        process.stdin.close()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)


def connect(port: int, mode: bytes) -> socket.socket:
    sock = socket.create_connection((LOCAL, port), timeout=30)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.sendall(mode)
    return sock


def bulk(port: int, size: int, buffer: memoryview) -> float:
    """Seconds to receive ``size`` bytes from the source through ``port``."""
    with connect(port, b"S") as sock:
        started = time.perf_counter()
        sock.sendall(struct.pack("!Q", size))
        got = 0
        first = last = -1
        while got < size:
            n = sock.recv_into(buffer, min(len(buffer), size - got))
            if n == 0:
                raise SystemExit(f"connection closed after {got} of {size} bytes")
            if got == 0:
                first = buffer[0]
            got += n
            last = buffer[n - 1]
        elapsed = time.perf_counter() - started
    if (first, last) != (0x01, 0x02):
        raise SystemExit(f"bulk transfer corrupted: marks {first:#x}, {last:#x}")
    return elapsed


def pings(port: int, count: int) -> list[float]:
    """Seconds of each of ``count`` round trips of a PING-byte message on one connection."""
    times = []
    with connect(port, b"E") as sock:
        buffer = bytearray(PING)
        view = memoryview(buffer)
        for i in range(count + count // 10):  # the first tenth warms up and is dropped
            message = i.to_bytes(PING, "big")
            started = time.perf_counter()
            sock.sendall(message)
            got = 0
            while got < PING:
                n = sock.recv_into(view[got:])
                if n == 0:
                    raise SystemExit("echo connection closed")
                got += n
            elapsed = time.perf_counter() - started
            if buffer != message:
                raise SystemExit("echo corrupted")
            if i >= count // 10:
                times.append(elapsed)
    return times


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


@dataclass(frozen=True)
class Figures:
    size: int
    rounds: int
    direct_mbps: list[float]
    proxy_mbps: list[float]
    proxy_cpu: float | None
    """The proxy process's CPU seconds per GiB forwarded (median over rounds)."""
    count: int
    direct_us: dict[str, float]
    proxy_us: dict[str, float]

    @property
    def ratio(self) -> float:
        return statistics.median(self.proxy_mbps) / statistics.median(self.direct_mbps)

    def added(self, q: str) -> float:
        return self.proxy_us[q] - self.direct_us[q]


def measure(size: int, rounds: int, count: int, proxy_args: list[str]) -> Figures:
    direct_mbps: list[float] = []
    proxy_mbps: list[float] = []
    direct_t: list[float] = []
    proxy_t: list[float] = []
    cpu: list[float] = []
    buffer = memoryview(bytearray(CHUNK))
    with child(UPSTREAM) as upstream, child(PROXY, str(upstream.port), *proxy_args) as proxy:
        bulk(upstream.port, size // 10, buffer)  # warm-up, dropped
        bulk(proxy.port, size // 10, buffer)
        for r in range(rounds):
            for path in ("direct", "proxy") if r % 2 == 0 else ("proxy", "direct"):
                if path == "direct":
                    direct_mbps.append(size / bulk(upstream.port, size, buffer) / 1e6)
                    continue
                before = proxy.cpu()
                proxy_mbps.append(size / bulk(proxy.port, size, buffer) / 1e6)
                after = proxy.cpu()
                if before is not None and after is not None:
                    cpu.append((after - before) / (size / 2**30))
            print(f"  ... bulk round {r + 1}/{rounds}", file=sys.stderr, flush=True)
        for r in range(rounds):
            order = [(upstream.port, direct_t), (proxy.port, proxy_t)]
            for port, into in order if r % 2 == 0 else order[::-1]:
                into.extend(pings(port, count))
            print(f"  ... ping-pong round {r + 1}/{rounds}", file=sys.stderr, flush=True)

    def summary(times: list[float]) -> dict[str, float]:
        return {q: percentile(times, p) * 1e6 for q, p in (("p50", 0.5), ("p99", 0.99))}

    return Figures(
        size,
        rounds,
        direct_mbps,
        proxy_mbps,
        statistics.median(cpu) if cpu else None,
        count,
        summary(direct_t),
        summary(proxy_t),
    )


def verdict(ok: bool) -> str:
    return "ok" if ok else "MISSED"


def render(figures: Figures, info: dict[str, Any], command: str) -> str:
    f = figures
    d50, p50 = statistics.median(f.direct_mbps), statistics.median(f.proxy_mbps)
    lines = [
        "stalwart chaos-proxy benchmark (no fault set, loopback)",
        f"  date     {info['date']}",
        f"  machine  {info['cpu']}, {info['cores']} cores, {info['platform']}",
        f"  python   {info['python']}",
        "  versions " + ", ".join(f"{k} {v}" for k, v in info["versions"].items()),
        f"  command  {command}",
        "  method   upstream, proxy and client in 3 processes; rounds alternate direct and proxied",
        "",
        f"1. bulk transfer: {f.size // 2**20} MB from the upstream, {f.rounds} rounds each",
        "  path        median MB/s        range MB/s",
        "  -----------------------------------------",
        f"  direct      {d50:>10,.0f}  {min(f.direct_mbps):>7,.0f}..{max(f.direct_mbps):,.0f}",
        f"  proxied     {p50:>10,.0f}  {min(f.proxy_mbps):>7,.0f}..{max(f.proxy_mbps):,.0f}",
        f"  proxied / direct = {f.ratio:.2f}   (goal >= {THROUGHPUT_GOAL})  "
        f"{verdict(f.ratio >= THROUGHPUT_GOAL)}",
        "  proxy process CPU: "
        + ("n/a" if f.proxy_cpu is None else f"{f.proxy_cpu:.2f} s per GiB forwarded (median)"),
        "",
        f"2. request/response: {f.count:,} round trips of {PING} bytes x {f.rounds} rounds, "
        "one connection",
        "  path          p50 us     p99 us",
        "  -------------------------------",
        f"  direct      {f.direct_us['p50']:>8.1f}   {f.direct_us['p99']:>8.1f}",
        f"  proxied     {f.proxy_us['p50']:>8.1f}   {f.proxy_us['p99']:>8.1f}",
        f"  added       {f.added('p50'):>8.1f}   {f.added('p99'):>8.1f}"
        f"   (goal p50 <= {LATENCY_GOAL_US:.0f} us)  {verdict(f.added('p50') <= LATENCY_GOAL_US)}",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    p.add_argument("--quick", action="store_true", help="64 MB, 3 rounds, 2,000 pings")
    p.add_argument("--json", action="store_true", help="print JSON instead of the tables")
    p.add_argument("--rounds", type=int, help="rounds of each measurement (default 7)")
    p.add_argument("--megabytes", type=int, help="MB per bulk transfer (default 256)")
    p.add_argument("--pings", type=int, help="round trips per ping-pong round (default 10,000)")
    p.add_argument("--max-buffer", type=int, help="the proxy's max_buffer (default: its own)")
    args = p.parse_args(argv)
    rounds = args.rounds or (3 if args.quick else 7)
    size = (args.megabytes or (64 if args.quick else 256)) * 2**20
    count = args.pings or (2_000 if args.quick else 10_000)
    if rounds < 1 or size < CHUNK or count < 10:
        raise SystemExit("--rounds >= 1, --megabytes >= 1 and --pings >= 10, please")
    figures = measure(size, rounds, count, [str(args.max_buffer)] if args.max_buffer else [])
    info = machine(("stalwart",))
    command = " ".join(["bench/proxy.py", *(sys.argv[1:] if argv is None else argv)])
    if args.json:
        print(
            json.dumps(
                {
                    "machine": info,
                    "command": command,
                    "bulk": {
                        "bytes": size,
                        "direct_mb_s": figures.direct_mbps,
                        "proxied_mb_s": figures.proxy_mbps,
                        "ratio": figures.ratio,
                        "proxy_cpu_s_per_gib": figures.proxy_cpu,
                        "goal": THROUGHPUT_GOAL,
                    },
                    "latency_us": {
                        "round_trips": count * rounds,
                        "direct": figures.direct_us,
                        "proxied": figures.proxy_us,
                        "added": {q: figures.added(q) for q in ("p50", "p99")},
                        "goal_p50": LATENCY_GOAL_US,
                    },
                },
                indent=2,
            )
        )
    else:
        print(render(figures, info, command))
    return 0


if __name__ == "__main__":
    sys.exit(main())
