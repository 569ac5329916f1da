"""The circuit breaker: config, sans-I/O state machine, and the runtime object.

Shape (the same for every stalwart strategy):

* :class:`BreakerConfig`, a frozen, validated config;
* :class:`BreakerCore`, the state machine. It is told the time and the outcomes and
  answers "may this call start?". It never reads a clock, locks, sleeps or calls user code;
* :class:`CircuitBreaker`, which pairs the core with a clock, a lock held only for
  bookkeeping, counters and listeners. Decorators, ``with`` blocks and ``call``/``acall``
  are thin drivers over it (``_drivers.py``).

Tickets. Every permitted call gets an integer ticket: the epoch of the closed period it
ran in, or its own number as a half-open probe. An outcome only moves the state machine
if its ticket is still current, so a call admitted before the breaker opened cannot close
it later by succeeding, and a probe whose lease expired cannot count twice.
"""

from __future__ import annotations

import logging
import os
import threading
import weakref
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, fields, replace
from typing import Any, Literal, ParamSpec, TypedDict, TypeVar, Unpack

from ._backoff import default_retry_after
from ._clock import Clock, alarms_of
from ._errors import BulkheadFullError, CircuitOpenError, ConfigError, Countdown, RateLimitedError
from ._events import (
    CallFailed,
    CallIgnored,
    CallRejected,
    CallSucceeded,
    EventHub,
    SlowCall,
    StateTransition,
)
from ._outcome import Outcome, compile_filter, normalize_filter, normalize_hint
from ._registry import Registry
from ._store import SharedBreaker, StateStore, check_store
from ._strategy import HAS_GIL, Guarded, counter, peek, strategy_clock
from ._timeout import Timeout
from ._types import ExceptionFilter, RetryAfterFrom, State
from ._validate import (
    callable_or_none,
    callable_required,
    optional_positive,
    positive,
    ratio,
    whole,
)
from ._window import CountWindow, TimeWindow, Window

__all__ = (
    "DEFAULT_FAILURE_THRESHOLD",
    "DEFAULT_HALF_OPEN_MAX_CALLS",
    "DEFAULT_MAX_RECOVERY_TIMEOUT",
    "DEFAULT_MINIMUM_CALLS",
    "DEFAULT_RECOVERY_TIMEOUT",
    "DEFAULT_SUCCESS_THRESHOLD",
    "DEFAULT_WINDOW",
    "DISABLE_ENV",
    "BreakerConfig",
    "BreakerCore",
    "BreakerOptions",
    "BreakerSnapshot",
    "CircuitBreaker",
    "PollHint",
    "PollIntervals",
    "circuit_breaker",
    "circuit_breakers",
)

P = ParamSpec("P")
R = TypeVar("R")
_log = logging.getLogger("stalwart")

DEFAULT_FAILURE_THRESHOLD = 5
"""Consecutive failures that open a breaker in the default (consecutive) mode."""
DEFAULT_RECOVERY_TIMEOUT = 30.0
"""Seconds a breaker stays open before it lets probes through."""
DEFAULT_MAX_RECOVERY_TIMEOUT = 600.0
"""Cap on the grown open duration when ``recovery_backoff`` > 1 and no cap is given."""
DEFAULT_SUCCESS_THRESHOLD = 1
"""Successful probes needed to close a half-open breaker."""
DEFAULT_HALF_OPEN_MAX_CALLS = 1
"""Probes allowed in flight at once while half-open."""
DEFAULT_WINDOW = 100
"""Calls in the count-based window of the failure-rate and slow-call modes."""
DEFAULT_MINIMUM_CALLS = 20
"""Calls the window must hold before a rate can open the breaker."""
DISABLE_ENV = "STALWART_DISABLE_CIRCUIT_BREAKERS"
"""Set to 1/true/yes/on to make every breaker created afterwards a pass-through."""

_STRATEGY = "circuit_breaker"
# stalwart's own refusals by strategies inside this breaker (in a Pipeline): ignored. An
# inner DeadlineExceeded is not among them: a call that ran too long is a dependency signal.
_LOCAL_REJECTIONS = (BulkheadFullError, RateLimitedError, CircuitOpenError)
# Module constants: reading an enum member off its class costs ~50 ns in CPython 3.11.
_CLOSED, _OPEN, _HALF_OPEN = State.CLOSED, State.OPEN, State.HALF_OPEN
_DISABLED, _FORCED_OPEN = State.DISABLED, State.FORCED_OPEN
_REJECTED = -1
_UNTRACKED = 0  # disabled pass-through: totals only
_ENV_TRUE = ("1", "true", "yes", "on")
_ENV_FALSE = ("", "0", "false", "no", "off")


@dataclass(frozen=True, slots=True, kw_only=True)
class PollIntervals:
    """Seconds between polls a client should use in each situation (seed 000's table)."""

    fast: float = 5.0
    """Closed (or disabled): the dependency works."""
    medium: float = 15.0
    """Half-open: recovery is being tested."""
    slow: float = 60.0
    """Open."""
    very_slow: float = 120.0
    """Open after more than ``very_slow_after`` failed recoveries in a row."""
    very_slow_after: int = 3

    def __post_init__(self) -> None:
        for name in ("fast", "medium", "slow", "very_slow"):
            positive(f"poll_intervals.{name}", getattr(self, name))
        whole("poll_intervals.very_slow_after", self.very_slow_after, minimum=0)


