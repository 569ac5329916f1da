"""The demo's ops app: ``stalwart.web`` served by uvicorn on 127.0.0.1 while the demo runs.

It shows the demo's breaker under ``/breakers`` and a health registry with one check: a GET
on the upstream through a chaos proxy of its own that takes the same faults as the callers'
proxies (its own, so its requests never count against the breaker's side). ``/health`` so
turns unhealthy during the blackhole and the resets and healthy again after recovery.

The server runs in a thread with its own event loop, and the check runs there too: nothing
the ops app does (answering a browser, rendering metrics, running the check) takes time on
the demo's loop, whose timings the verdict judges. The demo asks the served ``/health`` and
``/breakers/{name}`` over real HTTP at the end of each phase and when the breaker first
opens, and records every change of ``/health``'s status with its time.

The record and its wording are pure; only :class:`OpsServer` needs uvicorn (the ``web``
extra), imported when one is built.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ._plan import DemoPlan, Phase
from ._upstream import SIDE_HEADER

if TYPE_CHECKING:
    import httpx

    from .. import CircuitBreaker
    from ..events import Event

__all__ = (
    "CHECK_NAME",
    "HEALTH_SIDE",
    "OPS_SWITCHED_OFF",
    "ROUTES",
    "Change",
    "OpsRecord",
    "OpsServer",
    "OpsUnavailable",
    "Reading",
    "disabled",
    "reading_of",
    "urls_text",
)

HEALTH_SIDE = "health"
"""The health check's proxy, and its ``X-Stalwart-Side`` as the upstream records it."""
CHECK_NAME = "upstream"
ROUTES = ("health", "breakers", "metrics", "events", "dashboard")
INSTALL_HINT = "pip install 'stalwart[web]'"
METRICS_HINT = "no /metrics: pip install 'stalwart[prometheus]' for it"
START_WAIT = 10.0
"""Seconds the server may take to start (lifespan, bind) before the demo goes without it."""
STOP_WAIT = 10.0
READ_TIMEOUT = 2.0
"""Seconds one GET of the served app may take: it answers from cache in about a ms."""
GRACE = 1
"""Seconds uvicorn waits for open requests (an /events stream) when the demo ends."""


class OpsUnavailable(Exception):
    """The ops app cannot be served; the message says why and what to do."""


@dataclass(frozen=True, slots=True)
class Reading:
    """What the served ``/health`` and ``/breakers/{name}`` answered at one moment."""

    at: float
    """Seconds since the run's origin, when the GETs were sent."""
    phase: Phase
    """The phase the proxies were in (the one ending, for a reading at a phase's end)."""
    moment: str
    """``end`` of ``phase``, or ``opened``: right after the breaker opened."""
    http_status: int | None
    """``/health``'s status code: 200 healthy or degraded, 503 unhealthy."""
    health: str | None
    breaker: str | None
    """The breaker's state as ``/breakers/{name}`` showed it."""
    available: bool | None = None
    poll_interval: float | None = None
    """The poll hint ``/breakers/{name}`` gave (seconds)."""
    error: str | None = None
    """Why a GET got no usable answer."""

    def to_dict(self) -> dict[str, Any]:
        return {
            "at_s": round(self.at, 4),
            "phase": self.phase.value,
            "moment": self.moment,
            "health": {"http_status": self.http_status, "status": self.health},
            "breaker": {
                "state": self.breaker,
                "available": self.available,
                "poll_interval_s": self.poll_interval,
            },
            "error": self.error,
        }


def reading_of(
    at: float,
    phase: Phase,
    moment: str,
    health: tuple[int, Any] | BaseException,
    breaker: tuple[int, Any] | BaseException,
) -> Reading:
    """A reading from the two answers, each (status code, JSON body) or the error raised."""
    errors = [f"{type(e).__name__}: {e}" for e in (health, breaker) if isinstance(e, BaseException)]
    code, status = None, None
    if not isinstance(health, BaseException):
        code = health[0]
        status = _field(health[1], "status", str)
    state, available, interval = None, None, None
    if not isinstance(breaker, BaseException):
        state = _field(breaker[1], "state", str)
        available = _field(breaker[1], "available", bool)
        interval = _field(breaker[1], "poll_interval", float)
    return Reading(
        at,
        phase,
        moment,
        code,
        status,
        state,
        available,
        interval,
        "; ".join(errors) or None,
    )


