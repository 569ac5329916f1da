"""The health registry: checks by name, how each run is judged, and the cached results.

Requests never run a check: :meth:`HealthRegistry.report` reads the results the
background scheduler (``async with registry`` or ``registry.running_in_thread()``) or
:meth:`HealthRegistry.run_once` left, so a hung dependency can never hang a health probe.
Each run is bounded by the check's timeout: async checks are cancelled, sync checks run in
a worker thread that is no longer waited for (and is not started again while it hangs).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import contextvars
import inspect
import logging
import re
import threading
from collections.abc import Callable, Collection, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, replace
from types import MappingProxyType, TracebackType
from typing import Any, NamedTuple, TypeAlias

from .._breaker import CircuitBreaker
from .._clock import Clock
from .._drivers import is_async_callable
from .._errors import CircuitOpenError, ConfigError
from .._events import Event, EventHub
from .._strategy import Observable, strategy_clock, strategy_name
from .._types import State
from .._validate import positive, whole
from ._metrics import CheckStats
from ._model import (
    DEFAULT_FAIL_STATUS,
    GROUPS,
    PENDING_ERROR,
    CheckResult,
    CheckSnapshot,
    HealthReport,
    HealthStatus,
    aggregate,
    scrub,
)
from ._scheduler import Schedule, ThreadRunner, dispatch

__all__ = (
    "DEFAULT_COMPONENT_TYPE",
    "DEFAULT_GROUPS",
    "DEFAULT_HISTORY",
    "DEFAULT_INTERVAL",
    "DEFAULT_TIMEOUT",
    "SLOW_SHARE",
    "STALE_AFTER",
    "CheckCompleted",
    "CheckConfig",
    "CheckFunction",
    "HealthChanged",
    "HealthRegistry",
    "is_slow",
)

DEFAULT_INTERVAL = 10.0
"""Seconds between the starts of a check's runs (Kubernetes' default probe period)."""
DEFAULT_TIMEOUT = 2.0
"""Seconds a run may take before it counts as failed."""
DEFAULT_GROUPS = ("ready",)
"""A dependency gates readiness, never liveness, unless asked."""
DEFAULT_HISTORY = 100
"""Runs kept per check for availability, average and p95."""
DEFAULT_COMPONENT_TYPE = "component"
"""IETF componentType when neither the check nor ``add`` names one."""
STALE_AFTER = 2.0
"""While a scheduler runs, a check with no completed run for this many times its
``interval + timeout`` shows as failing ("stale"): its runs are stuck."""
MAX_ABANDONED = 2
"""Runs given up at their timeout that may still be unwinding (async) or hung (a sync
call's thread) while a new run of the same check starts; beyond that, runs fail at once."""

_STRATEGY = "health"
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.\-]{0,99}")
_OPEN = (State.OPEN, State.FORCED_OPEN)

CheckFunction: TypeAlias = Callable[[], Any]
"""A check: ``def`` or ``async def`` with no arguments. It passes by returning None, True,
a dict of details or a passing :class:`CheckResult`; it fails by returning False or a
failing CheckResult, or by raising."""


# -- events ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class CheckCompleted(Event):
    """A check finished a run. ``name`` is the check, ``registry`` the service."""

    registry: str
    status: HealthStatus
    critical: bool
    duration: float
    error: str | None
    consecutive_failures: int


@dataclass(frozen=True, slots=True, kw_only=True)
class CheckChanged(Event):
    """A check's run ended with another status than its run before (``old`` is None for
    its first run). ``name`` is the check, ``registry`` the service. Runs come every
    interval; this is the one to watch for a check's state."""

    registry: str
    old: HealthStatus | None
    new: HealthStatus
    critical: bool
    error: str | None


@dataclass(frozen=True, slots=True, kw_only=True)
class HealthChanged(Event):
    """The service's overall status (all checks) moved from ``old`` to ``new``.
    ``name`` is the registry's; ``old`` is None for the first result."""

    old: HealthStatus | None
    new: HealthStatus
    reason: str


