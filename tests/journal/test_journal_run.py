"""run_batch and arun_batch on a real SQLite file: recording, resuming, failures, pauses."""

from __future__ import annotations

import asyncio
import json
import threading
from pathlib import Path
from typing import Any

import pytest

from stalwart import CircuitBreaker, ConfigError, Retry
from stalwart.journal import (
    BatchPaused,
    BatchProgress,
    Journal,
    ResultNotSerializable,
    SessionStatus,
    arun_batch,
    run_batch,
)
from stalwart.testing import FakeClock


@pytest.fixture
def journal(tmp_path: Path) -> Journal:
    j = Journal(tmp_path / "batch.db")
    yield j  # type: ignore[misc]
    j.close()


class RateLimited(Exception):
    """Like an HTTP 429: carries the server's pause."""

    def __init__(self, retry_after: float) -> None:
        super().__init__(f"429, retry after {retry_after} s")
        self.retry_after = retry_after


def test_every_result_is_recorded_by_key_and_the_report_counts_them(journal: Journal) -> None:
    items = [{"id": f"p{i}", "n": i} for i in range(50)]
    report = run_batch(
        items, lambda item: item["n"] * 2, journal=journal, session="s", key=lambda i: i["id"]
    )
    assert (report.done, report.failed, report.skipped, report.remaining) == (50, 0, 0, 0)
    assert report.status is SessionStatus.COMPLETED
    assert journal.results("s") == {f"p{i}": i * 2 for i in range(50)}
    info = journal.session("s")
    assert (info.total, info.done, info.failed, info.status, info.active) == (
        50, 50, 0, SessionStatus.COMPLETED, False,
    )  # fmt: skip


def test_a_resumed_session_skips_recorded_items_and_runs_only_the_rest(journal: Journal) -> None:
    ran: list[int] = []
    lock = threading.Lock()

    def work(n: int) -> int:
        with lock:
            ran.append(n)
        return n

    run_batch(range(10), work, journal=journal, session="s")
    ran.clear()
    report = run_batch(range(15), work, journal=journal, session="s")
    assert sorted(ran) == list(range(10, 15))
    assert (report.done, report.skipped) == (5, 10)
    assert journal.session("s").runs == 2


def test_int_and_str_keys_stay_apart(journal: Journal) -> None:
    run_batch([5, "5"], lambda k: type(k).__name__, journal=journal, session="s")
    assert journal.results("s") == {5: "int", "5": "str"}


def test_a_final_error_is_recorded_as_failed_and_not_run_again_unless_asked(
    journal: Journal,
) -> None:
    calls: list[int] = []

    def work(n: int) -> int:
        calls.append(n)
        if n == 3:
            raise ValueError("bad product")
        return n

    report = run_batch(range(5), work, journal=journal, session="s", concurrency=1)
    assert (report.done, report.failed, report.status) == (4, 1, SessionStatus.FAILED)
    assert journal.failures("s") == {3: "ValueError: bad product"}
    assert journal.session("s").resumable
    calls.clear()
    again = run_batch(range(5), work, journal=journal, session="s")
    assert calls == []
    assert again.skipped == 5
    retried = run_batch(range(5), lambda n: n, journal=journal, session="s", retry_failed=True)
    assert (retried.done, retried.status) == (1, SessionStatus.COMPLETED)
    assert journal.results("s")[3] == 3
    assert journal.failures("s") == {}


def test_retries_are_counted_per_item_and_logged(journal: Journal, clock: FakeClock) -> None:
    tries: dict[int, int] = {}

    def flaky(n: int) -> int:
        tries[n] = tries.get(n, 0) + 1
        if tries[n] < 3:
            raise ConnectionError("reset")
        return n

    retry = Retry(on=ConnectionError, max_attempts=5, clock=clock)
    run_batch(range(3), flaky, journal=journal, session="s", retry=retry, concurrency=1)
    assert {r.key: r.attempts for r in journal.items("s")} == {0: 3, 1: 3, 2: 3}
    kinds = [e.kind for e in journal.events("s")]
    assert kinds.count("retry") == 6


def test_validate_rejects_a_bad_result_which_is_then_not_done(journal: Journal) -> None:
    report = run_batch(["ok", "", "fine"], lambda s: s, journal=journal, session="s", validate=bool)
    assert (report.done, report.failed) == (2, 1)
    assert "rejected by validate" in journal.failures("s")[""]
    assert "" not in journal.results("s")


