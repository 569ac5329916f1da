"""Helpers for tests that use threads: hammering one instance from many, and serving a
loopback test server from one."""

from __future__ import annotations

import socketserver
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager


def run_threads(count: int, target: Callable[[int], None]) -> None:
    """Run ``target(i)`` in ``count`` threads; any thread's exception fails the caller."""
    errors: list[BaseException] = []

    def guarded(i: int) -> None:
        try:
            target(i)
        except BaseException as exc:  # surfaced below, so a broken thread fails the test
            errors.append(exc)

    threads = [threading.Thread(target=guarded, args=(i,)) for i in range(count)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not any(t.is_alive() for t in threads)
    assert errors == []


@contextmanager
def switching_threads_often() -> Iterator[None]:
    """Make the interpreter switch threads every few bytecodes, so races show up."""
    before = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        yield
    finally:
        sys.setswitchinterval(before)


@contextmanager
def serving(server: socketserver.BaseServer) -> Iterator[tuple[str, int]]:
    """Run ``server`` (bound already: a test's HTTP, echo or WSGI server on loopback) in a
    thread; yields its (host, port); shuts it down and closes it on the way out."""
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.daemon = True
    thread.start()
    try:
        host, port = server.server_address[:2]  # type: ignore[misc]
        yield str(host), int(port)
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)
