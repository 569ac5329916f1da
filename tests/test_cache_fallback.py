"""CacheFallback: the last good result stands in for a failed call (stale-if-error)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from stalwart import CacheFallback, CircuitBreaker, CircuitOpenError, ConfigError, Pipeline
from stalwart.events import StaleServed
from stalwart.testing import FakeClock


class Search:
    """A dependency that answers, or fails while ``down``."""

    def __init__(self) -> None:
        self.down = False
        self.calls = 0

    def __call__(self, query: str, *, limit: int = 10) -> list[str]:
        self.calls += 1
        if self.down:
            raise ConnectionError("storage service unreachable")
        return [f"{query}-{i}" for i in range(limit)][:2]


def test_a_failed_call_gets_the_last_good_result_and_its_age() -> None:
    clock = FakeClock()
    search = Search()
    cache = CacheFallback(stale_for=600, clock=clock)
    cached = cache(search)
    served: list[StaleServed] = []
    cache.add_listener(served.append, StaleServed)
    assert cached("abba") == ["abba-0", "abba-1"]
    assert cache.age() == 0.0
    search.down = True
    clock.advance(120)
    assert cached("abba") == ["abba-0", "abba-1"]
    assert cache.age() == 120.0
    assert [(type(s.cause), s.age) for s in served] == [(ConnectionError, 120.0)]
    with pytest.raises(ConnectionError):  # nothing stored for this query
        cached("queen")


def test_past_stale_for_the_failure_goes_to_the_caller() -> None:
    clock = FakeClock()
    search = Search()
    cached = CacheFallback(stale_for=600, clock=clock)(search)
    cached("abba")
    search.down = True
    clock.advance(600.5)
    with pytest.raises(ConnectionError, match="unreachable"):
        cached("abba")


def test_keyword_arguments_are_part_of_the_key() -> None:
    search = Search()
    cached = CacheFallback()(search)
    cached("abba", limit=1)
    search.down = True
    assert cached("abba", limit=1) == ["abba-0"]
    with pytest.raises(ConnectionError):
        cached("abba", limit=2)


def test_a_fresh_entry_answers_without_calling_within_ttl() -> None:
    clock = FakeClock()
    search = Search()
    cache = CacheFallback(ttl=30, stale_for=600, clock=clock)
    cached = cache(search)
    cached("abba")
    clock.advance(29)
    cached("abba")
    assert search.calls == 1
    assert cache.age() == 29.0
    clock.advance(1)
    cached("abba")
    assert search.calls == 2


def test_only_the_failures_on_covers_are_answered_from_the_cache() -> None:
    search = Search()
    cached = CacheFallback(on=TimeoutError)(search)
    cached("abba")
    search.down = True
    with pytest.raises(ConnectionError):
        cached("abba")


def test_outside_an_open_breaker_the_rejection_is_answered_from_the_cache() -> None:
    clock = FakeClock()
    search = Search()
    breaker = CircuitBreaker("storage", failure_threshold=1, clock=clock)
    cache = CacheFallback(stale_for=600, clock=clock)
    cached = Pipeline(cache, breaker)(search)
    cached("abba")
    search.down = True
    assert cached("abba") == ["abba-0", "abba-1"]  # fails, opens the breaker
    calls = search.calls
    assert cached("abba") == ["abba-0", "abba-1"]  # rejected at once, served from the cache
    assert search.calls == calls
    with pytest.raises(CircuitOpenError):
        cached("queen")


def test_async_functions_the_same_way() -> None:
    clock = FakeClock()
    down = False

    async def avatar(user: int) -> bytes:
        if down:
            raise OSError("S3 unavailable")
        return f"avatar-{user}".encode()

    cache = CacheFallback(stale_for=3600, clock=clock)
    cached = cache(avatar)

    async def main() -> tuple[bytes, bytes, float | None]:
        nonlocal down
        first = await cached(7)
        down = True
        clock.advance(10)
        second = await cached(7)
        return first, second, cache.age()

    assert asyncio.run(main()) == (b"avatar-7", b"avatar-7", 10.0)


def test_the_least_recently_used_key_goes_first() -> None:
    search = Search()
    cache = CacheFallback(max_entries=2)
    cached = cache(search)
    for query in ("a", "b", "a", "c"):
        cached(query)
    assert len(cache) == 2
    search.down = True
    assert cached("a") == ["a-0", "a-1"]
    with pytest.raises(ConnectionError):
        cached("b")
    cache.clear("a")
    with pytest.raises(ConnectionError):
        cached("a")
    cache.clear()
    assert len(cache) == 0


def test_unhashable_arguments_need_a_key_function() -> None:
    def lookup(filters: dict[str, Any]) -> int:
        return len(filters)

    with pytest.raises(ConfigError, match="key"):
        CacheFallback()(lookup)({"a": 1})
    keyed = CacheFallback(key=lambda filters: tuple(sorted(filters.items())))(lookup)
    assert keyed({"a": 1}) == 1


@pytest.mark.parametrize(
    ("kwargs", "field_name"),
    [
        ({"ttl": -1}, "ttl"),
        ({"ttl": 700, "stale_for": 600}, "ttl"),
        ({"stale_for": 0}, "stale_for"),
        ({"max_entries": 0}, "max_entries"),
        ({"on": "ConnectionError"}, "on"),
        ({"key": 3}, "key"),
    ],
)
def test_bad_settings_name_the_field(kwargs: dict[str, Any], field_name: str) -> None:
    with pytest.raises(ConfigError) as caught:
        CacheFallback(**kwargs)
    assert caught.value.field == field_name


def test_describe_lists_the_settings() -> None:
    assert CacheFallback(ttl=5, name="search").describe() == {
        "strategy": "cache_fallback",
        "name": "search",
        "ttl": 5,
        "stale_for": 3600.0,
        "max_entries": 1024,
        "on": (Exception,),
        "key": None,
    }
