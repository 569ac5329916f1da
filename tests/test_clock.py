from __future__ import annotations

import asyncio
import time

import pytest

from stalwart import Clock, SystemClock
from stalwart.testing import FakeClock


def test_fake_clock_starts_at_zero_and_moves_only_when_told() -> None:
    clock = FakeClock()
    assert clock.monotonic() == 0.0
    clock.advance(2.5)
    assert clock.monotonic() == 2.5
    assert clock.time() == 1_700_000_000.0 + 2.5


def test_fake_clock_sleep_advances_instantly_and_is_recorded() -> None:
    clock = FakeClock()
    started = time.monotonic()
    clock.sleep(3600)
    clock.sleep(0.5)
    assert time.monotonic() - started < 1.0
    assert clock.monotonic() == 3600.5
    assert clock.sleeps == [3600, 0.5]


def test_fake_clock_async_sleep_advances_and_yields_to_other_tasks() -> None:
    clock = FakeClock()
    order: list[str] = []

    async def sleeper() -> None:
        order.append("sleeper starts")
        await clock.asleep(10)
        order.append("sleeper wakes")

    async def other() -> None:
        order.append("other runs")

    async def main() -> None:
        await asyncio.gather(sleeper(), other())

    asyncio.run(main())
    assert order == ["sleeper starts", "other runs", "sleeper wakes"]
    assert clock.monotonic() == 10
    assert clock.sleeps == [10]


def test_fake_clock_refuses_to_go_back() -> None:
    clock = FakeClock()
    with pytest.raises(ValueError, match="cannot go back"):
        clock.advance(-1)
    with pytest.raises(ValueError, match="non-negative"):
        clock.sleep(-1)


def test_negative_async_sleep_counts_as_zero_like_asyncio() -> None:
    clock = FakeClock()
    asyncio.run(clock.asleep(-5))
    assert clock.monotonic() == 0.0
    assert clock.sleeps == [0.0]


def test_both_clocks_satisfy_the_protocol() -> None:
    assert isinstance(FakeClock(), Clock)
    assert isinstance(SystemClock(), Clock)
    real = SystemClock()
    assert abs(real.time() - time.time()) < 5
    assert real.monotonic() <= time.monotonic()


def test_set_testing_skips_sleeps_caps_attempts_and_timeouts() -> None:
    from stalwart import _testmode
    from stalwart.testing import set_testing

    clock = FakeClock()
    with set_testing(attempts=2, timeout=0.5) as mode:
        _testmode.sleep(clock, 30)
        asyncio.run(_testmode.asleep(clock, 12))
        assert _testmode.cap_attempts(10) == 2
        assert _testmode.cap_timeout(60) == 0.5
        assert _testmode.cap_timeout(None) == 0.5
        with set_testing() as inner:  # nested: the innermost wins
            assert _testmode.cap_attempts(10) == 10
            _testmode.sleep(clock, 1)
        assert inner.sleeps == [1]
    assert mode.sleeps == [30, 12]
    assert clock.sleeps == []  # nothing reached the clock
    assert _testmode.current() is None
    assert _testmode.cap_attempts(10) == 10
    _testmode.sleep(clock, 3)
    assert clock.sleeps == [3]


def test_set_testing_validates_its_arguments() -> None:
    from stalwart import ConfigError
    from stalwart.testing import set_testing

    for bad in ({"attempts": 0}, {"attempts": 1.5}, {"timeout": -1}):
        with pytest.raises(ConfigError), set_testing(**bad):  # type: ignore[arg-type]
            pass
