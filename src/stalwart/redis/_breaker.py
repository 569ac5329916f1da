"""The link between one CircuitBreaker and its shared state in Redis.

The breaker's own core becomes a replica: the link writes into it whatever Redis says
(``BreakerCore.adopt``), from three sources: the reply of each script the link runs, the
change messages every script publishes, and the store's periodic poll. The breaker reads
the replica as usual, so a rejection while open, and a call while closed, never wait on
Redis. What does reach Redis:

* outcomes of closed-period calls, gathered into one batch per shared epoch and sent by
  the store's I/O thread, at once when they may change the state (a failure, a success
  that resets a failure count, a server-given pause), else within ``FLUSH_INTERVAL``;
* half-open admission: a probe lease taken in Redis by the caller (one round trip,
  bounded by the store's ``timeout``), so exactly ``half_open_max_calls`` probes run
  across every process; a lease expires, so a killed process cannot wedge the breaker;
* probe results and operator actions (reset, force_open, disable).
"""

from __future__ import annotations

import json
import math
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .._types import State

if TYPE_CHECKING:
    from .._breaker import CircuitBreaker
    from ._store import Arg, Job, RedisStore

__all__ = ("FULL_RECHECK", "BreakerLink")

FULL_RECHECK = 0.05
"""Seconds a process refuses on its own once the shared half-open slots were all taken,
before asking again (a finished probe is published, which ends the wait sooner)."""
_CODES = {"success": "s", "failure": "f", "ignored": "i"}


def _ms(seconds: float | None) -> str:
    return "-1" if seconds is None else repr(seconds * 1000.0)


@dataclass(slots=True)
class _Batch:
    """Closed-period outcomes of this process since the last flush, for one epoch."""

    epoch: int = 0
    calls: int = 0
    failures: int = 0
    slow: int = 0
    trailing: int = 0
    """Failures since the batch's last success (the consecutive count it leaves)."""
    had_success: bool = False
    retry_after: float | None = None

    @property
    def empty(self) -> bool:
        return not self.calls and self.retry_after is None


