"""Shared by the ops app's tests: real servers on loopback and the secrets to look for."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import Any

import pytest
import uvicorn
from werkzeug.serving import make_server

from threads import serving

STARTUP_TIMEOUT = 10.0
JOIN_TIMEOUT = 10.0
KEY = "test-key-0123456789"
SECRET_DSN = "postgresql://admin:hunter2@db.internal.example:5432/orders"
SECRETS = ("hunter2", "db.internal.example", "postgresql://")
"""Parts of SECRET_DSN that must never reach a caller without the key."""

Serve = Callable[..., AbstractContextManager[str]]


@contextmanager
def serve_asgi(app: Any, *, root_path: str = "", lifespan: str = "off") -> Iterator[str]:
    """``app`` under uvicorn on 127.0.0.1 (a port the kernel picks); yields the base URL."""
    config = uvicorn.Config(
        app, host="127.0.0.1", port=0, log_level="warning", lifespan=lifespan, root_path=root_path
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="uvicorn-test", daemon=True)
    thread.start()
    deadline = time.monotonic() + STARTUP_TIMEOUT
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            server.should_exit = True
            pytest.fail("uvicorn did not start")
        time.sleep(0.01)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(JOIN_TIMEOUT)


@contextmanager
def serve_wsgi(app: Any) -> Iterator[str]:
    """A WSGI ``app`` under werkzeug's threaded server on 127.0.0.1; yields the base URL."""
    with serving(make_server("127.0.0.1", 0, app, threaded=True)) as (host, port):
        yield f"http://{host}:{port}"