@dataclass(frozen=True, slots=True, kw_only=True)
class BreakerConfig:
    """Validated settings of a circuit breaker. See docs/circuit-breaker.md."""

    failure_threshold: int | None = None
    """Consecutive failures that open the breaker (default mode; 5 unless a rate is set)."""
    failure_rate: float | None = None
    """Open when this fraction of the window's calls failed (rate mode, excludes the above)."""
    window: int | None = None
    """Count-based window: the last N calls (default 100 in rate or slow-call mode)."""
    window_duration: float | None = None
    """Time-based window: the calls of the last N seconds (excludes ``window``)."""
    minimum_calls: int | None = None
    """Calls the window must hold before a rate is judged (default: 20, or the window size
    when a count window is smaller)."""
    slow_call_duration: float | None = None
    """A call taking at least this many seconds is slow."""
    slow_call_rate: float = 1.0
    """Open when this fraction of the window's calls was slow (needs slow_call_duration)."""
    recovery_timeout: float = DEFAULT_RECOVERY_TIMEOUT
    """Seconds to stay open before probing."""
    recovery_backoff: float = 1.0
    """Multiply the open duration by this after each failed recovery (1 = fixed)."""
    max_recovery_timeout: float | None = None
    """Cap on the grown open duration (default: max(600 s, recovery_timeout))."""
    success_threshold: int = DEFAULT_SUCCESS_THRESHOLD
    """Successful probes needed to close."""
    half_open_max_calls: int = DEFAULT_HALF_OPEN_MAX_CALLS
    """Probes in flight at once while half-open; held exactly across threads and tasks."""
    probe_lease: float | None = None
    """Seconds a probe may stay out before it counts as failed and frees its slot
    (default: recovery_timeout, plus call_timeout when set; never below call_timeout)."""
    record: ExceptionFilter = Exception
    """Exceptions that count as failures; other exceptions count as successes."""
    ignore: ExceptionFilter = ()
    """Exceptions that count as neither (checked first). Cancellation is always ignored."""
    failure_if: Callable[[Any], bool] | None = None
    """Judges a returned value: True counts it as a failure (the value is still returned)."""
    retry_after_from: RetryAfterFrom = default_retry_after
    """Extracts a server-given pause (seconds or timedelta) from an exception or a failed
    value; the breaker then opens at least that long (capped at max_recovery_timeout)."""
    call_timeout: float | None = None
    """Seconds a call may take. async: cancelled; sync: see docs (the thread runs on)."""
    poll_intervals: PollIntervals = field(default_factory=PollIntervals)

    def __post_init__(self) -> None:
        rate_mode = self.failure_rate is not None
        if rate_mode and self.failure_threshold is not None:
            raise ConfigError(
                "failure_threshold",
                "give either failure_threshold (consecutive mode) or failure_rate (rate mode), "
                "not both",
            )
        if self.failure_threshold is not None:
            whole("failure_threshold", self.failure_threshold)
        if rate_mode:
            ratio("failure_rate", self.failure_rate)
        if self.window is not None and self.window_duration is not None:
            raise ConfigError(
                "window", "give either window (calls) or window_duration (seconds), not both"
            )
        if self.window is not None:
            whole("window", self.window)
        optional_positive("window_duration", self.window_duration)
        if self.minimum_calls is not None:
            whole("minimum_calls", self.minimum_calls)
        optional_positive("slow_call_duration", self.slow_call_duration)
        ratio("slow_call_rate", self.slow_call_rate)
        # Settings that would silently do nothing are mistakes worth naming.
        windowed = rate_mode or self.slow_call_duration is not None
        for name in ("window", "window_duration", "minimum_calls"):
            if getattr(self, name) is not None and not windowed:
                raise ConfigError(
                    name, "only applies with failure_rate or slow_call_duration; set one of them"
                )
        if self.slow_call_rate != 1.0 and self.slow_call_duration is None:
            raise ConfigError("slow_call_rate", "only applies with slow_call_duration; set it")
        if windowed and self.window_duration is None:
            size = self.window or DEFAULT_WINDOW
            if self.minimum_calls is not None and self.minimum_calls > size:
                raise ConfigError(
                    "minimum_calls",
                    f"must be <= the window of {size} calls, got {self.minimum_calls}: "
                    "the rate could never be judged",
                )
        positive("recovery_timeout", self.recovery_timeout)
        if (
            isinstance(self.recovery_backoff, bool)
            or not isinstance(self.recovery_backoff, int | float)
            or not 1 <= self.recovery_backoff < float("inf")
        ):
            raise ConfigError(
                "recovery_backoff",
                f"must be a finite number >= 1 (1 keeps it fixed), got {self.recovery_backoff!r}",
            )
        optional_positive("max_recovery_timeout", self.max_recovery_timeout)
        if (
            self.max_recovery_timeout is not None
            and self.max_recovery_timeout < self.recovery_timeout
        ):
            raise ConfigError(
                "max_recovery_timeout",
                f"must be >= recovery_timeout ({self.recovery_timeout}), "
                f"got {self.max_recovery_timeout}",
            )
        whole("success_threshold", self.success_threshold)
        whole("half_open_max_calls", self.half_open_max_calls)
        optional_positive("probe_lease", self.probe_lease)
        optional_positive("call_timeout", self.call_timeout)
        if (
            self.probe_lease is not None
            and self.call_timeout is not None
            and self.probe_lease < self.call_timeout
        ):
            raise ConfigError(
                "probe_lease",
                f"must be >= call_timeout ({self.call_timeout}), got {self.probe_lease}: "
                "a probe would lose its lease while still allowed to run",
            )
        compile_filter("record", self.record)
        compile_filter("ignore", self.ignore)
        callable_or_none("failure_if", self.failure_if)
        callable_required("retry_after_from", self.retry_after_from)
        if not isinstance(self.poll_intervals, PollIntervals):
            raise ConfigError(
                "poll_intervals", f"must be a PollIntervals, got {self.poll_intervals!r}"
            )

    # Derived settings, resolved once.
    @property
    def mode(self) -> Literal["consecutive", "rate"]:
        return "rate" if self.failure_rate is not None else "consecutive"

    @property
    def effective_failure_threshold(self) -> int:
        return self.failure_threshold or DEFAULT_FAILURE_THRESHOLD

    @property
    def effective_max_recovery_timeout(self) -> float:
        if self.max_recovery_timeout is not None:
            return self.max_recovery_timeout
        return max(DEFAULT_MAX_RECOVERY_TIMEOUT, self.recovery_timeout)

    @property
    def effective_minimum_calls(self) -> int:
        if self.minimum_calls is not None:
            return self.minimum_calls
        if self.window_duration is None:
            return min(DEFAULT_MINIMUM_CALLS, self.window or DEFAULT_WINDOW)
        return DEFAULT_MINIMUM_CALLS

    @property
    def effective_probe_lease(self) -> float:
        """A probe's lease: given, or the open duration plus the call's own timeout, so a
        probe that ends (or times out) on time never loses its lease by a hair."""
        if self.probe_lease is not None:
            return self.probe_lease
        return self.recovery_timeout + (self.call_timeout or 0.0)

    def resolved(self) -> BreakerConfig:
        """The same settings with every default filled in: two configs that behave alike
        compare equal (``failure_threshold=5`` and leaving it out, say)."""
        consecutive = self.failure_rate is None
        windowed = not consecutive or self.slow_call_duration is not None
        count_window = windowed and self.window_duration is None
        return replace(
            self,
            failure_threshold=self.effective_failure_threshold if consecutive else None,
            window=(self.window or DEFAULT_WINDOW) if count_window else None,
            record=normalize_filter(self.record),
            ignore=normalize_filter(self.ignore),
            minimum_calls=self.effective_minimum_calls if windowed else None,
            max_recovery_timeout=self.effective_max_recovery_timeout,
            probe_lease=self.effective_probe_lease,
        )

    def make_window(self) -> Window | None:
        """The window this config needs: rate mode or slow-call detection keep one."""
        if self.failure_rate is None and self.slow_call_duration is None:
            return None
        if self.window_duration is not None:
            return TimeWindow(self.window_duration)
        return CountWindow(self.window or DEFAULT_WINDOW)


