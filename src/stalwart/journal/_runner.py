"""``run_batch`` and ``arun_batch``: run items with bounded concurrency, recording each one.

One :class:`_Run` holds everything a run shares: the :class:`~._core.BatchCore` (under a
lock), the journal thread that commits records in groups and hands out keys, the
listeners on the breaker and the retry, the progress display. The two drivers differ only
in how a worker calls, waits and sleeps: threads (``run_batch``) or asyncio tasks
(``arun_batch``). Every decision is the core's; every item is settled by
:meth:`_Run.settle`.
"""

from __future__ import annotations

import asyncio
import contextvars
import json
import queue
import signal
import sys
import threading
import weakref
from collections.abc import Awaitable, Callable, Iterable, Iterator
from contextlib import contextmanager, suppress
from typing import Any, TypedDict, TypeVar, Unpack

from .._backoff import default_retry_after
from .._breaker import CircuitBreaker
from .._clock import Clock
from .._drivers import is_async_callable
from .._errors import ConfigError, DeadlineExceeded, Rejected
from .._events import EventHub, StateTransition
from .._retry import Retry, RetryAttempt
from .._strategy import strategy_clock
from .._types import State
from .._validate import optional_positive, whole
from ._core import BatchCore, Paused, Resumed, Take, Wait
from ._events import BatchFinished, BatchPaused, BatchProgress, BatchResumed, BatchStarted
from ._model import (
    BatchReport,
    JournalError,
    ResultNotSerializable,
    SessionStatus,
    decode_key,
    encode_key,
    encode_result,
)
from ._progress import Display, display_for
from ._store import EventRow, ItemRow, new_owner

__all__ = (
    "DEFAULT_CONCURRENCY",
    "DEFAULT_MAX_PAUSE",
    "BatchOptions",
    "LiveRun",
    "arun_batch",
    "live_runs",
    "run_batch",
)

T = TypeVar("T")

DEFAULT_CONCURRENCY = 8
DEFAULT_MAX_PAUSE = 3600.0
"""Seconds a run may spend paused in all before it stops (session paused, resumable)."""
PROBE_WAIT = 1.0
"""Seconds to wait when the breaker refuses while its probe decides (no retry_in known);
a close ends the wait at once."""
WAIT_SLICE = 0.1
"""Pauses are slept in slices this long, so a stop or an early end is seen soon."""
MAX_BATCH = 2048
"""Records per transaction at most."""
MAX_UNCOMMITTED = 4096
"""Records handed to the journal and not committed yet, at most: workers wait beyond it."""
CLAIM_POLL = 0.5
"""Seconds between claims while other runners hold the session's last items (PostgreSQL):
a runner that dies leaves them to the others this soon after its lease ends."""
MAX_SESSION_ID = 200
_ERROR_TEXT = 2000


class _Close:
    """Told to the journal thread: nothing more will come."""


class _Want:
    """Told to the journal thread: the workers need more keys."""


_CLOSE, _WANT = _Close(), _Want()
_Message = ItemRow | EventRow | _Close | _Want


class _Current:
    """The item a worker is running, for the retry listener (one per call, in a contextvar)."""

    __slots__ = ("attempts", "key")

    def __init__(self, key: str) -> None:
        self.key = key
        self.attempts = 1


_CURRENT: contextvars.ContextVar[_Current | None] = contextvars.ContextVar(
    "stalwart_journal_item", default=None
)

_LIVE: weakref.WeakSet[_Run] = weakref.WeakSet()
_LIVE_LOCK = threading.Lock()


# -- the public functions --------------------------------------------------------------


class BatchOptions(TypedDict, total=False):
    """The settings ``run_batch`` and ``arun_batch`` share (see docs/journal.md)."""

    key: Callable[[Any], Any] | None
    concurrency: int
    breaker: CircuitBreaker | None
    retry: Retry | None
    validate: Callable[[Any], object] | None
    progress: bool
    metadata: dict[str, Any] | None
    stage: str | None
    retry_failed: bool
    max_pause: float | None
    handle_signals: bool
    clock: Clock | None