def test_a_result_that_is_not_json_stops_the_run_names_the_key_and_records_nothing_for_it(
    journal: Journal,
) -> None:
    def work(n: int) -> Any:
        return {1, 2} if n == 7 else n

    with pytest.raises(ResultNotSerializable, match="item 7 is not JSON-serialisable"):
        run_batch(range(10), work, journal=journal, session="s", concurrency=1)
    assert 7 not in journal.results("s")
    info = journal.session("s")
    assert info.status is SessionStatus.PAUSED
    assert info.resumable
    assert journal.results("s") == {n: n for n in range(7)}


def test_bad_arguments_are_config_errors_naming_the_field(journal: Journal) -> None:
    def run(**kw: Any) -> None:
        args: dict[str, Any] = {"journal": journal, "session": "s"}
        args.update(kw)
        items = args.pop("items", range(3))
        run_batch(items, args.pop("fn", lambda n: n), **args)

    cases: list[tuple[dict[str, Any], str]] = [
        ({"items": [{"a": 1}]}, "key"),
        ({"items": [1, 1]}, "key"),
        ({"items": [True]}, "key"),
        ({"concurrency": 0}, "concurrency"),
        ({"session": ""}, "session"),
        ({"session": "x" * 201}, "session"),
        ({"journal": "batch.db"}, "journal"),
        ({"breaker": object()}, "breaker"),
        ({"retry": object()}, "retry"),
        ({"validate": 3}, "validate"),
        ({"metadata": {"a": {1, 2}}}, "metadata"),
        ({"max_pause": -1}, "max_pause"),
        ({"items": 5}, "items"),
    ]
    for kwargs, field in cases:
        with pytest.raises(ConfigError) as info:
            run(**kwargs)
        assert info.value.field == field, kwargs
    assert journal.sessions() == []  # nothing was started by a refused run


def test_concurrency_bounds_the_items_in_flight(journal: Journal) -> None:
    now = peak = 0
    lock = threading.Lock()
    gate = threading.Barrier(3, timeout=10)

    def work(n: int) -> int:
        nonlocal now, peak
        with lock:
            now += 1
            peak = max(peak, now)
        if n < 3:
            gate.wait()  # the first three run together, proving the threads are parallel
        with lock:
            now -= 1
        return n

    run_batch(range(30), work, journal=journal, session="s", concurrency=3)
    assert peak == 3


def test_the_breaker_pause_keeps_every_worker_off_the_api_until_it_ends(
    journal: Journal, clock: FakeClock
) -> None:
    """A 429 with a 2 s pause opens the breaker for 2 s: no call starts in that window,
    every paused item runs afterwards, and nothing is recorded as failed."""
    starts: list[tuple[float, int]] = []
    lock = threading.Lock()
    limited = threading.Event()

    def call_api(n: int) -> int:
        with lock:
            starts.append((clock.monotonic(), n))
        if n == 5 and not limited.is_set():
            limited.set()
            raise RateLimited(2.0)
        return n

    breaker = CircuitBreaker("llm", failure_threshold=5, recovery_timeout=1, clock=clock)
    report = run_batch(
        range(40), call_api, journal=journal, session="s", breaker=breaker, concurrency=4,
        clock=clock,
    )  # fmt: skip
    assert (report.done, report.failed, report.pauses) == (40, 0, 1)
    assert report.paused_seconds >= 2.0
    opened = next(t for t, n in starts if n == 5)
    during = [(t, n) for t, n in starts if opened < t < opened + 2.0]
    assert during == []
    assert sorted(n for _, n in starts).count(5) == 2  # run again after the pause
    kinds = [e.kind for e in journal.events("s")]
    assert "paused" in kinds
    assert "resumed" in kinds
    assert "breaker_open" in kinds


def test_a_server_pause_without_a_breaker_still_pauses_every_worker(
    journal: Journal, clock: FakeClock
) -> None:
    seen: list[float] = []
    failed_once = threading.Event()

    def call_api(n: int) -> int:
        seen.append(clock.monotonic())
        if n == 0 and not failed_once.is_set():
            failed_once.set()
            raise RateLimited(5.0)
        return n

    report = run_batch(range(5), call_api, journal=journal, session="s", concurrency=1, clock=clock)
    assert (report.done, report.pauses) == (5, 1)
    assert seen[1] - seen[0] >= 5.0