class BreakerOptions(TypedDict, total=False):
    """Keyword options of :class:`CircuitBreaker`; the fields of :class:`BreakerConfig`."""

    failure_threshold: int | None
    failure_rate: float | None
    window: int | None
    window_duration: float | None
    minimum_calls: int | None
    slow_call_duration: float | None
    slow_call_rate: float
    recovery_timeout: float
    recovery_backoff: float
    max_recovery_timeout: float | None
    success_threshold: int
    half_open_max_calls: int
    probe_lease: float | None
    record: ExceptionFilter
    ignore: ExceptionFilter
    failure_if: Callable[[Any], bool] | None
    retry_after_from: RetryAfterFrom
    call_timeout: float | None
    poll_intervals: PollIntervals


def _config_from(config: BreakerConfig | None, options: BreakerOptions) -> BreakerConfig:
    known = {f.name for f in fields(BreakerConfig)}
    unknown = sorted(set(options) - known)
    if unknown:
        raise ConfigError(unknown[0], f"is not a circuit breaker setting; known: {sorted(known)}")
    if config is None:
        return BreakerConfig(**options)
    if not isinstance(config, BreakerConfig):
        raise ConfigError("config", f"must be a BreakerConfig, got {config!r}")
    if options:
        raise ConfigError(
            "config",
            f"give settings either in config= or as keywords ({', '.join(options)}), not both",
        )
    return config