def run_batch(
    items: Iterable[T],
    fn: Callable[[T], Any],
    *,
    journal: Any,
    session: str,
    **options: Unpack[BatchOptions],
) -> BatchReport:
    """Run ``fn(item)`` for every item not yet recorded in ``session``, ``concurrency`` at a
    time (default 8), recording each result (or final error) in ``journal`` as it completes.

    ``session`` names the run: a new name starts it, a known one resumes it (recorded
    items are skipped; ``retry_failed=True`` runs failed ones again). ``key(item)`` (a
    str or int; default: the item itself) names an item across runs. ``retry`` retries an
    item, ``breaker`` guards every call; while the breaker is open, or a call failed with
    a server-given pause (``Retry-After``), every worker waits and the item runs again
    afterwards, for ``max_pause`` seconds in all (default 3600). ``validate(result)``
    returning False (or raising) records the item as failed. ``progress=True`` shows a bar
    or log lines; ``metadata`` and ``stage`` are kept with the session. SIGINT/SIGTERM
    stop cleanly (``handle_signals=False``: leave them alone): running items finish and
    are recorded, the session is left paused. An ``async def`` fn runs on
    :func:`arun_batch` (use that inside a running event loop). See docs/journal.md.
    """
    run = _Run(items, fn, journal=journal, session=session, **options)
    if run.is_async:
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return asyncio.run(_drive_async(run, run.handle_signals))
        raise ConfigError(
            "fn", "is async and an event loop is running here: use await arun_batch(...)"
        )
    return _drive_threads(run, run.handle_signals)


async def arun_batch(
    items: Iterable[T],
    fn: Callable[[T], Awaitable[Any]],
    *,
    journal: Any,
    session: str,
    **options: Unpack[BatchOptions],
) -> BatchReport:
    """:func:`run_batch` for an ``async def`` fn: ``concurrency`` tasks on this loop; the
    journal's I/O runs on its own thread, so the loop never waits on a disk."""
    run = _Run(items, fn, journal=journal, session=session, **options)
    if not run.is_async:
        raise ConfigError(
            "fn", f"must be an async function for arun_batch, got {fn!r}; use run_batch"
        )
    return await _drive_async(run, run.handle_signals)


# -- one run -----------------------------------------------------------------------------


class LiveRun:
    """What the ops app shows of a run in progress (read under the run's lock)."""

    def __init__(self, run: _Run) -> None:
        self._run = run

    def to_dict(self) -> dict[str, Any]:
        return self._run.live()


def live_runs() -> list[dict[str, Any]]:
    """The runs in progress in this process, as the ops app's ``/journal`` shows them."""
    with _LIVE_LOCK:
        runs = list(_LIVE)
    return [run.live() for run in runs if run.core is not None]


