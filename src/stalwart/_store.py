"""The state-store seam: where a breaker, a rate limiter and a retry budget keep their state.

Without a store (``store=None``, the default) each keeps it in memory, in its own core.
With one (``stalwart.redis.RedisStore``), the state is shared by every process using the
same store and name. A store hands each strategy the piece it asks for:

* a breaker gets a :class:`SharedBreaker`: the breaker's own core becomes a replica of the
  shared state, kept current by the store, and the calls it admits report to the link;
* a rate limiter gets a ``RateCore`` (the same protocol as the local algorithms);
* a retry budget gets a :class:`BudgetState` (the same protocol as ``BudgetCore``).

The protocols are what a store must provide; none of them raises into the caller when the
store itself fails: that is the store's job to absorb (see docs/distributed.md).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol, runtime_checkable

from ._errors import ConfigError

if TYPE_CHECKING:
    from ._breaker import CircuitBreaker
    from ._ratelimit import RateCore, RateLimiterConfig

__all__ = ("BudgetState", "SharedBreaker", "StateStore", "check_store")


class SharedBreaker(Protocol):
    """What a breaker asks of its shared state (one link per breaker object)."""

    live: bool
    """True while the shared state is reachable and mirrored; False: the breaker decides
    alone on its local state (the store's ``fail`` mode says how)."""
    probes_in_flight: int

    def acquire(self, now: float) -> int | float | None:
        """The half-open question, asked of the shared state: a ticket (int) if this call
        may probe (or the breaker has closed meanwhile), else the rejection's retry_in."""
        ...

    def outcome(
        self, ticket: int, now: float, kind: str, duration: float, retry_after: float | None
    ) -> None:
        """How an admitted call ended: ``kind`` is "success", "failure" or "ignored"."""
        ...

    def control(self, action: str) -> bool:
        """An operator's ``reset``/``force_open``/``disable`` for every process; False if
        the shared state could not be reached (the caller then acts locally)."""
        ...

    def describe(self) -> str: ...


class BudgetState(Protocol):
    """A retry budget's counts (``stalwart._retry.BudgetCore`` is the local one)."""

    def deposit(self, now: float, calls: int = 1) -> None: ...

    def try_withdraw(self, now: float) -> bool: ...

    def balance(self, now: float) -> float: ...

    def slice_end(self, now: float) -> float: ...


@runtime_checkable
class StateStore(Protocol):
    """Where strategies keep state that several processes share."""

    def link_breaker(self, breaker: CircuitBreaker) -> SharedBreaker: ...

    def rate_core(self, name: str, config: RateLimiterConfig) -> RateCore: ...

    def budget_core(
        self, name: str, percent_can_retry: float, min_retries_per_second: float, ttl: float
    ) -> BudgetState: ...


def check_store(store: object, named: str | None) -> StateStore | None:
    """``store`` validated: None or a StateStore; a shared strategy needs its own name."""
    if store is None:
        return None
    if not isinstance(store, StateStore):
        raise ConfigError(
            "store", f"must be a state store such as stalwart.redis.RedisStore, got {store!r}"
        )
    if named is None:
        raise ConfigError(
            "name",
            "is required with store=: processes find their shared state by name "
            "(name='payments', say)",
        )
    return store