class BreakerCore:
    """The breaker's state machine: time and outcomes in, decisions and transitions out.

    Not thread-safe by itself: :class:`CircuitBreaker` calls it under its lock. Each
    method that can change state appends ``(old, new, reason)`` to ``transitions``,
    which the owner drains and publishes after releasing the lock.
    """

    def __init__(self, config: BreakerConfig, *, disabled: bool = False) -> None:
        self.config = config
        self._pinned_disabled = disabled
        """Disabled by the operator's environment switch: reset() keeps it disabled."""
        self._threshold = config.effective_failure_threshold
        self._consecutive_mode = config.mode == "consecutive"
        self._slow_after = config.slow_call_duration
        self._lease = config.effective_probe_lease
        self.max_recovery_timeout = config.effective_max_recovery_timeout
        self._minimum_calls = config.effective_minimum_calls
        self.window = config.make_window()
        self.state = _DISABLED if disabled else _CLOSED
        self._seq = 1
        self.epoch = 1
        """Ticket of the current closed period."""
        self.consecutive_failures = 0
        self.open_until = 0.0
        self.opened_at: float | None = None
        self.probes: dict[int, float] = {}
        """Live half-open probes: ticket -> lease expiry."""
        self.half_open_successes = 0
        self.failed_recoveries = 0
        """Failed recoveries in a row (reset when the breaker closes)."""
        self.recovery_timeout = config.recovery_timeout
        """The current open duration, grown by recovery_backoff after failed recoveries."""
        self.transition_count = 0
        self.total_failures = 0
        self.total_ignored = 0
        self.transitions: list[tuple[State, State, str, float, float | None]] = []
        """Pending (old, new, reason, at, retry_in) for the owner to publish."""

    # -- questions -----------------------------------------------------------------

    def acquire(self, now: float) -> int:
        """A ticket (> 0) if a call may start now, ``_UNTRACKED`` if disabled, else -1."""
        state = self.state
        if state is _CLOSED:
            return self.epoch
        if state is _DISABLED:
            return _UNTRACKED
        if state is _FORCED_OPEN:
            return _REJECTED
        self.poll(now)
        if self.state is not _HALF_OPEN:
            return _REJECTED
        if len(self.probes) >= self.config.half_open_max_calls:
            return _REJECTED
        self._seq += 1
        self.probes[self._seq] = now + self._lease
        return self._seq

    def poll(self, now: float) -> None:
        """Apply the transitions that time alone causes: end of open, expired probe leases."""
        if self.state is _OPEN and now >= self.open_until:
            self._move(_HALF_OPEN, "recovery_timeout_elapsed", now)
        elif self.state is _HALF_OPEN and self.probes and min(self.probes.values()) <= now:
            self._reopen(now, "probe_lease_expired", None)

    def retry_in(self, now: float) -> float | None:
        """Seconds until a call may be admitted; None when nobody can say: forced open, or
        half-open with every probe slot taken (it depends on how the probes end)."""
        if self.state is _OPEN:
            return max(0.0, self.open_until - now)
        if self.state is _FORCED_OPEN:
            return None
        if self.state is _HALF_OPEN and len(self.probes) >= self.config.half_open_max_calls:
            return None
        return 0.0

    def rates(self, now: float) -> tuple[float | None, float | None]:
        """(failure ratio, slow-call ratio) over the window; None below minimum_calls."""
        if self.window is None:
            return None, None
        calls, failures, slow = self.window.totals(now)
        if calls < self._minimum_calls:
            return None, None
        return failures / calls, slow / calls

    # -- outcomes ------------------------------------------------------------------

    def on_success(self, ticket: int, now: float, duration: float) -> None:
        if self.state is _HALF_OPEN:
            self.poll(now)  # a probe back after its lease has already failed, looked at or not
        slow = self._slow_after is not None and duration >= self._slow_after
        if ticket == self.epoch and self.state is _CLOSED:
            self.consecutive_failures = 0
            if self.window is not None:
                self.window.record(now, False, slow)
                self._judge_window(now)
        elif ticket in self.probes:
            del self.probes[ticket]
            if slow:
                self._reopen(now, "slow_probe", None)
                return
            self.half_open_successes += 1
            if self.half_open_successes >= self.config.success_threshold:
                self._close("probes_succeeded", now)

    def on_failure(
        self, ticket: int, now: float, duration: float, retry_after: float | None
    ) -> None:
        self.total_failures += 1
        if self.state is _HALF_OPEN:
            self.poll(now)
        if retry_after is not None:
            # The server said when to come back: every caller pauses, whatever its ticket.
            if self.state in (_CLOSED, _HALF_OPEN):
                if self.state is _HALF_OPEN and ticket in self.probes:
                    self._reopen(now, "retry_after", retry_after)
                else:
                    self._open(now, "retry_after", retry_after)
            elif self.state is _OPEN:
                self.open_until = max(self.open_until, now + retry_after)
            self.probes.pop(ticket, None)
            return
        if ticket == self.epoch and self.state is _CLOSED:
            self.consecutive_failures += 1
            if self.window is not None:
                slow = self._slow_after is not None and duration >= self._slow_after
                self.window.record(now, True, slow)
            if self._consecutive_mode:
                if self.consecutive_failures >= self._threshold:
                    self._open(now, "failure_threshold", None)
                elif self.window is not None:
                    self._judge_window(now)
            else:
                self._judge_window(now)
        elif ticket in self.probes:
            del self.probes[ticket]
            self._reopen(now, "probe_failed", None)

    def on_ignored(self, ticket: int, now: float) -> None:
        self.total_ignored += 1
        if self.state is _HALF_OPEN:
            self.poll(now)
        self.probes.pop(ticket, None)  # frees the slot; decides nothing

    # -- manual control ------------------------------------------------------------

    def reset(self, now: float) -> None:
        if self._pinned_disabled:
            self.disable(now, "reset")
        else:
            self._close("reset", now)

    def force_open(self, now: float) -> None:
        self.opened_at = now
        self._clear_period()
        self._move(_FORCED_OPEN, "forced_open", now)

    def disable(self, now: float, reason: str = "disabled") -> None:
        self._clear_period()
        self.opened_at = None
        self._move(_DISABLED, reason, now)

    def adopt(
        self,
        state: State,
        now: float,
        *,
        reason: str,
        open_for: float,
        failures: int,
        successes: int,
        failed_recoveries: int,
        recovery_timeout: float,
        opened_ago: float | None,
        new_period: bool,
    ) -> None:
        """Take on a state decided elsewhere (a shared store): this core is then a replica.

        A change of state is a transition like any other (listeners hear of it); a new
        period in the same state (the store closed and reopened meanwhile, say) only makes
        earlier tickets stale."""
        if state is not self.state:
            self._clear_period()
            self._move(state, reason, now, open_for if state is _OPEN else None)
        elif new_period:
            self._clear_period()
            self._seq += 1
            self.epoch = self._seq
        if state is _OPEN:
            self.open_until = now + open_for
        self.consecutive_failures = failures
        self.half_open_successes = successes
        self.failed_recoveries = failed_recoveries
        self.recovery_timeout = recovery_timeout
        self.opened_at = None if opened_ago is None else now - opened_ago

    # -- transitions ---------------------------------------------------------------

    def _judge_window(self, now: float) -> None:
        failure_ratio, slow_ratio = self.rates(now)
        if failure_ratio is None or slow_ratio is None:
            return
        if self.config.failure_rate is not None and failure_ratio >= self.config.failure_rate:
            self._open(now, "failure_rate", None)
        elif self._slow_after is not None and slow_ratio >= self.config.slow_call_rate:
            self._open(now, "slow_call_rate", None)

    def _open(self, now: float, reason: str, retry_after: float | None) -> None:
        duration = self.recovery_timeout
        if retry_after is not None:
            duration = max(duration, retry_after)
        self.open_until = now + duration
        self.opened_at = now
        self._clear_period()
        self._move(_OPEN, reason, now, duration)

    def _reopen(self, now: float, reason: str, retry_after: float | None) -> None:
        """A recovery failed: open again, for longer if recovery_backoff says so."""
        self.failed_recoveries += 1
        grown = self.recovery_timeout * self.config.recovery_backoff
        self.recovery_timeout = min(grown, self.max_recovery_timeout)
        self._open(now, reason, retry_after)

    def _close(self, reason: str, now: float) -> None:
        self._clear_period()
        self.failed_recoveries = 0
        self.recovery_timeout = self.config.recovery_timeout
        self.opened_at = None
        self._move(_CLOSED, reason, now)

    def _clear_period(self) -> None:
        self.consecutive_failures = 0
        self.half_open_successes = 0
        self.probes.clear()
        if self.window is not None:
            self.window.clear()

    def _move(self, new: State, reason: str, now: float, retry_in: float | None = None) -> None:
        old = self.state
        self.state = new
        self._seq += 1
        self.epoch = self._seq  # outcomes of earlier periods become stale
        self.transition_count += 1
        self.transitions.append((old, new, reason, now, retry_in))