class _Run:
    def __init__(
        self,
        items: Iterable[Any],
        fn: Callable[[Any], Any],
        *,
        journal: Any,
        session: str,
        key: Callable[[Any], Any] | None = None,
        concurrency: int = DEFAULT_CONCURRENCY,
        breaker: CircuitBreaker | None = None,
        retry: Retry | None = None,
        validate: Callable[[Any], object] | None = None,
        progress: bool = False,
        metadata: dict[str, Any] | None = None,
        stage: str | None = None,
        retry_failed: bool = False,
        max_pause: float | None = DEFAULT_MAX_PAUSE,
        handle_signals: bool = True,
        clock: Clock | None = None,
    ) -> None:
        from ._journal import Journal

        if not isinstance(journal, Journal):
            raise ConfigError("journal", f"must be a stalwart.journal.Journal, got {journal!r}")
        if not isinstance(session, str) or not session.strip() or len(session) > MAX_SESSION_ID:
            raise ConfigError(
                "session",
                f"must be a non-empty string of at most {MAX_SESSION_ID} characters, "
                f"got {session!r:.80}",
            )
        if not callable(fn):
            raise ConfigError("fn", f"must be callable, got {fn!r}")
        if key is not None and not callable(key):
            raise ConfigError("key", f"must be a function of the item, or None, got {key!r}")
        whole("concurrency", concurrency)
        if breaker is not None and not isinstance(breaker, CircuitBreaker):
            raise ConfigError("breaker", f"must be a CircuitBreaker or None, got {breaker!r}")
        if retry is not None and not isinstance(retry, Retry):
            raise ConfigError("retry", f"must be a stalwart Retry or None, got {retry!r}")
        if validate is not None and not callable(validate):
            raise ConfigError(
                "validate", f"must be a function of the result, or None, got {validate!r}"
            )
        if metadata is not None:
            if not isinstance(metadata, dict):
                raise ConfigError("metadata", f"must be a dict or None, got {metadata!r:.80}")
            try:
                json.dumps(metadata, allow_nan=False)
            except (TypeError, ValueError) as exc:
                raise ConfigError("metadata", f"must be JSON-serialisable: {exc}") from None
        if stage is not None and not isinstance(stage, str):
            raise ConfigError("stage", f"must be a string or None, got {stage!r}")
        optional_positive("max_pause", max_pause)
        self.journal = journal
        self.session = session
        self.clock = strategy_clock(clock if clock is not None else journal.clock)
        self.concurrency = concurrency
        self.breaker = breaker
        self.retry = retry
        self.validate = validate
        self.metadata = metadata
        self.stage = stage
        self.retry_failed = retry_failed
        self.max_pause = max_pause
        self.handle_signals = bool(handle_signals)
        self.is_async = is_async_callable(fn)
        self.pairs = _keyed(items, key)
        self.call = _compose(fn, breaker, retry)
        self.hint = breaker.config.retry_after_from if breaker is not None else default_retry_after
        self.display: Display = display_for(progress, session)
        self.owner = new_owner()
        self.lock = threading.Lock()
        self.cond = threading.Condition(self.lock)
        self.messages: queue.SimpleQueue[_Message] = queue.SimpleQueue()
        self.hub = EventHub()
        self.core: BatchCore | None = None
        self.wake: Callable[[], None] = self._wake_threads
        self.writer: threading.Thread | None = None
        self.started_wall = 0.0
        self.status: SessionStatus | None = None
        self._showing_pause = False

    # -- start and end (blocking I/O: the async driver runs them in a thread) ---------

    def start(self) -> None:
        backend = self.journal.backend
        conn = backend.connect()
        try:
            now = self.clock.time()
            begun = conn.begin(
                self.session, [k for k, _ in self.pairs], owner=self.owner, now=now,
                lease=self.journal.lease, metadata=self.metadata, stage=self.stage,
                retry_failed=self.retry_failed,
            )  # fmt: skip
        except BaseException:
            conn.close()
            raise
        self.conn = conn
        self.started_wall = now
        first = len(self.pairs) + 1 if not backend.shared else self.concurrency * 4
        self.core = BatchCore(
            total=len(self.pairs),
            skipped=begun.skipped,
            max_pause=self.max_pause,
            max_uncommitted=MAX_UNCOMMITTED,
            low_water=self.concurrency * 2,
            now=self.clock.monotonic(),
        )
        self.lookup = dict(self.pairs)
        try:
            self._feed(first)
        except BaseException:
            self._end_writer_less()
            raise
        self._event(
            "started" if begun.created else "resumed",
            None,
            skipped=begun.skipped,
            total=len(self.pairs),
        )
        if self.breaker is not None:
            self.breaker.add_listener(self._on_transition, StateTransition)
        if self.retry is not None:
            self.retry.add_listener(self._on_retry, RetryAttempt)
        self.writer = threading.Thread(
            target=self._write_loop, name=f"stalwart-journal-{self.session}", daemon=True
        )
        self.writer.start()
        with _LIVE_LOCK:
            _LIVE.add(self)
        self.display.start(len(self.pairs), begun.skipped)
        self._emit(
            BatchStarted, total=len(self.pairs), skipped=begun.skipped, resumed=not begun.created
        )

    def _end_writer_less(self) -> None:
        try:
            self.conn.finish(self.session, self.owner, self.clock.time(), complete=False)
        finally:
            self.conn.close()

    def finish(self) -> BatchReport:
        core = self._core()
        with self.lock:
            if core.pause_started is not None:
                core.lift(self.clock.monotonic())
        self.messages.put(_CLOSE)
        if self.writer is not None:
            self.writer.join()
        if self.breaker is not None:
            self.breaker.remove_listener(self._on_transition)
        if self.retry is not None:
            self.retry.remove_listener(self._on_retry)
        with _LIVE_LOCK:
            _LIVE.discard(self)
        try:
            complete = core.recorded >= core.total
            self.status = self.conn.finish(
                self.session, self.owner, self.clock.time(), complete=complete
            )
        finally:
            self.conn.close()
        report = BatchReport(
            session=self.session,
            status=self.status,
            total=core.total,
            done=core.done,
            failed=core.failed,
            skipped=core.skipped,
            remaining=max(0, core.total - core.recorded),
            duration=self.clock.monotonic() - core.started,
            pauses=core.pauses,
            paused_seconds=core.paused_seconds,
            stopped=core.stopped,
        )
        self.display.finish(report)
        self._emit(
            BatchFinished,
            status=report.status.value,
            done=report.done,
            failed=report.failed,
            stopped=report.stopped,
        )
        if core.error is not None:
            raise core.error
        return report

    def _core(self) -> BatchCore:
        assert self.core is not None
        return self.core

    # -- what a worker does -------------------------------------------------------------

    def next_step(self) -> Take | Wait | None:
        """The core's answer for a worker (the caller holds ``self.lock``); a pause's end
        is logged here on the way."""
        core = self._core()
        while True:
            step = core.next(self.clock.monotonic())
            if isinstance(step, Resumed):
                self._resumed(step)
                continue
            if isinstance(step, Take) and core.wants_more():
                self.messages.put(_WANT)
            return step

    def begin_item(self, take: Take) -> contextvars.Token[_Current | None]:
        return _CURRENT.set(_Current(take.key))

    def settle(
        self, take: Take, token: contextvars.Token[_Current | None], started: float,
        result: Any, error: BaseException | None,
    ) -> None:  # fmt: skip
        """Record how ``take`` ended, or put it back behind a pause."""
        current = _CURRENT.get()
        _CURRENT.reset(token)
        attempts = current.attempts if current is not None else 1
        core = self._core()
        now = self.clock.monotonic()
        duration = now - started
        if error is not None and not isinstance(error, Exception):
            with self.cond:  # KeyboardInterrupt, SystemExit, cancellation: stop the run
                core.dropped()
                core.stop(
                    "interrupted",
                    None
                    if isinstance(error, asyncio.CancelledError | KeyboardInterrupt)
                    else error,
                )
                self.cond.notify_all()
            return
        if error is not None:
            wait = self._pause_for(error)
            if wait is not None:
                with self.cond:
                    if core.stopped is not None:
                        core.dropped()
                    else:
                        reason = _pause_reason(error)
                        # A refusal while the breaker's probe decides is the tail of the
                        # pause before it, not a pause of its own.
                        probing = isinstance(error, Rejected) and error.retry_in is None
                        paused = core.again_after(
                            take.key, take.item, now, wait, reason, counts=not probing
                        )
                        if paused is not None:
                            self._paused(paused, shown=not probing)
                    self.cond.notify_all()
                return
            row: ItemRow | None = ItemRow(
                take.key, False, None, _describe(error), attempts, self.clock.time(), duration
            )
        else:
            row = self._judge(take, result, attempts, duration)
        if row is None:
            return
        with self.cond:
            core.handed()
        self.messages.put(row)
        if not row.ok:
            self.messages.put(
                EventRow(
                    self.clock.time(),
                    "item_failed",
                    take.key,
                    json.dumps({"error": row.error, "attempts": attempts}),
                )
            )

    def _judge(self, take: Take, result: Any, attempts: int, duration: float) -> ItemRow | None:
        core = self._core()
        if self.validate is not None:
            problem: str | None
            try:
                verdict = self.validate(result)
            except Exception as exc:
                problem = f"rejected by validate: {_describe(exc)}"
            else:
                problem = (
                    None
                    if verdict is not False
                    else f"rejected by validate: {_short(repr(result))}"
                )
            if problem is not None:
                return ItemRow(
                    take.key, False, None, problem, attempts, self.clock.time(), duration
                )
        try:
            text = encode_result(decode_key(take.key), result)
        except ResultNotSerializable as exc:
            with self.cond:
                core.dropped()
                core.stop("error", exc)
                self.cond.notify_all()
            return None
        return ItemRow(take.key, True, text, None, attempts, self.clock.time(), duration)

    def _pause_for(self, error: BaseException) -> float | None:
        """Seconds every worker should wait before this item runs again; None: a failure."""
        if isinstance(error, DeadlineExceeded):
            return None
        if isinstance(error, Rejected):  # an open breaker, a full bulkhead, a limiter
            return error.retry_in if error.retry_in is not None else PROBE_WAIT
        try:
            hint = self.hint(error)
        except Exception:
            return None
        if not isinstance(hint, float | int):
            return None
        if self.breaker is not None:  # it may stay open longer (its recovery_timeout)
            hint = max(hint, self.breaker.snapshot().retry_in or 0.0)
        return float(hint)

    def stop(self, reason: str) -> None:
        core = self._core()
        with self.cond:
            core.stop(reason)
            self.cond.notify_all()
        self.wake()

    # -- the journal thread ----------------------------------------------------------------

    def _write_loop(self) -> None:
        """The journal thread: commits records in groups, beats, hands out keys. If it
        dies of a bug (a display that raises, say), the run stops instead of hanging."""
        try:
            self._write_until_closed()
        except BaseException as exc:
            self._fail(JournalError(f"the journal thread failed: {type(exc).__name__}: {exc}"))
            self.wake()

    def _write_until_closed(self) -> None:
        core = self._core()
        beat_every = self.journal.lease / 3
        next_beat = self.clock.monotonic() + beat_every
        closing = broken = False
        while not closing:
            try:
                first = self.messages.get(timeout=min(CLAIM_POLL, beat_every))
            except queue.Empty:
                batch: list[_Message] = []
            else:
                batch = [first]
                try:
                    while len(batch) < MAX_BATCH:
                        batch.append(self.messages.get_nowait())
                except queue.Empty:
                    pass
            items = [m for m in batch if isinstance(m, ItemRow)]
            events = [m for m in batch if isinstance(m, EventRow)]
            closing = any(m is _CLOSE for m in batch)
            want = any(m is _WANT for m in batch)
            if (items or events) and not broken:
                try:
                    self.conn.write(self.session, self.owner, items, events)
                except Exception as exc:
                    broken = True
                    self._fail(JournalError(f"could not record to {self.journal.url}: {exc}"))
                else:
                    self._committed(items)
            elif broken:
                with self.cond:
                    core.uncommitted -= len(items)
            now = self.clock.monotonic()
            try:
                if not broken and now >= next_beat:
                    next_beat = now + beat_every
                    self.conn.heartbeat(
                        self.session, self.owner, self.clock.time(), self.journal.lease
                    )
                if not broken and not closing:
                    with self.lock:
                        want = want or core.wants_more()
                    if want:
                        self._feed(self.concurrency * 4)
            except Exception as exc:
                broken = True
                self._fail(JournalError(f"journal {self.journal.url}: {exc}"))
            self.wake()

    def _feed(self, limit: int) -> None:
        core = self._core()
        keys, exhausted = self.conn.claim(
            self.session, self.owner, limit, self.clock.time(), self.journal.lease
        )
        known = [(k, self.lookup[k]) for k in keys if k in self.lookup]
        foreign = [k for k in keys if k not in self.lookup]
        if foreign:  # another runner's input had keys this one lacks: leave them to it
            self.conn.release(self.session, self.owner, foreign)
            exhausted = exhausted or not known
        with self.cond:
            core.feed(known, exhausted=exhausted)
            self.cond.notify_all()

    def _committed(self, items: list[ItemRow]) -> None:
        core = self._core()
        done = sum(1 for i in items if i.ok)
        failed = len(items) - done
        now = self.clock.monotonic()
        with self.cond:
            if items:
                core.committed(now, done, failed)
            recorded, total = core.recorded, core.total
            self.cond.notify_all()
        if items:
            self.display.progress(
                recorded, total, core.done, core.failed, core.rate(now), core.eta(now)
            )
            if self.hub._all:
                self._emit(BatchProgress, done=done, failed=failed, recorded=recorded, total=total)

    def _fail(self, error: JournalError) -> None:
        core = self._core()
        with self.cond:
            core.stop("error", error)
            self.cond.notify_all()

    # -- events ----------------------------------------------------------------------------

    def _on_transition(self, event: StateTransition) -> None:
        self._event(
            f"breaker_{event.new.value}",
            None,
            breaker=event.name,
            reason=event.reason,
            retry_in=event.retry_in,
        )
        if event.new is State.CLOSED and self.core is not None:
            with self.cond:
                resumed = self.core.lift(self.clock.monotonic())
                if resumed is not None:
                    self._resumed(resumed)
                self.cond.notify_all()
            self.wake()

    def _on_retry(self, event: RetryAttempt) -> None:
        current = _CURRENT.get()
        if current is None:  # the retry is used outside this run too
            return
        current.attempts += 1
        error = None if event.exception is None else _describe(event.exception)
        self._event(
            "retry", current.key, attempt=event.attempt, delay=round(event.delay, 3), error=error
        )

    def _paused(self, paused: Paused, *, shown: bool = True) -> None:
        """Log a pause; a new one (not a wait for the breaker's probe) is also shown and
        emitted."""
        kind = "paused" if paused.new else "pause_extended"
        self._event(kind, None, seconds=round(paused.seconds, 3), reason=paused.reason)
        if paused.new and shown:
            self._showing_pause = True
            self.display.paused(self.clock.time() + paused.seconds, paused.reason)
            self._emit(BatchPaused, seconds=paused.seconds, reason=paused.reason)

    def _resumed(self, resumed: Resumed) -> None:
        self._event("resumed", None, paused_seconds=round(resumed.seconds, 3), early=resumed.early)
        if self._showing_pause:
            self._showing_pause = False
            self.display.resumed()
        self._emit(BatchResumed, paused_seconds=resumed.seconds)

    def _event(self, kind: str, key: str | None, **detail: Any) -> None:
        self.messages.put(EventRow(self.clock.time(), kind, key, json.dumps(detail, default=str)))

    def _emit(self, cls: type[Any], **fields: Any) -> None:
        if self.hub._all:
            self.hub.emit(
                cls(name=self.session, strategy="journal", at=self.clock.monotonic(), **fields)
            )

    def _wake_threads(self) -> None:
        with self.cond:
            self.cond.notify_all()

    def live(self) -> dict[str, Any]:
        core = self._core()
        now = self.clock.monotonic()
        with self.lock:
            paused = core.pause_started is not None
            return {
                "session": self.session,
                "journal": self.journal.url,
                "total": core.total,
                "recorded": core.recorded,
                "done": core.done,
                "failed": core.failed,
                "skipped": core.skipped,
                "in_flight": core.in_flight,
                "rate": core.rate(now),
                "eta": core.eta(now),
                "paused": paused,
                "paused_for": max(0.0, core.paused_until - now) if paused else None,
                "pause_reason": core.pause_reason,
                "pauses": core.pauses,
                "paused_seconds": core.paused_seconds,
                "stopping": core.stopped,
                "concurrency": self.concurrency,
                "started_at": self.started_wall,
            }


