"""Shared rate limiter and retry budget cores: the local protocols, answered by Redis.

Each question is one script call (one round trip) on the caller's thread, bounded by the
store's ``timeout``. While Redis cannot be reached, the answer comes from a local core of
the same settings (``fail="open"``: each process then limits on its own, so N processes
may together let N times the rate through) or is a refusal (``fail="closed"``).
"""

from __future__ import annotations

import math
import threading
from typing import TYPE_CHECKING

from .._retry import BudgetCore

if TYPE_CHECKING:
    from .._ratelimit import RateCore, RateLimiterConfig
    from ._store import Arg, Job, RedisStore

__all__ = ("RedisBudget", "RedisRate")

_NEVER = -1e300  # a wait allowed that no reservation meets: read without taking


class RedisRate:
    """GCRA on one Redis key: the limit holds across every process using the name.

    Both algorithms of the local limiter admit the same calls; in Redis both are kept as
    GCRA's single timestamp, so one key and one round trip serve either."""

    def __init__(self, store: RedisStore, name: str, config: RateLimiterConfig) -> None:
        self.store = store
        self.key = store.key(name, "rate")
        rate = config.rate
        self._interval = 1000.0 / rate.per_second  # ms per token
        self._tolerance = config.effective_burst * self._interval
        self._local: RateCore = config.make_core()

    def _ask(self, cost: int, within: float) -> float | None:
        """Seconds to wait for ``cost`` tokens (taken if within ``within`` s), or None."""
        store = self.store
        args: list[Arg] = [
            store.now_arg(),
            repr(self._interval),
            repr(self._tolerance),
            cost,
            repr(within),
        ]
        reply = store.run("rate limit", lambda: store.gcra_call([self.key], args))
        return None if reply is None else float(reply) / 1000.0

    def reserve(self, now: float, cost: float, within: float) -> float:
        wait = self._ask(int(cost), within * 1000.0)
        if wait is None:
            if self.store.fail == "closed":
                return math.inf
            return self._local.reserve(now, cost, within)
        return wait if wait > 0.0 else 0.0

    def wait_time(self, now: float, cost: float) -> float:
        wait = self._ask(int(cost), _NEVER)
        if wait is None:
            return math.inf if self.store.fail == "closed" else self._local.wait_time(now, cost)
        return max(0.0, wait)

    def available(self, now: float) -> float:
        wait = self._ask(0, _NEVER)
        if wait is None:
            return 0.0 if self.store.fail == "closed" else self._local.available(now)
        return -wait * 1000.0 / self._interval

    def __repr__(self) -> str:
        return f"RedisRate({self.key!r})"


class RedisBudget:
    """Finagle's retry budget counted in Redis: every process's calls fund every
    process's retries. Deposits are gathered locally and sent in the background (or with
    the next withdrawal); a withdrawal is one round trip."""

    def __init__(
        self,
        store: RedisStore,
        name: str,
        percent_can_retry: float,
        min_retries_per_second: float,
        ttl: float,
    ) -> None:
        self.store = store
        self.key = store.key(name, "budget")
        self._width = ttl * 100.0  # ms per slice: 10 slices per ttl
        self._percent = repr(percent_can_retry)
        self._reserve = repr(min_retries_per_second * ttl)
        # Kept current with every deposit, so a fallback starts with a realistic balance.
        self._local = BudgetCore(percent_can_retry, min_retries_per_second, ttl)
        self._lock = threading.Lock()
        self._unsent = 0

    @property
    def pending(self) -> bool:
        return self._unsent > 0

    def deposit(self, now: float, calls: int = 1) -> None:
        with self._lock:
            self._local.deposit(now, calls)
            first = not self._unsent
            self._unsent += calls
        if first:
            self.store.poke(urgent=False)

    def try_withdraw(self, now: float) -> bool:
        reply = self._ask(withdraw=True)
        if reply is None:
            with self._lock:
                return self.store.fail == "open" and self._local.try_withdraw(now)
        with self._lock:
            self._local.try_withdraw(now)  # the local twin spends too, to stay comparable
        return reply[0]

    def balance(self, now: float) -> float:
        reply = self._ask(withdraw=False)
        if reply is None:
            return 0.0 if self.store.fail == "closed" else self._local.balance(now)
        return reply[1]

    def slice_end(self, now: float) -> float:
        return self._local.slice_end(now)

    def take_flush(self) -> list[Job]:
        """The gathered deposits, for the store's background flush."""
        calls = self._take_unsent()
        if not calls:
            return []
        return [(self.store._budget_script, [self.key], self._args(calls, False))]

    def _take_unsent(self) -> int:
        with self._lock:
            calls, self._unsent = self._unsent, 0
        return calls

    def _ask(self, *, withdraw: bool) -> tuple[bool, float] | None:
        store = self.store
        calls = self._take_unsent()
        reply = store.run(
            "retry budget", lambda: store.budget_call([self.key], self._args(calls, withdraw))
        )
        if reply is None:
            return None
        granted, balance = str(reply).split()
        return granted == "1", float(balance)

    def _args(self, calls: int, withdraw: bool) -> list[Arg]:
        return [
            self.store.now_arg(),
            repr(self._width),
            self._percent,
            self._reserve,
            calls,
            "1" if withdraw else "0",
        ]

    def __repr__(self) -> str:
        return f"RedisBudget({self.key!r})"