class BreakerLink:
    """A :class:`~stalwart._store.SharedBreaker` on Redis (one per breaker object)."""

    def __init__(self, store: RedisStore, breaker: CircuitBreaker) -> None:
        self.store = store
        self.breaker = breaker
        self.name = breaker.name
        self.keys = [store.key(self.name, part) for part in ("state", "probes", "window")]
        config = breaker.config
        window = config.make_window()
        self._windowed = window is not None
        self._slow_after = config.slow_call_duration
        count_window = self._windowed and config.window_duration is None
        self._settings = json.dumps(
            {
                "n": self.name,
                "ch": store.channel,
                "m": "c" if config.mode == "consecutive" else "r",
                "th": config.effective_failure_threshold,
                "fr": -1 if config.failure_rate is None else config.failure_rate,
                "sd": 0 if config.slow_call_duration is None else 1,
                "sr": config.slow_call_rate,
                "mc": config.effective_minimum_calls,
                "wn": (config.window or 100) if count_window else 0,
                "wd": (config.window_duration or 0.0) * 1000.0,
                "rt": config.recovery_timeout * 1000.0,
                "rb": config.recovery_backoff,
                "mr": config.effective_max_recovery_timeout * 1000.0,
                "st": config.success_threshold,
                "hm": config.half_open_max_calls,
                "pl": config.effective_probe_lease * 1000.0,
                "ttl": math.ceil(store.key_ttl * 1000.0),
            },
            separators=(",", ":"),
        )
        self.live = False
        self.probes_in_flight = 0
        self._gen: str | None = None
        self._epoch = 0
        self._open_until: float | None = None
        """The shared open period's end (Redis ms) last adopted."""
        self._lock = threading.Lock()  # the batch and the probe results
        self._batch = _Batch()
        self._done: list[tuple[str, str, str]] = []
        self._probes: dict[int, str] = {}
        """This process's probes: local ticket -> lease id in Redis."""
        self._full_until = -math.inf

    # -- SharedBreaker ---------------------------------------------------------------

    def acquire(self, now: float) -> int | float | None:
        if now < self._full_until:
            return None
        store = self.store
        reply = store.run("probe", lambda: store.breaker_call(self.keys, self._args("probe")))
        if reply is None:  # Redis has just gone: the breaker decides locally from now on
            return self.breaker._local_acquire(now)
        shared = self.adopt(reply)
        core = self.breaker._core
        granted = int(shared["g"])
        if granted:
            with self.breaker._lock:
                core._seq += 1
                ticket = core._seq
            self._probes[ticket] = str(granted)
            return ticket
        state = shared["st"]
        if state == "closed":
            return core.epoch
        if state == "disabled":
            return 0
        if state == "open":
            return max(0.0, (float(shared["ou"]) - float(shared["now"])) / 1000.0)
        if state == "half_open":
            self._full_until = now + FULL_RECHECK
        return None

    def outcome(
        self, ticket: int, now: float, kind: str, duration: float, retry_after: float | None
    ) -> None:
        lease = self._probes.pop(ticket, None)
        if lease is not None:
            code = _CODES[kind]
            if code == "s" and self._slow_after is not None and duration >= self._slow_after:
                code = "slow"
            with self._lock:
                self._done.append((lease, code, _ms(retry_after)))
            self.store.poke()
            return
        core = self.breaker._core
        current = ticket == core.epoch and core.state is State.CLOSED
        if retry_after is None and (not current or kind == "ignored"):
            return  # stale, or says nothing about the dependency
        if (
            kind == "success"
            and not self._windowed
            and not core.consecutive_failures
            and not self._batch.failures
        ):
            return  # nothing to reset: the shared count is already 0
        slow = self._slow_after is not None and duration >= self._slow_after
        with self._lock:
            batch = self._batch
            if batch.epoch != self._epoch:
                self._batch = batch = _Batch(epoch=self._epoch)
            first = batch.empty  # the I/O thread may be asleep until its next poll
            if retry_after is not None:
                batch.retry_after = max(batch.retry_after or 0.0, retry_after)
                urgent = True
            else:
                batch.calls += 1
                batch.slow += slow
                if kind == "failure":
                    batch.failures += 1
                    batch.trailing += 1
                    urgent = True
                else:
                    batch.had_success = True
                    batch.trailing = 0
                    urgent = not self._windowed
        if urgent or first:
            self.store.poke(urgent=urgent)

    def control(self, action: str) -> bool:
        store = self.store
        reply = store.run(action, lambda: store.breaker_call(self.keys, self._args(action)))
        if reply is None:
            return False
        self.adopt(reply)
        return True

    def describe(self) -> str:
        mode = "shared" if self.live else "local (Redis unreachable)"
        return f"{mode}: {self.store.describe()}"

    # -- for the store -----------------------------------------------------------------

    @property
    def pending(self) -> bool:
        return bool(self._done) or not self._batch.empty

    def sync_now(self) -> None:
        """Read the shared state on the caller's thread (at creation: an open breaker is
        known before the first call), or fall back if Redis cannot be reached."""
        store = self.store
        reply = store.run("read", lambda: store.breaker_call(self.keys, self._args("read")))
        if reply is None:
            self.went_offline()
            return
        self.adopt(reply)
        self.live = store.available

    def read_job(self) -> Job:
        return (self.store._breaker_script, self.keys, self._args("read"))

    def take_flush(self) -> list[Job]:
        """The pending batch and probe results, as script calls for the I/O thread."""
        with self._lock:
            batch, self._batch = self._batch, _Batch(epoch=self._epoch)
            done, self._done = self._done, []
        script = self.store._breaker_script
        jobs: list[Job] = []
        if not batch.empty:
            extra = (
                batch.epoch,
                batch.calls,
                batch.failures,
                batch.slow,
                batch.trailing,
                "1" if batch.had_success else "0",
                _ms(batch.retry_after),
            )
            jobs.append((script, self.keys, self._args("outcomes", *extra)))
        for lease, code, retry_after in done:
            jobs.append((script, self.keys, self._args("probe_done", lease, code, retry_after)))
        return jobs

    def adopt(self, reply: str) -> dict[str, Any]:
        """Write the shared state ``reply`` describes into the breaker's core, unless it
        is older than what the core already shows (replies and messages cross)."""
        shared: dict[str, Any] = json.loads(reply)
        gen, epoch = str(shared["gen"]), int(shared["ep"])
        breaker = self.breaker
        core = breaker._core
        with breaker._lock:
            if gen == self._gen and epoch < self._epoch:
                return shared
            new_period = epoch != self._epoch or gen != self._gen
            self._gen, self._epoch = gen, epoch
            state = State(shared["st"])
            at = float(shared["now"])
            moves = shared["mv"]
            if isinstance(moves, list) and moves:
                reason = str(moves[-1][2])
            else:  # a poll: the reason the current state was entered, as Redis keeps it
                reason = str(shared.get("rs") or "synced")
            opened_at = float(shared["oa"])
            now = breaker._monotonic()
            until = float(shared["ou"])
            if new_period or self._open_until is None:
                open_for = max(0.0, (until - at) / 1000.0)
            else:
                # The same period seen again (a poll, a late message): keep the local end,
                # moved only by what a server pause added since. Recomputing it from a
                # late reply would stretch it by the reply's delay.
                open_for = max(0.0, core.open_until - now + (until - self._open_until) / 1000.0)
            self._open_until = until
            core.adopt(
                state,
                now,
                reason=reason,
                open_for=open_for,
                failures=int(shared["fc"]),
                successes=int(shared["sc"]),
                failed_recoveries=int(shared["fr"]),
                recovery_timeout=float(shared["rt"]) / 1000.0,
                opened_ago=None if opened_at < 0 else max(0.0, (at - opened_at) / 1000.0),
                new_period=new_period,
            )
            self.probes_in_flight = int(shared["hp"])
            if (
                state is not State.HALF_OPEN
                or self.probes_in_flight < core.config.half_open_max_calls
            ):
                self._full_until = -math.inf
            moved = breaker._drain()
        if moved:
            breaker._publish()
        return shared

    def went_offline(self) -> None:
        self.live = False
        self._probes.clear()  # their outcomes now go to the local core, which ignores them
        if self.store.fail == "closed":
            breaker = self.breaker
            with breaker._lock:
                core = breaker._core
                core.adopt(
                    State.FORCED_OPEN,
                    breaker._monotonic(),
                    reason="store_unavailable",
                    open_for=0.0,
                    failures=0,
                    successes=0,
                    failed_recoveries=core.failed_recoveries,
                    recovery_timeout=core.recovery_timeout,
                    opened_ago=0.0,
                    new_period=True,
                )
                moved = breaker._drain()
            if moved:
                breaker._publish()

    def went_online(self) -> None:
        self.live = True

    def _args(self, op: str, *extra: Arg) -> list[Arg]:
        return [self.store.now_arg(), self._settings, self.store._generation, op, *extra]
