"""Shared state on Redis: breakers, rate limiters and retry budgets for every process.

``store = RedisStore(redis.Redis.from_url(url), namespace="orders")``, then
``CircuitBreaker("payments", store=store)``, ``RateLimiter("10/second", store=store,
name="api")`` or ``RetryBudget(store=store, name="payments")`` in each process. Every
state change is one atomic Lua script and is published to every process; a breaker's
closed path never waits on Redis; and when Redis itself fails, nothing raises into the
caller: strategies go on with local state (or refuse, ``fail="closed"``) until it
returns. See docs/distributed.md.
"""

from ._store import RedisStore as RedisStore
from ._store import StoreRecovered as StoreRecovered
from ._store import StoreUnavailable as StoreUnavailable

__all__ = (
    "RedisStore",
    "StoreRecovered",
    "StoreUnavailable",
)
