"""A batch run for the crash test: killed at random points by the test, then resumed.

Usage: python crash_child.py JOURNAL SESSION LOG ITEMS CONCURRENCY [async]

Each item appends "PID KEY" to LOG before it works (O_APPEND: one write, never torn, and
in the kernel's hands at once, so a SIGKILL cannot lose it), then returns a result that
depends only on the key, so every run must record the same values.
"""

from __future__ import annotations

import asyncio
import os
import random
import sys
import time

from stalwart.journal import Journal, arun_batch, run_batch


def result_of(n: int) -> dict[str, object]:
    return {"n": n, "square": n * n, "text": f"item-{n}"}


def main() -> None:
    path, session, log, count, concurrency = sys.argv[1:6]
    use_async = len(sys.argv) > 6 and sys.argv[6] == "async"
    fd = os.open(log, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    pid = os.getpid()

    def note(n: int) -> None:
        os.write(fd, f"{pid} {n}\n".encode())

    def work(n: int) -> dict[str, object]:
        note(n)
        time.sleep(random.random() * 0.002)
        return result_of(n)

    async def awork(n: int) -> dict[str, object]:
        note(n)
        await asyncio.sleep(random.random() * 0.002)
        return result_of(n)

    journal = Journal(path)
    items = range(int(count))
    if use_async:
        asyncio.run(
            arun_batch(items, awork, journal=journal, session=session, concurrency=int(concurrency))
        )
    else:
        run_batch(items, work, journal=journal, session=session, concurrency=int(concurrency))
    journal.close()


if __name__ == "__main__":
    main()