# -- the drivers -------------------------------------------------------------------------


def _drive_threads(run: _Run, handle_signals: bool) -> BatchReport:
    run.start()
    with _signals_stop(run, handle_signals):
        workers = [
            threading.Thread(
                target=_work_thread, args=(run,), name=f"stalwart-batch-{i}", daemon=True
            )
            for i in range(min(run.concurrency, max(1, len(run.pairs))))
        ]
        for worker in workers:
            worker.start()
        try:
            for worker in workers:
                while worker.is_alive():
                    worker.join(0.25)  # with a timeout, so signals reach this thread
        except KeyboardInterrupt:
            run.stop("interrupted")  # a second Ctrl-C: record what is done, leave now
            run.finish()
            raise
    return run.finish()


def _work_thread(run: _Run) -> None:
    clock = run.clock
    while True:
        with run.cond:
            step = run.next_step()
            if isinstance(step, Wait) and step.until is None:
                run.cond.wait(1.0)
                continue
        if step is None:
            return
        if isinstance(step, Wait):
            clock.sleep(max(0.0, min(WAIT_SLICE, step.until - clock.monotonic())))  # type: ignore[operator]
            continue
        token = run.begin_item(step)
        started = clock.monotonic()
        try:
            result = run.call(step.item)
        except BaseException as exc:
            run.settle(step, token, started, None, exc)
            if not isinstance(exc, Exception):
                raise
        else:
            run.settle(step, token, started, result, None)


