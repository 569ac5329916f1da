"""Fallback: stalwart's rejections get a stand-in by default; the caller's own errors only
when asked; bad values when a predicate says so; cancellation never."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest

from stalwart import (
    BulkheadFullError,
    CircuitBreaker,
    CircuitOpenError,
    ConfigError,
    DeadlineExceeded,
    RateLimitedError,
    Rejected,
)
from stalwart._fallback import DEFAULT_ON, Fallback, FallbackConfig, FallbackUsed
from stalwart.events import Event
from stalwart.testing import FakeClock


class Boom(Exception):
    pass


def raiser(exc: BaseException) -> Any:
    def fn(*args: Any) -> Any:
        raise exc

    return fn


def araiser(exc: BaseException) -> Any:
    async def fn(*args: Any) -> Any:
        raise exc

    return fn


# -- configuration --------------------------------------------------------------------


def test_neither_value_nor_factory_is_a_config_error_naming_value() -> None:
    with pytest.raises(ConfigError) as info:
        Fallback()
    assert info.value.field == "value"


def test_both_value_and_factory_is_a_config_error_naming_value() -> None:
    with pytest.raises(ConfigError) as info:
        Fallback(value=1, factory=lambda exc: 2)
    assert info.value.field == "value"


def test_factory_that_is_not_callable_is_a_config_error_naming_factory() -> None:
    with pytest.raises(ConfigError) as info:
        Fallback(factory="cached")  # type: ignore[arg-type]
    assert info.value.field == "factory"


@pytest.mark.parametrize("on", [ValueError(), "Exception", (ValueError, 3), int])
def test_bad_on_is_a_config_error_naming_on(on: Any) -> None:
    with pytest.raises(ConfigError) as info:
        Fallback(value=1, on=on)
    assert info.value.field == "on"


def test_on_result_that_is_not_callable_is_a_config_error_naming_on_result() -> None:
    with pytest.raises(ConfigError) as info:
        Fallback(value=1, on_result=True)  # type: ignore[arg-type]
    assert info.value.field == "on_result"


def test_bad_name_and_clock_are_config_errors_naming_them() -> None:
    with pytest.raises(ConfigError) as info:
        Fallback(value=1, name="")
    assert info.value.field == "name"
    with pytest.raises(ConfigError) as info:
        Fallback(value=1, clock=object())  # type: ignore[arg-type]
    assert info.value.field == "clock"


def test_async_factory_on_a_sync_function_is_a_config_error_at_decoration() -> None:
    async def cached(exc: object) -> str:
        return "cached"

    fallback = Fallback(factory=cached)
    with pytest.raises(ConfigError) as info:
        fallback(lambda: "live")
    assert info.value.field == "factory"
    with pytest.raises(ConfigError):
        fallback.call(lambda: "live")


def test_generator_function_cannot_be_decorated() -> None:
    def numbers() -> Iterator[int]:
        yield 1

    with pytest.raises(ConfigError) as info:
        Fallback(value=None)(numbers)
    assert info.value.field == "fn"


def test_describe_lists_kind_name_and_settings() -> None:
    def is_empty(value: object) -> bool:
        return not value

    assert Fallback(value=[], on=[KeyError], on_result=is_empty, name="menu").describe() == {
        "strategy": "fallback",
        "name": "menu",
        "value": [],
        "factory": None,
        "on": (KeyError,),
        "on_result": is_empty,
    }
    assert FallbackConfig(value=0).on is DEFAULT_ON is Rejected


def test_call_and_acall_refuse_the_other_kind_of_function() -> None:
    async def afn() -> None:
        pass

    fallback = Fallback(value=0)
    with pytest.raises(TypeError, match="acall"):
        fallback.call(afn)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="call"):
        asyncio.run(fallback.acall(lambda: 1))  # type: ignore[arg-type]


# -- what is replaced ---------------------------------------------------------------


@pytest.mark.parametrize(
    "rejection",
    [
        CircuitOpenError("api", 3.0),
        BulkheadFullError("pool", None, "full"),
        RateLimitedError("llm", 1.0),
        DeadlineExceeded("t"),
    ],
)
def test_stalwart_rejections_are_replaced_by_default(rejection: Rejected) -> None:
    fallback = Fallback(value="cached")
    assert fallback.call(raiser(rejection)) == "cached"
    assert asyncio.run(fallback.acall(araiser(rejection))) == "cached"


def test_the_callers_own_exception_passes_through_unchanged_by_default() -> None:
    own = Boom("the caller's")
    fallback = Fallback(value="cached")
    with pytest.raises(Boom) as info:
        fallback.call(raiser(own))
    assert info.value is own
    with pytest.raises(Boom) as ainfo:
        asyncio.run(fallback.acall(araiser(own)))
    assert ainfo.value is own


@pytest.mark.parametrize(
    "on",
    [Boom, (KeyError, Boom), [Boom], lambda exc: "replace" in str(exc)],
    ids=["class", "tuple", "list", "predicate"],
)
def test_on_widens_to_the_callers_exceptions(on: Any) -> None:
    fallback = Fallback(value=0, on=on)
    assert fallback.call(raiser(Boom("replace me"))) == 0
    with pytest.raises(LookupError):
        fallback.call(raiser(LookupError("other")))


@pytest.mark.parametrize("interrupt", [asyncio.CancelledError(), KeyboardInterrupt()])
def test_cancellation_and_interrupts_are_never_replaced(interrupt: BaseException) -> None:
    fallback = Fallback(value=0, on=BaseException)
    with pytest.raises(type(interrupt)):
        fallback.call(raiser(interrupt))


def test_value_none_is_a_fallback_like_any_other() -> None:
    assert Fallback(value=None).call(raiser(CircuitOpenError("x"))) is None


def test_returned_values_pass_through_without_on_result() -> None:
    assert Fallback(value=0).call(lambda: None) is None


def test_value_judged_bad_by_on_result_is_replaced() -> None:
    fallback = Fallback(value=["default"], on_result=lambda items: not items)
    assert fallback.call(list) == ["default"]
    assert fallback.call(lambda: ["live"]) == ["live"]

    async def empty() -> list[str]:
        return []

    assert asyncio.run(fallback.acall(empty)) == ["default"]


# -- factories -------------------------------------------------------------------------


def test_sync_factory_gets_the_exception_for_sync_and_async_functions() -> None:
    causes: list[object] = []

    def from_cause(cause: object) -> str:
        causes.append(cause)
        return "built"

    rejection = CircuitOpenError("api", 5.0)
    fallback = Fallback(factory=from_cause)
    assert fallback.call(raiser(rejection)) == "built"
    assert asyncio.run(fallback.acall(araiser(rejection))) == "built"
    assert causes == [rejection, rejection]


def test_async_factory_is_awaited_for_async_functions() -> None:
    async def cached(cause: object) -> str:
        await asyncio.sleep(0)
        return f"cached after {type(cause).__name__}"

    @Fallback(factory=cached)
    async def live() -> str:
        raise CircuitOpenError("api")

    assert asyncio.run(live()) == "cached after CircuitOpenError"


def test_factory_gets_the_bad_value_judged_by_on_result() -> None:
    fallback = Fallback(factory=lambda bad: f"not {bad!r}", on_result=lambda v: v < 0)
    assert fallback.call(lambda: -1) == "not -1"


def test_factory_failure_propagates_with_the_original_as_context() -> None:
    rejection = CircuitOpenError("api")
    fallback = Fallback(factory=raiser(KeyError("no cache")))
    with pytest.raises(KeyError) as info:
        fallback.call(raiser(rejection))
    assert info.value.__context__ is rejection


# -- composition and events ----------------------------------------------------------


def test_open_breaker_is_answered_by_the_fallback_while_failures_pass(clock: FakeClock) -> None:
    breaker = CircuitBreaker("api", failure_threshold=1, clock=clock)

    @Fallback(value="cached")
    @breaker
    def fetch() -> str:
        raise Boom

    with pytest.raises(Boom):
        fetch()  # the dependency's own failure: the caller sees it
    assert fetch() == "cached"  # now open: the rejection is replaced


def test_fallback_used_event_names_the_cause(clock: FakeClock) -> None:
    fallback = Fallback(value=0, on_result=lambda v: v is None, name="menu", clock=clock)
    events: list[Event] = []
    fallback.add_listener(events.append, FallbackUsed)
    rejection = CircuitOpenError("api")
    clock.advance(3.0)
    fallback.call(raiser(rejection))
    fallback.call(lambda: None)
    fallback.call(lambda: 1)
    assert events == [
        FallbackUsed(name="menu", strategy="fallback", at=3.0, cause=rejection),
        FallbackUsed(name="menu", strategy="fallback", at=3.0, cause=None),
    ]
    fallback.remove_listener(events.append)
    fallback.call(lambda: None)
    assert len(events) == 2