def _field(body: Any, key: str, kind: type) -> Any:
    value = body.get(key) if isinstance(body, dict) else None
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    return value if isinstance(value, kind) else None


@dataclass(frozen=True, slots=True)
class Change:
    """``/health``'s status moved from ``old`` to ``new`` (the registry's HealthChanged)."""

    at: float
    old: str | None
    new: str


@dataclass(frozen=True, slots=True)
class OpsRecord:
    """Where the ops app was served, and what it said during the run."""

    url: str
    """The app's root, e.g. http://127.0.0.1:8000."""
    check_url: str
    """What the health check GETs: the upstream through the check's own chaos proxy."""
    interval: float
    timeout: float
    readings: tuple[Reading, ...] = ()
    changes: tuple[Change, ...] = ()
    breaker: str = "demo-upstream"
    served: tuple[str, ...] = ROUTES
    """The routes served (no ``metrics`` without prometheus-client)."""

    @property
    def routes(self) -> dict[str, str]:
        return {route: f"{self.url}/{route}" for route in self.served}

    def said_at_end(self, phase: Phase) -> Reading | None:
        """The reading taken as ``phase`` ended (the run's end for the last phase run)."""
        for reading in self.readings:
            if reading.phase is phase and reading.moment == "end":
                return reading
        return None

    @property
    def unhealthy_in_outage_and_healthy_after(self) -> bool:
        """``/health`` said unhealthy (503) as each fault phase ended, and healthy (200) when
        the recovery ended."""
        ends = {p: self.said_at_end(p) for p in Phase}
        failing = [ends[p] for p in Phase if p.failing]
        last = ends[Phase.RECOVERY]
        return (
            all(r is not None and r.http_status == 503 for r in failing)
            and last is not None
            and last.http_status == 200
            and last.health == "healthy"
        )

    def to_dict(self, phase_of: Callable[[float], str]) -> dict[str, Any]:
        return {
            "served": True,
            "url": self.url,
            "routes": self.routes,
            "note": None if "metrics" in self.served else METRICS_HINT,
            "breaker_url": f"{self.url}/breakers/{self.breaker}",
            "health_check": {
                "name": CHECK_NAME,
                "url": self.check_url,
                "through": "a chaos proxy of its own, switched with the callers' proxies",
                "interval_s": self.interval,
                "timeout_s": self.timeout,
            },
            "health_by_phase": {
                phase.value: _brief(self.said_at_end(phase))
                for phase in Phase
                if self.said_at_end(phase) is not None
            },
            "readings": [r.to_dict() for r in self.readings],
            "health_changes": [
                {"at_s": round(c.at, 4), "old": c.old, "new": c.new, "phase": phase_of(c.at)}
                for c in self.changes
            ],
            "unhealthy_in_outage_and_healthy_after": self.unhealthy_in_outage_and_healthy_after,
        }

    def lines(self, label: Callable[[Phase], str], phase_of: Callable[[float], str]) -> list[str]:
        """The report's words: the URLs, what /health said per phase, and when it changed."""
        routes = ", ".join(f"/{r}" for r in self.served[1:])
        ends = [r for p in Phase if (r := self.said_at_end(p)) is not None]
        said = [
            f"{_said(r)} " + ("at the end" if r is ends[-1] else f"as {label(r.phase)} ended")
            for r in ends
        ]
        opened = [r for r in self.readings if r.moment == "opened"]
        lines = [
            f"  ops app (served while the demo ran): {self.url}/health, {routes}",
            f"    /health: a GET of {self.check_url} every {self.interval:g} s (timeout "
            f"{self.timeout:g} s), through a chaos proxy of its own that takes the same faults",
            f"    /health said: {', '.join(said) or 'nothing (no reading)'}",
        ]
        if self.changes:
            moves = ", ".join(
                f"{c.old or 'none'} -> {c.new} at {c.at:.1f} s ({label(Phase(phase_of(c.at)))})"
                for c in self.changes
            )
            lines.append(f"    /health changed: {moves}")
        if opened:
            first = opened[0]
            lines.append(
                f"    /breakers/{self.breaker} right after the breaker opened at {first.at:.1f} s: "
                f"state {first.breaker}, available {_flag(first.available)}, poll_interval "
                f"{_num(first.poll_interval)} s"
            )
        return lines