async def _drive_async(run: _Run, handle_signals: bool) -> BatchReport:
    loop = asyncio.get_running_loop()
    wakeup = asyncio.Event()

    def wake() -> None:
        loop.call_soon_threadsafe(wakeup.set)

    run.wake = wake
    await asyncio.to_thread(run.start)
    count = min(run.concurrency, max(1, len(run.pairs)))
    try:
        with _loop_signals_stop(run, loop, handle_signals):
            tasks = [asyncio.ensure_future(_work_task(run, wakeup)) for _ in range(count)]
            try:
                await asyncio.gather(*tasks)
            except BaseException:
                run.stop("interrupted")
                for task in tasks:
                    task.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)
                raise
    except BaseException:
        await asyncio.to_thread(run.finish)
        raise
    return await asyncio.to_thread(run.finish)


async def _work_task(run: _Run, wakeup: asyncio.Event) -> None:
    clock = run.clock
    while True:
        wakeup.clear()
        with run.lock:
            step = run.next_step()
        if step is None:
            return
        if isinstance(step, Wait):
            if step.until is None:
                with suppress(TimeoutError):
                    await asyncio.wait_for(wakeup.wait(), 1.0)
            else:
                await clock.asleep(max(0.0, min(WAIT_SLICE, step.until - clock.monotonic())))
            continue
        token = run.begin_item(step)
        started = clock.monotonic()
        try:
            result = await run.call(step.item)
        except BaseException as exc:
            run.settle(step, token, started, None, exc)
            if not isinstance(exc, Exception):
                raise
        else:
            run.settle(step, token, started, result, None)