def test_an_open_breaker_that_never_closes_ends_the_run_paused_at_max_pause(
    journal: Journal, clock: FakeClock
) -> None:
    breaker = CircuitBreaker("llm", failure_threshold=1, recovery_timeout=60, clock=clock)
    breaker.force_open()
    report = run_batch(
        range(3), lambda n: n, journal=journal, session="s", breaker=breaker, max_pause=300,
        clock=clock,
    )  # fmt: skip
    assert report.stopped == "max_pause"
    assert (report.done, report.failed, report.remaining) == (0, 0, 3)
    assert report.status is SessionStatus.PAUSED
    assert journal.session("s").resumable


def test_events_reach_stalwart_listeners_once_per_commit_not_per_item(journal: Journal) -> None:
    progress: list[BatchProgress] = []
    paused: list[BatchPaused] = []
    import stalwart

    stalwart.add_listener(progress.append, BatchProgress)
    stalwart.add_listener(paused.append, BatchPaused)
    try:
        run_batch(range(200), lambda n: n, journal=journal, session="s")
    finally:
        stalwart.remove_listener(progress.append)
        stalwart.remove_listener(paused.append)
    assert sum(p.done for p in progress) == 200
    assert progress[-1].recorded == 200
    assert progress[-1].name == "s"
    assert len(progress) < 200
    assert paused == []


def test_an_async_batch_runs_on_tasks_with_the_same_guarantees(journal: Journal) -> None:
    active = peak = 0

    async def work(n: int) -> dict[str, int]:
        nonlocal active, peak
        active += 1
        peak = max(peak, active)
        await asyncio.sleep(0)
        active -= 1
        if n == 4:
            raise ValueError("nope")
        return {"n": n}

    report = asyncio.run(arun_batch(range(20), work, journal=journal, session="a", concurrency=5))
    assert (report.done, report.failed) == (19, 1)
    assert peak <= 5
    assert journal.results("a")[3] == {"n": 3}
    again = asyncio.run(arun_batch(range(20), work, journal=journal, session="a"))
    assert again.skipped == 20


def test_run_batch_runs_an_async_function_when_no_loop_is_running(journal: Journal) -> None:
    async def work(n: int) -> int:
        return n + 1

    report = run_batch(range(3), work, journal=journal, session="s")
    assert journal.results("s") == {0: 1, 1: 2, 2: 3}
    assert report.done == 3


def test_the_async_pause_holds_every_task_too(journal: Journal, clock: FakeClock) -> None:
    starts: list[tuple[float, int]] = []
    limited = False

    async def call_api(n: int) -> int:
        nonlocal limited
        starts.append((clock.monotonic(), n))
        await asyncio.sleep(0)
        if n == 2 and not limited:
            limited = True
            raise RateLimited(3.0)
        return n

    breaker = CircuitBreaker("llm", failure_threshold=5, clock=clock)
    report = asyncio.run(
        arun_batch(
            range(20), call_api, journal=journal, session="s", breaker=breaker,
            concurrency=4, clock=clock,
        )
    )  # fmt: skip
    assert (report.done, report.pauses) == (20, 1)
    opened = next(t for t, n in starts if n == 2)
    assert [n for t, n in starts if opened < t < opened + 3.0] == []


def test_a_breaker_rejection_is_not_an_item_failure(journal: Journal, clock: FakeClock) -> None:
    breaker = CircuitBreaker("llm", failure_threshold=1, recovery_timeout=5, clock=clock)
    with pytest.raises(RuntimeError):
        breaker.call(lambda: (_ for _ in ()).throw(RuntimeError("down")))
    assert not breaker.available
    report = run_batch(
        range(4), lambda n: n, journal=journal, session="s", breaker=breaker, clock=clock
    )
    assert (report.done, report.failed, report.pauses) == (4, 0, 1)
    assert [e.kind for e in journal.events("s")].count("item_failed") == 0


def test_metadata_and_stage_are_kept_and_merged_on_resume(journal: Journal) -> None:
    run_batch([1], str, journal=journal, session="s", metadata={"model": "gpt"}, stage="mandatory")
    run_batch([1, 2], str, journal=journal, session="s", metadata={"run": 2})
    info = journal.session("s")
    assert info.metadata == {"model": "gpt", "run": 2}
    assert info.stage == "mandatory"
    assert json.loads(json.dumps(info.to_dict()))["status"] == "completed"


