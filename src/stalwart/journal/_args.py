"""Seed 002's command-line flags for a user's own batch script (argparse).

::

    parser = argparse.ArgumentParser()
    add_arguments(parser, journal="batch.db")
    args = parser.parse_args()
    journal = Journal(args.journal)
    if args.list_resumable:
        raise SystemExit(list_resumable(journal))
    run_batch(items, fn, journal=journal, **batch_options(args, journal, breaker=llm))
"""

from __future__ import annotations

import argparse
import sys
from datetime import datetime
from typing import Any, TextIO

from .._breaker import CircuitBreaker
from ._journal import Journal
from ._model import iso
from ._runner import DEFAULT_CONCURRENCY

__all__ = ("add_arguments", "batch_options", "list_resumable")


def add_arguments(
    parser: argparse.ArgumentParser,
    *,
    journal: str = "batch.db",
    concurrency: int = DEFAULT_CONCURRENCY,
) -> argparse.ArgumentParser:
    """Add ``--journal``, ``--session-id``, ``--resume-session``, ``--list-resumable``,
    ``--retry-failed``, ``--disable-circuit-breaker`` and ``--concurrency`` (alias
    ``--max-concurrent``) to ``parser``, in a group of their own."""
    group = parser.add_argument_group("checkpoint and resume (stalwart.journal)")
    group.add_argument(
        "--journal", default=journal, metavar="PATH_OR_URL",
        help=f"where progress is recorded: a SQLite file or postgresql://... (default {journal})",
    )  # fmt: skip
    which = group.add_mutually_exclusive_group()
    which.add_argument(
        "--session-id", metavar="ID", default=None,
        help="name this run (default: run-YYYYMMDD-HHMMSS); an existing name is resumed",
    )  # fmt: skip
    which.add_argument(
        "--resume-session", metavar="ID", default=None,
        help="resume session ID: items already recorded are not run again",
    )  # fmt: skip
    which.add_argument(
        "--list-resumable", action="store_true",
        help="list the sessions that can be resumed, and exit",
    )  # fmt: skip
    group.add_argument(
        "--retry-failed", action="store_true",
        help="when resuming, run the items that failed last time again",
    )  # fmt: skip
    group.add_argument(
        "--disable-circuit-breaker", action="store_true",
        help="call the API without the circuit breaker (no coordinated pause on rate limits)",
    )  # fmt: skip
    group.add_argument(
        "--concurrency", "--max-concurrent", dest="concurrency", type=_positive_int,
        default=concurrency, metavar="N",
        help=f"items in flight at once (default {concurrency})",
    )  # fmt: skip
    return parser


def batch_options(
    args: argparse.Namespace, journal: Journal, *, breaker: CircuitBreaker | None = None
) -> dict[str, Any]:
    """``run_batch`` keyword arguments from the parsed flags: ``session``, ``concurrency``,
    ``breaker`` (None with ``--disable-circuit-breaker``) and ``retry_failed``.
    ``--resume-session`` of an unknown session raises :class:`SessionNotFound`."""
    if args.resume_session is not None:
        journal.session(args.resume_session)  # SessionNotFound names it
        session = args.resume_session
    elif args.session_id is not None:
        session = args.session_id
    else:
        session = datetime.now().strftime("run-%Y%m%d-%H%M%S")
    return {
        "session": session,
        "concurrency": args.concurrency,
        "breaker": None if args.disable_circuit_breaker else breaker,
        "retry_failed": bool(args.retry_failed),
    }


def list_resumable(journal: Journal, out: TextIO | None = None) -> int:
    """Print the sessions worth resuming (one line each, with the command's flag); 0."""
    out = out if out is not None else sys.stdout
    found = journal.sessions(resumable=True)
    if not found:
        print(f"no resumable sessions in {journal.url}", file=out)
        return 0
    for s in found:
        print(
            f"{s.id}  {s.status.value:<9} {s.done}/{s.total} done, {s.failed} failed, "
            f"updated {iso(s.updated_at)}  -> --resume-session {s.id}",
            file=out,
        )
    return 0


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a whole number >= 1, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a whole number >= 1, got {text!r}")
    return value
