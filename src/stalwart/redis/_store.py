"""RedisStore: one Redis connection set, two background threads, and the links to it.

The store owns its connections: it opens its own sync connections with the address and
credentials of the client it is given (sync or ``redis.asyncio``), with short timeouts and
no retries of its own, so no Redis call it makes can take longer than ``timeout`` (twice
for a connect then a read). Nothing it does raises into a caller: a Redis error marks the
store unavailable, every strategy goes on with local state (``fail="open"``) or refuses
(``fail="closed"``), and a background thread pings until Redis answers, then resynchronises.

Threads: ``stalwart-redis-io`` flushes the outcomes breakers gather, polls every shared
breaker each ``sync_interval`` and watches for recovery; ``stalwart-redis-sub`` listens on
the namespace's channel, where every state change is published by the script that made it.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
import uuid
import weakref
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from .._clock import Clock
from .._errors import ConfigError
from .._events import Event, EventHub
from .._strategy import Observable
from .._validate import one_of, positive, whole
from . import _scripts

if TYPE_CHECKING:
    import redis

    from .._breaker import CircuitBreaker
    from .._ratelimit import RateCore, RateLimiterConfig
    from .._store import BudgetState, SharedBreaker
    from ..health._model import CheckResult

__all__ = (
    "DEFAULT_FAIL",
    "DEFAULT_KEY_TTL",
    "DEFAULT_NAMESPACE",
    "DEFAULT_SYNC_INTERVAL",
    "DEFAULT_TIMEOUT",
    "Arg",
    "FailMode",
    "Job",
    "RedisStore",
    "StoreRecovered",
    "StoreUnavailable",
)

_log = logging.getLogger("stalwart.redis")

FailMode = Literal["open", "closed"]
DEFAULT_NAMESPACE = "default"
DEFAULT_TIMEOUT = 0.05
"""Seconds any one Redis call may take (connect, then reply) before Redis counts as down."""
DEFAULT_SYNC_INTERVAL = 1.0
"""Seconds between polls of every shared breaker: the fallback when pub/sub is lost."""
DEFAULT_FAIL: FailMode = "open"
"""While Redis is unreachable: "open" goes on with each process's local state; "closed"
refuses every call a shared strategy guards."""
DEFAULT_KEY_TTL = 7 * 86400.0
"""Seconds an untouched key lives: a breaker nobody has used for a week is forgotten."""
FLUSH_INTERVAL = 0.05
"""Seconds by which outcomes that change nothing at once (successes) are sent."""
RETRY_MIN, RETRY_MAX = 0.1, 2.0
"""Seconds between pings while Redis is unreachable (doubling, capped)."""
Arg = str | int | float
"""What a script argument may be."""
Job = tuple[Any, list[str], list[Arg]]
"""A script call to make in the background: (script, keys, args)."""
_FORBIDDEN = "{}"  # hash-tag braces: a name containing one would break the key's slot


@dataclass(frozen=True, slots=True, kw_only=True)
class StoreUnavailable(Event):
    """Redis could not be reached: shared strategies run on local state (or refuse)."""

    error: str
    fail: str


@dataclass(frozen=True, slots=True, kw_only=True)
class StoreRecovered(Event):
    """Redis answers again; every shared breaker has been resynchronised."""

    down_for: float


def _own_client(client: object, timeout: float) -> tuple[redis.Redis, redis.Redis, str]:
    """Sync clients for our calls (short timeouts) and for pub/sub, plus a safe address."""
    import redis
    import redis.asyncio
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    if not isinstance(client, redis.Redis | redis.asyncio.Redis):
        raise ConfigError(
            "client",
            f"must be a redis.Redis or redis.asyncio.Redis client, got {client!r}",
        )
    pool = client.connection_pool
    given = pool.connection_kwargs
    kind = pool.connection_class.__name__
    if kind not in ("Connection", "SSLConnection", "UnixDomainSocketConnection"):
        raise ConfigError(
            "client",
            f"connects through {kind}, which the store cannot reopen with its own timeouts "
            "(Sentinel and custom connection classes are not supported yet): give a "
            "client for the Redis primary's address",
        )
    settings: dict[str, Any] = {
        key: given[key]
        for key in ("db", "username", "password", "client_name", "protocol")
        if given.get(key) is not None
    }
    provider = given.get("credential_provider")
    if provider is not None and hasattr(provider, "get_credentials"):
        settings["credential_provider"] = provider
    if kind == "UnixDomainSocketConnection":
        settings["unix_socket_path"] = given["path"]
        where = f"unix://{given['path']}"
    else:
        settings["host"], settings["port"] = given.get("host", "localhost"), given.get("port", 6379)
        where = f"{settings['host']}:{settings['port']}"
        if kind == "SSLConnection":
            settings["ssl"] = True
            settings.update({k: v for k, v in given.items() if k.startswith("ssl_")})
    where += f"/{given.get('db', 0)}"
    common = dict(settings, decode_responses=True, retry=Retry(NoBackoff(), 0))
    ours = redis.Redis(**common, socket_timeout=timeout, socket_connect_timeout=timeout)
    listener = redis.Redis(
        **common, socket_timeout=max(5.0, timeout), socket_connect_timeout=max(1.0, timeout)
    )
    return ours, listener, where


class RedisStore(Observable):
    """Shared state for breakers, rate limiters and retry budgets, kept in Redis.

    ``RedisStore(redis.Redis.from_url(url), namespace="orders")``; then pass ``store=`` to
    :class:`~stalwart.CircuitBreaker`, :class:`~stalwart.RateLimiter` or
    :class:`~stalwart.RetryBudget` with the same name in every process. See
    docs/distributed.md for what each process sees and when.
    """

    def __init__(
        self,
        client: object,
        *,
        namespace: str = DEFAULT_NAMESPACE,
        timeout: float = DEFAULT_TIMEOUT,
        sync_interval: float = DEFAULT_SYNC_INTERVAL,
        fail: FailMode = DEFAULT_FAIL,
        key_ttl: float = DEFAULT_KEY_TTL,
        permit_batch: int = 1,
        clock: Clock | None = None,
    ) -> None:
        check_name("namespace", namespace)
        whole("permit_batch", permit_batch)
        positive("timeout", timeout)
        positive("sync_interval", sync_interval)
        one_of("fail", fail, ("open", "closed"))
        positive("key_ttl", key_ttl)
        self.namespace = namespace
        self.timeout = timeout
        self.sync_interval = sync_interval
        self.fail: FailMode = fail
        self.key_ttl = key_ttl
        self.permit_batch = permit_batch
        """Rate-limiter tokens each process takes from Redis at once (1: one per call)."""
        self._clock = clock
        self._redis, self._listener_client, self.address = _own_client(client, timeout)
        self.channel = f"stalwart:{namespace}:changes"
        self._generation = uuid.uuid4().hex[:12]
        self._breaker_script = self._redis.register_script(_scripts.BREAKER)
        self._gcra_script = self._redis.register_script(_scripts.GCRA)
        self._budget_script = self._redis.register_script(_scripts.BUDGET)
        self._hub = EventHub()
        self._lock = threading.Lock()
        self._links: dict[str, list[Any]] = {}
        self._budgets: list[Any] = []
        self._limiters = 0
        self._available = True
        self._down_since: float | None = None
        self.last_error: str | None = None
        self._wake = threading.Event()
        self._sync_requested = False
        self._urgent = False
        self._stop = threading.Event()
        self._pid: int | None = None
        self._threads: list[threading.Thread] = []
        _STORES.add(self)

    # -- public surface ------------------------------------------------------------

    @property
    def available(self) -> bool:
        """False while Redis cannot be reached (shared strategies run on local state)."""
        return self._available

    def health_check(self) -> Callable[[], CheckResult]:
        """A check for :class:`stalwart.health.HealthRegistry`: healthy while Redis
        answers; degraded while it does not and strategies run on local state
        (``fail="open"``); failing when they refuse instead (``fail="closed"``)."""
        from ..health._model import CheckResult

        def redis_state() -> CheckResult:
            with self._lock:
                breakers = sum(len(links) for links in self._links.values())
            details = {
                "address": self.address,
                "namespace": self.namespace,
                "breakers": breakers,
                "limiters": self._limiters,
                "budgets": len(self._budgets),
            }
            if self._available:
                return CheckResult.passed(**details)
            down = time.monotonic() - (self._down_since or time.monotonic())
            what = "running on local state" if self.fail == "open" else "refusing shared calls"
            error = f"Redis unreachable for {down:.1f} s ({self.last_error}); {what}"
            if self.fail == "open":
                return CheckResult.warned(error, **details)
            return CheckResult.failed(error, **details)

        redis_state.component_type = "datastore"  # type: ignore[attr-defined]
        return redis_state

    def describe(self) -> str:
        return f"redis {self.address} namespace {self.namespace!r}"

    def close(self) -> None:
        """Stop the background threads and close the store's connections."""
        self._stop.set()
        self._wake.set()
        # The I/O thread wakes at once; the listener notices within its 0.2 s read and
        # exits by itself (a daemon), so it is not waited for.
        io = self._threads[0] if self._threads else None
        if io is not None and io is not threading.current_thread():
            io.join(timeout=max(1.0, 2 * self.timeout + 0.5))
        self._threads = []
        self._redis.close()
        self._listener_client.close()

    def __enter__(self) -> RedisStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "available" if self._available else f"unavailable ({self.last_error})"
        return f"RedisStore({self.address!r}, namespace={self.namespace!r}, {state})"

    # -- the StateStore protocol ---------------------------------------------------

    def link_breaker(self, breaker: CircuitBreaker) -> SharedBreaker:
        from ._breaker import BreakerLink

        check_name("name", breaker.name)
        link = BreakerLink(self, breaker)
        with self._lock:
            self._links.setdefault(breaker.name, []).append(link)
        self._ensure_running()
        link.sync_now()
        return link

    def rate_core(self, name: str, config: RateLimiterConfig) -> RateCore:
        from ._limits import RedisRate

        check_name("name", name)
        self._limiters += 1
        return RedisRate(self, name, config)

    def budget_core(
        self, name: str, percent_can_retry: float, min_retries_per_second: float, ttl: float
    ) -> BudgetState:
        from ._limits import RedisBudget

        check_name("name", name)
        budget = RedisBudget(self, name, percent_can_retry, min_retries_per_second, ttl)
        with self._lock:
            self._budgets.append(budget)
        self._ensure_running()
        return budget

    # -- for the links ---------------------------------------------------------------

    def key(self, name: str, part: str) -> str:
        """``stalwart:{namespace:name}:part``: one hash tag, so one Cluster slot per name."""
        return f"stalwart:{{{self.namespace}:{name}}}:{part}"

    def now_arg(self) -> str:
        """The time the scripts use: the store clock's, or '' for Redis's own."""
        return "" if self._clock is None else repr(self._clock.time() * 1000.0)

    def run(self, what: str, call: Callable[[], Any]) -> Any:
        """``call()`` against Redis from a caller's thread, or None if Redis is (or just
        went) unreachable. Never raises a Redis error, never waits while Redis is down."""
        if not self._available:
            return None
        self._ensure_running()
        try:
            return call()
        except Exception as exc:
            self.lost(exc, what)
            return None

    def breaker_call(self, keys: Sequence[str], args: Sequence[Arg]) -> Any:
        return self._breaker_script(keys=keys, args=args)

    def gcra_call(self, keys: Sequence[str], args: Sequence[Arg]) -> Any:
        return self._gcra_script(keys=keys, args=args)

    def budget_call(self, keys: Sequence[str], args: Sequence[Arg]) -> Any:
        return self._budget_script(keys=keys, args=args)

    def poke(self, *, urgent: bool = True) -> None:
        """Ask the I/O thread to flush now; not ``urgent``: within FLUSH_INTERVAL, so that
        outcomes which change nothing at once (successes) travel in batches."""
        if urgent:
            self._urgent = True
        self._wake.set()

    def sync_soon(self) -> None:
        """Ask the I/O thread to poll every shared breaker now."""
        self._sync_requested = True
        self._wake.set()

    def lost(self, exc: BaseException, what: str) -> None:
        """Redis failed us: mark it unavailable and let every link fall back, once."""
        error = f"{type(exc).__name__}: {exc}"
        with self._lock:
            first = self._available
            self._available = False
            self.last_error = error
            if first:
                self._down_since = time.monotonic()
            links = [link for group in self._links.values() for link in group]
        if not first:
            return
        # Every pooled connection may be dead (a restarted server closed them all): start
        # afresh, or the first calls after recovery would each fail on a stale one.
        with contextlib.suppress(Exception):
            self._redis.connection_pool.disconnect()
        _log.warning(
            "Redis %s unreachable (%s during %s): shared state falls back to %s",
            self.address,
            error,
            what,
            "local state" if self.fail == "open" else "refusing calls",
        )
        for link in links:
            link.went_offline()
        self._emit(self._event(StoreUnavailable, error=error, fail=self.fail))
        self._wake.set()

    # -- background ------------------------------------------------------------------

    def _ensure_running(self) -> None:
        pid = os.getpid()
        if self._pid == pid or self._stop.is_set():
            return
        with self._lock:
            if self._pid == pid:
                return
            self._pid = pid
            self._threads = [
                threading.Thread(target=self._io, name="stalwart-redis-io", daemon=True),
                threading.Thread(target=self._listen, name="stalwart-redis-sub", daemon=True),
            ]
        for thread in self._threads:
            thread.start()

    def _all_links(self) -> list[Any]:
        with self._lock:
            return [link for group in self._links.values() for link in group]

    def _io(self) -> None:
        pause = RETRY_MIN
        next_sync = time.monotonic() + self.sync_interval
        while not self._stop.is_set():
            if not self._available:
                if self._stop.wait(pause):
                    return
                if self._recover():
                    pause = RETRY_MIN
                    next_sync = time.monotonic() + self.sync_interval
                else:
                    pause = min(pause * 2, RETRY_MAX)
                continue
            links = self._all_links()
            pending = any(link.pending for link in links) or any(
                budget.pending for budget in self._budgets
            )
            wait = FLUSH_INTERVAL if pending else max(0.0, next_sync - time.monotonic())
            woken = self._wake.wait(wait)
            self._wake.clear()
            gather_until = time.monotonic() + FLUSH_INTERVAL
            while woken and not (self._urgent or self._sync_requested or self._stop.is_set()):
                left = gather_until - time.monotonic()
                if left <= 0:
                    break
                self._wake.wait(left)
                self._wake.clear()
            self._urgent = False
            if self._stop.is_set():
                return
            try:
                self._flush(links)
                if self._sync_requested or time.monotonic() >= next_sync:
                    self._sync_requested = False
                    next_sync = time.monotonic() + self.sync_interval
                    self._sync(links)
            except Exception as exc:
                self.lost(exc, "background sync")

    def _flush(self, links: list[Any]) -> None:
        jobs: list[tuple[Any, Job]] = []  # (the link to adopt the reply, or None; the job)
        for link in links:
            jobs.extend((link, job) for job in link.take_flush())
        for budget in self._budgets:
            jobs.extend((None, job) for job in budget.take_flush())
        self._run(jobs)

    def _sync(self, links: list[Any]) -> None:
        if not links:
            self._redis.ping()
        self._run([(link, link.read_job()) for link in links])

    def _run(self, jobs: list[tuple[Any, Job]]) -> None:
        """Run script calls in one round trip and let each link adopt its reply."""
        if not jobs:
            return
        if len(jobs) == 1:
            # One script: called alone. A pipeline with scripts first asks SCRIPT EXISTS,
            # which would be a second round trip.
            script, keys, args = jobs[0][1]
            replies = [script(keys=keys, args=args)]
        else:
            pipe = self._redis.pipeline(transaction=False)
            for _, (script, keys, args) in jobs:
                script(keys=keys, args=args, client=pipe)
            replies = pipe.execute()
        for (link, _), reply in zip(jobs, replies, strict=True):
            if link is not None:
                link.adopt(reply)

    def _recover(self) -> bool:
        """Ping; if Redis answers, resynchronise every link and say so."""
        links = self._all_links()
        try:
            self._redis.ping()
            self._sync(links)
        except Exception as exc:
            self.last_error = f"{type(exc).__name__}: {exc}"
            return False
        with self._lock:
            self._available = True
            down = time.monotonic() - (self._down_since or time.monotonic())
            self._down_since = None
        for link in links:
            link.went_online()
        _log.info("Redis %s reachable again after %.1f s: shared state resumed", self.address, down)
        self._emit(self._event(StoreRecovered, down_for=down))
        return True

    def _listen(self) -> None:
        while not self._stop.is_set():
            if not self._available:
                self._stop.wait(RETRY_MIN)
                continue
            pubsub = self._listener_client.pubsub(ignore_subscribe_messages=True)
            try:
                pubsub.subscribe(self.channel)
                # A change may have been published before we subscribed: read once more.
                self.sync_soon()
                while self._available and not self._stop.is_set():
                    message = pubsub.get_message(timeout=0.2)
                    if message is not None and message.get("type") == "message":
                        self._deliver(message["data"])
            except Exception as exc:
                if not self._stop.is_set():
                    _log.debug("Redis subscription lost: %s", exc)
                    self._stop.wait(RETRY_MIN)
            finally:
                with contextlib.suppress(Exception):
                    pubsub.close()

    def _deliver(self, data: str) -> None:
        import json

        try:
            name = json.loads(data)["n"]
        except (ValueError, KeyError, TypeError):
            return
        with self._lock:
            links = list(self._links.get(name, ()))
        for link in links:
            link.adopt(data)

    def _emit(self, event: Event) -> None:
        try:
            self._hub.emit(event)
        except Exception:
            _log.exception("a listener of the Redis store failed")

    def _event(self, kind: type[Event], **fields: Any) -> Event:
        return kind(name=self.namespace, strategy="redis_store", at=time.monotonic(), **fields)


def check_name(field: str, value: object) -> str:
    """A namespace or strategy name usable in a key: a non-empty string without braces."""
    if not isinstance(value, str) or not value:
        raise ConfigError(field, f"must be a non-empty string, got {value!r}")
    bad = [ch for ch in value if ch in _FORBIDDEN or ch.isspace() or not ch.isprintable()]
    if bad:
        raise ConfigError(
            field,
            f"{value!r} contains {bad[0]!r}: names become Redis keys with a {{hash tag}}, "
            "so braces, spaces and control characters are not allowed",
        )
    return value


_STORES: weakref.WeakSet[RedisStore] = weakref.WeakSet()


def _after_fork() -> None:
    # Threads do not survive fork (gunicorn --preload, multiprocessing "fork"): the child
    # starts its own at first use; redis-py replaces the connections it inherited.
    for store in list(_STORES):
        store._pid = None
        store._threads = []
        store._wake = threading.Event()
        store._lock = threading.Lock()


os.register_at_fork(after_in_child=_after_fork)