def test_plain_progress_lines_say_what_was_done(
    journal: Journal, capsys: pytest.CaptureFixture[str]
) -> None:
    run_batch(range(5), str, journal=journal, session="nightly", progress=True)
    err = capsys.readouterr().err
    assert "nightly: 5 items" in err
    assert "nightly: completed: 5 done, 0 failed" in err


def test_a_session_being_run_cannot_be_run_twice_at_once(journal: Journal) -> None:
    entered = threading.Event()
    release = threading.Event()
    errors: list[BaseException] = []

    def slow(n: int) -> int:
        entered.set()
        release.wait(10)
        return n

    def first() -> None:
        try:
            run_batch([1], slow, journal=journal, session="s", handle_signals=False)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    runner = threading.Thread(target=first)
    runner.start()
    try:
        assert entered.wait(10)
        assert journal.session("s").active
        from stalwart.journal import JournalError

        with pytest.raises(JournalError, match="is being run by"):
            run_batch([1], slow, journal=journal, session="s")
    finally:
        release.set()
        runner.join(10)
    assert errors == []
    assert journal.results("s") == {1: 1}


def test_the_rich_bar_on_a_terminal_keeps_saying_paused_until_the_pause_ends() -> None:
    import io

    from stalwart.journal._progress import display_for

    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    out = Terminal()
    bar = display_for(True, "nightly", out)
    bar.start(10, 2)
    bar.paused(1_800_000_000.0, "rate limited")
    bar.progress(5, 10, 3, 0, 2.0, 2.5)  # records committed during the pause
    status = bar._bar.tasks[0].fields["status"]  # type: ignore[attr-defined]
    assert "paused until" in status
    assert "(rate limited)" in status
    bar.resumed()
    assert bar._bar.tasks[0].fields["status"] == ""  # type: ignore[attr-defined]
    bar.progress(10, 10, 8, 0, 2.0, 0.0)
    from stalwart.journal import BatchReport, SessionStatus

    bar.finish(BatchReport(session="nightly", status=SessionStatus.COMPLETED, total=10, done=8,
                           failed=0, skipped=2, remaining=0, duration=4.0, pauses=1,
                           paused_seconds=1.0))  # fmt: skip
    import re

    text = re.sub(r"\x1b\[[0-9;?]*[a-zA-Z]", "", out.getvalue())
    assert "completed: 8 done, 0 failed, 2 skipped, 1 pauses (1.0 s)" in text


def test_a_journal_thread_that_fails_stops_the_run_instead_of_hanging(
    journal: Journal, monkeypatch: pytest.MonkeyPatch
) -> None:
    import stalwart
    from stalwart.journal import BatchProgress, JournalError

    def broken(event: BatchProgress) -> None:
        raise RuntimeError("listener bug")  # listeners are guarded: logged, not raised

    stalwart.add_listener(broken, BatchProgress)
    try:
        report = run_batch(range(20), str, journal=journal, session="ok")
    finally:
        stalwart.remove_listener(broken)
    assert report.done == 20

    class Exploding:
        def start(self, total: int, skipped: int) -> None:
            pass

        def progress(self, *args: object) -> None:
            raise RuntimeError("display bug")

        def __getattr__(self, name: str) -> Any:
            return lambda *a, **k: None

    from stalwart.journal import _runner

    monkeypatch.setattr(_runner, "display_for", lambda *a, **k: Exploding())
    with pytest.raises(JournalError, match=r"journal thread failed.*display bug"):
        run_batch(range(20), str, journal=journal, session="broken", handle_signals=False)
    # What was committed before the failure stays; the status says whether that was all.
    info = journal.session("broken")
    whole = len(journal.results("broken")) == 20
    assert info.status is (SessionStatus.COMPLETED if whole else SessionStatus.PAUSED)


def test_a_resume_with_other_items_is_complete_only_when_its_own_items_are(
    journal: Journal,
) -> None:
    run_batch(range(10), str, journal=journal, session="s")
    # A new input of 10 items, half new: stopped before any new one is recorded.
    breaker = CircuitBreaker("llm", failure_threshold=1)
    breaker.force_open()
    report = run_batch(
        range(5, 15), str, journal=journal, session="s", breaker=breaker, max_pause=1
    )
    assert (report.skipped, report.remaining) == (5, 5)
    assert report.status is SessionStatus.PAUSED  # 10 done in the session, but not these
    assert journal.session("s").resumable
