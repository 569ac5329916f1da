"""BatchCore: the run's bookkeeping, driven by hand (no threads, no I/O)."""

from __future__ import annotations

import math

from stalwart.journal._core import BatchCore, Paused, Resumed, Take, Wait


def core(**overrides: object) -> BatchCore:
    settings: dict[str, object] = {
        "total": 3,
        "skipped": 0,
        "max_pause": None,
        "max_uncommitted": 100,
        "low_water": 2,
        "now": 0.0,
    }
    settings.update(overrides)
    return BatchCore(**settings)  # type: ignore[arg-type]


def test_items_are_taken_in_order_then_the_workers_stop_once_all_are_handed() -> None:
    c = core()
    c.feed([("1", "a"), ("2", "b")], exhausted=True)
    assert c.next(0.0) == Take("1", "a")
    assert c.next(0.0) == Take("2", "b")
    assert c.next(0.0) == Wait(None)  # one in flight may still come back after a pause
    c.handed()
    c.handed()
    assert c.next(0.0) is None


def test_a_pause_holds_every_worker_until_it_ends_and_is_counted_once() -> None:
    c = core()
    c.feed([("1", "a"), ("2", "b")], exhausted=True)
    take = c.next(0.0)
    assert isinstance(take, Take)
    paused = c.again_after(take.key, take.item, 10.0, 2.0, "rate limited")
    assert paused == Paused(12.0, 2.0, "rate limited", True)
    assert c.next(11.9) == Wait(12.0)
    resumed = c.next(12.5)
    assert isinstance(resumed, Resumed)
    assert math.isclose(resumed.seconds, 2.0)
    assert c.next(12.5) == Take("1", "a")  # the paused item runs first
    assert (c.pauses, c.paused_seconds) == (1, 2.0)


def test_a_longer_pause_extends_the_current_one_and_a_shorter_one_is_no_news() -> None:
    c = core()
    assert c.pause(0.0, 5.0, "circuit open: llm") is not None
    assert c.pause(1.0, 1.0, "circuit open: llm") is None
    extended = c.pause(1.0, 10.0, "rate limited")
    assert extended is not None
    assert extended.until == 11.0
    assert c.pauses == 1
    assert c.pause_reason == "rate limited"  # the cause wins over the breaker's echo


def test_a_lift_ends_the_pause_early_when_the_breaker_closes() -> None:
    c = core()
    c.pause(0.0, 60.0, "circuit open: llm")
    resumed = c.lift(3.0)
    assert resumed == Resumed(3.0, True)
    assert c.lift(4.0) is None
    assert c.paused_until == -math.inf


def test_going_over_max_pause_stops_the_run_instead_of_pausing() -> None:
    c = core(max_pause=10.0)
    assert c.pause(0.0, 6.0, "rate limited") is not None
    c.next(6.0)  # resumes: 6 s paused so far
    assert c.pause(7.0, 5.0, "rate limited") is None
    assert c.stopped == "max_pause"
    assert c.next(7.0) is None


def test_workers_wait_while_too_many_records_are_uncommitted() -> None:
    c = core(max_uncommitted=1)
    c.feed([("1", "a"), ("2", "b")], exhausted=True)
    c.next(0.0)
    c.handed()
    assert c.next(0.0) == Wait(None)
    c.committed(0.1, 1, 0)
    assert c.next(0.1) == Take("2", "b")


def test_more_keys_are_asked_for_once_below_the_low_water_mark() -> None:
    c = core(low_water=2)
    c.feed([("1", "a")], exhausted=False)
    assert c.wants_more()
    assert not c.wants_more()  # one request at a time
    c.feed([("2", "b"), ("3", "c")], exhausted=True)
    assert not c.wants_more()


def test_a_stop_lets_nothing_new_start_and_keeps_the_first_reason_and_error() -> None:
    c = core()
    c.feed([("1", "a")], exhausted=True)
    error = RuntimeError("x")
    c.stop("signal")
    c.stop("error", error)
    assert (c.stopped, c.error) == ("signal", error)
    assert c.next(0.0) is None


def test_rate_and_eta_come_from_recent_commits_and_count_a_pause_in() -> None:
    c = core(total=100)
    c.committed(10.0, 50, 0)
    assert c.rate(10.0) == 5.0
    assert c.eta(10.0) == 10.0
    c.pause(10.0, 4.0, "rate limited")
    assert c.eta(10.0) == 14.0
    assert core(total=0).eta(0.0) == 0.0
    assert core().eta(0.0) is None  # nothing recorded yet: unknown
