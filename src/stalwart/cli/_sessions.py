"""``stalwart sessions``: list, show, export and clean a journal's batch sessions."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from ..journal import Journal, JournalError
from ..journal._model import iso

__all__ = ("add_parser", "command")

EXIT_ERROR = 2
_COLUMNS = ("ID", "STATUS", "DONE", "FAILED", "TOTAL", "RUNS", "UPDATED")


def add_parser(commands: Any) -> None:
    sessions = commands.add_parser(
        "sessions",
        help="list, show, export or clean the batch sessions of a journal",
        description="Read a stalwart.journal journal (a SQLite file or postgresql://...).",
    )
    sessions.add_argument(
        "--journal", required=True, metavar="PATH_OR_URL",
        help="the journal: a SQLite file (sqlite:///PATH) or postgresql://USER@HOST/DB",
    )  # fmt: skip
    actions = sessions.add_subparsers(dest="action", metavar="ACTION", required=True)
    listing = actions.add_parser("list", help="every session, oldest first")
    listing.add_argument("--resumable", action="store_true", help="only those worth resuming")
    listing.add_argument("--json", action="store_true", help="JSON on stdout")
    show = actions.add_parser("show", help="one session: counts, metadata, recent events")
    show.add_argument("id")
    show.add_argument("--events", type=int, default=20, metavar="N", help="last N events (20)")
    show.add_argument("--json", action="store_true", help="JSON on stdout")
    export = actions.add_parser("export", help="every recorded item, to stdout")
    export.add_argument("id")
    export.add_argument("--format", choices=("jsonl", "json"), default="jsonl")
    clean = actions.add_parser("clean", help="remove sessions not updated for a while")
    clean.add_argument(
        "--older-than", required=True, metavar="AGE", help="7d, 12h, 30m, 90s or seconds"
    )
    clean.add_argument("--dry-run", action="store_true", help="say what would go, remove nothing")


def command(args: argparse.Namespace) -> int:
    try:
        with Journal(args.journal, create=False) as journal:
            return _ACTIONS[args.action](journal, args)
    except (JournalError, ValueError) as exc:  # ValueError: ConfigError and its kin
        print(f"stalwart sessions: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except BrokenPipeError:  # `| head`: the reader has what it wanted
        sys.stderr.close()
        return 0


def _list(journal: Journal, args: argparse.Namespace) -> int:
    found = journal.sessions(resumable=args.resumable)
    if args.json:
        print(json.dumps([s.to_dict() for s in found], indent=2))
        return 0
    if not found:
        print(f"no {'resumable ' if args.resumable else ''}sessions in {journal.url}")
        return 0
    rows = [
        (
            s.id,
            s.status.value + (" (active)" if s.active else ""),
            str(s.done),
            str(s.failed),
            str(s.total),
            str(s.runs),
            iso(s.updated_at) or "",
        )
        for s in found
    ]
    widths = [max(len(c), *(len(r[i]) for r in rows)) for i, c in enumerate(_COLUMNS)]
    for row in (_COLUMNS, *rows):
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())
    return 0


def _show(journal: Journal, args: argparse.Namespace) -> int:
    info = journal.session(args.id)
    events = journal.events(args.id, limit=max(0, args.events))
    if args.json:
        print(json.dumps({**info.to_dict(), "events": [e.to_dict() for e in events]}, indent=2))
        return 0
    data = info.to_dict()
    for name in ("id", "status", "stage", "total", "done", "failed", "remaining", "runs",
                 "active", "resumable", "created_at", "updated_at", "finished_at"):  # fmt: skip
        print(f"{name:>12}: {data[name]}")
    if info.metadata:
        print(f"{'metadata':>12}: {json.dumps(info.metadata)}")
    if events:
        print("events:")
    for event in events:
        detail = {k: v for k, v in event.to_dict().items() if k not in ("at", "kind", "key")}
        key = "" if event.key is None else f" {event.key!r}"
        print(
            f"  {iso(event.at)} {event.kind}{key} {json.dumps(detail) if detail else ''}".rstrip()
        )
    return 0


def _export(journal: Journal, args: argparse.Namespace) -> int:
    journal.export(args.id, sys.stdout, format=args.format)
    return 0


def _clean(journal: Journal, args: argparse.Namespace) -> int:
    gone = journal.clean(args.older_than, dry_run=args.dry_run)
    verb = "would remove" if args.dry_run else "removed"
    print(f"{verb} {len(gone)} session(s)" + (": " + ", ".join(gone) if gone else ""))
    return 0


_ACTIONS = {"list": _list, "show": _show, "export": _export, "clean": _clean}
