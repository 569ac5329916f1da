"""One runner of a shared PostgreSQL session, for the multi-runner test.

Usage: python pg_child.py DSN SESSION LOG ITEMS CONCURRENCY DELAY

Logs "PID KEY" (O_APPEND) as each item starts, works DELAY seconds, returns a value of
the key. Prints its report as JSON on stdout.
"""

from __future__ import annotations

import json
import os
import sys
import time

from stalwart.journal import Journal, run_batch


def main() -> None:
    dsn, session, log, count, concurrency, delay = sys.argv[1:7]
    fd = os.open(log, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    pid = os.getpid()

    def work(n: int) -> dict[str, int]:
        os.write(fd, f"{pid} {n}\n".encode())
        time.sleep(float(delay))
        return {"n": n, "double": 2 * n}

    with Journal(dsn, lease=5.0) as journal:
        report = run_batch(
            range(int(count)), work, journal=journal, session=session,
            concurrency=int(concurrency),
        )  # fmt: skip
    print(json.dumps(report.to_dict()))


if __name__ == "__main__":
    main()