# -- configuration -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class CheckConfig:
    """One check's settings, validated."""

    name: str
    check: CheckFunction
    interval: float = DEFAULT_INTERVAL
    timeout: float = DEFAULT_TIMEOUT
    critical: bool = True
    groups: frozenset[str] = frozenset(DEFAULT_GROUPS)
    breaker: CircuitBreaker | None = None
    feed_breaker: bool = False
    component_type: str = DEFAULT_COMPONENT_TYPE

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not _NAME.fullmatch(self.name):
            raise ConfigError(
                "name",
                "must be 1-100 letters, digits, '_', '.' or '-' starting with a letter or "
                f"digit (it is a URL segment and an IETF component name), got {self.name!r}",
            )
        if not callable(self.check):
            raise ConfigError("check", f"must be a callable with no arguments, got {self.check!r}")
        if inspect.isgeneratorfunction(self.check) or inspect.isasyncgenfunction(self.check):
            raise ConfigError("check", f"must return a result, not be a generator: {self.check!r}")
        positive("interval", self.interval)
        positive("timeout", self.timeout)
        for flag in ("critical", "feed_breaker"):
            if not isinstance(getattr(self, flag), bool):
                raise ConfigError(flag, f"must be True or False, got {getattr(self, flag)!r}")
        if not isinstance(self.groups, frozenset) or not self.groups <= frozenset(GROUPS):
            raise ConfigError(
                "groups", f"must be a subset of {GROUPS!r}, got {sorted(self.groups)!r}"
            )
        if self.breaker is not None and not isinstance(self.breaker, CircuitBreaker):
            raise ConfigError("breaker", f"must be a CircuitBreaker or None, got {self.breaker!r}")
        if self.feed_breaker and self.breaker is None:
            raise ConfigError("feed_breaker", "needs a breaker to feed: pass breaker=")
        if not isinstance(self.component_type, str) or not self.component_type:
            raise ConfigError(
                "component_type",
                "must be a non-empty string (IETF: 'component', 'datastore', 'system' or a "
                f"URI), got {self.component_type!r}",
            )


def _groups(value: Any) -> frozenset[str]:
    if isinstance(value, str) or not isinstance(value, Collection):
        raise ConfigError(
            "groups", f"must be a tuple of names from {GROUPS!r}, e.g. ('ready',), got {value!r}"
        )
    return frozenset(value)


# -- running one check -------------------------------------------------------------------


log = logging.getLogger("stalwart.health")

SLOW_SHARE = 0.999
"""A run is slow when it took this share of its interval or of its timeout, or more: a run
cut at its timeout counts, whatever the clock's rounding."""


def is_slow(duration: float, config: CheckConfig) -> bool:
    """Whether a run of ``duration`` seconds was slow for this check (ops-specs H5)."""
    return duration >= SLOW_SHARE * min(config.interval, config.timeout)


class _Failed(Exception):
    """A run judged failed, raised so a fed breaker counts it as a failure."""

    def __init__(self, result: CheckResult) -> None:
        super().__init__(result.error)
        self.result = result
        # The breaker it is fed to counts it as a failure whatever its record= and ignore=
        # say: those classify the app's own calls, and an exception a breaker does not
        # record counts as a success (see _drivers.imposed_by).
        self._imposed_by: CircuitBreaker | None = None


def _describe(exc: BaseException) -> str:
    text = str(exc)
    return scrub(f"{type(exc).__name__}: {text}" if text else type(exc).__name__)


def judge(value: Any) -> CheckResult:
    """What a check's return value means (duration and time still to fill in)."""
    if isinstance(value, CheckResult):
        return value
    if value is None or value is True:
        return CheckResult.passed()
    if value is False:
        return CheckResult.failed("check returned False")
    if isinstance(value, Mapping):
        return CheckResult(HealthStatus.HEALTHY, None, MappingProxyType(dict(value)))
    return CheckResult.failed(
        f"check returned {type(value).__name__}; a check returns None, a bool, a dict "
        "or a CheckResult"
    )


