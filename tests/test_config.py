"""Bad configuration raises ConfigError naming the field and what is allowed."""

from __future__ import annotations

from typing import Any

import pytest

from stalwart import BreakerConfig, CircuitBreaker, ConfigError, PollIntervals
from stalwart.testing import FakeClock

BAD: list[tuple[dict[str, Any], str, str]] = [
    ({"failure_threshold": 0}, "failure_threshold", ">= 1"),
    ({"failure_threshold": 2.5}, "failure_threshold", "integer"),
    ({"failure_threshold": True}, "failure_threshold", "integer"),
    ({"failure_threshold": 3, "failure_rate": 0.5}, "failure_threshold", "not both"),
    ({"failure_rate": 1.5}, "failure_rate", "(0, 1]"),
    ({"failure_rate": float("nan")}, "failure_rate", "ratio in (0, 1]"),
    ({"failure_rate": 0.5, "window": 0}, "window", ">= 1"),
    ({"failure_rate": 0.5, "window": 10, "window_duration": 5.0}, "window", "not both"),
    ({"failure_rate": 0.5, "window_duration": -1}, "window_duration", "> 0"),
    ({"failure_rate": 0.5, "window": 10, "minimum_calls": 11}, "minimum_calls", "<= the window"),
    ({"failure_rate": 0.5, "minimum_calls": 150}, "minimum_calls", "window of 100 calls"),
    ({"failure_rate": 0.5, "minimum_calls": 0}, "minimum_calls", ">= 1"),
    ({"window": 10}, "window", "only applies with failure_rate"),
    ({"window_duration": 30.0}, "window_duration", "only applies"),
    ({"minimum_calls": 5}, "minimum_calls", "only applies"),
    ({"slow_call_rate": 0.5}, "slow_call_rate", "only applies with slow_call_duration"),
    ({"call_timeout": 5, "probe_lease": 2}, "probe_lease", ">= call_timeout"),
    ({"slow_call_duration": 0}, "slow_call_duration", "> 0"),
    ({"slow_call_duration": 1, "slow_call_rate": 2}, "slow_call_rate", "(0, 1]"),
    ({"failure_rate": 0}, "failure_rate", "ratio in (0, 1]"),
    ({"recovery_timeout": 0}, "recovery_timeout", "> 0"),
    ({"recovery_timeout": "60"}, "recovery_timeout", "number"),
    ({"recovery_timeout": float("inf")}, "recovery_timeout", "finite"),
    ({"recovery_backoff": 0.5}, "recovery_backoff", ">= 1"),
    ({"recovery_backoff": 0}, "recovery_backoff", ">= 1"),
    ({"recovery_timeout": 60, "max_recovery_timeout": 30}, "max_recovery_timeout", ">= recovery"),
    ({"success_threshold": 0}, "success_threshold", ">= 1"),
    ({"half_open_max_calls": -1}, "half_open_max_calls", ">= 1"),
    ({"probe_lease": 0}, "probe_lease", "> 0"),
    ({"record": "ValueError"}, "record", "exception classes or a predicate"),
    ({"record": (ValueError, int)}, "record", "exception classes"),
    ({"ignore": 3}, "ignore", "exception classes"),
    ({"failure_if": 1}, "failure_if", "callable"),
    ({"retry_after_from": None}, "retry_after_from", "callable"),
    ({"call_timeout": -0.1}, "call_timeout", "> 0"),
    ({"poll_intervals": {"fast": 1}}, "poll_intervals", "PollIntervals"),
]


@pytest.mark.parametrize(("options", "field", "allowed"), BAD, ids=[b[1] for b in BAD])
def test_bad_setting_names_the_field_and_what_is_allowed(
    options: dict[str, Any], field: str, allowed: str
) -> None:
    with pytest.raises(ConfigError) as info:
        CircuitBreaker("q", **options)
    assert info.value.field == field
    assert allowed in str(info.value)
    assert isinstance(info.value, ValueError)


def test_unknown_setting_is_named() -> None:
    with pytest.raises(ConfigError) as info:
        CircuitBreaker("q", fail_max=3)  # type: ignore[call-arg]
    assert info.value.field == "fail_max"
    assert "failure_threshold" in str(info.value)  # the known settings are listed


def test_poll_intervals_are_validated() -> None:
    with pytest.raises(ConfigError) as info:
        PollIntervals(slow=0)
    assert info.value.field == "poll_intervals.slow"


def test_name_must_be_a_non_empty_string() -> None:
    for bad in ("", None, 3):
        with pytest.raises(ConfigError) as info:
            CircuitBreaker(bad)  # type: ignore[arg-type]
        assert info.value.field == "name"


def test_config_object_or_keywords_but_not_both() -> None:
    config = BreakerConfig(failure_threshold=2)
    assert CircuitBreaker("q", config).config is config
    with pytest.raises(ConfigError, match="not both") as info:
        CircuitBreaker("q", config, failure_threshold=3)
    assert info.value.field == "config"
    with pytest.raises(ConfigError) as info:
        CircuitBreaker("q", {"failure_threshold": 2})  # type: ignore[arg-type]
    assert info.value.field == "config"


def test_clock_must_implement_the_protocol() -> None:
    for bad in (object(), FakeClock):  # the class itself, not an instance
        with pytest.raises(ConfigError) as info:
            CircuitBreaker("q", clock=bad)  # type: ignore[arg-type]
        assert info.value.field == "clock"


def test_minimum_calls_defaults_to_what_the_window_can_hold() -> None:
    assert BreakerConfig(failure_rate=0.5).effective_minimum_calls == 20
    assert BreakerConfig(failure_rate=0.5, window=10).effective_minimum_calls == 10
    assert BreakerConfig(failure_rate=0.5, window_duration=5.0).effective_minimum_calls == 20


def test_record_accepts_a_list_of_classes() -> None:
    breaker = CircuitBreaker("q", failure_threshold=1, record=[ConnectionError, TimeoutError])
    with pytest.raises(KeyError):
        breaker.call(lambda: {}["x"])
    assert breaker.state.value == "closed"


def test_defaults_are_safe_and_bounded() -> None:
    config = BreakerConfig()
    assert config.mode == "consecutive"
    assert config.effective_failure_threshold == 5
    assert config.recovery_timeout == 30.0
    assert config.half_open_max_calls == 1
    assert config.effective_max_recovery_timeout == 600.0
    assert BreakerConfig(recovery_timeout=900).effective_max_recovery_timeout == 900
