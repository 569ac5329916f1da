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

__all__ = ("POCKET_HOLD", "RedisBudget", "RedisRate")

POCKET_HOLD = 0.1
"""Seconds a process may keep batched limiter tokens at least (see RedisRate)."""
_NEVER = -1e300  # a wait allowed that no reservation meets: read without taking


class RedisRate:
    """GCRA on one Redis key: the limit holds across every process using the name.

    Both algorithms of the local limiter admit the same calls; in Redis both are kept as
    GCRA's single timestamp, so one key and one round trip serve either.

    With the store's ``permit_batch`` above 1, an acquire that finds tokens free takes up
    to that many at once and keeps the rest in a local pocket for the next calls, for at
    most ``POCKET_HOLD`` seconds or the time the bucket needs to earn them back, whichever
    is longer. Tokens left in the pocket are dropped, never returned. A pocket holds at
    most ``permit_batch - 1`` tokens that Redis has already counted, so within any window
    a process admits at most that many calls more than the window's own tokens.
    """

    def __init__(self, store: RedisStore, name: str, config: RateLimiterConfig) -> None:
        self.store = store
        self.key = store.key(name, "rate")
        rate = config.rate
        self._interval = 1000.0 / rate.per_second  # ms per token
        self._tolerance = config.effective_burst * self._interval
        self._local: RateCore = config.make_core()
        self._batch = min(store.permit_batch, config.effective_burst)
        self._hold = max(POCKET_HOLD, self._batch * self._interval / 1000.0)
        self._lock = threading.Lock()  # the pocket
        self._pocket = 0
        self._pocket_until = -math.inf

    def _ask(self, cost: int, within: float, batch: int = 0) -> tuple[float, int] | None:
        """(seconds to wait for ``cost`` tokens, tokens taken), or None if Redis is out."""
        store = self.store
        args: list[Arg] = [
            store.now_arg(),
            repr(self._interval),
            repr(self._tolerance),
            cost,
            repr(within),
            max(batch, cost),
        ]
        reply = store.run("rate limit", lambda: store.gcra_call([self.key], args))
        if reply is None:
            return None
        wait, taken = str(reply).split()
        return float(wait) / 1000.0, int(taken)

    def reserve(self, now: float, cost: float, within: float) -> float:
        need = int(cost)
        if self._batch > 1:
            with self._lock:
                if self._pocket >= need and now < self._pocket_until:
                    self._pocket -= need
                    return 0.0
                self._pocket = 0  # too old or too few: dropped, never given back
        answer = self._ask(need, within * 1000.0, self._batch)
        if answer is None:
            if self.store.fail == "closed":
                return math.inf
            return self._local.reserve(now, cost, within)
        wait, taken = answer
        if taken > need:
            with self._lock:
                self._pocket += taken - need
                self._pocket_until = now + self._hold
        return wait if wait > 0.0 else 0.0

    def wait_time(self, now: float, cost: float) -> float:
        if self._pocket >= cost and now < self._pocket_until:
            return 0.0
        answer = self._ask(int(cost), _NEVER)
        if answer is None:
            return math.inf if self.store.fail == "closed" else self._local.wait_time(now, cost)
        return max(0.0, answer[0])

    def available(self, now: float) -> float:
        answer = self._ask(0, _NEVER)
        if answer is None:
            return 0.0 if self.store.fail == "closed" else self._local.available(now)
        pocket = self._pocket if now < self._pocket_until else 0
        return -answer[0] * 1000.0 / self._interval + pocket

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
