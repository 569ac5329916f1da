"""Type-checked only (mypy --strict): the journal's public API as users write it."""

from __future__ import annotations

import argparse

from stalwart import CircuitBreaker, Retry
from stalwart.journal import (
    BatchReport,
    Journal,
    SessionInfo,
    SessionStatus,
    add_arguments,
    arun_batch,
    batch_options,
    run_batch,
)


def describe(item: dict[str, str]) -> dict[str, str]:
    return {"id": item["id"]}


async def adescribe(item: dict[str, str]) -> dict[str, str]:
    return {"id": item["id"]}


def sync_run(journal: Journal, items: list[dict[str, str]]) -> BatchReport:
    return run_batch(
        items, describe, journal=journal, session="s", key=lambda i: i["id"], concurrency=4,
        breaker=CircuitBreaker("llm"), retry=Retry(on=OSError), validate=bool, progress=True,
    )  # fmt: skip


async def async_run(journal: Journal, items: list[dict[str, str]]) -> SessionStatus:
    report = await arun_batch(items, adescribe, journal=journal, session="s", max_pause=60.0)
    return report.status


def listing(journal: Journal) -> list[str]:
    sessions: list[SessionInfo] = journal.sessions(resumable=True)
    return [s.id for s in sessions if s.remaining > 0]


def flags(journal: Journal) -> BatchReport:
    args = add_arguments(argparse.ArgumentParser()).parse_args([])
    return run_batch([1, 2], str, journal=journal, **batch_options(args, journal))
