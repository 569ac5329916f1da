"""When Redis itself fails: unreachable, wanting a password, blackholed, killed, restarted.

No Redis error may reach a caller, no call may wait longer than the store's bound, each
strategy falls back to local state (or refuses, ``fail="closed"``), the store says so in
its health check and its events, and everything resynchronises when Redis is back.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
import redis

from distributed.support import Down, failing, until, working
from servers import free_port, running_redis
from stalwart import (
    CircuitBreaker,
    CircuitOpenError,
    ConfigError,
    RateLimitedError,
    RateLimiter,
    RetryBudget,
    State,
)
from stalwart.chaos import ProxyThread
from stalwart.health import HealthStatus
from stalwart.redis import RedisStore, StoreRecovered, StoreUnavailable

TIMEOUT = 0.05
BOUND = 2 * TIMEOUT + 0.15
"""The longest any call may take while Redis misbehaves: a connect and a reply, each cut
at the store's timeout, plus scheduling slack for a loaded 2-core machine."""
LOADED_TIMEOUT = 0.1
LOADED_BOUND = 2 * LOADED_TIMEOUT + 0.15


@pytest.fixture
def chaos() -> Iterator[ProxyThread]:
    with ProxyThread() as runner:
        yield runner


@pytest.fixture
def nowhere() -> Iterator[redis.Redis]:
    """A client for a loopback port nothing listens on (a wrong URL)."""
    client = redis.Redis.from_url(f"redis://127.0.0.1:{free_port()}/0")
    yield client
    client.close()


def status(store: RedisStore) -> tuple[HealthStatus, str | None]:
    result = store.health_check()()
    return result.status, result.error


def test_an_unreachable_redis_never_hangs_and_the_breaker_runs_locally(
    nowhere: redis.Redis,
) -> None:
    start = time.monotonic()
    with RedisStore(nowhere, namespace="down", timeout=TIMEOUT) as store:
        heard: list[Any] = []
        store.add_listener(heard.append)
        breaker = CircuitBreaker("db", failure_threshold=2, store=store)
        assert time.monotonic() - start < BOUND
        assert not store.available
        assert breaker.shared is not None
        assert "local" in breaker.shared
        assert [type(e) for e in heard] == [StoreUnavailable]
        assert breaker.call(working) == "ok"
        for _ in range(2):
            with pytest.raises(Down):
                breaker.call(failing)
        assert breaker.state is State.OPEN  # protected all the same, by this process alone
        health, error = status(store)
        assert health is HealthStatus.DEGRADED
        assert error is not None
        assert "unreachable" in error
        assert "local state" in error


def test_fail_closed_refuses_while_redis_is_unreachable(nowhere: redis.Redis) -> None:
    with RedisStore(nowhere, namespace="down", timeout=TIMEOUT, fail="closed") as store:
        breaker = CircuitBreaker("db", store=store)
        with pytest.raises(CircuitOpenError):
            breaker.call(working)
        assert breaker.snapshot().state is State.FORCED_OPEN
        limiter = RateLimiter("5/second", store=store, name="api")
        assert not limiter.try_acquire()
        with pytest.raises(RateLimitedError) as caught:
            limiter.acquire()
        assert caught.value.retry_in is None
        assert not RetryBudget(store=store, name="b").try_withdraw()
        assert status(store)[0] is HealthStatus.UNHEALTHY


def test_fail_open_limits_and_budgets_go_on_locally(nowhere: redis.Redis) -> None:
    with RedisStore(nowhere, namespace="down", timeout=TIMEOUT) as store:
        limiter = RateLimiter("3/minute", store=store, name="api")
        assert [limiter.try_acquire() for _ in range(4)] == [True, True, True, False]
        budget = RetryBudget(store=store, name="b")
        assert budget.try_withdraw()  # the local reserve


def test_a_redis_that_wants_a_password_shows_as_degraded() -> None:
    with running_redis("--requirepass", "s3cret") as server:
        without = redis.Redis(host=server.host, port=server.port)
        with RedisStore(without, namespace="auth", timeout=0.5) as store:
            breaker = CircuitBreaker("x", store=store)
            assert breaker.call(working) == "ok"
            health, error = status(store)
            assert health is HealthStatus.DEGRADED
            assert error is not None
            assert "Authentication" in error
        good = redis.Redis(host=server.host, port=server.port, password="s3cret")
        with RedisStore(good, namespace="auth", timeout=0.5) as store:
            CircuitBreaker("x", store=store).force_open()
            assert store.available
            assert good.hget("stalwart:{auth:x}:state", "st") == b"forced_open"


@pytest.mark.parametrize(
    ("namespace", "problem"),
    [("or{ders}", "'{'"), ("", "non-empty"), ("two words", "' '")],
)
def test_a_namespace_that_would_break_the_key_slot_is_refused(
    nowhere: redis.Redis, namespace: str, problem: str
) -> None:
    with pytest.raises(ConfigError, match=problem) as caught:
        RedisStore(nowhere, namespace=namespace)
    assert caught.value.field == "namespace"


def test_a_breaker_name_with_braces_is_refused(nowhere: redis.Redis) -> None:
    with RedisStore(nowhere, namespace="n", timeout=TIMEOUT) as store:
        with pytest.raises(ConfigError, match="hash tag") as caught:
            CircuitBreaker("pay{ments}", store=store)
        assert caught.value.field == "name"