@contextmanager
def _signals_stop(run: _Run, enabled: bool) -> Iterator[None]:
    """SIGINT/SIGTERM stop the run cleanly (the second one interrupts at once)."""
    if not enabled or threading.current_thread() is not threading.main_thread():
        yield
        return
    previous: dict[int, Any] = {}
    seen = 0

    def handler(signum: int, frame: Any) -> None:
        nonlocal seen
        seen += 1
        if seen > 1:
            raise KeyboardInterrupt
        run.display.note(f"{signal.Signals(signum).name}: finishing running items, then stopping")
        run.stop("signal")

    for signum in (signal.SIGINT, signal.SIGTERM):
        previous[signum] = signal.signal(signum, handler)
    try:
        yield
    finally:
        for number, old in previous.items():
            signal.signal(number, old)


@contextmanager
def _loop_signals_stop(run: _Run, loop: asyncio.AbstractEventLoop, enabled: bool) -> Iterator[None]:
    if (
        not enabled
        or threading.current_thread() is not threading.main_thread()
        or sys.platform == "win32"
    ):
        yield
        return
    seen = 0
    main = asyncio.current_task()

    def handler(sig: signal.Signals) -> None:
        nonlocal seen
        seen += 1
        if seen > 1 and main is not None:
            main.cancel()
            return
        run.display.note(f"{sig.name}: finishing running items, then stopping")
        run.stop("signal")

    installed = []
    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            loop.add_signal_handler(sig, handler, sig)
        except (NotImplementedError, RuntimeError):
            continue
        installed.append(sig)
    try:
        yield
    finally:
        for sig in installed:
            loop.remove_signal_handler(sig)


