"""RetryBudget: Finagle's token bucket shared by many callers, on a FakeClock."""

from __future__ import annotations

import asyncio
import math
import sys
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from stalwart import ConfigError
from stalwart._retry import (
    BudgetCore,
    Retry,
    RetryAttempt,
    RetryBudget,
    RetryBudgetExhausted,
    RetryGaveUp,
)
from stalwart.events import Event
from stalwart.testing import FakeClock


class Down(ConnectionError):
    pass


def always_down() -> None:
    raise Down


@pytest.fixture
def racy() -> Iterator[None]:
    before = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    yield
    sys.setswitchinterval(before)


# -- the numbers -------------------------------------------------------------------------


def test_finagle_defaults_allow_10_per_second_over_10_s_plus_20_percent_of_calls(
    clock: FakeClock,
) -> None:
    budget = RetryBudget(clock=clock)
    assert (budget.percent_can_retry, budget.min_retries_per_second, budget.ttl) == (0.2, 10, 10)
    assert budget.balance == 100.0  # the floor: 10/s over the 10 s window
    for _ in range(50):
        budget.deposit()
    assert budget.balance == 110.0  # + 20 % of 50 calls
    taken = 0
    while budget.try_withdraw():
        taken += 1
    assert taken == 110
    assert budget.balance == 0.0


def test_deposits_and_withdrawals_expire_after_ttl(clock: FakeClock) -> None:
    budget = RetryBudget(percent_can_retry=0.5, min_retries_per_second=0, ttl=10.0, clock=clock)
    for _ in range(10):
        budget.deposit()
    assert budget.try_withdraw()
    assert budget.balance == 4.0
    clock.advance(8.9)
    assert budget.balance == 4.0  # still inside the window
    clock.advance(1.2)  # 10.1 s after: both the calls and the retry have expired
    assert budget.balance == 0.0
    assert not budget.try_withdraw()


def test_an_empty_budget_refuses_and_the_floor_refills_it(clock: FakeClock) -> None:
    budget = RetryBudget(percent_can_retry=0.0, min_retries_per_second=1.0, ttl=2.0, clock=clock)
    assert [budget.try_withdraw() for _ in range(3)] == [True, True, False]
    clock.advance(2.0)
    assert budget.try_withdraw()


def test_fractional_percentages_do_not_lose_a_retry_to_rounding() -> None:
    core = BudgetCore(0.29, 0.0, 10.0)
    for _ in range(100):
        core.deposit(0.0)
    assert sum(core.try_withdraw(0.0) for _ in range(40)) == 29  # 0.29 * 100 in floats: 28.99...


def test_budget_core_counts_batched_deposits_in_their_slice() -> None:
    core = BudgetCore(1.0, 0.0, 10.0)
    core.deposit(0.5, 7)
    assert core.balance(0.9) == 7.0
    assert core.slice_end(0.5) == 1.0
    assert core.balance(10.49) == 0.0  # its slice [0, 1) left the window at 10 s


# -- retries draw on it ------------------------------------------------------------------


def test_retry_skips_retries_when_the_budget_is_empty(clock: FakeClock) -> None:
    budget = RetryBudget(percent_can_retry=0.0, min_retries_per_second=0.1, ttl=10.0, clock=clock)
    r = Retry(
        on=Down,
        max_attempts=5,
        base_delay=0.0,
        max_delay=0.0,
        budget=budget,
        clock=clock,
        name="api",
    )
    seen: list[Event] = []
    r.add_listener(seen.append)
    with pytest.raises(Down) as info:
        r(always_down)()
    # the floor allows one retry in 10 s: attempt 1 fails, one retry, then the budget is empty
    assert [type(e) for e in seen] == [RetryAttempt, RetryBudgetExhausted, RetryGaveUp]
    exhausted, gave_up = seen[1], seen[2]
    assert isinstance(exhausted, RetryBudgetExhausted)
    assert exhausted.attempt == 2
    assert exhausted.budget == "retry_budget"
    assert exhausted.exception is info.value
    assert isinstance(gave_up, RetryGaveUp)
    assert gave_up.reason == "budget"
    assert "retry budget 'retry_budget' is exhausted" in info.value.__notes__[0]


def test_every_first_attempt_deposits_and_every_retry_withdraws(clock: FakeClock) -> None:
    budget = RetryBudget(percent_can_retry=1.0, min_retries_per_second=0.0, ttl=10.0, clock=clock)
    ok = Retry(on=Down, budget=budget, clock=clock)(lambda: 1)
    for _ in range(5):
        ok()
    assert budget.balance == 5.0
    calls = iter([Down(), Down(), None])

    def twice_down() -> None:
        failure = next(calls)
        if failure is not None:
            raise failure

    Retry(on=Down, budget=budget, clock=clock, base_delay=0, max_delay=0)(twice_down)()
    assert budget.balance == 5.0 + 1.0 - 2.0


