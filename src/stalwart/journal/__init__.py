"""Durable checkpoint and resume for batch jobs (seed 002).

::

    from stalwart.journal import Journal, run_batch

    journal = Journal("batch.db")                 # SQLite, one file; or postgresql://...
    report = run_batch(items, describe, journal=journal, session="nightly",
                       key=lambda item: item["id"], concurrency=8, breaker=llm)
    journal.results("nightly")                    # {key: result}

Every item's result (or final error) is committed the moment it completes, in groups that
share one transaction; a session started again skips what is recorded. While the breaker
is open on a rate limit, every worker waits. See docs/journal.md.
"""

from ._args import add_arguments as add_arguments
from ._args import batch_options as batch_options
from ._args import list_resumable as list_resumable
from ._events import BatchFinished as BatchFinished
from ._events import BatchPaused as BatchPaused
from ._events import BatchProgress as BatchProgress
from ._events import BatchResumed as BatchResumed
from ._events import BatchStarted as BatchStarted
from ._journal import Journal as Journal
from ._model import BatchReport as BatchReport
from ._model import ItemRecord as ItemRecord
from ._model import JournalError as JournalError
from ._model import JournalEvent as JournalEvent
from ._model import ResultNotSerializable as ResultNotSerializable
from ._model import SessionInfo as SessionInfo
from ._model import SessionNotFound as SessionNotFound
from ._model import SessionStatus as SessionStatus
from ._runner import arun_batch as arun_batch
from ._runner import live_runs as live_runs
from ._runner import run_batch as run_batch

__all__ = (
    "BatchFinished",
    "BatchPaused",
    "BatchProgress",
    "BatchReport",
    "BatchResumed",
    "BatchStarted",
    "ItemRecord",
    "Journal",
    "JournalError",
    "JournalEvent",
    "ResultNotSerializable",
    "SessionInfo",
    "SessionNotFound",
    "SessionStatus",
    "add_arguments",
    "arun_batch",
    "batch_options",
    "list_resumable",
    "live_runs",
    "run_batch",
)
