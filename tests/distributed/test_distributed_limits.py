"""Shared rate limiters and retry budgets on a real redis-server (stores stand for processes;
time is a FakeClock the scripts use too)."""

from __future__ import annotations

import asyncio

import pytest
import redis

from distributed.conftest import MakeStore
from distributed.support import until
from stalwart import ConfigError, RateLimitedError, RateLimiter, RetryBudget, retry
from stalwart.testing import FakeClock


def test_one_limit_across_processes(make_store: MakeStore, clock: FakeClock) -> None:
    a, b = (
        RateLimiter("10/second", store=make_store(clock=clock), name="api", clock=clock)
        for _ in range(2)
    )
    granted = [a.try_acquire() for _ in range(6)] + [b.try_acquire() for _ in range(6)]
    assert granted.count(True) == 10  # the burst, shared: not 10 each
    assert granted[-2:] == [False, False]
    assert b.retry_in() == pytest.approx(0.1)
    assert a.remaining == 0
    clock.advance(0.1)
    assert b.try_acquire()
    assert not a.try_acquire()
    clock.advance(1.0)
    assert a.remaining == 10


def test_a_wait_is_a_reservation_every_process_respects(
    make_store: MakeStore, clock: FakeClock
) -> None:
    a, b = (
        RateLimiter("2/second", burst=1, store=make_store(clock=clock), name="w", clock=clock)
        for _ in range(2)
    )
    assert a.try_acquire()
    a.acquire(timeout=1.0)  # reserves the token due in 0.5 s, and sleeps for it
    assert clock.sleeps == [pytest.approx(0.5)]
    with pytest.raises(RateLimitedError) as caught:
        b.acquire(timeout=0.1)
    assert caught.value.retry_in == pytest.approx(0.5)  # behind a's reservation


def test_async_acquire_is_shared_too(make_store: MakeStore, clock: FakeClock) -> None:
    limiter = RateLimiter("3/minute", store=make_store(clock=clock), name="aio", clock=clock)
    other = RateLimiter("3/minute", store=make_store(clock=clock), name="aio", clock=clock)

    async def main() -> None:
        for _ in range(3):
            await limiter.aacquire()
        with pytest.raises(RateLimitedError):
            await other.aacquire()

        @other
        async def limited() -> str:
            return "ran"

        clock.advance(20)
        assert await limited() == "ran"

    asyncio.run(main())


def test_a_shared_budget_is_funded_by_every_process(
    make_store: MakeStore, clock: FakeClock
) -> None:
    settings = {"percent_can_retry": 0.1, "min_retries_per_second": 0.0, "ttl": 10.0}
    a, b = (
        RetryBudget(store=make_store(clock=clock), name="pay", clock=clock, **settings)
        for _ in range(2)
    )
    for _ in range(30):
        a.deposit()
    until(lambda: b.balance == pytest.approx(3.0), "a's 30 calls fund 3 retries for b")
    assert [b.try_withdraw() for _ in range(4)] == [True, True, True, False]
    assert a.balance == pytest.approx(0.0)  # and a sees them spent


def test_retry_stops_when_the_shared_budget_is_spent(
    make_store: MakeStore, clock: FakeClock
) -> None:
    budget = RetryBudget(
        store=make_store(clock=clock),
        name="flaky",
        percent_can_retry=0.0,
        min_retries_per_second=0.2,  # a reserve of 2 retries over 10 s
        clock=clock,
    )
    attempts = 0

    @retry(on=OSError, max_attempts=10, budget=budget, clock=clock)
    def flaky() -> None:
        nonlocal attempts
        attempts += 1
        raise OSError("down")

    with pytest.raises(OSError, match="down"):
        flaky()
    assert attempts == 3  # the first try and the 2 retries the budget had


def test_shared_limits_need_a_name(make_store: MakeStore) -> None:
    store = make_store()
    with pytest.raises(ConfigError, match="name") as caught:
        RateLimiter("1/second", store=store)
    assert caught.value.field == "name"
    with pytest.raises(ConfigError, match="name"):
        RetryBudget(store=store)
    with pytest.raises(ConfigError, match="store"):
        RateLimiter("1/second", store=object(), name="x")  # type: ignore[arg-type]


def test_permits_taken_in_batches_keep_the_shared_limit(
    make_store: MakeStore, clock: FakeClock, client: redis.Redis
) -> None:
    a = RateLimiter(
        "10/second", store=make_store(clock=clock, permit_batch=5), name="batched", clock=clock
    )
    b = RateLimiter("10/second", store=make_store(clock=clock), name="batched", clock=clock)
    client.config_resetstat()
    assert all(a.try_acquire() for _ in range(5))  # one round trip took 5 permits
    assert commands(client, "evalsha") == 1
    assert [b.try_acquire() for _ in range(6)] == [True] * 5 + [False]  # 5 left for b
    assert not a.try_acquire()  # a's pocket is empty and so is the bucket
    clock.advance(0.1)
    assert a.try_acquire()  # one token earned: taken alone, nothing else was free
    clock.advance(0.5)
    assert a.try_acquire()  # five earned: a takes them all, keeps 4
    clock.advance(0.5)  # longer than the pocket may be held (5 x 0.1 s)
    assert b.remaining == 5  # the 5 earned meanwhile; a's 4 stale ones are not counted
    assert a.try_acquire()  # a dropped the stale 4 and took fresh ones


def commands(client: redis.Redis, name: str) -> int:
    stats = client.info("commandstats")
    return int(stats.get(f"cmdstat_{name}", {}).get("calls", 0))


def test_permit_batch_must_be_a_whole_number(make_store: MakeStore) -> None:
    with pytest.raises(ConfigError) as caught:
        make_store(permit_batch=0)
    assert caught.value.field == "permit_batch"
