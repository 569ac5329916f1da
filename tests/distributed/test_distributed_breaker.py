"""Shared breakers on a real redis-server: several stores in one test stand for several
processes (each store has its own connections and threads, as a process would).

Timing logic runs on a FakeClock handed to both the stores (the scripts then use its time,
not Redis's) and the breakers; only background I/O is waited for, with ``until``.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
import redis
import redis.asyncio as aioredis
from redis.cluster import key_slot

from distributed.conftest import MakeStore
from distributed.support import Down, failing, until, working
from servers import RedisServer
from stalwart import CircuitBreaker, CircuitOpenError, State, circuit_breaker
from stalwart.events import StateTransition
from stalwart.testing import FakeClock

OPEN, CLOSED, HALF_OPEN = State.OPEN, State.CLOSED, State.HALF_OPEN


def fail(breaker: CircuitBreaker, times: int = 1) -> None:
    for _ in range(times):
        with pytest.raises(Down):
            breaker.call(failing)


def shared_record(client: redis.Redis, namespace: str, name: str) -> dict[str, str]:
    raw = client.hgetall(f"stalwart:{{{namespace}:{name}}}:state")
    return {k.decode(): v.decode() for k, v in raw.items()}


def test_failures_in_every_process_add_up_to_one_threshold(
    make_store: MakeStore, clock: FakeClock, client: redis.Redis, namespace: str
) -> None:
    breakers = [
        CircuitBreaker("payments", failure_threshold=5, store=make_store(clock=clock), clock=clock)
        for _ in range(3)
    ]
    fail(breakers[0], 2)
    fail(breakers[1], 2)
    until(lambda: shared_record(client, namespace, "payments").get("fc") == "4", "4 counted")
    assert [b.state for b in breakers] == [CLOSED] * 3  # 4 in total: not yet
    fail(breakers[2])  # the fifth, from a third process
    until(lambda: all(b.state is OPEN for b in breakers), "every process sees it open")
    for breaker in breakers:
        with pytest.raises(CircuitOpenError) as caught:
            breaker.call(working)
        assert caught.value.retry_in == pytest.approx(30.0)


def test_a_success_anywhere_resets_the_consecutive_count(
    make_store: MakeStore, clock: FakeClock, client: redis.Redis, namespace: str
) -> None:
    a, b = (
        CircuitBreaker(
            "db",
            failure_threshold=5,
            store=make_store(clock=clock, sync_interval=0.05),
            clock=clock,
        )
        for _ in range(2)
    )
    fail(a, 4)
    until(lambda: b.snapshot().failure_count == 4, "the count reaches the other process")
    assert b.call(working) == "ok"
    until(lambda: a.snapshot().failure_count == 0, "the success resets it everywhere")
    fail(a, 4)
    until(lambda: shared_record(client, namespace, "db")["fc"] == "4", "4 counted again")
    assert a.state is CLOSED
    assert b.state is CLOSED


def test_half_open_admits_exactly_half_open_max_calls_across_processes(
    make_store: MakeStore, clock: FakeClock
) -> None:
    breakers = [
        CircuitBreaker(
            "search",
            failure_threshold=1,
            recovery_timeout=10,
            half_open_max_calls=2,
            success_threshold=2,
            store=make_store(clock=clock),
            clock=clock,
        )
        for _ in range(3)
    ]
    fail(breakers[0])
    until(lambda: all(b.state is OPEN for b in breakers), "open everywhere")
    clock.advance(10)
    entered: list[CircuitBreaker] = []
    refused, retry_ins = 0, set()
    for _ in range(4):  # 12 attempts from 3 processes, for 2 slots
        for breaker in breakers:
            try:
                breaker.__enter__()
            except CircuitOpenError as exc:
                refused += 1
                retry_ins.add(exc.retry_in)
            else:
                entered.append(breaker)
    assert len(entered) == 2
    assert refused == 10
    assert retry_ins == {None}  # slots taken: when one frees depends on the probes
    for breaker in entered:
        breaker.__exit__(None, None, None)  # both probes succeed: success_threshold 2
    until(lambda: all(b.state is CLOSED for b in breakers), "recovery closes it everywhere")


def test_a_probe_lost_with_its_process_frees_the_slot_when_its_lease_ends(
    make_store: MakeStore, clock: FakeClock
) -> None:
    def breaker() -> CircuitBreaker:
        store = make_store(clock=clock)
        return CircuitBreaker(
            "s3", failure_threshold=1, recovery_timeout=5, store=store, clock=clock
        )

    doomed, survivor = breaker(), breaker()
    fail(survivor)
    until(lambda: doomed.state is OPEN, "open in both")
    clock.advance(5)
    doomed.__enter__()  # takes the only probe slot ...
    doomed._shared.store.close()  # type: ignore[union-attr]  # ... and its process dies
    with pytest.raises(CircuitOpenError):
        survivor.call(working)  # the slot is held
    clock.advance(5)  # the lease (recovery_timeout by default) runs out
    with pytest.raises(CircuitOpenError):
        survivor.call(working)  # the expired probe counts as a failed recovery
    snap = survivor.snapshot()
    assert snap.state is OPEN
    assert snap.failed_recoveries == 1
    clock.advance(5)
    assert survivor.call(working) == "ok"  # a new probe, and the breaker closes
    until(lambda: survivor.state is CLOSED, "closed after the probe")


def test_rate_mode_judges_one_window_of_every_process(
    make_store: MakeStore, clock: FakeClock
) -> None:
    a, b = (
        CircuitBreaker(
            "api",
            failure_rate=0.5,
            window=10,
            minimum_calls=10,
            store=make_store(clock=clock),
            clock=clock,
        )
        for _ in range(2)
    )
    for _ in range(5):
        assert a.call(working) == "ok"
    fail(b, 4)
    until(lambda: a.snapshot().failure_count == 0, "settled")  # nothing judged: 9 calls
    assert a.state is CLOSED
    fail(b)  # the tenth call: 5 of 10 failed
    until(lambda: a.state is OPEN and b.state is OPEN, "opened by the shared rate")


def test_a_server_pause_keeps_every_process_away_that_long(
    make_store: MakeStore, clock: FakeClock
) -> None:
    class Limited(Exception):
        retry_after = 120.0

    a, b = (CircuitBreaker("llm", store=make_store(clock=clock), clock=clock) for _ in range(2))

    def rate_limited() -> None:
        raise Limited

    with pytest.raises(Limited):
        a.call(rate_limited)
    until(lambda: b.state is OPEN, "the pause reaches the other process")
    assert b.snapshot().retry_in == pytest.approx(120.0, abs=0.01)


def test_reset_and_force_open_act_on_every_process(make_store: MakeStore) -> None:
    a, b, c = (CircuitBreaker("ops", store=make_store()) for _ in range(3))
    a.force_open()
    until(lambda: b.state is State.FORCED_OPEN and c.state is State.FORCED_OPEN, "forced")
    with pytest.raises(CircuitOpenError):
        c.call(working)
    b.reset()
    until(lambda: a.state is CLOSED and c.state is CLOSED, "reset everywhere")
    assert c.call(working) == "ok"


def test_a_new_process_starts_with_the_shared_state(make_store: MakeStore) -> None:
    first = CircuitBreaker("orders", failure_threshold=1, store=make_store())
    fail(first)
    until(lambda: first.state is OPEN, "opened")
    late = CircuitBreaker("orders", failure_threshold=1, store=make_store())
    assert late.state is OPEN  # read at creation, before any call (pybreaker#24)
    with pytest.raises(CircuitOpenError):
        late.call(working)


def test_an_outcome_from_an_earlier_period_changes_nothing(
    make_store: MakeStore, clock: FakeClock
) -> None:
    a, b = (
        CircuitBreaker("mail", failure_threshold=1, store=make_store(clock=clock), clock=clock)
        for _ in range(2)
    )
    a.__enter__()  # admitted while closed ...
    fail(b)
    until(lambda: a.state is OPEN, "... then it opens")
    b.reset()
    until(lambda: a.state is CLOSED, "... and is reset")
    a.__exit__(Down, Down("late"), None)  # the old call fails late: its period is over
    until(lambda: not a._shared.pending, "flushed")  # type: ignore[union-attr]
    assert a.state is CLOSED
    assert b.state is CLOSED


def test_every_process_hears_the_transitions_with_their_reasons(
    make_store: MakeStore, clock: FakeClock
) -> None:
    a, b = (
        CircuitBreaker("cdn", failure_threshold=2, store=make_store(clock=clock), clock=clock)
        for _ in range(2)
    )
    heard: list[tuple[str, str, str]] = []
    b.add_listener(lambda e: heard.append((e.old.value, e.new.value, e.reason)), StateTransition)
    fail(a, 2)
    until(lambda: len(heard) == 1, "open heard")
    clock.advance(30)
    assert a.call(working) == "ok"
    until(lambda: len(heard) == 3, "half-open and closed heard")
    assert heard == [
        ("closed", "open", "failure_threshold"),
        ("open", "half_open", "recovery_timeout_elapsed"),
        ("half_open", "closed", "probes_succeeded"),
    ]


def test_state_lost_in_redis_is_taken_up_again(make_store: MakeStore, client: redis.Redis) -> None:
    a = CircuitBreaker("cache", failure_threshold=1, store=make_store(sync_interval=0.05))
    fail(a)
    until(lambda: a.state is OPEN, "opened")
    client.flushdb()  # Redis restarted without persistence, or the keys were deleted
    until(lambda: a.state is CLOSED, "the fresh (closed) state is adopted by polling")
    fail(a)
    until(lambda: a.state is OPEN, "and it works on the new record")


def test_keys_carry_one_hash_tag_and_a_ttl(
    make_store: MakeStore, client: redis.Redis, namespace: str
) -> None:
    breaker = CircuitBreaker(
        "payments", failure_rate=0.5, window=4, minimum_calls=2, store=make_store()
    )
    fail(breaker, 2)
    until(lambda: breaker.state is OPEN, "opened")
    keys = sorted(k.decode() for k in client.keys(f"stalwart:{{{namespace}:payments}}:*"))
    assert keys, "no keys written"
    assert len({key_slot(k.encode()) for k in keys}) == 1
    assert all(0 < int(client.pttl(k)) <= 7 * 86400 * 1000 for k in keys)


def test_namespaces_and_names_keep_breakers_apart(make_store: MakeStore, namespace: str) -> None:
    one = CircuitBreaker("x", failure_threshold=1, store=make_store())
    other_name = CircuitBreaker("y", failure_threshold=1, store=make_store())
    other_space = CircuitBreaker(
        "x", failure_threshold=1, store=make_store(namespace=namespace + "-b")
    )
    fail(one)
    until(lambda: one.state is OPEN, "opened")
    until(lambda: not one._shared.pending, "flushed")  # type: ignore[union-attr]
    assert other_name.state is CLOSED
    assert other_space.state is CLOSED


def test_snapshot_and_describe_say_where_the_state_lives(make_store: MakeStore) -> None:
    breaker = CircuitBreaker("payments", store=make_store())
    assert breaker.shared is not None
    assert breaker.shared.startswith("shared: redis 127.0.0.1")
    assert breaker.describe()["shared"] == breaker.shared
    assert CircuitBreaker("local").shared is None
    assert "shared" not in CircuitBreaker("local2").describe()


def test_the_named_registry_refuses_another_store(make_store: MakeStore) -> None:
    store = make_store()
    assert circuit_breaker("reg", store=store) is circuit_breaker("reg", store=store)
    with pytest.raises(ValueError, match="store"):
        circuit_breaker("reg", store=make_store())


def test_async_calls_and_an_asyncio_client(
    make_store: MakeStore, redis_server: RedisServer
) -> None:
    async def main() -> list[Any]:
        aclient = aioredis.Redis.from_url(redis_server.url)
        a = CircuitBreaker("async", failure_threshold=2, store=make_store(client=aclient))
        b = CircuitBreaker("async", failure_threshold=2, store=make_store())

        @a
        async def down() -> None:
            await asyncio.sleep(0)
            raise Down("async")

        for _ in range(2):
            with pytest.raises(Down):
                await down()
        await asyncio.to_thread(until, lambda: b.state is OPEN, "opened from async code")
        with pytest.raises(CircuitOpenError):
            await down()
        await aclient.aclose()
        return [a.state, b.state]

    assert asyncio.run(main()) == [OPEN, OPEN]


def test_the_record_is_plain_json_and_fields(
    make_store: MakeStore, client: redis.Redis, namespace: str
) -> None:
    breaker = CircuitBreaker("inspect", failure_threshold=1, store=make_store())
    fail(breaker)
    until(lambda: breaker.state is OPEN, "opened")
    record = shared_record(client, namespace, "inspect")
    assert record["st"] == "open"
    assert int(record["ep"]) >= 2
    assert record["gen"]
    assert json.loads(json.dumps(record))  # nothing binary: readable with redis-cli