class _Entry:
    """A registered check: its settings and its results (guarded by the registry's lock)."""

    __slots__ = ("busy", "config", "heard_at", "in_flight", "is_async", "slow", "stats")

    def __init__(self, config: CheckConfig, history: int, now: float) -> None:
        self.config = config
        self.is_async = is_async_callable(config.check)
        self.stats = CheckStats(history)
        self.busy = 0
        """Runs whose task or thread has not returned yet: the current one, and earlier
        ones abandoned at their timeout that are still unwinding or hung."""
        self.in_flight: concurrent.futures.Future[CheckResult] | None = None
        """The run in progress (from any loop): another caller waits for it."""
        self.slow = False
        """The last run took its interval or its timeout, or longer (logged once)."""
        self.heard_at = now
        """Monotonic time of the last completed run (or of adding it, or of the start)."""


class _State(NamedTuple):
    """A check's state copied under the lock, for a snapshot built outside it."""

    config: CheckConfig
    last: CheckResult | None
    availability: float
    avg_duration: float
    p95_duration: float
    consecutive_failures: int
    history: tuple[CheckResult, ...]
    quiet: float
    """Seconds since the last completed run while a scheduler runs (else 0)."""


# -- the registry ------------------------------------------------------------------------


class HealthRegistry(Observable):
    """Named health checks, run in the background; reports read their cached results.

    ``clock`` times runs and intervals and stamps results (``clock.time()``), so tests can
    pass a :class:`~stalwart.testing.FakeClock`. Thread-safe: report from any thread while
    checks run in another.
    """

    def __init__(
        self,
        name: str = "service",
        *,
        clock: Clock | None = None,
        history: int = DEFAULT_HISTORY,
        fail_status: int = DEFAULT_FAIL_STATUS,
    ) -> None:
        self.name = strategy_name(name, "service")
        self._clock = strategy_clock(clock)
        whole("history", history)
        self.history = history
        if type(fail_status) is not int or not 400 <= fail_status <= 599:
            raise ConfigError(
                "fail_status", f"must be an HTTP error status, 400 to 599, got {fail_status!r}"
            )
        self.fail_status = fail_status
        """The HTTP status of an unhealthy or unknown report (503; some balancers want 500)."""
        self._entries: dict[str, _Entry] = {}
        self._lock = threading.Lock()
        self._hub = EventHub()
        self._schedule = Schedule()
        self._status: HealthStatus | None = None
        self._completions = 0
        self._applied = 0
        self._poke: Callable[[], None] | None = None
        self._task: asyncio.Task[None] | None = None
        self._runner: ThreadRunner | None = None

    # -- registration --------------------------------------------------------------------

    def add(
        self,
        name: str,
        check: CheckFunction,
        *,
        interval: float = DEFAULT_INTERVAL,
        timeout: float = DEFAULT_TIMEOUT,
        critical: bool = True,
        groups: Collection[str] = DEFAULT_GROUPS,
        breaker: CircuitBreaker | None = None,
        feed_breaker: bool = False,
        component_type: str | None = None,
    ) -> CheckConfig:
        """Register ``check`` as ``name`` (a duplicate name is a ConfigError).

        ``critical``: a failure makes the service unhealthy, else only degraded.
        ``groups``: which probes it gates, from ``live``, ``ready``, ``startup``.
        ``breaker``: an open breaker fails the check without calling the dependency;
        ``feed_breaker=True`` also records each run's outcome in it.
        """
        if component_type is None:
            component_type = str(getattr(check, "component_type", DEFAULT_COMPONENT_TYPE))
        config = CheckConfig(
            name=name,
            check=check,
            interval=interval,
            timeout=timeout,
            critical=critical,
            groups=_groups(groups),
            breaker=breaker,
            feed_breaker=feed_breaker,
            component_type=component_type,
        )
        with self._lock:
            if name in self._entries:
                raise ConfigError("name", f"a check named {name!r} is already registered")
            now = self._clock.monotonic()
            self._entries[name] = _Entry(config, self.history, now)
            self._schedule.add(name, config.interval, now)
            poke = self._poke
        if poke is not None:
            poke()
        return config

    def remove(self, name: str) -> None:
        """Forget the check ``name`` (KeyError if unknown); a run in flight is dropped."""
        with self._lock:
            del self._entries[name]
            self._schedule.remove(name)
            self._completions += 1
            sequence = self._completions
        self._publish_status(sequence, f"check {name!r} removed")  # the status may move

    def names(self) -> tuple[str, ...]:
        with self._lock:
            return tuple(self._entries)

    def config(self, name: str) -> CheckConfig:
        """The settings of check ``name`` (KeyError if unknown)."""
        with self._lock:
            return self._entries[name].config

    def breaker(self, name: str) -> CircuitBreaker | None:
        """The breaker attached to check ``name`` (KeyError if unknown)."""
        return self.config(name).breaker

    # -- reading -------------------------------------------------------------------------

    def get(self, name: str) -> CheckSnapshot:
        """Check ``name`` as of its last run (KeyError if unknown). Never runs it."""
        now = self._clock.monotonic()
        with self._lock:
            state = self._read(self._entries[name], now)
        return self._snapshot(state)

    def report(self, group: str | None = None) -> HealthReport:
        """The service's health from cached results, for one group or (None) every check.

        A check that has not completed a run shows as unknown ("not checked yet") and is
        left out of the aggregate; with no check run (or none at all) the report is
        unknown, served with ``fail_status``. Two exceptions: in the ``startup`` group such
        a check is unhealthy (a startup probe passes only once every startup check has
        passed), and a group with no check in it is healthy (nothing gates that probe). A
        failing non-critical check shows as degraded. While a scheduler runs, a check with
        no completed run for ``STALE_AFTER`` x (interval + timeout) shows as unhealthy
        ("stale").
        Never runs a check; never waits on one.
        """
        if group is not None and group not in GROUPS:
            raise ConfigError("group", f"must be None or one of {GROUPS!r}, got {group!r}")
        now = self._clock.monotonic()
        with self._lock:
            states = [
                self._read(e, now)
                for e in self._entries.values()
                if group is None or group in e.config.groups
            ]
        snapshots = [self._snapshot(s) for s in states]
        if group == "startup":
            snapshots = [
                replace(s, status=HealthStatus.UNHEALTHY) if s.pending else s for s in snapshots
            ]
        status = aggregate(snapshots)
        if group is not None and not snapshots:
            # A probe that nothing gates passes: the process answering is the proof. As
            # unknown, Kubernetes would restart (live) or starve (ready) every such pod.
            status = HealthStatus.HEALTHY
        return HealthReport(
            status=status,
            timestamp=self._clock.time(),
            checks=MappingProxyType({s.name: s for s in snapshots}),
            group=group,
            name=self.name,
            fail_status=self.fail_status,
        )

    def _read(self, entry: _Entry, now: float) -> _State:
        # Under the lock: copy what a snapshot needs. The breaker is read outside it.
        stats = entry.stats
        quiet = now - entry.heard_at if self._poke is not None else 0.0
        return _State(
            entry.config,
            stats.last,
            stats.availability,
            stats.avg_duration,
            stats.p95_duration,
            stats.consecutive_failures,
            tuple(stats.history),
            quiet,
        )

    def _snapshot(self, state: _State) -> CheckSnapshot:
        config, last = state.config, state.last
        slow = last is not None and is_slow(last.duration, config)
        breaker = config.breaker
        breaker_state = None if breaker is None else breaker.state
        status: HealthStatus
        error: str | None
        details: Mapping[str, Any] = {} if last is None else last.details
        limit = STALE_AFTER * (config.interval + config.timeout)
        if breaker is not None and breaker_state in _OPEN:
            # An open breaker shows at once, not only at the next run.
            status, error = HealthStatus.UNHEALTHY, f"circuit open ({breaker.name!r})"
        elif state.quiet > limit:
            # The scheduler runs, yet no run has ended for a long while: a check that
            # ignores cancellation, or a loop blocked by sync code in an async check.
            status = HealthStatus.UNHEALTHY
            error = f"stale: no run has completed for {state.quiet:.3g} s (limit {limit:g} s)"
        elif last is None:
            status, error = HealthStatus.UNKNOWN, PENDING_ERROR
        else:
            status, error = last.status, last.error
        if status is HealthStatus.UNHEALTHY and not config.critical:
            status = HealthStatus.DEGRADED  # what it does to the service, and what it says
        return CheckSnapshot(
            name=config.name,
            status=status,
            critical=config.critical,
            groups=config.groups,
            component_type=config.component_type,
            checked_at=None if last is None else last.checked_at,
            duration=None if last is None else last.duration,
            error=error,
            details=details,
            availability=state.availability,
            avg_duration=state.avg_duration,
            p95_duration=state.p95_duration,
            consecutive_failures=state.consecutive_failures,
            history=state.history,
            breaker_state=None if breaker_state is None else breaker_state.value,
            slow=slow,
        )

    # -- control -------------------------------------------------------------------------

    def reset(self, name: str) -> None:
        """Reset check ``name``'s breaker and failure streak, and run it again soon (if the
        scheduler runs). KeyError if unknown."""
        with self._lock:
            entry = self._entries[name]
            entry.stats.reset_streak()
            self._schedule.request(name, self._clock.monotonic())
            poke = self._poke
        if entry.config.breaker is not None:
            entry.config.breaker.reset()
        if poke is not None:
            poke()

    async def run_once(self, name: str | None = None) -> HealthReport:
        """Run every check (or just ``name``) now, concurrently, each within its timeout, and
        return the report. For startup and tests; KeyError for an unknown name."""
        with self._lock:
            entries = list(self._entries.values()) if name is None else [self._entries[name]]
        await asyncio.gather(*(self._run_or_join(e) for e in entries))
        return self.report()

    async def _run_or_join(self, entry: _Entry) -> CheckResult:
        """A new run, or the one already in progress (a scheduled one, or another caller's,
        maybe on another loop): never a second run beside it, which would fail as busy."""
        with self._lock:
            running = entry.in_flight
        if running is not None:
            return await asyncio.wrap_future(running)
        return await self._run(entry)

    # -- background scheduling -----------------------------------------------------------

    async def __aenter__(self) -> HealthRegistry:
        """Run the checks in the background on this event loop until the block ends."""
        wakeup = self._start_scheduler()
        name = f"stalwart-health:{self.name}"
        self._task = asyncio.create_task(self._dispatch(wakeup), name=name)
        return self

    async def __aexit__(
        self, et: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        task, self._task = self._task, None
        try:
            if task is not None:
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
        finally:
            self._stop_scheduler()

    @contextmanager
    def running_in_thread(self) -> Iterator[HealthRegistry]:
        """Run the checks in the background in a daemon thread (its own event loop) until
        the block ends: for sync apps such as Flask."""

        async def main(stop: asyncio.Event) -> None:
            task = asyncio.create_task(self._dispatch(self._start_scheduler()))
            try:
                await stop.wait()
            finally:
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
                self._stop_scheduler()

        with self._lock:
            if self._runner is not None or self._poke is not None:
                raise RuntimeError(f"health registry {self.name!r} is already running")
            self._runner = runner = ThreadRunner(f"stalwart-health:{self.name}", main)
        try:
            runner.start()
            yield self
        finally:
            try:
                runner.stop()
            finally:
                with self._lock:
                    self._runner = None

    @property
    def running(self) -> bool:
        """True while a background scheduler runs the checks."""
        return self._poke is not None

    def _start_scheduler(self) -> asyncio.Event:
        loop = asyncio.get_running_loop()
        wakeup = asyncio.Event()

        def poke() -> None:
            with contextlib.suppress(RuntimeError):  # the loop is closing
                loop.call_soon_threadsafe(wakeup.set)

        with self._lock:
            if self._poke is not None:
                raise RuntimeError(f"health registry {self.name!r} is already running")
            self._poke = poke
            now = self._clock.monotonic()
            self._schedule.restart(now)
            for entry in self._entries.values():
                entry.heard_at = now
        return wakeup

    def _stop_scheduler(self) -> None:
        with self._lock:
            self._poke = None

    async def _dispatch(self, wakeup: asyncio.Event) -> None:
        def take_due() -> tuple[list[str], float | None]:
            with self._lock:
                due = self._schedule.take_due(self._clock.monotonic())
                return due, self._schedule.next_wake()

        async def run(name: str) -> None:
            with self._lock:
                entry = self._entries.get(name)
            started = self._clock.monotonic()
            try:
                if entry is not None:
                    await self._run(entry)
            finally:
                with self._lock:
                    self._schedule.finished(name, started, self._clock.monotonic())
                wakeup.set()

        await dispatch(take_due, run, self._clock.monotonic, wakeup)

    # -- one run ------------------------------------------------------------------------

    async def _run(self, entry: _Entry) -> CheckResult:
        """Run the check once, record the result, tell the listeners; the run is
        ``entry.in_flight`` meanwhile."""
        done: concurrent.futures.Future[CheckResult] = concurrent.futures.Future()
        with self._lock:
            entry.in_flight = done
        try:
            result = self._record(entry, await self._execute(entry))
        except BaseException as exc:
            done.set_exception(exc)
            raise
        else:
            done.set_result(result)
            return result
        finally:
            with self._lock:
                if entry.in_flight is done:
                    entry.in_flight = None

    def _record(self, entry: _Entry, result: CheckResult) -> CheckResult:
        """Store a run's result and tell the listeners (and the log, once, when it is slow)."""
        config = entry.config
        with self._lock:
            if self._entries.get(config.name) is not entry:
                return result  # removed meanwhile
            before = entry.stats.last
            entry.stats.record(result)
            entry.heard_at = self._clock.monotonic()
            streak = entry.stats.consecutive_failures
            self._completions += 1
            sequence = self._completions
            was_slow, entry.slow = entry.slow, is_slow(result.duration, config)
        if entry.slow and not was_slow:
            log.warning(
                "health check %r of %r is slow: its run took %.3g s (interval %g s, timeout %g s)",
                config.name, self.name, result.duration, config.interval, config.timeout,
            )  # fmt: skip
        elif was_slow and not entry.slow:
            log.info("health check %r of %r is fast again: %.3g s", config.name, self.name,
                     result.duration)  # fmt: skip
        self._hub.emit(
            CheckCompleted(
                name=config.name,
                strategy=_STRATEGY,
                at=self._clock.monotonic(),
                registry=self.name,
                status=result.status,
                critical=config.critical,
                duration=result.duration,
                error=result.error,
                consecutive_failures=streak,
            )
        )
        if before is None or before.status is not result.status:
            self._hub.emit(
                CheckChanged(
                    name=config.name,
                    strategy=_STRATEGY,
                    at=self._clock.monotonic(),
                    registry=self.name,
                    old=None if before is None else before.status,
                    new=result.status,
                    critical=config.critical,
                    error=result.error,
                )
            )
        self._publish_status(sequence, f"check {config.name!r} completed")
        return result

    def _publish_status(self, sequence: int, cause: str) -> None:
        new = self.report().status
        with self._lock:
            if sequence < self._applied:
                return  # a later completion already published a newer status
            self._applied = sequence
            old, self._status = self._status, new
        if old is not new:
            self._hub.emit(
                HealthChanged(
                    name=self.name,
                    strategy=_STRATEGY,
                    at=self._clock.monotonic(),
                    old=old,
                    new=new,
                    reason=cause,
                )
            )

    async def _execute(self, entry: _Entry) -> CheckResult:
        """One run judged: a CheckResult with its duration and time, never an exception
        (cancellation aside)."""
        config = entry.config
        clock = self._clock
        start = clock.monotonic()
        breaker = config.breaker
        try:
            if breaker is not None and config.feed_breaker:
                result = await breaker.acall(self._fed, entry, breaker)
            else:
                if breaker is not None and breaker.state in _OPEN:
                    raise CircuitOpenError(breaker.name, breaker.snapshot().retry_in)
                result = await self._attempt(entry)
        except _Failed as failed:
            result = failed.result
        except Exception as exc:
            result = CheckResult.failed(_describe(exc))
        if result.error is not None:
            result = replace(result, error=scrub(result.error))
        return replace(result, duration=clock.monotonic() - start, checked_at=clock.time())

    async def _fed(self, entry: _Entry, breaker: CircuitBreaker) -> CheckResult:
        """``_attempt`` for a fed breaker: every failed run is a failure in it."""
        try:
            return await self._attempt(entry)
        except _Failed as failed:
            failed._imposed_by = breaker
            raise
        except Exception as exc:
            judged = _Failed(CheckResult.failed(_describe(exc)))
            judged._imposed_by = breaker
            raise judged from exc

    async def _attempt(self, entry: _Entry) -> CheckResult:
        """Call the check within its timeout and judge what it returned; a failed run is
        raised as ``_Failed`` (a fed breaker counts it)."""
        config = entry.config
        start = self._clock.monotonic()
        try:
            async with asyncio.timeout(config.timeout) as scope:
                value = await (self._in_task(entry) if entry.is_async else self._in_thread(entry))
                if inspect.isawaitable(value):  # a plain function that returned a coroutine
                    value = await value
        except TimeoutError:
            if not scope.expired():
                raise  # the check's own TimeoutError: an ordinary failure
            raise _Failed(CheckResult.failed(f"timed out after {config.timeout:g} s")) from None
        result = judge(value)
        took = self._clock.monotonic() - start
        if result.ok and took > config.timeout:
            # Finished, but later than allowed by the registry's clock (a FakeClock moved by
            # the check, or a sync call that returned just as the deadline passed).
            result = CheckResult.failed(f"took {took:.3g} s (limit {config.timeout:g} s)")
        if not result.ok:
            raise _Failed(result)
        return result

    async def _in_task(self, entry: _Entry) -> Any:
        """Await an async check run as a task of its own. At the timeout the run stops
        waiting at once and cancels it, without waiting for it to unwind: a client may take
        long to (psycopg, cancelled, first sends a cancel request over the same dead path,
        ~10 s through a blackhole). Later runs start beside up to ``MAX_ABANDONED`` such
        runs, then fail at once until one has ended."""
        self._claim(entry)
        task = asyncio.ensure_future(_awaited(entry.config.check))

        def ended(task: asyncio.Task[Any]) -> None:
            with self._lock:
                entry.busy -= 1
            if not task.cancelled():
                task.exception()  # retrieved: it was judged, or nobody waits any more

        task.add_done_callback(ended)
        try:
            return await asyncio.shield(task)
        except asyncio.CancelledError:
            current = asyncio.current_task()
            if task.cancelled() and current is not None and not current.cancelling():
                # the check itself ended cancelled (nobody cancelled this run): a failure
                raise _Failed(CheckResult.failed("the check was cancelled")) from None
            task.cancel()  # the timeout (or shutdown): no waiting for it to unwind
            raise

    def _claim(self, entry: _Entry) -> None:
        # A new run starts beside a few abandoned ones, so that a check whose client is slow
        # to unwind (psycopg: ~10 s through a blackhole) sees a recovery at its next run;
        # beyond them, runs fail at once rather than pile up tasks or threads.
        with self._lock:
            if entry.busy > MAX_ABANDONED:
                raise _Failed(
                    CheckResult.failed(f"{entry.busy} earlier runs have not returned yet")
                )
            entry.busy += 1

    async def _in_thread(self, entry: _Entry) -> Any:
        """Call a sync check in a new daemon thread and await its result. A hung call keeps
        its thread; beside ``MAX_ABANDONED`` hung threads, later runs fail at once instead of
        piling threads up."""
        self._claim(entry)
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        context = contextvars.copy_context()
        check = entry.config.check

        def work() -> None:
            try:
                outcome: tuple[bool, Any] = (True, context.run(check))
            except Exception as exc:
                outcome = (False, exc)
            finally:
                with self._lock:
                    entry.busy -= 1
            with contextlib.suppress(RuntimeError):  # the loop has closed: nobody waits
                loop.call_soon_threadsafe(_deliver, future, outcome)

        name = f"stalwart-health:{entry.config.name}"
        threading.Thread(target=work, name=name, daemon=True).start()
        return await future

    def __repr__(self) -> str:
        return f"HealthRegistry({self.name!r}, checks={list(self.names())})"


async def _awaited(check: Callable[[], Any]) -> Any:
    value = await check()
    if inspect.isawaitable(value):
        value = await value
    return value


def _deliver(future: asyncio.Future[Any], outcome: tuple[bool, Any]) -> None:
    if future.done():
        return  # timed out and cancelled
    ok, value = outcome
    if ok:
        future.set_result(value)
    else:
        future.set_exception(value)
