"""Seed 002's batch: every product x every criterion -> one LLM call, checkpointed.

Each answer is recorded in the journal the moment it arrives. A rate limit (429 with
Retry-After) opens the breaker at once, so every worker pauses together and resumes
together; nothing is recorded as failed for it. Stopped (Ctrl-C, SIGTERM, a crash), the
run resumes where it was with ``--resume-session ID``; ``--list-resumable`` shows what
can be resumed.

    python examples/llm_batch/pipeline.py --local                 # a bundled local API
    OPENAI_BASE_URL=https://api.openai.com/v1 OPENAI_API_KEY=... \\
        python examples/llm_batch/pipeline.py --model gpt-4o-mini
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

import openai

from stalwart import CircuitBreaker, Retry
from stalwart.journal import (
    Journal,
    SessionStatus,
    add_arguments,
    batch_options,
    list_resumable,
    run_batch,
)

PRODUCTS = ("CDN", "DDoS Protection", "Managed DNS", "Object Storage", "WAAP")
MANDATORY = ("security certifications", "SLA and uptime", "data residency")
NICE_TO_HAVE = ("API and Terraform support", "pricing transparency")


def work_items(products: tuple[str, ...] = PRODUCTS) -> list[dict[str, str]]:
    """One item per product and criterion, keyed "product/criterion"."""
    return [
        {"id": f"{product}/{criterion}", "product": product, "criterion": criterion, "kind": kind}
        for product in products
        for kind, criteria in (("mandatory", MANDATORY), ("nice_to_have", NICE_TO_HAVE))
        for criterion in criteria
    ]


def describer(client: openai.OpenAI, model: str) -> Any:
    def describe(item: dict[str, str]) -> dict[str, Any]:
        answer = client.chat.completions.create(
            model=model,
            messages=[
                {"role": "system", "content": "You assess cloud products against criteria."},
                {
                    "role": "user",
                    "content": f"Assess {item['product']} on {item['criterion']} ({item['kind']}).",
                },
            ],
        )
        usage = answer.usage
        return {
            "product": item["product"],
            "criterion": item["criterion"],
            "text": answer.choices[0].message.content or "",
            "tokens": usage.total_tokens if usage else None,
        }

    return describe


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Assess products against criteria with an LLM.")
    parser.add_argument("--base-url", default=os.environ.get("OPENAI_BASE_URL"))
    parser.add_argument("--model", default=os.environ.get("OPENAI_MODEL", "local-model"))
    parser.add_argument("--local", action="store_true", help="start the bundled local API")
    parser.add_argument("--breaker-timeout", type=float, default=30.0, metavar="SECONDS",
                        help="how long the breaker stays open at least (default 30)")  # fmt: skip
    parser.add_argument("--export", type=Path, default=None, metavar="FILE.jsonl")
    add_arguments(parser, journal="llm_batch.db", concurrency=8)
    args = parser.parse_args(argv)

    journal = Journal(args.journal)
    if args.list_resumable:
        return list_resumable(journal)
    base_url = args.base_url
    if args.local:
        from local_llm import start  # the example's own server, next to this file

        base_url = start(burst=20, cooldown=2.0).base_url
    if not base_url:
        parser.error("give --base-url (or OPENAI_BASE_URL), or --local")

    # The client's own retries are off: stalwart retries, and pauses everyone on a 429.
    client = openai.OpenAI(base_url=base_url, api_key=os.environ.get("OPENAI_API_KEY", "local"),
                           max_retries=0, timeout=60.0)  # fmt: skip
    llm = CircuitBreaker("llm", failure_threshold=5, recovery_timeout=args.breaker_timeout)
    transient = Retry(
        on=(openai.APIConnectionError, openai.APITimeoutError, openai.InternalServerError),
        max_attempts=4, base_delay=1.0, max_delay=20.0,
    )  # fmt: skip
    options = batch_options(args, journal, breaker=llm)
    report = run_batch(
        work_items(), describer(client, args.model), journal=journal,
        key=lambda item: item["id"], retry=transient, validate=lambda r: bool(r["text"]),
        progress=True, metadata={"model": args.model, "base_url": base_url}, **options,
    )  # fmt: skip
    if args.export:
        with open(args.export, "w", encoding="utf-8") as out:
            journal.export(report.session, out)
    journal.close()
    print(f"session {report.session}: {report.status.value}, {report.done} done, "
          f"{report.failed} failed, {report.skipped} skipped, {report.pauses} pauses")  # fmt: skip
    if report.status is SessionStatus.PAUSED:
        print(f"resume with: --resume-session {report.session}")
        return 130 if report.stopped == "signal" else 2
    return 1 if report.failed else 0


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).parent))
    sys.exit(main())
