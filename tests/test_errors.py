from __future__ import annotations

import pickle

import pytest

from stalwart import (
    BulkheadFullError,
    CircuitOpenError,
    ConfigError,
    DeadlineExceeded,
    RateLimitedError,
    Rejected,
    StalwartError,
)


@pytest.mark.parametrize(
    "cls", [CircuitOpenError, BulkheadFullError, RateLimitedError, DeadlineExceeded]
)
def test_every_rejection_sits_under_rejected_and_carries_retry_in(cls: type[Rejected]) -> None:
    exc = cls("db", 2.5)
    assert isinstance(exc, Rejected)
    assert isinstance(exc, StalwartError)
    assert exc.name == "db"
    assert exc.retry_in == 2.5
    assert "db" in str(exc)
    assert "2.5" in str(exc)


def test_deadline_exceeded_is_also_a_builtin_timeout_error() -> None:
    assert issubclass(DeadlineExceeded, TimeoutError)
    with pytest.raises(TimeoutError):
        raise DeadlineExceeded("call", None)


def test_config_error_is_a_value_error_that_names_the_field() -> None:
    exc = ConfigError("failure_threshold", "must be an integer >= 1, got 0")
    assert isinstance(exc, ValueError)
    assert isinstance(exc, StalwartError)
    assert exc.field == "failure_threshold"
    assert str(exc) == "failure_threshold: must be an integer >= 1, got 0"


def test_unknown_retry_in_is_none_and_left_out_of_the_message() -> None:
    exc = CircuitOpenError("q")
    assert exc.retry_in is None
    assert str(exc) == "circuit open ('q')"


def test_rejections_survive_pickling_for_multiprocessing() -> None:
    exc = CircuitOpenError("q", 1.5, "forced")
    back = pickle.loads(pickle.dumps(exc))
    assert type(back) is CircuitOpenError
    assert (back.name, back.retry_in, back.detail) == ("q", 1.5, "forced")
    config = pickle.loads(pickle.dumps(ConfigError("window", "bad")))
    assert (config.field, config.problem) == ("window", "bad")


def test_the_tree_is_drawn_in_the_module_docstring() -> None:
    import stalwart._errors as errors

    assert errors.__doc__ is not None
    for name in errors.__all__:
        assert name in errors.__doc__


def test_deadline_exceeded_keeps_its_fields_despite_being_an_os_error() -> None:
    exc = DeadlineExceeded("q", 1.0, "took too long")
    assert (exc.name, exc.retry_in, exc.detail) == ("q", 1.0, "took too long")
    assert "took too long" in str(exc)
    back = pickle.loads(pickle.dumps(exc))
    assert (back.name, back.retry_in, back.detail) == ("q", 1.0, "took too long")