@dataclass(frozen=True, slots=True, kw_only=True)
class BreakerSnapshot:
    """A consistent, frozen view of a breaker, taken under its lock."""

    name: str
    state: State
    available: bool
    failure_count: int
    """Consecutive failures in the current closed period (rate mode: failures in the window)."""
    success_count: int
    """Successful probes in the current half-open period."""
    retry_in: float | None
    opened_at: float | None
    """Wall-clock time (Unix seconds) the breaker last opened, None while closed."""
    total_calls: int
    total_successes: int
    total_failures: int
    total_ignored: int
    total_rejections: int
    failure_rate: float | None
    """Failures / calls in the window (None below minimum_calls); lifetime ratio without one."""
    slow_call_rate: float | None
    transitions: int
    failed_recoveries: int
    recovery_timeout: float
    half_open_in_flight: int

    def to_dict(self) -> dict[str, Any]:
        out = {f.name: getattr(self, f.name) for f in fields(self)}
        out["state"] = self.state.value
        return out


class PollHint(TypedDict):
    """What a polling client should do next (seed 000's status payload)."""

    available: bool
    state: str
    poll_interval: float
    retry_in: float | None
    message: str


def _call_timer(breaker: CircuitBreaker, call_timeout: float | None) -> Timeout | None:
    """The Timeout that bounds the breaker's async calls. Its deadline raises as the
    breaker, so the drivers count it as a failure whatever ``record`` says; a result that
    comes back late is returned, and counted as a failure, as on every calling form."""
    if call_timeout is None:
        return None
    timer = Timeout(call_timeout, name=breaker.name, clock=breaker._clock)
    timer._imposer = breaker
    timer._returns_late = True
    return timer


def _waker(breaker: CircuitBreaker, deadline: float) -> Callable[[], None]:
    """The alarm callback; it does not keep a breaker nobody else holds alive."""
    ref = weakref.ref(breaker)

    def wake() -> None:
        if (alive := ref()) is not None:
            alive._wake(deadline)

    return wake