# -- helpers -------------------------------------------------------------------------------


def _keyed(items: Iterable[Any], key: Callable[[Any], Any] | None) -> list[tuple[str, Any]]:
    if isinstance(items, str | bytes) or not isinstance(items, Iterable):
        raise ConfigError("items", f"must be an iterable of items, got {items!r:.80}")
    pairs: list[tuple[str, Any]] = []
    seen: dict[str, int] = {}
    for index, item in enumerate(items):
        k = item if key is None else key(item)
        if key is None and (isinstance(k, bool) or not isinstance(k, str | int)):
            raise ConfigError(
                "key",
                f"is needed: item {index} is a {type(item).__name__}, not a str or int "
                "key of its own; pass key=lambda item: item['id'] (a str or int)",
            )
        text = encode_key(k)
        if text in seen:
            raise ConfigError(
                "key", f"must be unique: items {seen[text]} and {index} both have key {k!r:.80}"
            )
        seen[text] = index
        pairs.append((text, item))
    return pairs


def _compose(
    fn: Callable[[Any], Any], breaker: CircuitBreaker | None, retry: Retry | None
) -> Callable[[Any], Any]:
    """retry(breaker(fn)): each attempt is guarded; a rejection is not retried unless
    the retry's ``on=`` asks for it (the run pauses on it instead)."""
    call = fn
    if breaker is not None:
        call = breaker(call)
    if retry is not None:
        call = retry(call)
    return call


def _pause_reason(error: BaseException) -> str:
    if isinstance(error, Rejected):
        return f"{error._what()}: {error.name}"
    status = getattr(error, "status_code", None) or getattr(
        getattr(error, "response", None), "status_code", None
    )
    return "rate limited" if status in (429, None) else f"HTTP {status}, retry later"


def _describe(error: BaseException) -> str:
    return _short(f"{type(error).__name__}: {error}")


def _short(text: str) -> str:
    return text if len(text) <= _ERROR_TEXT else text[: _ERROR_TEXT - 1] + "…"
