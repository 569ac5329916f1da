"""One worker process of the multi-process tests: ``python worker.py SCENARIO URL NS DIR``.

It prints ``ready`` once its shared strategy exists, runs until the file ``DIR/stop``
appears (or 60 s pass; the limiter: for its load's set duration), then prints one JSON line
of what it saw. Times are
``time.monotonic()``, which is system-wide on Linux, so the parent compares them across
processes. The dependency is healthy while ``DIR/healthy`` exists.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import redis

from stalwart import CircuitBreaker, CircuitOpenError, RateLimiter
from stalwart.redis import RedisStore

DEADLINE = 60.0


class Down(ConnectionError):
    pass


def outage(store: RedisStore, folder: Path, stop: Path) -> dict[str, Any]:
    """Call a dependency every ~1 ms through a shared breaker; record what each call met."""
    breaker = CircuitBreaker("dependency", failure_threshold=5, recovery_timeout=0.5, store=store)
    healthy = folder / "healthy"

    def dependency() -> str:
        time.sleep(0.001)
        if not healthy.exists():
            raise Down("dependency down")
        return "ok"

    failures: list[float] = []
    rejections: list[float] = []
    successes: list[float] = []
    print("ready", flush=True)
    end = time.monotonic() + DEADLINE
    while not stop.exists() and time.monotonic() < end:
        at = time.monotonic()
        try:
            breaker.call(dependency)
        except Down:
            failures.append(at)
        except CircuitOpenError:
            rejections.append(at)
            time.sleep(0.001)
        else:
            successes.append(at)
            if rejections and failures and successes[-1] > failures[-1]:
                (folder / f"back-{os.getpid()}").touch()  # through the outage and out
    return {"failures": failures, "rejections": rejections, "successes": successes}


def probes(store: RedisStore, folder: Path, stop: Path) -> dict[str, Any]:
    """Race for probes: each granted probe is held until both slots are taken (or 0.5 s),
    then fails: the breaker reopens, and the next period begins 10 ms later."""
    breaker = CircuitBreaker(
        "probed",
        failure_threshold=1,
        recovery_timeout=0.01,
        half_open_max_calls=2,
        probe_lease=5.0,
        store=store,
    )
    granted: list[list[Any]] = []
    client = redis.Redis.from_url(sys.argv[2])  # to see the leases taken
    probes = store.key("probed", "probes")
    print("ready", flush=True)
    end = time.monotonic() + DEADLINE
    while not stop.exists() and time.monotonic() < end:
        try:
            with breaker:
                link: Any = breaker._shared
                if link._probes:  # this call holds a probe lease (one call at a time here)
                    granted.append([link._gen, link._epoch, time.monotonic()])
                    # Hold it until every slot is taken (or 0.5 s), so that each period
                    # shows how many the processes got together, even on a busy machine.
                    until = time.monotonic() + 0.5
                    while client.zcard(probes) < 2 and time.monotonic() < until:
                        time.sleep(0.001)
                    time.sleep(0.005)  # room for a third, if admission were not exact
                raise Down("still down")
        except (Down, CircuitOpenError):
            time.sleep(0.0005)
    return {"granted": granted}


LIMITER_LOAD = 20.0
"""Seconds the limiter scenario asks for tokens (the issue's 20 s)."""


def limiter(store: RedisStore, folder: Path, stop: Path) -> dict[str, Any]:
    """Ask a shared 10/second limiter every 2 ms for LIMITER_LOAD s; record each grant."""
    limit = RateLimiter("10/second", store=store, name="api")
    grants: list[float] = []
    print("ready", flush=True)
    end = time.monotonic() + LIMITER_LOAD
    while not stop.exists() and time.monotonic() < end:
        if limit.try_acquire():
            grants.append(time.monotonic())
        time.sleep(0.002)
    return {"grants": grants}


SCENARIOS = {"outage": outage, "probes": probes, "limiter": limiter}


def main() -> None:
    scenario, url, namespace, folder = sys.argv[1:5]
    with RedisStore(redis.Redis.from_url(url), namespace=namespace) as store:
        result = SCENARIOS[scenario](store, Path(folder), Path(folder) / "stop")
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