def test_async_and_loop_forms_use_the_budget_too(clock: FakeClock) -> None:
    budget = RetryBudget(percent_can_retry=0.0, min_retries_per_second=0.1, ttl=10.0, clock=clock)
    r = Retry(on=Down, max_attempts=3, base_delay=0, max_delay=0, budget=budget, clock=clock)

    async def adown() -> None:
        raise Down

    with pytest.raises(Down):
        asyncio.run(r(adown)())
    attempts = 0

    def loop() -> None:
        nonlocal attempts
        for attempt in r:
            with attempt:
                attempts += 1
                raise Down

    with pytest.raises(Down):
        loop()
    assert attempts == 1  # the one retry of the floor went to the async call


def test_a_fleet_during_an_outage_never_retries_more_than_the_budget_allows(
    clock: FakeClock,
) -> None:
    """50 callers, 10 calls per second each, against a dependency that is down for 60 s.

    Without a budget, 3 attempts per call would triple the load. With it, the retries in
    any 9 s stretch stay within the floor (10/s over 10 s) plus 20 % of the calls of the
    10 s before, and overall the load grows by about 20 %, not 200 %."""
    budget = RetryBudget(clock=clock)
    fleet = [
        Retry(
            on=Down,
            max_attempts=3,
            base_delay=0.0,
            max_delay=0.0,
            budget=budget,
            clock=clock,
            name=f"caller-{i}",
        )
        for i in range(50)
    ]
    retries: list[float] = []
    for r in fleet:
        r.add_listener(lambda e: retries.append(e.at), RetryAttempt)
    calls: list[float] = []
    for _tick in range(600):  # 60 s in steps of 0.1 s
        for r in fleet:
            calls.append(clock.monotonic())
            with pytest.raises(Down):
                r.call(always_down)
        clock.advance(0.1)
    assert len(calls) == 30_000
    # The load grew by the budget's 20 % and the floor, far from the 200 % of 3 attempts.
    assert len(retries) <= 0.2 * len(calls) + 100 * 7
    assert len(retries) >= 0.2 * len(calls)  # and the budget was used, not wasted
    for t in range(61):
        in_window = sum(1 for at in retries if t - 9.0 < at <= t)
        calls_before = sum(1 for at in calls if t - 10.0 <= at <= t)
        assert in_window <= 100 + 0.2 * calls_before + 1e-9, t


def test_threads_sharing_a_budget_never_overdraw_it(clock: FakeClock, racy: None) -> None:
    budget = RetryBudget(percent_can_retry=0.2, min_retries_per_second=1.0, ttl=10.0, clock=clock)
    taken: list[bool] = []
    deposited = [0]
    lock = threading.Lock()
    errors: list[BaseException] = []

    def worker() -> None:
        try:
            mine = []
            for _ in range(500):
                budget.deposit()
                with lock:
                    deposited[0] += 1
                mine.append(budget.try_withdraw())
            with lock:
                taken.extend(mine)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    # Deposits racing with a hand-over may be lost (strict), never withdrawals: the bound
    # always holds, and at most a few deposits' worth of retries go unused.
    granted = sum(taken)
    assert granted <= 10 + 0.2 * deposited[0]
    assert granted >= 10 + 0.2 * deposited[0] - 0.2 * 8 * 8


# -- configuration -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("field", "settings"),
    [
        ("percent_can_retry", {"percent_can_retry": -0.1}),
        ("percent_can_retry", {"percent_can_retry": math.inf}),
        ("min_retries_per_second", {"min_retries_per_second": -1}),
        ("ttl", {"ttl": 0}),
        ("ttl", {"ttl": 0.5}),
        ("ttl", {"ttl": 61}),
        ("name", {"name": ""}),
        ("clock", {"clock": object()}),
    ],
)
def test_bad_budget_settings_name_the_field(field: str, settings: dict[str, Any]) -> None:
    with pytest.raises(ConfigError) as info:
        RetryBudget(**settings)
    assert info.value.field == field


def test_describe_and_repr(clock: FakeClock) -> None:
    budget = RetryBudget(name="payments", clock=clock)
    assert budget.describe() == {
        "strategy": "retry_budget",
        "name": "payments",
        "percent_can_retry": 0.2,
        "min_retries_per_second": 10.0,
        "ttl": 10.0,
    }
    assert Retry(on=Down, budget=budget).describe()["budget"]["name"] == "payments"
    assert repr(budget) == "RetryBudget('payments', balance=100)"