def test_a_client_that_is_not_redis_is_refused() -> None:
    with pytest.raises(ConfigError, match=r"redis\.Redis") as caught:
        RedisStore("redis://127.0.0.1:6379")
    assert caught.value.field == "client"


class Load:
    """Threads calling a shared breaker, limiter and budget until stopped, timing every
    call and keeping any exception that is not the caller's own or a rejection."""

    def __init__(self, breaker: CircuitBreaker, limiter: RateLimiter, budget: RetryBudget):
        self.calls: list[tuple[str, Any]] = [
            ("breaker", lambda: breaker.call(working)),
            ("limiter", limiter.try_acquire),
            ("deposit", budget.deposit),
            ("withdraw", budget.try_withdraw),
        ]
        self.worst: dict[str, float] = dict.fromkeys((name for name, _ in self.calls), 0.0)
        self.errors: list[BaseException] = []
        self.count = 0
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._run, daemon=True) for _ in range(4)]

    def _run(self) -> None:
        deadline = time.monotonic() + 60  # bounded, whatever happens to the test
        while not self._stop.is_set() and time.monotonic() < deadline:
            for name, call in self.calls:
                start = time.perf_counter()
                try:
                    call()
                except CircuitOpenError:
                    pass
                except BaseException as exc:
                    self.errors.append(exc)
                took = time.perf_counter() - start
                if took > self.worst[name]:
                    self.worst[name] = took
                self.count += 1
            time.sleep(0.001)

    def more(self, calls: int = 400) -> None:
        """Wait until the threads have made ``calls`` more calls (in the current phase)."""
        start = self.count
        until(lambda: self.count >= start + calls, f"{calls} more calls under load")

    def __enter__(self) -> Load:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(5)


def test_redis_blackholed_killed_and_restarted_mid_load(chaos: ProxyThread) -> None:
    port = free_port()
    proxy = chaos.add(("127.0.0.1", port))
    heard: list[Any] = []
    client = redis.Redis(host=proxy.address[0], port=proxy.address[1])
    # A longer timeout than elsewhere: the chaos proxy runs in this process, and four
    # threads of load must not starve it past the timeout (a flap, not what is tested).
    store = RedisStore(client, namespace="faults", timeout=LOADED_TIMEOUT, sync_interval=0.1)
    store.add_listener(heard.append)
    with running_redis(port=port):
        breaker = CircuitBreaker("dep", store=store)
        limiter = RateLimiter("100000/second", store=store, name="lim")
        budget = RetryBudget(store=store, name="bud")
        with Load(breaker, limiter, budget) as blackholed:
            blackholed.more()
            assert store.available
            proxy.set(blackhole=True)  # accepts, never answers
            until(lambda: not store.available, "the blackhole noticed")
            blackholed.more()
            proxy.clear()
            until(lambda: store.available, "back after the blackhole")
            blackholed.more()
    # Killed: from here connections are refused, until it starts again on the same port.
    with Load(breaker, limiter, budget) as killed:
        until(lambda: not store.available, "the dead server noticed")
        killed.more()
        with running_redis(port=port) as again:
            until(lambda: store.available, "back after the restart")
            # State resynchronises: a change made by another process (not through the
            # proxy) reaches this one.
            direct = redis.Redis(host=again.host, port=port)
            with RedisStore(direct, namespace="faults") as other:
                CircuitBreaker("dep", store=other).force_open()
                until(lambda: breaker.state is State.FORCED_OPEN, "a change after restart")
                CircuitBreaker("dep", store=other).reset()
                until(lambda: breaker.state is State.CLOSED, "and its reset")
            killed.more()
            killed.__exit__()  # before this server stops: that would be one more outage
            store.close()
    for run in (blackholed, killed):
        assert run.errors == []
        assert run.count > 100
        assert max(run.worst.values()) < LOADED_BOUND, run.worst
    kinds = [type(e) for e in heard]
    # Two outages were made; every outage seen ended in a recovery. (A loaded machine may
    # add a flap: a reply later than the timeout is a slow Redis, and counts as down.)
    assert kinds.count(StoreUnavailable) >= 2
    assert kinds == [StoreUnavailable, StoreRecovered] * (len(kinds) // 2)


def test_a_sentinel_client_is_refused_with_the_reason() -> None:
    from redis.sentinel import Sentinel

    client = Sentinel([("127.0.0.1", free_port())]).master_for("primary")
    with pytest.raises(ConfigError, match="Sentinel") as caught:
        RedisStore(client)
    assert caught.value.field == "client"


def test_a_slow_redis_counts_as_down_past_the_timeout_and_as_up_within_it(
    chaos: ProxyThread, redis_server: Any
) -> None:
    proxy = chaos.add((redis_server.host, redis_server.port))
    client = redis.Redis(host=proxy.address[0], port=proxy.address[1])
    with RedisStore(client, namespace="slow", timeout=TIMEOUT) as store:
        limiter = RateLimiter("1000/second", store=store, name="api")
        assert limiter.try_acquire()
        proxy.set(latency=4 * TIMEOUT)  # every reply comes after the store's timeout
        start = time.perf_counter()
        assert limiter.try_acquire()  # answered locally, after one timeout at most
        assert time.perf_counter() - start < BOUND
        assert not store.available
        proxy.set(latency=TIMEOUT / 5)  # slow, but within the timeout
        until(lambda: store.available, "a slow but answering Redis is used again")
        assert limiter.try_acquire()
        assert store.available