def urls_text(url: str, routes: tuple[str, ...]) -> str:
    """The served routes' URLs on one line, and why /metrics is missing if it is."""
    text = "  ".join(f"{url}/{route}" for route in routes)
    return text if "metrics" in routes else f"{text}  ({METRICS_HINT})"


def _brief(reading: Reading | None) -> dict[str, Any] | None:
    if reading is None:
        return None
    return {
        "http_status": reading.http_status,
        "status": reading.health,
        "breaker": reading.breaker,
    }


def _said(reading: Reading) -> str:
    if reading.http_status is None:
        return f"no answer ({reading.error})"
    return f"{reading.health} ({reading.http_status})"


def _flag(value: bool | None) -> str:
    return "-" if value is None else str(value).lower()


def _num(value: float | None) -> str:
    return "-" if value is None else f"{value:g}"


OPS_SWITCHED_OFF = "switched off (--no-ops)"


def disabled(reason: str) -> dict[str, Any]:
    """The JSON ``ops`` entry of a run without the ops app."""
    return {"served": False, "reason": reason}


class OpsServer:
    """The ops app for one demo run, served by uvicorn in a thread of its own.

    ``await start()`` before the run's origin (binding and the lifespan cost nothing to the
    run), :meth:`watch` once the check's proxy listens, :meth:`read` at the moments to
    record, ``await stop()`` before the proxies close (else the check fails at the end).
    """

    def __init__(self, breaker: CircuitBreaker, plan: DemoPlan, port: int) -> None:
        try:
            import httpx
            import uvicorn
        except ModuleNotFoundError as exc:
            raise OpsUnavailable(
                f"the ops app needs the 'web' extra ({exc.name} is missing): {INSTALL_HINT}; "
                "running the demo without it"
            ) from exc
        from ..health import HealthChanged, HealthRegistry
        from ..web import ops_app

        self._plan = plan
        self._port = port
        self._breaker = breaker.name
        self._changed = HealthChanged
        self.registry = HealthRegistry("stalwart-demo")
        self.app = ops_app(
            health=self.registry, breakers=[breaker], run_checks=True, service_id="stalwart-demo"
        )
        config = uvicorn.Config(
            self.app,
            host="127.0.0.1",
            port=port,
            loop="asyncio",
            http="h11",
            ws="none",
            lifespan="on",
            log_config=None,  # leave the process's logging alone
            log_level="warning",
            access_log=False,
            timeout_graceful_shutdown=GRACE,
        )
        self._server = uvicorn.Server(config)
        # Not in the main thread, so uvicorn installs no signal handlers: Ctrl-C stays the demo's.
        self._thread = threading.Thread(target=self._serve, name="stalwart-demo-ops", daemon=True)
        self._client = httpx.AsyncClient(timeout=READ_TIMEOUT, trust_env=False)
        self._tasks: set[asyncio.Task[None]] = set()
        self.origin = time.monotonic()
        self.url = ""
        self.check_url = ""
        self.changes: list[Change] = []
        """Appended from the server's thread; read once it has stopped."""
        self.readings: list[Reading] = []
        self._opened_read = False
        self._stopped = False
        self._socket: socket.socket | None = None
        self._failure: str | None = None

    @property
    def health_now(self) -> str | None:
        """``/health``'s status as of its last change (for the live view)."""
        changes = self.changes
        return changes[-1].new if changes else None

    async def start(self) -> None:
        """Serve; OpsUnavailable (nothing left running) if the port is taken or the server
        does not start in time."""
        # Bound here rather than by uvicorn, which logs and exits its thread when it cannot.
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind(("127.0.0.1", self._port))
        except OSError as exc:
            sock.close()
            self.app.close()  # its metrics listen to every breaker in the process
            await self._client.aclose()
            raise OpsUnavailable(
                f"could not serve the ops app on 127.0.0.1:{self._port} ({exc.strerror}; "
                "--ops-port 0 picks a free port); running the demo without it"
            ) from exc
        self._socket = sock
        self.url = f"http://127.0.0.1:{sock.getsockname()[1]}"
        self.registry.add_listener(self._on_change, self._changed)
        self._thread.start()
        for _ in range(int(START_WAIT / 0.01)):
            if self._server.started or not self._thread.is_alive():
                break
            await asyncio.sleep(0.01)
        if not self._server.started:
            await self.stop()
            raise OpsUnavailable(
                f"the ops app did not start on {self.url} ({self._failure or 'timed out'}); "
                "running the demo without it"
            )

    def _serve(self) -> None:
        """The server thread: serve until told to stop; keep a failure rather than raise it
        (the demo reports it and goes on without the app)."""
        assert self._socket is not None
        try:
            self._server.run(sockets=[self._socket])
        except BaseException as exc:  # uvicorn exits with SystemExit too
            self._failure = f"{type(exc).__name__}: {exc}"

    @property
    def served(self) -> tuple[str, ...]:
        """The routes this app serves: /metrics only with prometheus-client."""
        return tuple(r for r in ROUTES if r != "metrics" or self.app.metrics is not None)

    def watch(self, url: str, origin: float) -> None:
        """Check ``url`` (the upstream through the check's proxy) from now on."""
        from ..health import http_check

        self.origin = origin
        self.check_url = url
        self.registry.add(
            CHECK_NAME,
            # verify=False: an http:// URL needs no TLS, and loading the CA bundle for the
            # client each run makes (about 20 ms of CPU) is not worth paying twice a second.
            http_check(url, headers={SIDE_HEADER: HEALTH_SIDE}, verify=False),
            interval=self._plan.health_interval,
            timeout=self._plan.health_timeout,
        )

    def read(self, at: float, phase: Phase, moment: str) -> None:
        """GET /health and /breakers/{name} now, in the background; recorded when answered."""
        task = asyncio.create_task(self._read(at, phase, moment))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def breaker_opened(self, at: float, phase: Phase) -> None:
        """Take one reading right after the breaker first opens."""
        if not self._opened_read:
            self._opened_read = True
            self.read(at, phase, "opened")

    async def _read(self, at: float, phase: Phase, moment: str) -> None:
        answers: tuple[tuple[int, Any] | BaseException, ...] = await asyncio.gather(
            self._get("/health"), self._get(f"/breakers/{self._breaker}"), return_exceptions=True
        )
        self.readings.append(reading_of(at, phase, moment, *answers))

    async def _get(self, path: str) -> tuple[int, Any]:
        response: httpx.Response = await self._client.get(self.url + path)
        return response.status_code, response.json()

    async def settle(self) -> None:
        """Wait for the readings still on their way (each bounded by its timeout)."""
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=2 * READ_TIMEOUT)

    def record(self, end: float) -> OpsRecord:
        """What the app said up to ``end`` (seconds since the origin)."""
        return OpsRecord(
            url=self.url,
            check_url=self.check_url,
            interval=self._plan.health_interval,
            timeout=self._plan.health_timeout,
            readings=tuple(sorted(self.readings, key=lambda r: r.at)),
            changes=tuple(c for c in self.changes if c.at <= end),
            breaker=self._breaker,
            served=self.served,
        )

    async def stop(self) -> None:
        """Stop serving and running the check; close every connection. Idempotent."""
        if self._stopped:
            return
        self._stopped = True
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._client.aclose()
        if self.app.events is not None:
            self.app.events.close()  # ends open /events streams, so shutdown need not wait
        self._server.should_exit = True
        for _ in range(int(STOP_WAIT / 0.01)):
            if not self._thread.is_alive():
                break
            await asyncio.sleep(0.01)
        self.registry.remove_listener(self._on_change)
        self.app.close()
        if self._socket is not None:
            self._socket.close()  # uvicorn closes it too; this covers a server that never ran

    def _on_change(self, event: Event) -> None:
        assert isinstance(event, self._changed)
        old = None if event.old is None else event.old.value
        with contextlib.suppress(Exception):  # a listener must not break the registry
            self.changes.append(Change(event.at - self.origin, old, event.new.value))