class CircuitBreaker(Guarded):
    """Stops calling a dependency that keeps failing, and tests its recovery carefully.

    Use it as a decorator (``def`` and ``async def``), a ``with``/``async with`` block, or
    through ``call``/``acall``. The lock is held for bookkeeping only, never while the
    protected call runs. Constructing one does not register it: see
    :func:`circuit_breaker` for named, shared instances.
    """

    _kind = "breaker"

    # The drivers read these on every call.
    _fast: int | None
    _dirty: bool
    _refusing: bool
    _remaining: Countdown | None
    _Rejection = CircuitOpenError

    def __init__(
        self,
        name: str,
        config: BreakerConfig | None = None,
        *,
        clock: Clock | None = None,
        store: StateStore | None = None,
        **options: Unpack[BreakerOptions],
    ) -> None:
        if not isinstance(name, str) or not name:
            raise ConfigError("name", f"must be a non-empty string, got {name!r}")
        self.name = name
        self.config = _config_from(config, options)
        self._clock: Clock = strategy_clock(clock)
        self._monotonic = self._clock.monotonic
        self._record = compile_filter("record", self.config.record)
        self._ignore = compile_filter("ignore", self.config.ignore)
        self._call_timer = _call_timer(self, self.config.call_timeout)
        self._core = BreakerCore(self.config, disabled=_disabled_by_env())
        self._lock = threading.Lock()
        # The publisher role: whoever holds it delivers transitions to listeners (_publish).
        self._publishing = threading.Lock()
        # Successes and rejections are counted without the state lock: itertools.count is
        # atomic under the GIL; without one, a counter with its own lock stands in.
        self._successes: Iterator[int] = counter()
        self._rejections: Iterator[int] = counter()
        self._fast_eligible = (
            HAS_GIL
            and self.config.mode == "consecutive"
            and self.config.slow_call_duration is None
            and self.config.failure_if is None
            and self.config.call_timeout is None
        )
        self._fast = None
        self._dirty = False
        # Refusing without a clock read needs an alarm at the end of each open period.
        self._alarm = alarms_of(self._clock)
        self._refusing = False
        self._remaining = None
        self._armed: float | None = None  # the deadline an alarm is set for
        self._hub = EventHub()
        self._hub.watch(self._refresh)
        self._refresh_fast()
        self._store = check_store(store, name)
        # Shared state: the core becomes a replica the link keeps current. A breaker the
        # environment disables stays a local pass-through.
        self._shared: SharedBreaker | None = None
        if self._store is not None and not self._core._pinned_disabled:
            self._shared = self._store.link_breaker(self)

    # -- public surface ------------------------------------------------------------

    @property
    def state(self) -> State:
        """The current state, after any transition that time alone has caused."""
        return self._poll().state

    @property
    def available(self) -> bool:
        """False while a call made now would be rejected."""
        core = self._poll()
        with self._lock:
            return core.retry_in(self._clock.monotonic()) == 0.0 or core.state is _DISABLED

    def snapshot(self) -> BreakerSnapshot:
        core = self._poll()
        now = self._clock.monotonic()
        with self._lock:
            retry_in = core.retry_in(now)
            failure_ratio, slow_ratio = core.rates(now)
            successes = peek(self._successes)
            failures = core.total_failures
            if core.window is None:
                decided = successes + failures
                failure_ratio = failures / decided if decided else None
            if self.config.mode == "consecutive" or core.window is None:
                failure_count = core.consecutive_failures
            else:
                failure_count = core.window.totals(now)[1]
            opened_at = None
            if core.opened_at is not None:
                opened_at = self._clock.time() - (now - core.opened_at)
            return BreakerSnapshot(
                name=self.name,
                state=core.state,
                available=retry_in == 0.0 or core.state is _DISABLED,
                failure_count=failure_count,
                success_count=core.half_open_successes,
                retry_in=retry_in,
                opened_at=opened_at,
                total_calls=successes + failures + core.total_ignored,
                total_successes=successes,
                total_failures=failures,
                total_ignored=core.total_ignored,
                total_rejections=peek(self._rejections),
                failure_rate=failure_ratio,
                slow_call_rate=slow_ratio,
                transitions=core.transition_count,
                failed_recoveries=core.failed_recoveries,
                recovery_timeout=core.recovery_timeout,
                half_open_in_flight=(
                    self._shared.probes_in_flight
                    if self._shared is not None and self._shared.live
                    else len(core.probes)
                ),
            )

    def poll_hint(self) -> PollHint:
        """How often a client (a status page, a poller) should ask again, and why."""
        snap = self.snapshot()
        iv = self.config.poll_intervals
        state = snap.state
        if state in (_CLOSED, _DISABLED):
            interval, message = iv.fast, f"{self.name} is available"
        elif state is _HALF_OPEN:
            interval, message = iv.medium, f"{self.name} is recovering; probing"
        elif state is _FORCED_OPEN:
            interval, message = iv.slow, f"{self.name} is switched off (forced open)"
        else:
            long_outage = snap.failed_recoveries > iv.very_slow_after
            interval = iv.very_slow if long_outage else iv.slow
            wait = snap.retry_in or 0.0
            message = f"{self.name} is unavailable; next check in {wait:.0f} s"
        return PollHint(
            available=snap.available,
            state=state.value,
            poll_interval=interval,
            retry_in=snap.retry_in,
            message=message,
        )

    def reset(self) -> None:
        """Close the breaker and forget the current period (lifetime totals are kept).
        A shared breaker closes in every process."""
        self._control("reset")

    def force_open(self) -> None:
        """Reject every call until :meth:`reset` (in every process, when shared)."""
        self._control("force_open")

    def disable(self) -> None:
        """Let every call through, counting totals only, until :meth:`reset`."""
        self._control("disable")

    @property
    def shared(self) -> str | None:
        """Where the state is shared, and whether it is reachable now; None when local."""
        return None if self._shared is None else self._shared.describe()

    def describe(self) -> dict[str, Any]:
        """The breaker's kind, name and every setting (for pipelines, logs and the ops app)."""
        settings = {f.name: getattr(self.config, f.name) for f in fields(BreakerConfig)}
        settings["poll_intervals"] = {
            f.name: getattr(self.config.poll_intervals, f.name) for f in fields(PollIntervals)
        }
        out = {"strategy": _STRATEGY, "name": self.name, **settings}
        if self._shared is not None:
            out["shared"] = self._shared.describe()
        return out

    def __repr__(self) -> str:
        return f"CircuitBreaker({self.name!r}, state={self._core.state.value})"

    # -- the protocol the drivers use ----------------------------------------------

    @property
    def _call_timeout(self) -> float | None:
        return self.config.call_timeout

    def _acquire(self) -> int | float | None:
        """An int ticket if a call may start now; otherwise the rejection's ``retry_in``.

        The driver raises the rejection where the user's call stands: each frame a raised
        exception crosses costs ~100 ns of traceback, a third of a rejection's budget.
        """
        core = self._core
        state = core.state
        if state is _CLOSED:
            # No lock: if the breaker moves on between these reads, the ticket is simply
            # stale and its outcome only feeds the totals.
            return core.epoch
        now = self._monotonic()
        retry_in: float | None
        if state is _OPEN and now < (until := core.open_until):
            # Plainly open: no lock either. `until` was read after the state, so it
            # belongs to this open period or a later one; either way `now` was inside one.
            retry_in = until - now
        elif state is _FORCED_OPEN:
            retry_in = None
        else:
            shared = self._shared
            permit = (
                self._local_acquire(now)
                if shared is None or not shared.live
                else shared.acquire(now)
            )
            if type(permit) is int:
                return permit
            retry_in = permit
        next(self._rejections)
        if self._hub.rejections:
            self._emit_rejection(now, retry_in)
        return retry_in

    def _local_acquire(self, now: float) -> int | float | None:
        """The half-open question answered by this process's core alone."""
        with self._lock:
            ticket = self._core.acquire(now)
            retry_in = self._core.retry_in(now) if ticket == _REJECTED else 0.0
            moved = self._drain()
        if moved:
            self._publish()
        return ticket if ticket != _REJECTED else retry_in

    def _emit_rejection(self, now: float, retry_in: float | None) -> None:
        self._hub.emit(
            CallRejected(
                name=self.name,
                strategy=_STRATEGY,
                at=now,
                state=self._core.state,
                retry_in=retry_in,
            )
        )

    def _settle_success(self, ticket: int, duration: float, *, counted: bool = False) -> None:
        if not counted:
            next(self._successes)
        now = self._monotonic()
        moved = self._count_outcome("success", ticket, now, duration, None)
        if self._hub.calls:
            self._emit_outcome(
                CallSucceeded(name=self.name, strategy=_STRATEGY, at=now, duration=duration)
            )
        if moved:
            self._publish()

    def _settle_failure(
        self,
        ticket: int,
        duration: float,
        exception: BaseException | None,
        retry_after: float | None,
    ) -> None:
        now = self._monotonic()
        moved = self._count_outcome("failure", ticket, now, duration, retry_after)
        if self._hub.calls:
            self._emit_outcome(
                CallFailed(
                    name=self.name,
                    strategy=_STRATEGY,
                    at=now,
                    duration=duration,
                    exception=exception,
                    retry_after=retry_after,
                )
            )
        if moved:
            self._publish()

    def _count_outcome(
        self, kind: str, ticket: int, now: float, duration: float, retry_after: float | None
    ) -> bool:
        """Give an outcome to the shared state while it is live (the lifetime totals stay
        here), else to this process's core; True if transitions await publishing."""
        core, shared = self._core, self._shared
        if shared is not None and shared.live:
            if kind != "success":
                with self._lock:
                    if kind == "failure":
                        core.total_failures += 1
                    else:
                        core.total_ignored += 1
            shared.outcome(ticket, now, kind, duration, retry_after)
            return False
        with self._lock:
            if kind == "success":
                core.on_success(ticket, now, duration)
            elif kind == "failure":
                core.on_failure(ticket, now, duration, retry_after)
            else:
                core.on_ignored(ticket, now)
            return self._drain()

    def _settle_exception(self, ticket: int, exc: BaseException, duration: float) -> None:
        """Count a raised exception as the config classifies it.

        A server-given pause (``retry_after``) on any exception that is not ignored counts
        as a failure with that pause: the server has said how long to stay away.
        """
        outcome = self._classify(exc)
        if outcome is Outcome.IGNORED:
            now = self._monotonic()
            moved = self._count_outcome("ignored", ticket, now, duration, None)
            if self._hub.calls:
                self._emit_outcome(
                    CallIgnored(
                        name=self.name, strategy=_STRATEGY, at=now, duration=duration, exception=exc
                    )
                )
            if moved:
                self._publish()
            return
        hint = self._retry_after(exc)
        if outcome is Outcome.FAILURE or hint is not None:
            self._settle_failure(ticket, duration, exc, hint)
        else:
            self._settle_success(ticket, duration)

    def _settle_result(self, ticket: int, result: Any, duration: float) -> None:
        """Count a returned value: a success unless failure_if judges it a failure."""
        judge = self.config.failure_if
        if judge is not None and self._hook("failure_if", judge, result, False):
            self._settle_failure(ticket, duration, None, self._retry_after(result))
        else:
            self._settle_success(ticket, duration)

    def _classify(self, exc: BaseException) -> Outcome:
        if (
            not isinstance(exc, Exception)
            or isinstance(exc, _LOCAL_REJECTIONS)
            or self._hook("ignore", self._ignore, exc, False)
        ):
            # KeyboardInterrupt, SystemExit, task cancellation: the call did not end on
            # its own. A full bulkhead, a rate limit, an inner open breaker: refused here,
            # before the dependency was asked. Neither says anything about the dependency.
            return Outcome.IGNORED
        recorded = self._hook("record", self._record, exc, True)
        return Outcome.FAILURE if recorded else Outcome.SUCCESS

    def _retry_after(self, source: Any) -> float | None:
        """The server-given pause carried by ``source``, normalised and capped."""
        raw = self._hook("retry_after_from", self.config.retry_after_from, source, None)
        hint = normalize_hint(raw)
        return None if hint is None else min(hint, self._core.max_recovery_timeout)

    # -- internals -----------------------------------------------------------------

    def _poll(self) -> BreakerCore:
        now = self._monotonic()
        with self._lock:
            self._core.poll(now)
            moved = self._drain()
        if moved:
            self._publish()
        return self._core

    def _control(self, action: Literal["reset", "force_open", "disable"]) -> None:
        shared = self._shared
        if shared is not None and shared.control(action):
            return  # applied in Redis; the reply (and every process) adopts the result
        now = self._monotonic()
        with self._lock:
            getattr(self._core, action)(now)
            moved = self._drain()
        if moved:
            self._publish()

    def _drain(self) -> bool:
        """Under the lock: refresh the fast-path fields; True if transitions await publishing."""
        self._refresh_fast()
        return bool(self._core.transitions)

    def _refresh_fast(self) -> None:
        """Under the lock: what the drivers read on every call, from the core's state."""
        core = self._core
        state = core.state
        hub = self._hub
        self._dirty = core.consecutive_failures > 0
        ok = self._fast_eligible and state is _CLOSED and not hub.calls
        self._fast = core.epoch if ok else None
        # Plainly open and nobody listening for rejections: the drivers refuse inline, with
        # no clock read, until the alarm at the period's end (a server hint may stretch it
        # without a transition; the alarm then finds it later and sets another).
        # Otherwise, or on a clock without alarms, they ask _acquire.
        refusing = False
        if state is _OPEN and not hub.rejections and self._alarm is not None:
            until = core.open_until
            if self._monotonic() < until:
                refusing = True
                if self._armed != until:
                    self._armed = until
                    self._remaining = Countdown(until, self._monotonic)
                    self._alarm(until, _waker(self, until))
        if not refusing:
            self._armed = None
        self._refusing = refusing

    def _wake(self, deadline: float) -> None:
        """An alarm: the open period that ends at ``deadline`` may be over."""
        with self._lock:
            if self._armed == deadline:
                self._armed = None
            self._refresh_fast()

    def _refresh(self) -> None:
        # Listener sets changed (possibly from another thread): recompute under the lock.
        with self._lock:
            self._refresh_fast()

    def _publish(self) -> None:
        """Tell the listeners about pending transitions, outside the state lock (they may be
        slow), one batch at a time and in the order they happened.

        One thread at a time holds the publisher role and delivers everything queued,
        including what other threads queue meanwhile; a thread that finds the role taken
        leaves its transitions to the holder and goes on, so nobody waits on a slow
        listener and a listener that causes a transition cannot deadlock or jump the queue.
        """
        while self._publishing.acquire(blocking=False):
            try:
                while True:
                    with self._lock:
                        moved = self._core.transitions
                        self._core.transitions = []
                    if not moved:
                        break
                    for old, new, reason, at, retry_in in moved:
                        self._hub.emit(
                            StateTransition(
                                name=self.name,
                                strategy=_STRATEGY,
                                at=at,
                                old=old,
                                new=new,
                                reason=reason,
                                retry_in=retry_in,
                            )
                        )
            finally:
                self._publishing.release()
            # Something queued between the last look and the release would otherwise wait
            # for the next transition: look again now that the role is free.
            with self._lock:
                if not self._core.transitions:
                    return

    def _emit_outcome(self, event: CallSucceeded | CallFailed | CallIgnored) -> None:
        """Deliver a per-call event, and a SlowCall after it when the call was slow."""
        self._hub.emit(event)
        threshold = self.config.slow_call_duration
        if threshold is not None and event.duration >= threshold:
            self._hub.emit(
                SlowCall(
                    name=self.name,
                    strategy=_STRATEGY,
                    at=event.at,
                    duration=event.duration,
                    threshold=threshold,
                )
            )


