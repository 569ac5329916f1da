"""The poller's decision core: the shared table of cases, and its parts on their own."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from poller.support import CASES, IDS, NOW, answer_of, settings_of
from stalwart import ConfigError
from stalwart.poller import PollAnswer, PollSettings, decide, rate_limit_wait, read_hint


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_each_case_of_the_shared_table(case: dict[str, Any]) -> None:
    decision = decide(
        answer_of(case),
        errors=case.get("errors", 0),
        settings=settings_of(case),
        random=case.get("random", 0.5),
        now=NOW,
    )
    got = {
        "delay": decision.delay,
        "failed": decision.failed,
        "errors": decision.errors,
        "reason": decision.reason,
    }
    assert got == case["expect"]


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("interval", 0),
        ("error_interval", -1),
        ("min_interval", float("nan")),
        ("max_interval", "60"),
        ("timeout", True),
        ("jitter", "yes"),
    ],
)
def test_bad_settings_name_the_field(field: str, value: Any) -> None:
    with pytest.raises(ConfigError) as caught:
        PollSettings(**{field: value})
    assert caught.value.field == field


def test_min_interval_above_max_interval_is_refused() -> None:
    with pytest.raises(ConfigError, match="max_interval"):
        PollSettings(min_interval=10, max_interval=5)


def test_read_hint_takes_the_breakers_payload() -> None:
    hint = read_hint(
        {"available": False, "state": "open", "poll_interval": 60, "retry_in": 12.5, "message": "m"}
    )
    assert hint is not None
    assert (hint.interval, hint.available, hint.state, hint.message, hint.retry_in) == (
        60.0,
        False,
        "open",
        "m",
        12.5,
    )
    assert read_hint({"poll_interval": 0, "retry_in": 0}) is None
    assert read_hint(None) is None


@pytest.mark.parametrize(
    ("field", "wait"),
    [
        ('"default";r=0;t=30', 30.0),
        ('"default";r=3;t=30', None),
        ("default;r=0", None),  # drained, but no window to wait for
        ('"a";r=0;t=5, "b";r=0;t=9', 9.0),
        ('"a";r=x;t=5', None),
        ('"a";r=0;t=-5', None),
        ('"a";q=10', None),  # r is required
        ("", None),
    ],
)
def test_rate_limit_wait(field: str, wait: float | None) -> None:
    assert rate_limit_wait(field) == wait


@given(
    errors=st.integers(min_value=0, max_value=100),
    random=st.floats(min_value=0.0, max_value=0.999999),
    status=st.one_of(st.none(), st.integers(min_value=400, max_value=599)),
)
def test_a_failed_poll_always_waits_within_the_bounds(
    errors: int, random: float, status: int | None
) -> None:
    settings = PollSettings()
    decision = decide(
        PollAnswer(status, error=None if status else "refused"),
        errors=errors,
        settings=settings,
        random=random,
        now=NOW,
    )
    assert decision.failed
    assert decision.errors == errors + 1
    assert settings.min_interval <= decision.delay <= settings.max_interval