def _disabled_by_env() -> bool:
    raw = os.environ.get(DISABLE_ENV, "").strip().lower()
    if raw in _ENV_TRUE:
        return True
    if raw in _ENV_FALSE:
        return False
    raise ConfigError(
        DISABLE_ENV, f"must be one of {_ENV_TRUE + _ENV_FALSE[1:]} (or unset), got {raw!r}"
    )


circuit_breakers: Registry[CircuitBreaker] = Registry("circuit breaker")
"""Named breakers created through :func:`circuit_breaker`, by name (read-only mapping)."""


def circuit_breaker(
    name: str,
    config: BreakerConfig | None = None,
    *,
    clock: Clock | None = None,
    store: StateStore | None = None,
    **options: Unpack[BreakerOptions],
) -> CircuitBreaker:
    """The shared breaker called ``name``, created on first use.

    Later calls with the same settings (or none) return the same instance; different
    settings for an existing name are a ConfigError, because two parts of a program would
    otherwise believe in different thresholds for one dependency. The result is also a
    decorator: ``@circuit_breaker("database", failure_threshold=3)``.
    """
    wanted = None if config is None and not options else _config_from(config, options)

    def create() -> CircuitBreaker:
        return CircuitBreaker(name, wanted, clock=clock, store=store)

    def check(existing: CircuitBreaker) -> None:
        if clock is not None and clock is not existing._clock:
            raise ConfigError(
                "clock", f"circuit breaker {name!r} already exists with another clock"
            )
        if store is not None and store is not existing._store:
            raise ConfigError(
                "store", f"circuit breaker {name!r} already exists with another store"
            )
        if wanted is None:
            return
        # Compare behaviour, not spelling: a default written out is the same setting.
        # Hooks (predicates, retry_after_from) compare by identity: pass the same function.
        mine, theirs = wanted.resolved(), existing.config.resolved()
        if mine != theirs:
            diff = [
                f.name
                for f in fields(BreakerConfig)
                if getattr(mine, f.name) != getattr(theirs, f.name)
            ]
            raise ConfigError(
                diff[0],
                f"circuit breaker {name!r} already exists with other settings "
                f"(differs in {', '.join(diff)})",
            )

    return circuit_breakers.get_or_create(name, create, check)
